//! The OpenAPI document: it lists exactly the routes of the spec, is valid OpenAPI 3.1, and
//! describes every field the handlers return.

mod support;

use serde_json::{Value, json};
use support::*;

// ------------------------------------------------------------------------------ 11. OpenAPI

/// The REST routes of the product spec (section 7), plus health and readiness.
const SPEC_ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/api/v1/openapi.json"),
    ("post", "/api/v1/users/{user_id}/messages"),
    ("post", "/api/v1/tickets/{ticket_id}/messages"),
    ("post", "/api/v1/groups/{group_id}/messages"),
    ("post", "/api/v1/connections/{client_id}/messages"),
    ("post", "/api/v1/broadcast"),
    ("delete", "/api/v1/users/{user_id}/connections"),
    ("get", "/api/v1/users"),
    ("get", "/api/v1/users/{user_id}/presence"),
    ("get", "/api/v1/stats"),
    ("put", "/api/v1/groups/{group_id}/members/{user_id}"),
    ("delete", "/api/v1/groups/{group_id}/members/{user_id}"),
    ("get", "/api/v1/groups/{group_id}/members"),
];

fn fill_params(path: &str) -> String {
    path.replace("{user_id}", "oa-user")
        .replace("{ticket_id}", "oa-ticket")
        .replace("{group_id}", "oa-group")
        .replace("{client_id}", "oa-client")
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let server = start(local_config()).await;
    let api = server.api_addr();
    // Targets exist, so every send has somewhere to go.
    let _ws = connect(
        server.public_addr(),
        "user_id=oa-user&client_id=oa-client&ticket_id=oa-ticket&group_id=oa-group",
    )
    .await;

    // And a ticket, so its routes answer for it.
    let (status, _) = post(
        api,
        "/api/v1/tickets",
        r#"{"customer_id":"oa-user","ticket_id":"oa-ticket"}"#,
    )
    .await;
    assert_eq!(status, 200);

    let (status, doc) = get(api, "/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string());
    let paths = doc["paths"].as_object().expect("paths");

    let mut documented = Vec::new();
    for (path, operations) in paths {
        for method in operations.as_object().expect("operations").keys() {
            documented.push((method.to_owned(), path.to_owned()));
        }
    }
    for (method, path) in SPEC_ROUTES {
        assert!(
            documented.iter().any(|(m, p)| m == method && p == path),
            "{method} {path} is not documented"
        );
    }

    for (method, path) in &documented {
        let filled = fill_params(path);
        assert!(!filled.contains('{'), "unknown path parameter in {path}");
        let body = match method.as_str() {
            "post" if path.contains("/messages") || path.ends_with("/broadcast") => {
                Some(r#"{"content":"x"}"#)
            }
            "post" | "put" => Some("{}"),
            _ => None,
        };
        let method = method.to_ascii_uppercase();
        let (status, head, text) = http_raw(api, &method, &filled, &[], body).await;
        assert!(
            status != 404 && status != 405,
            "{method} {filled} (documented as {path}) answered {status}: {head}\n{text}"
        );
        assert!(status < 500, "{method} {filled} answered {status}: {text}");
    }
    server.stop(WAIT).await;
}

/// The OpenAPI schema `schema` (resolving `$ref`s in `doc`).
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            let target = doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling {reference}"));
            resolve(doc, target)
        }
        None => schema,
    }
}

/// The alternatives a schema allows, each an object schema with its `allOf` parts merged:
/// `oneOf` gives one alternative per choice, `allOf` the merge of each combination of its
/// parts' alternatives (a flattened tagged enum inside a struct is such a combination).
fn alternatives(doc: &Value, schema: &Value) -> Vec<Value> {
    let schema = resolve(doc, schema);
    if let Some(choices) = schema["oneOf"].as_array() {
        return choices
            .iter()
            .flat_map(|choice| alternatives(doc, choice))
            .collect();
    }
    let Some(parts) = schema["allOf"].as_array() else {
        return vec![schema.clone()];
    };
    let mut merged = vec![json!({"type": "object", "properties": {}, "required": []})];
    for part in parts {
        let mut next = Vec::new();
        for choice in alternatives(doc, part) {
            for base in &merged {
                let mut combined = base.clone();
                for (name, property) in choice["properties"].as_object().into_iter().flatten() {
                    combined["properties"][name] = property.clone();
                }
                for required in choice["required"].as_array().into_iter().flatten() {
                    combined["required"]
                        .as_array_mut()
                        .unwrap()
                        .push(required.clone());
                }
                next.push(combined);
            }
        }
        merged = next;
    }
    merged
}

