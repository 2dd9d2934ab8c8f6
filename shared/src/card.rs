//! The model card: everything known about a trained model, saved as `model.json` next to its
//! weights, so that a model can be judged, traced to its code and data, and loaded correctly.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::Evaluation;
use crate::network::Architecture;

/// Version of the card's own layout.
pub const CARD_FORMAT: u32 = 1;

/// File name of the card inside a model directory.
pub const CARD_FILE: &str = "model.json";

/// File name of the weights inside a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// File name of the per-epoch metrics inside a model directory.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// The affine map from pixel intensity (0 background to 1 ink) to network input.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    /// Subtracted first.
    pub mean: f32,
    /// Then divided by.
    pub std: f32,
}

impl Normalisation {
    /// Mean and standard deviation of the MNIST training pixels.
    pub const MNIST: Normalisation = Normalisation { mean: 0.1307, std: 0.3081 };

    /// Normalises one intensity.
    #[inline]
    pub fn apply(self, intensity: f32) -> f32 {
        (intensity - self.mean) / self.std
    }
}

/// What the network reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Frame height in pixels.
    pub height: usize,
    /// Frame width in pixels.
    pub width: usize,
    /// Memory layout of a batch, always `NHWC`.
    pub layout: String,
    /// The normalisation applied to intensities in 0..1.
    pub normalisation: Normalisation,
}

impl Default for InputSpec {
    fn default() -> Self {
        Self {
            height: crate::FRAME_SIDE,
            width: crate::FRAME_SIDE,
            layout: "NHWC".into(),
            normalisation: Normalisation::MNIST,
        }
    }
}

/// The architecture a model was built with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchitectureRef {
    /// Architecture name.
    pub name: Architecture,
    /// Layout version of that architecture.
    pub version: u32,
    /// Number of trainable values.
    pub parameters: usize,
    /// Multiply-adds of one forward pass for one image.
    pub multiply_adds: usize,
}

impl From<Architecture> for ArchitectureRef {
    fn from(a: Architecture) -> Self {
        Self {
            name: a,
            version: a.version(),
            parameters: a.parameter_count(),
            multiply_adds: a.multiply_adds(),
        }
    }
}

/// The optimiser that updates the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Optimiser {
    /// Adam with decoupled weight decay.
    Adamw,
    /// Plain stochastic gradient descent.
    Sgd,
}

/// How the learning rate moves over training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// The same rate throughout.
    Constant,
    /// Linear warm-up, then cosine decay to a small fraction of the peak.
    Cosine,
    /// Warm-up to the peak and cosine annealing far below the start (Smith's one-cycle).
    OneCycle,
}

/// Random distortions applied to training images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augmentation {
    /// Whether to distort at all.
    pub enabled: bool,
    /// Largest rotation either way, in degrees.
    pub max_rotation_degrees: f32,
    /// Largest relative change of size either way (0.1 means 90 % to 110 %).
    pub max_scale: f32,
    /// Largest shift along each axis, in pixels.
    pub max_shift_pixels: f32,
}

impl Default for Augmentation {
    fn default() -> Self {
        Self { enabled: true, max_rotation_degrees: 10.0, max_scale: 0.1, max_shift_pixels: 2.0 }
    }
}

/// The settings of a training run: the committed `trainer/config.toml`, after any overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSettings {
    /// The network to train.
    pub architecture: Architecture,
    /// Name of the data set (`mnist`, `fashion-mnist`).
    pub dataset: String,
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per optimisation step.
    pub batch_size: usize,
    /// Seed of every random choice: initial weights, order, augmentation, dropout.
    pub seed: u64,
    /// The optimiser.
    pub optimiser: Optimiser,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// How the learning rate moves.
    pub schedule: Schedule,
    /// Fraction of all steps spent warming up (cosine and one-cycle schedules).
    pub warmup_fraction: f64,
    /// Decoupled weight decay (AdamW only).
    pub weight_decay: f64,
    /// Probability of dropping each hidden unit during training.
    pub dropout: f32,
    /// Train on the first this many training images only (quick experiments and tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_limit: Option<usize>,
    /// Random distortions of training images.
    pub augmentation: Augmentation,
    /// Directories of extra training images (IDX `train-images-idx3-ubyte` and
    /// `train-labels-idx1-ubyte`, such as exported user corrections), added to the training set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_data: Vec<std::path::PathBuf>,
}

