//! Three `gateway-server` processes on one Redis (a throwaway `redis-server` of this test,
//! so it can be stopped): messages sent through one node's HTTP API reach clients on the
//! others, once, and group memberships made through one node are listed and routed by the
//! others; a node killed with SIGKILL mid-stream loses no acknowledged message (they
//! arrive after its client reconnects to another node); Redis stopped and restarted empty
//! mid-stream: sends say `unavailable` meanwhile, and delivery resumes without restarting
//! any node.

mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use support::{Client, WAIT, ack, assert_nothing_pending, get, next_json, post};
use tokio_tungstenite::tungstenite::Message;
use wsc_testkit::free_port;
use wsc_testkit::process::wait_for_line;
use wsc_testkit::redis_server::RedisServer;

/// Presence and node entries live this long without renewal (renewed every third of it).
const TTL: &str = "2s";

/// One `gateway-server` process; killed (SIGKILL) when dropped.
struct Node {
    name: String,
    child: Option<Child>,
    ws: u16,
    api: u16,
}

impl Node {
    /// Starts a node on `redis` under `prefix` and waits for its ready line.
    fn start(name: &str, redis: &str, prefix: &str) -> Node {
        let (ws, api) = (free_port(), free_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_gateway-server"))
            .env("GATEWAY__WSC__NODE_IP", "127.0.0.1")
            .env("GATEWAY__WSC__NODE_PORT", ws.to_string())
            .env("GATEWAY__HTTP__HOST", "127.0.0.1")
            .env("GATEWAY__HTTP__PORT", api.to_string())
            .env("GATEWAY__GRPC__ENABLED", "false")
            .env("GATEWAY__WSC__REDIS__ENABLED", "true")
            .env("GATEWAY__WSC__REDIS__URL", redis)
            .env("GATEWAY__WSC__REDIS__CONNECT_TIMEOUT", "1s")
            .env("GATEWAY__WSC__DISTRIBUTED__ENABLED", "true")
            .env("GATEWAY__WSC__DISTRIBUTED__NODE_ID", name)
            .env("GATEWAY__WSC__DISTRIBUTED__KEY_PREFIX", prefix)
            .env("GATEWAY__WSC__DISTRIBUTED__PRESENCE_TTL", TTL)
            .env("GATEWAY__WSC__DISTRIBUTED__NODE_TTL", TTL)
            .env("GATEWAY__WSC__OFFLINE__STORE", "redis")
            .env("RUST_LOG", "error,gateway_server=info")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the gateway-server binary starts");
        let stdout = child.stdout.take().expect("stdout");
        // Built first, so that a node that does not start is killed with it.
        let node = Node {
            name: name.to_owned(),
            child: Some(child),
            ws,
            api,
        };
        let line = wait_for_line(stdout, "gateway-server listening", WAIT);
        assert!(
            line.contains(&format!("websocket=ws://127.0.0.1:{ws}/ws")),
            "{name} did not start: {line:?}"
        );
        node
    }

    fn api(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.api))
    }

    /// A client of this node, registered once this returns (its ping was answered).
    async fn connect(&self, user: &str, client: &str) -> Client {
        let mut ws = self.reconnect(user, client).await;
        assert_nothing_pending(&mut ws, client).await;
        ws
    }

    /// A client of this node that may be sent something at once (a replay of stored
    /// messages, a resend from another node that found it in presence): connected, without
    /// [`connect`](Self::connect)'s proof that nothing was queued before its ping.
    async fn reconnect(&self, user: &str, client: &str) -> Client {
        wsc_testkit::ws::connect(&format!(
            "ws://127.0.0.1:{}/ws?user_id={user}&client_id={client}",
            self.ws
        ))
        .await
    }

    /// Waits until `/ready` answers 200 (Redis reachable, subscribed).
    async fn ready(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, body) = get(self.api(), "/ready").await;
            if status == 200 {
                return;
            }
            assert!(Instant::now() < deadline, "{} not ready: {body}", self.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three ready nodes `n1`, `n2`, `n3` on `redis`, under a prefix of their own.
async fn three_nodes(redis: &RedisServer) -> [Node; 3] {
    let prefix = format!("mn{}:", std::process::id());
    let nodes = ["n1", "n2", "n3"].map(|name| Node::start(name, &redis.url(), &prefix));
    for node in &nodes {
        node.ready().await;
    }
    nodes
}

/// Polls the presence of a user on `node` until its node list is `expected`.
async fn wait_presence(node: &Node, user: &str, expected: &[&str]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, body) = get(node.api(), &format!("/api/v1/users/{user}/presence")).await;
        if body["nodes"] == json!(expected) {
            return;
        }
        assert!(Instant::now() < deadline, "presence of {user}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn messages_cross_processes_once_and_come_back_after_a_redis_restart() {
    let mut redis = RedisServer::start();
    let [n1, n2, n3] = three_nodes(&redis).await;
    let mut phone = n2.connect("alice", "a-phone").await;
    let mut desk = n3.connect("alice", "a-desk").await;
    let mut bob = n3.connect("bob", "b-1").await;
    wait_presence(&n1, "alice", &["n2", "n3"]).await;

    let (status, report) = post(
        n1.api(),
        "/api/v1/users/alice/messages",
        r#"{"content":"to alice"}"#,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["delivered"].as_u64(), report["nodes"].as_u64()),
        (Some(0), Some(2))
    );
    for device in [&mut phone, &mut desk] {
        let frame = next_json(device).await;
        assert_eq!(
            (frame["content"].as_str(), frame["seq_no"].as_i64()),
            (Some("to alice"), Some(1))
        );
    }
    let (status, _) = post(n2.api(), "/api/v1/broadcast", r#"{"content":"everyone"}"#).await;
    assert_eq!(status, 200);
    for client in [&mut phone, &mut desk, &mut bob] {
        assert_eq!(next_json(client).await["content"], "everyone");
    }
    // Group memberships live in Redis: made through n1, listed by n2, routed to n3.
    let (status, _) = support::http(
        n1.api(),
        "PUT",
        "/api/v1/groups/crew/members/bob",
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, members) = get(n2.api(), "/api/v1/groups/crew/members").await;
    assert_eq!(members["members"], json!(["bob"]), "{members}");
    let (status, _) = post(
        n2.api(),
        "/api/v1/groups/crew/messages",
        r#"{"content":"crew"}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(next_json(&mut bob).await["content"], "crew");
    for (client, label) in [(&mut phone, "p1"), (&mut desk, "d1"), (&mut bob, "b1")] {
        assert_nothing_pending(client, label).await;
    }

    // Redis stops: a send that only other nodes could deliver says so.
    redis.kill();
    let (status, body) = post(
        n1.api(),
        "/api/v1/users/alice/messages",
        r#"{"content":"lost?"}"#,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    // The same with an ack: not "offline" (found by the chaos run).
    let (status, body) = post(
        n1.api(),
        "/api/v1/users/alice/messages",
        r#"{"content":"lost?","ack":{"timeout_ms":200,"retries":0}}"#,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    let (status, _) = get(n1.api(), "/ready").await;
    assert_eq!(status, 503, "a node without Redis is not ready");
    // Local delivery goes on.
    let (status, report) = post(
        n3.api(),
        "/api/v1/users/bob/messages",
        r#"{"content":"local"}"#,
    )
    .await;
    assert_eq!(
        (status, report["delivered"].as_u64()),
        (200, Some(1)),
        "{report}"
    );
    assert_eq!(next_json(&mut bob).await["content"], "local");

    // Redis comes back empty; nobody restarts a node.
    redis.restart();
    for node in [&n1, &n2, &n3] {
        node.ready().await;
    }
    wait_presence(&n1, "alice", &["n2", "n3"]).await;
    let (status, report) = post(
        n1.api(),
        "/api/v1/users/alice/messages",
        r#"{"content":"back"}"#,
    )
    .await;
    assert_eq!(
        (status, report["nodes"].as_u64()),
        (200, Some(2)),
        "{report}"
    );
    for device in [&mut phone, &mut desk] {
        assert_eq!(next_json(device).await["content"], "back");
    }
}

/// Reads frames until the connection ends, acking each message that asks for it; returns
/// the `message_id`s of the messages it saw.
async fn read_and_ack(ws: &mut Client, seen: &mut Vec<String>, until: usize) {
    while seen.iter().collect::<HashSet<_>>().len() < until {
        let Ok(frame) = tokio::time::timeout(WAIT, ws.next()).await else {
            panic!("no frame in time; seen {seen:?}");
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            Some(Ok(_)) => continue,
        };
        let frame: Value = serde_json::from_str(text.as_str()).expect("JSON frame");
        let Some(id) = frame["message_id"]
            .as_str()
            .filter(|id| id.starts_with("m-"))
        else {
            continue;
        };
        seen.push(id.to_owned());
        if frame["require_ack"] == true {
            ack(ws, id).await;
        }
    }
}

#[tokio::test]
async fn a_node_killed_mid_stream_loses_no_acknowledged_message() {
    const MESSAGES: usize = 20;
    let redis = RedisServer::start();
    let [n1, mut n2, n3] = three_nodes(&redis).await;
    let mut carol = n2.connect("carol", "c-1").await;
    wait_presence(&n1, "carol", &["n2"]).await;

    let api = n1.api();
    let sender = tokio::spawn(async move {
        let mut statuses = Vec::new();
        for i in 0..MESSAGES {
            let body = json!({
                "content": format!("message {i}"),
                "message_id": format!("m-{i}"),
                "ack": {"timeout_ms": 1000, "retries": 1},
            });
            let (status, report) =
                post(api, "/api/v1/users/carol/messages", &body.to_string()).await;
            assert_eq!(status, 200, "{report}");
            statuses.push(
                report["outcomes"][0]["status"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            );
        }
        statuses
    });

    // Carol's first node dies after she has seen a few messages.
    let mut seen = Vec::new();
    read_and_ack(&mut carol, &mut seen, 5).await;
    n2.kill();
    read_and_ack(&mut carol, &mut seen, MESSAGES).await;
    // She reconnects elsewhere and gets the rest (replayed from the shared offline store,
    // or live once her new node is in presence).
    // Her new connection may get a resend of the message in flight before anything else:
    // the sender's retry finds her on n3 as soon as she is in presence there.
    let mut again = n3.reconnect("carol", "c-2").await;
    let mut sender = sender;
    let finished = tokio::select! {
        done = &mut sender => Some(done),
        () = read_and_ack(&mut again, &mut seen, MESSAGES) => None,
    };
    let statuses = match finished {
        Some(done) => done,
        None => tokio::time::timeout(4 * WAIT, sender)
            .await
            .expect("the sender finished"),
    }
    .expect("the sender did not panic");
    // Whatever was stored offline while she was away arrives on her next connect.
    drop(again);
    let mut last = n1.reconnect("carol", "c-3").await;
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        read_and_ack(&mut last, &mut seen, MESSAGES),
    )
    .await;

    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(
        distinct.len(),
        MESSAGES,
        "every acknowledged-delivery message reached carol; statuses {statuses:?}, seen {seen:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| s == "acked" || s == "stored_offline"),
        "{statuses:?}"
    );
}
