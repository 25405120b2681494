-- ARGV: set prefix, node, keep ms, then every user of the node. Makes the node's set
-- exactly that list, adjusting the counts by the difference. Returns -1 when the node is
-- not live in the registry, else 1.
local node, keep = ARGV[2], tonumber(ARGV[3])
if not is_live(node, now_ms()) then
  return -1
end
local key = node_set(node)
local wanted = {}
for i = 4, #ARGV do
  wanted[ARGV[i]] = true
end
for _, user in ipairs(redis.call('SMEMBERS', key)) do
  if wanted[user] then
    wanted[user] = nil
  else
    redis.call('SREM', key, user)
    count(user, -1)
  end
end
for user in pairs(wanted) do
  redis.call('SADD', key, user)
  count(user, 1)
end
redis.call('PEXPIRE', key, keep)
return 1
