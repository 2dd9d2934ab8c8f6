//! Preprocessing of real MNIST digits re-drawn in the many ways pictures arrive, and of
//! pictures that must be refused.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Cursor;

use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgb, RgbImage};
use shared::Error;
use shared::canvas::{CanvasStyle, png_bytes, redraw};
use shared::preprocess::{DecodeLimits, Frame, preprocess};

fn digits(count: usize) -> Vec<(Vec<u8>, u8)> {
    let images = common::mnist_bytes("t10k-images-idx3-ubyte");
    let labels = common::mnist_bytes("t10k-labels-idx1-ubyte");
    (0..count).map(|i| (images[16 + i * 784..16 + (i + 1) * 784].to_vec(), labels[8 + i])).collect()
}

/// Cosine similarity of two frames' intensities.
fn similarity(a: &Frame, b: &Frame) -> f32 {
    let (a, b) = (a.intensities(), b.intensities());
    let dot: f32 = a.iter().zip(b.iter()).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32; 784]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

fn centre_of_mass(frame: &Frame) -> (f32, f32) {
    let v = frame.intensities();
    let mass: f32 = v.iter().sum();
    let sx: f32 = v.iter().enumerate().map(|(i, p)| p * (i % 28) as f32).sum();
    let sy: f32 = v.iter().enumerate().map(|(i, p)| p * (i / 28) as f32).sum();
    (sx / mass, sy / mass)
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn frame(bytes: &[u8]) -> Frame {
    preprocess(bytes, DecodeLimits::default()).unwrap()
}

#[test]
fn an_mnist_digit_survives_the_round_trip() {
    for (digit, _) in digits(20) {
        let original = Frame::from_mnist(&digit).unwrap();
        let grey = ImageBuffer::<Luma<u8>, _>::from_raw(28, 28, digit.clone()).unwrap();
        let processed = frame(&encode(&DynamicImage::ImageLuma8(grey), ImageFormat::Png));
        assert!(
            similarity(&original, &processed) > 0.9,
            "similarity {}",
            similarity(&original, &processed)
        );
    }
}

#[test]
fn canvases_of_every_kind_give_centred_frames_like_the_original() {
    let styles = [
        (
            "transparent, black pen",
            CanvasStyle { size: (400, 300), origin: (150.0, 10.0), ..CanvasStyle::default() },
        ),
        (
            "opaque, inverted polarity",
            CanvasStyle {
                background: Some([0, 0, 0]),
                ink: [255, 255, 255],
                origin: (-20.0, 30.0),
                ..CanvasStyle::default()
            },
        ),
        (
            "thick red pen on white",
            CanvasStyle {
                edge_level: 0.1,
                thicken: 6,
                ink: [200, 0, 0],
                background: Some([255, 255, 255]),
                ..CanvasStyle::default()
            },
        ),
        (
            "thin blue pen, transparent",
            CanvasStyle {
                edge_level: 0.85,
                ink: [0, 0, 255],
                scale: 16.0,
                size: (500, 500),
                ..CanvasStyle::default()
            },
        ),
        (
            "yellow on white",
            CanvasStyle {
                ink: [255, 220, 0],
                background: Some([255, 255, 255]),
                ..CanvasStyle::default()
            },
        ),
    ];
    for (name, style) in styles {
        for (digit, _) in digits(10) {
            let original = Frame::from_mnist(&digit).unwrap();
            let processed = frame(&png_bytes(&redraw(&digit, &style)));
            let s = similarity(&original, &processed);
            assert!(s > 0.6, "{name}: similarity {s}");
            let (cx, cy) = centre_of_mass(&processed);
            assert!(
                (cx - 14.0).abs() <= 0.75 && (cy - 14.0).abs() <= 0.75,
                "{name}: centre ({cx}, {cy})"
            );
        }
    }
}

#[test]
fn the_long_side_of_the_ink_becomes_twenty_pixels() {
    let (digit, _) = &digits(1)[0];
    let processed = frame(&png_bytes(&redraw(
        digit,
        &CanvasStyle { size: (600, 400), scale: 12.0, ..Default::default() },
    )));
    let v = processed.intensities();
    let rows: Vec<usize> = (0..28).filter(|y| (0..28).any(|x| v[y * 28 + x] > 0.3)).collect();
    let cols: Vec<usize> = (0..28).filter(|x| (0..28).any(|y| v[y * 28 + x] > 0.3)).collect();
    let long = (rows.last().unwrap() - rows[0] + 1).max(cols.last().unwrap() - cols[0] + 1);
    assert!((19..=21).contains(&long), "long side {long}");
}

#[test]
fn sixteen_bit_palette_and_jpeg_pictures_decode() {
    let (digit, _) = &digits(1)[0];
    let original = Frame::from_mnist(digit).unwrap();
    let big =
        redraw(digit, &CanvasStyle { background: Some([255, 255, 255]), ..Default::default() });
    let rgb: RgbImage = DynamicImage::ImageRgba8(big.clone()).to_rgb8();

    let grey16 = DynamicImage::ImageRgba8(big.clone()).to_luma16();
    let jpeg = encode(&DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Jpeg);
    let gif = encode(&DynamicImage::ImageRgba8(big), ImageFormat::Gif);
    let bmp = encode(&DynamicImage::ImageRgb8(rgb), ImageFormat::Bmp);
    for (name, bytes) in [
        ("16-bit grey PNG", encode(&DynamicImage::ImageLuma16(grey16), ImageFormat::Png)),
        ("JPEG", jpeg),
        ("palette GIF", gif),
        ("BMP", bmp),
    ] {
        let s = similarity(&original, &frame(&bytes));
        assert!(s > 0.8, "{name}: similarity {s}");
    }
}

#[test]
fn pictures_without_ink_are_reported_as_such() {
    let blank_white = RgbImage::from_pixel(200, 200, Rgb([255, 255, 255]));
    let faint_noise =
        RgbImage::from_fn(200, 200, |x, y| Rgb([250 + ((x * 7 + y * 3) % 5) as u8; 3]));
    let transparent = image::RgbaImage::new(300, 300);
    for (name, image) in [
        ("white", DynamicImage::ImageRgb8(blank_white)),
        ("noise", DynamicImage::ImageRgb8(faint_noise)),
        ("transparent", DynamicImage::ImageRgba8(transparent)),
    ] {
        for format in [ImageFormat::Png, ImageFormat::Jpeg] {
            if format == ImageFormat::Jpeg && name == "transparent" {
                continue;
            }
            let result = preprocess(&encode(&image, format), DecodeLimits::default());
            assert!(matches!(result, Err(Error::EmptyDrawing)), "{name} {format:?}: {result:?}");
        }
    }
}

#[test]
fn bad_bytes_get_the_right_error() {
    let limits = DecodeLimits::default();
    assert!(matches!(preprocess(b"hello, world", limits), Err(Error::UndecodableImage(_))));
    assert!(matches!(preprocess(b"", limits), Err(Error::UndecodableImage(_))));

    let (digit, _) = &digits(1)[0];
    let png = png_bytes(&redraw(digit, &CanvasStyle::default()));
    let cut = preprocess(&png[..png.len() / 2], limits);
    assert!(matches!(cut, Err(Error::UndecodableImage(_))), "{cut:?}");

    let mut corrupt = png;
    for b in corrupt.iter_mut().skip(60).step_by(7) {
        *b ^= 0x5a;
    }
    assert!(preprocess(&corrupt, limits).is_err());
}

#[test]
fn a_small_file_claiming_a_huge_picture_is_refused_before_decoding() {
    // A valid PNG header for 60000x60000 pixels followed by nothing: a few dozen bytes.
    let tiny = RgbImage::new(1, 1);
    let mut png = encode(&DynamicImage::ImageRgb8(tiny), ImageFormat::Png);
    png[16..20].copy_from_slice(&60_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&60_000u32.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&png[12..29]);
    png[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    let result = preprocess(&png, DecodeLimits::default());
    assert!(matches!(result, Err(Error::ImageTooLarge(_))), "{result:?}");

    let limits = DecodeLimits { max_side: 100, ..DecodeLimits::default() };
    let (digit, _) = &digits(1)[0];
    let result = preprocess(&png_bytes(&redraw(digit, &CanvasStyle::default())), limits);
    assert!(matches!(result, Err(Error::ImageTooLarge(_))), "{result:?}");
}

#[test]
fn direct_pixels_are_validated() {
    assert!(Frame::from_intensities(&[0.5; 784]).is_ok());
    assert!(Frame::from_intensities(&[0.5; 783]).is_err());
    let mut values = [0.0f32; 784];
    values[5] = f32::NAN;
    assert!(Frame::from_intensities(&values).is_err());
    values[5] = 1.5;
    assert!(Frame::from_intensities(&values).is_err());
    assert!(matches!(
        shared::preprocess::frame_from_pixels(&[0.05; 784]),
        Err(Error::EmptyDrawing)
    ));
    assert!(shared::preprocess::frame_from_pixels(&[0.5; 784]).is_ok());
}

#[test]
fn regression_a_large_sparse_picture_is_measured_at_working_resolution() {
    // Two dots in the corners of a 2048x2048 picture once made the stroke filter run with a
    // radius of about 90 pixels over four million pixels: seconds of CPU per request.
    let mut image = image::GrayImage::from_pixel(2048, 2048, Luma([255]));
    image.put_pixel(0, 0, Luma([0]));
    image.put_pixel(2047, 2047, Luma([0]));
    let processed = frame(&encode(&DynamicImage::ImageLuma8(image), ImageFormat::Png));
    assert!(processed.intensities().iter().any(|&v| v > 0.5));
}

#[test]
fn regression_a_truncated_jpeg_is_refused_not_guessed() {
    let (digit, _) = &digits(1)[0];
    let big =
        redraw(digit, &CanvasStyle { background: Some([255, 255, 255]), ..Default::default() });
    let jpeg = encode(
        &DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(big).to_rgb8()),
        ImageFormat::Jpeg,
    );
    assert!(preprocess(&jpeg, DecodeLimits::default()).is_ok());
    let cut = preprocess(&jpeg[..jpeg.len() / 2], DecodeLimits::default());
    assert!(matches!(cut, Err(Error::UndecodableImage(_))), "{cut:?}");
}
