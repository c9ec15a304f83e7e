//! Pairing links over HTTP: `POST /v1/sessions/{company}/pairing-links`
//! issues a link (API credentials required), and the link's page lives under
//! `/pair/{token}` (no API key: the signed token is the capability).
//!
//! | route | what |
//! |---|---|
//! | `GET /pair/{token}` | the page (HTML) |
//! | `GET /pair/{token}/events` | its live updates (SSE: `state`, `qr`, `expired`) |
//! | `POST /pair/{token}/start` | a new linking attempt (after logged out / QR codes expired) |
//! | `POST /pair/{token}/pair-code` | form `phone=…`: the 8-character pair code (JSON with `Accept: application/json`, else an HTML page) |
//! | `GET /assets/pairing/pair.{css,js}` | the page's stylesheet and script |
//!
//! # Invariants
//!
//! - Every `/pair/{token}` request is checked by [`PairAccess`] before its
//!   handler runs: signature, expiry, and that the company still exists as
//!   the one the link was made for. A refusal is a human page (410 expired,
//!   403 invalid, 404 company gone, 503 unavailable), never JSON to a
//!   browser, never a stack trace; the page's own `fetch` calls (which send
//!   `Accept: application/json`) get the same words as JSON.
//! - Opening the page has no side effect (link previews fetch it); the
//!   session is started (like `POST /v1/sessions/{company}` does: `ensure`)
//!   only when the page's script opens the event stream, asks for a new
//!   attempt, or asks for a pair code.
//! - The event stream ends after the page is done (connected, company
//!   deleted, link expired) and at shutdown (the browser then reconnects).
//! - Tokens, QR codes, pair codes and phone numbers are never logged; pages
//!   carrying them are `Cache-Control: no-store` and `Referrer-Policy:
//!   no-referrer`, under a Content-Security-Policy that allows only this
//!   gateway's own script and stylesheet.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequestParts, Path, State};
use axum::http::header::{
    ACCEPT, ACCEPT_LANGUAGE, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures_util::stream::{self, Stream};
use qrcode::QrCode;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::CompanyAccess;
use super::error::{ApiError, ErrorBody};
use super::{AppState, Lifecycle, no_store};
use crate::domain::{CompanyId, InvalidInput, PhoneNumber, now_ms};
use crate::pairing::page::{self, PageContext, StateView};
use crate::pairing::strings::{self, Strings};
use crate::pairing::token::{Claims, TokenError};
use crate::pairing::{LinkRefusal, PairingError, fingerprint, page_path};
use crate::pool::{PoolError, Qr, SessionEvent, SessionHandle, SessionState, SessionStatus};

/// The routes of this module (the API one documented in OpenAPI).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_link))
        .routes(routes!(pairing_page))
        .routes(routes!(events))
        .routes(routes!(start))
        .routes(routes!(pair_code))
        .route("/pair", get(missing_token))
        .route("/pair/", get(missing_token))
        .route(page::CSS_PATH, get(stylesheet))
        .route(page::JS_PATH, get(script))
}

// ----- issuing links (API) ---------------------------------------------------

/// Body of `POST /v1/sessions/{company}/pairing-links` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePairingLinkRequest {
    /// Lifetime of the link in seconds (60 to the configured maximum);
    /// default: the configured default (15 minutes).
    #[schema(example = 900)]
    pub ttl_seconds: Option<u64>,
}

/// A pairing link, for the company's staff to open.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PairingLinkView {
    /// The page's full URL. Whoever has it can link a phone to this company
    /// until it expires: send it only to the company's own staff.
    #[schema(example = "https://wa.example.com/pair/AQAAAZ…Zm9v.c2ln…")]
    pub url: String,
    /// The token (the URL's last path segment).
    pub token: String,
    /// When the link stops working (RFC 3339, UTC).
    #[schema(example = "2026-01-01T12:15:00Z")]
    pub expires_at: String,
    /// The same instant in unix ms, like the API's other timestamps.
    pub expires_at_ms: i64,
}

