//! The Rust client against the real server (in this process, on 127.0.0.1): identity and
//! refusals, typed messages both ways, automatic and manual acks, dedupe of resends,
//! reconnect with resume after a lost connection and across a server restart (on Redis)
//! without loss or duplicates, the reasons that stop it, and `wss://` with a private CA.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_server::{RunningServer, Server};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use wsc_client::{ClientBuilder, ClientEvent, ConnectError, Events, HubMessage, MessageType};
use wsc_config::GatewayConfig;
use wsc_hub::Hub;
use wsc_testkit::redis_server::RedisServer;
use wsc_testkit::tls::Pki;
use wsc_testkit::{WAIT, free_port, local_config};

async fn start(config: GatewayConfig) -> RunningServer {
    Server::new(config).start().await.expect("server starts")
}

fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/ws")
}

/// The next event within [`WAIT`].
async fn next(events: &mut Events) -> ClientEvent {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("an event in time")
        .expect("the client is running")
}

/// The next message within [`WAIT`], skipping other events.
async fn message(events: &mut Events) -> HubMessage {
    tokio::time::timeout(WAIT, events.next_message())
        .await
        .expect("a message in time")
        .expect("the client is running")
}

/// Messages until (and without) the first one of type `until`.
async fn messages_until(events: &mut Events, until: MessageType) -> Vec<HubMessage> {
    let mut seen = Vec::new();
    loop {
        let msg = message(events).await;
        if msg.message_type == until {
            return seen;
        }
        seen.push(msg);
    }
}

async fn send(hub: &Hub, user: &str, content: &str) {
    hub.send_to_user(user, HubMessage::text(content))
        .await
        .expect("sent");
}

#[tokio::test]
async fn a_client_connects_sends_and_receives_typed_messages() {
    let server = start(local_config()).await;
    let (client, mut events) = ClientBuilder::new(url(server.public_addr()))
        .user("alice")
        .user_type("customer")
        .client_id("alice-1")
        .connect()
        .await
        .expect("connects");
    match next(&mut events).await {
        ClientEvent::Connected {
            client_id,
            node_id,
            reconnect,
        } => {
            assert_eq!(client_id, "alice-1");
            assert_eq!(node_id, server.hub().node_id());
            assert!(!reconnect);
        }
        other => panic!("expected Connected, got {other:?}"),
    }
    assert!(client.is_connected());

    send(server.hub(), "alice", "hello").await;
    let msg = message(&mut events).await;
    assert_eq!((msg.content.as_str(), msg.seq_no), ("hello", 1));

    // Frames go out with the connection's identity stamped by the server.
    let (bob, mut bob_events) = ClientBuilder::new(url(server.public_addr()))
        .user("bob")
        .connect()
        .await
        .expect("connects");
    let mut typing = HubMessage::new(MessageType::Typing, "");
    typing.receiver = "bob".to_owned();
    client.send(&typing).await.expect("sent");
    let relayed = message(&mut bob_events).await;
    assert_eq!(relayed.message_type, MessageType::Typing);
    assert_eq!(
        (relayed.sender.as_str(), relayed.sender_type.as_str()),
        ("alice", "customer")
    );
    drop(bob);
    server.stop(WAIT).await;
}

