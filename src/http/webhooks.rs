//! A company's webhook and its deliveries:
//! `PUT|GET /v1/sessions/{company}/webhook`, `POST …/webhook/replay`,
//! `GET …/deliveries`, `POST …/deliveries/{id}/retry`.
//!
//! Replay and retry reach the gateway-wide webhook (`--webhook-url`) only
//! when the admin calls them; a company token reaches its own webhook only
//! (`crate::webhook::Reach`). One replay per company at a time: 409
//! `replay_in_progress` while the previous one's deliveries are queued.
//!
//! The webhook service ([`crate::webhook::Webhooks`]) reaches the handlers as
//! an `Extension` installed by `app.rs`; without it these routes answer 503
//! `not_ready`. The signing secret is returned only by the `PUT` that
//! generated it (`Cache-Control: no-store`), never by `GET`.

use axum::Json;
use axum::extract::{Extension, Path};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::CompanyAccess;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery};
use super::{AppState, no_store};
use crate::pb;
use crate::store::outbox::{DeliveryKey, DeliveryState};
use crate::webhook::{Reach, WebhookError, Webhooks};

/// Largest page of deliveries, and of a replay.
const MAX_LIMIT: usize = 10_000;

/// The routes of this file, merged into the documented API.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_webhook, get_webhook))
        .routes(routes!(replay))
        .routes(routes!(send_test))
        .routes(routes!(deliveries))
        .routes(routes!(retry))
}

/// Body of `PUT …/webhook`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutWebhookRequest {
    /// `http(s)` URL without credentials; `null` removes the webhook.
    #[schema(example = "https://hooks.example.com/whatsapp")]
    pub url: Option<String>,
    /// Signing key: `whsec_<base64>` or any non-empty string. Omitted: the
    /// current one is kept, or one is generated and returned once.
    pub secret: Option<String>,
    /// Event types to deliver (`message.received`, `message.reaction`,
    /// `message.edited`, `message.revoked`, `message.status`,
    /// `session.status`); empty = all.
    #[serde(default)]
    pub events: Vec<String>,
}

crate::domain::redacted_debug!(PutWebhookRequest { url, events });

/// A company's webhook.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    pub url: Option<String>,
    pub events: Vec<String>,
    /// The generated signing secret, only in the answer that generated it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

crate::domain::redacted_debug!(WebhookView { url, events });

/// Body of `POST …/webhook/replay`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Replay events from this time on (unix ms; default: all stored).
    #[serde(default, deserialize_with = "super::extract::integer")]
    pub since_ms: Option<i64>,
    /// At most this many events per event type (default 1000, max 10000).
    #[serde(default, deserialize_with = "super::extract::integer")]
    pub limit: Option<usize>,
}

/// Answer of a replay.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplayView {
    /// Deliveries queued.
    pub queued: usize,
}

/// Query of `GET …/deliveries`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeliveriesQuery {
    /// `queued`, `delivered` or `dead`; omitted = all three.
    pub state: Option<String>,
    /// Per state, newest first (default 100, max 10000).
    pub limit: Option<usize>,
}

/// One delivery of one event to one endpoint.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    /// Delivery id, for `…/deliveries/{id}/retry`.
    #[schema(example = "1234-company")]
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    /// `company` or `global`.
    pub target: String,
    /// `queued`, `delivered` or `dead`.
    pub state: String,
    pub attempts: u32,
    /// HTTP status of the last attempt (0 = no answer).
    pub last_status: u32,
    /// Stable code of the last failure (`http_500`, `timeout`, `connect`, …).
    pub last_error: Option<String>,
    /// Next attempt (unix ms), for queued deliveries waiting to retry.
    pub next_attempt_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Deliveries by state, newest first.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct DeliveriesView {
    pub queued: Vec<DeliveryView>,
    pub delivered: Vec<DeliveryView>,
    /// Dead letters: retry them one by one, or replay.
    pub dead: Vec<DeliveryView>,
}

