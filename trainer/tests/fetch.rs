//! Fetching a data set from URLs into the cache, against a local HTTP server that serves the
//! shipped MNIST files (and failures) on loopback.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use shared::dataset::{Dataset, DatasetSpec};
use trainer::fetch::{Fetched, fetch_dataset};

/// Serves `files` by path on a free loopback port; returns the base URL and a request counter.
fn serve(files: HashMap<String, Vec<u8>>) -> (String, Arc<AtomicUsize>) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.server_addr().to_ip().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            counter.fetch_add(1, Ordering::SeqCst);
            let response = match files.get(request.url()) {
                Some(bytes) => tiny_http::Response::from_data(bytes.clone()),
                None => {
                    tiny_http::Response::from_string("<html>not here</html>").with_status_code(404)
                }
            };
            let _ = request.respond(response);
        }
    });
    (base, requests)
}

fn shipped(name: &str) -> Vec<u8> {
    std::fs::read(support::mnist_dir().join(format!("{name}.gz"))).unwrap()
}

/// MNIST's checksums, with URLs on the given mirrors.
fn spec(mirrors: &[&str]) -> DatasetSpec {
    let mnist = DatasetSpec::mnist();
    let digests = mnist.files().map(|f| f.sha256.as_str());
    DatasetSpec::standard("mnist-copy", mirrors, digests)
}

#[test]
fn files_come_from_the_first_good_mirror_and_are_cached() {
    let files =
        DatasetSpec::mnist().files().map(|f| (format!("/good/{}.gz", f.name), shipped(&f.name)));
    let (base, requests) = serve(files.into_iter().collect());
    let cache = tempfile::tempdir().unwrap();
    let spec = spec(&[&format!("{base}/missing"), &format!("{base}/good")]);

    let outcomes = fetch_dataset(&spec, cache.path()).unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Fetched::Downloaded { url, .. } if url.contains("/good/")))
    );
    assert_eq!(requests.load(Ordering::SeqCst), 8, "one 404 and one success per file");
    let data = Dataset::load(cache.path(), &spec).unwrap();
    assert_eq!(data.test.len(), 10_000);

    let again = fetch_dataset(&spec, cache.path()).unwrap();
    assert!(again.iter().all(|o| matches!(o, Fetched::Cached(_))));
    assert_eq!(requests.load(Ordering::SeqCst), 8, "cached files were fetched again");
}

#[test]
fn a_corrupt_download_is_refused_and_nothing_is_kept() {
    let mut files = HashMap::new();
    for f in DatasetSpec::mnist().files() {
        let mut bytes = shipped(&f.name);
        if f.name.starts_with("t10k-labels") {
            // A valid gzip stream of altered content: the checksum must catch it.
            let mut raw = shared::idx::parse_idx(&flate2_decode(&bytes), Path::new("x")).unwrap();
            raw.data[0] = (raw.data[0] + 1) % 10;
            bytes = idx_bytes(&raw);
        }
        files.insert(format!("/m/{}.gz", f.name), bytes);
    }
    let (base, _) = serve(files);
    let cache = tempfile::tempdir().unwrap();
    let err = fetch_dataset(&spec(&[&format!("{base}/m")]), cache.path()).unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("t10k-labels-idx1-ubyte") && message.contains("checksum mismatch"),
        "{message}"
    );
    let kept: Vec<_> =
        std::fs::read_dir(cache.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(kept.len(), 3, "only the three good files may be kept: {kept:?}");
}

#[test]
fn an_unreachable_server_and_bad_urls_give_clear_errors() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cache = tempfile::tempdir().unwrap();
    let err = fetch_dataset(
        &spec(&[&format!("http://127.0.0.1:{port}"), "ftp://example.invalid"]),
        cache.path(),
    )
    .unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.contains("unsupported URL scheme"), "{message}");
}

#[test]
fn file_urls_work_like_mirrors() {
    let cache = tempfile::tempdir().unwrap();
    let mirror = format!("file://{}", support::mnist_dir().canonicalize().unwrap().display());
    let outcomes = fetch_dataset(&spec(&[&mirror]), cache.path()).unwrap();
    assert_eq!(outcomes.len(), 4);
    assert!(Dataset::load(cache.path(), &spec(&[])).is_ok());
}

fn flate2_decode(bytes: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.gz");
    std::fs::write(&path, bytes).unwrap();
    shared::idx::read_maybe_gzip(&path).unwrap()
}

fn idx_bytes(array: &shared::idx::IdxArray) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    shared::idx::write_idx(&path, &array.dims, &array.data).unwrap();
    std::fs::read(path).unwrap()
}
