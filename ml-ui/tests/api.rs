//! In-process tests of every endpoint and every error of the router, with a real (quickly
//! trained) model: requests go through `tower::ServiceExt::oneshot`, no socket involved.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use ml_ui::feedback::FeedbackStore;
use ml_ui::inference::{Predictor, ServedModel};
use ml_ui::metrics::Metrics;
use ml_ui::{AppState, Limits, app};
use serde_json::{Value, json};
use shared::canvas::{CanvasStyle, png_bytes, redraw};
use tower::ServiceExt;

/// A small model trained for a few seconds: enough to answer, not to be accurate.
fn model_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = tempfile::tempdir().unwrap().keep();
        let settings = trainer::testing::quick_settings(3_000, 1);
        trainer::testing::train_into(settings, &root.join("small")).unwrap().dir
    })
}

struct Fixture {
    app: Router,
    feedback: tempfile::TempDir,
}

fn fixture(with_model: bool, limits: Limits) -> Fixture {
    let predictor = Predictor::start();
    if with_model {
        let model = shared::Model::load(model_dir()).unwrap();
        predictor
            .install(ServedModel { model, version: "test-1".into(), source: "dir:test".into() })
            .unwrap();
    }
    let feedback = tempfile::tempdir().unwrap();
    let state = AppState {
        predictor,
        metrics: Arc::new(Metrics::default()),
        feedback: Arc::new(FeedbackStore::open(feedback.path()).unwrap()),
        limits,
    };
    Fixture { app: app(state), feedback }
}

fn ready() -> Fixture {
    fixture(true, Limits::default())
}

async fn send(
    app: &Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec();
    (status, headers, body)
}

fn post(path: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path).header(header::CONTENT_TYPE, content_type).body(body.into()).unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// The first MNIST test digit (a 7) re-drawn on a transparent canvas.
fn digit_png() -> Vec<u8> {
    let images = shared::idx::read_maybe_gzip(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/mnist/t10k-images-idx3-ubyte.gz"),
    )
    .unwrap();
    png_bytes(&redraw(
        &images[16..16 + 784],
        &CanvasStyle { size: (300, 300), origin: (10.0, 20.0), ..Default::default() },
    ))
}

fn data_url(png: &[u8]) -> String {
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png))
}

fn assert_error(status: StatusCode, body: &[u8], expected_status: StatusCode, expected_code: &str) {
    assert_eq!(status, expected_status, "{}", String::from_utf8_lossy(body));
    let value = json_of(body);
    assert_eq!(value["error"]["code"], expected_code, "{value}");
    assert!(!value["error"]["message"].as_str().unwrap().is_empty());
}

fn assert_prediction(status: StatusCode, body: &[u8]) -> Value {
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(body));
    let value = json_of(body);
    let probabilities: Vec<f64> =
        value["probabilities"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).collect();
    assert_eq!(probabilities.len(), 10);
    assert!((probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-3);
    let digit = value["digit"].as_u64().unwrap() as usize;
    assert!(probabilities.iter().all(|&p| p <= probabilities[digit]));
    assert_eq!(value["model_version"], "test-1");
    value
}

#[tokio::test]
async fn predicts_png_bytes_data_urls_and_pixels() {
    let f = ready();
    let png = digit_png();
    let (status, _, body) = send(&f.app, post("/api/predict", "image/png", png.clone())).await;
    assert_prediction(status, &body);

    let json = json!({ "image": data_url(&png) }).to_string();
    let (status, _, body) =
        send(&f.app, post("/api/predict", "application/json; charset=utf-8", json)).await;
    assert_prediction(status, &body);

    let pixels: Vec<f32> = (0..784)
        .map(|i| if (i % 28) == 14 && (5..23).contains(&(i / 28)) { 1.0 } else { 0.0 })
        .collect();
    let (status, _, body) = send(
        &f.app,
        post("/api/predict", "application/json", json!({ "pixels": pixels }).to_string()),
    )
    .await;
    assert_prediction(status, &body);
}

#[tokio::test]
async fn an_empty_drawing_is_422() {
    let f = ready();
    let blank = png_bytes(&image::RgbaImage::new(280, 280));
    let (status, _, body) = send(&f.app, post("/api/predict", "image/png", blank.clone())).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "empty_drawing");
    let json = json!({ "image": data_url(&blank) }).to_string();
    let (status, _, body) = send(&f.app, post("/api/predict", "application/json", json)).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "empty_drawing");
}

