//! The HTTP interface: the page, the JSON API, health, readiness and metrics, built as one
//! router by [`app`] so tests can drive it in-process.

pub mod error;
pub mod input;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use shared::DecodeLimits;
use tower_http::timeout::TimeoutLayer;

use crate::feedback::FeedbackStore;
use crate::inference::{Prediction, Predictor};
use crate::metrics::Metrics;
use crate::model_info::ModelInfo;
use error::ApiError;
use input::{PictureJson, frame_of, picture_from_body, picture_from_json};

/// Limits on what requests may carry.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted body, in bytes.
    pub body_bytes: usize,
    /// Limits on decoding the image inside.
    pub decode: DecodeLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Self { body_bytes: 4 << 20, decode: DecodeLimits::default() }
    }
}

/// Longest a request may take, body upload included: slow clients are cut off with 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Batched inference on the served model.
    pub predictor: Predictor,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Where corrections go.
    pub feedback: Arc<FeedbackStore>,
    /// Request limits.
    pub limits: Limits,
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/static/app.js", get(script))
        .route("/static/style.css", get(style))
        .route("/api/predict", post(predict))
        .route("/api/model", get(model))
        .route("/api/feedback", post(feedback))
        .route("/api/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

/// Counts and times every request by route and status.
async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    // Only standard methods become label values, so clients cannot create series at will.
    let method = match request.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "HEAD" | "OPTIONS" | "PATCH") => m.to_owned(),
        _ => "other".to_owned(),
    };
    let response = next.run(request).await;
    state.metrics.request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

async fn page(State(state): State<AppState>) -> Html<String> {
    let info = state.predictor.current().map(|m| ModelInfo::from(m.as_ref()));
    Html(crate::pages::index(info))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
        .into_response()
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("../../static/app.js"))
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("../../static/style.css"))
}

/// Reads the whole body, refusing more than the limit.
async fn read_body(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    axum::body::to_bytes(body, limit).await.map(|b| b.to_vec()).map_err(|e| {
        let too_long =
            std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("length limit"));
        if too_long || e.to_string().contains("length limit") {
            ApiError::TooLarge(format!("the request body exceeds {limit} bytes"))
        } else {
            ApiError::BadRequest(format!("the request body could not be read: {e}"))
        }
    })
}

/// Longest model version a correction may name.
const MAX_VERSION_LEN: usize = 200;

async fn predict(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Prediction>, ApiError> {
    let bytes = read_body(body, state.limits.body_bytes).await?;
    let picture = picture_from_body(&headers, &bytes)?;
    if !state.predictor.is_ready() {
        return Err(ApiError::ModelUnavailable);
    }
    let frame = frame_of(picture, state.limits.decode).await?;
    let prediction = state.predictor.predict(frame).await?;
    state.metrics.prediction(prediction.digit, prediction.probabilities[prediction.digit]);
    Ok(Json(prediction))
}

async fn model(State(state): State<AppState>) -> Result<Json<ModelInfo>, ApiError> {
    let served = state.predictor.current().ok_or(ApiError::ModelUnavailable)?;
    Ok(Json(ModelInfo::from(served.as_ref())))
}

/// A correction sent by a user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackRequest {
    image: Option<String>,
    pixels: Option<Vec<f32>>,
    label: i64,
    predicted: Option<u8>,
    model_version: Option<String>,
}

async fn feedback(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(body, state.limits.body_bytes).await?;
    if input::media_type(&headers).as_deref() != Some("application/json") {
        return Err(ApiError::UnsupportedMediaType("feedback must be application/json".into()));
    }
    let request: FeedbackRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    if request.predicted.is_some_and(|p| usize::from(p) >= shared::CLASSES) {
        return Err(ApiError::BadRequest("\"predicted\" must be a digit 0-9".into()));
    }
    if request.model_version.as_ref().is_some_and(|v| v.len() > MAX_VERSION_LEN) {
        return Err(ApiError::BadRequest(format!(
            "\"model_version\" is longer than {MAX_VERSION_LEN} bytes"
        )));
    }
    let label =
        u8::try_from(request.label).ok().filter(|l| usize::from(*l) < shared::CLASSES).ok_or_else(
            || ApiError::BadRequest(format!("label {} is not a digit 0-9", request.label)),
        )?;
    let picture = picture_from_json(PictureJson { image: request.image, pixels: request.pixels })?;
    let frame = frame_of(picture, state.limits.decode).await?;
    let store = state.feedback.clone();
    let (predicted, version) = (request.predicted, request.model_version);
    let id = tokio::task::spawn_blocking(move || store.add(&frame, label, predicted, version))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(format!("storing feedback: {e:#}")))?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "label": label }))).into_response())
}

async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "alive" }))
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.predictor.current() {
        Some(served) if state.predictor.is_ready() => {
            Json(json!({ "status": "ready", "model_version": served.version })).into_response()
        }
        _ => ApiError::ModelUnavailable.into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

async fn method_not_allowed() -> Response {
    let body = json!({ "error": { "code": "method_not_allowed", "message": "this route does not take that method" } });
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

async fn not_found() -> Response {
    let body = json!({ "error": { "code": "not_found", "message": "no such route" } });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}
