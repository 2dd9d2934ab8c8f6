//! The embedded registry: a directory on this machine, safe to share between processes.
//!
//! Layout under the root:
//!
//! ```text
//! runs/<id>/run.json            the run: experiment, name, status, params, tags
//! runs/<id>/metrics.jsonl       one metric per line, appended
//! runs/<id>/artifacts/...       uploaded files
//! models/<name>/lock            held while versions or aliases of the model change
//! models/<name>/versions/<n>/   version.json + files/, renamed into place when complete
//! models/<name>/aliases.json    alias -> version, replaced atomically
//! models/<name>/staging/        versions being assembled; leftovers of killed processes
//!                               are removed by the next registration
//! ```
//!
//! Every change is made in a staging place and renamed into view, so a process killed half
//! way leaves nothing a reader would take for a version; numbering happens under a file lock,
//! so concurrent registrations get distinct, consecutive versions.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::{self, FileLock};
use crate::registry::{Registry, verify};
use crate::types::{
    MODEL_ARTIFACT_PATH, Metric, ModelVersion, NewVersion, Run, RunSpec, RunStatus, check_name,
    now_millis,
};

/// The embedded registry in a local directory.
#[derive(Debug, Clone)]
pub struct LocalRegistry {
    root: PathBuf,
}

/// What `run.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunRecord {
    id: String,
    experiment: String,
    name: Option<String>,
    status: RunStatus,
    start_time: i64,
    end_time: Option<i64>,
    params: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
}

impl LocalRegistry {
    /// Opens (creating if needed) the registry in `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fsutil::create_dir_all(&root.join("runs"))?;
        fsutil::create_dir_all(&root.join("models"))?;
        Ok(Self { root })
    }

    /// The registry's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn run_dir(&self, run_id: &str) -> Result<PathBuf> {
        if run_id.is_empty() || !run_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::Invalid(format!("invalid run id {run_id:?}")));
        }
        Ok(self.root.join("runs").join(run_id))
    }

    fn model_dir(&self, model: &str) -> Result<PathBuf> {
        check_name("model", model)?;
        Ok(self.root.join("models").join(model))
    }

    fn read_run(&self, run_id: &str) -> Result<RunRecord> {
        let path = self.run_dir(run_id)?.join("run.json");
        if !path.is_file() {
            return Err(Error::not_found(format!("run {run_id}")));
        }
        fsutil::read_json(&path)
    }

    /// Changes `run.json` under the run's lock.
    fn update_run(&self, run_id: &str, change: impl FnOnce(&mut RunRecord)) -> Result<()> {
        let dir = self.run_dir(run_id)?;
        let _lock = FileLock::acquire(&dir.join("lock"))?;
        let mut record = self.read_run(run_id)?;
        change(&mut record);
        fsutil::write_json(&dir.join("run.json"), &record)
    }

    fn latest_metrics(&self, run_id: &str) -> Result<BTreeMap<String, f64>> {
        let path = self.run_dir(run_id)?.join("metrics.jsonl");
        let file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let mut latest: BTreeMap<String, (i64, i64, f64)> = BTreeMap::new();
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|e| Error::io(&path, e))?;
            // A line cut short by a crash is skipped rather than failing the whole run.
            let Ok(m) = serde_json::from_str::<Metric>(&line) else { continue };
            let newer = latest.get(&m.key).is_none_or(|&(s, t, _)| (m.step, m.timestamp) >= (s, t));
            if newer {
                latest.insert(m.key, (m.step, m.timestamp, m.value));
            }
        }
        Ok(latest.into_iter().map(|(k, (_, _, v))| (k, v)).collect())
    }

    fn to_run(&self, record: RunRecord) -> Result<Run> {
        let metrics = self.latest_metrics(&record.id)?;
        Ok(Run {
            id: record.id,
            experiment: record.experiment,
            name: record.name,
            status: record.status,
            start_time: record.start_time,
            end_time: record.end_time,
            params: record.params,
            tags: record.tags,
            metrics,
        })
    }

    fn read_aliases(&self, model: &str) -> Result<BTreeMap<String, String>> {
        let path = self.model_dir(model)?.join("aliases.json");
        if path.is_file() { fsutil::read_json(&path) } else { Ok(BTreeMap::new()) }
    }

    /// Changes `aliases.json` under the model's lock.
    fn update_aliases(
        &self,
        model: &str,
        change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<()>,
    ) -> Result<()> {
        let dir = self.model_dir(model)?;
        if !dir.is_dir() {
            return Err(Error::not_found(format!("model {model}")));
        }
        let _lock = FileLock::acquire(&dir.join("lock"))?;
        let mut aliases = self.read_aliases(model)?;
        change(&mut aliases)?;
        fsutil::write_json(&dir.join("aliases.json"), &aliases)
    }

    fn read_version(&self, model: &str, version: &str) -> Result<ModelVersion> {
        let not_found = || Error::not_found(format!("version {version} of model {model}"));
        if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit()) {
            return Err(not_found());
        }
        let path = self.model_dir(model)?.join("versions").join(version).join("version.json");
        if !path.is_file() {
            return Err(not_found());
        }
        let mut v: ModelVersion = fsutil::read_json(&path)?;
        v.aliases = aliases_of(&self.read_aliases(model)?, &v.version);
        Ok(v)
    }

    /// Version numbers present, ascending.
    fn version_numbers(&self, model_dir: &Path) -> Result<Vec<u64>> {
        let dir = model_dir.join("versions");
        let mut numbers: Vec<u64> = fsutil::entries_with_prefix(&dir, "")?
            .iter()
            .filter(|p| p.join("version.json").is_file())
            .filter_map(|p| p.file_name()?.to_str()?.parse().ok())
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }
}