/// Issue a pairing link: a signed URL to a web page showing the company's
/// live QR code (and a pair-code form), valid for one company and a limited
/// time. It is not an API credential.
#[utoipa::path(
    post, path = "/v1/sessions/{company}/pairing-links", tag = "sessions",
    params(("company" = String, Path, description = "Company id")),
    request_body(content = Option<CreatePairingLinkRequest>, description = "Optional; `{}` or no body for the default lifetime"),
    responses(
        (status = 201, description = "The link", body = PairingLinkView),
        (status = 400, description = "`invalid_ttl`, `invalid_json`, `missing_host`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "`unknown_company`", body = ErrorBody),
        (status = 422, description = "`invalid_body`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_link(
    State(state): State<AppState>,
    access: CompanyAccess,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request = parse_optional_json::<CreatePairingLinkRequest>(&body)?;
    let ttl = state.pairing.ttl(request.ttl_seconds).map_err(|err| {
        ApiError::InvalidInput(InvalidInput {
            code: "invalid_ttl",
            message: err.to_string(),
        })
    })?;
    let base = public_base(state.pairing.public_url(), &headers)?;
    let record = state
        .pool
        .store()
        .get_company(&access.company)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::UnknownCompany)?;
    let link = state
        .pairing
        .issue(&record, &access.company, ttl, now_ms())
        .map_err(|err: PairingError| ApiError::internal(err))?;
    tracing::info!(
        company.id = %access.company,
        link.fingerprint = %fingerprint(&link.token),
        link.ttl_s = ttl.as_secs(),
        "pairing link issued"
    );
    let view = PairingLinkView {
        url: format!("{base}{}", page_path(&link.token)),
        expires_at: rfc3339(link.expires_at_ms),
        expires_at_ms: link.expires_at_ms,
        token: link.token,
    };
    Ok((StatusCode::CREATED, no_store(), Json(view)))
}

/// An optional JSON body: empty (or only whitespace) is `T::default()`.
fn parse_optional_json<T: Default + serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|err| {
        let (status, code) = if err.is_data() {
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
        } else {
            (StatusCode::BAD_REQUEST, "invalid_json")
        };
        ApiError::Malformed {
            status,
            code,
            message: err.to_string(),
        }
    })
}

/// The base of links: the configured public URL, else `http://` and the
/// `Host` the request was sent to (behind a TLS proxy, configure
/// `--public-url`).
fn public_base(configured: Option<&str>, headers: &HeaderMap) -> Result<String, ApiError> {
    if let Some(url) = configured {
        return Ok(url.to_owned());
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| is_plausible_host(h));
    match host {
        Some(host) => Ok(format!("http://{host}")),
        None => Err(ApiError::InvalidInput(InvalidInput {
            code: "missing_host",
            message: "the request has no usable Host header; configure --public-url".to_owned(),
        })),
    }
}

/// `host[:port]`, a bracketed IPv6 literal included; nothing that could
/// smuggle a path, credentials or markup into a link.
fn is_plausible_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

/// Unix ms as RFC 3339 UTC, to the second.
fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

// ----- checking links --------------------------------------------------------

