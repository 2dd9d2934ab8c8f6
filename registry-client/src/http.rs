//! What every HTTP backend shares: timeouts, bearer tokens, retries with backoff for the
//! requests that are safe to repeat, and errors decoded from whatever the server sent back
//! (MLflow JSON, GitLab JSON, an HTML page, plain text).

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::{Error, Result};
use crate::token::Token;

/// Timeouts and retries of a remote registry.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for a whole request, body included.
    pub timeout: Duration,
    /// How many times a failed request that is safe to repeat is tried again.
    pub retries: u32,
    /// Wait before the first retry; it doubles for each further one.
    pub backoff: Duration,
    /// Longest wait between two tries.
    pub max_backoff: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(60),
            retries: 3,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(4),
        }
    }
}

/// Whether a request may be sent again after a failure whose effect is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Repeating it changes nothing (reads, puts, status updates, tag writes).
    Safe,
    /// Repeating it could create or log something twice; it is retried only when the
    /// connection failed before anything was sent.
    ConnectOnly,
}

/// An HTTP client with the registry's token, timeouts and retry policy.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    client: Client,
    token: Option<Token>,
    settings: HttpSettings,
}

impl HttpClient {
    /// A client with these settings.
    pub(crate) fn new(token: Option<Token>, settings: HttpSettings) -> Result<Self> {
        let client = Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .user_agent(concat!("registry-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client, token, settings })
    }

    /// Sends the request `build` makes (again on each try) and returns a successful response.
    pub(crate) fn send(
        &self,
        method: &Method,
        url: &Url,
        retry: Retry,
        build: &dyn Fn(RequestBuilder) -> Result<RequestBuilder>,
    ) -> Result<Response> {
        let tries = self.settings.retries + 1;
        let mut delay = self.settings.backoff;
        for attempt in 1..=tries {
            let mut request = build(self.client.request(method.clone(), url.clone()))?;
            if let Some(token) = &self.token {
                request = request.bearer_auth(token.expose());
            }
            let reason = match request.send() {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) if retry == Retry::Safe && retryable(response.status()) => {
                    format!("HTTP {}", response.status())
                }
                Ok(response) => return Err(decode_error(method, url, response)),
                Err(e) if e.is_connect() || (retry == Retry::Safe && e.is_timeout()) => {
                    error_chain(&e)
                }
                Err(e) => return Err(unreachable(url, &e)),
            };
            if attempt == tries {
                return Err(Error::Unreachable {
                    url: redact(url),
                    detail: format!("{reason} (after {tries} tries)"),
                });
            }
            tracing::info!(
                %method,
                url = %redact(url),
                reason,
                delay_ms = delay.as_millis() as u64,
                "registry request failed; retrying, attempt {} of {tries} in {delay:?}",
                attempt + 1,
            );
            std::thread::sleep(delay);
            delay = (delay * 2).min(self.settings.max_backoff);
        }
        Err(Error::Protocol("no request was sent".into()))
    }

    /// GET with query parameters, decoding a JSON answer.
    pub(crate) fn get_json<T: DeserializeOwned>(
        &self,
        url: &Url,
        query: &[(&str, &str)],
    ) -> Result<T> {
        let mut url = url.clone();
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let response = self.send(&Method::GET, &url, Retry::Safe, &|r| Ok(r))?;
        decode_json(&url, response)
    }

    /// A request with a JSON body, decoding a JSON answer.
    pub(crate) fn json<T: DeserializeOwned>(
        &self,
        method: &Method,
        url: &Url,
        body: &impl Serialize,
        retry: Retry,
    ) -> Result<T> {
        let body = serde_json::to_vec(body)
            .map_err(|e| Error::Invalid(format!("cannot encode the request: {e}")))?;
        let response = self.send(method, url, retry, &|r| {
            Ok(r.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone()))
        })?;
        decode_json(url, response)
    }

    /// PUTs a file's bytes.
    pub(crate) fn put_file(&self, url: &Url, path: &Path) -> Result<()> {
        self.send(&Method::PUT, url, Retry::Safe, &|r| {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            Ok(r.body(file))
        })?;
        Ok(())
    }

    /// GETs a body into a new file at `path`.
    pub(crate) fn download(&self, url: &Url, path: &Path) -> Result<()> {
        let mut response = self.send(&Method::GET, url, Retry::Safe, &|r| Ok(r))?;
        let mut file = File::create(path).map_err(|e| Error::io(path, e))?;
        response.copy_to(&mut file).map_err(|e| unreachable(url, &e))?;
        Ok(())
    }
}