fn aliases_of(aliases: &BTreeMap<String, String>, version: &str) -> Vec<String> {
    aliases.iter().filter(|(_, v)| *v == version).map(|(a, _)| a.clone()).collect()
}

impl Registry for LocalRegistry {
    fn describe(&self) -> String {
        format!("embedded registry at {}", self.root.display())
    }

    fn start_run(&self, spec: &RunSpec) -> Result<Run> {
        let id = format!("{:032x}", rand::random::<u128>());
        let dir = self.run_dir(&id)?;
        fsutil::create_dir_all(&dir)?;
        let mut tags = spec.tags.clone();
        tags.extend(spec.git.tags());
        let record = RunRecord {
            id,
            experiment: spec.experiment.clone(),
            name: spec.name.clone(),
            status: RunStatus::Running,
            start_time: now_millis(),
            end_time: None,
            params: spec.params.clone(),
            tags,
        };
        fsutil::write_json(&dir.join("run.json"), &record)?;
        tracing::debug!(run = %record.id, experiment = %record.experiment, "run started");
        self.to_run(record)
    }

    fn log_params(&self, run_id: &str, params: &BTreeMap<String, String>) -> Result<()> {
        self.update_run(run_id, |r| r.params.extend(params.clone()))
    }

    fn log_metrics(&self, run_id: &str, metrics: &[Metric]) -> Result<()> {
        self.read_run(run_id)?;
        let mut lines = Vec::new();
        for m in metrics {
            serde_json::to_writer(&mut lines, m).map_err(|e| Error::Invalid(e.to_string()))?;
            lines.push(b'\n');
        }
        let path = self.run_dir(run_id)?.join("metrics.jsonl");
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        // One write of whole lines: appends from several writers do not interleave.
        file.write_all(&lines).map_err(|e| Error::io(&path, e))
    }

    fn upload_artifacts(&self, run_id: &str, dir: &Path, artifact_path: &str) -> Result<()> {
        fsutil::check_relative(artifact_path)?;
        self.read_run(run_id)?;
        let run_dir = self.run_dir(run_id)?;
        let staging = tempfile::Builder::new()
            .prefix(".upload-")
            .tempdir_in(&run_dir)
            .map_err(|e| Error::io(&run_dir, e))?;
        fsutil::copy_tree(dir, staging.path())?;
        let target = run_dir.join("artifacts").join(artifact_path);
        let _lock = FileLock::acquire(&run_dir.join("lock"))?;
        for rel in fsutil::list_files(staging.path())? {
            let to = target.join(&rel);
            fsutil::create_dir_all(fsutil::parent_of(&to))?;
            fsutil::rename(&staging.path().join(&rel), &to)?;
        }
        Ok(())
    }

    fn download_artifacts(&self, run_id: &str, artifact_path: &str, into: &Path) -> Result<()> {
        fsutil::check_relative(artifact_path)?;
        self.read_run(run_id)?;
        let from = self.run_dir(run_id)?.join("artifacts").join(artifact_path);
        if !from.is_dir() {
            return Err(Error::not_found(format!("artifacts {artifact_path} of run {run_id}")));
        }
        fsutil::copy_tree(&from, into)
    }

