"""The Lua scripts, registered once at start-up: those of ingest and nodes here, those of
subscriptions, fan-out and delivery in scripts_delivery.py. Each one checks everything before
its first write, because Redis does not roll a script back when it fails half-way."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from hub.store.scripts_delivery import (
    create_subscription_lua,
    delete_subscription_keys_lua,
    delivery_done_lua,
    delivery_members_lua,
    fanout_read_lua,
    feed_append_lua,
    lease_lua,
    note_read_lua,
    release_lua,
    replay_dead_lua,
    sse_slot_lua,
    verify_failed_lua,
)
from hub.store.scripts_fact_checks import (
    read_hashes_lua,
    read_members_lua,
    retract_fact_check_lua,
    store_fact_check_lua,
)

store_alert_lua = """
local sender_ids, events, recent, counts, fpr_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local token_key, rate_key, links_key, similar_key = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local core, sender, alert_id = ARGV[1], ARGV[2], ARGV[3]
local revision, new_hub_id, cluster_id, now = tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
local doc, meta, content_hash, fingerprint = ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local window, links_json, audiences_json = tonumber(ARGV[12]), ARGV[13], ARGV[14]
local rate_limit, rate_ttl = tonumber(ARGV[15]), tonumber(ARGV[16])
local links_bucket, minute, hour, country = ARGV[17], ARGV[18], ARGV[19], ARGV[20]
local minute_ttl, hour_ttl, now_ms = ARGV[21], ARGV[22], tonumber(ARGV[23])
local sim_json, sim_scores_json = ARGV[24], ARGV[25]

-- The sender's token is checked here, in the same step as the write, so that a token revoked a
-- moment ago stores nothing; the request is counted against the sender's rate unless the caller
-- counted it already (rate_limit 0, as a batch does).
if redis.call('HGET', token_key, 'node_id') ~= sender then return {'unauthenticated'} end
if rate_limit > 0 then
  local used = redis.call('INCR', rate_key)
  if used == 1 then redis.call('EXPIRE', rate_key, rate_ttl) end
  if used > rate_limit then return {'rate_limited'} end
end

local links = cjson.decode(links_json)
local window_ms = window * 1000

