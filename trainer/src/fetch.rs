//! Fetching a data set into a local cache: each file from the first of its URLs that yields
//! bytes with the recorded checksum. Files already cached and intact are not fetched again.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use shared::dataset::{DatasetSpec, FileSpec, locate, sha256_hex};
use shared::idx::MAX_DECOMPRESSED_BYTES;

/// How long one download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The cached copy was intact.
    Cached(PathBuf),
    /// The file was fetched from this URL.
    Downloaded {
        /// Where it now lies.
        path: PathBuf,
        /// Where it came from.
        url: String,
    },
}

/// Fetches every file of `spec` into `dir` and returns what happened to each.
pub fn fetch_dataset(spec: &DatasetSpec, dir: &Path) -> anyhow::Result<Vec<Fetched>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(DOWNLOAD_TIMEOUT)
        .user_agent(concat!("digit-lab-trainer/", env!("CARGO_PKG_VERSION")))
        .build()?;
    spec.files().into_iter().map(|file| fetch_file(&client, file, dir)).collect()
}

fn fetch_file(
    client: &reqwest::blocking::Client,
    file: &FileSpec,
    dir: &Path,
) -> anyhow::Result<Fetched> {
    if let Ok(path) = locate(dir, &file.name)
        && shared::idx::read_maybe_gzip(&path)
            .is_ok_and(|b| sha256_hex(&b).eq_ignore_ascii_case(&file.sha256))
    {
        return Ok(Fetched::Cached(path));
    }
    if file.urls.is_empty() {
        bail!("{}: no URL to fetch it from", file.name);
    }
    let mut failures = Vec::new();
    for url in &file.urls {
        match download(client, url).and_then(|bytes| store(file, dir, &bytes)) {
            Ok(path) => {
                tracing::info!(file = %file.name, %url, "fetched");
                return Ok(Fetched::Downloaded { path, url: url.clone() });
            }
            Err(e) => {
                tracing::warn!(file = %file.name, %url, error = %format!("{e:#}"), "source failed, trying the next");
                failures.push(format!("  {url}: {e:#}"));
            }
        }
    }
    bail!("could not fetch {} from any source:\n{}", file.name, failures.join("\n"))
}

/// The bytes behind an `http(s)://` or `file://` URL, at most [`MAX_DECOMPRESSED_BYTES`].
fn download(client: &reqwest::blocking::Client, url: &str) -> anyhow::Result<Vec<u8>> {
    if let Some(path) = url.strip_prefix("file://") {
        let file = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
        return read_capped(file);
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("unsupported URL scheme (use http, https or file)");
    }
    let response = client.get(url).send()?;
    let status = response.status();
    if !status.is_success() {
        bail!("server answered {status}");
    }
    read_capped(response)
}

fn read_capped(source: impl Read) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    source.take(MAX_DECOMPRESSED_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_DECOMPRESSED_BYTES {
        bail!("more than {MAX_DECOMPRESSED_BYTES} bytes");
    }
    Ok(bytes)
}

/// Verifies fetched bytes (decompressing gzip) and stores them atomically under the file's
/// standard name, with `.gz` when compressed.
fn store(file: &FileSpec, dir: &Path, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    let compressed = bytes.starts_with(&[0x1f, 0x8b]);
    let path = dir.join(if compressed { format!("{}.gz", file.name) } else { file.name.clone() });
    let staging = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(staging.path(), bytes)?;
    let content = shared::idx::read_maybe_gzip(staging.path())?;
    let actual = sha256_hex(&content);
    if !actual.eq_ignore_ascii_case(&file.sha256) {
        bail!("checksum mismatch: expected SHA-256 {}, got {actual}", file.sha256);
    }
    shared::idx::parse_idx(&content, &path)?;
    staging.as_file().sync_all()?;
    staging.persist(&path)?;
    // A stale copy under the other name would shadow or confuse the fresh one.
    let other =
        if compressed { dir.join(&file.name) } else { dir.join(format!("{}.gz", file.name)) };
    let _ = std::fs::remove_file(other);
    Ok(path)
}
