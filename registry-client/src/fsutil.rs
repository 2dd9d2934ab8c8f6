//! File-system helpers: atomic writes, whole-tree copies, digests, staging and locks, so that
//! no reader ever sees half a file or half a model.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Writes `bytes` to `path` through a synced temporary file in the same directory, renamed
/// into place.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_of(path);
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    file.write_all(bytes).map_err(|e| Error::io(path, e))?;
    file.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    file.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Writes `value` as pretty JSON, atomically.
pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    write_atomic(path, format!("{text}\n").as_bytes())
}

/// Reads a JSON file.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::Protocol(format!("{} is not valid: {e}", path.display())))
}

/// The directory holding `path` (`.` for a bare name).
pub(crate) fn parent_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Every regular file under `dir`, as sorted `/`-separated paths relative to it. Symbolic links
/// are refused: a model directory is plain files.
pub fn list_files(dir: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_owned();
            Error::io(path, e.into())
        })?;
        let kind = entry.file_type();
        if kind.is_symlink() {
            return Err(Error::Invalid(format!(
                "{} is a symbolic link; a model directory holds plain files",
                entry.path().display()
            )));
        }
        if kind.is_file() {
            files.push(relative(dir, entry.path())?);
        }
    }
    Ok(files)
}

fn relative(dir: &Path, path: &Path) -> Result<String> {
    let rel = path
        .strip_prefix(dir)
        .map_err(|_| Error::Invalid(format!("{} is outside {}", path.display(), dir.display())))?;
    let parts: Option<Vec<&str>> = rel.iter().map(|p| p.to_str()).collect();
    parts
        .map(|p| p.join("/"))
        .ok_or_else(|| Error::Invalid(format!("{} is not a UTF-8 path", path.display())))
}

/// SHA-256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// SHA-256 of every file under `dir`, by relative path.
pub fn digest_dir(dir: &Path) -> Result<BTreeMap<String, String>> {
    list_files(dir)?
        .into_iter()
        .map(|rel| Ok((rel.clone(), sha256_file(&dir.join(&rel))?)))
        .collect()
}

/// Checks that a relative artifact path stays inside its folder.
pub(crate) fn check_relative(path: &str) -> Result<()> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && path.split('/').all(|p| !p.is_empty() && p != "." && p != "..");
    if ok { Ok(()) } else { Err(Error::Invalid(format!("invalid relative path {path:?}"))) }
}

/// Copies every file under `src` into `dst`, creating folders as needed.
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    for rel in list_files(src)? {
        let to = dst.join(&rel);
        create_dir_all(parent_of(&to))?;
        fs::copy(src.join(&rel), &to).map_err(|e| Error::io(&to, e))?;
    }
    Ok(())
}

/// `fs::create_dir_all` with the path in the error.
pub(crate) fn create_dir_all(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// `fs::rename` with the path in the error.
pub(crate) fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| Error::io(to, e))
}

/// Removes a file or a directory tree; missing is fine.
pub(crate) fn remove_all(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(|e| Error::io(path, e))
}

/// An exclusive lock on a file, shared between processes, released when dropped (or when
/// the process dies).
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    /// Waits for the lock on `path`, creating the file if needed.
    pub(crate) fn acquire(path: &Path) -> Result<Self> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        file.lock().map_err(|e| Error::io(path, e))?;
        Ok(Self { _file: file })
    }
}

/// Entries of `dir` whose names start with `prefix`.
pub(crate) fn entries_with_prefix(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry.file_name().to_str().is_some_and(|n| n.starts_with(prefix)) {
            found.push(entry.path());
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_cannot_climb_out() {
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "a//b", "./a", "a\\b"] {
            assert!(check_relative(bad).is_err(), "{bad:?}");
        }
        check_relative("model/model.json").expect("valid");
    }

    #[test]
    fn digests_cover_nested_files() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        create_dir_all(&dir.path().join("sub"))?;
        write_atomic(&dir.path().join("sub/a.txt"), b"abc")?;
        let digests = digest_dir(dir.path())?;
        // SHA-256 of "abc", from FIPS 180-2 appendix B.1.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(digests.get("sub/a.txt").map(String::as_str), Some(abc));
        Ok(())
    }
}
