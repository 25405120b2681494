//! [`RedisTickets`]: the hub's [`TicketStore`] on Redis, shared by every node, so
//! assignment, an agent's capacity and the queue hold for the whole cluster.
//!
//! Every operation is one Lua script (`lua/tickets_common.lua` plus its own part), so each
//! state change is atomic whatever other nodes do at the same moment: picking the
//! least-loaded agent and raising its load, draining the queue into an agent with room,
//! closing and freeing the agent. The ticket keys share the presence registry's hash tag, so
//! a script checks in the same step that an agent's nodes are alive: an agent whose node died
//! takes no new ticket once the node's registry entry expires. Times come from Redis' clock.
//! Scripts answer JSON (the hub's `Ticket`, `TicketChange` shapes, or a refusal).

use std::sync::Arc;
use std::sync::LazyLock;

use redis::Script;
use serde::Deserialize;
use wsc_hub::{
    AgentLoad, AgentProfile, BoxFuture, NewTicket, Ticket, TicketChange, TicketError, TicketStore,
};

use crate::error::Error;
use crate::pool::Redis;

fn script(body: &str) -> Script {
    Script::new(&format!(
        "{}\n{body}",
        include_str!("lua/tickets_common.lua")
    ))
}

/// ARGV: P, id, customer, vip, auto, department.
static OPEN: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local id, customer, vip, auto, department = ARGV[2], ARGV[3], ARGV[4], ARGV[5] == '1', ARGV[6]
if redis.call('EXISTS', tkey(id)) == 1 then return refuse('exists', id) end
redis.call('HSET', tkey(id), 'ticket_id', id, 'customer_id', customer, 'agent_id', '',
  'state', 'queued', 'vip', vip, 'department', department, 'created_at_ms', NOW,
  'updated_at_ms', NOW, 'close_reason', '')
redis.call('SADD', P .. 'user_tickets:' .. customer, id)
redis.call('ZADD', P .. 'ticket_activity', NOW, id)
local agent = auto and pick(department) or nil
if agent then
  assign(id, agent)
else
  local score = NOW + (vip == '1' and 0 or 1e13)
  redis.call('ZADD', P .. 'ticket_queue', score, id)
end
return change_json(id, '', {})
",
    )
});

/// ARGV: P, agent, node, capacity, auto, skills...
static AVAILABLE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local agent = ARGV[2]
for i = 6, #ARGV do redis.call('SADD', P .. 'agent:' .. agent .. ':skills', ARGV[i]) end
redis.call('HSET', P .. 'agents', agent, ARGV[4])
redis.call('HSETNX', P .. 'agent_load', agent, 0)
redis.call('SADD', P .. 'agent:' .. agent .. ':nodes', ARGV[3])
local assigned = {}
if ARGV[5] == '1' then drain(agent, assigned) end
return '[' .. table.concat(assigned, ',') .. ']'
",
    )
});

/// ARGV: P, agent, node.
static UNAVAILABLE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
redis.call('SREM', P .. 'agent:' .. ARGV[2] .. ':nodes', ARGV[3])
return 'null'
",
    )
});

/// ARGV: P, id, agent, auto.
static TRANSFER: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local id, agent, auto = ARGV[2], ARGV[3], ARGV[4] == '1'
local state, refused = open_state(id)
if not state then return refused end
local previous = field(id, 'agent_id')
if previous == agent then return change_json(id, previous, {}) end
if not alive(agent) then return refuse('agent_unavailable', agent) end
if load(agent) >= capacity(agent) then return refuse('agent_full', agent, capacity(agent)) end
redis.call('ZREM', P .. 'ticket_queue', id)
if previous ~= '' then release(previous, id) end
assign(id, agent)
local assigned = {}
if previous ~= '' and auto then drain(previous, assigned) end
return change_json(id, previous, assigned)
",
    )
});

/// ARGV: P, id, reason, auto.
static CLOSE: LazyLock<Script> =
    LazyLock::new(|| script("return close(ARGV[2], ARGV[3], ARGV[4] == '1')"));

/// ARGV: P, id, frame, keep.
static RECORD: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local id, keep = ARGV[2], tonumber(ARGV[4])
if redis.call('ZSCORE', P .. 'ticket_activity', id) then
  redis.call('ZADD', P .. 'ticket_activity', NOW, id)
  redis.call('HSET', tkey(id), 'updated_at_ms', NOW)
  if keep > 0 then
    redis.call('RPUSH', P .. 'history:' .. id, ARGV[3])
    redis.call('LTRIM', P .. 'history:' .. id, -keep, -1)
  end
end
return 'null'
",
    )
});

