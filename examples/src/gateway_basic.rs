//! The seed's basic usage: a gateway built from a configuration file that greets every user
//! who connects, tells everyone else, and reports who is online and the stats.

use std::path::Path;

use gateway::{Gateway, GatewayError};
use tokio::sync::mpsc;
use wsc_hub::{BroadcastOptions, HubMessage, MessageType};

/// Builds the gateway from `config_path` and starts it. Every line the example prints is
/// also sent on `lines`.
pub async fn start(
    config_path: &Path,
    lines: mpsc::UnboundedSender<String>,
) -> Result<Gateway, GatewayError> {
    let gateway = Gateway::builder()
        .config_path(config_path)
        .build_and_start()
        .await?;
    if let Some((ws, api, grpc)) = gateway.addresses().await {
        let _ = lines.send(format!(
            "listening: ws://{ws}/ws?user_id=<id> api=http://{api} grpc={grpc:?}"
        ));
    }
    let greeter = gateway.clone();
    gateway.on_websocket_event(gateway::events::CLIENT_CONNECTED, move |event| {
        let (gateway, user, lines) = (greeter.clone(), event.user_id.clone(), lines.clone());
        tokio::spawn(async move { greet(&gateway, &user, &lines).await });
    });
    Ok(gateway)
}

/// Welcomes `user`, tells the others, and prints the online users and the stats.
async fn greet(gateway: &Gateway, user: &str, lines: &mpsc::UnboundedSender<String>) {
    let welcome = HubMessage::new(MessageType::Welcome, format!("welcome, {user}"));
    if let Ok(report) = gateway.send_to_websocket_user(user, welcome).await {
        let _ = lines.send(format!(
            "welcomed {user} on {} connection(s)",
            report.delivered
        ));
    }
    let joined = HubMessage::new(MessageType::UserJoined, format!("{user} joined"));
    let everyone_else = BroadcastOptions::excluding(user);
    if let Ok(report) = gateway
        .broadcast_websocket_message_with(joined, everyone_else)
        .await
    {
        let _ = lines.send(format!("told {} other connection(s)", report.delivered));
    }
    if let (Ok(users), Ok(stats)) = (
        gateway.get_websocket_online_users().await,
        gateway.get_websocket_stats(),
    ) {
        let _ = lines.send(format!(
            "online: {} user(s) {:?}, {} connection(s)",
            gateway.get_websocket_online_user_count().await.unwrap_or(0),
            users,
            stats.connections
        ));
    }
}
