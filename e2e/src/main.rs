//! `cargo xtask e2e`: the demo page driven in headless Chromium through WebDriver
//! (chromedriver), checked in the page itself: connecting, a conversation between a visitor
//! tab and an agent tab (the server queues the visitor's ticket and gives it to the agent
//! who goes online) with typing indicators and read receipts, an admin broadcast and
//! the live stats, reconnect with resume after the server restarts (nothing lost), a kick,
//! the SSE fallback when WebSocket is blocked, and a phone-sized screen. Screenshots go to
//! `target/e2e/`.
//!
//! ```text
//! e2e --server target/debug/gateway-server [--chromium /usr/bin/chromium]
//!     [--chromedriver /usr/bin/chromedriver] [--out target/e2e]
//! ```

mod browser;
mod processes;

use std::path::PathBuf;
use std::process::ExitCode;

use browser::Browser;
use processes::{Chromedriver, DemoServer};
use serde_json::{Value, json};

struct Args {
    server: PathBuf,
    chromium: String,
    chromedriver: String,
    out: PathBuf,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        server: PathBuf::from("target/debug/gateway-server"),
        chromium: "/usr/bin/chromium".to_owned(),
        chromedriver: "/usr/bin/chromedriver".to_owned(),
        out: PathBuf::from("target/e2e"),
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let value = given.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--server" => args.server = value.into(),
            "--chromium" => args.chromium = value,
            "--chromedriver" => args.chromedriver = value,
            "--out" => args.out = value.into(),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    for (what, path) in [
        ("chromium", &args.chromium),
        ("chromedriver", &args.chromedriver),
    ] {
        if !std::path::Path::new(path).exists() {
            return Err(format!(
                "{what} is not at {path}: install it with `apt-get install -y chromium chromium-driver`"
            ));
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("e2e: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args).await {
        Ok(()) => {
            println!(
                "e2e: every step passed; screenshots in {}",
                args.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("e2e: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(&args.out);
    let mut server = DemoServer::start(&args.server)?;
    let driver = Chromedriver::start(&args.chromedriver)?;
    let mut browser = Browser::open(&driver.url(), &args.chromium, args.out.clone()).await?;
    let result = scenario(&mut browser, &mut server).await;
    if result.is_err() {
        // The state of the page when a step failed, for the log reader.
        let _ = browser.screenshot("failure").await;
    }
    browser.close().await;
    result
}

/// Prints the step, so a failure says where it happened.
fn step(name: &str) {
    println!("e2e: {name}");
}

/// The page's state attribute of a status element.
fn state_of(panel: &str) -> String {
    format!("return document.querySelector('#{panel}-status')?.dataset.state ?? null;")
}

async fn connected(browser: &Browser, panel: &str, transport: &str) -> Result<(), String> {
    let script = format!(
        "const s = document.querySelector('#{panel}-status'); \
         return s ? [s.dataset.state, s.dataset.transport] : null;"
    );
    browser
        .wait_for(
            &format!("the {panel} is connected over {transport}"),
            &script,
            |v| v == &json!(["connected", transport]),
        )
        .await
        .map(drop)
}

/// The last message of the other side in a conversation log.
async fn theirs(browser: &Browser, panel: &str, text: &str) -> Result<(), String> {
    let selector = format!("#{panel}-log .msg.theirs .text");
    browser
        .wait_last_text(&selector, |t| t == text)
        .await
        .map(drop)
}

async fn send(browser: &Browser, panel: &str, text: &str) -> Result<(), String> {
    browser.type_into(&format!("#{panel}-input"), text).await?;
    browser.click(&format!("#{panel}-send")).await
}

async fn scenario(browser: &mut Browser, server: &mut DemoServer) -> Result<(), String> {
    let page = server.page();

    step("a visitor opens a conversation");
    let visitor = browser.first_tab(&format!("{page}#visitor")).await?;
    browser.type_into("#visitor-name", "Vera").await?;
    browser.click("#visitor-start").await?;
    connected(browser, "visitor", "websocket").await?;
    browser.screenshot("visitor-connected").await?;

    let ticket = browser
        .wait_for(
            "the visitor's page names its ticket",
            "return document.querySelector('#visitor-log')?.dataset.ticketId ?? null;",
            Value::is_string,
        )
        .await?;
    let ticket = ticket.as_str().unwrap_or_default().to_owned();
    browser
        .wait_any_text("#visitor-log .system", "Waiting for an agent")
        .await?;

    step("an agent goes online in another tab and the server gives it the ticket");
    let agent = browser.new_tab(&format!("{page}#agent")).await?;
    browser.type_into("#agent-name", "Ann").await?;
    browser.click("#agent-start").await?;
    connected(browser, "agent", "websocket").await?;
    browser
        .wait_for(
            "the ticket is among the agent's tickets",
            &format!(
                "return !!document.querySelector(\"#agent-tickets li[data-ticket-id='{ticket}']\");"
            ),
            |v| v == &json!(true),
        )
        .await?;
    browser
        .wait_text("#agent-conversation", |t| t.contains(&ticket))
        .await?;
    browser.on(&visitor).await?;
    browser
        .wait_any_text("#visitor-log .system", "ann joined")
        .await?;

    step("agent -> visitor, with a read receipt");
    browser.on(&agent).await?;
    send(browser, "agent", "Hello Vera, how can I help?").await?;
    browser.on(&visitor).await?;
    theirs(browser, "visitor", "Hello Vera, how can I help?").await?;
    browser.on(&agent).await?;
    browser
        .wait_last_text("#agent-log .msg.mine .receipt", |t| t == "read")
        .await?;

    step("visitor typing, then visitor -> agent");
    browser.on(&visitor).await?;
    browser
        .type_into("#visitor-input", "My order has not arrived")
        .await?;
    browser.on(&agent).await?;
    browser
        .wait_for(
            "the agent sees the visitor typing",
            "const t = document.querySelector('#agent-typing'); return !!t && !t.hidden;",
            |v| v == &json!(true),
        )
        .await?;
    browser.on(&visitor).await?;
    browser.click("#visitor-send").await?;
    browser.on(&agent).await?;
    theirs(browser, "agent", "My order has not arrived").await?;
    browser.screenshot("agent-chat").await?;
    browser.on(&visitor).await?;
    browser
        .wait_last_text("#visitor-log .msg.mine .receipt", |t| t == "read")
        .await?;
    browser.screenshot("visitor-chat").await?;

    step("the admin's live panel and a broadcast");
    let admin = browser.new_tab(&format!("{page}#admin")).await?;
    browser
        .wait_text("#admin-connections", |t| {
            t.parse::<u64>().is_ok_and(|n| n >= 3)
        })
        .await?;
    let samples = "return Number(document.querySelector('#admin-chart')?.dataset.samples ?? 0);";
    browser
        .wait_for("the chart has drawn 3 samples", samples, |v| {
            v.as_u64().is_some_and(|n| n >= 3)
        })
        .await?;
    let visitor_id = browser
        .wait_for(
            "the visitor is in the online list",
            "return [...document.querySelectorAll('#admin-users li[data-user-id]')]\
               .map(li => li.dataset.userId).find(id => id.startsWith('v-')) ?? null;",
            Value::is_string,
        )
        .await?;
    let visitor_id = visitor_id.as_str().unwrap_or_default().to_owned();
    browser
        .type_into("#admin-broadcast-text", "Maintenance at 22:00")
        .await?;
    browser.click("#admin-broadcast").await?;
    browser.screenshot("admin").await?;
    browser.on(&visitor).await?;
    browser
        .wait_text("#visitor-banner", |t| t.contains("Maintenance at 22:00"))
        .await?;

    step("the server restarts: both tabs reconnect, nothing is lost");
    server.stop()?;
    browser
        .wait_for("the visitor is reconnecting", &state_of("visitor"), |v| {
            v == "reconnecting"
        })
        .await?;
    server.start_again()?;
    // Sent as soon as the server is back, whether or not the tab has reconnected yet: the
    // message is delivered live or kept offline and replayed on the reconnect.
    let body = json!({
        "message_type": "text",
        "content": "Sent during the restart",
        "ticket_id": ticket,
        "sender": "a-support",
    });
    server
        .post(&format!("/api/v1/users/{visitor_id}/messages"), &body)
        .await?;
    connected(browser, "visitor", "websocket").await?;
    theirs(browser, "visitor", "Sent during the restart").await?;
    browser.on(&agent).await?;
    connected(browser, "agent", "websocket").await?;
    // The agent's ticket connection came back too: the conversation goes on.
    send(browser, "agent", "We are back").await?;
    browser.on(&visitor).await?;
    theirs(browser, "visitor", "We are back").await?;
    let copies = browser
        .eval(
            "return [...document.querySelectorAll('#visitor-log .msg .text')]\
               .filter(e => e.textContent === 'Sent during the restart').length;",
            vec![],
        )
        .await?;
    if copies != json!(1) {
        return Err(format!("the restart message is shown {copies} times"));
    }
    browser.screenshot("after-restart").await?;

    step("the admin kicks the visitor");
    browser.on(&admin).await?;
    browser
        .click(&format!(
            "#admin-users li[data-user-id='{visitor_id}'] .kick"
        ))
        .await?;
    browser.on(&visitor).await?;
    browser
        .wait_text("#visitor-status", |t| t.starts_with("disconnected: kicked"))
        .await?;
    browser.screenshot("visitor-kicked").await?;

    step("WebSocket blocked: a visitor falls back to SSE");
    let blocked = browser.new_tab(&format!("{page}#visitor")).await?;
    // A proxy that refuses upgrades looks like this to a page: the socket errors and
    // closes before it opens.
    browser
        .eval(
            "window.WebSocket = class { \
               constructor() { this.readyState = 3; \
                 setTimeout(() => { this.onerror?.({}); this.onclose?.({ code: 1006, reason: '' }); }, 10); } \
               send() {} close() {} }; \
             window.WebSocket.OPEN = 1; return true;",
            vec![],
        )
        .await?;
    browser.type_into("#visitor-name", "Sam").await?;
    browser.click("#visitor-start").await?;
    connected(browser, "visitor", "sse").await?;
    let sse_ticket = browser
        .wait_for(
            "Sam's page names its ticket",
            "return document.querySelector('#visitor-log')?.dataset.ticketId ?? null;",
            Value::is_string,
        )
        .await?;
    let sse_ticket = sse_ticket.as_str().unwrap_or_default().to_owned();
    browser
        .wait_any_text("#visitor-log .system", "ann joined")
        .await?;
    // Ann has room for more than one ticket: Sam's joins her list while Vera's is open.
    browser.on(&agent).await?;
    browser
        .click(&format!(
            "#agent-tickets li[data-ticket-id='{sse_ticket}'] .open"
        ))
        .await?;
    browser
        .wait_text("#agent-conversation", |t| t.contains(&sse_ticket))
        .await?;
    send(browser, "agent", "Hi Sam").await?;
    browser.on(&blocked).await?;
    theirs(browser, "visitor", "Hi Sam").await?;
    send(browser, "visitor", "Hello over SSE").await?;
    browser.on(&agent).await?;
    theirs(browser, "agent", "Hello over SSE").await?;
    browser
        .wait_last_text("#agent-log .msg.mine .receipt", |t| t == "read")
        .await?;
    browser.on(&blocked).await?;
    browser.screenshot("visitor-over-sse").await?;

    step("the agent closes Sam's ticket");
    browser.on(&agent).await?;
    browser
        .click(&format!(
            "#agent-tickets li[data-ticket-id='{sse_ticket}'] .close-ticket"
        ))
        .await?;
    browser.on(&blocked).await?;
    browser
        .wait_any_text("#visitor-log .system", "The ticket was closed (solved)")
        .await?;

    step("a phone-sized screen");
    browser.resize(390, 844).await?;
    let overflow = browser
        .eval(
            "return document.documentElement.scrollWidth > window.innerWidth;",
            vec![],
        )
        .await?;
    if overflow != json!(false) {
        return Err("the page scrolls sideways on a phone-sized screen".to_owned());
    }
    browser.screenshot("phone").await?;
    Ok(())
}
