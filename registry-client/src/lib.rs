//! Experiment tracking and model registry for digit models: an embedded registry in a local
//! directory by default, MLflow-compatible servers (an `mlflow server`, GitLab's model
//! registry) for teams.
//!
//! Everything goes through one trait, [`Registry`]; [`open`] picks the backend from a URI.
//! Calls block: the trainer and the command line call them directly, async servers from
//! `spawn_blocking`. An HTTP registry holds a blocking `reqwest` client, which must also be
//! opened and dropped outside the async runtime's threads (inside `spawn_blocking`, or before
//! the runtime starts). Errors are one enum, [`Error`], in the caller's terms.

mod error;
mod fsutil;
mod http;
pub mod local;
pub mod mlflow;
mod registry;
mod token;
mod types;

pub use error::{Error, Result};
pub use fsutil::{digest_dir, list_files, sha256_file};
pub use http::HttpSettings;
pub use local::LocalRegistry;
pub use mlflow::MlflowRegistry;
pub use registry::{CARD_FILE, HEADLINE_METRICS, PRODUCTION_ALIAS, Registry, verify};
pub use token::Token;
pub use types::{
    GIT_BRANCH_TAG, GIT_COMMIT_TAG, GIT_DIRTY_TAG, GitInfo, Lineage, MODEL_ARTIFACT_PATH, Metric,
    ModelVersion, NewVersion, Pulled, RegisterRequest, Run, RunSpec, RunStatus, Selector, Summary,
    VersionAccuracy, now_millis,
};

/// Environment variable naming the registry (a path, `file://` URI or MLflow URL).
pub const REGISTRY_URI_ENV: &str = "MODEL_REGISTRY_URI";

/// Environment variable holding the registry's access token.
pub const REGISTRY_TOKEN_ENV: &str = "MODEL_REGISTRY_TOKEN";

/// The registry used when none is named: a directory in the working directory.
pub const DEFAULT_REGISTRY: &str = "registry";

/// Opens the registry `uri` names, with default timeouts and retries: `http(s)://` is an
/// MLflow server (GitLab's when the path holds `/api/v4/projects/`), `file://` or a plain
/// path the embedded registry.
pub fn open(uri: &str, token: Option<Token>) -> Result<Box<dyn Registry>> {
    open_with(uri, token, HttpSettings::default())
}

/// [`open`] with explicit HTTP settings.
pub fn open_with(
    uri: &str,
    token: Option<Token>,
    settings: HttpSettings,
) -> Result<Box<dyn Registry>> {
    if !uri.contains("://") {
        if uri.is_empty() {
            return Err(Error::Invalid("empty registry URI".into()));
        }
        return Ok(Box::new(LocalRegistry::open(uri)?));
    }
    let url = url::Url::parse(uri)
        .map_err(|e| Error::Invalid(format!("invalid registry URI {uri:?}: {e}")))?;
    match url.scheme() {
        "file" => {
            let path = url
                .to_file_path()
                .map_err(|()| Error::Invalid(format!("invalid file URI {uri:?}")))?;
            Ok(Box::new(LocalRegistry::open(path)?))
        }
        "http" | "https" => Ok(Box::new(MlflowRegistry::new(&url, token, settings)?)),
        other => Err(Error::Invalid(format!(
            "unsupported registry URI scheme {other:?}: use a path, file://, http:// or https://"
        ))),
    }
}
