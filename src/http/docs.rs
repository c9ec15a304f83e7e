//! `/docs`: the API document (`/openapi.json`) rendered by Swagger UI,
//! through utoipa's integration with its `vendored` feature: the Swagger UI
//! files are inside the `utoipa-swagger-ui-vendored` crate and embedded in
//! the binary, so nothing is downloaded at build or run time. Like the
//! console, it is for people and not part of `/openapi.json`.
//!
//! Its pages carry the console's headers, with one loosening Swagger UI
//! needs: inline `style` attributes (its React components set them). Scripts
//! and everything else still come only from this gateway.

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::response::Response;
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::AppState;

/// Where the rendered docs live.
pub const PATH: &str = "/docs";

/// Swagger UI at `/docs/`, reading the gateway's own `/openapi.json`.
pub fn router() -> Router<AppState> {
    let config = Config::from("/openapi.json")
        // No call to Swagger's public validator (another origin).
        .validator_url("none")
        .display_operation_id(true);
    Router::from(SwaggerUi::new(PATH).config(config)).layer(axum::middleware::map_response(headers))
}

async fn headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}
