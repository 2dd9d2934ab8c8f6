//! What users and clients see of the served model: its version and lineage at a glance.

use serde::Serialize;

use crate::inference::ServedModel;

/// The served model, as `GET /api/model` answers and the page shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// Version (registry version or directory name).
    pub version: String,
    /// Where it came from.
    pub source: String,
    /// Network architecture.
    pub architecture: String,
    /// Layout version of the architecture.
    pub architecture_version: u32,
    /// Number of trainable values.
    pub parameters: usize,
    /// Fraction of test images classified correctly.
    pub test_accuracy: f64,
    /// Data set it learned.
    pub dataset: String,
    /// When it was trained.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The commit of the training code.
    pub git_commit: Option<String>,
    /// Whether that checkout had uncommitted changes.
    pub git_dirty: Option<bool>,
    /// The trainer's version.
    pub trainer_version: String,
    /// Class names, index = class.
    pub classes: Vec<String>,
}

impl From<&ServedModel> for ModelInfo {
    fn from(served: &ServedModel) -> Self {
        let card = &served.model.card;
        Self {
            version: served.version.clone(),
            source: served.source.clone(),
            architecture: card.architecture.name.to_string(),
            architecture_version: card.architecture.version,
            parameters: card.architecture.parameters,
            test_accuracy: card.metrics.test_accuracy,
            dataset: card.training.dataset.clone(),
            created_at: card.created_at,
            git_commit: card.source.git_commit.clone(),
            git_dirty: card.source.git_dirty,
            trainer_version: card.trainer_version.clone(),
            classes: card.classes.clone(),
        }
    }
}
