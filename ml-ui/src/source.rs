//! Where the served model comes from, and the watcher that swaps in new versions: a model
//! directory (its card's digest is the version) or a registry alias (pulled into a local
//! cache). A new version is loaded, smoke-tested and swapped in; one that fails is refused,
//! logged once, and the current model keeps serving.

use std::path::{Path, PathBuf};
use std::time::Duration;

use shared::Model;
use shared::card::{CARD_FILE, WEIGHTS_FILE};

use crate::inference::{Predictor, ServedModel};
use crate::metrics::Metrics;

/// A place that names the model to serve.
pub trait ModelSource: Send + 'static {
    /// The version to serve now and the directory holding it.
    fn latest(&mut self) -> anyhow::Result<(String, PathBuf)>;

    /// Describes the source for people (`dir:...`, `registry:...#production`).
    fn describe(&self) -> String;
}

/// A model directory, versioned by the digest of its card.
#[derive(Debug)]
pub struct DirSource {
    dir: PathBuf,
}

impl DirSource {
    /// Serves `dir`.
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_owned() }
    }
}

impl ModelSource for DirSource {
    /// The version names the digest of both the card and the weights, so replacing either
    /// file is a new version (and a refused version is retried once its files change).
    fn latest(&mut self) -> anyhow::Result<(String, PathBuf)> {
        let mut digest = String::new();
        for file in [CARD_FILE, WEIGHTS_FILE] {
            let path = self.dir.join(file);
            let bytes =
                std::fs::read(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            digest.push_str(&shared::dataset::sha256_hex(&bytes));
        }
        let name = self
            .dir
            .file_name()
            .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
        let digest = shared::dataset::sha256_hex(digest.as_bytes());
        Ok((format!("{name}@{}", &digest[..12]), self.dir.clone()))
    }

    fn describe(&self) -> String {
        format!("dir:{}", self.dir.display())
    }
}

/// A registry alias, pulled (and verified file by file) into a local cache directory.
#[derive(Debug)]
pub struct RegistrySource {
    registry: Box<dyn registry_client::Registry>,
    uri: String,
    model: String,
    alias: String,
    cache: PathBuf,
}

impl RegistrySource {
    /// Serves whatever version `alias` of `model` points at in the registry at `uri`.
    pub fn open(uri: &str, model: &str, alias: &str, cache: &Path) -> anyhow::Result<Self> {
        let registry = registry_client::open(uri, registry_client::Token::from_env())?;
        Ok(Self {
            registry,
            uri: uri.to_owned(),
            model: model.to_owned(),
            alias: alias.to_owned(),
            cache: cache.to_owned(),
        })
    }
}

impl ModelSource for RegistrySource {
    fn latest(&mut self) -> anyhow::Result<(String, PathBuf)> {
        let version = self.registry.resolve_alias(&self.model, &self.alias)?;
        let dest = self.cache.join(format!("{}-{}", self.model, version.version));
        let selector = registry_client::Selector::Version(version.version);
        let pulled = self.registry.pull(&self.model, &selector, &dest)?;
        Ok((format!("{}:{}", self.model, pulled.version.version), pulled.dest))
    }

    fn describe(&self) -> String {
        format!("registry:{}#{}@{}", self.uri, self.model, self.alias)
    }
}

/// Loads the source's current version into the predictor if it is new; returns whether a
/// model was installed.
pub fn refresh(
    source: &mut dyn ModelSource,
    predictor: &Predictor,
    metrics: &Metrics,
    refused: &mut Option<String>,
) -> bool {
    let (version, dir) = match source.latest() {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(source = %source.describe(), error = %format!("{e:#}"), "cannot check for a model");
            return false;
        }
    };
    let current = predictor.current().map(|m| m.version.clone());
    if current.as_deref() == Some(version.as_str()) || refused.as_deref() == Some(version.as_str())
    {
        return false;
    }
    let result = Model::load(&dir).map_err(|e| e.to_string()).and_then(|model| {
        predictor.install(ServedModel {
            model,
            version: version.clone(),
            source: source.describe(),
        })
    });
    match result {
        Ok(()) => {
            metrics.serving(&version);
            *refused = None;
            true
        }
        Err(e) => {
            match current {
                Some(serving) => {
                    tracing::error!(%version, %serving, error = %e, "new model refused; the current one keeps serving")
                }
                None => {
                    tracing::error!(%version, error = %e, "model refused; nothing is served until a valid one appears")
                }
            }
            *refused = Some(version);
            false
        }
    }
}

/// Loads the first model now (retrying until one loads), then checks for new versions every
/// `interval` on a background thread.
pub fn watch(
    mut source: Box<dyn ModelSource>,
    predictor: Predictor,
    metrics: std::sync::Arc<Metrics>,
    interval: Duration,
) {
    std::thread::Builder::new()
        .name("model-watch".into())
        .spawn(move || {
            let mut refused = None;
            loop {
                refresh(source.as_mut(), &predictor, &metrics, &mut refused);
                std::thread::sleep(interval);
            }
        })
        .map(drop)
        .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the model watcher"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_replacing_only_the_weights_is_a_new_version() {
        // Versions were once the digest of the card alone: new weights under an unchanged card
        // were never noticed, and a version refused while half-copied was never retried.
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let write = |file: &str, text: &str| {
            std::fs::write(dir.path().join(file), text).unwrap_or_else(|e| panic!("{e}"))
        };
        write(CARD_FILE, "card");
        write(WEIGHTS_FILE, "weights one");
        let mut source = DirSource::new(dir.path());
        let first = source.latest().unwrap_or_else(|e| panic!("{e}")).0;
        write(WEIGHTS_FILE, "weights two");
        let second = source.latest().unwrap_or_else(|e| panic!("{e}")).0;
        assert_ne!(first, second);
        std::fs::remove_file(dir.path().join(WEIGHTS_FILE)).unwrap_or_else(|e| panic!("{e}"));
        assert!(source.latest().is_err());
    }
}
