//! Reading a picture from a request body: raw image bytes with their content type, or JSON
//! carrying a data URL or the 784 pixels of a frame. Preprocessing (which decodes) runs on the
//! pool of one thread per core, never on the async workers.

use std::sync::OnceLock;

use axum::http::{HeaderMap, header};
use base64::Engine;
use serde::Deserialize;
use shared::{DecodeLimits, Frame};

use super::error::ApiError;

/// The JSON forms of a picture.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PictureJson {
    /// A data URL such as a canvas produces: `data:image/png;base64,...`.
    #[serde(default)]
    pub image: Option<String>,
    /// 784 intensities in 0..1, row-major, already in the 28x28 frame.
    #[serde(default)]
    pub pixels: Option<Vec<f32>>,
}

/// What a request carried, before decoding.
#[derive(Debug)]
pub enum Picture {
    /// Encoded image bytes.
    Encoded(Vec<u8>),
    /// A frame given directly.
    Pixels(Vec<f32>),
}

/// The media type of a request (`Content-Type` without parameters, lower case).
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// Reads a picture from `body` according to the request's content type.
pub fn picture_from_body(headers: &HeaderMap, body: &[u8]) -> Result<Picture, ApiError> {
    let content_type = media_type(headers).ok_or_else(|| {
        ApiError::UnsupportedMediaType("a Content-Type header is required".into())
    })?;
    match content_type.as_str() {
        "application/json" => {
            let json: PictureJson = serde_json::from_slice(body)
                .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
            picture_from_json(json)
        }
        t if IMAGE_TYPES.contains(&t) => Ok(Picture::Encoded(body.to_vec())),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "content type {other:?} is not supported; send image/png, image/jpeg or application/json"
        ))),
    }
}

/// The image media types the decoder handles.
pub const IMAGE_TYPES: &[&str] =
    &["image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp"];

/// Reads the picture out of its JSON form.
pub fn picture_from_json(json: PictureJson) -> Result<Picture, ApiError> {
    match (json.image, json.pixels) {
        (Some(url), None) => Ok(Picture::Encoded(decode_data_url(&url)?)),
        (None, Some(pixels)) => Ok(Picture::Pixels(pixels)),
        _ => Err(ApiError::BadRequest(
            "give exactly one of \"image\" (a data URL) or \"pixels\"".into(),
        )),
    }
}

/// The bytes of a base64 `data:image/...` URL.
fn decode_data_url(url: &str) -> Result<Vec<u8>, ApiError> {
    let rest = url.strip_prefix("data:").ok_or_else(|| {
        ApiError::BadRequest("\"image\" must be a data URL (data:image/png;base64,...)".into())
    })?;
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| ApiError::BadRequest("the data URL has no comma".into()))?;
    let media = meta.split(';').next().unwrap_or("");
    if !media.starts_with("image/") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "data URL of type {media:?} is not an image"
        )));
    }
    if !meta.ends_with(";base64") {
        return Err(ApiError::BadRequest("the data URL must be base64-encoded".into()));
    }
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| ApiError::BadRequest(format!("the data URL is not valid base64: {e}")))
}

/// Decodes and preprocesses a picture into a frame, off the async workers.
pub async fn frame_of(picture: Picture, limits: DecodeLimits) -> Result<Frame, ApiError> {
    match picture {
        Picture::Pixels(values) => Ok(shared::preprocess::frame_from_pixels(&values)?),
        Picture::Encoded(bytes) => {
            let (reply, answer) = tokio::sync::oneshot::channel();
            preprocessing_pool().spawn(move || {
                let _ = reply.send(shared::preprocess::preprocess(&bytes, limits));
            });
            answer
                .await
                .map_err(|e| ApiError::Internal(format!("preprocessing task failed: {e}")))?
                .map_err(ApiError::from)
        }
    }
}

/// The threads that decode and preprocess pictures, one per core. Decoding is pure CPU work:
/// more at once would not finish sooner, and each decode may hold up to
/// `DecodeLimits::max_alloc` bytes, so a fixed pool also bounds memory however many requests
/// arrive together; the allocator's per-thread caches stay few and warm.
fn preprocessing_pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("preprocess-{i}"))
            .build()
            .or_else(|_| rayon::ThreadPoolBuilder::new().num_threads(1).build())
            .unwrap_or_else(|e| panic!("cannot start a preprocessing thread: {e}"))
    })
}
