//! A structural check of the served OpenAPI document, with no network: every
//! `$ref` resolves, every `links` entry names an existing `operationId` and
//! parameters that operation has, every operation documents the error
//! envelope for the failures every route can answer, and every path
//! parameter carries a pattern or a length. (The property-based run,
//! `.ci/openapi-check`, checks the document against the running server.)

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every problem found in `doc`, one line each.
fn problems(doc: &Value) -> Vec<String> {
    let mut found = Vec::new();
    dangling_refs(doc, doc, "#", &mut found);
    let operations = operations(doc);
    let by_id: BTreeMap<&str, &Value> = operations
        .iter()
        .filter_map(|(_, _, op)| Some((op.get("operationId")?.as_str()?, *op)))
        .collect();
    if by_id.len() != operations.len() {
        found.push("operationIds are missing or not unique".into());
    }
    for (path, method, op) in &operations {
        let at = format!("{method} {path}");
        for (status, response) in op["responses"].as_object().into_iter().flatten() {
            links(&at, status, response, &by_id, &mut found);
        }
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        let mut needed = vec!["503"];
        if secured {
            needed.extend(["401", "403", "429"]);
        }
        if op.get("parameters").is_some() {
            needed.push("400");
        }
        for status in needed {
            let schema = &op["responses"][status]["content"]["application/json"]["schema"]["$ref"];
            if schema != "#/components/schemas/ErrorBody" {
                found.push(format!("{at}: {status} without the error envelope"));
            }
        }
        for parameter in op["parameters"].as_array().into_iter().flatten() {
            let schema = &parameter["schema"];
            let bounded = ["pattern", "maxLength", "enum"]
                .iter()
                .any(|k| schema.get(k).is_some());
            if parameter["in"] == "path" && !bounded {
                found.push(format!(
                    "{at}: path parameter {} is unbounded",
                    parameter["name"]
                ));
            }
        }
    }
    found
}

/// `(path, method, operation)` of every operation.
fn operations(doc: &Value) -> Vec<(&str, &str, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((path.as_str(), method, op));
            }
        }
    }
    out
}

/// Every `$ref` under `node` that does not resolve within `doc`.
fn dangling_refs(doc: &Value, node: &Value, at: &str, found: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            if let Some(target) = map.get("$ref").and_then(Value::as_str) {
                let resolves = target
                    .strip_prefix('#')
                    .is_some_and(|pointer| doc.pointer(pointer).is_some());
                if !resolves {
                    found.push(format!("{at}: $ref {target} does not resolve"));
                }
            }
            for (key, value) in map {
                dangling_refs(doc, value, &format!("{at}/{key}"), found);
            }
        }
        Value::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                dangling_refs(doc, value, &format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

/// A response's links: the target operation exists and has every
/// parameter the link sets.
fn links(
    at: &str,
    status: &str,
    response: &Value,
    by_id: &BTreeMap<&str, &Value>,
    found: &mut Vec<String>,
) {
    for (name, link) in response["links"].as_object().into_iter().flatten() {
        let Some(target) = link["operationId"].as_str().and_then(|id| by_id.get(id)) else {
            found.push(format!("{at} {status}: link {name} names no operation"));
            continue;
        };
        let known: BTreeSet<&str> = target["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for parameter in link["parameters"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|p| p.0)
        {
            // A parameter may be qualified by location: `path.company`.
            let bare = parameter.rsplit('.').next().unwrap_or(parameter);
            if !known.contains(bare) {
                found.push(format!(
                    "{at} {status}: link {name} sets unknown {parameter}"
                ));
            }
        }
    }
}

#[test]
fn the_served_document_is_complete_and_consistent() {
    let (_, openapi) = super::documented_routes().split_for_parts();
    let doc = super::openapi::document_json(&openapi, (60, 86_400));
    assert!(operations(&doc).len() > 30, "the document lists the routes");
    let found = problems(&doc);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn a_dangling_ref_a_broken_link_and_an_unbounded_parameter_are_found() {
    let doc = json!({
        "paths": {"/v1/things/{id}": {"get": {
            "operationId": "thing",
            "parameters": [{"name": "id", "in": "path", "schema": {"type": "string"}}],
            "responses": {
                "200": {
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Missing"}}},
                    "links": {"self": {"operationId": "nothing", "parameters": {"id": "$response.body#/id"}}},
                },
                "400": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}},
                "503": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}},
            },
        }}},
        "components": {"schemas": {"ErrorBody": {"type": "object"}}},
    });
    let found = problems(&doc).join("\n");
    assert!(
        found.contains("$ref #/components/schemas/Missing does not resolve"),
        "{found}"
    );
    assert!(found.contains("link self names no operation"), "{found}");
    assert!(
        found.contains("path parameter \"id\" is unbounded"),
        "{found}"
    );
}
