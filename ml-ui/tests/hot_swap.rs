//! Hot swap under load: sixteen clients keep `/api/predict` busy over real HTTP while the served
//! model directory is replaced and the source is refreshed, as the watcher does. No request may
//! fail, every answer must come whole from one of the two valid models (its probabilities are
//! that model's own), and no request that started after a swap finished may see the old model.
//! Then three broken versions (truncated weights, a card naming the wrong network, weights that
//! fail the warm-up prediction) are refused while the current model keeps answering; a valid
//! version after them is taken again.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ml_ui::inference::Predictor;
use ml_ui::metrics::Metrics;
use ml_ui::source::{DirSource, ModelSource, refresh};
use serde_json::{Value, json};
use shared::card::{CARD_FILE, WEIGHTS_FILE};
use shared::{CLASSES, Frame, Model};

/// Clients hammering the server.
const CLIENTS: usize = 16;

/// Test digits the clients send, in turn.
const SAMPLES: usize = 32;

/// Answers to wait for after each step, so that each step happens under load.
const ANSWERS_PER_STEP: usize = 150;

/// Largest difference allowed between a served probability and the same model's own, run
/// here in a batch of its own: batching changes only the order of float sums.
const TOLERANCE: f32 = 1e-4;

/// What the clients saw.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    answered: AtomicUsize,
    failures: Mutex<Vec<String>>,
    by_version: Mutex<BTreeMap<String, usize>>,
    /// Seqlock over swaps: odd while the test swaps, even between swaps.
    generation: AtomicUsize,
    /// The version served in the current even generation.
    stable: Mutex<String>,
    /// Each valid version's probabilities for each sample.
    references: HashMap<String, Vec<[f32; CLASSES]>>,
}

impl Load {
    fn fail(&self, message: String) {
        self.failures.lock().unwrap().push(message);
    }

    /// Checks one answer to `sample`, sent in generation `before` and received in `after`.
    fn check(&self, sample: usize, answer: &Value, before: usize, expected: &str, after: usize) {
        let version = answer["model_version"].as_str().unwrap_or_default().to_owned();
        let Some(reference) = self.references.get(&version) else {
            return self.fail(format!("answered by unknown version {version:?}: {answer}"));
        };
        if before == after && before.is_multiple_of(2) && version != expected {
            self.fail(format!("{version} answered while only {expected} was being served"));
        }
        let served: Vec<f32> = answer["probabilities"]
            .as_array()
            .map(|p| p.iter().filter_map(Value::as_f64).map(|v| v as f32).collect())
            .unwrap_or_default();
        let whole = served.len() == CLASSES
            && served.iter().zip(&reference[sample]).all(|(s, r)| (s - r).abs() <= TOLERANCE);
        if !whole {
            self.fail(format!("sample {sample}: {served:?} are not {version}'s {reference:?}"));
        }
        *self.by_version.lock().unwrap().entry(version).or_default() += 1;
        self.answered.fetch_add(1, Ordering::SeqCst);
    }
}

/// One client: sends the samples in turn, as 784 pixels, until told to stop.
async fn client(load: Arc<Load>, url: String, samples: Arc<Vec<Vec<f32>>>, first: usize) {
    let http = reqwest::Client::new();
    let mut sample = first;
    while !load.stop.load(Ordering::SeqCst) {
        sample = (sample + 1) % samples.len();
        let before = load.generation.load(Ordering::SeqCst);
        let expected = load.stable.lock().unwrap().clone();
        let sent = http
            .post(format!("{url}/api/predict"))
            .json(&json!({ "pixels": samples[sample] }))
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                load.fail(format!("request failed: {e}"));
                continue;
            }
        };
        let status = response.status();
        let body = response.text().await.unwrap_or_else(|e| format!("unreadable body: {e}"));
        let after = load.generation.load(Ordering::SeqCst);
        match serde_json::from_str::<Value>(&body) {
            Ok(answer) if status == 200 => load.check(sample, &answer, before, &expected, after),
            _ => load.fail(format!("status {status}: {body}")),
        }
    }
}

