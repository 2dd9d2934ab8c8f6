//! Live experiment tracking of `trainer train` through `registry-client`: the settings as
//! params, the code version as tags, every epoch's figures as metrics, the model directory as
//! artifacts, and the final status (`FAILED` when training fails).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use registry_client::{GitInfo, Metric, Registry, RunSpec, RunStatus, Token};

use crate::train::{EpochMetrics, EpochObserver, TrainOutcome, TrainRequest};

/// Flags of `trainer train` that choose where the run is logged.
#[derive(Debug, Clone, Default, Args)]
pub struct TrackingArgs {
    /// Log the run into this registry (a directory, file:// URI or MLflow URL); the token
    /// comes from MODEL_REGISTRY_TOKEN. Without it the run is not tracked.
    #[arg(long, env = registry_client::REGISTRY_URI_ENV)]
    pub registry: Option<String>,

    /// Experiment to log the run into.
    #[arg(long, env = "MODEL_REGISTRY_EXPERIMENT", default_value = "digits")]
    pub experiment: String,

    /// Write the run id to this file once training has succeeded, for `registry register`.
    #[arg(long)]
    pub run_id_file: Option<PathBuf>,
}

/// A run being logged; receives each epoch's figures.
#[derive(Debug)]
pub struct Tracker {
    registry: Box<dyn Registry>,
    run_id: String,
}

impl Tracker {
    /// Starts a run for `request` in `registry`.
    pub fn start(
        registry: Box<dyn Registry>,
        experiment: &str,
        request: &TrainRequest,
    ) -> anyhow::Result<Self> {
        let settings = serde_json::to_value(&request.settings)?;
        let mut params = BTreeMap::new();
        flatten("", &settings, &mut params);
        let source = crate::git::source_info(&request.source_dir);
        let spec = RunSpec {
            experiment: experiment.to_owned(),
            name: Some(format!("{} seed {}", request.settings.architecture, request.settings.seed)),
            params,
            tags: [("trainer.version".to_owned(), env!("CARGO_PKG_VERSION").to_owned())].into(),
            git: GitInfo {
                commit: source.git_commit,
                branch: std::env::var("CI_COMMIT_REF_NAME").ok(),
                dirty: source.git_dirty,
            },
        };
        let run = registry.start_run(&spec).context("starting the tracked run")?;
        tracing::info!(run_id = %run.id, registry = %registry.describe(), experiment, "tracking run");
        Ok(Self { registry, run_id: run.id })
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Uploads the model and ends the run as FINISHED, or ends it as FAILED.
    pub fn finish(&self, outcome: &anyhow::Result<TrainOutcome>) -> anyhow::Result<()> {
        let Ok(outcome) = outcome else {
            return Ok(self.registry.finish_run(&self.run_id, RunStatus::Failed)?);
        };
        let uploaded = self.registry.upload_artifacts(
            &self.run_id,
            &outcome.dir,
            registry_client::MODEL_ARTIFACT_PATH,
        );
        if let Err(e) = uploaded {
            self.registry.finish_run(&self.run_id, RunStatus::Failed)?;
            return Err(e).context("uploading the model to the tracked run");
        }
        self.registry.finish_run(&self.run_id, RunStatus::Finished)?;
        Ok(())
    }
}

impl EpochObserver for Tracker {
    fn epoch_finished(&mut self, metrics: &EpochMetrics) -> anyhow::Result<()> {
        let step = i64::try_from(metrics.epoch)?;
        let figures = serde_json::to_value(metrics)?;
        let batch: Vec<Metric> = figures
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(key, _)| *key != "epoch")
            .filter_map(|(key, value)| Some(Metric::now(key.clone(), value.as_f64()?, step)))
            .collect();
        // A tracking hiccup is not worth a training run: warn and go on.
        if let Err(e) = self.registry.log_metrics(&self.run_id, &batch) {
            tracing::warn!(run_id = %self.run_id, epoch = metrics.epoch, "metrics not logged: {e}");
        }
        Ok(())
    }
}

