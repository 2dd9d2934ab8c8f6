//! The training loop: data, initial weights, optimiser and schedule, per-epoch metrics,
//! divergence detection, and a model directory written all at once.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, SGD};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use shared::card::{
    ArchitectureRef, CARD_FILE, CARD_FORMAT, InputSpec, METRICS_FILE, Metrics, ModelCard,
    Normalisation, Optimiser, Timings, WEIGHTS_FILE,
};
use shared::dataset::{Dataset, DatasetSpec};
use shared::metrics::Evaluation;
use shared::{Architecture, DigitNet, FRAME_SIDE, TrainingSettings};

use crate::augment::{Distortion, render};
use crate::evaluate::evaluate;
use crate::output::StagedDir;
use crate::progress::Progress;
use crate::schedule::learning_rate;

/// A batch loss above this, or one that is not finite, means training has diverged. Untrained,
/// the cross-entropy of ten classes is about 2.3.
pub const DIVERGENCE_LOSS: f64 = 50.0;

/// What to train and where to put it.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// The settings, already validated.
    pub settings: TrainingSettings,
    /// Directory holding the data set's four IDX files.
    pub data_dir: PathBuf,
    /// The model directory to create.
    pub out_dir: PathBuf,
    /// Replace `out_dir` if it already holds something.
    pub replace: bool,
    /// Directory of the checkout, for the commit recorded in the card.
    pub source_dir: PathBuf,
}

/// The figures of one epoch, one line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Fraction of training images (as distorted) classified correctly during the epoch.
    pub train_accuracy: f64,
    /// Mean loss on the test set after the epoch.
    pub test_loss: f64,
    /// Fraction of test images classified correctly after the epoch.
    pub test_accuracy: f64,
    /// Learning rate at the end of the epoch.
    pub learning_rate: f64,
    /// Wall time of the epoch's training steps, in seconds.
    pub seconds: f64,
    /// Training images per second.
    pub samples_per_second: f64,
    /// Wall time from the start of the run to the end of this epoch's evaluation, in seconds:
    /// data loading, every step and every evaluation so far.
    #[serde(default)]
    pub elapsed_seconds: f64,
}

/// Receives each epoch's figures as training goes, for live experiment tracking.
pub trait EpochObserver {
    /// Called after each epoch; an error stops training.
    fn epoch_finished(&mut self, metrics: &EpochMetrics) -> anyhow::Result<()>;
}

/// An observer that ignores everything.
impl EpochObserver for () {
    fn epoch_finished(&mut self, _: &EpochMetrics) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Training stopped because the loss ran away.
#[derive(Debug, thiserror::Error)]
#[error(
    "training diverged at epoch {epoch}, step {step}: loss {loss} (limit {DIVERGENCE_LOSS}); lower the learning rate"
)]
pub struct Diverged {
    /// 1-based epoch.
    pub epoch: usize,
    /// 1-based step within the epoch.
    pub step: usize,
    /// The offending loss.
    pub loss: f64,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The model directory.
    pub dir: PathBuf,
    /// Its card.
    pub card: ModelCard,
    /// Every epoch's figures.
    pub epochs: Vec<EpochMetrics>,
}

/// Independent random streams derived from the one seed, so that changing one use (say,
/// augmentation) does not change the others (say, initial weights).
#[derive(Debug, Clone, Copy)]
enum Stream {
    Init = 1,
    Order = 2,
    Augment = 3,
    Dropout = 4,
}

fn rng(seed: u64, stream: Stream) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream as u64);
    rng
}

