//! Inference off the async workers: one thread owns the forward passes, takes every request
//! waiting in its queue as one batch, and answers each through its own channel. The model is
//! swapped atomically between batches, so no request ever sees two models.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use arc_swap::ArcSwapOption;
use serde::Serialize;
use shared::model::argmax;
use shared::{CLASSES, Frame, Model};
use tokio::sync::oneshot;

/// Most requests answered by one forward pass. Larger batches cost little less per image on a
/// CPU and hold several times the memory (the convolutions' patch matrices grow with the
/// batch): on 2 cores at concurrency 64, 8 serves as many requests per second as 16 with a
/// fifth less peak memory.
pub const MAX_BATCH: usize = 8;

/// A model with the name it is served under.
#[derive(Debug)]
pub struct ServedModel {
    /// The network and its card.
    pub model: Model,
    /// Registry version (or directory name) shown to users and in metrics.
    pub version: String,
    /// Where the model came from: a directory or a registry alias.
    pub source: String,
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// The most probable digit.
    pub digit: usize,
    /// Probability of each class, index = digit.
    pub probabilities: [f32; CLASSES],
    /// The model version that answered.
    pub model_version: String,
}

/// Why a prediction could not be made.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    /// No model has been loaded yet.
    #[error("no model is loaded yet")]
    NoModel,
    /// The inference thread is gone or the network failed.
    #[error("inference failed: {0}")]
    Failed(String),
}

struct Job {
    frame: Frame,
    reply: oneshot::Sender<Result<Prediction, InferenceError>>,
}

/// The handle that request handlers use.
#[derive(Clone)]
pub struct Predictor {
    current: Arc<ArcSwapOption<ServedModel>>,
    ready: Arc<AtomicBool>,
    queue: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Predictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Predictor").field("ready", &self.is_ready()).finish_non_exhaustive()
    }
}

impl Predictor {
    /// Starts the inference thread with no model; [`Predictor::install`] provides one.
    pub fn start() -> Self {
        let current: Arc<ArcSwapOption<ServedModel>> = Arc::new(ArcSwapOption::empty());
        let (queue, jobs) = mpsc::channel::<Job>();
        let models = current.clone();
        std::thread::Builder::new()
            .name("inference".into())
            .spawn(move || {
                // The thread is the first worker of its own rayon pool, which runs the forward
                // passes' parallel loops: they start where the batch is, instead of handing
                // work to sleeping threads and waiting for them, which costs more than a
                // single frame's pass.
                let pool = rayon::ThreadPoolBuilder::new()
                    .thread_name(|i| format!("inference-{i}"))
                    .use_current_thread()
                    .build();
                let serve = move || serve_batches(&jobs, &models);
                match pool {
                    Ok(pool) => pool.install(serve),
                    Err(e) => {
                        tracing::warn!(error = %e, "no thread pool for inference; using rayon's");
                        serve();
                    }
                }
            })
            .map(drop)
            .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the inference thread"));
        Self { current, ready: Arc::new(AtomicBool::new(false)), queue }
    }

    /// Classifies one frame, batched with whatever else is waiting.
    pub async fn predict(&self, frame: Frame) -> Result<Prediction, InferenceError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { frame, reply })
            .map_err(|_| InferenceError::Failed("the inference thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| InferenceError::Failed("the inference thread dropped a request".into()))?
    }

    /// Checks a model with a smoke prediction and, if it passes, serves it from the next
    /// batch on. A model that fails is refused and the current one keeps serving.
    pub fn install(&self, candidate: ServedModel) -> Result<(), String> {
        smoke_test(&candidate.model)
            .map_err(|e| format!("model {} refused: {e}", candidate.version))?;
        let version = candidate.version.clone();
        let previous = self.current.swap(Some(Arc::new(candidate)));
        self.ready.store(true, Ordering::SeqCst);
        match previous {
            Some(old) => tracing::info!(from = %old.version, to = %version, "model swapped"),
            None => tracing::info!(%version, "model loaded"),
        }
        Ok(())
    }

    /// The model being served, if any.
    pub fn current(&self) -> Option<Arc<ServedModel>> {
        self.current.load_full()
    }

    /// Whether a model is loaded and has answered its warm-up prediction.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// A warm-up prediction: the network must answer with ten finite probabilities summing to one.
fn smoke_test(model: &Model) -> Result<(), String> {
    let mut stroke = vec![0f32; shared::preprocess::FRAME_PIXELS];
    for y in 5..23 {
        stroke[y * shared::FRAME_SIDE + 14] = 1.0;
    }
    let frame = Frame::from_intensities(&stroke).map_err(|e| e.to_string())?;
    let answers = model.predict(&[frame.clone(), frame]).map_err(|e| e.to_string())?;
    let p = answers.first().ok_or("no answer")?;
    let sum: f32 = p.iter().sum();
    if p.iter().any(|v| !v.is_finite()) || (sum - 1.0).abs() > 1e-3 {
        return Err(format!("warm-up prediction gave probabilities {p:?}"));
    }
    Ok(())
}

/// The inference thread: waits for a request, takes all others already queued (up to
/// [`MAX_BATCH`]), and answers them with one forward pass of the current model.
fn serve_batches(jobs: &mpsc::Receiver<Job>, models: &ArcSwapOption<ServedModel>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let Some(served) = models.load_full() else {
            for job in batch {
                let _ = job.reply.send(Err(InferenceError::NoModel));
            }
            continue;
        };
        let (frames, replies): (Vec<Frame>, Vec<_>) =
            batch.into_iter().map(|j| (j.frame, j.reply)).unzip();
        match served.model.predict(&frames) {
            Ok(all) => {
                for (probabilities, reply) in all.into_iter().zip(replies) {
                    let (digit, _) = argmax(&probabilities);
                    let _ = reply.send(Ok(Prediction {
                        digit,
                        probabilities,
                        model_version: served.version.clone(),
                    }));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, version = %served.version, "inference failed");
                for reply in replies {
                    let _ = reply.send(Err(InferenceError::Failed(e.to_string())));
                }
            }
        }
    }
}
