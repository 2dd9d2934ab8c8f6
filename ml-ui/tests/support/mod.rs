//! Helpers shared by the end-to-end tests: a trained model, MNIST test digits, and the real
//! server listening on a free loopback port.

#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ml_ui::feedback::FeedbackStore;
use ml_ui::inference::Predictor;
use ml_ui::metrics::Metrics;
use ml_ui::source::{DirSource, ModelSource, refresh};
use ml_ui::{AppState, Limits};
use shared::dataset::{Dataset, DatasetSpec};
pub use trainer::testing::{
    default_model, default_settings, mnist_dir, quick_settings, train_into,
};

/// The shipped MNIST, loaded once per test binary.
pub fn mnist() -> &'static Dataset {
    static DATA: OnceLock<Dataset> = OnceLock::new();
    DATA.get_or_init(|| Dataset::load(&mnist_dir(), &DatasetSpec::mnist()).expect("shipped MNIST"))
}

/// Copies the card and weights of the model in `from` into `to` (created if needed), weights
/// first so that the card, which names the version, comes last.
pub fn copy_model(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("model directory");
    for file in [shared::card::WEIGHTS_FILE, shared::card::CARD_FILE] {
        std::fs::copy(from.join(file), to.join(file))
            .unwrap_or_else(|e| panic!("copying {} into {}: {e}", file, to.display()));
    }
}

/// The real server, listening on a free loopback port, serving a model directory.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub url: String,
    /// The server's shared state: predictor, metrics, feedback store.
    pub state: AppState,
    /// Where the served model's versions come from.
    pub source: DirSource,
    /// Directory of the feedback store.
    pub feedback_dir: PathBuf,
    _scratch: tempfile::TempDir,
}

impl TestServer {
    /// Loads the model in `model_dir` (as `ml-ui --model` does) and serves it. Must run inside a
    /// multi-threaded tokio runtime; the server lives as long as the runtime.
    pub async fn start(model_dir: &Path) -> Self {
        log_to_test_output();
        let scratch = tempfile::tempdir().expect("temporary directory");
        let feedback_dir = scratch.path().join("feedback");
        let feedback = Arc::new(FeedbackStore::open(&feedback_dir).expect("feedback store"));
        let state = AppState {
            predictor: Predictor::start(),
            metrics: Arc::new(Metrics::default()),
            feedback,
            limits: Limits::default(),
        };
        let mut source = DirSource::new(model_dir);
        let installed = refresh(&mut source, &state.predictor, &state.metrics, &mut None);
        assert!(installed, "the model in {} did not load", model_dir.display());
        let url = serve(state.clone()).await;
        Self { url, state, source, feedback_dir, _scratch: scratch }
    }

    /// The version the source names now (the digest of the card on disk).
    pub fn version_on_disk(&mut self) -> String {
        self.source.latest().expect("reading the served model's card").0
    }
}

/// Shows the server's logs (level from `RUST_LOG`, warnings by default) with the test's output.
pub fn log_to_test_output() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_test_writer()
        .try_init();
}

/// Serves the application on `127.0.0.1:0` in a spawned task and returns its base URL.
pub async fn serve(state: AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding port 0");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(listener, ml_ui::app(state)).await.expect("serving");
    });
    format!("http://{addr}")
}
