//! One suite every backend must pass, written against the `Registry` trait. Each backend's
//! test file instantiates it with the `registry_suite!` macro.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use registry_client::{
    Error, GitInfo, Lineage, Metric, ModelVersion, PRODUCTION_ALIAS, RegisterRequest, Registry,
    RunSpec, RunStatus, Selector, digest_dir,
};

/// How a test damages a stored file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// One byte flipped.
    FlipByte,
    /// Cut to half its length.
    Truncate,
    /// Gone.
    Remove,
}

/// Damages `file` of a version where a backend keeps it.
pub type DamageFn = Box<dyn Fn(&ModelVersion, &str, Damage) -> Result<()>>;

/// A backend under test: the registry, and a way to damage what it stores.
pub struct Backend {
    /// The registry.
    pub registry: Box<dyn Registry>,
    /// Damages `file` of a version where the backend keeps it.
    pub damage: DamageFn,
    /// Scratch space for the test.
    pub scratch: tempfile::TempDir,
    /// Unique per test, so tests can share one server.
    pub namespace: String,
}

impl Backend {
    /// A new backend with a unique namespace, using `scratch` for its files.
    pub fn new(registry: Box<dyn Registry>, damage: DamageFn, scratch: tempfile::TempDir) -> Self {
        Self { registry, damage, scratch, namespace: format!("t{:08x}", rand_suffix()) }
    }

    fn name(&self, what: &str) -> String {
        format!("{what}-{}", self.namespace)
    }

    /// A model directory like the trainer's, with this test accuracy.
    pub fn model_dir(&self, label: &str, accuracy: f64) -> Result<PathBuf> {
        let dir = self.scratch.path().join(label);
        write_model(&dir, accuracy)?;
        Ok(dir)
    }

    /// A finished run that made a model with this accuracy, uploaded as its artifacts.
    pub fn trained_run(&self, experiment: &str, accuracy: f64) -> Result<String> {
        let r = self.registry.as_ref();
        let spec = RunSpec {
            experiment: experiment.to_owned(),
            name: Some(format!("acc-{accuracy}")),
            params: [("epochs".to_owned(), "2".to_owned())].into(),
            tags: BTreeMap::new(),
            git: GitInfo { commit: Some("c0ffee".into()), branch: None, dirty: Some(false) },
        };
        let run = r.start_run(&spec)?;
        r.log_metrics(&run.id, &[Metric::now("test_accuracy", accuracy, 1)])?;
        let dir = self.model_dir(&run.id, accuracy)?;
        r.upload_artifacts(&run.id, &dir, "model")?;
        r.finish_run(&run.id, RunStatus::Finished)?;
        Ok(run.id)
    }
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}

