//! The HTTP layer against small servers started here on 127.0.0.1: error bodies that are not
//! JSON, the token kept out of errors and logs, retries of safe requests only, and servers
//! that are down or hang.

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use registry_client::{Error, HttpSettings, Registry, RunSpec, Token};

const SECRET: &str = "glpat-very-secret-token";

/// What the test server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    url: String,
    authorization: Option<String>,
}

/// A server on a free loopback port answering every request with `answer(method, url)`:
/// status, content type, body.
fn serve(
    answer: impl Fn(&str, &str) -> (u16, &'static str, String) + Send + 'static,
) -> Result<(String, Arc<Mutex<Vec<Seen>>>)> {
    let server = tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow::anyhow!("{e}"))?;
    let addr = server.server_addr().to_ip().context("ip address")?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let authorization = request
                .headers()
                .iter()
                .find(|h| h.field.equiv("Authorization"))
                .map(|h| h.value.to_string());
            let method = request.method().to_string();
            let url = request.url().to_owned();
            if let Ok(mut log) = log.lock() {
                log.push(Seen { method: method.clone(), url: url.clone(), authorization });
            }
            let (status, content_type, body) = answer(&method, &url);
            let header = tiny_http::Header::from_bytes("Content-Type", content_type)
                .unwrap_or_else(|()| panic!("bad header"));
            let response =
                tiny_http::Response::from_string(body).with_status_code(status).with_header(header);
            let _ = request.respond(response);
        }
    });
    Ok((format!("http://{addr}"), seen))
}

fn quick() -> HttpSettings {
    HttpSettings {
        retries: 2,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        ..HttpSettings::default()
    }
}

fn open(uri: &str) -> Result<Box<dyn Registry>> {
    Ok(registry_client::open_with(uri, Some(Token::new(SECRET)), quick())?)
}

#[test]
fn plain_text_403_is_a_clear_denial_and_the_token_goes_only_on_the_wire() -> Result<()> {
    let (uri, seen) =
        serve(|_, _| (403, "text/plain", "Forbidden: token lacks the api scope".into()))?;
    let registry = open(&uri)?;
    let err = registry.versions("digits").expect_err("refused");
    let text = err.to_string();
    ensure!(matches!(err, Error::Denied { status: 403, .. }), "{err:?}");
    ensure!(text.contains("token lacks the api scope"), "{text}");
    ensure!(text.contains("MODEL_REGISTRY_TOKEN"), "{text}");
    for shown in [text, format!("{err:?}"), format!("{registry:?}"), registry.describe()] {
        ensure!(!shown.contains(SECRET), "token leaked: {shown}");
    }
    let seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    ensure!(seen.len() == 1, "a 403 is not retried: {seen:?}");
    ensure!(seen[0].authorization.as_deref() == Some(&format!("Bearer {SECRET}")[..]));
    Ok(())
}

#[test]
fn html_404_is_reduced_to_its_title_with_a_hint() -> Result<()> {
    let page = "<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>\
                <h1>Not Found</h1><p>The requested URL was not found.</p></body></html>";
    let (uri, _) = serve(move |_, _| (404, "text/html; charset=utf-8", page.into()))?;
    let err = open(&format!("{uri}/wrong/prefix"))?.versions("digits").expect_err("no endpoint");
    let text = err.to_string();
    ensure!(matches!(err, Error::Http { status: 404, .. }), "{err:?}");
    ensure!(text.contains("404 Not Found (an HTML page)"), "{text}");
    ensure!(text.contains("is the registry URI right"), "{text}");
    ensure!(!text.contains("<h1>") && !text.contains(SECRET), "{text}");
    Ok(())
}

/// Captures what the crate logs while `f` runs.
fn logs_of<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text =
        buffer.0.lock().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    (out, text)
}

#[test]
fn safe_requests_are_retried_with_logged_attempts_and_creations_are_not() -> Result<()> {
    let (uri, seen) = serve(|method, url| match (method, url) {
        ("GET", u) if u.contains("experiments/get-by-name") => (
            404,
            "application/json",
            r#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"no experiment"}"#.into(),
        ),
        _ => (503, "text/plain", "overloaded".into()),
    })?;
    let registry = open(&uri)?;

    let (result, logs) = logs_of(|| registry.versions("digits"));
    let err = result.expect_err("always 503");
    ensure!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    ensure!(err.to_string().contains("after 3 tries"), "{err}");
    ensure!(logs.contains("attempt 2 of 3") && logs.contains("attempt 3 of 3"), "{logs}");
    ensure!(logs.contains("delay_ms"), "{logs}");
    ensure!(!logs.contains(SECRET), "token in logs: {logs}");

    let before = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.len();
    ensure!(before == 3, "one GET tried three times, saw {before}");
    let spec = RunSpec { experiment: "e".into(), ..Default::default() };
    let err = registry.start_run(&spec).expect_err("create fails");
    ensure!(matches!(err, Error::Http { status: 503, .. }), "{err:?}");
    let seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let creates =
        seen.iter().filter(|s| s.method == "POST" && s.url.contains("experiments/create")).count();
    ensure!(creates == 1, "a creation is not repeated after an unknown outcome: {seen:?}");
    Ok(())
}

#[test]
fn a_server_that_is_down_gives_a_clear_error_fast() -> Result<()> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let registry = registry_client::open(&format!("http://127.0.0.1:{port}"), None)?;
    let started = Instant::now();
    let err = registry.summary("digits").expect_err("nobody listens");
    let elapsed = started.elapsed();
    ensure!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    ensure!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
    // Default settings: four connection attempts, 0.25 + 0.5 + 1 s apart.
    ensure!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    Ok(())
}

#[test]
fn a_server_that_hangs_times_out() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let settings = HttpSettings { timeout: Duration::from_millis(500), ..quick() };
    let registry = registry_client::open_with(&format!("http://127.0.0.1:{port}"), None, settings)?;
    let started = Instant::now();
    let err = registry.versions("digits").expect_err("no answer");
    ensure!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    ensure!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    Ok(())
}

#[test]
fn unknown_schemes_are_refused() {
    let err = registry_client::open("s3://bucket/registry", None).expect_err("no s3 backend");
    assert!(err.to_string().contains("unsupported registry URI scheme"), "{err}");
}
