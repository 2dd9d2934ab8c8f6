//! From any picture of a digit to the 28x28 frame that the networks read, the way MNIST was
//! made: find the ink, crop to it, scale its long side to 20 pixels, and put its centre of mass
//! at the centre of the frame.
//!
//! Pictures come from canvases (transparent background, dark or coloured strokes), scans and
//! photos (opaque, either polarity), in 8 or 16 bits, grey, palette or RGB(A). The ink is
//! whatever differs from the background: the alpha channel when the picture has transparency,
//! otherwise the distance from the colour of its border. Pens thinner or thicker than MNIST's
//! are brought to MNIST's stroke width before scaling, so that what a network sees does not
//! depend on the pen.

use std::io::Cursor;

use image::{DynamicImage, ImageError, ImageReader, Limits, RgbaImage};

use crate::FRAME_SIDE;
use crate::card::Normalisation;
use crate::error::{Error, Result};

/// Pixels in a frame.
pub const FRAME_PIXELS: usize = FRAME_SIDE * FRAME_SIDE;

/// Side of the box that the ink's long side is scaled to, as in MNIST.
const BOX_SIDE: f32 = 20.0;

/// Where the centre of mass goes, in pixel indices (MNIST's test digits average 14.0).
const CENTRE: f32 = 14.0;

/// Ink weaker than this fraction of full contrast counts as no ink at all.
const MIN_CONTRAST: f32 = 0.15;

/// After stretching to full contrast, values below this are noise (JPEG ringing, paper grain).
const NOISE_FLOOR: f32 = 0.08;

/// Ink at or above this (after stretching) defines strokes: their bounding box and width.
const STROKE_LEVEL: f32 = 0.5;

/// Largest side, in pixels, at which strokes are measured and adjusted: ten times the 20-pixel
/// box is fine enough for stroke widths and keeps the work small whatever the picture's size.
const WORKING_SIDE: usize = 80;

/// Stroke width range, in pixels of the 20-pixel box, that MNIST's digits mostly fall in;
/// pens outside it are brought to its nearer end.
const STROKE_WIDTH: (f32, f32) = (1.8, 3.6);

/// Limits applied while decoding, so that a small file claiming a huge picture is refused
/// before any memory is committed to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted width and height, in pixels.
    pub max_side: u32,
    /// Largest allocation the decoder may make, in bytes.
    pub max_alloc: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self { max_side: 2048, max_alloc: 64 << 20 }
    }
}

/// A 28x28 picture in MNIST's convention: intensity 0 is background, 1 is full ink.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame(Box<[f32; FRAME_PIXELS]>);

impl Frame {
    /// A frame from 784 intensities in 0..=1, row-major.
    pub fn from_intensities(values: &[f32]) -> Result<Self> {
        let array: [f32; FRAME_PIXELS] = values.try_into().map_err(|_| {
            Error::InvalidPixels(format!("expected {FRAME_PIXELS} values, got {}", values.len()))
        })?;
        if let Some(bad) = array.iter().find(|v| !(0.0..=1.0).contains(*v)) {
            return Err(Error::InvalidPixels(format!("value {bad} is outside 0..=1")));
        }
        Ok(Self(Box::new(array)))
    }

    /// A frame from MNIST bytes (0 background, 255 ink).
    pub fn from_mnist(bytes: &[u8]) -> Result<Self> {
        let values: Vec<f32> = bytes.iter().map(|&b| f32::from(b) / 255.0).collect();
        Self::from_intensities(&values)
    }

    /// The intensities, row-major.
    pub fn intensities(&self) -> &[f32; FRAME_PIXELS] {
        &self.0
    }

    /// The frame as MNIST bytes, for storing it as IDX data.
    pub fn to_mnist(&self) -> Vec<u8> {
        self.0.iter().map(|v| (v * 255.0).round() as u8).collect()
    }

    /// Appends the normalised network input of this frame to `out`.
    pub fn normalise_into(&self, normalisation: Normalisation, out: &mut Vec<f32>) {
        out.extend(self.0.iter().map(|&v| normalisation.apply(v)));
    }
}

/// A frame given directly as 784 intensities in 0..=1, refused like a picture when it holds
/// no ink.
pub fn frame_from_pixels(values: &[f32]) -> Result<Frame> {
    let frame = Frame::from_intensities(values)?;
    if frame.0.iter().all(|&v| v < MIN_CONTRAST) {
        return Err(Error::EmptyDrawing);
    }
    Ok(frame)
}

