//! The OpenAPI 3.1 document, generated with `utoipa` from the handlers' own
//! `#[utoipa::path]` annotations and response types, and served at
//! `GET /openapi.json`. The routes are registered through
//! [`utoipa_axum::router::OpenApiRouter`], so a route cannot exist without
//! being documented.

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use utoipa::openapi::OpenApi as OpenApiDocument;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::{
    AppState, event_schemas, events, health, media, message_status, messages, qr, sessions,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wagate",
        description = "Self-hosted, multi-tenant WhatsApp gateway. Every error is `{\"error\":{\"code\",\"message\"}}` with a stable snake_case `code`. Authenticate with `Authorization: Bearer <admin key or company token>`; a company token acts only on its own company.",
    ),
    modifiers(&BearerAuth),
    components(schemas(
        ErrorBody,
        qr::QrFormat,
        event_schemas::WebhookEvent,
        event_schemas::EventData,
        event_schemas::MessageReceived,
        event_schemas::MessageReaction,
        event_schemas::MessageEdited,
        event_schemas::MessageRevoked,
        event_schemas::MessageStatus,
        event_schemas::SessionStatus,
        event_schemas::WebhookTest,
    )),
    tags(
        (name = "sessions", description = "A company's WhatsApp session: create, link, observe, unlink"),
        (name = "messages", description = "Sending every kind of message, actions on messages, read receipts, chat state, contact checks, sent messages' status, inbound media. Events (webhooks and SSE) are the `WebhookEvent` component"),
        (name = "admin", description = "The gateway's own credentials (admin key only)"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
struct ApiDoc;

/// Declares the `bearer` security scheme the operations refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApiDocument) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin key, or a company token (acts on its own company only)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every documented route, with its OpenAPI description.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(sessions::list))
        .routes(routes!(
            sessions::ensure,
            sessions::status,
            sessions::delete
        ))
        .routes(routes!(sessions::pair_code))
        .routes(routes!(sessions::reconnect))
        .routes(routes!(sessions::logout))
        .routes(routes!(qr::current_qr))
        .routes(routes!(events::events))
        .merge(
            // Media bodies are larger than MAX_BODY_BYTES: the send handler
            // enforces its own limits (JSON, per-kind media) while streaming.
            OpenApiRouter::new()
                .routes(routes!(messages::send::send_message))
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .routes(routes!(messages::actions::react))
        .routes(routes!(messages::actions::edit, messages::actions::revoke))
        .routes(routes!(messages::chats::read))
        .routes(routes!(messages::chats::presence))
        .routes(routes!(messages::chats::check_contacts))
        .routes(routes!(message_status::message_status))
        .routes(routes!(media::media))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
}

/// `GET /openapi.json`, serving the document built with the routes
/// (serialized once, at start); `ttl_range_s` is the pairing links'
/// configured lifetime range, which the document states.
pub fn router(document: &OpenApiDocument, ttl_range_s: (u64, u64)) -> Router<AppState> {
    let json =
        Bytes::from(serde_json::to_vec(&document_json(document, ttl_range_s)).unwrap_or_default());
    Router::new().route(
        "/openapi.json",
        get(move || {
            let json = json.clone();
            async move {
                (
                    [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                    json,
                )
            }
        }),
    )
}

/// The served document: utoipa's, completed with what every route shares
/// and the exact rules of every input.
pub fn document_json(document: &OpenApiDocument, ttl_range_s: (u64, u64)) -> serde_json::Value {
    // Serializing utoipa's document model cannot fail (string-keyed maps only).
    let mut value = serde_json::to_value(document).unwrap_or_default();
    super::openapi_inputs::complete_bodies(&mut value, ttl_range_s);
    super::openapi_contract::complete(&mut value);
    value
}