    fn finish_run(&self, run_id: &str, status: RunStatus) -> Result<()> {
        self.update_run(run_id, |r| {
            r.status = status;
            r.end_time = Some(now_millis());
        })
    }

    fn run(&self, run_id: &str) -> Result<Run> {
        let record = self.read_run(run_id)?;
        self.to_run(record)
    }

    fn runs(&self, experiment: &str) -> Result<Vec<Run>> {
        let mut runs = Vec::new();
        for dir in fsutil::entries_with_prefix(&self.root.join("runs"), "")? {
            let path = dir.join("run.json");
            if !path.is_file() {
                continue;
            }
            let record: RunRecord = fsutil::read_json(&path)?;
            if record.experiment == experiment {
                runs.push(self.to_run(record)?);
            }
        }
        runs.sort_by(|a, b| b.start_time.cmp(&a.start_time).then_with(|| a.id.cmp(&b.id)));
        Ok(runs)
    }

    fn create_version(&self, model: &str, new: &NewVersion) -> Result<ModelVersion> {
        self.read_run(&new.run_id)?;
        let source = self.run_dir(&new.run_id)?.join("artifacts").join(MODEL_ARTIFACT_PATH);
        let dir = self.model_dir(model)?;
        let staging_root = dir.join("staging");
        fsutil::create_dir_all(&staging_root)?;
        fsutil::create_dir_all(&dir.join("versions"))?;
        let _lock = FileLock::acquire(&dir.join("lock"))?;
        // Under the lock, anything left in staging belongs to a process that died.
        for leftover in fsutil::entries_with_prefix(&staging_root, "")? {
            tracing::info!(path = %leftover.display(), "removing an interrupted registration");
            fsutil::remove_all(&leftover)?;
        }
        let staged = staging_root.join(format!("{}", std::process::id()));
        fsutil::copy_tree(&source, &staged.join("files"))?;
        let number = self.version_numbers(&dir)?.last().map_or(1, |n| n + 1);
        let mut version = ModelVersion {
            model: model.to_owned(),
            version: number.to_string(),
            run_id: Some(new.run_id.clone()),
            created_at: now_millis(),
            aliases: Vec::new(),
            metrics: new.metrics.clone(),
            lineage: new.lineage.clone(),
            files: new.files.clone(),
        };
        // The run's files could have changed since they were digested: check the copy.
        verify(&staged.join("files"), &version)?;
        fsutil::write_json(&staged.join("version.json"), &version)?;
        fsutil::rename(&staged, &dir.join("versions").join(&version.version))?;
        version.aliases = aliases_of(&self.read_aliases(model)?, &version.version);
        Ok(version)
    }

    fn versions(&self, model: &str) -> Result<Vec<ModelVersion>> {
        let dir = self.model_dir(model)?;
        self.version_numbers(&dir)?
            .into_iter()
            .map(|n| self.read_version(model, &n.to_string()))
            .collect()
    }

    fn version(&self, model: &str, version: &str) -> Result<ModelVersion> {
        self.read_version(model, version)
    }

    fn set_alias(&self, model: &str, alias: &str, version: &str) -> Result<()> {
        check_name("alias", alias)?;
        self.read_version(model, version)?;
        self.update_aliases(model, |aliases| {
            aliases.insert(alias.to_owned(), version.to_owned());
            Ok(())
        })
    }

    fn delete_alias(&self, model: &str, alias: &str) -> Result<()> {
        self.update_aliases(model, |aliases| match aliases.remove(alias) {
            Some(_) => Ok(()),
            None => Err(Error::not_found(format!("alias {alias} of model {model}"))),
        })
    }

    fn resolve_alias(&self, model: &str, alias: &str) -> Result<ModelVersion> {
        match self.read_aliases(model)?.get(alias) {
            Some(version) => self.read_version(model, version),
            None => Err(Error::not_found(format!("alias {alias} of model {model}"))),
        }
    }

    fn download_version(&self, version: &ModelVersion, into: &Path) -> Result<()> {
        let dir = self.model_dir(&version.model)?.join("versions").join(&version.version);
        if !dir.join("version.json").is_file() {
            return Err(Error::not_found(format!(
                "version {} of model {}",
                version.version, version.model
            )));
        }
        fsutil::copy_tree(&dir.join("files"), into)
    }
}