/// Trains as `request` says and writes the model directory.
pub fn train(
    request: &TrainRequest,
    observer: &mut dyn EpochObserver,
) -> anyhow::Result<TrainOutcome> {
    let settings = &request.settings;
    settings.validate().map_err(anyhow::Error::msg)?;
    let staged = StagedDir::new(&request.out_dir, request.replace)?;

    let started = Instant::now();
    let spec = DatasetSpec::builtin(&settings.dataset).with_context(|| {
        format!(
            "unknown data set {:?} (known: {})",
            settings.dataset,
            shared::dataset::BUILTIN_DATASETS.join(", ")
        )
    })?;
    let mut data = Dataset::load(&request.data_dir, &spec)?;
    if let Some(limit) = settings.train_limit {
        data.train.truncate(limit);
    }
    for dir in &settings.extra_data {
        let (extra, fingerprints) = shared::dataset::load_extra(dir)?;
        data.train.extend(&extra).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        data.fingerprints.extend(fingerprints);
        tracing::info!(dir = %dir.display(), images = extra.len(), "extra training data added");
    }
    if (data.train.rows, data.train.cols) != (FRAME_SIDE, FRAME_SIDE) {
        anyhow::bail!(
            "images are {}x{}, the networks need {FRAME_SIDE}x{FRAME_SIDE}",
            data.train.rows,
            data.train.cols
        );
    }
    let data_seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        dataset = %settings.dataset,
        train = data.train.len(),
        test = data.test.len(),
        seconds = format_args!("{data_seconds:.2}"),
        "data verified"
    );

    let (vars, net) = initialise(settings.architecture, settings.seed)?;
    let mut trainer = Loop::new(settings, &data, &vars, net, started)?;
    let mut metrics_file = std::fs::File::create(staged.path().join(METRICS_FILE))?;
    let mut epochs = Vec::with_capacity(settings.epochs);
    let mut last_test = None;
    for epoch in 1..=settings.epochs {
        let (figures, test) = trainer.epoch(epoch)?;
        writeln!(metrics_file, "{}", serde_json::to_string(&figures)?)?;
        log_epoch(&figures, settings.epochs);
        observer.epoch_finished(&figures)?;
        epochs.push(figures);
        last_test = Some(test);
    }
    metrics_file.sync_all()?;
    let training_seconds = started.elapsed().as_secs_f64() - data_seconds;

    let last = epochs.last().context("no epoch ran")?;
    let test = last_test.context("no evaluation ran")?;
    let card = ModelCard {
        format: CARD_FORMAT,
        architecture: ArchitectureRef::from(settings.architecture),
        input: InputSpec::default(),
        classes: (0..shared::CLASSES).map(|c| c.to_string()).collect(),
        training: settings.clone(),
        metrics: Metrics {
            test_accuracy: test.accuracy,
            test_loss: test.loss,
            train_loss: last.train_loss,
            test,
        },
        data: data.fingerprints.clone(),
        source: crate::git::source_info(&request.source_dir),
        timings: Timings {
            data_seconds,
            training_seconds,
            epoch_seconds: epochs.iter().map(|e| e.seconds).collect(),
        },
        trainer_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: chrono::Utc::now(),
    };
    save_weights(&vars, &staged.path().join(WEIGHTS_FILE))?;
    card.write(&staged.path().join(CARD_FILE))?;
    let dir = staged.commit()?;
    Ok(TrainOutcome { dir, card, epochs })
}

fn log_epoch(m: &EpochMetrics, epochs: usize) {
    tracing::info!(
        epoch = m.epoch,
        epochs,
        train_loss = format_args!("{:.4}", m.train_loss),
        test_loss = format_args!("{:.4}", m.test_loss),
        test_accuracy = format_args!("{:.4}", m.test_accuracy),
        lr = format_args!("{:.2e}", m.learning_rate),
        seconds = format_args!("{:.1}", m.seconds),
        samples_per_second = format_args!("{:.0}", m.samples_per_second),
        "epoch finished"
    );
}

