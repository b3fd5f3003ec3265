"""The Lua scripts of subscriptions, fan-out and delivery (scripts.py registers them): each
checks everything before its first write, because Redis does not roll a script back when it
fails half-way."""

from __future__ import annotations

create_subscription_lua = """
local subscriptions, version, events = KEYS[1], KEYS[2], KEYS[3]
local sub_id, record = ARGV[1], ARGV[2]

-- The subscription gets every event logged after this step: its start is read, and the
-- version bumped, atomically with the write (fanout_read_lua reads both together too).
local newest = redis.call('XREVRANGE', events, '+', '-', 'COUNT', 1)
local start_after = '0-0'
if newest[1] then start_after = newest[1][1] end
-- Appended last, so it wins over the record's own placeholder when the JSON is read.
local stored = string.sub(record, 1, -2) .. ',"start_after":"' .. start_after .. '"}'
redis.call('HSET', subscriptions, sub_id, stored)
redis.call('INCR', version)
return start_after
"""

lease_lua = """
local lease = KEYS[1]
local owner, ttl_ms = ARGV[1], tonumber(ARGV[2])

-- Take the lease when free, keep it when ours: 1 if the caller holds it now, else 0.
local holder = redis.call('GET', lease)
if not holder then
  redis.call('SET', lease, owner, 'PX', ttl_ms)
  return 1
end
if holder == owner then
  redis.call('PEXPIRE', lease, ttl_ms)
  return 1
end
return 0
"""

release_lua = """
local lease = KEYS[1]
local owner = ARGV[1]

if redis.call('GET', lease) == owner then return redis.call('DEL', lease) end
return 0
"""

delivery_members_lua = """
local members = KEYS[1]
local member, ttl_ms, leaving = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'

-- Renew (or, leaving, end) one delivery process's membership and answer the live members, by
-- Redis's clock so the processes' clocks need not agree; a process that died lapses after ttl_ms.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', members, '-inf', now_ms)
if leaving then
  redis.call('ZREM', members, member)
else
  redis.call('ZADD', members, now_ms + ttl_ms, member)
end
return redis.call('ZRANGE', members, 0, -1)
"""

sse_slot_lua = """
local streams = KEYS[1]
local stream_id, ttl_ms, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

-- Take or renew one SSE stream's slot among a node's open streams: 1 when the stream holds it,
-- 0 when the node is at its limit. Redis's clock, so hub processes' clocks need not agree; a
-- stream whose process died lapses after ttl_ms.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- The first write is not one Redis refuses at maxmemory, so the whole script runs then too
-- (Redis refuses a script at maxmemory only at its first write): streams still open while Redis
-- is full (test_streams_open_while_redis_refuses_writes).
redis.call('ZREMRANGEBYSCORE', streams, '-inf', now_ms)
if not redis.call('ZSCORE', streams, stream_id) and redis.call('ZCARD', streams) >= limit then
  return 0
end
redis.call('ZADD', streams, now_ms + ttl_ms, stream_id)
redis.call('PEXPIRE', streams, ttl_ms)
return 1
"""

fanout_read_lua = """
local lease, events, version_key = KEYS[1], KEYS[2], KEYS[3]
local owner, group, consumer, from_id, count = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ttl_ms = ARGV[6]

-- Reading is fenced by the lease, so a process that lost it cannot take new events; and the
-- subscriptions' version is read in the same step, so every event read was logged after any
-- subscription the caller's cache (at that version) lacks.
if redis.call('GET', lease) ~= owner then return {'lost'} end
-- Each read renews the lease, so working through a long backlog never lets it lapse.
redis.call('PEXPIRE', lease, ttl_ms)
local read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count,
                        'STREAMS', events, from_id)
local entries = {}
if read and read[1] then entries = read[1][2] end
local version = redis.call('GET', version_key) or '0'
local newest = redis.call('XREVRANGE', events, '+', '-', 'COUNT', 1)
local newest_id = '0-0'
if newest[1] then newest_id = newest[1][1] end
return {'ok', version, newest_id, entries}
"""