impl TrainingSettings {
    /// Checks that the settings describe a run that can happen, naming the first bad field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let finite_positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{name} must be a positive number, got {v}"))
            }
        };
        if self.epochs == 0 {
            return Err("epochs must be at least 1".into());
        }
        if !(1..=65_536).contains(&self.batch_size) {
            return Err(format!("batch_size must be between 1 and 65536, got {}", self.batch_size));
        }
        finite_positive("learning_rate", self.learning_rate)?;
        if !(0.0..1.0).contains(&self.warmup_fraction) {
            return Err(format!("warmup_fraction must be in [0, 1), got {}", self.warmup_fraction));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(format!(
                "weight_decay must be zero or positive, got {}",
                self.weight_decay
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        if self.train_limit == Some(0) {
            return Err("train_limit must be at least 1".into());
        }
        let a = &self.augmentation;
        let ranges = [
            ("augmentation.max_rotation_degrees", a.max_rotation_degrees, 90.0),
            ("augmentation.max_scale", a.max_scale, 0.5),
            ("augmentation.max_shift_pixels", a.max_shift_pixels, 8.0),
        ];
        for (name, value, limit) in ranges {
            if !(0.0..=limit).contains(&value) {
                return Err(format!("{name} must be between 0 and {limit}, got {value}"));
            }
        }
        Ok(())
    }
}

/// One data file a model was trained or evaluated on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFingerprint {
    /// Data set name.
    pub dataset: String,
    /// Standard file name.
    pub file: String,
    /// SHA-256 of the decompressed bytes.
    pub sha256: String,
    /// Number of items.
    pub items: usize,
}

/// Where the code that trained a model came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// Commit hash, when trained from a git checkout.
    pub git_commit: Option<String>,
    /// Whether the checkout had uncommitted changes.
    pub git_dirty: Option<bool>,
}

/// How long training took.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Reading and verifying the data, in seconds.
    pub data_seconds: f64,
    /// Training and evaluating, in seconds.
    pub training_seconds: f64,
    /// Each epoch, in seconds.
    pub epoch_seconds: Vec<f64>,
}

/// Headline figures of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Fraction of test images classified correctly (0..1).
    pub test_accuracy: f64,
    /// Mean cross-entropy on the test set.
    pub test_loss: f64,
    /// Mean cross-entropy over the last training epoch.
    pub train_loss: f64,
    /// The full test evaluation.
    pub test: Evaluation,
}

/// Everything known about a trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Layout version of this card.
    pub format: u32,
    /// The network.
    pub architecture: ArchitectureRef,
    /// What the network reads.
    pub input: InputSpec,
    /// Class names, index = class.
    pub classes: Vec<String>,
    /// How it was trained.
    pub training: TrainingSettings,
    /// How good it is.
    pub metrics: Metrics,
    /// What it was trained and tested on.
    pub data: Vec<DataFingerprint>,
    /// Which code trained it.
    pub source: SourceInfo,
    /// How long training took.
    pub timings: Timings,
    /// Version of the trainer that made it.
    pub trainer_version: String,
    /// When training finished.
    pub created_at: DateTime<Utc>,
}

impl ModelCard {
    /// Reads and checks a card.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let card: Self = serde_json::from_str(&text)
            .map_err(|e| Error::InvalidModel(format!("{}: {e}", path.display())))?;
        card.check()?;
        Ok(card)
    }

    /// Writes the card atomically as pretty JSON.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text =
            serde_json::to_string_pretty(self).map_err(|e| Error::InvalidModel(e.to_string()))?;
        crate::fsutil::write_atomic(path, format!("{text}\n").as_bytes())
    }

    /// Checks that this build can load the model the card describes.
    pub fn check(&self) -> Result<()> {
        if self.format != CARD_FORMAT {
            return Err(Error::InvalidModel(format!(
                "card format {} is not supported (expected {CARD_FORMAT})",
                self.format
            )));
        }
        let arch = self.architecture.name;
        if self.architecture.version != arch.version() {
            return Err(Error::InvalidModel(format!(
                "weights are for {arch} version {}, this build has version {}",
                self.architecture.version,
                arch.version()
            )));
        }
        let expected = InputSpec::default();
        if (self.input.height, self.input.width, self.input.layout.as_str())
            != (expected.height, expected.width, expected.layout.as_str())
        {
            return Err(Error::InvalidModel(format!(
                "input {}x{} {} is not supported",
                self.input.height, self.input.width, self.input.layout
            )));
        }
        let n = self.input.normalisation;
        if !(n.mean.is_finite() && n.std.is_finite() && n.std > 0.0) {
            return Err(Error::InvalidModel(format!("invalid normalisation {n:?}")));
        }
        if self.classes.len() != crate::CLASSES {
            return Err(Error::InvalidModel(format!(
                "{} classes, expected {}",
                self.classes.len(),
                crate::CLASSES
            )));
        }
        Ok(())
    }
}
