//! Serve the hub on a plain tokio-tungstenite server (no web framework).
//!
//! Run: `cargo run -p examples --example tungstenite_only` (127.0.0.1:3001, or `PORT`).
//! Connect: `ws://127.0.0.1:3001/?user_id=alice&group_id=lobby`. Every text message a client
//! sends is broadcast to the `lobby` group; send `{"message_type":"ping"}` to get a pong.

use tokio::net::TcpListener;
use wsc_hub::{Hub, HubConfig, HubMessage, IdentityParams, tungstenite};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let hub = Hub::new(HubConfig::default());
    let relay = hub.clone();
    hub.on_message_received(move |conn, msg| {
        let hub = relay.clone();
        async move {
            let echo = HubMessage {
                sender: conn.user_id().to_owned(),
                ..HubMessage::text(msg.content.clone())
            };
            hub.send_to_group("lobby", echo)
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        }
    });
    hub.on_client_disconnect(|conn, reason| {
        println!("{} left: {}", conn.user_id(), reason.close_text());
    });
    hub.start();

    let port = std::env::var("PORT").unwrap_or_else(|_| "3001".to_owned());
    let listener = TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!(
        "tungstenite_only on ws://{}/?user_id=alice&group_id=lobby",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let hub = hub.clone();
        tokio::spawn(async move {
            let params = IdentityParams::default();
            match tungstenite::accept_with_identity(stream, &params, &hub.config()).await {
                Ok((ws, identity)) => {
                    if let Err(e) = tungstenite::accept(&hub, identity, ws).await {
                        println!("refused: {e}");
                    }
                }
                Err(e) => println!("handshake failed: {e}"),
            }
        });
    }
}