/// Polls until the clients have answered `count` requests in all.
async fn wait_for_answers(load: &Load, count: usize) {
    let waited = tokio::time::timeout(Duration::from_secs(120), async {
        while load.answered.load(Ordering::SeqCst) < count && !load.stop.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the clients did not reach {count} answers in two minutes");
}

/// The served directory and what refreshing it needs.
struct Served {
    dir: PathBuf,
    predictor: Predictor,
    metrics: Arc<Metrics>,
    refused: Option<String>,
}

impl Served {
    /// Refreshes from the directory off the async workers, as the watcher thread does, with the
    /// clients' seqlock held; returns whether a new model was installed.
    async fn refresh(&mut self, load: &Load) -> bool {
        load.generation.fetch_add(1, Ordering::SeqCst);
        let (dir, predictor, metrics) =
            (self.dir.clone(), self.predictor.clone(), self.metrics.clone());
        let mut refused = self.refused.take();
        let (installed, refused) = tokio::task::spawn_blocking(move || {
            let installed = refresh(&mut DirSource::new(&dir), &predictor, &metrics, &mut refused);
            (installed, refused)
        })
        .await
        .unwrap();
        self.refused = refused;
        *load.stable.lock().unwrap() = self.predictor.current().unwrap().version.clone();
        load.generation.fetch_add(1, Ordering::SeqCst);
        installed
    }

    fn serving(&self) -> String {
        self.predictor.current().unwrap().version.clone()
    }
}

/// The version a model directory gets once it is copied over `served`: a copy of it in a
/// directory of the same name, asked through the same source.
fn version_as(model: &Path, served: &Path, scratch: &Path) -> String {
    let twin = scratch.join("twin").join(served.file_name().unwrap());
    support::copy_model(model, &twin);
    let version = DirSource::new(&twin).latest().unwrap().0;
    std::fs::remove_dir_all(twin.parent().unwrap()).unwrap();
    version
}

/// Each sample's probabilities as the model in `dir` gives them, one batch for all.
fn reference(dir: &Path, samples: &[Vec<f32>]) -> Vec<[f32; CLASSES]> {
    let frames: Vec<Frame> = samples.iter().map(|s| Frame::from_intensities(s).unwrap()).collect();
    Model::load(dir).unwrap().predict(&frames).unwrap()
}

/// Writes the card of `model` into `dir` with a change (a new card is a new version).
fn write_card(model: &Path, dir: &Path, change: impl FnOnce(&mut Value)) {
    let mut card: Value =
        serde_json::from_slice(&std::fs::read(model.join(CARD_FILE)).unwrap()).unwrap();
    change(&mut card);
    std::fs::write(dir.join(CARD_FILE), serde_json::to_vec_pretty(&card).unwrap()).unwrap();
}

/// A card that differs from `model`'s only in when it was written.
fn retimed(card: &mut Value, stamp: &str) {
    card["created_at"] = json!(stamp);
}

/// A version that must be refused.
struct Broken {
    what: &'static str,
    weights: Vec<u8>,
    card: fn(&mut Value),
    /// Whether it loads, so that only the warm-up prediction can refuse it.
    loads: bool,
}

/// Broken versions of the model whose weights are `weights`: truncated weights, a card naming
/// the other network, and weights that load but answer NaN.
fn broken_versions(weights: &[u8]) -> [Broken; 3] {
    [
        Broken {
            what: "truncated weights",
            weights: weights[..weights.len() / 2].to_vec(),
            card: |c| retimed(c, "2001-01-01T00:00:00Z"),
            loads: false,
        },
        Broken {
            what: "a card naming the wrong network",
            weights: weights.to_vec(),
            card: |c| c["architecture"]["name"] = json!("cnn"),
            loads: false,
        },
        Broken {
            what: "NaN weights",
            weights: nan_weights(weights),
            card: |c| retimed(c, "2002-02-02T00:00:00Z"),
            loads: true,
        },
    ]
}

/// Safetensors weights whose values are all NaN: the header is kept, every data byte is 0xFF.
fn nan_weights(weights: &[u8]) -> Vec<u8> {
    let header = u64::from_le_bytes(weights[..8].try_into().unwrap());
    let data_start = 8 + usize::try_from(header).unwrap();
    let mut out = weights.to_vec();
    out[data_start..].fill(0xFF);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn models_swap_under_load_without_a_failed_request_and_broken_ones_are_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let first = support::default_model();
    let second = scratch.path().join("second");
    support::train_into(support::quick_settings(3_000, 1), &second).unwrap();
    let served_dir = scratch.path().join("served");
    support::copy_model(first, &served_dir);
    let samples: Vec<Vec<f32>> = (0..SAMPLES)
        .map(|i| support::mnist().test.image(i).iter().map(|&b| f32::from(b) / 255.0).collect())
        .collect();
    let v1 = version_as(first, &served_dir, scratch.path());
    let v2 = version_as(&second, &served_dir, scratch.path());
    assert_ne!(v1, v2);

    let server = support::TestServer::start(&served_dir).await;
    let mut served = Served {
        dir: served_dir.clone(),
        predictor: server.state.predictor.clone(),
        metrics: server.state.metrics.clone(),
        refused: None,
    };
    assert_eq!(served.serving(), v1);
    let load = Arc::new(Load {
        references: HashMap::from([
            (v1.clone(), reference(first, &samples)),
            (v2.clone(), reference(&second, &samples)),
        ]),
        stable: Mutex::new(v1.clone()),
        ..Load::default()
    });
    let samples = Arc::new(samples);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(client(load.clone(), server.url.clone(), samples.clone(), i)))
        .collect();
    wait_for_answers(&load, ANSWERS_PER_STEP).await;

    // A valid new version replaces the directory's files and is taken.
    support::copy_model(&second, &served_dir);
    assert!(served.refresh(&load).await, "the second model was not installed");
    assert_eq!(served.serving(), v2);
    let swapped_at = load.answered.load(Ordering::SeqCst);
    wait_for_answers(&load, swapped_at + ANSWERS_PER_STEP).await;

    // Broken versions are refused, each a new card, and the second model keeps serving.
    let weights = std::fs::read(second.join(WEIGHTS_FILE)).unwrap();
    for broken in broken_versions(&weights) {
        let what = broken.what;
        std::fs::write(served_dir.join(WEIGHTS_FILE), &broken.weights).unwrap();
        write_card(&second, &served_dir, broken.card);
        assert_eq!(Model::load(&served_dir).is_ok(), broken.loads, "loading a model with {what}");
        let before = load.answered.load(Ordering::SeqCst);
        assert!(!served.refresh(&load).await, "a model with {what} was installed");
        assert_eq!(served.serving(), v2, "after refusing {what}");
        assert!(served.refused.is_some(), "{what} not remembered as refused");
        assert!(!served.refresh(&load).await, "{what} was tried again");
        wait_for_answers(&load, before + ANSWERS_PER_STEP).await;
    }

    // After a refusal, a valid version is taken again.
    support::copy_model(first, &served_dir);
    assert!(served.refresh(&load).await, "the first model was not taken back");
    assert_eq!(served.serving(), v1);
    let back_at = load.answered.load(Ordering::SeqCst);
    wait_for_answers(&load, back_at + ANSWERS_PER_STEP).await;

    load.stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let metrics = reqwest::get(format!("{}/metrics", server.url)).await.unwrap();
    let metrics = metrics.text().await.unwrap();
    let failures = load.failures.lock().unwrap();
    let by_version = load.by_version.lock().unwrap();
    let answered = load.answered.load(Ordering::SeqCst);
    eprintln!("{answered} answers, by version {by_version:?}, {} failures", failures.len());
    let shown = &failures[..failures.len().min(10)];
    assert!(failures.is_empty(), "{} failed, the first: {shown:#?}", failures.len());
    assert_eq!(by_version.len(), 2, "both versions answered: {by_version:?}");
    for (version, value) in [(&v1, 1), (&v2, 0)] {
        let line = format!("model_info{{version=\"{version}\"}} {value}");
        assert!(metrics.contains(&line), "no {line:?} in the metrics:\n{metrics}");
    }
}
