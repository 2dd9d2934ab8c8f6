//! The MLflow backend: the REST API 2.0 of an `mlflow server`, and GitLab's MLflow-compatible
//! model registry (`<gitlab>/api/v4/projects/<id>/ml/mlflow`, recognised by that path).
//!
//! MLflow keeps no checksums, so the SHA-256 of every file, the headline metrics and the
//! lineage are stored as model-version tags (`registry.sha256.<file>`, `registry.metric.<key>`,
//! `registry.git_commit`, ...). Artifacts go through the server's artifact proxy
//! (`mlflow server --serve-artifacts`), so the client needs no storage credentials.
//!
//! GitLab differences: GitLab cannot write model-version aliases, so aliases are stored as
//! registered-model tags `registry.alias.<alias>` = version, and read back the same way (the
//! MLflow UI does not show them as aliases). GitLab numbers versions with SemVer, which the
//! crate treats as opaque strings. Run artifacts that GitLab does not serve through an
//! MLflow artifact endpoint cannot be listed: register with a model directory (`--dir`)
//! there.

mod api;
mod artifacts;

use std::collections::BTreeMap;
use std::path::Path;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use url::Url;

use self::api::{
    ALIAS_TAG, CreateExperimentResponse, Empty, ExperimentResponse, GIT_COMMIT_TAG, KeyValue,
    MAX_METRICS_PER_BATCH, MAX_PARAMS_PER_BATCH, MAX_TAGS_PER_BATCH, MERGE_REQUEST_TAG, METRIC_TAG,
    ModelVersionResponse, PIPELINE_TAG, RegisteredModelResponse, RunResponse, SHA256_TAG,
    SearchRunsResponse, SearchVersionsResponse, WireMetric, WireRun, pairs,
};
use self::artifacts::ArtifactRoot;
use crate::error::{Error, Result};
use crate::http::{HttpClient, HttpSettings, Retry, redact};
use crate::registry::Registry;
use crate::token::Token;
use crate::types::{
    MODEL_ARTIFACT_PATH, Metric, ModelVersion, NewVersion, Run, RunSpec, RunStatus, check_name,
    now_millis,
};

/// Which server speaks the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    /// An `mlflow server`.
    Mlflow,
    /// GitLab's compatibility layer.
    GitLab,
}

impl Flavour {
    fn name(self) -> &'static str {
        match self {
            Self::Mlflow => "MLflow",
            Self::GitLab => "GitLab's model registry",
        }
    }
}

/// A registry behind the MLflow REST API.
#[derive(Debug, Clone)]
pub struct MlflowRegistry {
    base: Url,
    http: HttpClient,
    flavour: Flavour,
}

impl MlflowRegistry {
    /// A client of the server at `uri` (`http(s)://host[:port][/prefix]`).
    pub fn new(uri: &Url, token: Option<Token>, settings: HttpSettings) -> Result<Self> {
        let mut base = uri.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let flavour = if base.path().contains("/api/v4/projects/") {
            Flavour::GitLab
        } else {
            Flavour::Mlflow
        };
        Ok(Self { base, http: HttpClient::new(token, settings)?, flavour })
    }

    fn url(&self, path: &str) -> Result<Url> {
        self.base.join(path).map_err(|e| Error::Invalid(format!("bad endpoint {path}: {e}")))
    }

    fn get<T: DeserializeOwned>(&self, endpoint: &str, query: &[(&str, &str)]) -> Result<T> {
        self.http.get_json(&self.url(&format!("api/2.0/mlflow/{endpoint}"))?, query)
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: &Method,
        endpoint: &str,
        body: &impl Serialize,
        retry: Retry,
    ) -> Result<T> {
        self.http.json(method, &self.url(&format!("api/2.0/mlflow/{endpoint}"))?, body, retry)
    }

    fn unsupported(&self, what: impl Into<String>) -> Error {
        Error::Unsupported { backend: self.flavour.name(), what: what.into() }
    }

    /// The id of an experiment, created when missing and `create` is set.
    fn experiment_id(&self, name: &str, create: bool) -> Result<Option<String>> {
        let found =
            self.get::<ExperimentResponse>("experiments/get-by-name", &[("experiment_name", name)]);
        match found {
            Ok(r) => return Ok(Some(r.experiment.experiment_id)),
            Err(e) if e.is_not_found() && create => {}
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        }
        let body = json!({ "name": name });
        match self.call::<CreateExperimentResponse>(
            &Method::POST,
            "experiments/create",
            &body,
            Retry::ConnectOnly,
        ) {
            Ok(r) => Ok(Some(r.experiment_id)),
            // Another process created it in between.
            Err(Error::AlreadyExists { .. }) => self.experiment_id(name, false),
            Err(e) => Err(e),
        }
    }

