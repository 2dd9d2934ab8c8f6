//! Data sets in the MNIST layout: four IDX files (training and test images and labels), each
//! known by the SHA-256 of its decompressed bytes and, optionally, by where it can be fetched.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::card::DataFingerprint;
use crate::error::{Error, Result};
use crate::idx::{self, LabelledImages};

/// One file of a data set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSpec {
    /// Standard name of the uncompressed file, such as `train-images-idx3-ubyte`.
    pub name: String,
    /// Lower-case hex SHA-256 of the uncompressed bytes.
    pub sha256: String,
    /// Places to fetch the file from (gzip or raw), tried in order.
    #[serde(default)]
    pub urls: Vec<String>,
}

/// A data set in the MNIST layout, with the checksums its files must have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetSpec {
    /// Short name, such as `mnist`.
    pub name: String,
    /// Training images.
    pub train_images: FileSpec,
    /// Training labels.
    pub train_labels: FileSpec,
    /// Test images.
    pub test_images: FileSpec,
    /// Test labels.
    pub test_labels: FileSpec,
}

/// Names of the built-in data sets, for help texts and errors.
pub const BUILTIN_DATASETS: &[&str] = &["mnist", "fashion-mnist"];

impl DatasetSpec {
    /// The handwritten digits: LeCun, Cortes and Burges, CC BY-SA 3.0.
    pub fn mnist() -> Self {
        let mirrors = [
            "https://ossci-datasets.s3.amazonaws.com/mnist",
            "https://storage.googleapis.com/cvdf-datasets/mnist",
        ];
        Self::standard(
            "mnist",
            &mirrors,
            [
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            ],
        )
    }

    /// Zalando's clothing images in the same layout, MIT licence. Debian ships them in
    /// `/usr/share/datasets/fashion-mnist` (package `dataset-fashion-mnist`).
    pub fn fashion_mnist() -> Self {
        let mirrors = [
            "file:///usr/share/datasets/fashion-mnist",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
        ];
        Self::standard(
            "fashion-mnist",
            &mirrors,
            [
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            ],
        )
    }

    /// A built-in data set by name.
    pub fn builtin(name: &str) -> Option<Self> {
        match name {
            "mnist" => Some(Self::mnist()),
            "fashion-mnist" => Some(Self::fashion_mnist()),
            _ => None,
        }
    }

    /// A specification with the four standard file names, each fetched as `<mirror>/<name>.gz`.
    pub fn standard(name: &str, mirrors: &[&str], sha256: [&str; 4]) -> Self {
        let file = |stem: &str, digest: &str| FileSpec {
            name: stem.to_owned(),
            sha256: digest.to_owned(),
            urls: mirrors.iter().map(|m| format!("{m}/{stem}.gz")).collect(),
        };
        Self {
            name: name.to_owned(),
            train_images: file("train-images-idx3-ubyte", sha256[0]),
            train_labels: file("train-labels-idx1-ubyte", sha256[1]),
            test_images: file("t10k-images-idx3-ubyte", sha256[2]),
            test_labels: file("t10k-labels-idx1-ubyte", sha256[3]),
        }
    }

    /// The four files, training images first.
    pub fn files(&self) -> [&FileSpec; 4] {
        [&self.train_images, &self.train_labels, &self.test_images, &self.test_labels]
    }
}

/// A loaded, verified data set.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The training split.
    pub train: LabelledImages,
    /// The test split.
    pub test: LabelledImages,
    /// What was read, for the model card.
    pub fingerprints: Vec<DataFingerprint>,
}

impl Dataset {
    /// Loads the four files of `spec` from `dir` (each raw or as `.gz`) and refuses any whose
    /// decompressed SHA-256 differs from the specification.
    pub fn load(dir: &Path, spec: &DatasetSpec) -> Result<Self> {
        let mut fingerprints = Vec::with_capacity(4);
        let mut read = |file: &FileSpec| -> Result<(idx::IdxArray, PathBuf)> {
            let path = locate(dir, &file.name)?;
            let bytes = idx::read_maybe_gzip(&path)?;
            let actual = sha256_hex(&bytes);
            if !actual.eq_ignore_ascii_case(&file.sha256) {
                return Err(Error::ChecksumMismatch {
                    path,
                    expected: file.sha256.clone(),
                    actual,
                });
            }
            let array = idx::parse_idx(&bytes, &path)?;
            fingerprints.push(DataFingerprint {
                dataset: spec.name.clone(),
                file: file.name.clone(),
                sha256: actual,
                items: array.dims.first().copied().unwrap_or(0),
            });
            Ok((array, path))
        };
        let (train_images, train_images_path) = read(&spec.train_images)?;
        let (train_labels, train_labels_path) = read(&spec.train_labels)?;
        let (test_images, test_images_path) = read(&spec.test_images)?;
        let (test_labels, test_labels_path) = read(&spec.test_labels)?;
        let train =
            idx::labelled(train_images, &train_images_path, train_labels, &train_labels_path)?;
        let test = idx::labelled(test_images, &test_images_path, test_labels, &test_labels_path)?;
        Ok(Self { train, test, fingerprints })
    }
}

/// Reads extra training images from `dir` (`train-images-idx3-ubyte` and
/// `train-labels-idx1-ubyte`, raw or gzip) and fingerprints them. There is no recorded checksum
/// to hold them to; the card records the digests they had.
pub fn load_extra(dir: &Path) -> Result<(LabelledImages, Vec<DataFingerprint>)> {
    let mut arrays = Vec::with_capacity(2);
    let mut fingerprints = Vec::with_capacity(2);
    for name in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"] {
        let path = locate(dir, name)?;
        let bytes = idx::read_maybe_gzip(&path)?;
        let array = idx::parse_idx(&bytes, &path)?;
        fingerprints.push(DataFingerprint {
            dataset: format!("extra:{}", dir.display()),
            file: name.to_owned(),
            sha256: sha256_hex(&bytes),
            items: array.dims.first().copied().unwrap_or(0),
        });
        arrays.push((array, path));
    }
    let (labels, labels_path) = arrays
        .pop()
        .ok_or_else(|| Error::MissingFile { dir: dir.to_owned(), name: "labels".into() })?;
    let (images, images_path) = arrays
        .pop()
        .ok_or_else(|| Error::MissingFile { dir: dir.to_owned(), name: "images".into() })?;
    Ok((idx::labelled(images, &images_path, labels, &labels_path)?, fingerprints))
}

/// Finds `name` or `name.gz` in `dir`.
pub fn locate(dir: &Path, name: &str) -> Result<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| Error::MissingFile { dir: dir.to_owned(), name: name.to_owned() })
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
