//! Paths to the MNIST files shipped in the repository, used by the tests as real input.

#![allow(dead_code)]

use std::path::PathBuf;

/// The repository's `data/mnist`.
pub fn mnist_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/mnist")
}

/// A shipped file's decompressed bytes.
pub fn mnist_bytes(name: &str) -> Vec<u8> {
    shared::idx::read_maybe_gzip(&mnist_dir().join(format!("{name}.gz")))
        .expect("shipped MNIST file")
}
