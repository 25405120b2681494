//! Attacks on who a client is and whom it may reach: oversized tokens, forged sender fields,
//! relays to users the sender may not address.

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use super::{Attack, Outcome, Target, expect};

/// The server's token secret in these attacks; the attacker signs with another one.
const SECRET: &str = "abuse-suite-secret-0123456789abcdef";

pub(super) fn attacks() -> Vec<Attack> {
    const AUTH: &[(&str, &str)] = &[
        ("GATEWAY__WSC__SECURITY__ENABLE_AUTH", "true"),
        ("GATEWAY__WSC__SECURITY__TOKEN__SECRET", SECRET),
    ];
    vec![
        Attack {
            name: "token_with_1mb_claim",
            expected: "431 before the token is read",
            limit: "the request head limit (64 KiB)",
            settings: AUTH,
            run: |t| Box::pin(big_token(t, 1 << 20, 431)),
        },
        Attack {
            name: "token_with_40kb_claim",
            expected: "401 `invalid_token` (the signature is checked first)",
            limit: "token verification (`wsc.security.enable_auth`)",
            settings: AUTH,
            run: |t| Box::pin(big_token(t, 40 << 10, 401)),
        },
        Attack {
            name: "spoofed_sender_fields",
            expected: "the receiver sees the sender's real identity",
            limit: "the hub stamps `sender`, `sender_type`, `sender_client`, scope",
            settings: &[],
            run: |t| Box::pin(spoofed_sender(t)),
        },
        Attack {
            name: "relay_to_a_user_not_allowed",
            expected: "error frame `rejected`; the user receives nothing",
            limit: "`wsc.relay` (customers may not message users directly)",
            settings: &[("GATEWAY__WSC__RELAY__ENABLED", "true")],
            run: |t| Box::pin(relay_not_allowed(t)),
        },
    ]
}

async fn big_token(target: Target, claim_bytes: usize, want: u16) -> Outcome {
    let claims = json!({
        "sub": "mallory",
        "exp": 4_102_444_800u64,
        "pad": "a".repeat(claim_bytes),
    });
    let token = jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(b"not the server's secret"),
    )
    .map_err(|e| e.to_string())?;
    let header = format!("authorization: Bearer {token}\r\n");
    let (status, _) = crate::raw::upgrade_status(target.public, "/ws", &header).await?;
    expect("the status", status, want)?;
    Ok(format!("{status} for a {} KB token", token.len() / 1000))
}

/// Connects `query` with a real WebSocket client.
async fn client(target: Target, query: &str) -> Result<wsc_testkit::Client, String> {
    wsc_testkit::ws::try_connect(&target.ws_url(query), &[])
        .await
        .map_err(|e| format!("{query}: {e}"))
}

async fn spoofed_sender(target: Target) -> Outcome {
    let mut alice = client(target, "user_id=alice&user_type=customer").await?;
    let mut bob = client(target, "user_id=bob&user_type=agent").await?;
    let forged = json!({
        "id": "t1", "message_type": "typing", "receiver": "bob",
        "sender": "mallory", "sender_type": "admin", "sender_client": "someone-else",
        "app_id": "other", "seq_no": 99,
    });
    wsc_testkit::ws::send_json(&mut alice, &forged).await;
    let got: Value = wsc_testkit::ws::next_json(&mut bob).await;
    expect("message_type", got["message_type"].as_str(), Some("typing"))?;
    expect("sender", got["sender"].as_str(), Some("alice"))?;
    expect("sender_type", got["sender_type"].as_str(), Some("customer"))?;
    if got["sender_client"] == "someone-else" || got["app_id"] == "other" || got["seq_no"] == 99 {
        return Err(format!("a forged field passed: {got}"));
    }
    Ok("delivered as `alice`/`customer`; forged sender, client, scope and seq_no replaced".into())
}

async fn relay_not_allowed(target: Target) -> Outcome {
    let mut alice = client(target, "user_id=alice&user_type=customer").await?;
    let mut bob = client(target, "user_id=bob&user_type=customer").await?;
    let text = json!({"id": "m1", "message_type": "text", "receiver": "bob", "content": "hi"});
    wsc_testkit::ws::send_json(&mut alice, &text).await;
    let answer = wsc_testkit::ws::next_json(&mut alice).await;
    expect(
        "the answer's type",
        answer["message_type"].as_str(),
        Some("error"),
    )?;
    expect(
        "the error code",
        answer["data"]["code"].as_str(),
        Some("rejected"),
    )?;
    // Bob's next frame is the answer to his own ping: nothing reached him before it.
    wsc_testkit::ws::assert_nothing_queued(&mut bob, "barrier").await;
    Ok("error frame `rejected`; nothing reached the receiver".into())
}
