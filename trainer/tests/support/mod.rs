//! Helpers shared by the trainer's tests: settings, data and a trained model.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use shared::TrainingSettings;
use trainer::train::{TrainOutcome, TrainRequest, train};

/// The repository's shipped MNIST.
pub fn mnist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist")
}

/// The committed default settings.
pub fn default_settings() -> TrainingSettings {
    trainer::config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml"))
        .expect("committed config")
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

/// A model trained with the committed default settings: the one in `DIGIT_LAB_TEST_MODEL` when
/// the test command has trained it already, otherwise trained here once per test binary.
pub fn default_model() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        if let Some(dir) = std::env::var_os("DIGIT_LAB_TEST_MODEL") {
            return PathBuf::from(dir);
        }
        let root = tempfile::tempdir().expect("temporary directory").keep();
        let out = root.join("model");
        train_into(default_settings(), &out).expect("training the default model");
        out
    })
}
