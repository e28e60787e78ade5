//! The OpenAPI 3.1 document of the REST API, built from the route table
//! ([`crate::API_ROUTES`]) and the request types themselves (their JSON
//! Schemas are derived from the structs the handlers deserialise), so it
//! cannot drift from what the server accepts.

use axum::Json;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::{API_ROUTES, account, admin, fleet, helpdesk, inventory, toolset};

fn body<T: JsonSchema>(generator: &mut SchemaGenerator) -> Option<Value> {
    Some(generator.subschema_for::<T>().to_value())
}

/// The request body schema of a route, if it takes one.
pub fn request_schema(method: &str, path: &str, generator: &mut SchemaGenerator) -> Option<Value> {
    match (method, path) {
        ("POST", "/api/v1/login") => body::<account::LoginRequest>(generator),
        ("POST", "/api/v1/unseal") => body::<account::LoginRequest>(generator),
        ("POST", "/api/v1/setup") => body::<account::SetupRequest>(generator),
        ("POST", "/api/v1/me/password") => body::<account::PasswordRequest>(generator),
        ("POST", "/api/v1/me/tokens") => body::<account::TokenRequest>(generator),
        ("POST", "/api/v1/toolset/codes") => body::<toolset::CodesRequest>(generator),
        ("POST", "/api/v1/toolset/convert") => body::<toolset::ConvertRequest>(generator),
        ("POST", "/api/v1/toolset/seed") => body::<toolset::SeedRequest>(generator),
        ("POST", "/api/v1/toolset/qr") => body::<toolset::QrRequest>(generator),
        ("POST", "/api/v1/toolset/verify") => body::<toolset::VerifyRequest>(generator),
        ("POST", "/api/v1/toolset/entra-csv") => body::<toolset::EntraRequest>(generator),
        ("POST", "/api/v1/users") => body::<inventory::NewUser>(generator),
        ("POST", "/api/v1/tokens") => body::<inventory::NewTokenRequest>(generator),
        ("POST", "/api/v1/tokens/bulk") => body::<inventory::BulkChange>(generator),
        ("POST", "/api/v1/tokens/{ref}/state") => body::<inventory::StateChange>(generator),
        ("POST", "/api/v1/tokens/{ref}/assign") => body::<inventory::Assign>(generator),
        ("POST", "/api/v1/tokens/{ref}/deliver") => body::<inventory::DeliverRequest>(generator),
        ("POST", "/api/v1/import/preview") | ("POST", "/api/v1/import") => {
            body::<inventory::ImportRequest>(generator)
        }
        ("POST", "/api/v1/export") => body::<inventory::ExportRequest>(generator),
        ("POST", "/api/v1/helpdesk/code" | "/api/v1/helpdesk/tap") => {
            body::<helpdesk::CodeRequest>(generator)
        }
        ("PUT", "/api/v1/helpdesk/policy") => body::<helpdesk::PolicyBody>(generator),
        ("POST", "/api/v1/helpdesk/reveal") => body::<helpdesk::RevealRequest>(generator),
        ("POST", "/api/v1/helpdesk/approvals/{id}/approve")
        | ("POST", "/api/v1/helpdesk/approvals/{id}/deny") => body::<helpdesk::Decision>(generator),
        ("POST", "/api/v1/identify") => body::<helpdesk::IdentifyRequest>(generator),
        ("POST", "/api/v1/forensic") => body::<fleet::ForensicRequest>(generator),
        ("POST", "/api/v1/accounts") => body::<admin::NewAccount>(generator),
        ("PATCH", "/api/v1/accounts/{name}") => body::<admin::AccountChange>(generator),
        ("POST", "/api/v1/accounts/{name}/password") => body::<admin::PasswordReset>(generator),
        ("PUT", "/api/v1/settings") => body::<admin::SettingChange>(generator),
        _ => None,
    }
}

/// The query parameters of a route, if it reads any.
fn query_schema(path: &str, generator: &mut SchemaGenerator) -> Option<Value> {
    match path {
        "/api/v1/tokens" => body::<inventory::TokenQuery>(generator),
        "/api/v1/users" => body::<inventory::UserQuery>(generator),
        "/api/v1/audit" => body::<crate::auditlog::AuditQuery>(generator),
        "/api/v1/audit/verify" => body::<crate::auditlog::VerifyQuery>(generator),
        "/api/v1/helpdesk/verification" => body::<helpdesk::VerificationQuery>(generator),
        "/api/v1/helpdesk/approvals" => body::<helpdesk::ApprovalQuery>(generator),
        "/api/v1/fleet/drift" | "/api/v1/fleet/drift.csv" | "/api/v1/tokens/{ref}/sightings" => {
            body::<fleet::DriftQuery>(generator)
        }
        "/api/v1/fleet/eol" => body::<fleet::EolQuery>(generator),
        _ => None,
    }
}

