//! The model card survives a round trip and refuses what this build cannot load.

#![allow(clippy::unwrap_used)]

use shared::Architecture;
use shared::card::{
    ArchitectureRef, Augmentation, CARD_FORMAT, DataFingerprint, InputSpec, Metrics, ModelCard,
    Optimiser, Schedule, SourceInfo, Timings, TrainingSettings,
};
use shared::metrics::ConfusionMatrix;

fn card() -> ModelCard {
    let mut matrix = ConfusionMatrix::default();
    matrix.record(3, 3);
    matrix.record(3, 5);
    let test = matrix.evaluation();
    ModelCard {
        format: CARD_FORMAT,
        architecture: ArchitectureRef::from(Architecture::Cnn),
        input: InputSpec::default(),
        classes: (0..10).map(|c| c.to_string()).collect(),
        training: TrainingSettings {
            architecture: Architecture::Cnn,
            dataset: "mnist".into(),
            epochs: 3,
            batch_size: 64,
            seed: 7,
            optimiser: Optimiser::Adamw,
            learning_rate: 0.01,
            schedule: Schedule::OneCycle,
            warmup_fraction: 0.2,
            weight_decay: 0.0,
            dropout: 0.1,
            train_limit: Some(1000),
            augmentation: Augmentation::default(),
            extra_data: vec!["feedback-export".into()],
        },
        metrics: Metrics { test_accuracy: test.accuracy, test_loss: 0.5, train_loss: 0.4, test },
        data: vec![DataFingerprint {
            dataset: "mnist".into(),
            file: "f".into(),
            sha256: "00".into(),
            items: 2,
        }],
        source: SourceInfo { git_commit: Some("abc".into()), git_dirty: Some(true) },
        timings: Timings { data_seconds: 0.5, training_seconds: 12.0, epoch_seconds: vec![4.0; 3] },
        trainer_version: "0.1.0".into(),
        created_at: chrono::Utc::now(),
    }
}

#[test]
fn round_trip_is_lossless() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.json");
    let original = card();
    original.write(&path).unwrap();
    assert_eq!(ModelCard::read(&path).unwrap(), original);
}

/// A change that makes a card unusable.
type Edit = fn(&mut serde_json::Value);

#[test]
fn cards_this_build_cannot_honour_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.json");
    let edits: [(&str, Edit); 4] = [
        ("version", |v| v["architecture"]["version"] = 99.into()),
        ("format", |v| v["format"] = 2.into()),
        ("unknown architecture", |v| v["architecture"]["name"] = "resnet".into()),
        ("normalisation", |v| v["input"]["normalisation"]["std"] = 0.0.into()),
    ];
    for (what, edit) in edits {
        let mut value = serde_json::to_value(card()).unwrap();
        edit(&mut value);
        std::fs::write(&path, value.to_string()).unwrap();
        assert!(ModelCard::read(&path).is_err(), "card with bad {what} accepted");
    }
    std::fs::write(&path, "{ truncated").unwrap();
    assert!(ModelCard::read(&path).unwrap_err().to_string().contains("model.json"));
}