    fn experiment_name(&self, id: &str) -> Result<String> {
        let r: ExperimentResponse = self.get("experiments/get", &[("experiment_id", id)])?;
        Ok(r.experiment.name)
    }

    fn wire_run(&self, run_id: &str) -> Result<WireRun> {
        match self.get::<RunResponse>("runs/get", &[("run_id", run_id)]) {
            Ok(r) => Ok(r.run),
            Err(e) if e.is_not_found() => Err(Error::not_found(format!("run {run_id}"))),
            Err(e) => Err(e),
        }
    }

    fn artifact_root(&self, run: &WireRun) -> Result<ArtifactRoot> {
        let uri = run.info.artifact_uri.as_deref().unwrap_or_default();
        ArtifactRoot::parse(&self.base, uri).ok_or_else(|| {
            self.unsupported(format!(
                "the artifact location {uri:?}; start the server with --serve-artifacts so \
                 artifacts go through it"
            ))
        })
    }

    fn log_batch(&self, run_id: &str, field: &str, items: &[KeyValue], retry: Retry) -> Result<()> {
        let limit = if field == "params" { MAX_PARAMS_PER_BATCH } else { MAX_TAGS_PER_BATCH };
        for chunk in items.chunks(limit) {
            let body = json!({ "run_id": run_id, field: chunk });
            self.call::<Empty>(&Method::POST, "runs/log-batch", &body, retry)?;
        }
        Ok(())
    }

    /// The model's aliases kept as tags (GitLab), alias -> version.
    fn tag_aliases(&self, model: &str) -> Result<BTreeMap<String, String>> {
        match self.get::<RegisteredModelResponse>("registered-models/get", &[("name", model)]) {
            Ok(r) => Ok(r.registered_model.tag_aliases()),
            Err(e) if e.is_not_found() => Err(Error::not_found(format!("model {model}"))),
            Err(e) => Err(e),
        }
    }

    fn with_tag_aliases(&self, mut versions: Vec<ModelVersion>) -> Result<Vec<ModelVersion>> {
        if self.flavour != Flavour::GitLab || versions.is_empty() {
            return Ok(versions);
        }
        let aliases = self.tag_aliases(&versions[0].model)?;
        for v in &mut versions {
            v.aliases =
                aliases.iter().filter(|(_, n)| **n == v.version).map(|(a, _)| a.clone()).collect();
        }
        Ok(versions)
    }

