//! Loading the shipped MNIST with checksum verification, and refusing altered files.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;

use shared::Error;
use shared::dataset::{Dataset, DatasetSpec};

#[test]
fn the_shipped_files_match_the_published_digests() {
    let data = Dataset::load(&common::mnist_dir(), &DatasetSpec::mnist()).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (60_000, 10_000));
    let digests: Vec<_> =
        data.fingerprints.iter().map(|f| (f.file.as_str(), f.sha256.as_str(), f.items)).collect();
    // The digests of ../shared/data/README.md, the same as DatasetSpec::mnist() records.
    assert_eq!(
        digests[2],
        (
            "t10k-images-idx3-ubyte",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            10_000
        )
    );
    assert_eq!(digests.len(), 4);
}

#[test]
fn a_single_changed_label_is_refused_by_checksum() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"] {
        std::fs::copy(
            common::mnist_dir().join(format!("{name}.gz")),
            dir.path().join(format!("{name}.gz")),
        )
        .unwrap();
    }
    let mut labels = common::mnist_bytes("t10k-labels-idx1-ubyte");
    labels[8] = (labels[8] + 1) % 10;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&labels).unwrap();
    std::fs::write(dir.path().join("t10k-labels-idx1-ubyte.gz"), encoder.finish().unwrap())
        .unwrap();

    match Dataset::load(dir.path(), &DatasetSpec::mnist()) {
        Err(Error::ChecksumMismatch { path, expected, .. }) => {
            assert!(path.ends_with("t10k-labels-idx1-ubyte.gz"));
            assert!(expected.starts_with("ff7bcfd4"));
        }
        other => panic!("altered labels accepted or wrong error: {other:?}"),
    }
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let message = Dataset::load(dir.path(), &DatasetSpec::mnist()).unwrap_err().to_string();
    assert!(message.contains("train-images-idx3-ubyte"), "{message}");
}

#[test]
fn specifications_round_trip_through_toml_and_json() {
    let spec = DatasetSpec::fashion_mnist();
    let json = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<DatasetSpec>(&json).unwrap(), spec);
    assert!(DatasetSpec::builtin("mnist").is_some() && DatasetSpec::builtin("cifar").is_none());
}