/// Writes a model directory: card, weights (with a nested file to exercise folders), metrics.
pub fn write_model(dir: &Path, accuracy: f64) -> Result<()> {
    std::fs::create_dir_all(dir.join("extra"))?;
    let card = serde_json::json!({
        "format": 1,
        "metrics": { "test_accuracy": accuracy, "test_loss": 0.05, "train_loss": 0.04 },
        "source": { "git_commit": "cardcommit" },
    });
    std::fs::write(dir.join("model.json"), serde_json::to_vec_pretty(&card)?)?;
    let weights: Vec<u8> =
        (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(dir.join("model.safetensors"), weights)?;
    std::fs::write(
        dir.join("metrics.jsonl"),
        format!("{{\"epoch\":1,\"test_accuracy\":{accuracy}}}\n"),
    )?;
    std::fs::write(dir.join("extra/notes.txt"), "nested file\n")?;
    Ok(())
}

fn expect_not_found<T: std::fmt::Debug>(result: registry_client::Result<T>) -> Result<()> {
    match result {
        Err(e) if e.is_not_found() => Ok(()),
        other => anyhow::bail!("expected NotFound, got {other:?}"),
    }
}

/// A run records params, git tags, metrics (past the batch limit) and its final status.
pub fn run_lifecycle(b: &Backend) -> Result<()> {
    let r = b.registry.as_ref();
    let experiment = b.name("exp");
    let params: BTreeMap<String, String> =
        (0..250).map(|i| (format!("p{i:03}"), i.to_string())).collect();
    let spec = RunSpec {
        experiment: experiment.clone(),
        name: Some("lifecycle".into()),
        params: params.clone(),
        tags: [("team".to_owned(), "digits".to_owned())].into(),
        git: GitInfo {
            commit: Some("abc123".into()),
            branch: Some("main".into()),
            dirty: Some(true),
        },
    };
    let run = r.start_run(&spec)?;
    ensure!(run.status == RunStatus::Running, "{run:?}");

    // 2,500 points: three batches on MLflow.
    let metrics: Vec<Metric> = (0..2500)
        .map(|i| Metric::now("train_loss", 1.0 / f64::from(i + 1), i64::from(i)))
        .collect();
    r.log_metrics(&run.id, &metrics)?;
    r.log_metrics(&run.id, &[Metric::now("test_accuracy", 0.97, 1)])?;
    r.finish_run(&run.id, RunStatus::Finished)?;

    let got = r.run(&run.id)?;
    ensure!(got.status == RunStatus::Finished && got.end_time.is_some(), "{got:?}");
    ensure!(got.experiment == experiment, "{}", got.experiment);
    ensure!(got.params == params, "params: {} of 250", got.params.len());
    ensure!(got.tags.get("mlflow.source.git.commit").map(String::as_str) == Some("abc123"));
    ensure!(got.tags.get("git.dirty").map(String::as_str) == Some("true"));
    ensure!(got.tags.get("team").map(String::as_str) == Some("digits"));
    ensure!(got.metrics.get("test_accuracy") == Some(&0.97), "{:?}", got.metrics);
    ensure!(got.metrics.get("train_loss") == Some(&(1.0 / 2500.0)), "{:?}", got.metrics);

    let runs = r.runs(&experiment)?;
    ensure!(runs.len() == 1 && runs[0].id == run.id, "{runs:?}");
    ensure!(r.runs(&b.name("no-such-experiment"))?.is_empty());
    expect_not_found(r.run("0123456789abcdef0123456789abcdef"))
}

/// A failed run says so.
pub fn failed_run(b: &Backend) -> Result<()> {
    let r = b.registry.as_ref();
    let run = r.start_run(&RunSpec { experiment: b.name("exp"), ..Default::default() })?;
    r.finish_run(&run.id, RunStatus::Failed)?;
    ensure!(r.run(&run.id)?.status == RunStatus::Failed);
    Ok(())
}

/// Registration records digests, metrics from the card and lineage; versions count up.
pub fn register_and_list(b: &Backend) -> Result<()> {
    let r = b.registry.as_ref();
    let model = b.name("digits");
    ensure!(r.versions(&model)?.is_empty(), "a new model has no versions");
    let first = b.trained_run(&b.name("exp"), 0.981)?;
    let lineage = Lineage {
        git_commit: None,
        pipeline_url: Some("https://gitlab.example/p/-/pipelines/7".into()),
        merge_request_url: Some("https://gitlab.example/p/-/merge_requests/3".into()),
    };
    let v1 = r.register(&model, &RegisterRequest { run_id: first.clone(), dir: None, lineage })?;
    ensure!(v1.version == "1", "{v1:?}");
    ensure!(v1.run_id.as_deref() == Some(first.as_str()));
    ensure!(v1.test_accuracy() == Some(0.981), "{:?}", v1.metrics);
    ensure!(v1.lineage.git_commit.as_deref() == Some("c0ffee"), "from the run's git tag");
    ensure!(v1.lineage.merge_request_url.as_deref().is_some_and(|u| u.ends_with("/3")));
    let expected = digest_dir(&b.scratch.path().join(&first))?;
    ensure!(v1.files == expected, "{:?} != {expected:?}", v1.files);
    ensure!(v1.files.contains_key("extra/notes.txt"));

    // From a local directory given at registration.
    let second = r.start_run(&RunSpec { experiment: b.name("exp"), ..Default::default() })?;
    let dir = b.model_dir("second", 0.975)?;
    let request =
        RegisterRequest { run_id: second.id, dir: Some(dir), lineage: Lineage::default() };
    let v2 = r.register(&model, &request)?;
    ensure!(v2.version == "2", "{v2:?}");
    ensure!(v2.lineage.git_commit.as_deref() == Some("cardcommit"), "from the model card");

    let listed: Vec<String> = r.versions(&model)?.into_iter().map(|v| v.version).collect();
    ensure!(listed == ["1", "2"], "{listed:?}");
    let shown = r.version(&model, "2")?;
    ensure!(shown.files == v2.files && shown.metrics == v2.metrics, "{shown:?}");
    expect_not_found(r.version(&model, "99"))?;
    let missing =
        RegisterRequest { run_id: "0123456789abcdef0123456789abcdef".into(), ..Default::default() };
    expect_not_found(r.register(&model, &missing))
}

/// Aliases are set, moved, listed, resolved and deleted.
pub fn aliases(b: &Backend) -> Result<()> {
    let r = b.registry.as_ref();
    let model = b.name("digits");
    for accuracy in [0.97, 0.98] {
        let run = b.trained_run(&b.name("exp"), accuracy)?;
        r.register(&model, &RegisterRequest { run_id: run, ..Default::default() })?;
    }
    expect_not_found(r.resolve_alias(&model, PRODUCTION_ALIAS))?;
    r.set_alias(&model, PRODUCTION_ALIAS, "1")?;
    r.set_alias(&model, "candidate", "2")?;
    ensure!(r.resolve_alias(&model, PRODUCTION_ALIAS)?.version == "1");
    r.set_alias(&model, PRODUCTION_ALIAS, "2")?;
    let resolved = r.resolve_alias(&model, PRODUCTION_ALIAS)?;
    ensure!(resolved.version == "2", "moved: {resolved:?}");
    let v2 = r.version(&model, "2")?;
    let mut aliases = v2.aliases;
    aliases.sort();
    ensure!(aliases == ["candidate", "production"], "{aliases:?}");
    ensure!(r.version(&model, "1")?.aliases.is_empty());

    r.delete_alias(&model, "candidate")?;
    expect_not_found(r.resolve_alias(&model, "candidate"))?;
    expect_not_found(r.delete_alias(&model, "candidate"))?;
    expect_not_found(r.set_alias(&model, "x", "42"))?;
    ensure!(matches!(r.set_alias(&model, "../escape", "1"), Err(Error::Invalid(_))));
    Ok(())
}

/// The summary counts versions, averages and ranks accuracies and finds production.
pub fn summary(b: &Backend) -> Result<()> {
    let r = b.registry.as_ref();
    let model = b.name("digits");
    let empty = r.summary(&model)?;
    ensure!(empty.versions == 0 && empty.best.is_none() && empty.production.is_none());
    for accuracy in [0.97, 0.99, 0.98] {
        let run = b.trained_run(&b.name("exp"), accuracy)?;
        r.register(&model, &RegisterRequest { run_id: run, ..Default::default() })?;
    }
    r.set_alias(&model, PRODUCTION_ALIAS, "3")?;
    let s = r.summary(&model)?;
    ensure!(s.versions == 3, "{s:?}");
    let average = s.average_test_accuracy.context("average")?;
    // (0.97 + 0.99 + 0.98) / 3, to float rounding.
    ensure!((average - 0.98).abs() < 1e-12, "{average}");
    let best = s.best.context("best")?;
    ensure!(best.version == "2" && best.test_accuracy == 0.99, "{best:?}");
    let production = s.production.context("production")?;
    ensure!(production.version == "3" && production.test_accuracy == 0.98, "{production:?}");
    Ok(())
}

/// Pull puts a verified copy in place; pulling again is a no-op; another version replaces it.
pub fn pull(b: &Backend) -> Result<()> {
    let r = b.registry.as_ref();
    let model = b.name("digits");
    let mut runs = Vec::new();
    for accuracy in [0.97, 0.98] {
        let run = b.trained_run(&b.name("exp"), accuracy)?;
        r.register(&model, &RegisterRequest { run_id: run.clone(), ..Default::default() })?;
        runs.push(run);
    }
    r.set_alias(&model, PRODUCTION_ALIAS, "1")?;
    let dest = b.scratch.path().join("serving/current");
    let pulled = r.pull(&model, &Selector::Alias(PRODUCTION_ALIAS.into()), &dest)?;
    ensure!(!pulled.already_present && pulled.version.version == "1");
    ensure!(digest_dir(&dest)? == digest_dir(&b.scratch.path().join(&runs[0]))?);

    let again = r.pull(&model, &Selector::Alias(PRODUCTION_ALIAS.into()), &dest)?;
    ensure!(again.already_present, "an intact copy is left alone");

    let other = r.pull(&model, &Selector::Version("2".into()), &dest)?;
    ensure!(!other.already_present && other.version.version == "2");
    ensure!(digest_dir(&dest)? == digest_dir(&b.scratch.path().join(&runs[1]))?);

    // A damaged local copy is replaced, not trusted.
    std::fs::write(dest.join("model.json"), "{}")?;
    let repaired = r.pull(&model, &Selector::Version("2".into()), &dest)?;
    ensure!(!repaired.already_present);
    registry_client::verify(&dest, &repaired.version)?;
    let leftovers: Vec<_> = std::fs::read_dir(dest.parent().context("parent")?)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains("partial"))
        .collect();
    ensure!(leftovers.is_empty(), "{leftovers:?}");
    expect_not_found(r.pull(&model, &Selector::Alias("nobody".into()), &dest))
}