/// Why a `/pair/{token}` request gets no page (each variant names its status).
#[derive(Debug, thiserror::Error)]
pub enum PageRefusal {
    /// 410: the link expired.
    #[error("the pairing link expired")]
    Expired,
    /// 403: the token is malformed, tampered with, or from another gateway.
    #[error("the pairing link is not valid ({0})")]
    Invalid(&'static str),
    /// 404: the company was deleted (or deleted and created again).
    #[error("the company of the pairing link no longer exists")]
    UnknownCompany,
    /// 503: starting, shutting down, or busy with this company.
    #[error("the gateway cannot serve the pairing link right now")]
    Unavailable,
    /// 500: a storage failure (logged once, here).
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl PageRefusal {
    fn status(&self) -> StatusCode {
        match self {
            Self::Expired => StatusCode::GONE,
            Self::Invalid(_) => StatusCode::FORBIDDEN,
            Self::UnknownCompany => StatusCode::NOT_FOUND,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Expired => "link_expired",
            Self::Invalid(_) => "link_invalid",
            Self::UnknownCompany => "link_company_gone",
            Self::Unavailable => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// Title and body of the page, in `strings`' language.
    fn words(&self, strings: &'static Strings) -> (&'static str, &'static str) {
        match self {
            Self::Expired => (strings.expired_title, strings.expired_body),
            Self::Invalid(_) => (strings.invalid_title, strings.invalid_body),
            Self::UnknownCompany => (strings.unknown_title, strings.unknown_body),
            Self::Unavailable | Self::Internal(_) => {
                (strings.unavailable_title, strings.unavailable_body)
            }
        }
    }
}

impl From<LinkRefusal> for PageRefusal {
    fn from(refusal: LinkRefusal) -> Self {
        match refusal {
            LinkRefusal::Token(TokenError::Expired { .. }) => Self::Expired,
            LinkRefusal::Token(err) => Self::Invalid(err.code()),
            LinkRefusal::UnknownCompany => Self::UnknownCompany,
        }
    }
}

/// How the caller wants answers: the language, and HTML or JSON.
#[derive(Debug, Clone, Copy)]
pub struct Audience {
    strings: &'static Strings,
    json: bool,
}

impl Audience {
    fn of(headers: &HeaderMap) -> Self {
        let header = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        Self {
            strings: strings::negotiate(header(ACCEPT_LANGUAGE)),
            json: header(ACCEPT).is_some_and(|accept| accept.contains("application/json")),
        }
    }

    /// A failure in the caller's language: a human page, or for the page's
    /// own script `{"error":{"code","message"}}`.
    fn answer(self, status: StatusCode, code: &str, title: &str, message: &str) -> Response {
        if self.json {
            let body = serde_json::json!({"error": {"code": code, "message": message}});
            return (status, page_headers(), Json(body)).into_response();
        }
        let html = page::message_page(self.strings, title, message, None);
        (status, page_headers(), Html(html)).into_response()
    }
}

/// A refused `/pair/…` request, answered in the caller's language.
#[derive(Debug)]
pub struct Refused {
    refusal: PageRefusal,
    audience: Audience,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let Self { refusal, audience } = self;
        if let PageRefusal::Internal(cause) = &refusal {
            tracing::error!(error.cause = ?cause, "pairing page request failed");
        } else {
            tracing::debug!(reason = %refusal, "pairing page request refused");
        }
        let (title, body) = refusal.words(audience.strings);
        audience.answer(refusal.status(), refusal.code(), title, body)
    }
}

/// Extractor for `/pair/{token}…`: the verified link of the request.
#[derive(Debug)]
pub struct PairAccess {
    /// The token as received (needed to build the page's own URLs).
    token: String,
    claims: Claims,
    audience: Audience,
}

impl PairAccess {
    fn company(&self) -> &CompanyId {
        &self.claims.company
    }

    fn refuse(&self, refusal: PageRefusal) -> Refused {
        Refused {
            refusal,
            audience: self.audience,
        }
    }
}

impl FromRequestParts<AppState> for PairAccess {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Refused> {
        let audience = Audience::of(&parts.headers);
        let refuse = |refusal| Refused { refusal, audience };
        let Path(token) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| refuse(PageRefusal::Invalid("malformed")))?;
        let claims = state
            .pairing
            .verify(&token, now_ms())
            .map_err(|err| refuse(LinkRefusal::from(err).into()))?;
        state
            .pairing
            .check_company(state.pool.store(), &claims)
            .map_err(|err| refuse(PageRefusal::Internal(err.into())))?
            .map_err(|err| refuse(err.into()))?;
        Ok(Self {
            token,
            claims,
            audience,
        })
    }
}

/// The company's session, started if idle (what `POST /v1/sessions/{company}`
/// does), for a verified link.
async fn ensure_session(state: &AppState, access: &PairAccess) -> Result<SessionHandle, Refused> {
    match state.pool.ensure(access.company()).await {
        // The company was deleted between the link check and this ensure,
        // which created it anew: undo that, the link is dead.
        Ok(ensured) if ensured.created => {
            if let Err(err) = state.pool.delete(access.company()).await {
                tracing::error!(company.id = %access.company(), error = %err, "undoing a company re-created by a pairing link failed");
            }
            Err(access.refuse(PageRefusal::UnknownCompany))
        }
        Ok(ensured) => Ok(ensured.handle),
        Err(PoolError::Busy | PoolError::Gone) => Err(access.refuse(PageRefusal::Unavailable)),
        Err(PoolError::UnknownCompany) => Err(access.refuse(PageRefusal::UnknownCompany)),
        Err(err) => Err(access.refuse(PageRefusal::Internal(err.into()))),
    }
}

/// Headers of every pairing page response (see the module invariants).
fn page_headers() -> [(HeaderName, HeaderValue); 5] {
    [
        (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ),
    ]
}

// ----- the page ---------------------------------------------------------------

/// The pairing page.
#[utoipa::path(
    get, path = "/pair/{token}", tag = "pairing",
    params(("token" = String, Path, description = "The link's token")),
    responses(
        (status = 200, description = "The page", content_type = "text/html"),
        (status = 403, description = "The link is not valid (tampered, garbled)", content_type = "text/html"),
        (status = 404, description = "The link's company no longer exists", content_type = "text/html"),
        (status = 410, description = "The link expired", content_type = "text/html"),
    )
)]
pub async fn pairing_page(access: PairAccess) -> Response {
    let base_path = page_path(&access.token);
    let html = page::pairing_page(
        access.audience.strings,
        PageContext {
            company: access.company().as_str(),
            base_path: &base_path,
            expires_at_ms: access.claims.expires_at_ms,
            now_ms: now_ms(),
        },
    );
    (page_headers(), Html(html)).into_response()
}

