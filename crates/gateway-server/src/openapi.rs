//! The OpenAPI 3 document of the server API, served at `/api/v1/openapi.json`.

use serde_json::{Map, Value, json};

/// Every route of the API: (method, path). The unit test below checks the document lists
/// exactly these; an integration test checks each one answers.
#[cfg(test)]
const ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/stats"),
    ("get", "/api/v1/users"),
    ("get", "/api/v1/users/{user_id}/presence"),
    ("post", "/api/v1/users/{user_id}/messages"),
    ("delete", "/api/v1/users/{user_id}/connections"),
    ("post", "/api/v1/tickets/{ticket_id}/messages"),
    ("post", "/api/v1/groups/{group_id}/messages"),
    ("post", "/api/v1/connections/{client_id}/messages"),
    ("post", "/api/v1/broadcast"),
    ("get", "/api/v1/groups/{group_id}/members"),
    ("put", "/api/v1/groups/{group_id}/members/{user_id}"),
    ("delete", "/api/v1/groups/{group_id}/members/{user_id}"),
];

fn param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description,
           "schema": {"type": "string"}})
}

fn query(name: &str, kind: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description,
           "schema": {"type": kind}})
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn error_response() -> Value {
    json!({"description": "error",
           "content": {"application/json": {"schema": schema_ref("Error")}}})
}

fn ok(schema: &str, description: &str) -> Value {
    json!({
        "200": {"description": description,
                "content": {"application/json": {"schema": schema_ref(schema)}}},
        "default": error_response()
    })
}

fn send(summary: &str, params: Vec<Value>, ack: bool) -> Value {
    let (body, response) = if ack {
        (
            "SendRequest",
            json!({"oneOf": [schema_ref("DeliveryReport"), schema_ref("AckReport")]}),
        )
    } else {
        ("BroadcastRequest", schema_ref("DeliveryReport"))
    };
    let description = if ack {
        "the delivery report, or with `ack` the acknowledgement report"
    } else {
        "the delivery report"
    };
    json!({
        "summary": summary,
        "parameters": params,
        "requestBody": {"required": true, "content": {"application/json": {"schema": schema_ref(body)}}},
        "responses": {
            "200": {"description": description,
                    "content": {"application/json": {"schema": response}}},
            "default": error_response()
        }
    })
}

/// An object schema whose listed properties are all present in every answer. Later
/// versions may add properties, so additional ones are not forbidden; the API tests check
/// that every property the server returns today is listed.
fn object(properties: Value) -> Value {
    let required: Vec<String> = properties
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    json!({"type": "object", "required": required, "properties": properties})
}

fn integer(description: &str) -> Value {
    json!({"type": "integer", "format": "int64", "minimum": 0, "description": description})
}

fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn strings(description: &str) -> Value {
    json!({"type": "array", "items": {"type": "string"}, "description": description})
}

fn counts(description: &str) -> Value {
    json!({"type": "object", "description": description,
           "additionalProperties": {"type": "integer", "format": "int64", "minimum": 0}})
}

