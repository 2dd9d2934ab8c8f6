//! The [`Registry`] trait every backend implements, and the operations built on it once for
//! all backends: registering with digests and lineage, verified pulls, summaries.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::fsutil::{self, FileLock};
use crate::types::{
    GIT_COMMIT_TAG, Lineage, MODEL_ARTIFACT_PATH, Metric, ModelVersion, NewVersion, Pulled,
    RegisterRequest, Run, RunSpec, RunStatus, Selector, Summary, VersionAccuracy, check_name,
};

/// The alias that marks the version in production.
pub const PRODUCTION_ALIAS: &str = "production";

/// File name of the model card inside a model directory.
pub const CARD_FILE: &str = "model.json";

/// Headline metrics taken from the model card's `metrics` object, or else from the run.
pub const HEADLINE_METRICS: [&str; 3] = ["test_accuracy", "test_loss", "train_loss"];

/// Experiment tracking and a model registry. Every call blocks; async callers use
/// `spawn_blocking`. Required methods are the backend's primitives; [`Registry::register`],
/// [`Registry::pull`] and [`Registry::summary`] are built on them, the same for every backend.
///
/// ```
/// use registry_client::{Registry, RegisterRequest, RunSpec, RunStatus, Selector};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let root = tempfile::tempdir()?;
/// let registry = registry_client::open(root.path().to_str().unwrap(), None)?;
///
/// let model_dir = root.path().join("trained");
/// std::fs::create_dir(&model_dir)?;
/// std::fs::write(model_dir.join("model.json"), r#"{"metrics": {"test_accuracy": 0.99}}"#)?;
///
/// let run = registry.start_run(&RunSpec { experiment: "digits".into(), ..Default::default() })?;
/// registry.upload_artifacts(&run.id, &model_dir, "model")?;
/// registry.finish_run(&run.id, RunStatus::Finished)?;
///
/// let request = RegisterRequest { run_id: run.id, ..Default::default() };
/// let version = registry.register("digits", &request)?;
/// assert_eq!(version.version, "1");
/// registry.set_alias("digits", "production", &version.version)?;
///
/// let dest = root.path().join("serving");
/// let pulled = registry.pull("digits", &Selector::Alias("production".into()), &dest)?;
/// assert!(!pulled.already_present);
/// assert_eq!(registry.summary("digits")?.best.unwrap().test_accuracy, 0.99);
/// # Ok(())
/// # }
/// ```
pub trait Registry: fmt::Debug + Send + Sync {
    /// Where this registry is, for people (never with credentials).
    fn describe(&self) -> String;

    /// Starts a run in `spec.experiment` (created when missing) with its params and tags.
    fn start_run(&self, spec: &RunSpec) -> Result<Run>;

    /// Adds parameters to a run.
    fn log_params(&self, run_id: &str, params: &BTreeMap<String, String>) -> Result<()>;

    /// Records metrics of a run.
    fn log_metrics(&self, run_id: &str, metrics: &[Metric]) -> Result<()>;

    /// Uploads every file under `dir` into the run's artifacts at `artifact_path`, replacing
    /// files of the same name.
    fn upload_artifacts(&self, run_id: &str, dir: &Path, artifact_path: &str) -> Result<()>;

    /// Downloads the run's artifacts under `artifact_path` into the existing directory `into`.
    fn download_artifacts(&self, run_id: &str, artifact_path: &str, into: &Path) -> Result<()>;

    /// Ends a run.
    fn finish_run(&self, run_id: &str, status: RunStatus) -> Result<()>;

    /// One run, with its latest metrics.
    fn run(&self, run_id: &str) -> Result<Run>;

    /// The runs of an experiment, newest first; none when the experiment does not exist.
    fn runs(&self, experiment: &str) -> Result<Vec<Run>>;

    /// Creates the next version of `model` (created when missing) from a run's model artifacts.
    /// Use [`Registry::register`], which computes the digests and lineage.
    fn create_version(&self, model: &str, new: &NewVersion) -> Result<ModelVersion>;

