//! The command line: what was typed, parsed by clap, then turned into settings.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use shared::card::{Optimiser, Schedule};
use shared::{Architecture, TrainingSettings};

/// Train and evaluate the digit network on MNIST.
#[derive(Debug, Parser)]
#[command(name = "trainer", version, about)]
pub struct Cli {
    /// Log format: readable text or one JSON object per line.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// For people.
    Text,
    /// For log collectors.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model and write its directory (model.safetensors, model.json, metrics.jsonl).
    Train(TrainArgs),
    /// Classify the test set with a trained model and report the figures.
    Evaluate(EvaluateArgs),
    /// Fetch a data set into the cache, verifying every file's checksum.
    Fetch(FetchArgs),
    /// Compare a candidate model with the registry: Markdown review, charts, metrics report.
    Report(crate::report::ReportArgs),
}

/// Arguments of `trainer train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training settings (TOML); the flags below override its fields.
    #[arg(long, env = "TRAINER_CONFIG", default_value = "trainer/config.toml")]
    pub config: PathBuf,

    /// Directory with the data set's IDX files (default: the shipped MNIST, or the cache).
    #[arg(long, env = "TRAINER_DATA")]
    pub data: Option<PathBuf>,

    /// Model directory to create; it appears only once training has succeeded.
    #[arg(long)]
    pub out: PathBuf,

    /// Replace the output directory if it already exists.
    #[arg(long)]
    pub force: bool,

    /// Cache directory for fetched data sets.
    #[arg(long, env = "TRAINER_CACHE")]
    pub cache: Option<PathBuf>,

    /// Overrides of the configuration file.
    #[command(flatten)]
    pub overrides: Overrides,

    /// Where to log the run.
    #[command(flatten)]
    pub tracking: Box<crate::tracking::TrackingArgs>,
}

/// Flags that override fields of the configuration file.
#[derive(Debug, Default, Args)]
pub struct Overrides {
    /// Network architecture.
    #[arg(long, value_parser = parse_architecture)]
    pub architecture: Option<Architecture>,
    /// Data set name (mnist, fashion-mnist).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Passes over the training set.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Seed of every random choice.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Optimiser.
    #[arg(long, value_parser = parse_optimiser)]
    pub optimiser: Option<Optimiser>,
    /// Peak learning rate.
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Learning-rate schedule (one-cycle, cosine, constant).
    #[arg(long, value_parser = parse_schedule)]
    pub schedule: Option<Schedule>,
    /// Decoupled weight decay.
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Dropout probability on the hidden layer.
    #[arg(long)]
    pub dropout: Option<f32>,
    /// Train on the first N training images only.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Turn augmentation off.
    #[arg(long)]
    pub no_augmentation: bool,
    /// Add the training images in DIR (train-images-idx3-ubyte + train-labels-idx1-ubyte, as
    /// `ml-ui export-feedback` writes them); repeatable.
    #[arg(long, value_name = "DIR")]
    pub extra_data: Vec<PathBuf>,
}

impl Overrides {
    /// Applies the flags that were given and validates the result.
    pub fn apply(&self, mut s: TrainingSettings) -> anyhow::Result<TrainingSettings> {
        macro_rules! set {
            ($($field:ident),*) => { $(if let Some(v) = self.$field.clone() { s.$field = v; })* };
        }
        set!(
            architecture,
            dataset,
            epochs,
            batch_size,
            seed,
            optimiser,
            learning_rate,
            schedule,
            weight_decay,
            dropout
        );
        if self.train_limit.is_some() {
            s.train_limit = self.train_limit;
        }
        if self.no_augmentation {
            s.augmentation.enabled = false;
        }
        s.extra_data.extend(self.extra_data.iter().cloned());
        s.validate().map_err(anyhow::Error::msg)?;
        Ok(s)
    }
}

fn parse_architecture(s: &str) -> Result<Architecture, String> {
    s.parse()
}

fn parse_optimiser(s: &str) -> Result<Optimiser, String> {
    serde_plain(s, "adamw, sgd")
}

fn parse_schedule(s: &str) -> Result<Schedule, String> {
    serde_plain(s, "one-cycle, cosine, constant")
}

/// Parses a unit enum variant by its serde (kebab-case) name.
fn serde_plain<T: serde::de::DeserializeOwned>(s: &str, known: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("unknown value {s:?} (known: {known})"))
}

/// Arguments of `trainer evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Model directory (model.json + model.safetensors).
    #[arg(long)]
    pub model: PathBuf,

    /// Directory with the data set's IDX files (default: as for training).
    #[arg(long, env = "TRAINER_DATA")]
    pub data: Option<PathBuf>,

    /// Cache directory for fetched data sets.
    #[arg(long, env = "TRAINER_CACHE")]
    pub cache: Option<PathBuf>,

    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,

    /// Exit with status 4 when the accuracy (0..1) is below this, for pipelines that gate on it.
    #[arg(long, value_parser = parse_fraction)]
    pub min_accuracy: Option<f64>,
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a fraction between 0 and 1")),
    }
}

/// Arguments of `trainer fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Built-in data set to fetch (mnist, fashion-mnist).
    #[arg(long, default_value = "fashion-mnist", conflicts_with = "spec")]
    pub dataset: String,

    /// A data set specification (TOML: name and, per file, name, sha256 and urls).
    #[arg(long)]
    pub spec: Option<PathBuf>,

    /// Cache directory; the files go into a folder named after the data set.
    #[arg(long, env = "TRAINER_CACHE")]
    pub cache: Option<PathBuf>,
}

/// The configuration file: as given, or, when the default `trainer/config.toml` is not below
/// the working directory, the one committed next to this crate's source.
pub fn config_path(given: &Path) -> PathBuf {
    if given.exists() || given != Path::new(DEFAULT_CONFIG) {
        return given.to_owned();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml")
}

/// The configuration file used when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "trainer/config.toml";

/// The cache directory: the flag, else `$XDG_CACHE_HOME/digit-lab`, else `~/.cache/digit-lab`.
pub fn cache_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_owned();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("digit-lab")
}

/// Where a data set's files are when `--data` is not given: MNIST as shipped in the
/// repository (relative to the working directory, else to this crate's source), anything else
/// in the cache.
pub fn default_data_dir(dataset: &str, cache: Option<&Path>) -> PathBuf {
    if dataset == "mnist" {
        let local = PathBuf::from("data/mnist");
        if local.is_dir() {
            return local;
        }
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist");
        if shipped.is_dir() {
            return shipped;
        }
    }
    cache_dir(cache).join(dataset)
}