#[tokio::test]
async fn undecodable_and_malformed_input_is_400() {
    let f = ready();
    let png = digit_png();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("image/png", b"not a picture".to_vec(), "invalid_image"),
        ("image/png", png[..png.len() / 3].to_vec(), "invalid_image"),
        ("image/jpeg", Vec::new(), "invalid_image"),
        ("application/json", b"{\"image\": ".to_vec(), "invalid_request"),
        ("application/json", b"[1, 2, 3]".to_vec(), "invalid_request"),
        ("application/json", b"{}".to_vec(), "invalid_request"),
        (
            "application/json",
            json!({"image": "data:image/png;base64,@@@"}).to_string().into_bytes(),
            "invalid_request",
        ),
        (
            "application/json",
            json!({"image": "http://example.invalid/x.png"}).to_string().into_bytes(),
            "invalid_request",
        ),
        (
            "application/json",
            json!({"pixels": vec![0.5; 10]}).to_string().into_bytes(),
            "invalid_request",
        ),
        (
            "application/json",
            json!({"pixels": vec![2.0; 784]}).to_string().into_bytes(),
            "invalid_request",
        ),
        (
            "application/json",
            json!({"pixels": [0.1], "image": "data:image/png;base64,AA=="})
                .to_string()
                .into_bytes(),
            "invalid_request",
        ),
        (
            "application/json",
            json!({"pixels": [0.1], "extra": 1}).to_string().into_bytes(),
            "invalid_request",
        ),
    ];
    for (content_type, body, code) in cases {
        let (status, _, answer) =
            send(&f.app, post("/api/predict", content_type, body.clone())).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, code);
    }
}

#[tokio::test]
async fn bodies_and_images_over_the_limits_are_413() {
    let limits = Limits {
        body_bytes: 64 << 10,
        decode: shared::DecodeLimits { max_side: 1000, ..Default::default() },
    };
    let f = fixture(true, limits);
    let (status, _, body) =
        send(&f.app, post("/api/predict", "image/png", vec![0u8; 65 << 10])).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "too_large");

    // A few dozen bytes of PNG header claiming 60000 x 60000 pixels.
    let mut png = png_bytes(&image::RgbaImage::new(1, 1));
    png[16..20].copy_from_slice(&60_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&60_000u32.to_be_bytes());
    let mut crc = flate2_crc(&png[12..29]);
    png[29..33].swap_with_slice(&mut crc);
    let (status, _, body) = send(&f.app, post("/api/predict", "image/png", png)).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "too_large");
}

fn flate2_crc(bytes: &[u8]) -> [u8; 4] {
    // CRC-32 (IEEE), bit by bit: small enough to keep the test free of another dependency.
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    (!crc).to_be_bytes()
}

#[tokio::test]
async fn unsupported_content_types_are_415() {
    let f = ready();
    for content_type in ["text/plain", "image/tiff", "application/x-www-form-urlencoded"] {
        let (status, _, body) = send(&f.app, post("/api/predict", content_type, "abc")).await;
        assert_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    }
    let no_type = Request::post("/api/predict").body(Body::from("abc")).unwrap();
    let (status, _, body) = send(&f.app, no_type).await;
    assert_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let json = json!({ "image": "data:text/plain;base64,aGVsbG8=" }).to_string();
    let (status, _, body) = send(&f.app, post("/api/predict", "application/json", json)).await;
    assert_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
}

#[tokio::test]
async fn without_a_model_predictions_are_503_with_retry_after_and_not_ready() {
    let f = fixture(false, Limits::default());
    let (status, headers, body) =
        send(&f.app, post("/api/predict", "image/png", digit_png())).await;
    assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "model_unavailable");
    assert!(headers.get(header::RETRY_AFTER).is_some());
    let (status, _, _) = send(&f.app, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, _) = send(&f.app, get("/api/model")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, body) = send(&f.app, get("/healthz")).await;
    assert_eq!((status, json_of(&body)["status"].clone()), (StatusCode::OK, json!("alive")));
    let (status, _, body) = send(&f.app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("No model is loaded yet"));
}