feed_append_lua = """
local feed, state, deleted = KEYS[1], KEYS[2], KEYS[3]
local event_id, log_type, hub_id, cluster_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local occurred_at, revision, retention = ARGV[5], ARGV[6], tonumber(ARGV[7])
local matches, node = ARGV[8] == '1', ARGV[9] or ''
-- The dedup window (ms; absent: none): a report of a cluster this feed last had longer ago than
-- that is news again, as dedup itself answers `created` for content not reported within it.
local window_ms = tonumber(ARGV[10])
local fact_check_id = ARGV[11] or ''

-- Stream ids compare as (milliseconds, sequence) pairs.
local function newer(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  if tonumber(ams) ~= tonumber(bms) then return tonumber(ams) > tonumber(bms) end
  return tonumber(aseq) > tonumber(bseq)
end

-- A fan-out still working from a subscription list read before the subscription was deleted
-- must not make its feed again.
if redis.call('EXISTS', deleted) == 1 then return 'gone' end

-- Events reach a feed in log order; one at or before `last` was fanned in already (by this
-- process before a crash, or by another that held the lease), so it is never added twice.
local last = redis.call('HGET', state, 'last')
if last and not newer(event_id, last) then return 'duplicate' end
redis.call('HSET', state, 'last', event_id)

-- `c:<cluster>` holds when the feed last had a report of the cluster (the ms of its event id;
-- "1" where written before that was kept, which counts as recent).
local event_ms = tonumber(string.match(event_id, '^(%d+)-'))
local function has_cluster()
  local at = tonumber(redis.call('HGET', state, 'c:' .. cluster_id))
  if not at then return false end
  return at == 1 or not window_ms or event_ms - at <= window_ms
end

-- `r:<cluster>` lists the reports of the cluster the feed had, each as "<event id> <hub id>,",
-- so that a reader who may not see some of them is told of none (feeds.py, retyped).
local function remember(cluster)
  local key = 'r:' .. cluster
  local had = redis.call('HGET', state, key) or ''
  redis.call('HSET', state, key, had .. event_id .. ' ' .. hub_id .. ',')
end

local received = hub_id ~= '' and redis.call('HEXISTS', state, 'h:' .. hub_id) == 1
local feed_type
if log_type == 'fact_checked' then
  -- A verdict on a claim reaches a feed that had a report of the claim's cluster, at any time
  -- (the fan-out offers it only where the owner may see the alert it was posted on); `f:` marks
  -- that the feed had it, so that its retraction follows it.
  if redis.call('HEXISTS', state, 'c:' .. cluster_id) == 0 then return 'skipped' end
  feed_type = 'alert.fact_checked'
  redis.call('HSET', state, 'f:' .. fact_check_id, 1)
elseif log_type == 'fact_check_retracted' then
  if redis.call('HEXISTS', state, 'f:' .. fact_check_id) == 0 then return 'skipped' end
  feed_type = 'alert.fact_check_retracted'
elseif log_type == 'node_registered' then
  -- Not an alert: no cluster or report to remember. The node travels in the entry.
  feed_type = 'node.registered'
elseif log_type == 'retracted' then
  if not received then return 'skipped' end
  feed_type = 'alert.retracted'
elseif log_type == 'updated' and received then
  -- An update may bring new content, and with it the cluster of that content.
  feed_type = 'alert.updated'
  redis.call('HSET', state, 'c:' .. cluster_id, event_ms)
  remember(cluster_id)
elseif matches then
  -- A first report, a corroboration, or an update that now matches a subscription that never
  -- had the report: new to this subscriber unless it already has the incident.
  if has_cluster() then
    feed_type = 'alert.corroborated'
  else
    feed_type = 'alert.created'
  end
  redis.call('HSET', state, 'c:' .. cluster_id, event_ms, 'h:' .. hub_id, 1)
  remember(cluster_id)
else
  return 'skipped'
end

-- `appended` numbers the feed's entries, so that a reader's lag is a subtraction (status.py).
local seq = redis.call('HINCRBY', state, 'appended', 1)
if node ~= '' then
  redis.call('XADD', feed, event_id, 'type', feed_type, 'node', node,
             'occurred_at', occurred_at, 'seq', seq)
elseif fact_check_id ~= '' then
  redis.call('XADD', feed, event_id, 'type', feed_type, 'hub_id', hub_id,
             'cluster_id', cluster_id, 'occurred_at', occurred_at, 'revision', revision,
             'fact_check_id', fact_check_id, 'seq', seq)
else
  redis.call('XADD', feed, event_id, 'type', feed_type, 'hub_id', hub_id,
             'cluster_id', cluster_id, 'occurred_at', occurred_at, 'revision', revision, 'seq', seq)
end
local length = redis.call('XLEN', feed)
if length > retention then
  local gone = redis.call('XRANGE', feed, '-', '+', 'COUNT', length - retention)
  redis.call('HSET', state, 'trimmed_upto', gone[#gone][1])
  redis.call('XTRIM', feed, 'MAXLEN', retention)
end
return feed_type
"""