fn retryable(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

fn unreachable(url: &Url, e: &reqwest::Error) -> Error {
    Error::Unreachable { url: redact(url), detail: error_chain(e) }
}

/// The error and its causes on one line.
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The URL without credentials, query or fragment, for logs and errors.
pub(crate) fn redact(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

fn decode_json<T: DeserializeOwned>(url: &Url, response: Response) -> Result<T> {
    let bytes = response.bytes().map_err(|e| unreachable(url, &e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::Protocol(format!("{} answered {}: {e}", redact(url), excerpt(&bytes, 200)))
    })
}

/// The error a failed response stands for.
fn decode_error(method: &Method, url: &Url, response: Response) -> Error {
    let status = response.status();
    let html = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("html"));
    let body = response.bytes().unwrap_or_default();
    error_from_body(method, url, status, html, &body)
}

/// The error for a failed response with this status and body.
pub(crate) fn error_from_body(
    method: &Method,
    url: &Url,
    status: StatusCode,
    html: bool,
    body: &[u8],
) -> Error {
    let (code, message) = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(json) => json_message(&json),
        Err(_) if html || looks_like_html(body) => (None, html_message(body)),
        Err(_) => (None, excerpt(body, 300)),
    };
    let message = if message.is_empty() {
        status.canonical_reason().unwrap_or("no explanation").to_owned()
    } else {
        message
    };
    match (code.as_deref(), status.as_u16()) {
        (Some("RESOURCE_DOES_NOT_EXIST"), _) => Error::NotFound { what: message },
        (Some("RESOURCE_ALREADY_EXISTS"), _) => Error::AlreadyExists { what: message },
        (_, 401 | 403) => Error::Denied { status: status.as_u16(), message },
        (None, 404) => Error::Http {
            status: 404,
            method: method.to_string(),
            url: redact(url),
            message: format!(
                "{message} (the server has no such endpoint: is the registry URI right? \
                 GitLab's is <gitlab>/api/v4/projects/<id>/ml/mlflow)"
            ),
        },
        _ => Error::Http {
            status: status.as_u16(),
            method: method.to_string(),
            url: redact(url),
            message,
        },
    }
}

/// MLflow's `{error_code, message}`, GitLab's `{message}` or `{error}`, or the JSON itself.
fn json_message(json: &serde_json::Value) -> (Option<String>, String) {
    let code = json.get("error_code").and_then(|c| c.as_str()).map(str::to_owned);
    let message = ["message", "error", "detail"]
        .iter()
        .find_map(|k| json.get(*k))
        .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned))
        .unwrap_or_else(|| json.to_string());
    (code, message)
}

fn looks_like_html(body: &[u8]) -> bool {
    let start = String::from_utf8_lossy(&body[..body.len().min(200)]).to_ascii_lowercase();
    start.trim_start().starts_with("<!doctype html") || start.contains("<html")
}

/// The title of an HTML page, or its text without tags.
fn html_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let lower = text.to_ascii_lowercase();
    let title = lower.find("<title>").and_then(|start| {
        let from = start + "<title>".len();
        lower[from..].find("</title>").map(|len| text[from..from + len].trim().to_owned())
    });
    let shown = title.filter(|t| !t.is_empty()).unwrap_or_else(|| {
        let mut plain = String::new();
        let mut in_tag = false;
        for c in text.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => plain.push(c),
                _ => {}
            }
        }
        excerpt(plain.as_bytes(), 200)
    });
    format!("{shown} (an HTML page)")
}

/// The start of a body as one trimmed line.
fn excerpt(body: &[u8], limit: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > limit {
        format!("{}...", line.chars().take(limit).collect::<String>())
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(status: u16, html: bool, body: &str) -> Error {
        let url = Url::parse("http://127.0.0.1:1/api/x").expect("url");
        let status = StatusCode::from_u16(status).expect("status");
        error_from_body(&Method::GET, &url, status, html, body.as_bytes())
    }

    #[test]
    fn mlflow_codes_become_caller_terms() {
        let e = decode(404, false, r#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"no"}"#);
        assert!(e.is_not_found(), "{e}");
        let e = decode(400, false, r#"{"error_code":"RESOURCE_ALREADY_EXISTS","message":"m"}"#);
        assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    }

    #[test]
    fn html_pages_are_reduced_to_their_title() {
        let page = "<!DOCTYPE html><html><head><title>404 Not Found</title></head>\
                    <body><h1>Not Found</h1><p>lots of markup</p></body></html>";
        let text = decode(404, true, page).to_string();
        assert!(text.contains("404 Not Found (an HTML page)"), "{text}");
        assert!(!text.contains("<h1>"), "{text}");
    }

    #[test]
    fn plain_text_denials_name_the_token_variable() {
        let e = decode(403, false, "Forbidden: token lacks api scope\n");
        let text = e.to_string();
        assert!(matches!(e, Error::Denied { status: 403, .. }), "{text}");
        assert!(text.contains("token lacks api scope"), "{text}");
        assert!(text.contains(crate::REGISTRY_TOKEN_ENV), "{text}");
    }

    #[test]
    fn credentials_in_urls_are_redacted() {
        let url = Url::parse("https://user:pw@gitlab.example/api?private_token=x").expect("url");
        assert_eq!(redact(&url), "https://gitlab.example/api");
    }
}
