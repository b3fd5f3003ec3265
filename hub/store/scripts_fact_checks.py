"""The Lua scripts of fact-checks (scripts.py registers them): each checks everything before its
first write, and that first write is one Redis refuses at maxmemory (XADD), so a full Redis
stores nothing half-way."""

from __future__ import annotations

store_fact_check_lua = """
local checker_ids, events = KEYS[1], KEYS[2]
local core, checker, own_id = ARGV[1], ARGV[2], ARGV[3]
local revision, new_id, hub_id, now = tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
local doc, content_hash = ARGV[8], ARGV[9]

-- The fact-check attaches to the cluster its alert is in now, read in the same step.
local alert = redis.call('HMGET', core .. 'alert:' .. hub_id, 'cluster_id', 'status')
if not alert[1] then return {'missing'} end

local existing = redis.call('HGET', checker_ids, checker .. '|' .. own_id)
if existing then
  local fact_key = core .. 'fc:' .. existing
  local cur = redis.call('HMGET', fact_key, 'revision', 'content_hash', 'status', 'hub_id',
                         'cluster_id')
  local cur_rev = tonumber(cur[1])
  -- One id names one verdict on one alert: the checker's id is not moved to another alert.
  if cur[4] ~= hub_id then return {'elsewhere', existing, cur[5], cur_rev} end
  if revision == cur_rev then
    if cur[2] == content_hash then return {'unchanged', existing, cur[5], cur_rev} end
    return {'conflict', existing, cur[5], cur_rev}
  end
  if revision < cur_rev then return {'stale', existing, cur[5], cur_rev} end
  if cur[3] == 'retracted' then return {'retracted', existing, cur[5], cur_rev} end
  local event_id = redis.call('XADD', events, '*', 'type', 'fact_checked', 'hub_id', hub_id,
                              'cluster_id', cur[5], 'fact_check_id', existing,
                              'revision', revision, 'occurred_at', now)
  redis.call('HSET', fact_key, 'doc', doc, 'revision', revision, 'content_hash', content_hash,
             'updated_at', now, 'logged_as', event_id)
  return {'updated', existing, cur[5], revision, event_id}
end
-- A retracted report was withdrawn by its sender: a verdict is posted on a live one.
if alert[2] == 'retracted' then return {'alert_retracted', '', alert[1], 0} end
local event_id = redis.call('XADD', events, '*', 'type', 'fact_checked', 'hub_id', hub_id,
                            'cluster_id', alert[1], 'fact_check_id', new_id,
                            'revision', revision, 'occurred_at', now)
redis.call('HSET', core .. 'fc:' .. new_id, 'doc', doc, 'checker', checker, 'own_id', own_id,
           'hub_id', hub_id, 'cluster_id', alert[1], 'revision', revision,
           'content_hash', content_hash, 'status', 'active', 'received_at', now,
           'logged_as', event_id)
redis.call('HSET', checker_ids, checker .. '|' .. own_id, new_id)
redis.call('ZADD', core .. 'cfc:' .. alert[1], 0, new_id)
return {'created', new_id, alert[1], revision, event_id}
"""

retract_fact_check_lua = """
local fact_key, events = KEYS[1], KEYS[2]
local fact_check_id, checker, now, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local cur = redis.call('HMGET', fact_key, 'checker', 'status', 'hub_id', 'cluster_id', 'revision')
if not cur[1] then return {'missing'} end
if cur[1] ~= checker then return {'not_checker'} end
if cur[2] == 'retracted' then return {'already'} end
local event_id = redis.call('XADD', events, '*', 'type', 'fact_check_retracted',
                            'hub_id', cur[3], 'cluster_id', cur[4],
                            'fact_check_id', fact_check_id, 'revision', cur[5],
                            'occurred_at', now)
redis.call('HSET', fact_key, 'status', 'retracted', 'retracted_at', now,
           'retraction_reason', reason)
return {'retracted', event_id}
"""

# Read-only helpers for the triage queue (cluster_views.py): one call reads what would otherwise
# be thousands of pipelined commands, each paying the client's per-command cost. Their one key is
# the `{core}` prefix itself (never read): it routes the call to the master of that slot in a
# Redis Cluster, where every key they build lives.
read_hashes_lua = """
local core, prefix, nfields = ARGV[1], ARGV[2], tonumber(ARGV[3])

-- For each id after the field names: HMGET of those fields of <core><prefix><id>.
local fields = {}
for i = 1, nfields do fields[i] = ARGV[3 + i] end
local out = {}
for i = 4 + nfields, #ARGV do
  out[#out + 1] = redis.call('HMGET', core .. prefix .. ARGV[i], unpack(fields))
end
return out
"""

read_members_lua = """
local core, prefix, kind = ARGV[1], ARGV[2], ARGV[3]

-- For each id: every member of the list (kind "list") or sorted set ("zset") <core><prefix><id>.
local out = {}
for i = 4, #ARGV do
  local key = core .. prefix .. ARGV[i]
  if kind == 'list' then
    out[#out + 1] = redis.call('LRANGE', key, 0, -1)
  else
    out[#out + 1] = redis.call('ZRANGE', key, 0, -1)
  end
end
return out
"""
