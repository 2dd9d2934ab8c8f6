//! Feedback from users ("Wrong? It was a ..."): each corrected drawing is kept as its 28x28
//! frame with the right label, one small file per item written atomically, and the lot can be
//! exported as IDX files that `trainer train --extra-data DIR` takes as extra training data.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use serde::{Deserialize, Serialize};
use shared::Frame;

/// One stored correction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackItem {
    /// The label the user gave.
    pub label: u8,
    /// What the model had answered, if the client said.
    pub predicted: Option<u8>,
    /// The model version that answered.
    pub model_version: Option<String>,
    /// The preprocessed frame, 784 bytes (0 background, 255 ink), base64.
    pub frame: String,
    /// When it was stored.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The directory where feedback lives.
#[derive(Debug)]
pub struct FeedbackStore {
    dir: PathBuf,
    counter: AtomicU64,
}

/// File names of an export, the standard training names so the trainer finds them.
pub const EXPORT_IMAGES: &str = "train-images-idx3-ubyte";
/// See [`EXPORT_IMAGES`].
pub const EXPORT_LABELS: &str = "train-labels-idx1-ubyte";

impl FeedbackStore {
    /// A store in `dir`, created if needed.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self { dir: dir.to_owned(), counter: AtomicU64::new(0) })
    }

    /// Stores one correction and returns its id.
    pub fn add(
        &self,
        frame: &Frame,
        label: u8,
        predicted: Option<u8>,
        model_version: Option<String>,
    ) -> anyhow::Result<String> {
        let now = chrono::Utc::now();
        let id = format!(
            "{}-{}-{}",
            now.format("%Y%m%dT%H%M%S%.6fZ"),
            std::process::id(),
            self.counter.fetch_add(1, Ordering::Relaxed)
        );
        let item = FeedbackItem {
            label,
            predicted,
            model_version,
            frame: base64::engine::general_purpose::STANDARD.encode(frame.to_mnist()),
            created_at: now,
        };
        let json = serde_json::to_vec(&item)?;
        shared::fsutil::write_atomic(&self.dir.join(format!("{id}.json")), &json)?;
        Ok(id)
    }

    /// Every stored item, oldest first; unreadable files are skipped with a warning.
    pub fn items(&self) -> std::io::Result<Vec<FeedbackItem>> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        Ok(paths
            .iter()
            .filter_map(|p| {
                let parsed = std::fs::read(p)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<FeedbackItem>(&b).ok());
                if parsed.is_none() {
                    tracing::warn!(path = %p.display(), "skipping unreadable feedback");
                }
                parsed
            })
            .collect())
    }

    /// Writes all items as an IDX images file and labels file into `out`; returns the count.
    pub fn export(&self, out: &Path) -> anyhow::Result<usize> {
        let items = self.items()?;
        let mut pixels = Vec::with_capacity(items.len() * 784);
        let mut labels = Vec::with_capacity(items.len());
        for item in &items {
            let frame = base64::engine::general_purpose::STANDARD.decode(&item.frame)?;
            anyhow::ensure!(
                frame.len() == 784 && item.label < 10,
                "corrupt feedback item from {}",
                item.created_at
            );
            pixels.extend_from_slice(&frame);
            labels.push(item.label);
        }
        std::fs::create_dir_all(out)?;
        let side = shared::FRAME_SIDE;
        shared::idx::write_idx(&out.join(EXPORT_IMAGES), &[items.len(), side, side], &pixels)?;
        shared::idx::write_idx(&out.join(EXPORT_LABELS), &[items.len()], &labels)?;
        Ok(items.len())
    }
}