-- One window's link index (keys.py, Keys.links): an entry "<hub_id>:<n>" per link key, scored
-- by the key's hash (canon.link_score), written in chunks far below Lua's stack limit. The index
-- outlives its window by another two, so that "related" still finds an alert's partners after
-- the window turns.
local function link_members(count, hub_id, from)
  local members = {}
  for n = from, math.min(from + 199, count) do
    members[#members + 1] = hub_id .. ':' .. n
  end
  return members
end

local function add_links(hub_id)
  for from = 1, #links, 200 do
    local args = {}
    for i, member in ipairs(link_members(#links, hub_id, from)) do
      args[#args + 1] = links[from + i - 1]
      args[#args + 1] = member
    end
    redis.call('ZADD', links_key, unpack(args))
  end
  -- TTL is a read: only the window's first alert writes (and logs) the expiry.
  if #links > 0 and redis.call('TTL', links_key) < 0 then
    redis.call('EXPIRE', links_key, 3 * window)
  end
end

local function remove_links(count, bucket, hub_id)
  if not bucket then return end
  for from = 1, count, 200 do
    redis.call('ZREM', core .. 'links:' .. bucket, unpack(link_members(count, hub_id, from)))
  end
end

-- The window's similarity index (keys.py, Keys.similar), laid out as the link index is: an
-- entry "<hub_id>:<n>" per index score of the alert's claims.
local sim_scores = cjson.decode(sim_scores_json)

local function add_similar(hub_id)
  for from = 1, #sim_scores, 200 do
    local args = {}
    for i, member in ipairs(link_members(#sim_scores, hub_id, from)) do
      args[#args + 1] = sim_scores[from + i - 1]
      args[#args + 1] = member
    end
    redis.call('ZADD', similar_key, unpack(args))
  end
  if #sim_scores > 0 and redis.call('TTL', similar_key) < 0 then
    redis.call('EXPIRE', similar_key, 3 * window)
  end
end

local function remove_similar(count, bucket, hub_id)
  if not bucket or count == 0 then return end
  for from = 1, count, 200 do
    redis.call('ZREM', core .. 'similar:' .. bucket, unpack(link_members(count, hub_id, from)))
  end
end

-- The listing indexes (keys.py, Keys.audience) an alert is filed under, by its sharing.
local function file_audiences(hub_id, names_json, add)
  for _, name in ipairs(cjson.decode(names_json)) do
    if add then
      redis.call('ZADD', core .. 'aud:' .. name, 0, hub_id)
    else
      redis.call('ZREM', core .. 'aud:' .. name, hub_id)
    end
  end
end

-- At maxmemory (noeviction) Redis refuses a script's first write only if that write is one that
-- may use memory: every path below writes such a command (INCR, XADD, HSET) before any
-- other (ZREM, LREM, ZREMRANGEBYSCORE), so a full Redis stores nothing half-way.

-- The reports carrying this content within the window (keys.py, Keys.fingerprint_reports),
-- earliest first: dedup.py answers from the first of them the sender may see. A carrier's score
-- is the log id of the event that gave it the content, as ms * 1000 + sequence: the order in
-- which Redis ran the steps, whatever the clocks of the hub processes that sent them.
local function position(event_id)
  local ms, seq = string.match(event_id, '^(%d+)-(%d+)$')
  return tonumber(ms) * 1000 + math.min(tonumber(seq), 999)
end

local function current_carriers()
  return redis.call('ZRANGEBYSCORE', fpr_key, (now_ms - window_ms) * 1000, '+inf')
end

local function carry_fingerprint(hub_id, event_id)
  local at = position(event_id)
  redis.call('ZADD', fpr_key, at, hub_id)
  redis.call('ZREMRANGEBYSCORE', fpr_key, '-inf', '(' .. (at - window_ms * 1000))
  redis.call('PEXPIRE', fpr_key, window_ms)
end

-- What the status page shows (keys.py: node_stats, ingest_minute, sharing_hour). A new hash
-- gets its expiry when its first field is first counted. A corroboration is counted by the
-- caller, once it knows whether the sender may see what it corroborates (dedup.py): counting it
-- here would tell the counts' readers that content exists which the sender was told is new.
local function count_stored(outcome)
  redis.call('HINCRBY', core .. 'node-stats:' .. sender, 'posted', 1)
  if outcome ~= 'corroborated' then
    redis.call('HINCRBY', counts, outcome, 1)
    local minute_key = core .. 'ingest-minute:' .. minute
    if redis.call('HINCRBY', minute_key, outcome, 1) == 1 then
      redis.call('EXPIRE', minute_key, minute_ttl)
    end
  end
  if outcome ~= 'updated' then
    local hour_key = core .. 'sharing-hour:' .. hour
    if redis.call('HINCRBY', hour_key, country, 1) == 1 then
      redis.call('EXPIRE', hour_key, hour_ttl)
    end
  end
end

local existing = redis.call('HGET', sender_ids, sender .. '|' .. alert_id)
if existing then
  local akey = core .. 'alert:' .. existing
  local cur = redis.call('HMGET', akey, 'revision', 'content_hash', 'status', 'cluster_id', 'links',
                         'fingerprint', 'links_bucket', 'audiences', 'sim_n')
  local cur_rev = tonumber(cur[1])
  if revision == cur_rev then
    if cur[2] == content_hash then return {'unchanged', existing, cur[4], cur_rev} end
    return {'conflict', existing, cur[4], cur_rev}
  end
  if revision < cur_rev then return {'stale', existing, cur[4], cur_rev} end
  if cur[3] == 'retracted' then return {'retracted', existing, cur[4], cur_rev} end
  -- New content of this report: it carries the new content from now on, and joins the cluster
  -- of that content (clusters are named by their content: dedup.py).
  local moved = cur[6] ~= fingerprint
  local cluster = cur[4]
  if moved then cluster = cluster_id end
  -- `logged_as`: the log entry of the alert's latest report or revision (explain.py).
  local event_id = redis.call('XADD', events, '*', 'type', 'updated', 'hub_id', existing,
                              'cluster_id', cluster, 'sender', sender, 'revision', revision,
                              'occurred_at', now)
  remove_links(#cjson.decode(cur[5]), cur[7], existing)
  add_links(existing)
  remove_similar(tonumber(cur[9] or '0'), cur[7], existing)
  add_similar(existing)
  if moved then
    if cur[6] then redis.call('ZREM', core .. 'fpr:' .. cur[6], existing) end
    carry_fingerprint(existing, event_id)
    if cluster ~= cur[4] then
      redis.call('LREM', core .. 'cluster:' .. cur[4], 0, existing)
      redis.call('RPUSH', core .. 'cluster:' .. cluster, existing)
    end
  end
  if cur[8] ~= audiences_json then
    if cur[8] then file_audiences(existing, cur[8], false) end
    file_audiences(existing, audiences_json, true)
  end
  redis.call('HSET', akey, 'doc', doc, 'meta', meta, 'revision', revision,
             'content_hash', content_hash, 'updated_at', now, 'links', links_json,
             'links_bucket', links_bucket, 'fingerprint', fingerprint, 'logged_as', event_id,
             'cluster_id', cluster, 'audiences', audiences_json, 'sim', sim_json,
             'sim_n', #sim_scores)
  count_stored('updated')
  return {'updated', existing, cluster, revision, event_id}
end

-- Whether the content is new or a corroboration is, for the log and the counts, whether any
-- report carries it now; what the sender is told depends only on those it may see (dedup.py).
local earlier = current_carriers()
local outcome = 'created'
if #earlier > 0 then outcome = 'corroborated' end
local event_id = redis.call('XADD', events, '*', 'type', outcome, 'hub_id', new_hub_id,
                            'cluster_id', cluster_id, 'sender', sender, 'revision', revision,
                            'occurred_at', now)
carry_fingerprint(new_hub_id, event_id)
redis.call('RPUSH', core .. 'cluster:' .. cluster_id, new_hub_id)
redis.call('HSET', core .. 'alert:' .. new_hub_id, 'doc', doc, 'meta', meta, 'sender', sender,
           'alert_id', alert_id, 'revision', revision, 'content_hash', content_hash,
           'cluster_id', cluster_id, 'received_at', now, 'status', 'active',
           'links', links_json, 'links_bucket', links_bucket, 'fingerprint', fingerprint,
           'logged_as', event_id, 'audiences', audiences_json, 'sim', sim_json,
           'sim_n', #sim_scores)
redis.call('HSET', sender_ids, sender .. '|' .. alert_id, new_hub_id)
redis.call('ZADD', recent, 0, new_hub_id)
add_links(new_hub_id)
add_similar(new_hub_id)
file_audiences(new_hub_id, audiences_json, true)
count_stored(outcome)
return {outcome, new_hub_id, cluster_id, revision, event_id, earlier}
"""

retract_alert_lua = """
local alert_key, events, counts = KEYS[1], KEYS[2], KEYS[3]
local hub_id, sender, now, reason, core = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local cur = redis.call('HMGET', alert_key, 'sender', 'status', 'cluster_id', 'revision',
                       'fingerprint')
if not cur[1] then return {'missing'} end
if cur[1] ~= sender then return {'not_sender'} end
if cur[2] == 'retracted' then return {'already'} end
redis.call('HSET', alert_key, 'status', 'retracted', 'retracted_at', now,
           'retraction_reason', reason)
-- A retracted report carries its content no longer: nothing corroborates it from now on.
if cur[5] then redis.call('ZREM', core .. 'fpr:' .. cur[5], hub_id) end
local event_id = redis.call('XADD', events, '*', 'type', 'retracted', 'hub_id', hub_id,
                            'cluster_id', cur[3], 'sender', sender, 'revision', cur[4],
                            'occurred_at', now)
redis.call('HINCRBY', counts, 'retracted', 1)
return {'retracted', event_id}
"""

lookup_token_lua = """
local token_key = KEYS[1]
local core = ARGV[1]

local token = redis.call('HMGET', token_key, 'node_id', 'secret_hash')
if not token[1] then return false end
local node = redis.call('HMGET', core .. 'node:' .. token[1], 'json', 'revoked_at')
if not node[1] or node[2] then return false end
return {token[2], node[1]}
"""

confirm_token_lua = """
local token_key, rate_key = KEYS[1], KEYS[2]
local node_id, cost, rate_ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

if redis.call('HGET', token_key, 'node_id') ~= node_id then return -1 end
-- At maxmemory (noeviction) the count cannot be written: the request is then checked against
-- the count so far, so that reads go on while Redis refuses writes (each write still fails).
local used = redis.pcall('INCRBY', rate_key, cost)
if type(used) == 'table' then
  if not string.find(used.err, 'OOM', 1, true) then return redis.error_reply(used.err) end
  return tonumber(redis.call('GET', rate_key) or '0') + cost
end
if used == cost then redis.call('EXPIRE', rate_key, rate_ttl) end
return used
"""

create_node_lua = """
local node_key, node_ids, token_key, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local node_id, node_json, key_id, secret_hash = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local announced, now = ARGV[5], ARGV[6]

if redis.call('EXISTS', node_key) == 1 then return 0 end
redis.call('HSET', node_key, 'json', node_json, 'token_key_id', key_id)
redis.call('SADD', node_ids, node_id)
if key_id ~= '' then
  redis.call('HSET', token_key, 'node_id', node_id, 'secret_hash', secret_hash)
end
-- Logged in the same step as the node, so no registration goes unannounced to its country's
-- nodes (fan-out delivers it in log order, as it does alerts); none for a node with no country.
if announced ~= '' then
  redis.call('XADD', events, '*', 'type', 'node_registered', 'node_id', node_id,
             'node', announced, 'occurred_at', now)
end
return 1
"""

replace_token_lua = """
local node_key, new_token_key = KEYS[1], KEYS[2]
local core, node_id, key_id, secret_hash = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local node = redis.call('HMGET', node_key, 'json', 'revoked_at', 'token_key_id')
if not node[1] or node[2] then return 0 end
if node[3] and node[3] ~= '' then redis.call('DEL', core .. 'token:' .. node[3]) end
redis.call('HSET', node_key, 'token_key_id', key_id)
redis.call('HSET', new_token_key, 'node_id', node_id, 'secret_hash', secret_hash)
return 1
"""

revoke_node_lua = """
local node_key, subscriptions_version = KEYS[1], KEYS[2]
local core, now, channel, node_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local node = redis.call('HMGET', node_key, 'json', 'revoked_at', 'token_key_id')
if not node[1] then return 'missing' end
if node[2] then return 'already' end
if node[3] and node[3] ~= '' then redis.call('DEL', core .. 'token:' .. node[3]) end
redis.call('HSET', node_key, 'revoked_at', now, 'token_key_id', '')
-- In the same step: fan-out reloads the owners of subscriptions on its next read (it reads
-- this version with the events), so nothing logged after this reaches the node's feeds; and
-- every hub process hears that the node's event streams must end.
redis.call('INCR', subscriptions_version)
redis.call('PUBLISH', channel, node_id)
return 'revoked'
"""


@dataclass(frozen=True, slots=True)
class Scripts:
    store_alert: AsyncScript
    retract_alert: AsyncScript
    lookup_token: AsyncScript
    confirm_token: AsyncScript
    create_node: AsyncScript
    replace_token: AsyncScript
    revoke_node: AsyncScript
    create_subscription: AsyncScript
    delete_subscription_keys: AsyncScript
    verify_failed: AsyncScript
    lease: AsyncScript
    release: AsyncScript
    fanout_read: AsyncScript
    feed_append: AsyncScript
    delivery_done: AsyncScript
    replay_dead: AsyncScript
    note_read: AsyncScript
    sse_slot: AsyncScript
    delivery_members: AsyncScript
    store_fact_check: AsyncScript
    retract_fact_check: AsyncScript
    read_hashes: AsyncScript
    read_members: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> Scripts:
        return cls(
            store_alert=redis.register_script(store_alert_lua),
            retract_alert=redis.register_script(retract_alert_lua),
            lookup_token=redis.register_script(lookup_token_lua),
            confirm_token=redis.register_script(confirm_token_lua),
            create_node=redis.register_script(create_node_lua),
            replace_token=redis.register_script(replace_token_lua),
            revoke_node=redis.register_script(revoke_node_lua),
            create_subscription=redis.register_script(create_subscription_lua),
            delete_subscription_keys=redis.register_script(delete_subscription_keys_lua),
            verify_failed=redis.register_script(verify_failed_lua),
            lease=redis.register_script(lease_lua),
            release=redis.register_script(release_lua),
            fanout_read=redis.register_script(fanout_read_lua),
            feed_append=redis.register_script(feed_append_lua),
            delivery_done=redis.register_script(delivery_done_lua),
            replay_dead=redis.register_script(replay_dead_lua),
            note_read=redis.register_script(note_read_lua),
            sse_slot=redis.register_script(sse_slot_lua),
            delivery_members=redis.register_script(delivery_members_lua),
            store_fact_check=redis.register_script(store_fact_check_lua),
            retract_fact_check=redis.register_script(retract_fact_check_lua),
            read_hashes=redis.register_script(read_hashes_lua),
            read_members=redis.register_script(read_members_lua),
        )

    async def load(self, redis: Redis) -> None:
        """Load every script into the server's cache so the first request pays no SCRIPT LOAD."""
        for script in (
            self.store_alert,
            self.retract_alert,
            self.lookup_token,
            self.confirm_token,
            self.create_node,
            self.replace_token,
            self.revoke_node,
            self.create_subscription,
            self.delete_subscription_keys,
            self.verify_failed,
            self.lease,
            self.release,
            self.fanout_read,
            self.feed_append,
            self.delivery_done,
            self.replay_dead,
            self.note_read,
            self.sse_slot,
            self.delivery_members,
            self.store_fact_check,
            self.retract_fact_check,
            self.read_hashes,
            self.read_members,
        ):
            script.sha = await redis.script_load(script.script)
