//! Tickets through the REST API of the binary's server: an agent connected over WebSocket
//! (user type `agent`) takes a ticket opened by the API, both sides get the notices, the
//! ticket's messages reach them, transfer and close work, the queue and the agents'
//! workloads are listed, and every refusal is a JSON error with its status.

mod support;

use serde_json::{Value, json};
use support::*;

fn desk() -> wsc_config::GatewayConfig {
    let mut config = local_config();
    config.wsc.tickets.max_tickets_per_agent = 1;
    config
}

/// The next frame's (message type, ticket id, the ticket's agent), pings skipped.
async fn notice(client: &mut Client) -> (String, String, String) {
    let frame = next_json(client).await;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        text(&frame["message_type"]),
        text(&frame["ticket_id"]),
        text(&frame["data"]["ticket"]["agent_id"]),
    )
}

fn n(kind: &str, ticket: &str, agent: &str) -> (String, String, String) {
    (kind.into(), ticket.into(), agent.into())
}

#[tokio::test]
async fn a_ticket_opened_by_the_api_goes_to_a_connected_agent_and_carries_messages() {
    let server = start(desk()).await;
    let (ws, api) = (server.public_addr(), server.api_addr());
    let mut agent = connect(ws, "user_id=ann&user_type=agent").await;
    let mut customer = connect(ws, "user_id=carl").await;
    let (status, ticket) = post(
        api,
        "/api/v1/tickets",
        r#"{"customer_id":"carl","ticket_id":"t1"}"#,
    )
    .await;
    assert_eq!(status, 200, "{ticket}");
    assert_eq!(
        (
            &ticket["state"],
            &ticket["agent_id"],
            &ticket["customer_id"]
        ),
        (&json!("assigned"), &json!("ann"), &json!("carl"))
    );
    assert_eq!(
        notice(&mut customer).await,
        n("ticket_created", "t1", "ann")
    );
    assert_eq!(
        notice(&mut customer).await,
        n("ticket_assigned", "t1", "ann")
    );
    assert_eq!(notice(&mut agent).await, n("ticket_assigned", "t1", "ann"));

    let (status, report) = post(
        api,
        "/api/v1/tickets/t1/messages",
        r#"{"content":"hi both"}"#,
    )
    .await;
    assert_eq!((status, &report["delivered"]), (200, &json!(2)), "{report}");
    for client in [&mut agent, &mut customer] {
        assert_eq!(next_json(client).await["content"], "hi both");
    }

    // Capacity 1: the next ticket waits.
    let (_, queued) = post(
        api,
        "/api/v1/tickets",
        r#"{"customer_id":"dina","ticket_id":"t2","vip":true}"#,
    )
    .await;
    assert_eq!(queued["state"], "queued");
    let (status, queue) = get(api, "/api/v1/tickets/queue").await;
    assert_eq!((status, &queue["total"]), (200, &json!(1)), "{queue}");
    assert_eq!(queue["tickets"][0]["ticket_id"], "t2");
    let (_, agents) = get(api, "/api/v1/agents").await;
    assert_eq!(
        agents,
        json!({"agents": [{"agent_id": "ann", "load": 1, "capacity": 1, "available": true, "skills": []}]})
    );

    let (status, closed) = post(api, "/api/v1/tickets/t1/close", "").await;
    assert_eq!(
        (status, &closed["state"], &closed["close_reason"]),
        (200, &json!("closed"), &json!("closed"))
    );
    assert_eq!(notice(&mut customer).await, n("ticket_closed", "t1", "ann"));
    assert_eq!(notice(&mut agent).await, n("ticket_closed", "t1", "ann"));
    assert_eq!(
        notice(&mut agent).await,
        n("ticket_assigned", "t2", "ann"),
        "the freed place takes t2"
    );
    let (_, t2) = get(api, "/api/v1/tickets/t2").await;
    assert_eq!(t2["state"], "assigned");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn transfer_moves_a_ticket_and_refusals_are_json_errors() {
    let server = start(desk()).await;
    let (ws, api) = (server.public_addr(), server.api_addr());
    let _ann = connect(ws, "user_id=ann&user_type=agent").await;
    let (_, t1) = post(api, "/api/v1/tickets", r#"{"customer_id":"carl"}"#).await;
    let id = t1["ticket_id"].as_str().expect("a generated id").to_owned();
    assert_eq!(id.len(), 32, "{t1}");

    let transfer = format!("/api/v1/tickets/{id}/transfer");
    let (status, body) = post(api, &transfer, r#"{"agent_id":"ghost"}"#).await;
    assert_eq!(
        (status, body),
        (
            409,
            json!({"error": "agent_unavailable", "message": "agent ghost is not available"})
        )
    );
    let _bob = connect(ws, "user_id=bob&user_type=agent").await;
    let (status, moved) = post(api, &transfer, r#"{"agent_id":"bob"}"#).await;
    assert_eq!((status, &moved["agent_id"]), (200, &json!("bob")));
    post(
        api,
        "/api/v1/tickets",
        r#"{"customer_id":"dina","ticket_id":"t2"}"#,
    )
    .await;
    let (status, body) = post(api, "/api/v1/tickets/t2/transfer", r#"{"agent_id":"bob"}"#).await;
    assert_eq!(
        (status, body),
        (
            409,
            json!({"error": "agent_full", "message": "agent bob is full: at most 1 tickets"})
        )
    );

    let (status, body) = post(
        api,
        "/api/v1/tickets",
        r#"{"customer_id":"x","ticket_id":"t2"}"#,
    )
    .await;
    assert_eq!((status, &body["error"]), (409, &json!("ticket_exists")));
    let (status, body) = get(api, "/api/v1/tickets/nope").await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"error": "ticket_not_found", "message": "ticket nope not found"})
        )
    );
    let (status, body) = post(api, "/api/v1/tickets/nope/close", "").await;
    assert_eq!((status, &body["error"]), (404, &json!("ticket_not_found")));
    post(api, "/api/v1/tickets/t2/close", r#"{"reason":"spam"}"#).await;
    let (status, body) = post(api, "/api/v1/tickets/t2/close", "").await;
    assert_eq!((status, &body["error"]), (409, &json!("ticket_closed")));
    let (status, body) = post(api, "/api/v1/tickets", r#"{"customer_id":" "}"#).await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_target")));
    let (status, body) = post(api, "/api/v1/tickets", r#"{"customer":"x"}"#).await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_body")));
    // A department ticket waits for an agent of that department (a group of its connection).
    let (_, sales) = post(
        api,
        "/api/v1/tickets",
        r#"{"customer_id":"erin","ticket_id":"t3","department":"sales"}"#,
    )
    .await;
    assert_eq!(
        (&sales["state"], &sales["department"]),
        (&json!("queued"), &json!("sales"))
    );
    let _sue = connect(ws, "user_id=sue&user_type=agent&group_id=sales").await;
    let (_, t3) = get(api, "/api/v1/tickets/t3").await;
    assert_eq!(t3["agent_id"], "sue");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn the_ticket_routes_are_in_the_openapi_document() {
    let server = start(local_config()).await;
    let (_, doc) = get(server.api_addr(), "/api/v1/openapi.json").await;
    let paths = &doc["paths"];
    for (path, method) in [
        ("/api/v1/tickets", "post"),
        ("/api/v1/tickets/{ticket_id}", "get"),
        ("/api/v1/tickets/{ticket_id}/transfer", "post"),
        ("/api/v1/tickets/{ticket_id}/close", "post"),
        ("/api/v1/tickets/queue", "get"),
        ("/api/v1/agents", "get"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path}");
    }
    server.stop(WAIT).await;
}

#[tokio::test]
async fn grpc_opens_transfers_closes_and_lists_with_the_rest_apis_codes() {
    use ::gateway_server::grpc::proto::{
        CloseTicketRequest, OpenTicketRequest, TicketDeskRequest, TicketRequest,
        TransferTicketRequest,
    };
    use tonic::Code;
    let server = start(desk()).await;
    let mut grpc = grpc(&server).await;
    let ws = server.public_addr();
    let _ann = connect(ws, "user_id=ann&user_type=agent").await;
    let parse = |text: &str| -> Value { serde_json::from_str(text).unwrap() };
    let open = |id: &str| OpenTicketRequest {
        customer_id: "carl".into(),
        ticket_id: id.into(),
        vip: false,
        department: String::new(),
    };
    let t1 = grpc.open_ticket(open("t1")).await.unwrap().into_inner();
    assert_eq!(parse(&t1.ticket_json)["agent_id"], "ann");
    let exists = grpc.open_ticket(open("t1")).await.unwrap_err();
    assert_eq!(exists.code(), Code::AlreadyExists);
    grpc.open_ticket(open("t2")).await.unwrap();
    let desk = grpc
        .ticket_desk(TicketDeskRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(parse(&desk.queue_json)[0]["ticket_id"], "t2");
    assert_eq!(parse(&desk.agents_json)[0]["load"], 1);
    let full = grpc
        .transfer_ticket(TransferTicketRequest {
            ticket_id: "t2".into(),
            agent_id: "ann".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (full.code(), full.message()),
        (
            Code::FailedPrecondition,
            "agent ann is full: at most 1 tickets"
        )
    );
    let closed = grpc
        .close_ticket(CloseTicketRequest {
            ticket_id: "t1".into(),
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(parse(&closed.ticket_json)["state"], "closed");
    let t2 = grpc
        .get_ticket(TicketRequest {
            ticket_id: "t2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        parse(&t2.ticket_json)["agent_id"],
        "ann",
        "the freed place took t2"
    );
    let missing = grpc
        .get_ticket(TicketRequest {
            ticket_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    server.stop(WAIT).await;
}