/// The component schemas: every field the handlers in `api.rs` return.
fn schemas() -> Value {
    let mut stats = Map::new();
    stats.insert("node_id".to_owned(), string("this node's id"));
    for (name, description) in [
        ("connections", "live connections now"),
        ("users", "users with at least one live connection now"),
        ("messages_in", "data frames received from clients"),
        ("messages_out", "message frames written to clients"),
        ("bytes_in", "bytes of text frames received"),
        ("bytes_out", "bytes of message frames written"),
        (
            "messages_dropped",
            "messages not queued (queue full or closing)",
        ),
        (
            "slow_consumer_disconnects",
            "connections closed as slow consumers",
        ),
        (
            "invalid_frames",
            "client frames answered with an error frame",
        ),
        ("connections_accepted", "connections registered since start"),
        ("connections_rejected", "registrations refused since start"),
        ("connections_closed", "connections ended since start"),
        ("acks_confirmed", "acknowledged deliveries confirmed"),
        (
            "ack_failures",
            "acknowledged deliveries that finally failed",
        ),
        ("ack_resends", "resends after an ack timeout"),
        ("acks_pending", "deliveries waiting for an ack now"),
        ("offline_stored", "messages put into the offline store"),
        ("offline_replayed", "offline messages replayed"),
        ("offline_dropped", "offline messages dropped (cap or TTL)"),
        (
            "cluster_errors",
            "cluster operations that failed (Redis unreachable)",
        ),
        ("uptime_seconds", "seconds since the hub started"),
    ] {
        stats.insert(name.to_owned(), integer(description));
    }
    stats.insert(
        "messages_in_by_type".to_owned(),
        counts("valid client frames by message type"),
    );
    stats.insert(
        "messages_out_by_type".to_owned(),
        counts("deliveries of sends by message type"),
    );
    stats.insert(
        "delivery_latency".to_owned(),
        schema_ref("LatencyHistogram"),
    );
    json!({
        "Error": object(json!({"error": string("stable machine code"), "message": string("human-readable reason")})),
        "HubMessage": {"type": "object", "description": "A message; field names as in docs/protocol.md (content, message_type, data, message_id, ...).",
                       "additionalProperties": true},
        "SendRequest": {"allOf": [schema_ref("HubMessage"), {"type": "object", "properties": {
            "ack": {"type": "object", "description": "wait for the client's ack", "additionalProperties": false,
                    "properties": {"timeout_ms": {"type": "integer", "minimum": 1, "maximum": 300000},
                                   "retries": {"type": "integer", "minimum": 0}}}}}]},
        "BroadcastRequest": {"allOf": [schema_ref("HubMessage"), {"type": "object", "properties": {
            "app_id": {"type": "string"}, "namespace": {"type": "string"}, "exclude_user": {"type": "string"}}}]},
        "DeliveryReport": object(json!({
            "message_id": string("the message's id (generated when the request had none)"),
            "delivered": integer("connections whose queue took the message"),
            "nodes": integer("nodes the message was routed to"),
            "stored_offline": {"type": "boolean", "description": "whether it went to the offline store"},
            "failures": {"type": "array", "items": schema_ref("DeliveryFailure"),
                         "description": "connections that did not get it"}})),
        "DeliveryFailure": object(json!({
            "client_id": string("the connection"),
            "user_id": string("its user"),
            "reason": {"type": "string", "enum": ["queue_full", "slow_consumer_disconnected", "connection_closed"]}})),
        "AckReport": object(json!({
            "message_id": string("the id every attempt carried"),
            "outcomes": {"type": "array", "items": schema_ref("AckOutcome"),
                         "description": "one per user (user sends) or per connection (other sends)"}})),
        "AckOutcome": {"type": "object", "required": ["target", "status", "attempts"],
                       "properties": {
                           "target": string("the user id, or the client id for per-connection outcomes"),
                           "status": {"type": "string", "enum": ["acked", "stored_offline", "timed_out", "offline"]},
                           "client_id": string("the connection that acked (only with status `acked`)"),
                           "attempts": integer("deliveries attempted (first send plus resends)")}},
        "KickReport": object(json!({"kicked": integer("connections closed")})),
        "Stats": object(Value::Object(stats)),
        "LatencyHistogram": object(json!({
            "buckets": {"type": "array", "description": "cumulative `[upper bound in microseconds, batches at or under it]` pairs",
                        "items": {"type": "array", "minItems": 2, "maxItems": 2,
                                  "items": {"type": "integer", "format": "int64", "minimum": 0}}},
            "count": integer("batches measured"),
            "sum_us": integer("sum of the latencies, in microseconds")})),
        "Users": object(json!({
            "total": integer("online users"), "offset": integer("skipped"), "limit": integer("page size"),
            "users": strings("the page of user ids")})),
        "Presence": object(json!({
            "user_id": string("the user"),
            "online": {"type": "boolean"},
            "connections": {"type": "array", "items": schema_ref("Connection")},
            "nodes": strings("nodes serving the user's connections")})),
        "Connection": object(json!({
            "connection_id": integer("process-local id"),
            "client_id": string("client id (unique per connection)"),
            "user_id": string("user id"),
            "user_type": string("user type"),
            "device_id": string("device id"),
            "app_id": string("app scope"),
            "namespace": string("namespace scope"),
            "ticket_ids": strings("tickets bound at connect"),
            "group_ids": strings("groups joined at connect"),
            "node_id": string("the node serving it"),
            "connected_at": {"type": "string", "format": "date-time"},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}}})),
        "Members": object(json!({
            "group_id": string("the group"), "total": integer("members"), "members": strings("member user ids")})),
        "MemberAdded": object(json!({
            "group_id": string("the group"), "user_id": string("the user"),
            "member": {"type": "boolean", "enum": [true]},
            "added": {"type": "boolean", "description": "false when the user was a member already"}})),
        "MemberRemoved": object(json!({
            "group_id": string("the group"), "user_id": string("the user"),
            "member": {"type": "boolean", "enum": [false]},
            "removed": {"type": "boolean", "description": "false when the user was not a member"}})),
        "Health": object(json!({"status": {"type": "string", "enum": ["ok"]}})),
        "Ready": object(json!({
            "status": {"type": "string", "enum": ["ready", "not_ready"]},
            "checks": {"type": "object", "description": "`ok`, or why a component is not ready, by component (`hub`, and `redis` when enabled)",
                       "additionalProperties": {"type": "string"}}})),
        "OpenApi": {"type": "object", "description": "this document", "additionalProperties": true}
    })
}

