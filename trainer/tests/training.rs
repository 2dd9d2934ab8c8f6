//! Real training runs on MNIST subsets: accuracy, determinism, divergence, the command line.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use shared::Model;
use shared::card::{CARD_FILE, METRICS_FILE, ModelCard, WEIGHTS_FILE};
use trainer::train::EpochMetrics;

fn trainer_bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trainer"));
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    cmd
}

#[test]
fn a_short_run_on_ten_thousand_images_beats_ninety_five_percent() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    let outcome = support::train_into(support::quick_settings(10_000, 2), &out).unwrap();
    let accuracy = outcome.card.metrics.test_accuracy;
    assert!(accuracy >= 0.95, "test accuracy {accuracy}");

    for file in [CARD_FILE, WEIGHTS_FILE, METRICS_FILE] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let lines: Vec<EpochMetrics> = std::fs::read_to_string(out.join(METRICS_FILE))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1].test_accuracy, accuracy);

    // The saved weights load into the shared network and give the card's accuracy.
    let model = Model::load(&out).unwrap();
    let data = shared::dataset::Dataset::load(
        &support::mnist_dir(),
        &shared::dataset::DatasetSpec::mnist(),
    )
    .unwrap();
    let evaluation =
        trainer::evaluate::evaluate(&model.net, &data.test, model.card.input.normalisation)
            .unwrap();
    assert_eq!(evaluation.accuracy, accuracy);

    let card = ModelCard::read(&out.join(CARD_FILE)).unwrap();
    assert_eq!(card.data.len(), 4);
    assert_eq!(card.training.train_limit, Some(10_000));
    assert!(card.source.git_commit.is_some() || std::env::var_os("CI_COMMIT_SHA").is_none());
}

#[test]
fn the_same_seed_gives_the_same_metrics_and_weights() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, seed: u64| {
        let mut settings = support::quick_settings(2_000, 1);
        settings.seed = seed;
        let out = dir.path().join(name);
        support::train_into(settings, &out).unwrap();
        let strip_times = |mut m: EpochMetrics| {
            m.seconds = 0.0;
            m.samples_per_second = 0.0;
            m.elapsed_seconds = 0.0;
            m
        };
        let metrics: Vec<EpochMetrics> = std::fs::read_to_string(out.join(METRICS_FILE))
            .unwrap()
            .lines()
            .map(|l| strip_times(serde_json::from_str(l).unwrap()))
            .collect();
        (metrics, std::fs::read(out.join(WEIGHTS_FILE)).unwrap())
    };
    let first = run("a", 11);
    let second = run("b", 11);
    assert_eq!(first.0, second.0);
    assert!(first.1 == second.1, "weights differ between runs with the same seed");
    let other = run("c", 12);
    assert_ne!(first.0, other.0, "a different seed changed nothing");
}

#[test]
fn a_diverging_run_exits_non_zero_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    let output = trainer_bin()
        .args(["train", "--architecture", "small", "--train-limit", "2000", "--epochs", "1"])
        .args(["--optimiser", "sgd", "--schedule", "constant", "--learning-rate", "1000"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("diverged"), "{stderr}");
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "partial output left behind");
}

#[test]
fn evaluate_prints_accuracy_as_a_fraction_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    let outcome = support::train_into(support::quick_settings(1_000, 1), &out).unwrap();
    let output = trainer_bin().args(["evaluate", "--json", "--model"]).arg(&out).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let accuracy = report["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy));
    assert_eq!(accuracy, outcome.card.metrics.test_accuracy);
    assert_eq!(report["confusion"].as_array().unwrap().len(), 10);
    assert_eq!(report["per_class"][7]["class"], 7);

    let text = trainer_bin().args(["evaluate", "--model"]).arg(&out).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("confusion matrix") && text.contains("precision"), "{text}");
}

#[test]
fn bad_input_is_refused_before_training_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let occupied = dir.path().join("occupied");
    std::fs::create_dir(&occupied).unwrap();
    std::fs::write(occupied.join("keep.txt"), "precious").unwrap();
    let bad_config = dir.path().join("bad.toml");
    std::fs::write(&bad_config, "epochs = 'many'\n").unwrap();

    let cases: Vec<(Vec<std::ffi::OsString>, &str)> = vec![
        (vec!["--out".into(), occupied.clone().into()], "already exists"),
        (
            vec!["--out".into(), dir.path().join("x").into(), "--config".into(), bad_config.into()],
            "bad.toml",
        ),
        (
            vec!["--out".into(), dir.path().join("x").into(), "--batch-size".into(), "0".into()],
            "batch_size",
        ),
        (
            vec!["--out".into(), dir.path().join("x").into(), "--data".into(), dir.path().into()],
            "train-images",
        ),
        (
            vec![
                "--out".into(),
                dir.path().join("x").into(),
                "--architecture".into(),
                "vgg".into(),
            ],
            "unknown architecture",
        ),
    ];
    for (args, expected) in cases {
        let output = trainer_bin().arg("train").args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    assert_eq!(std::fs::read_to_string(occupied.join("keep.txt")).unwrap(), "precious");
    assert!(!dir.path().join("x").exists());

    let missing =
        trainer_bin().args(["evaluate", "--model"]).arg(dir.path().join("nope")).output().unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("model.json"));
}

#[test]
fn extra_training_data_is_added_and_fingerprinted() {
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("corrections");
    std::fs::create_dir(&extra).unwrap();
    let data = shared::dataset::Dataset::load(
        &support::mnist_dir(),
        &shared::dataset::DatasetSpec::mnist(),
    )
    .unwrap();
    shared::idx::write_idx(
        &extra.join("train-images-idx3-ubyte"),
        &[50, 28, 28],
        &data.test.pixels[..50 * 784],
    )
    .unwrap();
    shared::idx::write_idx(&extra.join("train-labels-idx1-ubyte"), &[50], &data.test.labels[..50])
        .unwrap();

    let mut settings = support::quick_settings(500, 1);
    settings.extra_data = vec![extra.clone()];
    let outcome = support::train_into(settings.clone(), &dir.path().join("model")).unwrap();
    let extra_prints: Vec<_> =
        outcome.card.data.iter().filter(|f| f.dataset.starts_with("extra:")).collect();
    assert_eq!(extra_prints.len(), 2);
    assert!(extra_prints.iter().all(|f| f.items == 50));
    assert_eq!(outcome.card.training.extra_data, vec![extra.clone()]);
    // 500 + 50 images, in batches of 128: five steps per epoch, all of them seen.
    let seen = outcome.epochs[0].samples_per_second * outcome.epochs[0].seconds;
    assert!((seen - 550.0).abs() < 1.0, "trained on {seen} images");

    std::fs::remove_file(extra.join("train-labels-idx1-ubyte")).unwrap();
    let err = support::train_into(settings, &dir.path().join("model2")).unwrap_err();
    assert!(format!("{err:#}").contains("train-labels-idx1-ubyte"), "{err:#}");
    assert!(!dir.path().join("model2").exists());
}
