//! Pictures of digits as users send them: an MNIST digit re-drawn large and off-centre on a
//! canvas, with a pen of chosen thickness and colour, on a transparent or opaque background.
//! Tests and benchmarks use these to check the whole path from a browser's PNG to a class.

use image::{Rgba, RgbaImage};

/// How to re-draw a digit.
#[derive(Debug, Clone, PartialEq)]
pub struct CanvasStyle {
    /// Canvas width and height in pixels.
    pub size: (u32, u32),
    /// Canvas pixels per MNIST pixel.
    pub scale: f32,
    /// Where the digit's 28x28 frame starts on the canvas.
    pub origin: (f32, f32),
    /// Pen thickness as the MNIST intensity that the stroke edge follows: 0.1 draws thick
    /// strokes, 0.5 about MNIST's own, 0.85 thin ones.
    pub edge_level: f32,
    /// Extra thickening of the strokes, in canvas pixels (a broad brush).
    pub thicken: u32,
    /// Ink colour.
    pub ink: [u8; 3],
    /// Background colour, or `None` for a transparent canvas.
    pub background: Option<[u8; 3]>,
}

impl Default for CanvasStyle {
    fn default() -> Self {
        Self {
            size: (280, 280),
            scale: 10.0,
            origin: (0.0, 0.0),
            edge_level: 0.5,
            thicken: 0,
            ink: [0, 0, 0],
            background: None,
        }
    }
}

/// Re-draws a 28x28 MNIST digit (0 background, 255 ink) as `style` says.
pub fn redraw(digit: &[u8], style: &CanvasStyle) -> RgbaImage {
    let (width, height) = style.size;
    let mut coverage = vec![0f32; (width * height) as usize];
    for y in 0..height {
        for x in 0..width {
            let u = (x as f32 + 0.5 - style.origin.0) / style.scale - 0.5;
            let v = (y as f32 + 0.5 - style.origin.1) / style.scale - 0.5;
            let intensity = sample(digit, u, v);
            // A soft edge about one canvas pixel wide around the chosen level.
            let edge = 0.5 / style.scale.max(1.0);
            coverage[(y * width + x) as usize] =
                ((intensity - style.edge_level) / (2.0 * edge) + 0.5).clamp(0.0, 1.0);
        }
    }
    if style.thicken > 0 {
        coverage = thicken(&coverage, width as usize, height as usize, style.thicken as usize);
    }
    RgbaImage::from_fn(width, height, |x, y| {
        let c = coverage[(y * width + x) as usize];
        match style.background {
            None => Rgba([style.ink[0], style.ink[1], style.ink[2], (c * 255.0).round() as u8]),
            Some(bg) => {
                let mix = |i: usize| {
                    (f32::from(bg[i]) * (1.0 - c) + f32::from(style.ink[i]) * c).round() as u8
                };
                Rgba([mix(0), mix(1), mix(2), 255])
            }
        }
    })
}

/// Encodes a picture as PNG bytes.
pub fn png_bytes(image: &RgbaImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    // Encoding an in-memory RGBA buffer to PNG cannot fail.
    let _ = image.write_to(&mut out, image::ImageFormat::Png);
    out.into_inner()
}

/// Bilinear MNIST intensity (0..1) at a fractional pixel position, zero outside.
fn sample(digit: &[u8], u: f32, v: f32) -> f32 {
    let side = crate::FRAME_SIDE as isize;
    let at = |x: isize, y: isize| {
        if (0..side).contains(&x) && (0..side).contains(&y) {
            f32::from(digit[(y * side + x) as usize]) / 255.0
        } else {
            0.0
        }
    };
    let (x0, y0) = (u.floor(), v.floor());
    let (fx, fy) = (u - x0, v - y0);
    let (xi, yi) = (x0 as isize, y0 as isize);
    let top = at(xi, yi) * (1.0 - fx) + at(xi + 1, yi) * fx;
    let bottom = at(xi, yi + 1) * (1.0 - fx) + at(xi + 1, yi + 1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Max filter over a square of the given radius.
fn thicken(values: &[f32], width: usize, height: usize, radius: usize) -> Vec<f32> {
    let mut out = values.to_vec();
    for y in 0..height {
        for x in 0..width {
            let mut best = 0f32;
            for yy in y.saturating_sub(radius)..=(y + radius).min(height - 1) {
                for xx in x.saturating_sub(radius)..=(x + radius).min(width - 1) {
                    best = best.max(values[yy * width + xx]);
                }
            }
            out[y * width + x] = best;
        }
    }
    out
}
