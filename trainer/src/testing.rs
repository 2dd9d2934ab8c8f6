//! Trained models for the tests of this and other crates: the committed settings, quick
//! settings for seconds-long runs, and the default model trained once per test binary (or
//! taken from `DIGIT_LAB_TEST_MODEL` when the test command has trained it already).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use shared::TrainingSettings;

use crate::train::{TrainOutcome, TrainRequest, train};

/// The repository's shipped MNIST.
pub fn mnist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist")
}

/// The committed default settings.
pub fn default_settings() -> TrainingSettings {
    crate::config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml"))
        .unwrap_or_else(|e| panic!("the committed config must load: {e:#}"))
}

/// Settings for a quick run: the small network on the first `images` training images.
pub fn quick_settings(images: usize, epochs: usize) -> TrainingSettings {
    let mut s = default_settings();
    s.architecture = shared::Architecture::Small;
    s.train_limit = Some(images);
    s.epochs = epochs;
    s
}

/// Trains into `out` with the shipped data.
pub fn train_into(settings: TrainingSettings, out: &Path) -> anyhow::Result<TrainOutcome> {
    let request = TrainRequest {
        settings,
        data_dir: mnist_dir(),
        out_dir: out.to_owned(),
        replace: false,
        source_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
    };
    train(&request, &mut ())
}

/// A model trained with the committed default settings: the one in `DIGIT_LAB_TEST_MODEL`
/// when set, otherwise trained here once per process.
pub fn default_model() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        if let Some(dir) = std::env::var_os("DIGIT_LAB_TEST_MODEL") {
            return PathBuf::from(dir);
        }
        let root = tempfile::tempdir().map(tempfile::TempDir::keep);
        let out = root.unwrap_or_else(|e| panic!("temporary directory: {e}")).join("model");
        train_into(default_settings(), &out)
            .unwrap_or_else(|e| panic!("training the default model: {e:#}"));
        out
    })
}