/// Fresh weights for `architecture`: He-uniform for the hidden layers, a narrower uniform for
/// the output layer, zero biases; all drawn from the seed.
pub fn initialise(
    architecture: Architecture,
    seed: u64,
) -> anyhow::Result<(Vec<(String, Var)>, DigitNet)> {
    let mut rng = rng(seed, Stream::Init);
    let specs = architecture.parameters();
    let last_weight = specs.iter().rposition(|s| s.fan_in > 0).unwrap_or(0);
    let mut vars = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let len: usize = spec.shape.iter().product();
        let bound = match spec.fan_in {
            0 => 0.0,
            fan_in if i == last_weight => (1.0 / fan_in as f32).sqrt(),
            fan_in => (6.0 / fan_in as f32).sqrt(),
        };
        let values: Vec<f32> = (0..len)
            .map(|_| if bound > 0.0 { rng.random_range(-bound..bound) } else { 0.0 })
            .collect();
        let tensor = Tensor::from_vec(values, spec.shape.as_slice(), &Device::Cpu)?;
        vars.push((spec.name.to_owned(), Var::from_tensor(&tensor)?));
    }
    let tensors: HashMap<String, Tensor> =
        vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
    let net = DigitNet::from_tensors(architecture, &tensors)?;
    Ok((vars, net))
}

fn save_weights(vars: &[(String, Var)], path: &Path) -> anyhow::Result<()> {
    let tensors: HashMap<String, Tensor> =
        vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
    candle_core::safetensors::save(&tensors, path)
        .with_context(|| format!("writing {}", path.display()))
}

/// The optimisers the settings can name.
enum Step {
    AdamW(AdamW),
    Sgd(SGD),
}

impl Step {
    fn new(settings: &TrainingSettings, vars: Vec<Var>) -> candle_core::Result<Self> {
        Ok(match settings.optimiser {
            Optimiser::Adamw => Self::AdamW(AdamW::new(
                vars,
                ParamsAdamW {
                    lr: settings.learning_rate,
                    weight_decay: settings.weight_decay,
                    ..Default::default()
                },
            )?),
            Optimiser::Sgd => Self::Sgd(SGD::new(vars, settings.learning_rate)?),
        })
    }

    fn set_learning_rate(&mut self, lr: f64) {
        match self {
            Self::AdamW(o) => o.set_learning_rate(lr),
            Self::Sgd(o) => o.set_learning_rate(lr),
        }
    }

    fn backward_step(&mut self, loss: &Tensor) -> candle_core::Result<()> {
        match self {
            Self::AdamW(o) => o.backward_step(loss),
            Self::Sgd(o) => o.backward_step(loss),
        }
    }
}

/// The state that lives across epochs.
struct Loop<'a> {
    settings: &'a TrainingSettings,
    data: &'a Dataset,
    net: DigitNet,
    optimiser: Step,
    order: Vec<usize>,
    order_rng: ChaCha8Rng,
    augment_rng: ChaCha8Rng,
    dropout_rng: ChaCha8Rng,
    normalisation: Normalisation,
    step: usize,
    total_steps: usize,
    progress: Progress,
    run_started: Instant,
}

impl<'a> Loop<'a> {
    fn new(
        settings: &'a TrainingSettings,
        data: &'a Dataset,
        vars: &[(String, Var)],
        net: DigitNet,
        run_started: Instant,
    ) -> anyhow::Result<Self> {
        let steps_per_epoch = data.train.len().div_ceil(settings.batch_size);
        Ok(Self {
            settings,
            data,
            net,
            optimiser: Step::new(settings, vars.iter().map(|(_, v)| v.clone()).collect())?,
            order: (0..data.train.len()).collect(),
            order_rng: rng(settings.seed, Stream::Order),
            augment_rng: rng(settings.seed, Stream::Augment),
            dropout_rng: rng(settings.seed, Stream::Dropout),
            normalisation: Normalisation::MNIST,
            step: 0,
            total_steps: steps_per_epoch * settings.epochs,
            progress: Progress::detect(),
            run_started,
        })
    }

