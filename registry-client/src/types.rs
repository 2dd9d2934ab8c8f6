//! The values that go in and out of a registry: runs, metrics, versions, lineage, summaries.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Tag holding the git commit of a run (MLflow's own name for it).
pub const GIT_COMMIT_TAG: &str = "mlflow.source.git.commit";

/// Tag holding the git branch of a run (MLflow's own name for it).
pub const GIT_BRANCH_TAG: &str = "mlflow.source.git.branch";

/// Tag saying whether the checkout had uncommitted changes.
pub const GIT_DIRTY_TAG: &str = "git.dirty";

/// Artifact folder of a run that holds the model directory.
pub const MODEL_ARTIFACT_PATH: &str = "model";

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Where the code of a run came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitInfo {
    /// Commit hash.
    pub commit: Option<String>,
    /// Branch name.
    pub branch: Option<String>,
    /// Whether the checkout had uncommitted changes.
    pub dirty: Option<bool>,
}

impl GitInfo {
    /// The tags that record this information on a run.
    pub fn tags(&self) -> BTreeMap<String, String> {
        let mut tags = BTreeMap::new();
        if let Some(c) = &self.commit {
            tags.insert(GIT_COMMIT_TAG.to_owned(), c.clone());
        }
        if let Some(b) = &self.branch {
            tags.insert(GIT_BRANCH_TAG.to_owned(), b.clone());
        }
        if let Some(d) = self.dirty {
            tags.insert(GIT_DIRTY_TAG.to_owned(), d.to_string());
        }
        tags
    }
}

/// What a new run is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Experiment to log into; created when missing.
    pub experiment: String,
    /// Human-readable run name.
    pub name: Option<String>,
    /// Parameters (training settings).
    pub params: BTreeMap<String, String>,
    /// Free-form tags.
    pub tags: BTreeMap<String, String>,
    /// The code version, recorded as tags.
    pub git: GitInfo,
}

/// The state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    /// Still going.
    Running,
    /// Ended well.
    Finished,
    /// Ended in an error.
    Failed,
    /// Stopped from outside.
    Killed,
}

impl RunStatus {
    /// MLflow's name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Killed => "KILLED",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().as_str() {
            "RUNNING" | "SCHEDULED" => Ok(Self::Running),
            "FINISHED" => Ok(Self::Finished),
            "FAILED" => Ok(Self::Failed),
            "KILLED" => Ok(Self::Killed),
            _ => Err(Error::Invalid(format!("unknown run status {s:?}"))),
        }
    }
}

/// One measurement of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Metric name, for example `test_accuracy`.
    pub key: String,
    /// The value.
    pub value: f64,
    /// Step (the epoch for per-epoch figures).
    pub step: i64,
    /// When it was measured, in milliseconds since the Unix epoch.
    pub timestamp: i64,
}

impl Metric {
    /// A metric measured now.
    pub fn now(key: impl Into<String>, value: f64, step: i64) -> Self {
        Self { key: key.into(), value, step, timestamp: now_millis() }
    }
}

/// A run as the registry knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Run id.
    pub id: String,
    /// Experiment name.
    pub experiment: String,
    /// Run name.
    pub name: Option<String>,
    /// State.
    pub status: RunStatus,
    /// Start, in milliseconds since the Unix epoch.
    pub start_time: i64,
    /// End, in milliseconds since the Unix epoch.
    pub end_time: Option<i64>,
    /// Parameters.
    pub params: BTreeMap<String, String>,
    /// Tags, git metadata included.
    pub tags: BTreeMap<String, String>,
    /// The latest value of every metric.
    pub metrics: BTreeMap<String, f64>,
}

/// Where a model version came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// Commit of the code that trained it.
    pub git_commit: Option<String>,
    /// The CI pipeline that registered it.
    pub pipeline_url: Option<String>,
    /// The merge request it was trained for.
    pub merge_request_url: Option<String>,
}

impl Lineage {
    /// Lineage from GitLab CI's variables (`CI_COMMIT_SHA`, `CI_PIPELINE_URL`,
    /// `CI_MERGE_REQUEST_IID` with `CI_MERGE_REQUEST_PROJECT_URL` or `CI_PROJECT_URL`); empty
    /// outside CI.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Lineage from the variables `var` gives.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let project = var("CI_MERGE_REQUEST_PROJECT_URL").or_else(|| var("CI_PROJECT_URL"));
        let merge_request_url = match (project, var("CI_MERGE_REQUEST_IID")) {
            (Some(project), Some(iid)) => Some(format!("{project}/-/merge_requests/{iid}")),
            _ => None,
        };
        Self {
            git_commit: var("CI_COMMIT_SHA"),
            pipeline_url: var("CI_PIPELINE_URL"),
            merge_request_url,
        }
    }

    /// Fills the fields that are missing here from `other`.
    pub fn or(self, other: Lineage) -> Self {
        Self {
            git_commit: self.git_commit.or(other.git_commit),
            pipeline_url: self.pipeline_url.or(other.pipeline_url),
            merge_request_url: self.merge_request_url.or(other.merge_request_url),
        }
    }
}