    fn ensure_model(&self, model: &str) -> Result<()> {
        let body = json!({ "name": model });
        match self.call::<Empty>(
            &Method::POST,
            "registered-models/create",
            &body,
            Retry::ConnectOnly,
        ) {
            Ok(_) | Err(Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Tags recording what MLflow cannot hold itself.
fn version_tags(new: &NewVersion) -> Vec<KeyValue> {
    let mut tags: BTreeMap<String, String> = BTreeMap::new();
    for (file, digest) in &new.files {
        tags.insert(format!("{SHA256_TAG}{file}"), digest.clone());
    }
    for (key, value) in &new.metrics {
        tags.insert(format!("{METRIC_TAG}{key}"), value.to_string());
    }
    let lineage = [
        (GIT_COMMIT_TAG, &new.lineage.git_commit),
        (PIPELINE_TAG, &new.lineage.pipeline_url),
        (MERGE_REQUEST_TAG, &new.lineage.merge_request_url),
    ];
    for (key, value) in lineage {
        if let Some(value) = value {
            tags.insert(key.to_owned(), value.clone());
        }
    }
    pairs(&tags)
}

/// Answers to a missing alias vary between servers; this makes them all `NotFound`.
fn alias_not_found(e: Error, model: &str, alias: &str) -> Error {
    match e {
        Error::NotFound { .. } => Error::not_found(format!("alias {alias} of model {model}")),
        Error::Http { status: 400 | 404, ref message, .. }
            if message.to_ascii_lowercase().contains("not found") =>
        {
            Error::not_found(format!("alias {alias} of model {model}"))
        }
        e => e,
    }
}

impl Registry for MlflowRegistry {
    fn describe(&self) -> String {
        format!("{} at {}", self.flavour.name(), redact(&self.base))
    }

    fn start_run(&self, spec: &RunSpec) -> Result<Run> {
        let experiment_id = self.experiment_id(&spec.experiment, true)?.unwrap_or_default();
        let mut tags = spec.tags.clone();
        tags.extend(spec.git.tags());
        let tags = pairs(&tags);
        let (first, rest) = tags.split_at(tags.len().min(MAX_TAGS_PER_BATCH));
        let mut body = json!({
            "experiment_id": experiment_id,
            "start_time": now_millis(),
            "tags": first,
        });
        if let Some(name) = &spec.name {
            body["run_name"] = json!(name);
        }
        let created: RunResponse =
            self.call(&Method::POST, "runs/create", &body, Retry::ConnectOnly)?;
        let run_id = created.run.info.run_id;
        self.log_batch(&run_id, "tags", rest, Retry::Safe)?;
        self.log_batch(&run_id, "params", &pairs(&spec.params), Retry::Safe)?;
        tracing::debug!(run = %run_id, experiment = %spec.experiment, "run started");
        self.run(&run_id)
    }

    fn log_params(&self, run_id: &str, params: &BTreeMap<String, String>) -> Result<()> {
        self.log_batch(run_id, "params", &pairs(params), Retry::Safe)
    }

    fn log_metrics(&self, run_id: &str, metrics: &[Metric]) -> Result<()> {
        for chunk in metrics.chunks(MAX_METRICS_PER_BATCH) {
            let wire: Vec<WireMetric> = chunk
                .iter()
                .map(|m| WireMetric {
                    key: m.key.clone(),
                    value: m.value,
                    timestamp: m.timestamp,
                    step: m.step,
                })
                .collect();
            let body = json!({ "run_id": run_id, "metrics": wire });
            // Not repeated after an unknown outcome: MLflow would store the points twice.
            self.call::<Empty>(&Method::POST, "runs/log-batch", &body, Retry::ConnectOnly)?;
        }
        Ok(())
    }

    fn upload_artifacts(&self, run_id: &str, dir: &Path, artifact_path: &str) -> Result<()> {
        crate::fsutil::check_relative(artifact_path)?;
        let root = self.artifact_root(&self.wire_run(run_id)?)?;
        for rel in crate::fsutil::list_files(dir)? {
            let url = root.file_url(&format!("{artifact_path}/{rel}"))?;
            self.http.put_file(&url, &dir.join(&rel))?;
        }
        Ok(())
    }

    fn download_artifacts(&self, run_id: &str, artifact_path: &str, into: &Path) -> Result<()> {
        crate::fsutil::check_relative(artifact_path)?;
        let root = self.artifact_root(&self.wire_run(run_id)?)?;
        let files = root.list(&self.http, artifact_path).map_err(|e| match e {
            Error::Unsupported { what, .. } => self.unsupported(what),
            e => e,
        })?;
        if files.is_empty() {
            return Err(Error::not_found(format!("artifacts {artifact_path} of run {run_id}")));
        }
        for rel in files {
            root.download(&self.http, &format!("{artifact_path}/{rel}"), &into.join(&rel))?;
        }
        Ok(())
    }

    fn finish_run(&self, run_id: &str, status: RunStatus) -> Result<()> {
        let body = json!({ "run_id": run_id, "status": status.as_str(), "end_time": now_millis() });
        self.call::<Empty>(&Method::POST, "runs/update", &body, Retry::Safe).map(|_| ())
    }

    fn run(&self, run_id: &str) -> Result<Run> {
        let run = self.wire_run(run_id)?;
        let experiment = self.experiment_name(&run.info.experiment_id)?;
        run.into_run(experiment)
    }

    fn runs(&self, experiment: &str) -> Result<Vec<Run>> {
        let Some(id) = self.experiment_id(experiment, false)? else { return Ok(Vec::new()) };
        let mut runs = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut body = json!({
                "experiment_ids": [id],
                "max_results": 1000,
                "order_by": ["attributes.start_time DESC"],
            });
            if let Some(token) = &page_token {
                body["page_token"] = json!(token);
            }
            let page: SearchRunsResponse =
                self.call(&Method::POST, "runs/search", &body, Retry::Safe)?;
            for run in page.runs {
                runs.push(run.into_run(experiment.to_owned())?);
            }
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(token) => page_token = Some(token),
                None => return Ok(runs),
            }
        }
    }

    fn create_version(&self, model: &str, new: &NewVersion) -> Result<ModelVersion> {
        check_name("model", model)?;
        let run = self.wire_run(&new.run_id)?;
        let source = format!(
            "{}/{MODEL_ARTIFACT_PATH}",
            run.info.artifact_uri.as_deref().unwrap_or_default().trim_end_matches('/')
        );
        self.ensure_model(model)?;
        let body = json!({
            "name": model,
            "source": source,
            "run_id": new.run_id,
            "tags": version_tags(new),
        });
        let created: ModelVersionResponse =
            self.call(&Method::POST, "model-versions/create", &body, Retry::ConnectOnly)?;
        Ok(created.model_version.into_version())
    }

    fn versions(&self, model: &str) -> Result<Vec<ModelVersion>> {
        check_name("model", model)?;
        let filter = format!("name='{model}'");
        let mut versions = Vec::new();
        let mut page_token = String::new();
        loop {
            let mut query = vec![("filter", filter.as_str()), ("max_results", "1000")];
            if !page_token.is_empty() {
                query.push(("page_token", page_token.as_str()));
            }
            let page: SearchVersionsResponse = self.get("model-versions/search", &query)?;
            versions.extend(page.model_versions.into_iter().map(|v| v.into_version()));
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(token) => page_token = token,
                None => break,
            }
        }
        versions.sort_by(|a, b| {
            let number = |v: &ModelVersion| v.version.parse::<u64>().ok();
            number(a).cmp(&number(b)).then(a.created_at.cmp(&b.created_at))
        });
        self.with_tag_aliases(versions)
    }

    fn version(&self, model: &str, version: &str) -> Result<ModelVersion> {
        check_name("model", model)?;
        let found: Result<ModelVersionResponse> =
            self.get("model-versions/get", &[("name", model), ("version", version)]);
        match found {
            Ok(r) => Ok(self.with_tag_aliases(vec![r.model_version.into_version()])?.remove(0)),
            Err(e) if e.is_not_found() => {
                Err(Error::not_found(format!("version {version} of model {model}")))
            }
            Err(e) => Err(e),
        }
    }

    fn set_alias(&self, model: &str, alias: &str, version: &str) -> Result<()> {
        check_name("alias", alias)?;
        self.version(model, version)?;
        let (endpoint, body) = match self.flavour {
            Flavour::Mlflow => (
                "registered-models/alias",
                json!({ "name": model, "alias": alias, "version": version }),
            ),
            Flavour::GitLab => (
                "registered-models/set-tag",
                json!({ "name": model, "key": format!("{ALIAS_TAG}{alias}"), "value": version }),
            ),
        };
        self.call::<Empty>(&Method::POST, endpoint, &body, Retry::Safe).map(|_| ())
    }

    fn delete_alias(&self, model: &str, alias: &str) -> Result<()> {
        check_name("alias", alias)?;
        self.resolve_alias(model, alias)?;
        let (endpoint, body) = match self.flavour {
            Flavour::Mlflow => {
                ("registered-models/alias", json!({ "name": model, "alias": alias }))
            }
            Flavour::GitLab => (
                "registered-models/delete-tag",
                json!({ "name": model, "key": format!("{ALIAS_TAG}{alias}") }),
            ),
        };
        self.call::<Empty>(&Method::DELETE, endpoint, &body, Retry::Safe).map(|_| ())
    }

    fn resolve_alias(&self, model: &str, alias: &str) -> Result<ModelVersion> {
        check_name("model", model)?;
        check_name("alias", alias)?;
        match self.flavour {
            Flavour::Mlflow => {
                let found: ModelVersionResponse = self
                    .get("registered-models/alias", &[("name", model), ("alias", alias)])
                    .map_err(|e| alias_not_found(e, model, alias))?;
                Ok(found.model_version.into_version())
            }
            Flavour::GitLab => match self.tag_aliases(model)?.get(alias) {
                Some(version) => self.version(model, version),
                None => Err(Error::not_found(format!("alias {alias} of model {model}"))),
            },
        }
    }

    fn download_version(&self, version: &ModelVersion, into: &Path) -> Result<()> {
        let Some(run_id) = &version.run_id else {
            return Err(self.unsupported(format!(
                "pulling version {} of {}: it is not linked to a run",
                version.version, version.model
            )));
        };
        let root = self.artifact_root(&self.wire_run(run_id)?)?;
        for file in version.files.keys() {
            crate::fsutil::check_relative(file)?;
            let rel = format!("{MODEL_ARTIFACT_PATH}/{file}");
            root.download(&self.http, &rel, &into.join(file)).map_err(|e| match e {
                Error::NotFound { .. } => Error::ChecksumMismatch {
                    version: version.version.clone(),
                    file: file.clone(),
                    detail: "missing from the registry".into(),
                },
                e => e,
            })?;
        }
        Ok(())
    }
}