/// Every problem of `value` against `schema`: keys the schema does not list, required keys
/// that are missing, and values of another type. Stricter than JSON Schema on purpose: a key
/// of an object with listed properties is documented only if it is one of them or the schema
/// describes its map values; an object schema with neither is free-form.
fn undocumented(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let choices = alternatives(doc, schema);
    if choices.len() > 1 {
        let fits: Vec<Vec<String>> = choices
            .iter()
            .map(|choice| undocumented(doc, choice, value, at))
            .collect();
        return match fits.iter().filter(|problems| problems.is_empty()).count() {
            1 => Vec::new(),
            0 => vec![format!("{at}: matches no alternative: {fits:?}")],
            _ => vec![format!("{at}: matches several alternatives")],
        };
    }
    let schema = &choices[0];
    let mut problems = Vec::new();
    // OpenAPI 3.1 (JSON Schema 2020-12): `type` is a name or a list of names.
    let kinds: Vec<&str> = match &schema["type"] {
        Value::String(kind) => vec![kind.as_str()],
        Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let fits = |kind: &str| match (kind, value) {
        ("object", Value::Object(_)) | ("array", Value::Array(_)) => true,
        ("string", Value::String(_)) | ("boolean", Value::Bool(_)) => true,
        ("integer", Value::Number(n)) => n.is_u64() || n.is_i64(),
        ("number", Value::Number(_)) => true,
        ("null", Value::Null) => true,
        _ => false,
    };
    if !kinds.is_empty() && !kinds.iter().any(|kind| fits(kind)) {
        problems.push(format!("{at}: {value} is not of type {kinds:?}"));
        return problems;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        problems.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    match value {
        Value::Object(fields) => {
            let properties = schema["properties"].as_object();
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().unwrap_or_default();
                if !fields.contains_key(name) {
                    problems.push(format!("{at}: required `{name}` is missing"));
                }
            }
            let free_form = properties.is_none() && schema["additionalProperties"].is_null();
            for (key, field) in fields {
                let path = format!("{at}.{key}");
                match properties.and_then(|p| p.get(key)) {
                    Some(property) => problems.extend(undocumented(doc, property, field, &path)),
                    None if free_form => {}
                    None => match &schema["additionalProperties"] {
                        Value::Bool(true) => {}
                        additional @ Value::Object(_) => {
                            problems.extend(undocumented(doc, additional, field, &path));
                        }
                        _ => problems.push(format!("{path}: not in the schema")),
                    },
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                problems.extend(undocumented(
                    doc,
                    &schema["items"],
                    item,
                    &format!("{at}[{index}]"),
                ));
            }
        }
        _ => {}
    }
    problems
}

/// Checks a real answer against the documented 200 response of `method path`.
fn check_documented(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let operation = &doc["paths"][path][method];
    let response = match &operation["responses"][status.to_string()] {
        Value::Null => &operation["responses"]["default"],
        response => response,
    };
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "{method} {path}: no schema for status {status}"
    );
    let problems = undocumented(doc, schema, body, "$");
    assert!(
        problems.is_empty(),
        "{method} {path} returned fields the OpenAPI document does not describe:\n{}\n{body}",
        problems.join("\n")
    );
}

#[tokio::test]
async fn the_openapi_document_is_valid_openapi_3_1() {
    let server = start(local_config()).await;
    let (status, doc) = get(server.api_addr(), "/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    if let Ok(path) = std::env::var("WSC_DUMP_OPENAPI") {
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    }
    // The 3.1 object model, read by an OpenAPI 3.1 parser: a malformed document fails here.
    let parsed = oas3::from_json(doc.to_string())
        .unwrap_or_else(|e| panic!("not an OpenAPI 3.1 document: {e}"));
    assert_eq!(parsed.openapi, "3.1.0");
    // Every `$ref` points into the document.
    fn refs(doc: &Value, value: &Value, dangling: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref")
                    && doc.pointer(target.trim_start_matches('#')).is_none()
                {
                    dangling.push(target.clone());
                }
                map.values().for_each(|child| refs(doc, child, dangling));
            }
            Value::Array(items) => items.iter().for_each(|item| refs(doc, item, dangling)),
            _ => {}
        }
    }
    let mut dangling = Vec::new();
    refs(&doc, &doc, &mut dangling);
    assert!(dangling.is_empty(), "dangling $refs: {dangling:?}");
    // The API routes need the key; health, readiness and the document do not.
    assert_eq!(doc["security"], json!([{"apiKey": []}]));
    assert_eq!(
        doc["components"]["securitySchemes"]["apiKey"]["scheme"],
        "bearer"
    );
    for open in ["/health", "/ready", "/api/v1/openapi.json"] {
        assert_eq!(doc["paths"][open]["get"]["security"], json!([{}]), "{open}");
    }
    server.stop(WAIT).await;
}