    /// One pass over the training set, then an evaluation on the test set.
    fn epoch(&mut self, epoch: usize) -> anyhow::Result<(EpochMetrics, Evaluation)> {
        let _span = tracing::info_span!("epoch", epoch).entered();
        let started = Instant::now();
        self.order.shuffle(&mut self.order_rng);
        let batches: Vec<Vec<usize>> =
            self.order.chunks(self.settings.batch_size).map(<[usize]>::to_vec).collect();
        self.progress.start_epoch(epoch, self.settings.epochs, batches.len());
        let (mut loss_sum, mut correct, mut lr) = (0.0, 0usize, self.settings.learning_rate);
        for (i, batch) in batches.iter().enumerate() {
            lr = learning_rate(
                self.settings.schedule,
                self.settings.learning_rate,
                self.settings.warmup_fraction,
                self.step,
                self.total_steps,
            );
            self.optimiser.set_learning_rate(lr);
            let (loss, hits) = self.train_step(batch)?;
            if !loss.is_finite() || loss > DIVERGENCE_LOSS {
                self.progress.finish_epoch();
                return Err(Diverged { epoch, step: i + 1, loss }.into());
            }
            loss_sum += loss * batch.len() as f64;
            correct += hits;
            self.step += 1;
            self.progress.step(epoch, i + 1, batches.len(), loss);
        }
        self.progress.finish_epoch();
        let seconds = started.elapsed().as_secs_f64();
        let seen = self.order.len();
        let test = evaluate(&self.net, &self.data.test, self.normalisation)?;
        let figures = EpochMetrics {
            epoch,
            train_loss: loss_sum / seen as f64,
            train_accuracy: correct as f64 / seen as f64,
            test_loss: test.loss,
            test_accuracy: test.accuracy,
            learning_rate: lr,
            seconds,
            samples_per_second: seen as f64 / seconds,
            elapsed_seconds: self.run_started.elapsed().as_secs_f64(),
        };
        Ok((figures, test))
    }

    /// One optimisation step; returns the batch's mean loss and number of correct answers.
    fn train_step(&mut self, batch: &[usize]) -> anyhow::Result<(f64, usize)> {
        let input = self.distorted_batch(batch)?;
        let labels: Vec<u32> =
            batch.iter().map(|&i| u32::from(self.data.train.labels[i])).collect();
        let targets = Tensor::from_slice(&labels, batch.len(), &Device::Cpu)?;
        let features = self.net.features(&input)?;
        let features = self.dropout(&features)?;
        let logits = self.net.head(&features)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &targets)?;
        self.optimiser.backward_step(&loss)?;
        let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        let hits = predicted.iter().zip(&labels).filter(|(p, l)| p == l).count();
        Ok((f64::from(loss.to_scalar::<f32>()?), hits))
    }

    fn distorted_batch(&mut self, batch: &[usize]) -> anyhow::Result<Tensor> {
        let pixels = FRAME_SIDE * FRAME_SIDE;
        let distortions: Vec<Option<Distortion>> = batch
            .iter()
            .map(|_| Distortion::sample(&self.settings.augmentation, &mut self.augment_rng))
            .collect();
        let (images, normalisation) = (&self.data.train, self.normalisation);
        let mut values = vec![0f32; batch.len() * pixels];
        values.par_chunks_exact_mut(pixels).zip(batch).zip(&distortions).for_each(
            |((out, &i), distortion)| {
                render(images.image(i), FRAME_SIDE, distortion.as_ref(), out);
                out.iter_mut().for_each(|v| *v = normalisation.apply(*v));
            },
        );
        Ok(Tensor::from_vec(values, (batch.len(), FRAME_SIDE, FRAME_SIDE, 1), &Device::Cpu)?)
    }

    /// Inverted dropout with a mask drawn from the seeded stream.
    fn dropout(&mut self, features: &Tensor) -> anyhow::Result<Tensor> {
        let p = self.settings.dropout;
        if p == 0.0 {
            return Ok(features.clone());
        }
        let keep = 1.0 / (1.0 - p);
        let mask: Vec<f32> = (0..features.elem_count())
            .map(|_| if self.dropout_rng.random::<f32>() < p { 0.0 } else { keep })
            .collect();
        let mask = Tensor::from_vec(mask, features.shape(), &Device::Cpu)?.to_dtype(DType::F32)?;
        Ok(features.mul(&mask)?)
    }
}
