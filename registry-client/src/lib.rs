//! Experiment tracking and model registry for digit models: an embedded registry in a local
//! directory by default, MLflow-compatible servers for teams.
//!
//! The crate is being built up; for now it only fixes the name of the environment variables
//! every part of the system reads.

/// Environment variable naming the registry (a path, `file://` URI or MLflow URL).
pub const REGISTRY_URI_ENV: &str = "MODEL_REGISTRY_URI";

/// Environment variable holding the registry's access token.
pub const REGISTRY_TOKEN_ENV: &str = "MODEL_REGISTRY_TOKEN";