/// ARGV: P, timeout ms, auto.
static EXPIRE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local timeout = tonumber(ARGV[2])
local closed = {}
if timeout > 0 then
  local due = redis.call('ZRANGEBYSCORE', P .. 'ticket_activity', '-inf', NOW - timeout)
  for _, id in ipairs(due) do
    closed[#closed + 1] = close(id, 'timeout', ARGV[3] == '1')
  end
end
return '[' .. table.concat(closed, ',') .. ']'
",
    )
});

/// ARGV: P, id.
static GET: LazyLock<Script> = LazyLock::new(|| script("return ticket_json(ARGV[2])"));

/// ARGV: P.
static AGENTS: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local out = {}
local agents = redis.call('HKEYS', P .. 'agents')
table.sort(agents)
for _, agent in ipairs(agents) do
  local skills = redis.call('SMEMBERS', P .. 'agent:' .. agent .. ':skills')
  table.sort(skills)
  local entry = cjson.encode({agent_id = agent, load = load(agent),
    capacity = capacity(agent), available = alive(agent)})
  -- cjson writes an empty table as {}: the skills go in as a JSON array by hand.
  local list = '['
  for i, skill in ipairs(skills) do
    list = list .. (i > 1 and ',' or '') .. cjson.encode(skill)
  end
  out[#out + 1] = string.sub(entry, 1, -2) .. ',"skills":' .. list .. ']}'
end
return '[' .. table.concat(out, ',') .. ']'
"#,
    )
});

/// ARGV: P.
static QUEUE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local out = {}
for _, id in ipairs(redis.call('ZRANGE', P .. 'ticket_queue', 0, -1)) do
  out[#out + 1] = ticket_json(id)
end
return '[' .. table.concat(out, ',') .. ']'
",
    )
});

/// A refusal as the scripts answer it.
#[derive(Deserialize)]
struct Refusal {
    error: String,
    subject: String,
    limit: usize,
}

/// A change as the scripts answer it.
#[derive(Deserialize)]
struct Change {
    ticket: Ticket,
    previous_agent: String,
    assigned: Vec<Ticket>,
}

impl From<Change> for TicketChange {
    fn from(c: Change) -> Self {
        let mut change = TicketChange::new(c.ticket);
        change.previous_agent = c.previous_agent;
        change.assigned = c.assigned;
        change
    }
}

/// Tickets and agents' workloads in Redis, shared by every node (see the module docs).
#[derive(Clone)]
pub struct RedisTickets {
    redis: Arc<Redis>,
}

impl std::fmt::Debug for RedisTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTickets")
            .field("redis", &self.redis)
            .finish()
    }
}

impl RedisTickets {
    pub(crate) fn with_redis(redis: Arc<Redis>) -> Self {
        RedisTickets { redis }
    }

    /// Runs a script with the prefix first and `args` after; its JSON answer, or a refusal.
    async fn run<T: serde::de::DeserializeOwned>(
        &self,
        script: &Script,
        args: &[String],
    ) -> Result<T, TicketError> {
        let redis = &self.redis;
        let answer: String = redis
            .bounded(async {
                let mut conn = redis.conn().await?;
                let mut invocation = script.key(redis.keys().nodes());
                invocation.arg(redis.keys().tickets_prefix());
                for arg in args {
                    invocation.arg(arg);
                }
                invocation
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| redis.command_error(e))
            })
            .await
            .map_err(|e: Error| TicketError::from(wsc_hub::StoreError::from(e)))?;
        if let Ok(refusal) = serde_json::from_str::<Refusal>(&answer) {
            return Err(match refusal.error.as_str() {
                "exists" => TicketError::AlreadyExists(refusal.subject),
                "closed" => TicketError::Closed(refusal.subject),
                "agent_unavailable" => TicketError::AgentUnavailable(refusal.subject),
                "agent_full" => TicketError::AgentFull {
                    agent_id: refusal.subject,
                    limit: refusal.limit,
                },
                _ => TicketError::NotFound(refusal.subject),
            });
        }
        serde_json::from_str(&answer)
            .map_err(|e| TicketError::Unavailable(format!("a ticket script answered {e}")))
    }

    fn call<T>(
        &self,
        script: &'static LazyLock<Script>,
        args: Vec<String>,
    ) -> BoxFuture<Result<T, TicketError>>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        let store = self.clone();
        Box::pin(async move { store.run(script, &args).await })
    }
}

