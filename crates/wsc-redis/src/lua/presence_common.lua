-- Shared by every presence script. KEYS[1] the node registry (node -> expiry ms),
-- KEYS[2] the online users (sorted set, score 0, so it pages in name order), KEYS[3] the
-- node count of each online user (hash). ARGV[1] the name prefix of the per-node user sets.
-- All of them share one hash tag, so on a Redis Cluster they live in one slot and a
-- script may name node sets it computes itself.
local registry, users, counts = KEYS[1], KEYS[2], KEYS[3]
local set_prefix = ARGV[1]

local function node_set(node)
  return set_prefix .. node .. ':users'
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A user appeared on (delta 1) or left (delta -1) one node set.
local function count(user, delta)
  local c = redis.call('HINCRBY', counts, user, delta)
  if c <= 0 then
    redis.call('HDEL', counts, user)
    redis.call('ZREM', users, user)
  elseif delta > 0 and c == 1 then
    redis.call('ZADD', users, 0, user)
  end
end

-- A node leaves: its users leave the counts, its set and registry entry go.
local function remove_node(node)
  local key = node_set(node)
  for _, user in ipairs(redis.call('SMEMBERS', key)) do
    count(user, -1)
  end
  redis.call('DEL', key)
  redis.call('ZREM', registry, node)
end

-- Every node whose entry expired (it stopped renewing: killed) leaves.
local function reap(now)
  for _, node in ipairs(redis.call('ZRANGEBYSCORE', registry, '-inf', now)) do
    remove_node(node)
  end
end

local function is_live(node, now)
  local expiry = redis.call('ZSCORE', registry, node)
  return expiry and tonumber(expiry) > now
end