/// Decodes a picture and brings its digit into a [`Frame`].
pub fn preprocess(bytes: &[u8], limits: DecodeLimits) -> Result<Frame> {
    frame_from_image(&decode(bytes, limits)?)
}

/// Decodes PNG, JPEG, GIF, BMP or WebP bytes within `limits`.
pub fn decode(bytes: &[u8], limits: DecodeLimits) -> Result<DynamicImage> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::UndecodableImage(e.to_string()))?;
    match reader.format() {
        None => {
            return Err(Error::UndecodableImage("the bytes are not a known image format".into()));
        }
        // The JPEG decoder fills a cut-off picture with grey instead of failing.
        Some(image::ImageFormat::Jpeg) if !has_jpeg_end(bytes) => {
            return Err(Error::UndecodableImage("truncated JPEG: no end-of-image marker".into()));
        }
        Some(_) => {}
    }
    let (width, height) = reader.into_dimensions().map_err(decode_error)?;
    if width > limits.max_side || height > limits.max_side {
        return Err(Error::ImageTooLarge(format!(
            "{width}x{height} exceeds {side}x{side}",
            side = limits.max_side
        )));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::UndecodableImage(e.to_string()))?;
    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    decoder_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(decoder_limits);
    reader.decode().map_err(decode_error)
}