/// The whole document.
pub fn document() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    let mut generator = settings.into_generator();
    let error = json!({
        "description": "The request was refused; `error` says why and how to fix it.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    });
    let mut paths: Map<String, Value> = Map::new();
    for route in API_ROUTES {
        let mut operation = Map::new();
        operation.insert("summary".into(), json!(route.summary));
        // Probes and metrics sit outside /api/v1, under one tag.
        let tag = route
            .path
            .strip_prefix("/api/v1/")
            .map_or("operations", |rest| rest.split('/').next().unwrap_or("api"));
        operation.insert("tags".into(), json!([tag]));
        match route.permission {
            Some(permission) => {
                operation.insert("x-permission".into(), json!(permission.name()));
                operation.insert(
                    "security".into(),
                    json!([{"session": []}, {"token": [permission.name()]}]),
                );
            }
            None => {
                operation.insert("security".into(), json!([]));
            }
        }
        let mut parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if let Some(query) = query_schema(route.path, &mut generator) {
            let reference = query["$ref"].as_str().unwrap_or_default().to_owned();
            parameters.push(json!({
                "name": "filter", "in": "query", "style": "form", "explode": true,
                "schema": {"$ref": reference},
            }));
        }
        if !parameters.is_empty() {
            operation.insert("parameters".into(), json!(parameters));
        }
        if let Some(schema) = request_schema(route.method, route.path, &mut generator) {
            operation.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": schema}}}),
            );
        }
        let mut responses = json!({
            "200": {"description": "Done; JSON (201 for what was created, 204 for nothing to say)."},
            "400": error, "401": error, "403": error, "404": error, "409": error, "429": error,
        });
        if (route.method, route.path) == ("POST", "/api/v1/helpdesk/code") {
            responses["202"] = json!({
                "description": "The policy asks a second operator to approve this release: the \
                    request waits as `id` until another operator approves it (then collect the \
                    code with POST /api/v1/helpdesk/approvals/{id}/collect) or it expires.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApprovalRequired"}}}
            });
        }
        operation.insert("responses".into(), responses);
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[route.method.to_lowercase()] = Value::Object(operation);
    }
    let mut schemas = generator.take_definitions(true);
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["error", "status"], "properties": {
            "error": {"type": "string"}, "status": {"type": "integer"},
            "kind": {"type": "string", "description": "The vault's kind of refusal, for clients \
                that branch on it: forbidden, rate_limited, refused, altered, code_released, \
                code_mismatch, sealed, no_key_slot, password_change_required, invalid_serial, \
                import_problems, entra_refused"}}}),
    );
    schemas.insert(
        "ApprovalRequired".into(),
        json!({"type": "object", "required": ["kind", "id", "reason", "expires_at", "message"],
            "properties": {
                "kind": {"const": "approval_required"},
                "id": {"type": "string", "description": "The approval request, e.g. A-3f9c2a10"},
                "reason": {"type": "string", "description": "Why the policy asks for approval"},
                "expires_at": {"type": "integer", "description": "Unix seconds"},
                "until": {"type": "string", "description": "expires_at as HH:MM UTC"},
                "message": {"type": "string"},
                "status": {"type": "integer"}}}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "oathdesk",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The vault of OATH hardware tokens: toolset, helpdesk codes, inventory, \
                audit, accounts. Browser sessions send the session cookie and, on state-changing \
                requests, the page's CSRF token in X-CSRF-Token; scripts send an API token as \
                'Authorization: Bearer odk_…'. A token acts within its scopes and its maker's role.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "oathdesk",
                            "description": "__Host-oathdesk under TLS"},
                "token": {"type": "http", "scheme": "bearer", "bearerFormat": "odk_…"},
            },
        },
    })
}

/// `GET /api/v1/openapi.json` (public: it describes, it reveals nothing).
pub async fn serve() -> Json<Value> {
    Json(document())
}