/// The OpenAPI document.
pub(crate) fn document() -> Value {
    let user = param("user_id", "user id");
    let group = param("group_id", "group id");
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "wsc-gateway server API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Push messages to WebSocket clients and query presence. When API keys are configured, send `Authorization: Bearer <key>`. Every error is JSON `{\"error\", \"message\"}`."
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas()
        },
        "security": [{"apiKey": []}],
        "paths": {
            "/health": {"get": {"summary": "liveness", "security": [], "responses": ok("Health", "alive")}},
            "/ready": {"get": {"summary": "readiness with component checks", "security": [], "responses": {
                "200": {"description": "ready", "content": {"application/json": {"schema": schema_ref("Ready")}}},
                "503": {"description": "not ready", "content": {"application/json": {"schema": schema_ref("Ready")}}},
                "default": error_response()}}},
            "/api/v1/openapi.json": {"get": {"summary": "this document", "security": [], "responses": ok("OpenApi", "OpenAPI 3.0.3")}},
            "/api/v1/stats": {"get": {"summary": "hub statistics", "responses": ok("Stats", "the stats snapshot")}},
            "/api/v1/users": {"get": {"summary": "online users, paged",
                "parameters": [query("offset", "integer", "skip this many (default 0)"), query("limit", "integer", "page size, 1..1000 (default 100)")],
                "responses": ok("Users", "a page of user ids with the total")}},
            "/api/v1/users/{user_id}/presence": {"get": {"summary": "whether a user is online, its connections and nodes",
                "parameters": [user.clone()], "responses": ok("Presence", "presence")}},
            "/api/v1/users/{user_id}/messages": {"post": send("send to every connection of a user (optionally acknowledged)", vec![user.clone()], true)},
            "/api/v1/users/{user_id}/connections": {"delete": {"summary": "kick a user (all connections, close 1008)",
                "parameters": [user.clone(), query("reason", "string", "the reason sent to the client"), query("notify", "boolean", "send a kick_out frame first (default true)")],
                "responses": ok("KickReport", "how many connections were closed")}},
            "/api/v1/tickets/{ticket_id}/messages": {"post": send("send to every connection on a ticket except the sender", vec![param("ticket_id", "ticket id")], true)},
            "/api/v1/groups/{group_id}/messages": {"post": send("send to every connection of a group", vec![group.clone()], true)},
            "/api/v1/connections/{client_id}/messages": {"post": send("send to one connection", vec![param("client_id", "client id")], true)},
            "/api/v1/broadcast": {"post": send("send to every connection (optionally scoped, excluding a user)", vec![], false)},
            "/api/v1/groups/{group_id}/members": {"get": {"summary": "members of a group",
                "parameters": [group.clone()], "responses": ok("Members", "the members")}},
            "/api/v1/groups/{group_id}/members/{user_id}": {
                "put": {"summary": "add a user to a group", "parameters": [group.clone(), user.clone()], "responses": ok("MemberAdded", "membership")},
                "delete": {"summary": "remove a user from a group", "parameters": [group, user], "responses": ok("MemberRemoved", "membership")}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        let mut documented = Vec::new();
        for (path, methods) in paths {
            for method in methods.as_object().unwrap().keys() {
                documented.push((method.as_str(), path.as_str()));
            }
        }
        documented.sort();
        let mut expected = ROUTES.to_vec();
        expected.sort();
        assert_eq!(documented, expected);
    }
}
