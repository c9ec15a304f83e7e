//! Checking a link: [`PairAccess`] verifies every `/pair/{token}` request
//! (signature, expiry, the company still being the one the link was made for)
//! and turns a refusal into a human page or, for the page's own `fetch`
//! calls, the same words as JSON.

use axum::Json;
use axum::extract::{FromRequestParts, Path};
use axum::http::header::{ACCEPT, ACCEPT_LANGUAGE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::page_headers;
use crate::domain::{CompanyId, now_ms};
use crate::http::AppState;
use crate::pairing::LinkRefusal;
use crate::pairing::page::{self};
use crate::pairing::strings::{self, Strings};
use crate::pairing::token::{Claims, TokenError};
use crate::pool::{PoolError, SessionHandle};

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
    /// 429: this link holds as many open live feeds as allowed.
    #[error("too many pages of this pairing link are open")]
    TooManyStreams,
    /// 503: starting, shutting down, or busy with this company.
    #[error("the gateway cannot serve the pairing link right now")]
    Unavailable,
    /// 500: a storage failure (logged once, here).
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl PageRefusal {
    pub(super) fn status(&self) -> StatusCode {
        match self {
            Self::Expired => StatusCode::GONE,
            Self::Invalid(_) => StatusCode::FORBIDDEN,
            Self::UnknownCompany => StatusCode::NOT_FOUND,
            Self::TooManyStreams => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(super) fn code(&self) -> &'static str {
        match self {
            Self::Expired => "link_expired",
            Self::Invalid(_) => "link_invalid",
            Self::UnknownCompany => "link_company_gone",
            Self::TooManyStreams => "too_many_streams",
            Self::Unavailable => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// Title and body of the page, in `strings`' language.
    pub(super) fn words(&self, strings: &'static Strings) -> (&'static str, &'static str) {
        match self {
            Self::Expired => (strings.expired_title, strings.expired_body),
            Self::Invalid(_) => (strings.invalid_title, strings.invalid_body),
            Self::UnknownCompany => (strings.unknown_title, strings.unknown_body),
            Self::TooManyStreams | Self::Unavailable | Self::Internal(_) => {
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
            // The refusal page of an invalid link: it must not work again.
            LinkRefusal::Revoked => Self::Invalid("revoked"),
        }
    }
}

/// How the caller wants answers: the language, and HTML or JSON.
#[derive(Debug, Clone, Copy)]
pub struct Audience {
    pub(super) strings: &'static Strings,
    pub(super) json: bool,
}

impl Audience {
    pub(super) fn of(headers: &HeaderMap) -> Self {
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
    pub(super) fn answer(
        self,
        status: StatusCode,
        code: &str,
        title: &str,
        message: &str,
    ) -> Response {
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
    pub(super) refusal: PageRefusal,
    pub(super) audience: Audience,
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
    pub(super) token: String,
    pub(super) claims: Claims,
    pub(super) audience: Audience,
}

impl PairAccess {
    pub(super) fn company(&self) -> &CompanyId {
        &self.claims.company
    }

    pub(super) fn refuse(&self, refusal: PageRefusal) -> Refused {
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
pub(super) async fn ensure_session(
    state: &AppState,
    access: &PairAccess,
) -> Result<SessionHandle, Refused> {
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