/// Whether JPEG bytes end with the end-of-image marker (allowing a little trailing padding).
fn has_jpeg_end(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

fn decode_error(e: ImageError) -> Error {
    match e {
        ImageError::Limits(l) => Error::ImageTooLarge(l.to_string()),
        ImageError::Unsupported(u) => Error::UnsupportedImageFormat(u.to_string()),
        other => Error::UndecodableImage(other.to_string()),
    }
}

/// Brings the digit of a decoded picture into a [`Frame`].
pub fn frame_from_image(image: &DynamicImage) -> Result<Frame> {
    let converted;
    let rgba = match image {
        DynamicImage::ImageRgba8(rgba) => rgba,
        other => {
            converted = other.to_rgba8();
            &converted
        }
    };
    let raw = RawInk::from_rgba(rgba)?;
    let bbox = raw.stroke_box().ok_or(Error::EmptyDrawing)?;
    let mut ink = raw.working_copy(bbox);
    let bbox = ink.stroke_box().ok_or(Error::EmptyDrawing)?;
    let scale = BOX_SIDE / bbox.long_side() as f32;
    ink.adjust_stroke_width(scale);
    let bbox = ink.stroke_box().ok_or(Error::EmptyDrawing)?;
    Ok(place(&ink.scaled_crop(bbox)))
}

/// Per-pixel ink of a whole picture as bytes, before any scaling: 0 is background.
struct RawInk {
    width: usize,
    height: usize,
    ink: Vec<u8>,
    /// The strongest ink anywhere.
    peak: u8,
}

impl RawInk {
    /// Measures ink against transparency or, for opaque pictures, against the border colour.
    /// A picture without ink is an error.
    fn from_rgba(rgba: &RgbaImage) -> Result<Self> {
        let (width, height) = (rgba.width() as usize, rgba.height() as usize);
        let pixels = rgba.as_raw().chunks_exact(4);
        let alpha: Vec<u8> = pixels.clone().map(|p| p[3]).collect();
        let alpha_min = alpha.iter().copied().min().unwrap_or(0);
        let alpha_max = alpha.iter().copied().max().unwrap_or(0);
        let ink = if alpha_max.saturating_sub(alpha_min) > 127 {
            alpha
        } else {
            let [r, g, b] = border_colour(rgba);
            pixels.map(|p| p[0].abs_diff(r).max(p[1].abs_diff(g)).max(p[2].abs_diff(b))).collect()
        };
        let peak = ink.iter().copied().max().unwrap_or(0);
        if f32::from(peak) / 255.0 < MIN_CONTRAST {
            return Err(Error::EmptyDrawing);
        }
        Ok(Self { width, height, ink, peak })
    }

    /// The box around all stroke pixels (ink at [`STROKE_LEVEL`] of the peak or more).
    fn stroke_box(&self) -> Option<BoundingBox> {
        let level = (STROKE_LEVEL * f32::from(self.peak)).ceil() as u8;
        let mut bbox: Option<BoundingBox> = None;
        for (y, row) in self.ink.chunks_exact(self.width.max(1)).enumerate() {
            // Most rows of a drawing are empty; a maximum is a fast way to skip them.
            if row.iter().copied().max().unwrap_or(0) < level {
                continue;
            }
            let Some(left) = row.iter().position(|&v| v >= level) else {
                continue;
            };
            let right = row.iter().rposition(|&v| v >= level).unwrap_or(left);
            let b = bbox.get_or_insert(BoundingBox { left, top: y, right, bottom: y });
            b.left = b.left.min(left);
            b.right = b.right.max(right);
            b.bottom = y;
        }
        bbox
    }

    /// The ink around `bbox`, with a margin for thickening strokes, stretched to full contrast
    /// with noise dropped, and reduced by an integer factor (averaging blocks) until its long
    /// side is at most [`WORKING_SIDE`]; then stretched again so that thin strokes survive the
    /// averaging.
    fn working_copy(&self, bbox: BoundingBox) -> InkMap {
        let stretch = 1.0 / f32::from(self.peak.max(1));
        let levels: [f32; 256] = std::array::from_fn(|v| {
            let level = v as f32 * stretch;
            if level < NOISE_FLOOR { 0.0 } else { level }
        });
        let factor = bbox.long_side().div_ceil(WORKING_SIDE).max(1);
        let margin = 8 * factor;
        let (left, top) = (bbox.left.saturating_sub(margin), bbox.top.saturating_sub(margin));
        let right = (bbox.right + margin).min(self.width - 1);
        let bottom = (bbox.bottom + margin).min(self.height - 1);
        let width = (right - left + 1).div_ceil(factor);
        let height = (bottom - top + 1).div_ceil(factor);
        let mut ink = vec![0f32; width * height];
        for y in top..=bottom {
            let out = &mut ink[(y - top) / factor * width..][..width];
            let row = &self.ink[y * self.width + left..=y * self.width + right];
            for (block, values) in out.iter_mut().zip(row.chunks(factor)) {
                *block += values.iter().map(|&v| levels[usize::from(v)]).sum::<f32>();
            }
        }
        let peak = ink.iter().copied().fold(0.0, f32::max);
        if peak > 0.0 {
            for v in &mut ink {
                *v /= peak;
            }
        }
        InkMap { width, height, ink }
    }
}

/// Per-pixel ink in 0..=1 of the working copy of a picture.
struct InkMap {
    width: usize,
    height: usize,
    ink: Vec<f32>,
}

/// An inclusive pixel rectangle.
#[derive(Debug, Clone, Copy)]
struct BoundingBox {
    left: usize,
    top: usize,
    right: usize,
    bottom: usize,
}

impl BoundingBox {
    fn width(&self) -> usize {
        self.right - self.left + 1
    }

    fn height(&self) -> usize {
        self.bottom - self.top + 1
    }

    fn long_side(&self) -> usize {
        self.width().max(self.height())
    }
}

impl InkMap {
    /// The box around all stroke pixels, if there are any.
    fn stroke_box(&self) -> Option<BoundingBox> {
        let mut bbox: Option<BoundingBox> = None;
        for (i, _) in self.ink.iter().enumerate().filter(|(_, v)| **v >= STROKE_LEVEL) {
            let (x, y) = (i % self.width, i / self.width);
            let b = bbox.get_or_insert(BoundingBox { left: x, top: y, right: x, bottom: y });
            b.left = b.left.min(x);
            b.right = b.right.max(x);
            b.top = b.top.min(y);
            b.bottom = b.bottom.max(y);
        }
        bbox
    }

    /// Estimated stroke width in pixels of this picture: twice the stroke area over its
    /// perimeter, which is exact for long strokes of constant width.
    fn stroke_width(&self) -> f32 {
        let is_ink = |x: usize, y: usize| self.ink[y * self.width + x] >= STROKE_LEVEL;
        let (mut area, mut perimeter) = (0usize, 0usize);
        for y in 0..self.height {
            for x in 0..self.width {
                if !is_ink(x, y) {
                    continue;
                }
                area += 1;
                let edges = [
                    x == 0 || !is_ink(x - 1, y),
                    x + 1 == self.width || !is_ink(x + 1, y),
                    y == 0 || !is_ink(x, y - 1),
                    y + 1 == self.height || !is_ink(x, y + 1),
                ];
                perimeter += edges.iter().filter(|&&e| e).count();
            }
        }
        if perimeter == 0 { 0.0 } else { 2.0 * area as f32 / perimeter as f32 }
    }

    /// Thickens strokes thinner than MNIST's, or thins thicker ones, given the factor that will
    /// scale this picture into the 20-pixel box.
    fn adjust_stroke_width(&mut self, scale: f32) {
        let width = self.stroke_width() * scale;
        let (low, high) = STROKE_WIDTH;
        let change = if width < low {
            low - width
        } else if width > high {
            high - width
        } else {
            return;
        };
        let radius = (change.abs() / 2.0 / scale).round() as usize;
        if radius == 0 {
            return;
        }
        let pick = if change > 0.0 { f32::max } else { f32::min };
        self.ink = separable_filter(&self.ink, self.width, self.height, radius, pick);
    }

    /// The box cut out and scaled so that its long side is 20 pixels.
    fn scaled_crop(&self, bbox: BoundingBox) -> Vec<Vec<f32>> {
        let (w, h) = (bbox.width(), bbox.height());
        let scale = BOX_SIDE / w.max(h) as f32;
        let out_w = ((w as f32 * scale).round() as usize).clamp(1, BOX_SIDE as usize);
        let out_h = ((h as f32 * scale).round() as usize).clamp(1, BOX_SIDE as usize);
        let crop: Vec<f32> = (bbox.top..=bbox.bottom)
            .flat_map(|y| {
                self.ink[y * self.width + bbox.left..=y * self.width + bbox.right].iter().copied()
            })
            .collect();
        let source =
            image::ImageBuffer::<image::Luma<f32>, Vec<f32>>::from_raw(w as u32, h as u32, crop)
                .unwrap_or_default();
        let scaled = image::imageops::resize(
            &source,
            out_w as u32,
            out_h as u32,
            image::imageops::FilterType::Triangle,
        );
        scaled.rows().map(|row| row.map(|p| p[0].clamp(0.0, 1.0)).collect()).collect()
    }
}

/// Median colour of the picture's outermost pixels: the background of an opaque picture.
fn border_colour(rgba: &RgbaImage) -> [u8; 3] {
    let (w, h) = rgba.dimensions();
    let border: Vec<&image::Rgba<u8>> = rgba
        .enumerate_pixels()
        .filter(|(x, y, _)| *x == 0 || *y == 0 || *x + 1 == w || *y + 1 == h)
        .map(|(_, _, p)| p)
        .collect();
    let mut colour = [0u8; 3];
    for (c, slot) in colour.iter_mut().enumerate() {
        let mut channel: Vec<u8> = border.iter().map(|p| p[c]).collect();
        channel.sort_unstable();
        *slot = channel.get(channel.len() / 2).copied().unwrap_or(0);
    }
    colour
}

/// A square max (dilation) or min (erosion) filter of the given radius, as two 1-D passes.
fn separable_filter(
    values: &[f32],
    width: usize,
    height: usize,
    radius: usize,
    pick: fn(f32, f32) -> f32,
) -> Vec<f32> {
    let pass = |input: &[f32], len: usize, stride: usize, lines: usize, step: usize| {
        let mut out = input.to_vec();
        for line in 0..lines {
            let base = line * step;
            for i in 0..len {
                let (lo, hi) = (i.saturating_sub(radius), (i + radius).min(len - 1));
                let v = (lo..=hi).map(|j| input[base + j * stride]).reduce(pick).unwrap_or(0.0);
                out[base + i * stride] = v;
            }
        }
        out
    };
    let rows = pass(values, width, 1, height, width);
    pass(&rows, height, width, width, 1)
}

/// Puts the scaled ink into a 28x28 frame with its centre of mass at the centre.
fn place(scaled: &[Vec<f32>]) -> Frame {
    let (h, w) = (scaled.len(), scaled.first().map_or(0, Vec::len));
    let (mut mass, mut sx, mut sy) = (0.0f32, 0.0f32, 0.0f32);
    for (y, row) in scaled.iter().enumerate() {
        for (x, &v) in row.iter().enumerate() {
            mass += v;
            sx += v * x as f32;
            sy += v * y as f32;
        }
    }
    let (cx, cy) =
        if mass > 0.0 { (sx / mass, sy / mass) } else { (w as f32 / 2.0, h as f32 / 2.0) };
    let offset = |centre: f32, len: usize| {
        let max = (FRAME_SIDE - len) as f32;
        (CENTRE - centre).round().clamp(0.0, max) as usize
    };
    let (ox, oy) = (offset(cx, w), offset(cy, h));
    let mut frame = Box::new([0f32; FRAME_PIXELS]);
    for (y, row) in scaled.iter().enumerate() {
        let start = (oy + y) * FRAME_SIDE + ox;
        frame[start..start + row.len()].copy_from_slice(row);
    }
    Frame(frame)
}
