-- ARGV: set prefix, user. Reads only: returns the live nodes (expiry still ahead of the
-- server time) whose set holds the user, in registry order. One round trip instead of the
-- registry read followed by one SISMEMBER per node.
local user = ARGV[2]
local found = {}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', registry, '(' .. now_ms(), '+inf')) do
  if redis.call('SISMEMBER', node_set(node), user) == 1 then
    found[#found + 1] = node
  end
end
return found