/// Data of the page's `qr` event.
#[derive(Debug, Serialize)]
struct QrPush {
    /// The QR code as inline SVG markup.
    svg: String,
    /// When WhatsApp rotates it (unix ms).
    expires_at_ms: i64,
}

/// The page's live updates: `state` ([`StateView`]), `qr` (SVG) and `expired`.
#[utoipa::path(
    get, path = "/pair/{token}/events", tag = "pairing",
    params(("token" = String, Path, description = "The link's token")),
    responses(
        (status = 200, description = "Server-Sent Events: `state`, `qr`, `expired`", content_type = "text/event-stream"),
        (status = 403, content_type = "text/html"), (status = 404, content_type = "text/html"),
        (status = 410, content_type = "text/html"), (status = 503, content_type = "text/html"),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    access: PairAccess,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Refused> {
    let handle = ensure_session(&state, &access).await?;
    // Subscribe before reading the snapshot: a change in between is then
    // sent twice (harmless) instead of lost.
    let mut feed = Feed {
        events: handle.subscribe(),
        status: handle.watch_status(),
        queue: VecDeque::new(),
        expires_at: deadline(access.claims.expires_at_ms),
        lifecycle: state.lifecycle.clone(),
        strings: access.audience.strings,
        ended: false,
    };
    let status = handle.status();
    let qr = handle.current_qr();
    // The handle is not kept: the stream must end when the company is
    // deleted (its event sender then goes away).
    drop(handle);
    feed.push_status(&status);
    if let (false, Some(qr)) = (feed.ended, qr) {
        feed.push_qr(&qr);
    }
    let stream = stream::unfold(feed, Feed::next);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// A link's expiry as a tokio instant.
fn deadline(expires_at_ms: i64) -> tokio::time::Instant {
    let left = u64::try_from(expires_at_ms.saturating_sub(now_ms())).unwrap_or(0);
    tokio::time::Instant::now() + Duration::from_millis(left)
}

/// The page's event stream, as a state machine over the session's events.
struct Feed {
    events: broadcast::Receiver<SessionEvent>,
    /// Re-read when this subscriber lagged behind the broadcast.
    status: watch::Receiver<SessionStatus>,
    queue: VecDeque<Event>,
    expires_at: tokio::time::Instant,
    lifecycle: Lifecycle,
    strings: &'static Strings,
    /// Nothing follows what is queued.
    ended: bool,
}

impl Feed {
    fn push_view(&mut self, view: &StateView) {
        self.ended |= view.done;
        // A quick reconnect after a gateway restart.
        let event = json_event("state", view).retry(Duration::from_secs(2));
        self.queue.push_back(event);
    }

    fn push_status(&mut self, status: &SessionStatus) {
        self.push_view(&page::state_view(self.strings, status));
    }

    fn push_qr(&mut self, qr: &Qr) {
        match QrCode::new(qr.code.as_bytes()) {
            Ok(code) => {
                let push = QrPush {
                    svg: inline_svg(&super::qr::render_svg(&code)),
                    expires_at_ms: qr.expires_at_ms,
                };
                self.queue.push_back(json_event("qr", &push));
            }
            // A QR string too long for a QR code: not one WhatsApp sends.
            Err(err) => tracing::warn!(error = %err, "a QR code could not be rendered"),
        }
    }

    /// The next event, waiting for the session, the link's expiry or shutdown.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some((Ok(event), self));
            }
            if self.ended {
                return None;
            }
            tokio::select! {
                received = self.events.recv() => match received {
                    Ok(SessionEvent::StatusChanged(status)) => self.push_status(&status),
                    Ok(SessionEvent::QrRotated(qr)) => self.push_qr(&qr),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let status = self.status.borrow().clone();
                        self.push_status(&status);
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        self.push_view(&page::deleted_view(self.strings));
                    }
                },
                () = tokio::time::sleep_until(self.expires_at) => {
                    self.queue.push_back(Event::default().event("expired").data("{}"));
                    self.ended = true;
                }
                () = self.lifecycle.stopped() => {
                    self.push_view(&page::unavailable_view(self.strings));
                    self.ended = true;
                }
            }
        }
    }
}

