//! `trainer report` offline: the Markdown review against a committed snapshot, the charts, the
//! metrics report and the promotion decision, from a hand-made model card and registry summary.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use registry_client::{Summary, VersionAccuracy};
use shared::card::{InputSpec, Metrics, SourceInfo, Timings};
use shared::metrics::ConfusionMatrix;
use shared::{Architecture, ModelCard};
use trainer::report::{self, Baseline, Links};
use trainer::train::EpochMetrics;

/// A card whose figures follow from a confusion matrix with `errors[c]` mistakes in class `c`
/// (each 100 test images, mistaken for the next class).
fn card(errors: [u64; 10]) -> ModelCard {
    let mut matrix = ConfusionMatrix::default();
    for (class, wrong) in errors.iter().enumerate() {
        for i in 0..100 {
            let predicted = if i < *wrong { (class + 1) % 10 } else { class };
            matrix.record(class, predicted);
        }
    }
    matrix.add_loss(31.25);
    let test = matrix.evaluation();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut training = trainer::config::load(&root.join("config.toml")).unwrap();
    (training.epochs, training.batch_size, training.seed) = (3, 128, 1998);
    ModelCard {
        format: shared::card::CARD_FORMAT,
        architecture: Architecture::Cnn.into(),
        input: InputSpec::default(),
        classes: (0..10).map(|c| c.to_string()).collect(),
        training,
        metrics: Metrics {
            test_accuracy: test.accuracy,
            test_loss: test.loss,
            train_loss: 0.071,
            test,
        },
        data: Vec::new(),
        source: SourceInfo {
            git_commit: Some("0123456789abcdef0123".into()),
            git_dirty: Some(false),
        },
        timings: Timings::default(),
        trainer_version: "0.1.0".into(),
        created_at: "2026-01-02T03:04:05Z".parse().unwrap(),
    }
}

fn epochs() -> Vec<EpochMetrics> {
    let figures = [(0.42, 0.88, 0.12, 0.962), (0.15, 0.95, 0.06, 0.981), (0.09, 0.97, 0.03, 0.985)];
    figures
        .iter()
        .enumerate()
        .map(|(i, &(train_loss, train_accuracy, test_loss, test_accuracy))| EpochMetrics {
            epoch: i + 1,
            train_loss,
            train_accuracy,
            test_loss,
            test_accuracy,
            learning_rate: 0.001,
            seconds: 60.0,
            samples_per_second: 1000.0,
            elapsed_seconds: 61.0 * (i + 1) as f64,
        })
        .collect()
}

fn summary() -> Summary {
    let version = |v: &str, a: f64| VersionAccuracy { version: v.into(), test_accuracy: a };
    Summary {
        model: "digits".into(),
        versions: 4,
        average_test_accuracy: Some(0.9812),
        best: Some(version("3", 0.9861)),
        production: Some(version("3", 0.9861)),
    }
}

fn candidate() -> ModelCard {
    card([0, 1, 2, 1, 1, 3, 1, 2, 2, 2])
}

fn production() -> ModelCard {
    card([1, 0, 2, 1, 2, 1, 1, 2, 2, 2])
}

#[test]
fn review_markdown_matches_the_snapshot() {
    let baseline = Baseline { summary: Some(summary()), production: Some(production()) };
    let links = Links {
        run_id: Some("4f2a9c".into()),
        run_url: Some("https://gitlab.example.com/digit-lab/-/ml/experiments".into()),
        image_base_url: Some("https://gitlab.example.com/jobs/7/artifacts/raw/report".into()),
    };
    let card = candidate();
    let decision = report::decide(card.metrics.test_accuracy, summary().production.as_ref(), 0.002);
    let markdown = report::render_markdown(&card, &epochs(), &baseline, &decision, &links);
    assert!(markdown.starts_with(report::NOTE_MARKER));
    insta::assert_snapshot!("review", markdown);
}

#[test]
fn review_without_registry_says_so() {
    let card = candidate();
    let decision = report::decide(card.metrics.test_accuracy, None, 0.002);
    assert!(decision.promote);
    let markdown = report::render_markdown(
        &card,
        &epochs(),
        &Baseline::default(),
        &decision,
        &Links::default(),
    );
    assert!(markdown.contains("*no registry to compare with*"));
    assert!(markdown.contains("| 0 | 100.00 % | n/a |"), "{markdown}");
    assert!(markdown.contains("![loss per epoch](loss.png)"));
}

#[test]
fn production_moves_only_within_the_tolerance() {
    let production = VersionAccuracy { version: "3".into(), test_accuracy: 0.9900 };
    assert!(report::decide(0.9950, Some(&production), 0.002).promote);
    assert!(report::decide(0.9885, Some(&production), 0.002).promote);
    let worse = report::decide(0.9870, Some(&production), 0.002);
    assert!(!worse.promote);
    assert!(worse.reason.contains("is below production (version 3, 99.00 %)"), "{}", worse.reason);
    let unknown = VersionAccuracy { version: "1".into(), test_accuracy: f64::NAN };
    assert!(report::decide(0.5, Some(&unknown), 0.0).promote);
}

#[test]
fn report_writes_charts_metrics_and_decision_from_a_model_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    std::fs::create_dir(&model).unwrap();
    candidate().write(&model.join("model.json")).unwrap();
    let lines: Vec<String> = epochs().iter().map(|e| serde_json::to_string(e).unwrap()).collect();
    std::fs::write(model.join("metrics.jsonl"), lines.join("\n")).unwrap();
    let summary_file = tmp.path().join("summary.json");
    std::fs::write(&summary_file, serde_json::to_string(&summary()).unwrap()).unwrap();
    let production_dir = tmp.path().join("production");
    std::fs::create_dir(&production_dir).unwrap();
    production().write(&production_dir.join("model.json")).unwrap();

    let status = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["report", "--model", model.to_str().unwrap(), "--out"])
        .arg(tmp.path().join("out"))
        .args(["--summary", summary_file.to_str().unwrap()])
        .args(["--production-model", production_dir.to_str().unwrap(), "--tolerance", "0.001"])
        .env_remove("MODEL_REGISTRY_URI")
        .status()
        .unwrap();
    assert!(status.success());

    let out = tmp.path().join("out");
    for chart in ["loss.png", "accuracy.png"] {
        let picture = image::open(out.join(chart)).unwrap().to_rgb8();
        assert_eq!(picture.dimensions(), (640, 320));
        let coloured = picture.pixels().filter(|p| p.0 == [255, 127, 14]).count();
        assert!(coloured > 500, "{chart}: the test series is drawn ({coloured} pixels)");
    }
    let metrics = std::fs::read_to_string(out.join("metrics.txt")).unwrap();
    assert!(metrics.contains("test_accuracy 0.985\n"), "{metrics}");
    assert!(metrics.lines().any(|l| l.starts_with("test_accuracy_delta_production -0.001")));
    assert!(metrics.contains("class_0_accuracy 1\n"));
    let decision = std::fs::read_to_string(out.join("decision.env")).unwrap();
    assert!(decision.starts_with("PROMOTE=false\nDECISION='test accuracy 98.50 % is below"));
    let review = std::fs::read_to_string(out.join("review.md")).unwrap();
    assert!(review.contains("| 0 | 100.00 % | 99.00 % | +1.00 pp |"), "{review}");
}
