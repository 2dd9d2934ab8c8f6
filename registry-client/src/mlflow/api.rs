//! The MLflow REST API 2.0 messages this client sends and reads, and their conversion into
//! the crate's types.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::Result;
use crate::types::{Lineage, ModelVersion, Run, RunStatus};

/// Most metrics in one `runs/log-batch` request.
pub(crate) const MAX_METRICS_PER_BATCH: usize = 1000;

/// Most params in one `runs/log-batch` request.
pub(crate) const MAX_PARAMS_PER_BATCH: usize = 100;

/// Most tags in one `runs/log-batch` request.
pub(crate) const MAX_TAGS_PER_BATCH: usize = 100;

/// Model-version tag prefix of a file's SHA-256.
pub(crate) const SHA256_TAG: &str = "registry.sha256.";

/// Model-version tag prefix of a headline metric.
pub(crate) const METRIC_TAG: &str = "registry.metric.";

/// Model-version tags of the lineage.
pub(crate) const GIT_COMMIT_TAG: &str = "registry.git_commit";
pub(crate) const PIPELINE_TAG: &str = "registry.pipeline_url";
pub(crate) const MERGE_REQUEST_TAG: &str = "registry.merge_request_url";

/// Registered-model tag prefix standing in for an alias where aliases cannot be written.
pub(crate) const ALIAS_TAG: &str = "registry.alias.";

/// A key and a value (params and tags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct KeyValue {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// Key-value pairs from a map.
pub(crate) fn pairs(map: &BTreeMap<String, String>) -> Vec<KeyValue> {
    map.iter().map(|(key, value)| KeyValue { key: key.clone(), value: value.clone() }).collect()
}

fn to_map(pairs: Vec<KeyValue>) -> BTreeMap<String, String> {
    pairs.into_iter().map(|p| (p.key, p.value)).collect()
}

/// MLflow writes 64-bit integers as JSON numbers, some servers as strings.
fn int64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Number(i64),
        Text(String),
    }
    match Int::deserialize(d)? {
        Int::Number(n) => Ok(n),
        Int::Text(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

fn opt_int64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<i64>, D::Error> {
    int64(d).map(Some)
}

#[derive(Debug, Deserialize)]
pub(crate) struct ExperimentResponse {
    pub experiment: Experiment,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Experiment {
    pub experiment_id: String,
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CreateExperimentResponse {
    pub experiment_id: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RunResponse {
    pub run: WireRun,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SearchRunsResponse {
    #[serde(default)]
    pub runs: Vec<WireRun>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireRun {
    pub info: RunInfo,
    #[serde(default)]
    pub data: RunData,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RunInfo {
    pub run_id: String,
    pub experiment_id: String,
    pub run_name: Option<String>,
    pub status: String,
    #[serde(deserialize_with = "int64", default)]
    pub start_time: i64,
    #[serde(deserialize_with = "opt_int64", default)]
    pub end_time: Option<i64>,
    pub artifact_uri: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RunData {
    #[serde(default)]
    pub metrics: Vec<WireMetric>,
    #[serde(default)]
    pub params: Vec<KeyValue>,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireMetric {
    pub key: String,
    pub value: f64,
    #[serde(deserialize_with = "int64", default)]
    pub timestamp: i64,
    #[serde(deserialize_with = "int64", default)]
    pub step: i64,
}

impl WireRun {
    /// The run, given its experiment's name.
    pub(crate) fn into_run(self, experiment: String) -> Result<Run> {
        Ok(Run {
            status: self.info.status.parse().unwrap_or(RunStatus::Running),
            id: self.info.run_id,
            experiment,
            name: self.info.run_name,
            start_time: self.info.start_time,
            end_time: self.info.end_time,
            params: to_map(self.data.params),
            tags: to_map(self.data.tags),
            metrics: self.data.metrics.into_iter().map(|m| (m.key, m.value)).collect(),
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ModelVersionResponse {
    pub model_version: WireModelVersion,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SearchVersionsResponse {
    #[serde(default)]
    pub model_versions: Vec<WireModelVersion>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireModelVersion {
    pub name: String,
    pub version: String,
    #[serde(deserialize_with = "int64", default)]
    pub creation_timestamp: i64,
    pub run_id: Option<String>,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
    #[serde(default)]
    pub aliases: Vec<String>,
}

impl WireModelVersion {
    /// The version, with digests, metrics and lineage read back from its tags.
    pub(crate) fn into_version(self) -> ModelVersion {
        let tags = to_map(self.tags);
        let with_prefix = |prefix: &str| {
            tags.iter()
                .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_owned(), v.clone())))
                .collect::<BTreeMap<_, _>>()
        };
        let metrics = with_prefix(METRIC_TAG)
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
            .collect();
        ModelVersion {
            lineage: Lineage {
                git_commit: tags.get(GIT_COMMIT_TAG).cloned(),
                pipeline_url: tags.get(PIPELINE_TAG).cloned(),
                merge_request_url: tags.get(MERGE_REQUEST_TAG).cloned(),
            },
            files: with_prefix(SHA256_TAG),
            metrics,
            model: self.name,
            version: self.version,
            run_id: self.run_id.filter(|r| !r.is_empty()),
            created_at: self.creation_timestamp,
            aliases: self.aliases,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct RegisteredModelResponse {
    pub registered_model: RegisteredModel,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RegisteredModel {
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

impl RegisteredModel {
    /// Aliases stored as tags, alias -> version.
    pub(crate) fn tag_aliases(self) -> BTreeMap<String, String> {
        self.tags
            .into_iter()
            .filter_map(|t| Some((t.key.strip_prefix(ALIAS_TAG)?.to_owned(), t.value)))
            .collect()
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListArtifactsResponse {
    #[serde(default)]
    pub files: Vec<FileInfo>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct FileInfo {
    pub path: String,
    #[serde(default)]
    pub is_dir: bool,
}

/// An empty answer.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Empty {}