fn json_event(name: &str, data: &impl Serialize) -> Event {
    // Plain structs of strings, numbers and booleans always serialize.
    Event::default()
        .event(name)
        .data(serde_json::to_string(data).unwrap_or_default())
}

/// An SVG document as markup to put inside HTML: without its XML declaration.
fn inline_svg(document: &str) -> String {
    match document.find("<svg") {
        Some(start) => document[start..].to_owned(),
        None => document.to_owned(),
    }
}

/// Start a new linking attempt (after the number was unlinked or the QR
/// codes expired): the session is started like `POST /v1/sessions/{company}`.
#[utoipa::path(
    post, path = "/pair/{token}/start", tag = "pairing",
    params(("token" = String, Path, description = "The link's token")),
    responses(
        (status = 202, description = "Starting; follow the event stream"),
        (status = 403), (status = 404), (status = 410), (status = 503),
    )
)]
pub async fn start(State(state): State<AppState>, access: PairAccess) -> Result<Response, Refused> {
    let handle = ensure_session(&state, &access).await?;
    let view = page::state_view(access.audience.strings, &handle.status());
    Ok((StatusCode::ACCEPTED, page_headers(), Json(view)).into_response())
}

/// Form of `POST /pair/{token}/pair-code`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PairCodeForm {
    /// The phone number to link, with country code.
    pub phone: String,
}

/// Answer of `POST /pair/{token}/pair-code` (JSON).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PairCodeAnswer {
    /// The 8-character code to type on the phone.
    pub code: String,
    /// The same, as the page shows it (`ABCD-1234`).
    pub display: String,
}

/// Link by phone number: the 8-character pair code, as JSON for the page's
/// script (`Accept: application/json`) or as an HTML page (without script).
#[utoipa::path(
    post, path = "/pair/{token}/pair-code", tag = "pairing",
    params(("token" = String, Path, description = "The link's token")),
    request_body(content = PairCodeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The code", body = PairCodeAnswer),
        (status = 400, description = "The phone number is not valid"),
        (status = 409, description = "Already linked"),
        (status = 403), (status = 404), (status = 410), (status = 502), (status = 503),
    )
)]
pub async fn pair_code(
    State(state): State<AppState>,
    access: PairAccess,
    form: Result<Form<PairCodeForm>, FormRejection>,
) -> Result<Response, Refused> {
    let audience = access.audience;
    let strings = audience.strings;
    let base_path = page_path(&access.token);
    let failure = |status: StatusCode, code: &str, message: &str| {
        if audience.json {
            return audience.answer(status, code, strings.title, message);
        }
        let back = page::back_link(strings, &base_path);
        let html = page::message_page(strings, strings.title, message, Some(&back));
        (status, page_headers(), Html(html)).into_response()
    };
    let phone = match form
        .ok()
        .and_then(|Form(form)| PhoneNumber::parse(&form.phone).ok())
    {
        Some(phone) => phone,
        None => {
            return Ok(failure(
                StatusCode::BAD_REQUEST,
                "invalid_phone",
                strings.error_phone,
            ));
        }
    };
    let handle = ensure_session(&state, &access).await?;
    match handle.pair_code(phone).await {
        Ok(code) => {
            tracing::info!(company.id = %access.company(), "pair code issued through a pairing link");
            if audience.json {
                let display = page::display_pair_code(&code);
                return Ok((page_headers(), Json(PairCodeAnswer { code, display })).into_response());
            }
            let fragment = page::pair_code_fragment(strings, &code, &base_path);
            let html = page::message_page(
                strings,
                strings.title,
                strings.pair_code_intro,
                Some(&fragment),
            );
            Ok((page_headers(), Html(html)).into_response())
        }
        Err(PoolError::InvalidState {
            state: SessionState::Connected,
        }) => Ok(failure(
            StatusCode::CONFLICT,
            "already_linked",
            strings.error_already_linked,
        )),
        Err(PoolError::Busy | PoolError::Gone) => Ok(failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            strings.error_busy,
        )),
        Err(PoolError::TooSoon { retry_after }) => {
            let mut response = failure(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                strings.error_too_soon,
            );
            crate::http::error::set_retry_after(&mut response, retry_after);
            Ok(response)
        }
        Err(err) => {
            // WhatsApp's or the client's refusal: worth a line for operators
            // (the code says which; no number, no code).
            tracing::warn!(company.id = %access.company(), error.code = err.code(), "pair code through a pairing link failed");
            Ok(failure(
                StatusCode::BAD_GATEWAY,
                err.code(),
                strings.error_pair_code,
            ))
        }
    }
}