#[tokio::test]
async fn health_readiness_model_page_and_assets() {
    let f = ready();
    let (status, _, body) = send(&f.app, get("/readyz")).await;
    assert_eq!(
        (status, json_of(&body)["model_version"].clone()),
        (StatusCode::OK, json!("test-1"))
    );

    let (status, _, body) = send(&f.app, get("/api/model")).await;
    let model = json_of(&body);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(model["version"], "test-1");
    assert_eq!(model["architecture"], "small");
    assert!(model["test_accuracy"].as_f64().unwrap() > 0.5);

    let (status, _, body) = send(&f.app, get("/")).await;
    let html = String::from_utf8_lossy(&body);
    assert_eq!(status, StatusCode::OK);
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<canvas id=\"pad\""), "{html}");
    assert!(html.contains("test-1") && html.contains("/static/app.js"));

    for (path, kind) in [("/static/app.js", "text/javascript"), ("/static/style.css", "text/css")] {
        let (status, headers, body) = send(&f.app, get(path)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with(kind));
        assert!(!body.is_empty());
    }
    let (status, _, body) = send(&f.app, get("/nowhere")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn metrics_count_requests_predictions_and_the_model() {
    let f = ready();
    send(&f.app, post("/api/predict", "image/png", digit_png())).await;
    send(&f.app, post("/api/predict", "text/plain", "x")).await;
    let (status, _, body) = send(&f.app, get("/metrics")).await;
    let text = String::from_utf8(body).unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains(
            r#"mlui_http_requests_total{route="/api/predict",method="POST",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"status="415"} 1"#), "{text}");
    assert!(text.contains("mlui_predictions_total{digit="), "{text}");
    assert!(text.contains("mlui_prediction_confidence_bucket"), "{text}");
    assert!(text.contains("mlui_http_request_duration_seconds_bucket"), "{text}");
}

#[tokio::test]
async fn feedback_is_stored_validated_and_exported_as_idx() {
    let f = ready();
    let png = digit_png();
    for label in [7, 1] {
        let body = json!({ "image": data_url(&png), "label": label, "predicted": 3, "model_version": "test-1" });
        let (status, _, answer) =
            send(&f.app, post("/api/feedback", "application/json", body.to_string())).await;
        assert_eq!(status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&answer));
    }
    for (body, code) in [
        (json!({ "image": data_url(&png), "label": 12 }), StatusCode::BAD_REQUEST),
        (json!({ "image": data_url(&png), "label": -1 }), StatusCode::BAD_REQUEST),
        (json!({ "image": data_url(&png) }), StatusCode::BAD_REQUEST),
        (json!({ "pixels": vec![0.0; 784], "label": 3 }), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (status, _, _) =
            send(&f.app, post("/api/feedback", "application/json", body.to_string())).await;
        assert_eq!(status, code, "{body}");
    }
    let (status, _, _) = send(&f.app, post("/api/feedback", "image/png", png)).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let out = tempfile::tempdir().unwrap();
    let store = FeedbackStore::open(f.feedback.path()).unwrap();
    assert_eq!(store.export(out.path()).unwrap(), 2);
    let exported = shared::idx::read_labelled(
        &out.path().join(ml_ui::feedback::EXPORT_IMAGES),
        &out.path().join(ml_ui::feedback::EXPORT_LABELS),
    )
    .unwrap();
    assert_eq!(exported.labels, vec![7, 1]);
    assert!(exported.image(0).iter().any(|&p| p > 200), "the stored frame has no ink");
}

#[tokio::test]
async fn the_openapi_document_describes_every_api_route() {
    let f = ready();
    let (status, _, body) = send(&f.app, get("/api/openapi.json")).await;
    let doc = json_of(&body);
    assert_eq!(status, StatusCode::OK);
    for path in ["/api/predict", "/api/model", "/api/feedback", "/healthz", "/readyz", "/metrics"] {
        assert!(doc["paths"][path].is_object(), "{path} undocumented");
    }
    for code in ["200", "400", "413", "415", "422", "503"] {
        assert!(
            doc["paths"]["/api/predict"]["post"]["responses"][code].is_object(),
            "{code} undocumented"
        );
    }
}

#[tokio::test]
async fn regression_feedback_bounds_its_fields_and_content_type_is_parsed_like_predict() {
    let f = ready();
    let pixels = vec![0.5f32; 784];
    let long = json!({ "pixels": pixels, "label": 3, "model_version": "A".repeat(4_000) });
    let (status, _, _) =
        send(&f.app, post("/api/feedback", "application/json", long.to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a 4 kB version string was stored");
    let not_a_digit = json!({ "pixels": pixels, "label": 3, "predicted": 99 });
    let (status, _, _) =
        send(&f.app, post("/api/feedback", "application/json", not_a_digit.to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "predicted 99 was stored");
    let ok = json!({ "pixels": pixels, "label": 3 }).to_string();
    let (status, _, _) =
        send(&f.app, post("/api/feedback", "Application/JSON; charset=utf-8", ok.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, _) = send(&f.app, post("/api/feedback", "application/jsonx", ok)).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn regression_odd_methods_get_json_405_and_share_one_metrics_series() {
    let f = ready();
    for method in ["M1", "M2", "DELETE"] {
        let request =
            Request::builder().method(method).uri("/api/predict").body(Body::empty()).unwrap();
        let (status, _, body) = send(&f.app, request).await;
        assert_error(status, &body, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
    let (_, _, body) = send(&f.app, get("/metrics")).await;
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains(r#"method="other",status="405"} 2"#), "{text}");
    assert!(!text.contains("M1"), "{text}");
}
