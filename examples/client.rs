//! A Rust client of the gateway (`wsc-client`): an echo bot that connects as a user, answers
//! every `text` message it receives with the same text back to the sender, and reconnects
//! on its own (with resume) when the connection is lost. Ctrl-C stops it.
//!
//! Run a gateway (`cargo xtask demo`), then:
//! `cargo run -p examples --example client -- ws://127.0.0.1:8080/ws echo-bot`
//! and send the bot a message through the API:
//! `curl -X POST 127.0.0.1:8080/api/v1/users/echo-bot/messages -d '{"content":"hi","sender":"alice"}'`

use futures_util::StreamExt;
use wsc_client::{ClientBuilder, ClientEvent, HubMessage, MessageType};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:8080/ws".to_owned());
    let user = args.next().unwrap_or_else(|| "echo-bot".to_owned());
    let (client, mut events) = ClientBuilder::new(url)
        .user(&user)
        .user_type("agent")
        .connect()
        .await?;
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = tokio::signal::ctrl_c() => {
                client.close();
                events.next().await
            }
        };
        match event {
            Some(ClientEvent::Connected {
                client_id,
                node_id,
                reconnect,
            }) => {
                println!("connected as {user} ({client_id}) to {node_id}, reconnect: {reconnect}");
            }
            Some(ClientEvent::Message(msg)) if msg.message_type == MessageType::Text => {
                println!("{}: {}", msg.sender, msg.content);
                let mut echo = HubMessage::text(format!("echo: {}", msg.content));
                echo.receiver = msg.sender.clone();
                client.send(&echo).await?;
            }
            Some(ClientEvent::Message(msg)) => {
                println!("{}: {}", msg.message_type.as_str(), msg.content)
            }
            Some(ClientEvent::Disconnected {
                reason,
                retry_in: Some(delay),
                ..
            }) => {
                println!("lost ({reason}); reconnecting in {delay:?}");
            }
            Some(ClientEvent::Disconnected { reason, .. }) => {
                println!("stopped: {reason}");
                return Ok(());
            }
            Some(_) => {}
            None => return Ok(()),
        }
    }
}
