-- ARGV: set prefix, node, user, '1' online or '0' offline, keep ms. Returns -1 when the
-- node is not live in the registry (its next renewal writes its users), else 1.
local node, user, online, keep = ARGV[2], ARGV[3], ARGV[4] == '1', tonumber(ARGV[5])
if not is_live(node, now_ms()) then
  return -1
end
local key = node_set(node)
if online then
  if redis.call('SADD', key, user) == 1 then
    count(user, 1)
  end
  redis.call('PEXPIRE', key, keep)
elseif redis.call('SREM', key, user) == 1 then
  count(user, -1)
end
return 1
