//! The OpenAPI 3 document of the server API, served at `/api/v1/openapi.json`.

use serde_json::{Value, json};

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

fn ok(schema: &str, description: &str) -> Value {
    json!({
        "200": {"description": description,
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}},
        "default": {"description": "error",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    })
}

fn send(summary: &str, params: Vec<Value>, ack: bool) -> Value {
    let body = if ack {
        "SendRequest"
    } else {
        "BroadcastRequest"
    };
    json!({
        "summary": summary,
        "parameters": params,
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}},
        "responses": {
            "200": {"description": "the delivery report, or with `ack` the acknowledgement report",
                    "content": {"application/json": {"schema": {"oneOf": [
                        {"$ref": "#/components/schemas/DeliveryReport"},
                        {"$ref": "#/components/schemas/AckReport"}]}}}},
            "default": {"description": "error",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        }
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
            "description": "Push messages to WebSocket clients and query presence. When API keys are configured, send `Authorization: Bearer <key>`."
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "message"],
                          "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
                "HubMessage": {"type": "object", "description": "A message; field names as in docs/protocol.md (content, message_type, data, message_id, ...).",
                               "additionalProperties": true},
                "SendRequest": {"allOf": [{"$ref": "#/components/schemas/HubMessage"}, {"type": "object", "properties": {
                    "ack": {"type": "object", "description": "wait for the client's ack",
                            "properties": {"timeout_ms": {"type": "integer"}, "retries": {"type": "integer"}}}}}]},
                "BroadcastRequest": {"allOf": [{"$ref": "#/components/schemas/HubMessage"}, {"type": "object", "properties": {
                    "app_id": {"type": "string"}, "namespace": {"type": "string"}, "exclude_user": {"type": "string"}}}]},
                "DeliveryReport": {"type": "object", "properties": {
                    "message_id": {"type": "string"}, "delivered": {"type": "integer"}, "nodes": {"type": "integer"},
                    "stored_offline": {"type": "boolean"}, "failures": {"type": "array", "items": {"type": "object"}}}},
                "AckReport": {"type": "object", "properties": {
                    "message_id": {"type": "string"},
                    "outcomes": {"type": "array", "items": {"type": "object", "properties": {
                        "target": {"type": "string"},
                        "status": {"type": "string", "enum": ["acked", "stored_offline", "timed_out", "offline"]},
                        "client_id": {"type": "string"}, "attempts": {"type": "integer"}}}}}},
                "KickReport": {"type": "object", "properties": {"kicked": {"type": "integer"}}},
                "Stats": {"type": "object", "additionalProperties": {"type": ["integer", "string"]}},
                "Users": {"type": "object", "properties": {"total": {"type": "integer"}, "offset": {"type": "integer"},
                          "limit": {"type": "integer"}, "users": {"type": "array", "items": {"type": "string"}}}},
                "Presence": {"type": "object", "properties": {"user_id": {"type": "string"}, "online": {"type": "boolean"},
                             "connections": {"type": "array", "items": {"type": "object"}},
                             "nodes": {"type": "array", "items": {"type": "string"}}}},
                "Members": {"type": "object", "properties": {"group_id": {"type": "string"}, "total": {"type": "integer"},
                            "members": {"type": "array", "items": {"type": "string"}}}},
                "Membership": {"type": "object", "properties": {"group_id": {"type": "string"}, "user_id": {"type": "string"},
                               "member": {"type": "boolean"}}},
                "Status": {"type": "object", "properties": {"status": {"type": "string"}}}
            }
        },
        "security": [{"apiKey": []}],
        "paths": {
            "/health": {"get": {"summary": "liveness", "security": [], "responses": ok("Status", "alive")}},
            "/ready": {"get": {"summary": "readiness with component checks", "security": [], "responses": ok("Status", "ready (503 when not)")}},
            "/api/v1/openapi.json": {"get": {"summary": "this document", "security": [], "responses": {"200": {"description": "OpenAPI 3"}}}},
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
                "put": {"summary": "add a user to a group", "parameters": [group.clone(), user.clone()], "responses": ok("Membership", "membership")},
                "delete": {"summary": "remove a user from a group", "parameters": [group, user], "responses": ok("Membership", "membership")}
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
