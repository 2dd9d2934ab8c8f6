//! The page in a real browser: headless Chromium, driven through chromedriver, draws digits
//! stroke by stroke on the canvas with a mouse and reads the prediction the page shows, sends
//! a correction and finds it stored, draws with a finger (touch pointer events), and leaves no
//! error in the browser's console. The screen has two device pixels per CSS pixel, so the
//! canvas coordinates are checked on a high-DPI screen.
//!
//! Needs `/usr/bin/chromium` and `chromedriver` (Debian: `apt-get install -y chromium
//! chromium-driver`); `DIGIT_LAB_CHROMIUM` and `DIGIT_LAB_CHROMEDRIVER` name other paths. Without
//! them the test fails, saying so.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use fantoccini::actions::{
    InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction, TouchActions,
};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use ml_ui::feedback::FeedbackStore;
use serde_json::{Value, json};

/// How long the page may take to show an answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// A point on the canvas: 0..1 across its width and down its height.
type Point = (f64, f64);

/// A 0: one stroke round an upright ellipse, closing where it started.
fn zero() -> Vec<Point> {
    (0..=40)
        .map(|i| {
            let a = std::f64::consts::TAU * f64::from(i) / 40.0;
            (0.5 + 0.2 * a.sin(), 0.5 - 0.3 * a.cos())
        })
        .collect()
}

/// A 1: one stroke straight down, leaning a little as handwriting does.
fn one() -> Vec<Point> {
    (0..=12).map(|i| f64::from(i) / 12.0).map(|t| (0.53 - 0.06 * t, 0.18 + 0.64 * t)).collect()
}

/// A 7: a bar along the top, then without lifting the pen a long diagonal down to the left.
fn seven() -> Vec<Point> {
    let bar = (0..=8).map(|i| f64::from(i) / 8.0).map(|t| (0.28 + 0.42 * t, 0.22));
    let stem = (1..=12).map(|i| f64::from(i) / 12.0).map(|t| (0.70 - 0.26 * t, 0.22 + 0.58 * t));
    bar.chain(stem).collect()
}

/// A chromedriver process on a free loopback port, shut down with the test.
struct Chromedriver {
    child: Child,
    port: u16,
}

fn tool(env: &str, default: &str, what: &str) -> PathBuf {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.is_file(),
        "{what} is not installed at {} (set {env} to another path); the browser test needs \
         it: apt-get install -y chromium chromium-driver",
        path.display()
    );
    path
}