    /// Every version of a model, oldest first; none when the model does not exist.
    fn versions(&self, model: &str) -> Result<Vec<ModelVersion>>;

    /// One version.
    fn version(&self, model: &str, version: &str) -> Result<ModelVersion>;

    /// Points `alias` at `version`, moving it if it pointed elsewhere.
    fn set_alias(&self, model: &str, alias: &str, version: &str) -> Result<()>;

    /// Removes an alias.
    fn delete_alias(&self, model: &str, alias: &str) -> Result<()>;

    /// The version an alias points at.
    fn resolve_alias(&self, model: &str, alias: &str) -> Result<ModelVersion>;

    /// Downloads the files of `version` into the existing, empty directory `into`, unverified.
    /// Use [`Registry::pull`], which verifies them and moves them into place.
    fn download_version(&self, version: &ModelVersion, into: &Path) -> Result<()>;

    /// Registers the model a run made as the next version of `model`: uploads
    /// `request.dir` first when given, records the SHA-256 of every file, the headline metrics
    /// of the model card (else of the run) and the lineage (missing fields taken from the
    /// run's git tag and the card).
    fn register(&self, model: &str, request: &RegisterRequest) -> Result<ModelVersion> {
        check_name("model", model)?;
        let run = self.run(&request.run_id)?;
        let downloaded;
        let dir = match &request.dir {
            Some(dir) => {
                self.upload_artifacts(&run.id, dir, MODEL_ARTIFACT_PATH)?;
                dir.as_path()
            }
            None => {
                downloaded = tempfile::tempdir().map_err(|e| Error::io("temporary dir", e))?;
                self.download_artifacts(&run.id, MODEL_ARTIFACT_PATH, downloaded.path())?;
                downloaded.path()
            }
        };
        let files = fsutil::digest_dir(dir)?;
        if files.is_empty() {
            return Err(Error::Invalid(format!("run {} has no model files to register", run.id)));
        }
        let card = read_card(dir)?;
        let lineage = request.lineage.clone().or(Lineage {
            git_commit: run.tags.get(GIT_COMMIT_TAG).cloned().or_else(|| card_commit(&card)),
            ..Lineage::default()
        });
        let new = NewVersion {
            run_id: run.id.clone(),
            files,
            metrics: headline_metrics(&card, &run),
            lineage,
        };
        let version = self.create_version(model, &new)?;
        tracing::info!(model, version = %version.version, run = %run.id, "registered");
        Ok(version)
    }

    /// The version a selector names.
    fn select(&self, model: &str, selector: &Selector) -> Result<ModelVersion> {
        match selector {
            Selector::Version(v) => self.version(model, v),
            Selector::Alias(a) => self.resolve_alias(model, a),
        }
    }

