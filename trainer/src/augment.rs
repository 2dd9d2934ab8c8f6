//! Random affine distortions of training images: rotation, scaling and shift, sampled
//! bilinearly around the frame's centre.

use rand::{Rng, RngExt};
use shared::card::Augmentation;

/// One random affine distortion: a rotation and a scale about the frame's centre, then a shift.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Distortion {
    /// Rotation, in radians.
    angle: f32,
    /// Scale factor.
    scale: f32,
    /// Shift along x and y, in pixels.
    shift: (f32, f32),
}

impl Distortion {
    /// Draws a distortion within `settings`' ranges; `None` when augmentation is disabled.
    /// Sampling is separate from [`Distortion::apply`] so that a batch can draw its
    /// distortions in order from one seeded stream and apply them in parallel.
    pub fn sample(settings: &Augmentation, rng: &mut impl Rng) -> Option<Self> {
        if !settings.enabled {
            return None;
        }
        let mut symmetric = |limit: f32| {
            if limit > 0.0 { rng.random_range(-limit..=limit) } else { 0.0 }
        };
        let angle = symmetric(settings.max_rotation_degrees).to_radians();
        let scale = 1.0 + symmetric(settings.max_scale);
        let shift = (symmetric(settings.max_shift_pixels), symmetric(settings.max_shift_pixels));
        Some(Self { angle, scale, shift })
    }

    /// Writes the distorted `image` (`side x side` bytes) into `out` as intensities in 0..=1.
    pub fn apply(&self, image: &[u8], side: usize, out: &mut [f32]) {
        // Map each output pixel back to the source: undo the shift, the rotation and the scale.
        let (sin, cos) = self.angle.sin_cos();
        let centre = (side as f32 - 1.0) / 2.0;
        for y in 0..side {
            for x in 0..side {
                let dx = x as f32 - centre - self.shift.0;
                let dy = y as f32 - centre - self.shift.1;
                let sx = (cos * dx + sin * dy) / self.scale + centre;
                let sy = (-sin * dx + cos * dy) / self.scale + centre;
                out[y * side + x] = bilinear(image, side, sx, sy);
            }
        }
    }
}

/// Writes `image` (`side x side` bytes), distorted by `distortion` if there is one, into `out`
/// as intensities in 0..=1.
pub fn render(image: &[u8], side: usize, distortion: Option<&Distortion>, out: &mut [f32]) {
    match distortion {
        Some(d) => d.apply(image, side, out),
        None => {
            for (o, &p) in out.iter_mut().zip(image) {
                *o = f32::from(p) / 255.0;
            }
        }
    }
}

/// The intensity at a fractional position, zero outside the image.
fn bilinear(image: &[u8], side: usize, x: f32, y: f32) -> f32 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at = |xi: f32, yi: f32| -> f32 {
        if xi < 0.0 || yi < 0.0 || xi >= side as f32 || yi >= side as f32 {
            return 0.0;
        }
        f32::from(image[yi as usize * side + xi as usize])
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    (top * (1.0 - fy) + bottom * fy) / 255.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn distort(
        image: &[u8],
        side: usize,
        settings: &Augmentation,
        rng: &mut impl Rng,
        out: &mut [f32],
    ) {
        render(image, side, Distortion::sample(settings, rng).as_ref(), out);
    }

    #[test]
    fn disabled_augmentation_copies_exactly() {
        let image: Vec<u8> = (0..784).map(|i| (i % 256) as u8).collect();
        let settings = Augmentation { enabled: false, ..Augmentation::default() };
        let mut out = vec![0.0; 784];
        distort(&image, 28, &settings, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1), &mut out);
        assert!(out.iter().zip(&image).all(|(o, &p)| *o == f32::from(p) / 255.0));
    }

    #[test]
    fn zero_ranges_are_the_identity() {
        let image: Vec<u8> = (0..784).map(|i| (i * 7 % 256) as u8).collect();
        let settings = Augmentation {
            enabled: true,
            max_rotation_degrees: 0.0,
            max_scale: 0.0,
            max_shift_pixels: 0.0,
        };
        let mut out = vec![0.0; 784];
        distort(&image, 28, &settings, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1), &mut out);
        assert!(out.iter().zip(&image).all(|(o, &p)| (*o - f32::from(p) / 255.0).abs() < 1e-6));
    }

    #[test]
    fn distortion_keeps_most_of_the_ink() {
        let mut image = vec![0u8; 784];
        for y in 8..20 {
            for x in 10..18 {
                image[y * 28 + x] = 255;
            }
        }
        let mut out = vec![0.0; 784];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..50 {
            distort(&image, 28, &Augmentation::default(), &mut rng, &mut out);
            let ink: f32 = out.iter().sum();
            assert!((70.0..130.0).contains(&ink), "ink {ink} strays too far from 96");
        }
    }
}