/// `settings` as `key` (dotted for nested fields) -> value.
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        serde_json::Value::Null => {}
        serde_json::Value::String(s) => {
            out.insert(prefix.to_owned(), s.clone());
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

/// Trains as `request` says, logging the run when `args.registry` is given.
pub fn train_tracked(request: &TrainRequest, args: &TrackingArgs) -> anyhow::Result<TrainOutcome> {
    let Some(uri) = &args.registry else {
        return crate::train::train(request, &mut ());
    };
    let registry = registry_client::open(uri, Token::from_env())?;
    let mut tracker = Tracker::start(registry, &args.experiment, request)?;
    let outcome = crate::train::train(request, &mut tracker);
    match (tracker.finish(&outcome), &outcome) {
        (Err(e), Ok(_)) => return Err(e),
        (Err(e), Err(_)) => {
            tracing::warn!(run_id = %tracker.run_id, "run not marked failed: {e:#}")
        }
        (Ok(()), _) => {}
    }
    let outcome = outcome?;
    if let Some(path) = &args.run_id_file {
        std::fs::write(path, format!("{}\n", tracker.run_id))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use registry_client::{RegisterRequest, Selector};

    use super::*;

    fn request(data_dir: PathBuf, out_dir: PathBuf) -> TrainRequest {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut settings =
            crate::config::load(&root.join("config.toml")).expect("committed config");
        settings.architecture = shared::Architecture::Small;
        settings.train_limit = Some(512);
        settings.epochs = 2;
        TrainRequest { settings, data_dir, out_dir, replace: false, source_dir: root.to_owned() }
    }

    /// The main job on a registry: train and log the run, register, alias, pull.
    fn train_register_pull(uri: &str) -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist");
        let run_id_file = tmp.path().join("run-id");
        let experiment = format!("tracking-{}", std::process::id());
        let args = TrackingArgs {
            registry: Some(uri.to_owned()),
            experiment: experiment.clone(),
            run_id_file: Some(run_id_file.clone()),
        };
        let outcome = train_tracked(&request(data, tmp.path().join("model")), &args)?;
        let run_id = std::fs::read_to_string(&run_id_file)?.trim().to_owned();

        let registry = registry_client::open(uri, None)?;
        let run = registry.run(&run_id)?;
        assert_eq!(run.status, RunStatus::Finished);
        assert_eq!(run.experiment, experiment);
        assert_eq!(run.params.get("epochs").map(String::as_str), Some("2"));
        assert_eq!(run.params.get("augmentation.enabled").map(String::as_str), Some("true"));
        let last = outcome.epochs.last().expect("epochs");
        assert_eq!(run.metrics.get("test_accuracy"), Some(&last.test_accuracy));

        let model = format!("digits-{}", std::process::id());
        let version =
            registry.register(&model, &RegisterRequest { run_id, ..Default::default() })?;
        assert_eq!(version.test_accuracy(), Some(outcome.card.metrics.test_accuracy));
        registry.set_alias(&model, registry_client::PRODUCTION_ALIAS, &version.version)?;
        let dest = tmp.path().join("serving");
        let production = Selector::Alias(registry_client::PRODUCTION_ALIAS.into());
        registry.pull(&model, &production, &dest)?;
        assert_eq!(registry_client::digest_dir(&dest)?, registry_client::digest_dir(&outcome.dir)?);
        Ok(())
    }

    #[test]
    fn a_tracked_run_is_registered_and_pulled_from_the_embedded_registry() -> anyhow::Result<()> {
        let root = tempfile::tempdir()?;
        train_register_pull(root.path().join("registry").to_str().expect("utf-8"))
    }

    #[test]
    #[ignore = "needs a running MLflow server; scripts/test.sh starts one"]
    fn a_tracked_run_is_registered_and_pulled_from_mlflow() -> anyhow::Result<()> {
        let uri = std::env::var("MLFLOW_TRACKING_URI")
            .expect("MLFLOW_TRACKING_URI: start a server with scripts/mlflow-server.sh start");
        train_register_pull(&uri)
    }

    #[test]
    fn a_failed_training_marks_the_run_failed() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let uri = tmp.path().join("registry").to_str().expect("utf-8").to_owned();
        let args = TrackingArgs {
            registry: Some(uri.clone()),
            experiment: "fails".into(),
            run_id_file: None,
        };
        let missing = tmp.path().join("no-data");
        assert!(train_tracked(&request(missing, tmp.path().join("model")), &args).is_err());
        let runs = registry_client::open(&uri, None)?.runs("fails")?;
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].status, RunStatus::Failed);
        Ok(())
    }

    #[test]
    fn nested_settings_become_dotted_params() {
        let value = serde_json::json!({"epochs": 3, "augmentation": {"enabled": true}, "x": null});
        let mut out = BTreeMap::new();
        flatten("", &value, &mut out);
        let expected: BTreeMap<String, String> =
            [("augmentation.enabled", "true"), ("epochs", "3")]
                .map(|(k, v)| (k.into(), v.into()))
                .into();
        assert_eq!(out, expected);
    }
}
