//! Accuracy through the real HTTP API: MNIST test digits re-drawn as a browser's canvas would
//! send them (large, transparent background, off-centre, thick, thin and coloured pens) are
//! POSTed to a server on a loopback port, both as `image/png` bodies and as JSON data URLs, by
//! several clients at once. The default model must get at least 97 % of them right either way.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use shared::canvas::{CanvasStyle, png_bytes, redraw};

/// Re-drawn test digits sent, each one both ways.
const DIGITS: usize = 300;

/// Requests in flight at once.
const CLIENTS: usize = 8;

/// The lowest accuracy accepted, per encoding.
const MIN_ACCURACY: f64 = 0.97;

/// How the picture travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Encoding {
    PngBody,
    DataUrl,
}

/// One request to send and what it should answer.
struct Case {
    style: &'static str,
    label: usize,
    png: Vec<u8>,
}

/// A canvas as a page would have it: 400 to 800 pixels or more, the digit 8-20 canvas pixels per
/// MNIST pixel and anywhere on it (its 28x28 frame may hang one MNIST pixel over an edge, where
/// MNIST digits have only empty border).
fn canvas(rng: &mut impl rand::Rng) -> CanvasStyle {
    let scale = rng.random_range(8.0..20.0f32);
    let span = 28.0 * scale;
    let side = rng.random_range((span as u32).max(400)..(span as u32 + 250).max(800));
    let height = rng.random_range((span as u32).max(side * 3 / 4)..=side);
    let slack = |extent: u32| (extent as f32 - span).max(0.0) + 2.0 * scale;
    let origin =
        (rng.random_range(0.0..slack(side)) - scale, rng.random_range(0.0..slack(height)) - scale);
    CanvasStyle { size: (side, height), scale, origin, ..CanvasStyle::default() }
}

/// The pens, cycled over the digits; every background is transparent as a canvas's is,
/// except one drawn on a white sheet.
fn pen(i: usize, base: &CanvasStyle) -> (&'static str, CanvasStyle) {
    let scale = base.scale;
    match i % 5 {
        0 => ("dark pen (the page's #111)", CanvasStyle { ink: [17; 3], ..*base }),
        1 => (
            "broad brush",
            CanvasStyle { edge_level: 0.15, thicken: (scale / 2.5) as u32, ..*base },
        ),
        2 => ("thin pen", CanvasStyle { edge_level: 0.8, ..*base }),
        3 => ("blue ink", CanvasStyle { ink: [30, 60, 200], ..*base }),
        _ => ("black on a white sheet", CanvasStyle { background: Some([255; 3]), ..*base }),
    }
}

/// Re-draws the first [`DIGITS`] test digits, on two threads.
fn cases() -> Vec<Case> {
    let data = support::mnist();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let jobs: Vec<(usize, &'static str, CanvasStyle)> = (0..DIGITS)
        .map(|i| {
            let (name, style) = pen(i, &canvas(&mut rng));
            (i, name, style)
        })
        .collect();
    let draw = |jobs: &[(usize, &'static str, CanvasStyle)]| -> Vec<Case> {
        jobs.iter()
            .map(|(i, style, canvas)| Case {
                style,
                label: usize::from(data.test.labels[*i]),
                png: png_bytes(&redraw(data.test.image(*i), canvas)),
            })
            .collect()
    };
    let (first, second) = jobs.split_at(DIGITS / 2);
    std::thread::scope(|s| {
        let other = s.spawn(|| draw(second));
        let mut all = draw(first);
        all.extend(other.join().unwrap());
        all
    })
}

/// Sends one picture and returns the digit answered.
async fn predict(client: &reqwest::Client, url: &str, png: &[u8], how: Encoding) -> usize {
    let request = client.post(format!("{url}/api/predict"));
    let request = match how {
        Encoding::PngBody => request.header("content-type", "image/png").body(png.to_vec()),
        Encoding::DataUrl => {
            let data = base64::engine::general_purpose::STANDARD.encode(png);
            request.json(&json!({ "image": format!("data:image/png;base64,{data}") }))
        }
    };
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{how:?}: {body}");
    let digit = body["digit"].as_u64().unwrap();
    assert!(body["model_version"].as_str().is_some_and(|v| !v.is_empty()), "{body}");
    assert_eq!(body["probabilities"].as_array().map(Vec::len), Some(10), "{body}");
    usize::try_from(digit).unwrap()
}

type Tally = BTreeMap<(Encoding, &'static str), (usize, usize)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redrawn_test_digits_posted_over_http_are_at_least_97_percent_right() {
    let cases = Arc::new(cases());
    let server = support::TestServer::start(support::default_model()).await;
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (cases, next, client, url) =
            (cases.clone(), next.clone(), client.clone(), server.url.clone());
        workers.spawn(async move {
            let mut tally = Tally::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(n / 2) else { return tally };
                let how = if n % 2 == 0 { Encoding::PngBody } else { Encoding::DataUrl };
                let digit = predict(&client, &url, &case.png, how).await;
                let entry = tally.entry((how, case.style)).or_default();
                entry.0 += usize::from(digit == case.label);
                entry.1 += 1;
            }
        });
    }
    let mut tally = Tally::new();
    while let Some(done) = workers.join_next().await {
        for (key, (right, all)) in done.unwrap() {
            let entry = tally.entry(key).or_default();
            entry.0 += right;
            entry.1 += all;
        }
    }

    for how in [Encoding::PngBody, Encoding::DataUrl] {
        let mine: Vec<_> = tally.iter().filter(|((h, _), _)| *h == how).collect();
        let right: usize = mine.iter().map(|(_, (r, _))| r).sum();
        let all: usize = mine.iter().map(|(_, (_, a))| a).sum();
        let accuracy = right as f64 / all as f64;
        let by_pen: Vec<String> =
            mine.iter().map(|((_, pen), (r, a))| format!("{pen} {r}/{a}")).collect();
        let by_pen = by_pen.join(", ");
        eprintln!("{how:?}: accuracy {accuracy:.4} ({right} of {all}); {by_pen}");
        assert_eq!(all, DIGITS, "{how:?}: every digit answered");
        assert!(accuracy >= MIN_ACCURACY, "{how:?}: accuracy {accuracy:.4}; {by_pen}");
    }
}
