-- ARGV: set prefix, first rank, last rank (-1: to the end), '1' for a page or '0' for the
-- count alone. Reaps expired nodes, then returns {total, users}: the number of online
-- users and those ranked first..last in name order.
local first, last, listing = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1'
reap(now_ms())
local total = redis.call('ZCARD', users)
local page = {}
if listing then
  page = redis.call('ZRANGE', users, first, last)
end
return {total, page}