/// `GET /pair` and `/pair/`: a link cut before its token (copied short from a
/// message) gets the invalid-link page, not the API's JSON 404.
async fn missing_token(headers: HeaderMap) -> Refused {
    Refused {
        refusal: PageRefusal::Invalid("missing"),
        audience: Audience::of(&headers),
    }
}

// ----- assets -----------------------------------------------------------------

/// `GET /assets/pairing/pair.css`.
async fn stylesheet() -> impl IntoResponse {
    asset("text/css; charset=utf-8", page::CSS)
}

/// `GET /assets/pairing/pair.js`.
async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", page::JS)
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Revalidate: a new gateway version may change them.
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), value.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_base_url_is_configured_or_the_requests_host() {
        let host = headers(&[(HOST, "gw.example.com:8080")]);
        assert_eq!(
            public_base(Some("https://wa.example.com"), &host).unwrap(),
            "https://wa.example.com"
        );
        assert_eq!(
            public_base(None, &host).unwrap(),
            "http://gw.example.com:8080"
        );
        assert_eq!(
            public_base(None, &headers(&[(HOST, "[::1]:80")])).unwrap(),
            "http://[::1]:80"
        );
        for bad in ["evil.com/phish?", "a@b", "<x>", ""] {
            let err = public_base(None, &headers(&[(HOST, bad)])).unwrap_err();
            assert_eq!(err.code(), "missing_host", "{bad:?}");
        }
        assert_eq!(
            public_base(None, &HeaderMap::new()).unwrap_err().code(),
            "missing_host"
        );
    }

    #[test]
    fn optional_bodies_parse_or_are_refused_with_a_code() {
        let empty: CreatePairingLinkRequest = parse_optional_json(b"").unwrap();
        assert_eq!(empty.ttl_seconds, None);
        let blank: CreatePairingLinkRequest = parse_optional_json(b" \n").unwrap();
        assert_eq!(blank.ttl_seconds, None);
        let some: CreatePairingLinkRequest =
            parse_optional_json(br#"{"ttl_seconds":120}"#).unwrap();
        assert_eq!(some.ttl_seconds, Some(120));
        let err = parse_optional_json::<CreatePairingLinkRequest>(b"{").unwrap_err();
        assert_eq!(err.code(), "invalid_json");
        let err = parse_optional_json::<CreatePairingLinkRequest>(br#"{"ttl":1}"#).unwrap_err();
        assert_eq!(err.code(), "invalid_body");
        let err =
            parse_optional_json::<CreatePairingLinkRequest>(br#"{"ttl_seconds":-1}"#).unwrap_err();
        assert_eq!(err.code(), "invalid_body");
    }

    #[test]
    fn expiry_is_rfc3339_utc() {
        assert_eq!(rfc3339(1_767_269_700_000), "2026-01-01T12:15:00Z");
    }

    #[test]
    fn svg_is_inlined_without_its_declaration() {
        let code = QrCode::new(b"2@abc").unwrap();
        let svg = inline_svg(&super::super::qr::render_svg(&code));
        assert!(
            svg.starts_with("<svg") && svg.ends_with("</svg>"),
            "{svg:.60}"
        );
        assert!(
            !svg.contains("<script") && !svg.contains("style="),
            "CSP-safe markup"
        );
    }

    #[test]
    fn refusals_have_distinct_statuses() {
        assert_eq!(PageRefusal::Expired.status(), StatusCode::GONE);
        assert_eq!(
            PageRefusal::Invalid("bad_signature").status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(PageRefusal::UnknownCompany.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            PageRefusal::from(LinkRefusal::Token(TokenError::Expired { expired_at_ms: 1 })).code(),
            "link_expired"
        );
        assert_eq!(
            PageRefusal::from(LinkRefusal::Token(TokenError::BadSignature)).code(),
            "link_invalid"
        );
    }
}