delivery_done_lua = """
local lease, delivery, retries, retry_info, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local deleted = KEYS[6]
local owner, event_id, outcome, advance = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
local now_ms, now_text, due_ms, info, seq = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]

-- Only the worker holding the subscription's delivery lease moves its state, and only while
-- the subscription exists (a worker may take the lease again just after a delete).
if redis.call('GET', lease) ~= owner then return {'lost'} end
if redis.call('EXISTS', deleted) == 1 then return {'lost'} end
-- Feed entries are numbered without holes (feed_append_lua), so a step of more than one from
-- the cursor is events trimmed from the feed before they were sent: counted, never silent.
local trimmed = 0
if advance then
  local before = tonumber(redis.call('HGET', delivery, 'cursor_seq') or '0')
  if tonumber(seq) > 0 and tonumber(seq) > before + 1 then
    trimmed = tonumber(seq) - before - 1
    redis.call('HINCRBY', delivery, 'trimmed_unsent', trimmed)
    redis.call('HSET', delivery, 'trimmed_unsent_at', now_text)
  end
  redis.call('HSET', delivery, 'cursor', event_id, 'cursor_seq', seq)
end
if outcome == 'delivered' or outcome == 'skipped' then
  redis.call('ZREM', retries, event_id)
  redis.call('HDEL', retry_info, event_id)
  if outcome == 'delivered' then
    redis.call('HSET', delivery, 'last_delivery_at', now_text, 'consecutive_failures', 0)
    redis.call('HDEL', delivery, 'failing_since')
  end
  return {'ok', trimmed}
end
redis.call('HINCRBY', delivery, 'consecutive_failures', 1)
redis.call('HSETNX', delivery, 'failing_since', now_ms)
redis.call('HSET', delivery, 'last_failure_at', now_text)
if outcome == 'retry' then
  redis.call('ZADD', retries, due_ms, event_id)
  redis.call('HSET', retry_info, event_id, info)
  return {'ok', trimmed}
end
redis.call('ZREM', retries, event_id)
redis.call('HDEL', retry_info, event_id)
redis.call('HSET', dead, event_id, info)
return {'dead', redis.call('HGET', delivery, 'failing_since'), trimmed}
"""

delete_subscription_keys_lua = """
local deleted = KEYS[1]
local ttl_s = ARGV[1]

-- The marker first, in the same step as the delete: from here on no fan-out or delivery writes
-- these keys again (KEYS[2..] are the subscription's keys, all in its slot).
redis.call('SET', deleted, '1', 'EX', ttl_s)
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
"""

verify_failed_lua = """
local delivery, deleted = KEYS[1], KEYS[2]
local attempts, next_ms = ARGV[1], ARGV[2]

-- When to send the next challenge; nothing for a subscription deleted meanwhile.
if redis.call('EXISTS', deleted) == 1 then return 0 end
redis.call('HSET', delivery, 'verify_attempts', attempts, 'verify_next_ms', next_ms)
return 1
"""

replay_dead_lua = """
local retries, retry_info, dead = KEYS[1], KEYS[2], KEYS[3]
local now_ms = ARGV[1]

-- ARGV[2..] are the event ids to replay (api_subscriptions.py names them: every dead letter
-- is replayed, but only those the caller may see are counted in its answer).
local replayed = 0
for i = 2, #ARGV do
  local event_id = ARGV[i]
  local info = redis.call('HGET', dead, event_id)
  if info then
    local record = cjson.decode(info)
    record['attempts'] = 0
    record['first_failure_ms'] = nil
    redis.call('HSET', retry_info, event_id, cjson.encode(record))
    redis.call('ZADD', retries, now_ms, event_id)
    redis.call('HDEL', dead, event_id)
    replayed = replayed + 1
  end
end
return replayed
"""

note_read_lua = """
local state = KEYS[1]
local seq, at = ARGV[1], ARGV[2]

-- How far the owner's pull or SSE readers have been sent (status.py counts lag from it): the
-- furthest, so a reader going back over old events does not make the subscription look behind.
-- Only for a feed that still exists, so a stream outliving its subscription leaves no key.
if redis.call('EXISTS', state) == 0 then return 0 end
if tonumber(redis.call('HGET', state, 'read_seq') or '0') >= tonumber(seq) then return 0 end
redis.call('HSET', state, 'read_seq', seq, 'read_at', at)
return 1
"""
