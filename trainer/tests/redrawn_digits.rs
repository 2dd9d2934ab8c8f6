//! Real MNIST test digits re-drawn as users send them (large canvases, off-centre, transparent
//! or opaque, either polarity, thick and thin pens, coloured ink) still classify correctly
//! after preprocessing: the trained default model must get at least 97 % of them.

#![allow(clippy::unwrap_used)]

mod support;

use rand::{RngExt, SeedableRng};
use shared::Model;
use shared::canvas::{CanvasStyle, png_bytes, redraw};
use shared::dataset::{Dataset, DatasetSpec};
use shared::model::argmax;
use shared::preprocess::{DecodeLimits, preprocess};

/// Re-drawn test digits checked.
const DIGITS: usize = 300;

/// The pens and canvases, cycled over the digits.
fn styles(rng: &mut impl rand::Rng) -> Vec<(&'static str, CanvasStyle)> {
    let scale = rng.random_range(8.0..16.0f32);
    let size = (rng.random_range(450..700u32), rng.random_range(450..700u32));
    let span = 28.0 * scale;
    let origin = (
        rng.random_range(-40.0..size.0 as f32 - span + 40.0),
        rng.random_range(-40.0..size.1 as f32 - span + 40.0),
    );
    let base = CanvasStyle { size, scale, origin, ..CanvasStyle::default() };
    vec![
        ("transparent, black pen", base.clone()),
        (
            "inverted: white on black",
            CanvasStyle { ink: [255; 3], background: Some([0; 3]), ..base.clone() },
        ),
        (
            "thick pen",
            CanvasStyle { edge_level: 0.15, thicken: (scale / 2.0) as u32, ..base.clone() },
        ),
        ("thin pen", CanvasStyle { edge_level: 0.8, ..base.clone() }),
        (
            "blue ink on paper",
            CanvasStyle { ink: [30, 60, 200], background: Some([245, 240, 225]), ..base },
        ),
    ]
}

#[test]
fn redrawn_test_digits_classify_at_least_97_percent_correctly() {
    let model = Model::load(support::default_model()).unwrap();
    let data = Dataset::load(&support::mnist_dir(), &DatasetSpec::mnist()).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2024);
    let mut per_style = std::collections::BTreeMap::<&str, (usize, usize)>::new();
    for i in 0..DIGITS {
        let (name, style) = styles(&mut rng).swap_remove(i % 5);
        let png = png_bytes(&redraw(data.test.image(i), &style));
        let frame = preprocess(&png, DecodeLimits::default()).unwrap();
        let (digit, _) = argmax(&model.predict(&[frame]).unwrap()[0]);
        let entry = per_style.entry(name).or_default();
        entry.1 += 1;
        if digit == usize::from(data.test.labels[i]) {
            entry.0 += 1;
        }
    }
    let correct: usize = per_style.values().map(|(c, _)| c).sum();
    let accuracy = correct as f64 / DIGITS as f64;
    eprintln!("re-drawn accuracy {accuracy:.4}: {per_style:?}");
    assert!(accuracy >= 0.97, "re-drawn accuracy {accuracy:.4}: {per_style:?}");
}