/// Set or remove the company's webhook.
#[utoipa::path(
    put, path = "/v1/sessions/{company}/webhook", tag = "webhooks",
    params(("company" = String, Path, description = "Company id")),
    request_body = PutWebhookRequest,
    responses(
        (status = 200, description = "Set; `secret` only when generated", body = WebhookView),
        (status = 400, description = "`invalid_webhook_url`, `invalid_webhook_secret`, `invalid_event_type`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn put_webhook(
    webhooks: Option<Extension<Webhooks>>,
    access: CompanyAccess,
    ApiJson(body): ApiJson<PutWebhookRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let view = save_webhook(&service(webhooks)?, &access, &body)?;
    Ok((no_store(), Json(view)))
}

/// Sets or removes the company's webhook (the API's `PUT` and the console).
pub(super) fn save_webhook(
    webhooks: &Webhooks,
    access: &CompanyAccess,
    body: &PutWebhookRequest,
) -> Result<WebhookView, ApiError> {
    let set = webhooks
        .set_webhook(
            &access.company,
            body.url.as_deref(),
            body.secret.as_deref(),
            &body.events,
        )
        .map_err(api_error)?;
    Ok(WebhookView {
        url: set.url,
        events: set.events,
        secret: set.generated_secret,
    })
}

/// The company's webhook (never its secret).
#[utoipa::path(
    get, path = "/v1/sessions/{company}/webhook", tag = "webhooks",
    params(("company" = String, Path, description = "Company id")),
    responses((status = 200, body = WebhookView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_webhook(
    webhooks: Option<Extension<Webhooks>>,
    access: CompanyAccess,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(webhook_view(&service(webhooks)?, &access)))
}

/// The company's webhook, never its secret (the API's `GET` and the console).
pub(super) fn webhook_view(webhooks: &Webhooks, access: &CompanyAccess) -> WebhookView {
    let endpoint = webhooks.webhook(&access.company);
    WebhookView {
        url: endpoint.as_ref().map(|e| e.url.to_string()),
        events: endpoint.map(|e| e.events.clone()).unwrap_or_default(),
        secret: None,
    }
}

/// Queue the company's stored events again (same event ids).
///
/// To the company's webhook; with the admin key also to the gateway-wide
/// webhook. One replay per company at a time.
#[utoipa::path(
    post, path = "/v1/sessions/{company}/webhook/replay", tag = "webhooks",
    params(("company" = String, Path, description = "Company id")),
    request_body = ReplayRequest,
    responses(
        (status = 202, body = ReplayView),
        (status = 400, description = "`invalid_query` (limit out of range), `invalid_json`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "`replay_in_progress`: the company's previous replay is still being delivered", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn replay(
    webhooks: Option<Extension<Webhooks>>,
    access: CompanyAccess,
    ApiJson(body): ApiJson<ReplayRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let view = replay_events(&service(webhooks)?, &access, &body)?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// Queues the company's stored events again (the API and the console).
pub(super) fn replay_events(
    webhooks: &Webhooks,
    access: &CompanyAccess,
    body: &ReplayRequest,
) -> Result<ReplayView, ApiError> {
    let limit = limit(body.limit, 1000)?;
    let queued = webhooks
        .replay(
            &access.company,
            body.since_ms.unwrap_or_default(),
            limit,
            reach(access),
        )
        .map_err(api_error)?;
    Ok(ReplayView { queued })
}

/// Answer of `POST …/webhook/test`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TestEventView {
    /// The `webhook.test` event's id: find its delivery in `…/deliveries`.
    pub event_id: String,
}

/// Send a `webhook.test` event to the company's webhook.
///
/// Signed, delivered, retried and logged like any other event (ordered in
/// a lane of its own), to the company's webhook only, whatever its event
/// filter: a way to check the receiver and its signature check.
#[utoipa::path(
    post, path = "/v1/sessions/{company}/webhook/test", tag = "webhooks",
    params(("company" = String, Path, description = "Company id")),
    responses(
        (status = 202, description = "Queued for delivery", body = TestEventView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "`unknown_company`", body = ErrorBody),
        (status = 409, description = "`no_webhook`: the company has no webhook", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn send_test(
    webhooks: Option<Extension<Webhooks>>,
    access: CompanyAccess,
) -> Result<impl IntoResponse, ApiError> {
    let view = send_test_event(&service(webhooks)?, &access).await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// Queues a `webhook.test` event (the API and the console).
pub(super) async fn send_test_event(
    webhooks: &Webhooks,
    access: &CompanyAccess,
) -> Result<TestEventView, ApiError> {
    let event_id = webhooks
        .send_test(&access.company)
        .await
        .map_err(api_error)?;
    Ok(TestEventView { event_id })
}

/// The delivery log, the queue and the dead letters.
#[utoipa::path(
    get, path = "/v1/sessions/{company}/deliveries", tag = "webhooks",
    params(
        ("company" = String, Path, description = "Company id"),
        ("state" = Option<String>, Query, description = "`queued`, `delivered` or `dead`; omitted = all"),
        ("limit" = Option<usize>, Query, description = "Per state, newest first (default 100)"),
    ),
    responses((status = 200, body = DeliveriesView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn deliveries(
    webhooks: Option<Extension<Webhooks>>,
    access: CompanyAccess,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> Result<Json<DeliveriesView>, ApiError> {
    Ok(Json(list_deliveries(&service(webhooks)?, &access, &query)?))
}

/// The delivery log by state, newest first (the API and the console).
pub(super) fn list_deliveries(
    webhooks: &Webhooks,
    access: &CompanyAccess,
    query: &DeliveriesQuery,
) -> Result<DeliveriesView, ApiError> {
    let limit = limit(query.limit, 100)?;
    let states = match query.state.as_deref() {
        None => vec![
            DeliveryState::Queued,
            DeliveryState::Delivered,
            DeliveryState::Dead,
        ],
        Some("queued") => vec![DeliveryState::Queued],
        Some("delivered") => vec![DeliveryState::Delivered],
        Some("dead") => vec![DeliveryState::Dead],
        Some(_) => {
            return Err(invalid(
                "invalid_query",
                "state must be queued, delivered or dead",
            ));
        }
    };
    let mut view = DeliveriesView::default();
    for state in states {
        let rows = webhooks
            .deliveries(&access.company, state, limit)
            .map_err(api_error)?;
        let rows = rows
            .iter()
            .map(|(key, d)| delivery_view(key, d, state))
            .collect();
        match state {
            DeliveryState::Queued => view.queued = rows,
            DeliveryState::Delivered => view.delivered = rows,
            DeliveryState::Dead => view.dead = rows,
        }
    }
    Ok(view)
}

/// Queue a dead letter again (attempts reset). A company token may retry
/// only deliveries to its own webhook (`…-company`); the admin also those to
/// the gateway-wide webhook (`…-global`).
#[utoipa::path(
    post, path = "/v1/sessions/{company}/deliveries/{id}/retry", tag = "webhooks",
    params(("company" = String, Path, description = "Company id"), ("id" = String, Path, description = "Delivery id")),
    responses(
        (status = 202, description = "Queued again", body = DeliveryView),
        (status = 404, description = "`unknown_delivery`: not a dead letter (or, for a company token, one to the gateway-wide webhook)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn retry(
    webhooks: Option<Extension<Webhooks>>,
    access: CompanyAccess,
    Path(params): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let view = retry_delivery(&service(webhooks)?, &access, &params.1)?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// Queues the dead letter `id` again (the API and the console).
pub(super) fn retry_delivery(
    webhooks: &Webhooks,
    access: &CompanyAccess,
    id: &str,
) -> Result<DeliveryView, ApiError> {
    let delivery = webhooks
        .retry(&access.company, id, reach(access))
        .map_err(api_error)?;
    let key = DeliveryKey::parse_public_id(&access.company, id).ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!("a retried delivery id did not parse"))
    })?;
    Ok(delivery_view(&key, &delivery, DeliveryState::Queued))
}

fn delivery_view(key: &DeliveryKey, d: &pb::OutboxDelivery, state: DeliveryState) -> DeliveryView {
    DeliveryView {
        id: key.public_id(),
        event_id: d.event_id.clone(),
        event_type: d.event_type.clone(),
        target: d.target.clone(),
        state: state.as_str().to_owned(),
        attempts: d.attempts,
        last_status: d.last_status,
        last_error: (!d.last_error.is_empty()).then(|| d.last_error.clone()),
        next_attempt_ms: (d.next_attempt_ms > 0).then_some(d.next_attempt_ms),
        created_at_ms: d.created_at_ms,
        updated_at_ms: d.updated_at_ms,
    }
}

/// A company token reaches only the company's own webhook; the admin also
/// the gateway-wide one.
fn reach(access: &CompanyAccess) -> Reach {
    if access.admin {
        Reach::CompanyAndGlobal
    } else {
        Reach::CompanyOnly
    }
}

pub(super) fn service(webhooks: Option<Extension<Webhooks>>) -> Result<Webhooks, ApiError> {
    webhooks.map(|Extension(w)| w).ok_or(ApiError::NotReady)
}

fn limit(raw: Option<usize>, default: usize) -> Result<usize, ApiError> {
    match raw.unwrap_or(default) {
        0 => Err(invalid("invalid_query", "limit must be at least 1")),
        n if n > MAX_LIMIT => Err(invalid("invalid_query", "limit must be at most 10000")),
        n => Ok(n),
    }
}

fn invalid(code: &'static str, message: &str) -> ApiError {
    ApiError::Malformed {
        status: StatusCode::BAD_REQUEST,
        code,
        message: message.to_owned(),
    }
}

/// Maps the webhook layer's errors onto the API envelope (stable codes).
fn api_error(error: WebhookError) -> ApiError {
    match error {
        WebhookError::InvalidUrl(_)
        | WebhookError::InvalidSecret
        | WebhookError::InvalidEventType(_) => ApiError::Malformed {
            status: StatusCode::BAD_REQUEST,
            code: error.code(),
            message: error.to_string(),
        },
        WebhookError::UnknownCompany => ApiError::UnknownCompany,
        WebhookError::UnknownDelivery => ApiError::Malformed {
            status: StatusCode::NOT_FOUND,
            code: error.code(),
            message: error.to_string(),
        },
        WebhookError::ReplayInProgress | WebhookError::NoWebhook => ApiError::Malformed {
            status: StatusCode::CONFLICT,
            code: error.code(),
            message: error.to_string(),
        },
        WebhookError::Stopped => ApiError::NotReady,
        other => ApiError::internal(other),
    }
}