impl RedisTickets {
    /// The strings of a list (`LRANGE`, in order) or a set (`SMEMBERS`, sorted).
    fn list(
        &self,
        command: &'static str,
        key: String,
        range: bool,
    ) -> BoxFuture<Result<Vec<String>, TicketError>> {
        let store = self.clone();
        Box::pin(async move {
            let redis = &store.redis;
            let mut values: Vec<String> = redis
                .bounded(async {
                    let mut conn = redis.conn().await?;
                    let mut cmd = redis::cmd(command);
                    cmd.arg(&key);
                    if range {
                        cmd.arg(0).arg(-1);
                    }
                    cmd.query_async(&mut conn)
                        .await
                        .map_err(|e| redis.command_error(e))
                })
                .await
                .map_err(|e: Error| TicketError::from(wsc_hub::StoreError::from(e)))?;
            if !range {
                values.sort_unstable();
            }
            Ok(values)
        })
    }
}

fn flag(on: bool) -> String {
    if on { "1" } else { "0" }.to_owned()
}

impl TicketStore for RedisTickets {
    fn open(
        &self,
        ticket: NewTicket,
        auto_assign: bool,
        _now_ms: u64,
    ) -> BoxFuture<Result<TicketChange, TicketError>> {
        let args = vec![
            ticket.ticket_id,
            ticket.customer_id,
            flag(ticket.vip),
            flag(auto_assign),
            ticket.department,
        ];
        let change = self.call::<Change>(&OPEN, args);
        Box::pin(async move { change.await.map(TicketChange::from) })
    }

    fn agent_available(
        &self,
        agent: AgentProfile,
        auto_assign: bool,
        _now_ms: u64,
    ) -> BoxFuture<Result<Vec<Ticket>, TicketError>> {
        let mut args = vec![
            agent.agent_id,
            agent.node_id,
            agent.capacity.to_string(),
            flag(auto_assign),
        ];
        args.extend(agent.skills);
        self.call(&AVAILABLE, args)
    }

    fn agent_unavailable(
        &self,
        agent_id: &str,
        node_id: &str,
    ) -> BoxFuture<Result<(), TicketError>> {
        let done =
            self.call::<Option<()>>(&UNAVAILABLE, vec![agent_id.to_owned(), node_id.to_owned()]);
        Box::pin(async move { done.await.map(drop) })
    }

    fn transfer(
        &self,
        ticket_id: &str,
        agent_id: &str,
        auto_assign: bool,
        _now_ms: u64,
    ) -> BoxFuture<Result<TicketChange, TicketError>> {
        let args = vec![ticket_id.to_owned(), agent_id.to_owned(), flag(auto_assign)];
        let change = self.call::<Change>(&TRANSFER, args);
        Box::pin(async move { change.await.map(TicketChange::from) })
    }

    fn close(
        &self,
        ticket_id: &str,
        reason: &str,
        auto_assign: bool,
        _now_ms: u64,
    ) -> BoxFuture<Result<TicketChange, TicketError>> {
        let args = vec![ticket_id.to_owned(), reason.to_owned(), flag(auto_assign)];
        let change = self.call::<Change>(&CLOSE, args);
        Box::pin(async move { change.await.map(TicketChange::from) })
    }

    fn record(
        &self,
        ticket_id: &str,
        frame: String,
        keep: usize,
        _now_ms: u64,
    ) -> BoxFuture<Result<(), TicketError>> {
        let args = vec![ticket_id.to_owned(), frame, keep.to_string()];
        let done = self.call::<Option<()>>(&RECORD, args);
        Box::pin(async move { done.await.map(drop) })
    }

    fn history(&self, ticket_id: &str) -> BoxFuture<Result<Vec<String>, TicketError>> {
        let key = format!("{}history:{ticket_id}", self.redis.keys().tickets_prefix());
        self.list("LRANGE", key, true)
    }

    fn expire(
        &self,
        timeout_ms: u64,
        auto_assign: bool,
        _now_ms: u64,
    ) -> BoxFuture<Result<Vec<TicketChange>, TicketError>> {
        let closed =
            self.call::<Vec<Change>>(&EXPIRE, vec![timeout_ms.to_string(), flag(auto_assign)]);
        Box::pin(async move { Ok(closed.await?.into_iter().map(TicketChange::from).collect()) })
    }

    fn get(&self, ticket_id: &str) -> BoxFuture<Result<Option<Ticket>, TicketError>> {
        self.call(&GET, vec![ticket_id.to_owned()])
    }

    fn tickets_of(&self, user_id: &str) -> BoxFuture<Result<Vec<String>, TicketError>> {
        let key = format!(
            "{}user_tickets:{user_id}",
            self.redis.keys().tickets_prefix()
        );
        self.list("SMEMBERS", key, false)
    }

    fn agents(&self) -> BoxFuture<Result<Vec<AgentLoad>, TicketError>> {
        self.call(&AGENTS, Vec::new())
    }

    fn queue(&self) -> BoxFuture<Result<Vec<Ticket>, TicketError>> {
        self.call(&QUEUE, Vec::new())
    }
}
