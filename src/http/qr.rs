//! `GET /v1/sessions/{company}/qr`: the current QR code to scan, as JSON (raw
//! code, expiry, base64 PNG) or, with `?format=png|svg|raw`, as the image or
//! text itself.
//!
//! The QR code is a credential while it is valid (whoever scans it links their
//! phone to the company): responses are `Cache-Control: no-store` and nothing
//! here logs it.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use qrcode::QrCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::access::CompanyAccess;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiQuery;
use super::sessions::session;
use super::{AppState, no_store};

/// Side of the rendered images, in pixels (at least; modules stay whole).
const IMAGE_SIZE: u32 = 264;

/// Answer of `GET /v1/sessions/{company}/qr` (JSON format).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct QrView {
    /// The raw QR string (what the QR encodes).
    #[schema(example = "2@Zm9v…,bmNr…,aWQ…,YWR2…")]
    pub code: String,
    /// When WhatsApp rotates this code (unix ms).
    pub expires_at_ms: i64,
    /// The QR code as a PNG image, base64 (standard alphabet, padded).
    pub png_base64: String,
}

crate::domain::redacted_debug!(QrView { expires_at_ms });

/// Output format of the QR endpoint.
#[derive(Debug, Default, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QrFormat {
    /// JSON [`QrView`] (the default).
    #[default]
    Json,
    /// `image/png`.
    Png,
    /// `image/svg+xml`.
    Svg,
    /// `text/plain`: the raw QR string.
    Raw,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QrQuery {
    /// `json` (default), `png`, `svg` or `raw`.
    #[serde(default)]
    pub format: QrFormat,
}

/// The current QR code.
#[utoipa::path(
    get, path = "/v1/sessions/{company}/qr", tag = "sessions",
    params(("company" = String, Path, description = "Company id"), QrQuery),
    responses(
        (status = 200, description = "The current QR code: JSON by default, the image with `?format=png` or `svg`, the raw string with `?format=raw`", content(
            (QrView = "application/json"),
            (String = "image/png"),
            (String = "image/svg+xml"),
            (String = "text/plain"),
        )),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`no_qr`: nothing to scan in this state (`error.state`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn current_qr(
    State(state): State<AppState>,
    access: CompanyAccess,
    ApiQuery(query): ApiQuery<QrQuery>,
) -> Result<Response, ApiError> {
    let handle = session(&state, &access)?;
    let Some(qr) = handle.current_qr() else {
        return Err(ApiError::NoQr {
            state: handle.status().state.as_str().to_owned(),
        });
    };
    let code = QrCode::new(qr.code.as_bytes()).map_err(ApiError::internal)?;
    let response = match query.format {
        QrFormat::Json => {
            let png_base64 = STANDARD.encode(render_png(&code)?);
            (
                no_store(),
                Json(QrView {
                    code: qr.code,
                    expires_at_ms: qr.expires_at_ms,
                    png_base64,
                }),
            )
                .into_response()
        }
        QrFormat::Png => (
            no_store(),
            [(CONTENT_TYPE, HeaderValue::from_static("image/png"))],
            render_png(&code)?,
        )
            .into_response(),
        QrFormat::Svg => (
            no_store(),
            [(CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"))],
            render_svg(&code),
        )
            .into_response(),
        QrFormat::Raw => (
            no_store(),
            [(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            qr.code,
        )
            .into_response(),
    };
    Ok(response)
}

/// A black-on-white PNG of `code` with a quiet zone.
pub fn render_png(code: &QrCode) -> Result<Vec<u8>, ApiError> {
    let image = code
        .render::<image::Luma<u8>>()
        .min_dimensions(IMAGE_SIZE, IMAGE_SIZE)
        .build();
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(ApiError::internal)?;
    Ok(png)
}

/// An SVG document of `code` with a quiet zone.
pub fn render_svg(code: &QrCode) -> String {
    code.render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(IMAGE_SIZE, IMAGE_SIZE)
        .build()
}

/// `qr_text` as SVG markup to put inside HTML (no XML declaration), for
/// the pages that show a live QR code (the pairing page, the console);
/// `None` for a text too long for a QR code (not one WhatsApp sends).
pub fn inline_svg(qr_text: &str) -> Option<String> {
    let code = QrCode::new(qr_text.as_bytes())
        .inspect_err(|err| tracing::warn!(error = %err, "a QR code could not be rendered"))
        .ok()?;
    let document = render_svg(&code);
    Some(match document.find("<svg") {
        Some(start) => document[start..].to_owned(),
        None => document,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "2@AAAAAAAAAAAAAAAAAAAAAAAA,BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=,CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC=,DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD=,1";

    #[test]
    fn png_is_a_decodable_image_of_the_requested_size() {
        let code = QrCode::new(SAMPLE.as_bytes()).unwrap();
        let png = render_png(&code).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let decoded = image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap();
        assert!(decoded.width() >= IMAGE_SIZE && decoded.width() == decoded.height());
        // Both colours are present: it is a code, not a blank square.
        let luma = decoded.to_luma8();
        assert!(luma.pixels().any(|p| p.0[0] == 0) && luma.pixels().any(|p| p.0[0] == 255));
    }

    #[test]
    fn svg_is_an_svg_document() {
        let svg = render_svg(&QrCode::new(SAMPLE.as_bytes()).unwrap());
        assert!(
            svg.starts_with("<?xml") && svg.contains("<svg") && svg.trim_end().ends_with("</svg>")
        );
    }
}
