//! Completes the generated OpenAPI document with what every route shares,
//! so `/openapi.json` says exactly what the server does without each handler
//! repeating it (and without a list of routes: a new route gets the same).
//!
//! Applied to every operation, from what the router's layers and extractors
//! do (`super::router`, `access.rs`, `extract.rs`, `limits.rs`):
//! - path parameters carry the constraints their domain types check
//!   (`parameter_schema`); a value outside them is `400`;
//! - an operation with the `bearer` scheme can answer `401` (missing or wrong
//!   credentials), `403` (a company token elsewhere) and `429` (this address
//!   failed to authenticate too often; `Retry-After`);
//! - an operation with a JSON body can answer `400` (syntax), `413` (over
//!   the body limit), `415` (not `application/json`) and `422` (wrong shape);
//! - every operation can answer `503` (`request_timeout`, `not_ready`);
//! - every error response is the `ErrorBody` envelope as `application/json`,
//!   and every `429` documents `Retry-After`.

use serde_json::{Map, Value, json};

use super::openapi_inputs::parameter_schema;

const ERROR_REF: &str = "#/components/schemas/ErrorBody";

/// Completes `doc` (an OpenAPI 3.1 document as JSON) in place.
pub fn complete(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            if !is_method(method) {
                continue;
            }
            if let Some(operation) = operation.as_object_mut() {
                complete_operation(path, operation);
            }
        }
    }
}

fn is_method(key: &str) -> bool {
    matches!(
        key,
        "get" | "put" | "post" | "delete" | "options" | "head" | "patch" | "trace"
    )
}

fn complete_operation(path: &str, operation: &mut Map<String, Value>) {
    let mut statuses: Vec<(&str, &str)> = Vec::new();
    let mut has_params = false;
    if let Some(parameters) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    {
        for parameter in parameters.iter_mut() {
            has_params = true;
            let name = parameter["name"].as_str().unwrap_or_default().to_owned();
            let location = parameter["in"].as_str().unwrap_or_default().to_owned();
            if let Some(schema) = parameter_schema(path, &location, &name) {
                parameter["schema"] = schema;
            }
        }
    }
    if has_params {
        statuses.push((
            "400",
            "`invalid_path`, `invalid_query` or an input's own code",
        ));
    }
    let secured = operation
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
    if secured {
        statuses.push(("401", "`missing_credentials` or `invalid_credentials`"));
        statuses.push((
            "403",
            "`forbidden`: a company token outside its own company, or on an admin-only endpoint",
        ));
        statuses.push((
            "429",
            "`rate_limited`: this address failed to authenticate too often; `Retry-After` says when to try again",
        ));
    }
    let json_body = operation
        .get("requestBody")
        .and_then(|b| b.get("content"))
        .and_then(Value::as_object)
        .is_some_and(|c| c.contains_key("application/json"));
    if json_body {
        statuses.push(("400", "`invalid_json`: the body is not JSON"));
        statuses.push(("413", "`payload_too_large`: the body is over the limit"));
        statuses.push((
            "415",
            "`unsupported_media_type`: the body is not `application/json`",
        ));
        statuses.push((
            "422",
            "`invalid_body`: the JSON has the wrong shape or types",
        ));
    }
    statuses.push((
        "503",
        "`request_timeout` (the request took too long) or `not_ready` (the gateway is starting or stopping)",
    ));

    let responses = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("responses is an object");
    for (status, description) in statuses {
        responses
            .entry(status)
            .or_insert_with(|| json!({ "description": description }));
    }
    // The pairing page's routes answer people: HTML, or JSON to the page's
    // own script (`Accept: application/json`).
    let page = path.starts_with("/pair/");
    for (status, response) in responses.iter_mut() {
        let Some(response) = response.as_object_mut() else {
            continue;
        };
        if !(status.starts_with('4') || status.starts_with('5')) {
            if let Some(content) = response.get_mut("content").and_then(Value::as_object_mut) {
                if page && content.contains_key("application/json") {
                    content.insert("text/html".into(), json!({"schema": {"type": "string"}}));
                }
                for (media_type, media) in content.iter_mut() {
                    describe_non_json(media_type, media);
                }
            }
            continue;
        }
        response
            .entry("description")
            .or_insert_with(|| json!("An error"));
        let mut content = json!({ "application/json": { "schema": { "$ref": ERROR_REF } } });
        if page {
            content["text/html"] = json!({"schema": {"type": "string"}});
        }
        response.insert("content".into(), content);
        if status == "429" {
            let headers = response.entry("headers").or_insert_with(|| json!({}));
            headers["Retry-After"] = json!({
                "description": "Seconds to wait before retrying",
                "schema": { "type": "integer", "minimum": 0 },
            });
        }
    }
}

/// A non-JSON body is an event stream (events), text (`{"type":"string"}`)
/// or bytes, which JSON Schema cannot describe (no schema).
fn describe_non_json(media_type: &str, media: &mut Value) {
    if media_type.contains("json") {
        return;
    }
    let Some(media) = media.as_object_mut() else {
        return;
    };
    if media_type == "text/event-stream" {
        // Schemathesis and OpenAPI 3.2 (`itemSchema`) read a stream's schema
        // as the schema of each event.
        media.insert(
            "schema".into(),
            json!({
                "type": "object",
                "properties": {
                    "event": {"type": "string"},
                    "data": {"type": "string"},
                    "id": {"type": "string"},
                    "retry": {"type": "integer", "minimum": 0},
                },
            }),
        );
    } else if media_type.starts_with("text/") || media_type.ends_with("+xml") {
        media.insert("schema".into(), json!({"type": "string"}));
    } else {
        media.remove("schema");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_gets_the_shared_statuses_and_constraints() {
        let mut doc = json!({"paths": {"/v1/sessions/{company}/x": {"post": {
            "parameters": [{"name": "company", "in": "path", "required": true, "schema": {"type": "string"}}],
            "requestBody": {"content": {"application/json": {"schema": {}}}},
            "security": [{"bearer": []}],
            "responses": {"200": {"description": "ok"}, "409": {"description": "conflict"}},
        }}}});
        complete(&mut doc);
        let op = &doc["paths"]["/v1/sessions/{company}/x"]["post"];
        assert_eq!(
            op["parameters"][0]["schema"]["pattern"],
            crate::domain::CompanyId::PATTERN
        );
        for status in [
            "400", "401", "403", "409", "413", "415", "422", "429", "503",
        ] {
            assert_eq!(
                op["responses"][status]["content"]["application/json"]["schema"]["$ref"], ERROR_REF,
                "{status}"
            );
        }
        assert!(op["responses"]["429"]["headers"]["Retry-After"].is_object());
        assert!(op["responses"]["200"].get("content").is_none());
    }
}
