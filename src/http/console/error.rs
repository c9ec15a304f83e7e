//! What the console answers when it refuses: a page in plain words with the
//! stable code beside them (`data-code`), never JSON and never a stack
//! trace. A request without a live session is sent to the sign-in page.

use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};

use super::layout;
use super::strings::EN;
use crate::http::error::{ApiError, set_retry_after};

/// Why a console request was refused.
#[derive(Debug)]
pub enum ConsoleError {
    /// No live session: 303 to the sign-in page.
    SignInRequired,
    /// A form without the session's CSRF token (403 `csrf_invalid`).
    Csrf,
    /// A form that does not have the expected fields (400 `invalid_form`).
    BadForm,
    /// Another company's page for a company token (403 `forbidden`).
    Forbidden,
    /// No such page or company (404 `not_found`).
    NotFound,
    /// The console's state is missing: a wiring fault (500 `internal`).
    Internal,
    /// The API refused the action (its status and code).
    Api(ApiError),
}

impl From<crate::pool::PoolError> for ConsoleError {
    fn from(error: crate::pool::PoolError) -> Self {
        Self::Api(ApiError::from(error))
    }
}

impl From<ApiError> for ConsoleError {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

/// The refusal page: `status`, the stable `code` and the words.
pub fn refusal_page(
    status: StatusCode,
    code: &str,
    message: &str,
    detail: Option<&str>,
) -> Response {
    let body = maud::html! {
        section #message data-code=(code) {
            h1 { (EN.error_title) }
            p.error { (message) }
            @if let Some(detail) = detail {
                p { code { (detail) } }
            }
            p { a href="/console" { (EN.back) } }
        }
    };
    (status, layout::bare(EN.error_title, &body)).into_response()
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            Self::SignInRequired => (
                StatusCode::SEE_OTHER,
                layout::page_headers(),
                [(LOCATION, "/console/sign-in")],
            )
                .into_response(),
            Self::Csrf => refusal_page(StatusCode::FORBIDDEN, "csrf_invalid", EN.error_csrf, None),
            Self::BadForm => {
                refusal_page(StatusCode::BAD_REQUEST, "invalid_form", EN.error_csrf, None)
            }
            Self::Forbidden => {
                refusal_page(StatusCode::FORBIDDEN, "forbidden", EN.error_forbidden, None)
            }
            Self::NotFound => {
                refusal_page(StatusCode::NOT_FOUND, "not_found", EN.error_not_found, None)
            }
            Self::Internal => refusal_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                EN.error_internal,
                None,
            ),
            Self::Api(error) => api_refusal(error),
        }
    }
}

/// The API's refusal as a page: its status and code, and its message unless
/// it is internal (logged by the API's own mapping, never shown).
fn api_refusal(error: ApiError) -> Response {
    let (status, code) = (error.status(), error.code());
    let retry_after = match &error {
        ApiError::AuthThrottled { retry_after } => Some(*retry_after),
        _ => None,
    };
    let mut response = if status == StatusCode::INTERNAL_SERVER_ERROR {
        // Logged there, once.
        drop(error.into_response());
        refusal_page(status, code, EN.error_internal, None)
    } else if status == StatusCode::NOT_FOUND {
        refusal_page(status, code, EN.error_not_found, None)
    } else {
        refusal_page(status, code, EN.error_refused, Some(&error.to_string()))
    };
    if let Some(wait) = retry_after {
        set_retry_after(&mut response, wait);
    }
    response
}

/// `GET /console/…` that is no page.
pub async fn not_found() -> ConsoleError {
    ConsoleError::NotFound
}
