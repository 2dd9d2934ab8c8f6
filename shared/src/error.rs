//! The one error type of the crate, phrased in the caller's terms.

use std::path::PathBuf;

/// Everything that can go wrong while reading data, preparing a picture or running the network.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// An IDX file is malformed: wrong magic number, truncated, inconsistent dimensions.
    #[error("{}: not a valid IDX file: {reason}", path.display())]
    InvalidIdx {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An images file and a labels file do not describe the same items.
    #[error("{}: {reason}", path.display())]
    InconsistentData {
        /// The file concerned.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },

    /// A file's content does not have the SHA-256 it must have.
    #[error("{}: checksum mismatch: expected SHA-256 {expected}, found {actual}", path.display())]
    ChecksumMismatch {
        /// The file concerned.
        path: PathBuf,
        /// The digest on record.
        expected: String,
        /// The digest of what was read.
        actual: String,
    },

    /// A data set file is absent from its directory.
    #[error("{}: missing {name} (looked for {name} and {name}.gz)", dir.display())]
    MissingFile {
        /// The directory searched.
        dir: PathBuf,
        /// The file's standard name.
        name: String,
    },

    /// The bytes are not an image in a supported format.
    #[error("unsupported image format: {0}")]
    UnsupportedImageFormat(String),

    /// The bytes claim to be an image but cannot be decoded.
    #[error("cannot decode image: {0}")]
    UndecodableImage(String),

    /// The image is larger than the decoder is allowed to handle.
    #[error("image too large: {0}")]
    ImageTooLarge(String),

    /// The picture contains no ink, so there is no digit to recognise.
    #[error("the picture contains no ink")]
    EmptyDrawing,

    /// Pixels given directly are not a valid 28x28 frame.
    #[error("invalid pixels: {0}")]
    InvalidPixels(String),

    /// A model card or weights file does not describe a usable network.
    #[error("invalid model: {0}")]
    InvalidModel(String),

    /// The tensor library failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