#[tokio::test]
async fn every_response_field_is_in_the_openapi_document() {
    let server = start(local_config()).await;
    let (ws_addr, api) = (server.public_addr(), server.api_addr());
    let (_, doc) = get(api, "/api/v1/openapi.json").await;
    let mut ws = connect(
        ws_addr,
        "user_id=doc-user&client_id=doc-client&ticket_id=doc-ticket&group_id=doc-group&app_id=a&namespace=n",
    )
    .await;
    let _other = connect(ws_addr, "user_id=doc-other&ticket_id=doc-ticket").await;
    let mut checked = Vec::new();
    let mut check = |method: &str, path: &str, status: u16, body: &Value| {
        check_documented(&doc, method, path, status, body);
        checked.push((method.to_owned(), path.to_owned()));
    };

    for (path, real) in [
        ("/health", "/health".to_owned()),
        ("/ready", "/ready".to_owned()),
        ("/api/v1/openapi.json", "/api/v1/openapi.json".to_owned()),
        ("/api/v1/users", "/api/v1/users?limit=10".to_owned()),
        (
            "/api/v1/users/{user_id}/presence",
            "/api/v1/users/doc-user/presence".to_owned(),
        ),
        (
            "/api/v1/groups/{group_id}/members",
            "/api/v1/groups/doc-group/members".to_owned(),
        ),
    ] {
        let (status, body) = get(api, &real).await;
        assert_eq!(status, 200, "{real}: {body}");
        check("get", path, status, &body);
    }

    // Plain sends: delivery reports.
    for (path, real) in [
        (
            "/api/v1/users/{user_id}/messages",
            "/api/v1/users/doc-user/messages",
        ),
        (
            "/api/v1/tickets/{ticket_id}/messages",
            "/api/v1/tickets/doc-ticket/messages",
        ),
        (
            "/api/v1/groups/{group_id}/messages",
            "/api/v1/groups/doc-group/messages",
        ),
        (
            "/api/v1/connections/{client_id}/messages",
            "/api/v1/connections/doc-client/messages",
        ),
        ("/api/v1/broadcast", "/api/v1/broadcast"),
    ] {
        let body = post_ok(api, real, r#"{"content":"doc","message_type":"notice"}"#).await;
        check("post", path, 200, &body);
        next_json(&mut ws).await;
    }
    // An offline user: stored offline.
    let body = post_ok(
        api,
        "/api/v1/users/nobody-here/messages",
        r#"{"content":"x"}"#,
    )
    .await;
    check("post", "/api/v1/users/{user_id}/messages", 200, &body);

    // An acknowledged send: the ack report, with an acked outcome (it carries `client_id`).
    let request = spawn_post(
        api,
        "/api/v1/users/doc-user/messages",
        json!({"content": "ack", "ack": {"timeout_ms": 5000}}),
    );
    let message = next_json(&mut ws).await;
    ack(&mut ws, message["message_id"].as_str().unwrap()).await;
    let (status, report) = joined(request).await;
    assert_eq!(status, 200, "{report}");
    check("post", "/api/v1/users/{user_id}/messages", 200, &report);
    // And one that times out into the offline store.
    let (status, report) = post(
        api,
        "/api/v1/users/nobody-here/messages",
        r#"{"content":"x","ack":{"timeout_ms":50,"retries":0}}"#,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    check("post", "/api/v1/users/{user_id}/messages", 200, &report);

    // Stats after traffic, so the by-type maps and the latency buckets are filled.
    let (status, stats) = get(api, "/api/v1/stats").await;
    assert_eq!(status, 200);
    assert!(
        !stats["messages_out_by_type"]
            .as_object()
            .unwrap()
            .is_empty(),
        "{stats}"
    );
    check("get", "/api/v1/stats", status, &stats);

    for (method, path, real) in [
        (
            "put",
            "/api/v1/groups/{group_id}/members/{user_id}",
            "/api/v1/groups/doc-group/members/zed",
        ),
        (
            "delete",
            "/api/v1/groups/{group_id}/members/{user_id}",
            "/api/v1/groups/doc-group/members/zed",
        ),
        (
            "delete",
            "/api/v1/users/{user_id}/connections",
            "/api/v1/users/doc-other/connections",
        ),
    ] {
        let (status, body) = http(api, &method.to_ascii_uppercase(), real, &[], None).await;
        assert_eq!(status, 200, "{real}: {body}");
        check(method, path, status, &body);
    }

    // Groups: a user's groups, then a disband.
    for (method, path, real) in [
        (
            "get",
            "/api/v1/users/{user_id}/groups",
            "/api/v1/users/doc-user/groups",
        ),
        (
            "delete",
            "/api/v1/groups/{group_id}",
            "/api/v1/groups/doc-group",
        ),
    ] {
        let (status, body) = http(api, &method.to_ascii_uppercase(), real, &[], None).await;
        assert_eq!(status, 200, "{real}: {body}");
        check(method, path, status, &body);
    }

    // Tickets: one queued for a customer who is away, taken by an agent who connects, moved
    // to the same agent (a no-op) and closed.
    let (status, body) = post(
        api,
        "/api/v1/tickets",
        r#"{"customer_id":"doc-away","ticket_id":"doc-t","vip":true}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    check("post", "/api/v1/tickets", status, &body);
    let (status, body) = get(api, "/api/v1/tickets/queue").await;
    assert_eq!(body["total"], 1, "{body}");
    check("get", "/api/v1/tickets/queue", status, &body);
    let _agent = connect(ws_addr, "user_id=doc-agent&user_type=agent").await;
    for (method, path, real, body) in [
        ("get", "/api/v1/agents", "/api/v1/agents", None),
        (
            "get",
            "/api/v1/tickets/{ticket_id}",
            "/api/v1/tickets/doc-t",
            None,
        ),
        (
            "post",
            "/api/v1/tickets/{ticket_id}/transfer",
            "/api/v1/tickets/doc-t/transfer",
            Some(r#"{"agent_id":"doc-agent"}"#),
        ),
        (
            "post",
            "/api/v1/tickets/{ticket_id}/close",
            "/api/v1/tickets/doc-t/close",
            Some(r#"{"reason":"done"}"#),
        ),
    ] {
        let (status, answer) = http(api, &method.to_ascii_uppercase(), real, &[], body).await;
        assert_eq!(status, 200, "{real}: {answer}");
        check(method, path, status, &answer);
    }

    // Errors, with the documented error schema.
    let (status, error) = get(api, "/api/v1/users?limit=0").await;
    assert_eq!(status, 400);
    check("get", "/api/v1/users", status, &error);

    // Every documented operation was checked against a real answer.
    let mut documented = Vec::new();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    for operation in &documented {
        assert!(checked.contains(operation), "{operation:?} was not checked");
    }
    server.stop(WAIT).await;
}

/// The checker itself can fail on the 3.1 shapes the document uses (refs, nullable type
/// lists, a tagged enum flattened into a struct): a field too many, a wrong tag or a wrong
/// type is found.
#[tokio::test]
async fn the_schema_checker_finds_what_the_document_does_not_allow() {
    let server = start(local_config()).await;
    let (_, doc) = get(server.api_addr(), "/api/v1/openapi.json").await;
    let schema = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let report = json!({"message_id": "m", "delivered": 1, "nodes": 1, "stored_offline": false, "failures": []});
    assert!(undocumented(&doc, &schema("DeliveryReport"), &report, "$").is_empty());
    let mut extra = report.clone();
    extra["surprise"] = json!(1);
    assert!(!undocumented(&doc, &schema("DeliveryReport"), &extra, "$").is_empty());
    let mut wrong = report.clone();
    wrong["delivered"] = json!("one");
    assert!(!undocumented(&doc, &schema("DeliveryReport"), &wrong, "$").is_empty());

    let acked = json!({"target": "u", "status": "acked", "client_id": "c", "attempts": 1});
    assert!(undocumented(&doc, &schema("AckOutcome"), &acked, "$").is_empty());
    let timed_out = json!({"target": "u", "status": "timed_out", "attempts": 2});
    assert!(undocumented(&doc, &schema("AckOutcome"), &timed_out, "$").is_empty());
    let bad_tag = json!({"target": "u", "status": "exploded", "attempts": 2});
    assert!(!undocumented(&doc, &schema("AckOutcome"), &bad_tag, "$").is_empty());
    let stray = json!({"target": "u", "status": "timed_out", "client_id": "c", "attempts": 2});
    assert!(!undocumented(&doc, &schema("AckOutcome"), &stray, "$").is_empty());
    // A nullable field takes null and its type, nothing else.
    let message = json!({"content": "x", "data": null});
    assert!(undocumented(&doc, &schema("HubMessage"), &message, "$").is_empty());
    let message = json!({"content": "x", "data": 5});
    assert!(!undocumented(&doc, &schema("HubMessage"), &message, "$").is_empty());
    server.stop(WAIT).await;
}
