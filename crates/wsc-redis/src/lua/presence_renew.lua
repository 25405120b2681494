-- ARGV: set prefix, node, entry ttl ms, keep ms. Reaps expired nodes, renews this node's
-- entry, gives every presence key the same expiry (so they can only vanish together, when
-- no node renewed for `keep`), and returns the size of this node's set.
local node, ttl, keep = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
reap(now)
redis.call('ZADD', registry, now + ttl, node)
for _, live in ipairs(redis.call('ZRANGE', registry, 0, -1)) do
  redis.call('PEXPIRE', node_set(live), keep)
end
redis.call('PEXPIRE', registry, keep)
redis.call('PEXPIRE', users, keep)
redis.call('PEXPIRE', counts, keep)
return redis.call('SCARD', node_set(node))
