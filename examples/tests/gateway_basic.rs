//! Runs the `gateway_basic` example with real WebSocket clients and checks what it sends and
//! prints.

mod common;

use std::path::Path;

use common::{Lines, assert_nothing_queued, next_json, stop, try_connect};
use tokio::sync::mpsc;

#[tokio::test]
async fn welcomes_each_user_tells_the_others_and_reports_who_is_online() {
    let (tx, rx) = mpsc::unbounded_channel();
    let gateway = examples::gateway_basic::start(Path::new(examples::CONFIG), tx)
        .await
        .expect("the example starts with its configuration");
    let mut lines = Lines::new(rx);
    let (ws, api, _) = gateway.addresses().await.expect("running");

    let first = lines.next().await;
    assert!(first.starts_with("listening:"), "{first}");
    assert!(first.contains(&format!("ws://{ws}/ws")), "{first}");
    assert!(first.contains(&format!("api=http://{api}")), "{first}");

    // The first user is welcomed; nobody else is told.
    let mut u1 = try_connect(&gateway, "user_id=u1", &[]).await.unwrap();
    let welcome = next_json(&mut u1).await;
    assert_eq!(welcome["message_type"], "welcome", "{welcome}");
    assert_eq!(welcome["content"], "welcome, u1");
    assert_eq!(welcome["receiver"], "u1");
    assert_eq!(lines.next().await, "welcomed u1 on 1 connection(s)");
    assert_eq!(lines.next().await, "told 0 other connection(s)");
    assert_eq!(
        lines.next().await,
        r#"online: 1 user(s) ["u1"], 1 connection(s)"#
    );

    // The second user is welcomed and the first is told.
    let mut u2 = try_connect(&gateway, "user_id=u2", &[]).await.unwrap();
    let welcome = next_json(&mut u2).await;
    assert_eq!(welcome["message_type"], "welcome", "{welcome}");
    assert_eq!(welcome["content"], "welcome, u2");
    let joined = next_json(&mut u1).await;
    assert_eq!(joined["message_type"], "user_joined", "{joined}");
    assert_eq!(joined["content"], "u2 joined");
    assert_eq!(lines.next().await, "welcomed u2 on 1 connection(s)");
    assert_eq!(lines.next().await, "told 1 other connection(s)");
    assert_eq!(
        lines.next().await,
        r#"online: 2 user(s) ["u1", "u2"], 2 connection(s)"#
    );
    // u2 is not told about itself.
    assert_nothing_queued(&mut u2, "u2-barrier").await;
    assert_nothing_queued(&mut u1, "u1-barrier").await;

    assert!(stop(&gateway, vec![u1, u2]).await, "drained");
    assert!(!gateway.is_running());
}

#[tokio::test]
async fn a_second_connection_of_a_user_is_welcomed_on_both() {
    let (tx, rx) = mpsc::unbounded_channel();
    let gateway = examples::gateway_basic::start(Path::new(examples::CONFIG), tx)
        .await
        .unwrap();
    let mut lines = Lines::new(rx);
    lines
        .until("listening", |l| l.starts_with("listening:"))
        .await;

    let mut phone = try_connect(&gateway, "user_id=zoe&device_id=phone", &[])
        .await
        .unwrap();
    assert_eq!(next_json(&mut phone).await["content"], "welcome, zoe");
    lines
        .until_eq(r#"online: 1 user(s) ["zoe"], 1 connection(s)"#)
        .await;

    let mut laptop = try_connect(&gateway, "user_id=zoe&device_id=laptop", &[])
        .await
        .unwrap();
    assert_eq!(lines.next().await, "welcomed zoe on 2 connection(s)");
    assert_eq!(lines.next().await, "told 0 other connection(s)");
    assert_eq!(
        lines.next().await,
        r#"online: 1 user(s) ["zoe"], 2 connection(s)"#
    );
    assert_eq!(next_json(&mut laptop).await["content"], "welcome, zoe");
    assert_eq!(next_json(&mut phone).await["content"], "welcome, zoe");
    assert!(stop(&gateway, vec![phone, laptop]).await);
}
