//! Prometheus metrics: requests and latency by route and status, predictions by digit, a
//! confidence histogram, batch sizes and the model being served.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets, linear_buckets};
use prometheus_client::registry::Registry;

/// Labels of a finished request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The matched route pattern, or `unmatched`.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Response status code.
    pub status: u16,
}

/// Labels of a latency observation.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The matched route pattern.
    pub route: String,
    /// Response status code.
    pub status: u16,
}

/// Labels of a prediction.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DigitLabels {
    /// The predicted digit.
    pub digit: u8,
}

/// Labels of the served model.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    /// Its version.
    pub version: String,
}

/// All metrics of the server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    predictions: Family<DigitLabels, Counter>,
    confidence: Histogram,
    model: Family<ModelLabels, Gauge>,
    served_version: Mutex<Option<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mlui");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route and status",
            latency.clone(),
        );
        let predictions = Family::<DigitLabels, Counter>::default();
        registry.register("predictions", "Predictions by predicted digit", predictions.clone());
        let confidence = Histogram::new(linear_buckets(0.1, 0.1, 10));
        registry.register(
            "prediction_confidence",
            "Probability of the predicted digit",
            confidence.clone(),
        );
        let model = Family::<ModelLabels, Gauge>::default();
        registry.register("model_info", "The model version being served (value 1)", model.clone());
        Self {
            registry,
            requests,
            latency,
            predictions,
            confidence,
            model,
            served_version: Mutex::new(None),
        }
    }
}

impl Metrics {
    /// Records a finished request.
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let labels = RequestLabels { route: route.to_owned(), method: method.to_owned(), status };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&RouteLabels { route: route.to_owned(), status })
            .observe(seconds);
    }

    /// Records a prediction.
    pub fn prediction(&self, digit: usize, confidence: f32) {
        self.predictions.get_or_create(&DigitLabels { digit: digit as u8 }).inc();
        self.confidence.observe(f64::from(confidence));
    }

    /// Marks `version` as the one being served.
    pub fn serving(&self, version: &str) {
        let mut served =
            self.served_version.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(old) = served.take() {
            self.model.get_or_create(&ModelLabels { version: old }).set(0);
        }
        self.model.get_or_create(&ModelLabels { version: version.to_owned() }).set(1);
        *served = Some(version.to_owned());
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}
