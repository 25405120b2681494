-- Shared by every ticket script. KEYS[1] the node registry (node -> expiry ms, the
-- presence key), ARGV[1] the name prefix of every ticket key. Every ticket key shares the
-- registry's hash tag, so on a Redis Cluster they all live in one slot and a script may
-- name the keys it computes (a ticket, an agent's nodes) and check in the same step that
-- an agent's nodes are alive.
--
-- <P>ticket:<id>           hash    ticket_id customer_id agent_id state vip created_at_ms
--                                  updated_at_ms close_reason
-- <P>ticket_queue          zset    queued ticket ids, score (VIP 0, else 1e13) + opened ms
-- <P>ticket_activity       zset    open ticket ids, score = last activity ms
-- <P>agents                hash    agent -> capacity
-- <P>agent_load            hash    agent -> assigned tickets
-- <P>agent:<id>:nodes      set     nodes where the agent is connected
-- <P>agent:<id>:skills     set     departments the agent serves (besides tickets of none)
-- <P>user_tickets:<id>     set     open tickets of a user (customer or agent)
-- <P>history:<id>          list    the ticket's last messages (JSON frames), oldest first
local registry = KEYS[1]
local P = ARGV[1]
local RETENTION_MS = 3600000

local t = redis.call('TIME')
local NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function tkey(id) return P .. 'ticket:' .. id end

-- Whether a node of the agent is alive; forgets nodes that left the registry.
local function alive(agent)
  local nodes = P .. 'agent:' .. agent .. ':nodes'
  local live = false
  for _, node in ipairs(redis.call('SMEMBERS', nodes)) do
    local expiry = redis.call('ZSCORE', registry, node)
    if not expiry then
      redis.call('SREM', nodes, node)
    elseif tonumber(expiry) > NOW then
      live = true
    end
  end
  return live
end

local function load(agent) return tonumber(redis.call('HGET', P .. 'agent_load', agent) or '0') end
local function capacity(agent) return tonumber(redis.call('HGET', P .. 'agents', agent) or '0') end

local function field(id, name) return redis.call('HGET', tkey(id), name) or '' end

-- The ticket as JSON (the Rust `Ticket`).
local function ticket_json(id)
  local h = redis.call('HGETALL', tkey(id))
  if #h == 0 then return 'null' end
  local f = {}
  for i = 1, #h, 2 do f[h[i]] = h[i + 1] end
  return cjson.encode({
    ticket_id = f.ticket_id, customer_id = f.customer_id, agent_id = f.agent_id or '',
    state = f.state, vip = f.vip == '1', department = f.department or '', created_at_ms = tonumber(f.created_at_ms),
    updated_at_ms = tonumber(f.updated_at_ms), close_reason = f.close_reason or '',
  })
end

local function change_json(id, previous, assigned)
  return '{"ticket":' .. ticket_json(id) .. ',"previous_agent":' .. cjson.encode(previous)
    .. ',"assigned":[' .. table.concat(assigned, ',') .. ']}'
end

local function refuse(code, subject, limit)
  return cjson.encode({error = code, subject = subject, limit = limit or 0})
end

local function assign(id, agent)
  redis.call('HINCRBY', P .. 'agent_load', agent, 1)
  redis.call('HSET', tkey(id), 'agent_id', agent, 'state', 'assigned', 'updated_at_ms', NOW)
  redis.call('SADD', P .. 'user_tickets:' .. agent, id)
  redis.call('ZADD', P .. 'ticket_activity', NOW, id)
end

local function release(agent, id)
  if redis.call('HINCRBY', P .. 'agent_load', agent, -1) < 0 then
    redis.call('HSET', P .. 'agent_load', agent, 0)
  end
  redis.call('SREM', P .. 'user_tickets:' .. agent, id)
end

-- Whether the agent takes tickets of this department ('' = any agent does).
local function takes(agent, department)
  return department == '' or redis.call('SISMEMBER', P .. 'agent:' .. agent .. ':skills', department) == 1
end

-- The least-loaded alive agent with room for a ticket of `department` (ties: by id), or nil.
local function pick(department)
  local best, best_load
  for _, agent in ipairs(redis.call('HKEYS', P .. 'agents')) do
    local l = load(agent)
    if l < capacity(agent) and (best == nil or l < best_load or (l == best_load and agent < best))
      and takes(agent, department) and alive(agent) then
      best, best_load = agent, l
    end
  end
  return best
end

-- Gives the agent queued tickets it takes, in queue order, while it has room; appends them
-- (as JSON) to `out`. The queue is scanned for the first ticket of a department the agent
-- serves, so its cost grows with the queue.
local function drain(agent, out)
  while load(agent) < capacity(agent) and alive(agent) do
    local next_id
    for _, id in ipairs(redis.call('ZRANGE', P .. 'ticket_queue', 0, -1)) do
      if takes(agent, field(id, 'department')) then next_id = id break end
    end
    if not next_id then break end
    redis.call('ZREM', P .. 'ticket_queue', next_id)
    assign(next_id, agent)
    out[#out + 1] = ticket_json(next_id)
  end
end

-- The state of an open ticket, or a refusal (JSON) when missing or closed.
local function open_state(id)
  local state = field(id, 'state')
  if state == '' then return nil, refuse('not_found', id) end
  if state == 'closed' then return nil, refuse('closed', id) end
  return state
end

local function close(id, reason, auto)
  local state, refused = open_state(id)
  if not state then return refused end
  local agent = field(id, 'agent_id')
  redis.call('ZREM', P .. 'ticket_queue', id)
  redis.call('ZREM', P .. 'ticket_activity', id)
  redis.call('HSET', tkey(id), 'state', 'closed', 'close_reason', reason, 'updated_at_ms', NOW)
  redis.call('PEXPIRE', tkey(id), RETENTION_MS)
  redis.call('PEXPIRE', P .. 'history:' .. id, RETENTION_MS)
  redis.call('SREM', P .. 'user_tickets:' .. field(id, 'customer_id'), id)
  local assigned = {}
  if agent ~= '' then
    release(agent, id)
    if auto then drain(agent, assigned) end
  end
  return change_json(id, agent, assigned)
end
