//! Extractors that behave like axum's `Json` and `Query` but reject with the
//! API's JSON envelope ([`ApiError`]) and a stable code instead of axum's
//! plain-text rejections, and the JSON-body rules every body shares.
//!
//! Every request body of the API is a JSON object: serde would also read a
//! struct from an array (`[null, null]`), which the document does not allow,
//! so anything but an object is refused (422 `invalid_body`).

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::error::ApiError;

/// A JSON body: 400 `invalid_json`, 422 `invalid_body`,
/// 415 `unsupported_media_type` or 413 `payload_too_large` when it is not one.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<serde_json::Value>::from_request(req, state).await?;
        from_object(value).map(Self)
    }
}

/// `T` from a parsed JSON body that must be an object (422 `invalid_body`
/// otherwise, or when it has the wrong shape).
pub fn from_object<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(invalid_body("the body must be a JSON object".into()));
    }
    serde_json::from_value(value).map_err(|err| invalid_body(err.to_string()))
}

fn invalid_body(message: String) -> ApiError {
    ApiError::refused(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", message)
}

/// A query string: 400 `invalid_query` when it does not parse.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(value) = Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// `deserialize_with` for an optional integer body field: JSON Schema's
/// `integer` (what the document says) is any number without a fraction, so
/// `900.0` is read as `900`, not refused.
pub fn integer<'de, D: Deserializer<'de>, T: TryFrom<i128>>(de: D) -> Result<Option<T>, D::Error> {
    use serde::de::Error as _;
    let Some(number) = Option::<serde_json::Number>::deserialize(de)? else {
        return Ok(None);
    };
    let whole = if let Some(n) = number.as_i64() {
        Some(i128::from(n))
    } else if let Some(n) = number.as_u64() {
        Some(i128::from(n))
    } else {
        // An f64 without a fraction within ±2^63 converts exactly.
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
            .map(|f| f as i128)
    };
    whole
        .and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("{number} is not an integer in range")))
}