    /// Puts a version into `dest`, verifying every file against its recorded SHA-256. The
    /// files are downloaded into a hidden sibling directory and renamed into place, so readers
    /// see the old directory or the new one, never a mix; a directory that already holds the
    /// version intact is left alone.
    fn pull(&self, model: &str, selector: &Selector, dest: &Path) -> Result<Pulled> {
        let version = self.select(model, selector)?;
        if version.files.is_empty() {
            return Err(Error::Invalid(format!(
                "version {} of {model} records no checksums; it cannot be verified",
                version.version
            )));
        }
        let name = dest
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Invalid(format!("invalid destination {}", dest.display())))?;
        let parent = fsutil::parent_of(dest);
        fsutil::create_dir_all(parent)?;
        let _lock = FileLock::acquire(&parent.join(format!(".{name}.lock")))?;
        for leftover in fsutil::entries_with_prefix(parent, &format!(".{name}.partial-"))? {
            tracing::info!(path = %leftover.display(), "removing an interrupted pull");
            fsutil::remove_all(&leftover)?;
        }
        if dest.is_dir() && verify(dest, &version).is_ok() {
            tracing::info!(model, version = %version.version, dest = %dest.display(), "already present");
            return Ok(Pulled { version, dest: dest.to_owned(), already_present: true });
        }
        let staging = tempfile::Builder::new()
            .prefix(&format!(".{name}.partial-"))
            .tempdir_in(parent)
            .map_err(|e| Error::io(parent, e))?;
        self.download_version(&version, staging.path())?;
        verify(staging.path(), &version)?;
        replace_dir(&staging.keep(), dest, name)?;
        tracing::info!(model, version = %version.version, dest = %dest.display(), "pulled");
        Ok(Pulled { version, dest: dest.to_owned(), already_present: false })
    }

    /// Figures for reports: number of versions, average and best test accuracy, and the
    /// production version's accuracy.
    fn summary(&self, model: &str) -> Result<Summary> {
        let versions = self.versions(model)?;
        let accuracies: Vec<VersionAccuracy> = versions
            .iter()
            .filter_map(|v| {
                let test_accuracy = v.test_accuracy()?;
                Some(VersionAccuracy { version: v.version.clone(), test_accuracy })
            })
            .collect();
        let average_test_accuracy = (!accuracies.is_empty()).then(|| {
            accuracies.iter().map(|a| a.test_accuracy).sum::<f64>() / accuracies.len() as f64
        });
        let best =
            accuracies.iter().max_by(|a, b| a.test_accuracy.total_cmp(&b.test_accuracy)).cloned();
        let production = match self.resolve_alias(model, PRODUCTION_ALIAS) {
            Ok(v) => Some(VersionAccuracy {
                test_accuracy: v.test_accuracy().unwrap_or(f64::NAN),
                version: v.version,
            }),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        Ok(Summary {
            model: model.to_owned(),
            versions: versions.len(),
            average_test_accuracy,
            best,
            production,
        })
    }
}

/// Checks that `dir` holds exactly the files of `version`, each with its recorded digest.
pub fn verify(dir: &Path, version: &ModelVersion) -> Result<()> {
    let mismatch = |file: &str, detail: String| Error::ChecksumMismatch {
        version: version.version.clone(),
        file: file.to_owned(),
        detail,
    };
    let present = fsutil::list_files(dir)?;
    if let Some(extra) = present.iter().find(|f| !version.files.contains_key(*f)) {
        return Err(mismatch(extra, "not part of the version".into()));
    }
    for (file, expected) in &version.files {
        let path = dir.join(file);
        if !path.is_file() {
            return Err(mismatch(file, "missing".into()));
        }
        let actual = fsutil::sha256_file(&path)?;
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(mismatch(file, format!("SHA-256 is {actual}, expected {expected}")));
        }
    }
    Ok(())
}

/// Moves `staged` to `dest`, replacing what was there.
fn replace_dir(staged: &Path, dest: &Path, name: &str) -> Result<()> {
    if !dest.exists() {
        return fsutil::rename(staged, dest);
    }
    if !dest.is_dir() {
        return Err(Error::Invalid(format!("{} exists and is not a directory", dest.display())));
    }
    let old = fsutil::parent_of(dest).join(format!(".{name}.partial-old-{}", std::process::id()));
    fsutil::rename(dest, &old)?;
    fsutil::rename(staged, dest)?;
    fsutil::remove_all(&old)
}

fn read_card(dir: &Path) -> Result<serde_json::Value> {
    let path = dir.join(CARD_FILE);
    if !path.is_file() {
        return Ok(serde_json::Value::Null);
    }
    fsutil::read_json(&path)
}

fn card_commit(card: &serde_json::Value) -> Option<String> {
    card.pointer("/source/git_commit").and_then(|c| c.as_str()).map(str::to_owned)
}

fn headline_metrics(card: &serde_json::Value, run: &Run) -> BTreeMap<String, f64> {
    HEADLINE_METRICS
        .iter()
        .filter_map(|key| {
            let from_card = card.get("metrics").and_then(|m| m.get(*key)).and_then(|v| v.as_f64());
            let value = from_card.or_else(|| run.metrics.get(*key).copied())?;
            Some(((*key).to_owned(), value))
        })
        .collect()
}
