//! In-process benchmarks of the hot paths: a canvas PNG brought into a frame, the network
//! forward on one frame and on a batch of 64, and one training step (forward, backward, AdamW)
//! on a batch of 128, the default configuration's batch size.
//!
//! The inputs are MNIST test digits re-drawn as a browser canvas draws them. Weights come from a
//! fixed pseudo-random stream: the cost of a forward or backward pass does not depend on them.
//!
//! Run with `cargo bench -p shared --bench digits`; `scripts/bench.sh` runs it too (with
//! `CANDLE_NUM_THREADS=1`, as the binaries set it).

use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use shared::canvas::{CanvasStyle, png_bytes, redraw};
use shared::card::Normalisation;
use shared::idx::{LabelledImages, read_labelled};
use shared::model::frames_to_tensor;
use shared::network::{Architecture, DigitNet};
use shared::preprocess::{DecodeLimits, Frame, preprocess};

/// Batch of the batched-inference benchmark: what the server collects under load.
const INFERENCE_BATCH: usize = 64;

/// Batch of the training-step benchmark: `trainer/config.toml`'s batch size.
const TRAINING_BATCH: usize = 128;

fn test_digits() -> LabelledImages {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist");
    read_labelled(&dir.join("t10k-images-idx3-ubyte.gz"), &dir.join("t10k-labels-idx1-ubyte.gz"))
        .expect("the shipped MNIST test set is readable")
}

/// A digit drawn off-centre on a 280x280 transparent canvas, as the drawing page sends it.
fn canvas_png(digits: &LabelledImages, index: usize) -> Vec<u8> {
    let style = CanvasStyle { origin: (20.0, 10.0), scale: 8.0, ..CanvasStyle::default() };
    png_bytes(&redraw(digits.image(index), &style))
}

/// Weights of `architecture` drawn from a fixed linear congruential stream, scaled by fan-in.
fn weights(architecture: Architecture) -> Vec<(String, Var)> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    architecture
        .parameters()
        .into_iter()
        .map(|spec| {
            let len: usize = spec.shape.iter().product();
            let bound = if spec.fan_in == 0 { 0.0 } else { (6.0 / spec.fan_in as f32).sqrt() };
            let values: Vec<f32> = (0..len).map(|_| 2.0 * bound * next()).collect();
            let tensor = Tensor::from_vec(values, spec.shape.as_slice(), &Device::Cpu)
                .expect("the shape matches the value count");
            let var = Var::from_tensor(&tensor).expect("a CPU tensor becomes a variable");
            (spec.name.to_owned(), var)
        })
        .collect()
}

fn network(vars: &[(String, Var)]) -> DigitNet {
    let tensors: HashMap<String, Tensor> =
        vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
    DigitNet::from_tensors(Architecture::Cnn, &tensors).expect("the weights fit the network")
}

fn frames(digits: &LabelledImages, count: usize) -> Vec<Frame> {
    (0..count)
        .map(|i| Frame::from_mnist(digits.image(i)).expect("an MNIST image is a frame"))
        .collect()
}

fn bench_preprocess(c: &mut Criterion, digits: &LabelledImages) {
    let png = canvas_png(digits, 0);
    c.bench_function("preprocess/canvas_png_280", |b| {
        b.iter(|| preprocess(black_box(&png), DecodeLimits::default()))
    });
}

fn bench_inference(c: &mut Criterion, digits: &LabelledImages) {
    let net = network(&weights(Architecture::Cnn));
    let png = canvas_png(digits, 1);
    let mut group = c.benchmark_group("inference");
    for batch in [1, INFERENCE_BATCH] {
        let input = frames_to_tensor(&frames(digits, batch), Normalisation::MNIST)
            .expect("frames become a tensor");
        group.bench_function(format!("forward/batch_{batch}"), |b| {
            b.iter(|| net.probabilities(black_box(&input)).expect("the forward pass runs"))
        });
    }
    group.bench_function("preprocess_and_forward/batch_1", |b| {
        b.iter(|| {
            let frame = preprocess(black_box(&png), DecodeLimits::default())
                .expect("the canvas holds a digit");
            let input = frames_to_tensor(&[frame], Normalisation::MNIST).expect("a tensor");
            net.probabilities(&input).expect("the forward pass runs")
        })
    });
    group.finish();
}

fn bench_training_step(c: &mut Criterion, digits: &LabelledImages) {
    let vars = weights(Architecture::Cnn);
    let net = network(&vars);
    let params = ParamsAdamW { lr: 1e-3, weight_decay: 1e-4, ..ParamsAdamW::default() };
    let mut optimiser = AdamW::new(vars.iter().map(|(_, v)| v.clone()).collect(), params)
        .expect("AdamW accepts the variables");
    let input = frames_to_tensor(&frames(digits, TRAINING_BATCH), Normalisation::MNIST)
        .expect("frames become a tensor");
    let labels: Vec<u32> = digits.labels[..TRAINING_BATCH].iter().map(|&l| u32::from(l)).collect();
    let targets = Tensor::from_vec(labels, TRAINING_BATCH, &Device::Cpu).expect("labels tensor");
    c.bench_function(&format!("training_step/batch_{TRAINING_BATCH}"), |b| {
        b.iter_batched(
            || input.clone(),
            |input| {
                let logits = net.forward(&input).expect("the forward pass runs");
                let loss = candle_nn::loss::cross_entropy(&logits, &targets).expect("a loss");
                optimiser.backward_step(&loss).expect("the backward pass runs");
                loss.to_dtype(DType::F32).expect("f32")
            },
            BatchSize::SmallInput,
        )
    });
}

fn benches(c: &mut Criterion) {
    // As in `trainer` and in ml-ui's inference thread, the calling thread is a worker of the
    // pool that runs the kernels' parallel loops.
    rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global()
        .expect("rayon's pool is not started before the benchmarks");
    let digits = test_digits();
    bench_preprocess(c, &digits);
    bench_inference(c, &digits);
    bench_training_step(c, &digits);
}

criterion_group!(digit_benches, benches);
criterion_main!(digit_benches);
