//! The one public error type of the crate, in the caller's terms. Backends keep their own
//! details private and convert them into these variants.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in the caller's terms.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A run, model, version, alias or artifact does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, for example `version 3 of model digits`.
        what: String,
    },

    /// Something that must be unique exists already.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What was to be created.
        what: String,
    },

    /// A pulled file does not match the digest recorded when the version was registered.
    #[error("version {version}: file {file} failed verification: {detail}")]
    ChecksumMismatch {
        /// The model version.
        version: String,
        /// The file, relative to the model directory.
        file: String,
        /// What is wrong: a different digest, a missing or an unexpected file.
        detail: String,
    },

    /// The registry server could not be reached, or did not answer in time.
    #[error("registry at {url} is unreachable: {detail}")]
    Unreachable {
        /// The server address (never with credentials).
        url: String,
        /// What happened: connection refused, timed out, ...
        detail: String,
    },

    /// The server refused the credentials (HTTP 401 or 403).
    #[error(
        "registry refused access (HTTP {status}): {message}; check {}",
        crate::REGISTRY_TOKEN_ENV
    )]
    Denied {
        /// The HTTP status.
        status: u16,
        /// The server's explanation.
        message: String,
    },

    /// The backend cannot do this.
    #[error("{backend} does not support {what}")]
    Unsupported {
        /// The backend, for example `GitLab's model registry`.
        backend: &'static str,
        /// The operation and, where there is one, what to do instead.
        what: String,
    },

    /// Any other HTTP failure.
    #[error("registry answered HTTP {status} to {method} {url}: {message}")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The request method.
        method: String,
        /// The request address, without query.
        url: String,
        /// The server's explanation, decoded from JSON, HTML or plain text.
        message: String,
    },

    /// The server answered something this client does not understand.
    #[error("unexpected answer from the registry: {0}")]
    Protocol(String),

    /// An argument or a registry URI is not valid.
    #[error("{0}")]
    Invalid(String),

    /// Reading or writing a local file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    /// A [`Error::NotFound`] for `what`.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }

    /// An [`Error::Io`] about `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    /// Whether this is [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}
