//! IDX parsing on real MNIST files and on corrupt, truncated and inconsistent ones.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::Path;

use shared::Error;
use shared::idx::{parse_idx, read_idx, read_labelled, write_idx};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn reason(err: Error) -> String {
    match err {
        Error::InvalidIdx { reason, .. } | Error::InconsistentData { reason, .. } => reason,
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn reads_the_real_test_set_gzip_and_raw_alike() {
    let gz = common::mnist_dir().join("t10k-images-idx3-ubyte.gz");
    let images = read_idx(&gz).unwrap();
    assert_eq!(images.dims, vec![10_000, 28, 28]);

    let dir = tempfile::tempdir().unwrap();
    let raw = write(dir.path(), "raw", &common::mnist_bytes("t10k-images-idx3-ubyte"));
    assert_eq!(read_idx(&raw).unwrap(), images);

    let labelled =
        read_labelled(&gz, &common::mnist_dir().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    assert_eq!((labelled.len(), labelled.rows, labelled.cols), (10_000, 28, 28));
    // The first test digits of MNIST, as published.
    assert_eq!(&labelled.labels[..5], &[7, 2, 1, 0, 4]);
}

#[test]
fn truncated_files_name_the_file_and_the_shortfall() {
    let bytes = common::mnist_bytes("t10k-labels-idx1-ubyte");
    let dir = tempfile::tempdir().unwrap();
    for cut in [0, 3, 6, bytes.len() - 1] {
        let path = write(dir.path(), &format!("cut-{cut}"), &bytes[..cut]);
        let err = read_idx(&path).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&format!("cut-{cut}")), "{message}");
        assert!(message.contains("short") || message.contains("truncated"), "{message}");
    }
}

#[test]
fn every_prefix_of_a_file_is_refused_without_panic() {
    let bytes = common::mnist_bytes("t10k-labels-idx1-ubyte");
    let small = &bytes[..200];
    let mut header = small.to_vec();
    header[4..8].copy_from_slice(&192u32.to_be_bytes());
    for cut in 0..header.len() {
        assert!(
            parse_idx(&header[..cut], Path::new("prefix")).is_err(),
            "prefix of {cut} bytes accepted"
        );
    }
    assert!(parse_idx(&header, Path::new("whole")).is_ok());
}

#[test]
fn a_truncated_gzip_stream_is_refused() {
    let gz = std::fs::read(common::mnist_dir().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "cut.gz", &gz[..gz.len() / 2]);
    let message = read_idx(&path).unwrap_err().to_string();
    assert!(message.contains("cut.gz") && message.contains("gzip"), "{message}");
}

#[test]
fn corrupt_headers_say_what_is_wrong() {
    let cases: [(&[u8], &str); 5] = [
        (&[1, 0, 8, 1, 0, 0, 0, 1, 5], "magic"),
        (&[0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0], "type 0x0d"),
        (&[0, 0, 8, 0], "zero dimensions"),
        (&[0, 0, 8, 1, 0, 0, 0, 2, 5, 6, 7], "unexpected bytes"),
        (
            &[0, 0, 8, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255],
            "impossibly large",
        ),
    ];
    for (bytes, expected) in cases {
        let message = reason(parse_idx(bytes, Path::new("case")).unwrap_err());
        assert!(message.contains(expected), "{message:?} does not mention {expected:?}");
    }
}

#[test]
fn images_and_labels_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    let images =
        write(dir.path(), "images", &[0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 9, 9]);
    let three_labels = write(dir.path(), "labels3", &[0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]);
    let message = reason(read_labelled(&images, &three_labels).unwrap_err());
    assert!(message.contains("3 labels for 2 images"), "{message}");

    let bad_label = write(dir.path(), "labels-bad", &[0, 0, 8, 1, 0, 0, 0, 2, 1, 12]);
    let message = reason(read_labelled(&images, &bad_label).unwrap_err());
    assert!(message.contains("label 12 of item 1"), "{message}");

    let flat = write(dir.path(), "flat", &[0, 0, 8, 1, 0, 0, 0, 2, 1, 2]);
    let message = reason(read_labelled(&flat, &three_labels).unwrap_err());
    assert!(message.contains("3 dimensions"), "{message}");
}

#[test]
fn written_files_read_back_identically_and_gzip_is_transparent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out-idx3-ubyte");
    let data: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
    write_idx(&path, &[2, 3, 4], &data).unwrap();
    let back = read_idx(&path).unwrap();
    assert_eq!((back.dims, back.data), (vec![2, 3, 4], data.clone()));

    let gz = write(dir.path(), "out.gz", &gzip(&std::fs::read(&path).unwrap()));
    assert_eq!(read_idx(&gz).unwrap().data, data);
    assert!(write_idx(&path, &[5], &data).is_err(), "size mismatch accepted");
}
