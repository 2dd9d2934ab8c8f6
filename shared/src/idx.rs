//! The IDX file format of MNIST and its relatives: reading (raw or gzip) with full validation,
//! and writing.
//!
//! An IDX file is a four-byte magic number (two zero bytes, a type code, the number of
//! dimensions), one big-endian `u32` per dimension, then the items. Only unsigned bytes (type
//! `0x08`) are supported, which is what every digit and clothing data set uses.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::error::{Error, Result};

/// Type code of unsigned-byte items.
const UNSIGNED_BYTE: u8 = 0x08;

/// Decompressed files larger than this are refused, whatever their header claims.
pub const MAX_DECOMPRESSED_BYTES: u64 = 1 << 30;

/// An n-dimensional array of bytes, as stored in an IDX file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The size of each dimension, outermost first.
    pub dims: Vec<usize>,
    /// The items in row-major order.
    pub data: Vec<u8>,
}

/// Images and their labels, checked against each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledImages {
    /// Rows of each image.
    pub rows: usize,
    /// Columns of each image.
    pub cols: usize,
    /// All pixels, image after image, row-major, 0 (background) to 255 (ink).
    pub pixels: Vec<u8>,
    /// One label per image, each below [`crate::CLASSES`].
    pub labels: Vec<u8>,
}

impl LabelledImages {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of image `index`.
    pub fn image(&self, index: usize) -> &[u8] {
        let size = self.rows * self.cols;
        &self.pixels[index * size..(index + 1) * size]
    }

    /// Keeps the first `count` images (all of them if there are fewer).
    pub fn truncate(&mut self, count: usize) {
        let count = count.min(self.len());
        self.labels.truncate(count);
        self.pixels.truncate(count * self.rows * self.cols);
    }

    /// Appends other images of the same size.
    pub fn extend(&mut self, other: &LabelledImages) -> Result<(), String> {
        if (other.rows, other.cols) != (self.rows, self.cols) {
            return Err(format!(
                "images are {}x{}, expected {}x{}",
                other.rows, other.cols, self.rows, self.cols
            ));
        }
        self.pixels.extend_from_slice(&other.pixels);
        self.labels.extend_from_slice(&other.labels);
        Ok(())
    }
}

/// Reads a file whole, transparently decompressing gzip, and returns the decompressed bytes.
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut decoded = Vec::new();
    GzDecoder::new(raw.as_slice())
        .take(MAX_DECOMPRESSED_BYTES + 1)
        .read_to_end(&mut decoded)
        .map_err(|e| invalid(path, format!("corrupt gzip stream: {e}")))?;
    if decoded.len() as u64 > MAX_DECOMPRESSED_BYTES {
        return Err(invalid(
            path,
            format!("decompresses to more than {MAX_DECOMPRESSED_BYTES} bytes"),
        ));
    }
    Ok(decoded)
}

/// Reads and validates an IDX file, raw or gzip-compressed.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    parse_idx(&read_maybe_gzip(path)?, path)
}

/// Parses the bytes of an (uncompressed) IDX file; `path` only names it in errors.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    let header: [u8; 4] = bytes.get(..4).and_then(|h| h.try_into().ok()).ok_or_else(|| {
        invalid(path, format!("file is {} bytes, too short for a header", bytes.len()))
    })?;
    if header[0] != 0 || header[1] != 0 {
        return Err(invalid(
            path,
            format!(
                "bad magic number {:02x}{:02x}{:02x}{:02x}",
                header[0], header[1], header[2], header[3]
            ),
        ));
    }
    if header[2] != UNSIGNED_BYTE {
        return Err(invalid(
            path,
            format!("item type 0x{:02x} is not supported (only unsigned bytes, 0x08)", header[2]),
        ));
    }
    let rank = usize::from(header[3]);
    if rank == 0 {
        return Err(invalid(path, "zero dimensions".into()));
    }
    let data_start = 4 + 4 * rank;
    let dim_bytes = bytes.get(4..data_start).ok_or_else(|| {
        invalid(
            path,
            format!(
                "truncated header: {rank} dimensions need {data_start} bytes, file has {}",
                bytes.len()
            ),
        )
    })?;
    let dims: Vec<usize> = dim_bytes
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n as u64 <= MAX_DECOMPRESSED_BYTES)
        .ok_or_else(|| {
            invalid(path, format!("dimensions {dims:?} describe an impossibly large array"))
        })?;
    let data = &bytes[data_start..];
    if data.len() < expected {
        return Err(invalid(
            path,
            format!(
                "truncated: dimensions {dims:?} need {expected} data bytes, file has {}",
                data.len()
            ),
        ));
    }
    if data.len() > expected {
        return Err(invalid(
            path,
            format!(
                "{} unexpected bytes after the {expected} data bytes of dimensions {dims:?}",
                data.len() - expected
            ),
        ));
    }
    Ok(IdxArray { dims, data: data.to_vec() })
}

/// Reads an images file (three dimensions) and a labels file (one dimension) and checks that
/// they describe the same items with labels in range.
pub fn read_labelled(images_path: &Path, labels_path: &Path) -> Result<LabelledImages> {
    let images = read_idx(images_path)?;
    let labels = read_idx(labels_path)?;
    labelled(images, images_path, labels, labels_path)
}

/// Checks a pair of parsed arrays as [`read_labelled`] does.
pub fn labelled(
    images: IdxArray,
    images_path: &Path,
    labels: IdxArray,
    labels_path: &Path,
) -> Result<LabelledImages> {
    let [count, rows, cols] = images.dims[..] else {
        return Err(invalid(
            images_path,
            format!("images need 3 dimensions, found {}", images.dims.len()),
        ));
    };
    let [label_count] = labels.dims[..] else {
        return Err(invalid(
            labels_path,
            format!("labels need 1 dimension, found {}", labels.dims.len()),
        ));
    };
    if label_count != count {
        return Err(Error::InconsistentData {
            path: labels_path.to_owned(),
            reason: format!("{label_count} labels for {count} images in {}", images_path.display()),
        });
    }
    if let Some(at) = labels.data.iter().position(|&l| usize::from(l) >= crate::CLASSES) {
        return Err(Error::InconsistentData {
            path: labels_path.to_owned(),
            reason: format!(
                "label {} of item {at} is not a class (0..={})",
                labels.data[at],
                crate::CLASSES - 1
            ),
        });
    }
    Ok(LabelledImages { rows, cols, pixels: images.data, labels: labels.data })
}

/// Writes an array as an uncompressed IDX file, atomically: the file appears complete or not
/// at all.
pub fn write_idx(path: &Path, dims: &[usize], data: &[u8]) -> Result<()> {
    let expected: usize = dims.iter().product();
    if expected != data.len() || dims.is_empty() || dims.len() > 255 {
        return Err(invalid(path, format!("dimensions {dims:?} do not fit {} bytes", data.len())));
    }
    let mut bytes = vec![0, 0, UNSIGNED_BYTE, dims.len() as u8];
    for &d in dims {
        let d =
            u32::try_from(d).map_err(|_| invalid(path, format!("dimension {d} exceeds u32")))?;
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    crate::fsutil::write_atomic(path, &bytes)
}

fn invalid(path: &Path, reason: String) -> Error {
    Error::InvalidIdx { path: PathBuf::from(path), reason }
}
