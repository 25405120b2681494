//! Concurrency on a multi-thread runtime: thousands of connections (real WebSocket clients,
//! and bare registrations) connecting, receiving and leaving at the same time. Every
//! message carries its intended user id, so a misrouted message is caught; every count is
//! checked exactly at the end.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use support::{Client, TestServer, config};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use wsc_hub::{
    DisconnectReason, Hub, HubMessage, Identity, MultiLoginPolicy, Outbound, RegisterError,
    Registration,
};

/// A generous per-frame timeout: thousands of tasks share two cores in a debug build.
const SLOW: Duration = Duration::from_secs(60);

fn content(user: usize, k: usize) -> String {
    format!("u{user}:{k}")
}

/// Checks that `frame` is message `k` of `user`.
fn assert_message(frame: &Value, user: usize, k: usize) {
    assert_eq!(
        frame["content"],
        content(user, k).as_str(),
        "connection of u{user} got a wrong message: {frame}"
    );
    assert_eq!(frame["receiver"], format!("u{user}").as_str(), "{frame}");
}

fn parse(frame: Outbound) -> Value {
    match frame {
        Outbound::Message(payload) => serde_json::from_str(payload.as_str()).unwrap(),
        other => panic!("expected a message, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_websocket_clients_get_exactly_their_messages() {
    const USERS: usize = 1000;
    const DEVICES: usize = 2;
    const LEAVING_USERS: usize = 200; // device 1 of users 0..200 leaves during the sends
    const K: usize = 10; // messages per user
    const SENDERS: usize = 8;

    let mut server = TestServer::start(config(|c| {
        c.max_connections = 0;
        c.max_connections_per_user = DEVICES;
    }))
    .await;
    let hub = server.hub.clone();

    // Connect everyone from many concurrent tasks.
    let gate = Arc::new(Semaphore::new(128));
    let mut connecting = JoinSet::new();
    for user in 0..USERS {
        for device in 0..DEVICES {
            let url = server.url(&format!("user_id=u{user}&client_id=u{user}-d{device}"));
            let gate = gate.clone();
            connecting.spawn(async move {
                let _permit = gate.acquire_owned().await.unwrap();
                let mut client = Client::connect(&url).await.with_timeout(SLOW);
                client.ready().await;
                (user, device, client)
            });
        }
    }
    let mut clients = Vec::with_capacity(USERS * DEVICES);
    while let Some(joined) = connecting.join_next().await {
        clients.push(joined.unwrap());
    }
    assert_eq!(hub.connection_count(), USERS * DEVICES);
    assert_eq!(hub.online_user_count(), USERS);
    assert_eq!(hub.stats().connections_accepted, (USERS * DEVICES) as u64);

    // Readers: the leaving ones take three messages and close; the others take all K, in
    // order, then prove nothing else was queued for them.
    let mut readers = JoinSet::new();
    for (user, device, mut client) in clients {
        readers.spawn(async move {
            if device == 1 && user < LEAVING_USERS {
                for k in 0..3 {
                    assert_message(&client.recv_json().await, user, k);
                }
                client.close(1000).await;
                None
            } else {
                for k in 0..K {
                    assert_message(&client.recv_json().await, user, k);
                }
                client.assert_nothing_received().await;
                Some(client)
            }
        });
    }

    // Senders: each owns a slice of the users, so each user's messages come in order.
    let mut senders = JoinSet::new();
    for sender in 0..SENDERS {
        let hub = hub.clone();
        senders.spawn(async move {
            let mut failures = 0u64;
            for k in 0..K {
                for user in (sender..USERS).step_by(SENDERS) {
                    let report = hub
                        .send_to_user(&format!("u{user}"), HubMessage::text(content(user, k)))
                        .await
                        .unwrap();
                    if user >= LEAVING_USERS {
                        assert_eq!(report.delivered, DEVICES, "u{user}: {report:?}");
                        assert!(report.failures.is_empty(), "u{user}: {report:?}");
                    } else {
                        assert!(report.delivered >= 1, "u{user}: {report:?}");
                    }
                    failures += report.failures.len() as u64;
                }
                tokio::task::yield_now().await;
            }
            failures
        });
    }
    let mut failures = 0;
    while let Some(joined) = senders.join_next().await {
        failures += joined.unwrap();
    }
    let mut staying = Vec::new();
    while let Some(joined) = readers.join_next().await {
        staying.extend(joined.unwrap());
    }
    assert_eq!(staying.len(), USERS * DEVICES - LEAVING_USERS);

    // Every leaving connection has been unregistered once its server task ended.
    server.wait_served(LEAVING_USERS).await;
    let stats = hub.stats();
    assert_eq!(hub.connection_count(), USERS * DEVICES - LEAVING_USERS);
    assert_eq!(hub.online_user_count(), USERS);
    assert_eq!(stats.connections_accepted, (USERS * DEVICES) as u64);
    assert_eq!(stats.connections_closed, LEAVING_USERS as u64);
    assert_eq!(stats.connections_rejected, 0);
    assert_eq!(stats.slow_consumer_disconnects, 0);
    assert_eq!(stats.messages_dropped, failures);

    // Everyone leaves at once.
    let mut leaving = JoinSet::new();
    for mut client in staying {
        leaving.spawn(async move { client.close(1000).await });
    }
    while let Some(joined) = leaving.join_next().await {
        joined.unwrap();
    }
    server.wait_served(USERS * DEVICES - LEAVING_USERS).await;
    let stats = hub.stats();
    assert_eq!(hub.connection_count(), 0);
    assert_eq!(hub.online_user_count(), 0);
    assert_eq!(stats.connections, 0);
    assert_eq!(stats.users, 0);
    assert_eq!(stats.connections_accepted, (USERS * DEVICES) as u64);
    assert_eq!(stats.connections_closed, (USERS * DEVICES) as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_registrations_route_exactly_while_half_leave() {
    const USERS: usize = 2500;
    const DEVICES: usize = 4;
    const K: usize = 5;
    const SENDERS: usize = 8;

    let hub = Hub::new(config(|c| {
        c.max_connections = 0;
        c.max_connections_per_user = DEVICES;
    }));
    hub.start();
    let disconnects = Arc::new(AtomicUsize::new(0));
    let lost = Arc::new(AtomicUsize::new(0));
    {
        let (disconnects, lost) = (disconnects.clone(), lost.clone());
        hub.on_client_disconnect(move |_, reason| {
            disconnects.fetch_add(1, Ordering::SeqCst);
            if matches!(reason, DisconnectReason::ConnectionLost { .. }) {
                lost.fetch_add(1, Ordering::SeqCst);
            }
        });
    }

    let mut registering = JoinSet::new();
    for user in 0..USERS {
        for device in 0..DEVICES {
            let hub = hub.clone();
            registering.spawn(async move {
                let identity =
                    Identity::new(format!("u{user}")).with_client_id(format!("u{user}-d{device}"));
                (user, device, hub.register(identity).await.unwrap())
            });
        }
    }
    let mut registrations = Vec::with_capacity(USERS * DEVICES);
    while let Some(joined) = registering.join_next().await {
        registrations.push(joined.unwrap());
    }
    let total = USERS * DEVICES;
    assert_eq!(hub.connection_count(), total);
    assert_eq!(hub.online_user_count(), USERS);
    assert_eq!(hub.stats().connections_accepted, total as u64);
    assert_eq!(hub.stats().connections_rejected, 0);

    // Devices 2 and 3 leave (drop their registration) while the sends run; devices 0 and
    // 1 receive all K messages of their user, in order, and nothing else.
    let mut tasks = JoinSet::new();
    for (user, device, mut registration) in registrations {
        tasks.spawn(async move {
            if device >= 2 {
                tokio::task::yield_now().await;
                while let Some(frame) = registration.try_recv() {
                    let frame = parse(frame);
                    let expected = format!("u{user}:");
                    assert!(
                        frame["content"].as_str().unwrap().starts_with(&expected),
                        "u{user} got {frame}"
                    );
                }
                drop(registration);
                None
            } else {
                for k in 0..K {
                    let frame = tokio::time::timeout(SLOW, registration.recv())
                        .await
                        .expect("timed out")
                        .expect("queue closed");
                    assert_message(&parse(frame), user, k);
                }
                Some(registration)
            }
        });
    }
    let mut senders = JoinSet::new();
    for sender in 0..SENDERS {
        let hub = hub.clone();
        senders.spawn(async move {
            let mut failures = 0u64;
            for k in 0..K {
                for user in (sender..USERS).step_by(SENDERS) {
                    let report = hub
                        .send_to_user(&format!("u{user}"), HubMessage::text(content(user, k)))
                        .await
                        .unwrap();
                    assert!(
                        (2..=DEVICES).contains(&report.delivered),
                        "u{user}: {report:?}"
                    );
                    failures += report.failures.len() as u64;
                }
                tokio::task::yield_now().await;
            }
            failures
        });
    }
    // A connection that leaves between a send's snapshot and its enqueue is a reported
    // failure and a counted drop, never a silent loss.
    let mut failures = 0;
    while let Some(joined) = senders.join_next().await {
        failures += joined.unwrap();
    }
    let mut remaining: Vec<Registration> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        remaining.extend(joined.unwrap());
    }
    for registration in &mut remaining {
        assert!(
            registration.try_recv().is_none(),
            "an extra frame was queued"
        );
    }

    let half = total / 2;
    assert_eq!(remaining.len(), half);
    assert_eq!(hub.connection_count(), half);
    assert_eq!(hub.online_user_count(), USERS);
    assert_eq!(hub.stats().connections_closed, half as u64);
    assert_eq!(disconnects.load(Ordering::SeqCst), half);

    drop(remaining);
    assert_eq!(hub.connection_count(), 0);
    assert_eq!(hub.online_user_count(), 0);
    let stats = hub.stats();
    assert_eq!(stats.connections_closed, total as u64);
    assert_eq!(stats.messages_dropped, failures);
    assert_eq!(disconnects.load(Ordering::SeqCst), total);
    assert_eq!(lost.load(Ordering::SeqCst), total);
}

/// Registers `n` identities for the same user concurrently and keeps every registration.
async fn register_concurrently(
    hub: &Hub,
    n: usize,
    identity: impl Fn(usize) -> Identity,
) -> Vec<Result<Registration, RegisterError>> {
    let mut set = JoinSet::new();
    for i in 0..n {
        let hub = hub.clone();
        let identity = identity(i);
        set.spawn(async move { hub.register(identity).await });
    }
    let mut results = Vec::with_capacity(n);
    while let Some(joined) = set.join_next().await {
        results.push(joined.unwrap());
    }
    results
}

fn recording_hub(hub: &Hub) -> mpsc::UnboundedReceiver<DisconnectReason> {
    let (tx, rx) = mpsc::unbounded_channel();
    hub.on_client_disconnect(move |_, reason| {
        let _ = tx.send(reason.clone());
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_same_client_id_leaves_exactly_one() {
    const N: usize = 200;
    let hub = Hub::new(config(|_| {}));
    hub.start();
    let mut reasons = recording_hub(&hub);
    let results =
        register_concurrently(&hub, N, |_| Identity::new("alice").with_client_id("same")).await;
    let registrations: Vec<Registration> = results.into_iter().map(Result::unwrap).collect();

    assert_eq!(hub.connection_count(), 1);
    let live: Vec<&Registration> = registrations
        .iter()
        .filter(|r| !r.connection().is_closing())
        .collect();
    assert_eq!(live.len(), 1, "exactly one connection survives");
    assert_eq!(
        hub.connection("same").unwrap().id(),
        live[0].connection().id()
    );
    for registration in &registrations {
        if registration.connection().is_closing() {
            assert_eq!(
                registration.connection().disconnect_reason(),
                Some(&DisconnectReason::Replaced)
            );
        }
    }

    drop(registrations);
    let mut replaced = 0;
    for _ in 0..N {
        if reasons.try_recv().unwrap() == DisconnectReason::Replaced {
            replaced += 1;
        }
    }
    assert_eq!(replaced, N - 1);
    assert!(reasons.try_recv().is_err(), "a callback ran twice");
    assert_eq!(hub.connection_count(), 0);
    assert_eq!(hub.stats().connections_closed, N as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_kick_old_leaves_exactly_one_and_notifies_the_others() {
    const N: usize = 200;
    let hub = Hub::new(config(|c| {
        c.multi_login = MultiLoginPolicy::KickOld;
        c.max_connections_per_user = 1;
    }));
    hub.start();
    let mut reasons = recording_hub(&hub);
    let results = register_concurrently(&hub, N, |i| {
        Identity::new("alice").with_client_id(format!("c{i}"))
    })
    .await;
    let mut registrations: Vec<Registration> = results.into_iter().map(Result::unwrap).collect();

    assert_eq!(hub.connection_count(), 1);
    assert_eq!(hub.user_connections("alice").unwrap().len(), 1);
    let mut live = 0;
    for registration in &mut registrations {
        if registration.connection().is_closing() {
            assert_eq!(
                registration.connection().disconnect_reason(),
                Some(&DisconnectReason::LoginElsewhere)
            );
            let notice = parse(registration.try_recv().expect("no force_offline"));
            assert_eq!(notice["message_type"], "force_offline", "{notice}");
        } else {
            live += 1;
            assert!(registration.try_recv().is_none());
        }
    }
    assert_eq!(live, 1);
    drop(registrations);
    let evicted = std::iter::from_fn(|| reasons.try_recv().ok())
        .filter(|r| *r == DisconnectReason::LoginElsewhere)
        .count();
    assert_eq!(evicted, N - 1);
    assert_eq!(hub.stats().connections_closed, N as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_kick_new_admits_exactly_one() {
    const N: usize = 200;
    let hub = Hub::new(config(|c| {
        c.multi_login = MultiLoginPolicy::KickNew;
        c.max_connections_per_user = 1;
    }));
    hub.start();
    let results = register_concurrently(&hub, N, |i| {
        Identity::new("alice").with_client_id(format!("c{i}"))
    })
    .await;
    let admitted = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(RegisterError::UserConnectionLimit { limit: 1 })))
        .count();
    assert_eq!(admitted, 1);
    assert_eq!(refused, N - 1);
    assert_eq!(hub.connection_count(), 1);
    let stats = hub.stats();
    assert_eq!(stats.connections_accepted, 1);
    assert_eq!(stats.connections_rejected, (N - 1) as u64);
}
