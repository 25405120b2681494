//! Redis unreachable (a closed port on loopback): connecting fails with a clear error,
//! and every operation of a backplane or store built without connecting fails quickly
//! with `Unavailable`, never hanging or panicking. These tests need no Redis at all.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use wsc_hub::{Backplane, BackplaneError, Envelope, HubMessage, OfflineStore, Route, StoreError};
use wsc_redis::{Error, RedisBackplane, RedisOfflineStore, RedisOptions};

/// How long Redis may take to answer before an operation gives up.
const BOUND: Duration = Duration::from_millis(500);
/// The most an operation may take with Redis down: the bound plus scheduling slack.
const QUICK: Duration = Duration::from_millis(1500);

/// Options pointing at a loopback port nobody listens on.
fn closed_port() -> RedisOptions {
    let port = wsc_testkit::free_port();
    RedisOptions::new(format!("redis://:hunter2@127.0.0.1:{port}/0"))
        .with_key_prefix("wsc-test:down:")
        .with_connect_timeout(BOUND)
}

/// Whether an answer is the backplane's "unavailable".
fn unavailable<T>(answer: Result<T, BackplaneError>) -> bool {
    matches!(answer, Err(BackplaneError::Unavailable(_)))
}

/// Runs `op`, failing the test if it takes longer than [`QUICK`].
async fn quickly<T>(what: &str, op: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(10), op)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"));
    assert!(
        started.elapsed() <= QUICK,
        "{what} took {:?} with Redis down",
        started.elapsed()
    );
    out
}

#[tokio::test]
async fn connecting_fails_quickly_with_the_address_and_no_password() {
    let err = quickly("connect", RedisBackplane::connect(closed_port()))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, Error::Unreachable { .. } | Error::Timeout { .. }),
        "{err:?}"
    );
    assert!(text.contains("127.0.0.1"), "{text}");
    assert!(!text.contains("hunter2"), "the password leaked: {text}");

    let err = quickly(
        "offline store connect",
        RedisOfflineStore::connect(&closed_port(), 10, Duration::from_secs(60)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::Unreachable { .. } | Error::Timeout { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn bad_options_are_refused_before_any_io() {
    assert!(matches!(
        RedisBackplane::new(RedisOptions::new("not a url")),
        Err(Error::InvalidUrl { .. })
    ));
    assert!(matches!(
        RedisBackplane::new(RedisOptions::default().with_key_prefix("")),
        Err(Error::InvalidOptions(_))
    ));
}

#[tokio::test]
async fn every_backplane_operation_fails_quickly_with_unavailable() {
    let backplane = RedisBackplane::new(closed_port()).unwrap();
    let envelope = |route| Envelope::Message {
        origin: "n1".to_owned(),
        route,
        payload: wsc_hub::codec::encode(&HubMessage::text("x")).unwrap(),
        awaits_ack: None,
        report: false,
    };

    let (inbox, _envelopes) = mpsc::channel(16);
    assert!(unavailable(
        quickly("attach", backplane.attach("n1", inbox)).await
    ));
    assert!(!backplane.stats().subscribed);
    let user = Route::new(wsc_hub::Target::User {
        user_id: "bob".to_owned(),
    });
    assert!(unavailable(
        quickly("publish to a user", backplane.publish(envelope(user))).await
    ));
    assert!(unavailable(
        quickly(
            "broadcast",
            backplane.publish(envelope(Route::new(wsc_hub::Target::Broadcast)))
        )
        .await
    ));
    assert!(unavailable(
        quickly(
            "set_user_online",
            backplane.set_user_online("n1", "bob", true)
        )
        .await
    ));
    assert!(unavailable(
        quickly("user_nodes", backplane.user_nodes("bob")).await
    ));
    assert!(unavailable(
        quickly("online_users", backplane.online_users(0, 10)).await
    ));
    assert!(unavailable(quickly("health", backplane.health()).await));
    assert!(quickly("nodes", backplane.nodes()).await.is_err());
    // Detach stops the retrying subscriber and reports that Redis could not be cleaned.
    assert!(unavailable(quickly("detach", backplane.detach("n1")).await));
    assert_eq!(backplane.node_id(), None);
}

#[tokio::test]
async fn every_store_operation_fails_quickly_with_unavailable() {
    let store = RedisOfflineStore::new(&closed_port(), 10, Duration::from_secs(60)).unwrap();
    let unavailable = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Unavailable(_)));
    let stored = quickly("store", store.store("bob", HubMessage::text("x"))).await;
    assert!(
        matches!(stored, Err(StoreError::Unavailable(_))),
        "{stored:?}"
    );
    let loaded = quickly("load", store.load("bob")).await;
    assert!(
        matches!(loaded, Err(StoreError::Unavailable(_))),
        "{loaded:?}"
    );
    assert!(unavailable(
        quickly("remove", store.remove("bob", vec!["m".to_owned()])).await
    ));
    assert_eq!(store.dropped(), 0);
}
