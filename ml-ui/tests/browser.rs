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

/// Instruments the page: whether it started a prediction after the last pointer went up (for
/// [`wait_for_answer`]), which kinds of pointer drew and where the last one went down, and a
/// fetch that can be held back and counts the answers the page has read.
const WATCH: &str = r#"
    const lab = window.__lab =
        { busySinceUp: false, pointerTypes: [], down: null, hold: false, held: [], read: 0 };
    document.getElementById("pad").addEventListener("pointerdown", (e) => {
        lab.pointerTypes.push(e.pointerType);
        lab.down = { x: e.clientX, y: e.clientY };
    }, true);
    document.addEventListener("pointerup", () => { lab.busySinceUp = false; }, true);
    new MutationObserver(() => {
        if (document.body.dataset.state === "busy") lab.busySinceUp = true;
    }).observe(document.body, { attributes: true, attributeFilter: ["data-state"] });
    const realFetch = window.fetch.bind(window);
    window.fetch = (...args) => {
        const go = () => realFetch(...args).then((response) => {
            const json = response.json.bind(response);
            response.json = () => json().then((body) => { lab.read++; return body; });
            return response;
        });
        return lab.hold ? new Promise((resolve) => lab.held.push(() => resolve(go()))) : go();
    };
"#;

/// Where the ink of a single dot lies, minus where the pointer went down, in CSS pixels of the
/// pad's content box; and the pad's bitmap width, and its content width in device pixels.
const DOT_OFFSET: &str = r#"
    const c = document.getElementById("pad");
    const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0, sx = 0, sy = 0;
    for (let i = 3; i < data.length; i += 4) {
        if (data[i] < 128) continue;
        const p = (i - 3) / 4;
        n++; sx += p % c.width + 0.5; sy += Math.floor(p / c.width) + 0.5;
    }
    const r = c.getBoundingClientRect(), k = c.width / c.clientWidth, d = window.__lab.down;
    const x = d.x - r.left - c.clientLeft, y = d.y - r.top - c.clientTop;
    return [sx / n / k - x, sy / n / k - y, c.width, c.clientWidth * devicePixelRatio];
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