/// A registered model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// Registered model name.
    pub model: String,
    /// Version: `1`, `2`, ... (MLflow, embedded) or SemVer (GitLab).
    pub version: String,
    /// The run that made it.
    pub run_id: Option<String>,
    /// When it was registered, in milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Aliases pointing at it.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Headline metrics (`test_accuracy`, `test_loss`, ...).
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Where it came from.
    #[serde(default)]
    pub lineage: Lineage,
    /// SHA-256 (lowercase hex) of every file, by path relative to the model directory.
    pub files: BTreeMap<String, String>,
}

impl ModelVersion {
    /// Fraction of test images classified correctly, when recorded.
    pub fn test_accuracy(&self) -> Option<f64> {
        self.metrics.get("test_accuracy").copied()
    }
}

/// What a backend needs to create a version; [`crate::Registry::register`] assembles it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVersion {
    /// The run whose artifacts (at [`MODEL_ARTIFACT_PATH`]) become the version.
    pub run_id: String,
    /// SHA-256 of every file.
    pub files: BTreeMap<String, String>,
    /// Headline metrics.
    pub metrics: BTreeMap<String, f64>,
    /// Lineage.
    pub lineage: Lineage,
}

/// What to register.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegisterRequest {
    /// The run that made the model.
    pub run_id: String,
    /// A model directory to upload as the run's model artifacts first; without it the run's
    /// artifacts are used as they are.
    pub dir: Option<std::path::PathBuf>,
    /// Lineage; missing fields are taken from the run's git tags and the model card.
    pub lineage: Lineage,
}

/// A version, by number or by alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// An exact version.
    Version(String),
    /// Whatever version an alias points at.
    Alias(String),
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version(v) => write!(f, "version {v}"),
            Self::Alias(a) => write!(f, "alias {a}"),
        }
    }
}

/// A version and its test accuracy, in a [`Summary`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionAccuracy {
    /// The version.
    pub version: String,
    /// Its test accuracy.
    pub test_accuracy: f64,
}

/// Figures about one registered model, for reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Registered model name.
    pub model: String,
    /// Number of versions.
    pub versions: usize,
    /// Mean test accuracy over the versions that record one.
    pub average_test_accuracy: Option<f64>,
    /// The most accurate version.
    pub best: Option<VersionAccuracy>,
    /// The version the `production` alias points at, with its accuracy when recorded.
    pub production: Option<VersionAccuracy>,
}

/// The outcome of [`crate::Registry::pull`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pulled {
    /// The version now in the directory.
    pub version: ModelVersion,
    /// The directory.
    pub dest: std::path::PathBuf,
    /// True when the directory already held this version intact and nothing was downloaded.
    pub already_present: bool,
}

/// Checks a model or alias name: letters, digits, `.`, `_`, `-`, not starting with `.`.
pub fn check_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid {kind} name {name:?}: use letters, digits, '.', '_' and '-', not starting with '.'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lineage_from_gitlab_ci_variables() {
        let vars: BTreeMap<&str, &str> = [
            ("CI_COMMIT_SHA", "abc123"),
            ("CI_PIPELINE_URL", "https://gitlab.example/p/-/pipelines/7"),
            ("CI_PROJECT_URL", "https://gitlab.example/p"),
            ("CI_MERGE_REQUEST_IID", "12"),
        ]
        .into();
        let lineage = Lineage::from_vars(|k| vars.get(k).map(|v| (*v).to_owned()));
        assert_eq!(lineage.git_commit.as_deref(), Some("abc123"));
        assert_eq!(
            lineage.merge_request_url.as_deref(),
            Some("https://gitlab.example/p/-/merge_requests/12")
        );
        assert_eq!(Lineage::from_vars(|_| None), Lineage::default());
    }

    #[test]
    fn names_cannot_escape_their_directory() {
        for bad in ["", "..", ".hidden", "a/b", "a b", "x\\y"] {
            assert!(check_name("model", bad).is_err(), "{bad:?}");
        }
        check_name("model", "digits-mlp_v1.2").expect("valid");
    }
}