/// Damaged stored files are refused with the version and the file named, and leave nothing.
pub fn pull_refuses_damage(b: &Backend) -> Result<()> {
    let r = b.registry.as_ref();
    let model = b.name("digits");
    let cases = [
        (Damage::FlipByte, "model.safetensors"),
        (Damage::Truncate, "model.json"),
        (Damage::Remove, "extra/notes.txt"),
    ];
    for (i, (damage, file)) in cases.into_iter().enumerate() {
        let run = b.trained_run(&b.name("exp"), 0.97)?;
        let version = r.register(&model, &RegisterRequest { run_id: run, ..Default::default() })?;
        ensure!(version.version == (i + 1).to_string());
        (b.damage)(&version, file, damage)?;
        let dest = b.scratch.path().join(format!("pulled-{i}"));
        match r.pull(&model, &Selector::Version(version.version.clone()), &dest) {
            Err(Error::ChecksumMismatch { version: v, file: f, detail }) => {
                ensure!(v == version.version && f == file, "{damage:?}: {v} {f} {detail}");
            }
            other => anyhow::bail!("{damage:?} of {file} was not refused: {other:?}"),
        }
        ensure!(!dest.exists(), "nothing appears after a refused pull");
    }
    Ok(())
}

/// Instantiates the suite for a backend made by `$make` (a `fn() -> Result<Backend>`).
#[macro_export]
macro_rules! registry_suite {
    ($make:path $(, #[$attr:meta])*) => {
        #[test] $(#[$attr])* fn run_lifecycle() -> anyhow::Result<()> { suite::run_lifecycle(&$make()?) }
        #[test] $(#[$attr])* fn failed_run() -> anyhow::Result<()> { suite::failed_run(&$make()?) }
        #[test] $(#[$attr])* fn register_and_list() -> anyhow::Result<()> { suite::register_and_list(&$make()?) }
        #[test] $(#[$attr])* fn aliases() -> anyhow::Result<()> { suite::aliases(&$make()?) }
        #[test] $(#[$attr])* fn summary() -> anyhow::Result<()> { suite::summary(&$make()?) }
        #[test] $(#[$attr])* fn pull() -> anyhow::Result<()> { suite::pull(&$make()?) }
        #[test] $(#[$attr])* fn pull_refuses_damage() -> anyhow::Result<()> { suite::pull_refuses_damage(&$make()?) }
    };
}