#[tokio::test]
async fn a_refused_handshake_is_an_error_that_says_whether_to_retry() {
    let mut config = local_config();
    config.wsc.performance.max_connections_per_node = 1;
    let server = start(config).await;
    let error = ClientBuilder::new(url(server.public_addr()))
        .connect()
        .await
        .expect_err("no user id");
    match &error {
        ConnectError::Refused { status, code, .. } => {
            assert_eq!((*status, code.as_str()), (400, "missing_user_id"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!error.is_retryable());

    let _first = ClientBuilder::new(url(server.public_addr()))
        .user("a")
        .connect()
        .await
        .expect("connects");
    let full = ClientBuilder::new(url(server.public_addr()))
        .user("b")
        .connect()
        .await
        .expect_err("the node is full");
    assert!(
        matches!(&full, ConnectError::Refused { status: 503, code, .. } if code == "node_full"),
        "{full:?}"
    );
    assert!(full.is_retryable());
    server.stop(WAIT).await;
}

#[tokio::test]
async fn acks_are_automatic_and_resends_reach_the_application_once() {
    let server = start(local_config()).await;
    let hub = server.hub().clone();
    let (_auto, mut auto_events) = ClientBuilder::new(url(server.public_addr()))
        .user("carol")
        .connect()
        .await
        .expect("connects");
    let report = hub
        .send_to_user_with_ack(
            "carol",
            HubMessage::text("ack me"),
            Duration::from_secs(5),
            0,
        )
        .await
        .expect("acked");
    assert!(report.all_acked(), "{report:?}");
    assert_eq!(message(&mut auto_events).await.content, "ack me");

    // Without automatic acks the server resends the same message; it arrives once.
    let (manual, mut events) = ClientBuilder::new(url(server.public_addr()))
        .user("dave")
        .auto_ack(false)
        .connect()
        .await
        .expect("connects");
    let sending = tokio::spawn({
        let hub = hub.clone();
        async move {
            hub.send_to_user_with_ack(
                "dave",
                HubMessage::text("resent"),
                Duration::from_millis(100),
                2,
            )
            .await
        }
    });
    let first = message(&mut events).await;
    assert_eq!(first.content, "resent");
    let report = sending.await.expect("task").expect("reported");
    assert!(!report.all_acked(), "never acked: {report:?}");
    assert!(hub.stats().ack_resends >= 2, "the server resent it");
    send(&hub, "dave", "marker").await;
    assert_eq!(
        message(&mut events).await.content,
        "marker",
        "no duplicate of the resent message in between"
    );

    // A manual ack settles a delivery.
    let acked = tokio::spawn({
        let hub = hub.clone();
        async move {
            hub.send_to_user_with_ack("dave", HubMessage::text("manual"), WAIT, 0)
                .await
        }
    });
    let msg = message(&mut events).await;
    manual.ack(&msg.message_id).await.expect("ack sent");
    let report = acked.await.expect("task").expect("reported");
    assert!(report.all_acked(), "{report:?}");
    server.stop(WAIT).await;
}

/// A TCP proxy that can go down (every open connection dropped at once, new ones refused
/// by closing them) and come back: a network failure, not a close.
struct Proxy {
    addr: SocketAddr,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    down: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let links = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(AtomicBool::new(false));
        let (registry, is_down) = (links.clone(), down.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if is_down.load(Ordering::SeqCst) {
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                registry.lock().unwrap().push(link);
            }
        });
        Proxy { addr, links, down }
    }

    fn go_down(&self) {
        self.down.store(true, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn come_back(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_lost_connection_is_replaced_and_resumed_without_loss_or_duplicates() {
    let server = start(local_config()).await;
    let hub = server.hub().clone();
    let proxy = Proxy::start(server.public_addr()).await;
    let (client, mut events) = ClientBuilder::new(url(proxy.addr))
        .user("erin")
        .backoff(Duration::from_millis(20), Duration::from_millis(100))
        .connect()
        .await
        .expect("connects");
    for n in 1..=3 {
        send(&hub, "erin", &format!("m{n}")).await;
    }
    for n in 1..=3 {
        assert_eq!(message(&mut events).await.content, format!("m{n}"));
    }

    proxy.go_down();
    match next(&mut events).await {
        ClientEvent::Disconnected { code, retry_in, .. } => {
            assert_eq!(code, None, "no close frame on a network failure");
            assert!(retry_in.is_some());
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    wsc_testkit::cluster::eventually("the server lost the connection", || {
        let hub = hub.clone();
        async move { hub.connection_count() == 0 }
    })
    .await;
    // While the client is away, messages keep coming (stored offline, kept for resume).
    send(&hub, "erin", "m4").await;
    send(&hub, "erin", "m5").await;
    proxy.come_back();
    match next(&mut events).await {
        ClientEvent::Connected { reconnect, .. } => assert!(reconnect),
        other => panic!("expected the reconnect, got {other:?}"),
    }
    let mut contents: Vec<String> = messages_until(&mut events, MessageType::Recovered)
        .await
        .into_iter()
        .map(|m| m.content)
        .collect();
    send(&hub, "erin", "m6").await;
    contents.push(message(&mut events).await.content);
    assert_eq!(
        contents,
        ["m4", "m5", "m6"],
        "each missed message once, in order"
    );
    assert!(client.is_connected());
    server.stop(WAIT).await;
}

#[tokio::test]
async fn kicked_replaced_and_closed_clients_stop_for_good() {
    let server = start(local_config()).await;
    let addr = server.public_addr();
    let (_client, mut events) = ClientBuilder::new(url(addr))
        .user("kim")
        .connect()
        .await
        .expect("connects");
    server
        .hub()
        .kick_user("kim", "spam", true)
        .await
        .expect("kicked");
    assert_eq!(
        message(&mut events).await.message_type,
        MessageType::KickOut
    );
    match next(&mut events).await {
        ClientEvent::Disconnected {
            code,
            reason,
            retry_in,
        } => {
            assert_eq!(
                (code, reason.as_str(), retry_in),
                (Some(1008), "kicked: spam", None)
            );
        }
        other => panic!("expected the final Disconnected, got {other:?}"),
    }
    assert!(events.recv().await.is_none(), "the events end");

    let (client, mut events) = ClientBuilder::new(url(addr))
        .user("lee")
        .connect()
        .await
        .expect("connects");
    next(&mut events).await;
    client.close();
    match next(&mut events).await {
        ClientEvent::Disconnected { code, retry_in, .. } => {
            assert_eq!((code, retry_in), (Some(1000), None));
        }
        other => panic!("expected the final Disconnected, got {other:?}"),
    }
    assert!(
        client.send_raw("{}").await.is_err(),
        "a closed client sends nothing"
    );
    let hub = server.hub().clone();
    wsc_testkit::cluster::eventually("the server saw the close", || {
        let hub = hub.clone();
        async move { hub.connection_count() == 0 }
    })
    .await;
    server.stop(WAIT).await;
}

#[tokio::test]
async fn heartbeat_pongs_stay_inside_the_client() {
    let server = start(local_config()).await;
    let (_client, mut events) = ClientBuilder::new(url(server.public_addr()))
        .user("hal")
        .heartbeat(Duration::from_millis(20))
        .connect()
        .await
        .expect("connects");
    next(&mut events).await;
    let hub = server.hub().clone();
    wsc_testkit::cluster::eventually("several heartbeats were answered", || {
        let hub = hub.clone();
        async move { hub.stats().messages_in >= 3 }
    })
    .await;
    send(&hub, "hal", "after the pings").await;
    match next(&mut events).await {
        ClientEvent::Message(msg) => assert_eq!(msg.content, "after the pings"),
        other => panic!("expected the message, got {other:?}"),
    }
    server.stop(WAIT).await;
}

/// One node on `redis` with its history and offline store there, on `port`.
fn redis_config(redis: &RedisServer, port: u16, prefix: &str) -> GatewayConfig {
    let mut config = local_config();
    config.wsc.node_port = port;
    config.wsc.redis.enabled = true;
    config.wsc.redis.url = redis.url();
    config.wsc.distributed.enabled = true;
    config.wsc.distributed.key_prefix = prefix.to_owned();
    config.wsc.offline.store = wsc_config::OfflineStore::Redis;
    config
}

#[tokio::test]
async fn a_server_restart_is_bridged_by_reconnect_and_resume_on_redis() {
    let redis = RedisServer::start();
    let port = free_port();
    let prefix = format!("client{}:", std::process::id());
    let server = start(redis_config(&redis, port, &prefix)).await;
    let (_client, mut events) = ClientBuilder::new(format!("ws://127.0.0.1:{port}/ws"))
        .user("max")
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .connect()
        .await
        .expect("connects");
    for n in 1..=3 {
        send(server.hub(), "max", &format!("m{n}")).await;
    }
    for n in 1..=3 {
        assert_eq!(message(&mut events).await.content, format!("m{n}"));
    }
    server.stop(WAIT).await;
    match next(&mut events).await {
        ClientEvent::Disconnected { code, retry_in, .. } => {
            assert_eq!(code, Some(1001));
            assert!(retry_in.is_some(), "a stopping server is retried");
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }

    let server = start(redis_config(&redis, port, &prefix)).await;
    // Sent at once: the client may or may not be back yet. Either way each arrives once.
    send(server.hub(), "max", "m4").await;
    send(server.hub(), "max", "m5").await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match next(&mut events).await {
            ClientEvent::Message(msg) if msg.message_type == MessageType::Text => {
                seen.push((msg.content, msg.seq_no));
            }
            ClientEvent::Message(msg) if msg.message_type == MessageType::Recovered => {
                assert_eq!(msg.data_value("recovered"), Some(&json!(true)), "{msg:?}");
            }
            ClientEvent::Connected { reconnect, .. } => assert!(reconnect),
            ClientEvent::Disconnected {
                retry_in: Some(_), ..
            } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, [("m4".to_owned(), 4), ("m5".to_owned(), 5)]);
    send(server.hub(), "max", "m6").await;
    // The `recovered` frame may come after the replayed messages; no text comes twice.
    let next_text = loop {
        let msg = message(&mut events).await;
        if msg.message_type != MessageType::Recovered {
            break msg;
        }
        assert_eq!(msg.data_value("recovered"), Some(&json!(true)), "{msg:?}");
    };
    assert_eq!(next_text.content, "m6", "nothing twice before it");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn wss_with_a_private_ca() {
    let pki = Pki::new(Path::new(env!("CARGO_TARGET_TMPDIR")), "client");
    pki.issue("server");
    let server = start(pki.server_config(local_config())).await;
    let url = format!("wss://127.0.0.1:{}/ws", server.public_addr().port());
    let (_client, mut events) = ClientBuilder::new(&url)
        .user("tess")
        .root_certificates_pem(pki.ca_pem())
        .connect()
        .await
        .expect("connects over TLS");
    next(&mut events).await;
    send(server.hub(), "tess", "secret").await;
    assert_eq!(message(&mut events).await.content, "secret");

    // The web PKI does not know the test's CA.
    let error = ClientBuilder::new(&url)
        .user("tess")
        .connect()
        .await
        .expect_err("an unknown issuer");
    assert!(error.to_string().contains("certificate"), "{error}");
    server.stop(WAIT).await;
}
