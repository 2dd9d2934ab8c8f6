//! Every way a request can fail, each with its status and a stable code, answered as JSON
//! `{"error": {"code": "...", "message": "..."}}`. Client mistakes are not logged as errors;
//! internal failures are logged once, here.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::inference::InferenceError;

/// Seconds a client should wait before retrying while no model is loaded.
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The picture has no ink.
    #[error("the drawing is empty: draw a digit first")]
    EmptyDrawing,
    /// The body is not what the endpoint accepts (bad JSON, bad base64, bad pixels...).
    #[error("{0}")]
    BadRequest(String),
    /// The image bytes cannot be decoded.
    #[error("cannot decode the image: {0}")]
    UndecodableImage(String),
    /// The body or the image exceeds the limits.
    #[error("{0}")]
    TooLarge(String),
    /// The content type (or image format) is not supported.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// No model is loaded yet.
    #[error("no model is loaded yet; retry shortly")]
    ModelUnavailable,
    /// Something broke on the server.
    #[error("internal error")]
    Internal(String),
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: String,
}

impl ApiError {
    /// The status and stable code of each failure.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::EmptyDrawing => (StatusCode::UNPROCESSABLE_ENTITY, "empty_drawing"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::UndecodableImage(_) => (StatusCode::BAD_REQUEST, "invalid_image"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::ModelUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "model_unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Internal(detail) = &self {
            tracing::error!(%detail, "request failed");
        }
        let body = Body { error: Detail { code, message: self.to_string() } };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

impl From<shared::Error> for ApiError {
    fn from(e: shared::Error) -> Self {
        use shared::Error as E;
        match e {
            E::EmptyDrawing => Self::EmptyDrawing,
            E::ImageTooLarge(m) => Self::TooLarge(format!("image too large: {m}")),
            E::UnsupportedImageFormat(m) => {
                Self::UnsupportedMediaType(format!("unsupported image format: {m}"))
            }
            E::UndecodableImage(m) => Self::UndecodableImage(m),
            E::InvalidPixels(m) => Self::BadRequest(format!("invalid pixels: {m}")),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<InferenceError> for ApiError {
    fn from(e: InferenceError) -> Self {
        match e {
            InferenceError::NoModel => Self::ModelUnavailable,
            InferenceError::Failed(m) => Self::Internal(m),
        }
    }
}