/// Polls `script` until it returns true.
async fn wait_until(client: &Client, script: &str, what: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    while client.execute(script, vec![]).await? != json!(true) {
        if started.elapsed() > ANSWER_TIMEOUT {
            let status = client.find(Locator::Id("status")).await?.text().await?;
            anyhow::bail!("{what}: not after {ANSWER_TIMEOUT:?}; the page says {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Ok(())
}

/// Waits for the page's answer to the drawing as it is now and returns the digit shown.
async fn wait_for_answer(client: &Client) -> anyhow::Result<String> {
    let answered = r#"return window.__lab.busySinceUp && document.body.dataset.state === "ready";"#;
    wait_until(client, answered, "an answer").await?;
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

/// Draws `path` with the mouse.
async fn draw(client: &Client, canvas: &Canvas, path: &[Point]) -> anyhow::Result<()> {
    let mouse = stroke(MouseActions::new("mouse".into()), &canvas.element, canvas.size, path);
    client.perform_actions(mouse).await?;
    Ok(client.release_actions().await?)
}

/// The drawing pad and its size in CSS pixels.
struct Canvas {
    element: Element,
    size: (f64, f64),
}

/// Opens the page and checks the pad's backing store follows the screen's pixel ratio.
async fn open(client: &Client, url: &str) -> anyhow::Result<Canvas> {
    client.goto(&format!("{url}/")).await?;
    let idle = Locator::Css("body[data-state=idle]");
    client.wait().at_most(ANSWER_TIMEOUT).for_element(idle).await?;
    client.execute(WATCH, vec![]).await?;
    let element = client.find(Locator::Id("pad")).await?;
    let (_, _, width, height) = element.rectangle().await?;
    Ok(Canvas { element, size: (width, height) })
}

/// Regression: the bitmap was sized, and pointer positions measured, from the canvas's border
/// box, so on a canvas with a border the ink landed up to the border's width off the pointer.
/// A dot near each corner must be inked where the pointer went down, and the bitmap must have
/// one pixel per device pixel of the content box.
async fn ink_lands_under_the_pointer(client: &Client, canvas: &Canvas) -> anyhow::Result<()> {
    for corner in [(0.08, 0.08), (0.92, 0.92)] {
        clear(client).await?;
        draw(client, canvas, &[corner]).await?;
        let found = client.execute(DOT_OFFSET, vec![]).await?;
        let off = |i: usize| found[i].as_f64().map_or(f64::INFINITY, f64::abs);
        ensure!(found[2] == found[3], "bitmap width {} for {} device pixels", found[2], found[3]);
        ensure!(off(0) <= 0.5 && off(1) <= 0.5, "a dot at {corner:?} is inked {found} away");
    }
    Ok(())
}

/// Regression: Clear did not discard an answer on its way, so an answer for the cleared
/// drawing showed up on the empty pad, ready to be sent as feedback. Requests are held back by
/// the instrumented fetch until Clear has been pressed.
async fn clear_discards_a_pending_answer(client: &Client, canvas: &Canvas) -> anyhow::Result<()> {
    clear(client).await?;
    client.execute("window.__lab.hold = true;", vec![]).await?;
    draw(client, canvas, &one()).await?;
    let pending = "return window.__lab.held.length > 0 && document.body.dataset.state === 'busy';";
    wait_until(client, pending, "a prediction under way").await?;
    clear(client).await?;
    let release = "const l = window.__lab; l.hold = false; const n = l.read + l.held.length; \
                   l.held.splice(0).forEach((go) => go()); return n;";
    let read = client.execute(release, vec![]).await?;
    wait_until(client, &format!("return window.__lab.read >= {read};"), "the answers read").await?;
    let page = "return [document.body.dataset.state, document.getElementById('digit').textContent, \
                document.getElementById('feedback').hidden];";
    let page = client.execute(page, vec![]).await?;
    ensure!(page == json!(["idle", "?", true]), "after Clear, a late answer showed: {page}");
    Ok(())
}

/// A 0, a 1 and a 7 drawn with the mouse as the prediction follows the drawing; an extra
/// stroke taken back with Undo; the 7 again with live predictions off and the Predict button.
async fn mouse_digits(client: &Client, canvas: &Canvas) -> anyhow::Result<()> {
    for (expected, path) in [("0", zero()), ("1", one()), ("7", seven())] {
        clear(client).await?;
        draw(client, canvas, &path).await?;
        let shown = wait_for_answer(client).await?;
        ensure!(shown == expected, "drew a {expected} with the mouse, the page shows {shown}");
    }

    draw(client, canvas, &[(0.3, 0.5), (0.5, 0.5), (0.7, 0.5)]).await?;
    wait_for_answer(client).await?;
    client.find(Locator::Id("undo")).await?.click().await?;
    let shown = wait_for_answer(client).await?;
    ensure!(shown == "7", "after undoing a stroke across the 7, the page shows {shown}");

    clear(client).await?;
    client.find(Locator::Id("live")).await?.click().await?;
    draw(client, canvas, &seven()).await?;
    client.find(Locator::Id("predict")).await?.click().await?;
    let shown = wait_for_answer(client).await?;
    client.find(Locator::Id("live")).await?.click().await?;
    ensure!(shown == "7", "drew a 7 and pressed Predict, the page shows {shown}");
    Ok(())
}

/// Confirms the 7 shown with its feedback button and finds the correction stored.
async fn feedback(client: &Client, server: &support::TestServer) -> anyhow::Result<()> {
    let version = server.state.predictor.current().context("no model")?.version.clone();
    client.find(Locator::Css("#feedback button[data-label=\"7\"]")).await?.click().await?;
    let saved = Locator::Css("body[data-feedback=saved]");
    client.wait().at_most(ANSWER_TIMEOUT).for_element(saved).await?;
    let items = FeedbackStore::open(&server.feedback_dir)?.items()?;
    ensure!(items.len() == 1, "{} feedback items stored, expected 1", items.len());
    let item = &items[0];
    let right = item.label == 7 && item.predicted == Some(7);
    ensure!(right && item.model_version.as_ref() == Some(&version), "stored feedback {item:?}");
    Ok(())
}

/// A 1 dragged with a finger draws, and the page, taller than the window, does not scroll.
async fn touch(client: &Client, canvas: &Canvas) -> anyhow::Result<()> {
    clear(client).await?;
    let top = "scrollTo(0, 0); return document.documentElement.scrollHeight > innerHeight;";
    ensure!(client.execute(top, vec![]).await? == true, "the page must be taller than the window");
    let finger = stroke(TouchActions::new("finger".into()), &canvas.element, canvas.size, &one());
    client.perform_actions(finger).await?;
    client.release_actions().await?;
    let shown = wait_for_answer(client).await?;
    ensure!(shown == "1", "drew a 1 with a finger, the page shows {shown}");
    let scrolled = client.execute("return scrollY;", vec![]).await?;
    ensure!(scrolled == 0, "the touch drag scrolled the page to {scrolled}");
    let types = client.execute("return window.__lab.pointerTypes;", vec![]).await?;
    let touched = types.as_array().and_then(|t| t.last()).is_some_and(|t| t == "touch");
    ensure!(touched, "pointer types seen by the pad: {types}");
    Ok(())
}

/// Everything the page is checked for, in one browser session.
async fn exercise(
    driver: &Chromedriver,
    client: &Client,
    server: &support::TestServer,
) -> anyhow::Result<()> {
    let canvas = open(client, &server.url).await?;
    ink_lands_under_the_pointer(client, &canvas).await?;
    clear_discards_a_pending_answer(client, &canvas).await?;
    mouse_digits(client, &canvas).await?;
    feedback(client, server).await?;
    touch(client, &canvas).await?;
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