impl Chromedriver {
    /// Starts chromedriver and waits until it accepts sessions.
    async fn start() -> Self {
        let driver = tool("DIGIT_LAB_CHROMEDRIVER", "/usr/bin/chromedriver", "chromedriver");
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", driver.display()));
        let mut me = Self { child, port };
        let status = format!("{}/status", me.url());
        let started = Instant::now();
        loop {
            let ready = match reqwest::get(&status).await {
                Ok(r) => r.json::<Value>().await.is_ok_and(|v| v["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                return me;
            }
            if let Some(exit) = me.child.try_wait().unwrap() {
                panic!("chromedriver on port {port} exited with {exit}");
            }
            assert!(started.elapsed() < Duration::from_secs(30), "chromedriver never got ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Chromedriver {
    /// Asks chromedriver to quit (closing any browser it started), then makes sure it has.
    fn drop(&mut self) {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = stream.write_all(b"GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session with a fresh profile and the console log kept.
async fn browser(driver: &Chromedriver, profile: &std::path::Path) -> Client {
    let chromium = tool("DIGIT_LAB_CHROMIUM", "/usr/bin/chromium", "chromium");
    let args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=900,800",
        "--force-device-scale-factor=2",
    ]
    .map(String::from)
    .into_iter()
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect::<Vec<_>>();
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": chromium, "args": args },
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    let Value::Object(capabilities) = capabilities else { unreachable!() };
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(capabilities)
        .connect(&driver.url())
        .await
        .unwrap_or_else(|e| panic!("opening a Chromium session: {e}"))
}

/// Records, for [`wait_for_answer`], whether the page started a prediction after the last
/// pointer went up, and which kinds of pointer drew.
const WATCH: &str = r#"
    const lab = window.__lab = { busySinceUp: false, pointerTypes: [] };
    document.getElementById("pad")
        .addEventListener("pointerdown", (e) => lab.pointerTypes.push(e.pointerType), true);
    document.addEventListener("pointerup", () => { lab.busySinceUp = false; }, true);
    new MutationObserver(() => {
        if (document.body.dataset.state === "busy") lab.busySinceUp = true;
    }).observe(document.body, { attributes: true, attributeFilter: ["data-state"] });
"#;

/// Moves along `stroke` with the pointer down, as `source` (a mouse or a finger).
fn stroke<S>(mut source: S, canvas: &Element, size: (f64, f64), stroke: &[Point]) -> S
where
    S: InputSource<Action = PointerAction>,
{
    let at = |(u, v): Point| PointerAction::MoveToElement {
        element: canvas.clone(),
        duration: Some(Duration::from_millis(8)),
        x: ((u - 0.5) * size.0).round(),
        y: ((v - 0.5) * size.1).round(),
    };
    source = source.then(at(stroke[0])).then(PointerAction::Down { button: MOUSE_BUTTON_LEFT });
    for &p in &stroke[1..] {
        source = source.then(at(p));
    }
    source.then(PointerAction::Up { button: MOUSE_BUTTON_LEFT })
}

/// Waits for the page's answer to the drawing as it is now and returns the digit shown.
async fn wait_for_answer(client: &Client) -> anyhow::Result<String> {
    let started = Instant::now();
    let check = r#"return window.__lab.busySinceUp && document.body.dataset.state === "ready";"#;
    while client.execute(check, vec![]).await? != json!(true) {
        if started.elapsed() > ANSWER_TIMEOUT {
            let status = client.find(Locator::Id("status")).await?.text().await?;
            anyhow::bail!("no answer after {ANSWER_TIMEOUT:?}; the page says {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Ok(client.find(Locator::Id("digit")).await?.text().await?)
}

/// Clears the pad and checks the page is back to its empty state.
async fn clear(client: &Client) -> anyhow::Result<()> {
    client.find(Locator::Id("clear")).await?.click().await?;
    let state = client.execute("return document.body.dataset.state;", vec![]).await?;
    let digit = client.find(Locator::Id("digit")).await?.text().await?;
    ensure!(state == "idle" && digit == "?", "after Clear: state {state}, digit {digit:?}");
    Ok(())
}

/// The browser console's entries so far (chromedriver's legacy log endpoint).
async fn console(driver: &Chromedriver, client: &Client) -> anyhow::Result<Vec<Value>> {
    let session = client.session_id().await?.context("no session id")?;
    let url = format!("{}/session/{session}/se/log", driver.url());
    let answer: Value = reqwest::Client::new()
        .post(url)
        .json(&json!({ "type": "browser" }))
        .send()
        .await?
        .json()
        .await?;
    answer["value"].as_array().cloned().with_context(|| format!("log answer {answer}"))
}

/// Everything the page is checked for, in one browser session.
async fn exercise(
    driver: &Chromedriver,
    client: &Client,
    server: &support::TestServer,
) -> anyhow::Result<()> {
    client.goto(&format!("{}/", server.url)).await?;
    client
        .wait()
        .at_most(ANSWER_TIMEOUT)
        .for_element(Locator::Css("body[data-state=idle]"))
        .await?;
    client.execute(WATCH, vec![]).await?;
    let canvas = client.find(Locator::Id("pad")).await?;
    let (_, _, width, height) = canvas.rectangle().await?;
    let size = (width, height);

    let digits: [(&str, Vec<Point>); 3] = [("0", zero()), ("1", one()), ("7", seven())];
    for (i, (expected, path)) in digits.iter().enumerate() {
        if i > 0 {
            clear(client).await?;
        }
        let mouse = stroke(MouseActions::new("mouse".into()), &canvas, size, path);
        client.perform_actions(mouse).await?;
        client.release_actions().await?;
        let shown = wait_for_answer(client).await?;
        ensure!(shown == *expected, "drew a {expected} with the mouse, the page shows {shown}");
    }

    // The answer to the 7 is right; say so anyway, and find the correction stored.
    let version = server.state.predictor.current().context("no model")?.version.clone();
    client.find(Locator::Css("#feedback button[data-label=\"7\"]")).await?.click().await?;
    client
        .wait()
        .at_most(ANSWER_TIMEOUT)
        .for_element(Locator::Css("body[data-feedback=saved]"))
        .await?;
    let items = FeedbackStore::open(&server.feedback_dir)?.items()?;
    ensure!(items.len() == 1, "{} feedback items stored, expected 1", items.len());
    let item = &items[0];
    ensure!(
        item.label == 7
            && item.predicted == Some(7)
            && item.model_version.as_ref() == Some(&version),
        "stored feedback {item:?}"
    );

    // A finger dragged down the canvas draws; the page, taller than the window, stays put.
    clear(client).await?;
    let scrolled =
        "scrollTo(0, 0); return [scrollY, document.documentElement.scrollHeight, innerHeight];";
    let before = client.execute(scrolled, vec![]).await?;
    ensure!(
        before[0] == 0 && before[1].as_f64() > before[2].as_f64(),
        "the page must scroll: {before}"
    );
    let finger = stroke(TouchActions::new("finger".into()), &canvas, size, &one());
    client.perform_actions(finger).await?;
    client.release_actions().await?;
    let shown = wait_for_answer(client).await?;
    ensure!(shown == "1", "drew a 1 with a finger, the page shows {shown}");
    let after = client.execute("return scrollY;", vec![]).await?;
    ensure!(after == 0, "the touch drag scrolled the page to {after}");
    let types = client.execute("return window.__lab.pointerTypes;", vec![]).await?;
    ensure!(types == json!(["mouse", "mouse", "mouse", "touch"]), "pointer types {types}");

    let severe: Vec<Value> =
        console(driver, client).await?.into_iter().filter(|e| e["level"] == "SEVERE").collect();
    ensure!(severe.is_empty(), "errors in the browser console: {severe:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn digits_drawn_in_chromium_are_recognised_and_corrections_are_stored() {
    let server = support::TestServer::start(support::default_model()).await;
    let driver = Chromedriver::start().await;
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    let outcome = exercise(&driver, &client, &server).await;
    if outcome.is_err()
        && let Ok(png) = client.screenshot().await
    {
        let path = std::env::temp_dir().join("ml-ui-browser-failure.png");
        if std::fs::write(&path, png).is_ok() {
            eprintln!("screenshot of the page: {}", path.display());
        }
    }
    let closed = client.close().await;
    outcome.unwrap();
    closed.unwrap();
}
