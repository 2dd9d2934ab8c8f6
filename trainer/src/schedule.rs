//! Learning-rate schedules, as a pure function of the step.

use shared::card::Schedule;

/// The learning rate at `step` (0-based) of `total` steps.
pub fn learning_rate(
    schedule: Schedule,
    peak: f64,
    warmup_fraction: f64,
    step: usize,
    total: usize,
) -> f64 {
    let total = total.max(1) as f64;
    let progress = (step as f64 / total).clamp(0.0, 1.0);
    let warmup = warmup_fraction.clamp(0.0, 0.99);
    let cosine = |from: f64, to: f64, t: f64| {
        to + (from - to) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    };
    match schedule {
        Schedule::Constant => peak,
        Schedule::Cosine if progress < warmup => peak * (step as f64 + 1.0) / (warmup * total),
        Schedule::Cosine => cosine(peak, peak * 0.01, (progress - warmup) / (1.0 - warmup)),
        // One-cycle: from peak/25 up to the peak, then down to peak/25e4.
        Schedule::OneCycle if progress < warmup => {
            cosine(peak, peak / 25.0, 1.0 - progress / warmup)
        }
        Schedule::OneCycle => cosine(peak, peak / 25e4, (progress - warmup) / (1.0 - warmup)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cycle_rises_to_the_peak_then_falls_far_below_the_start() {
        let lr = |step| learning_rate(Schedule::OneCycle, 1.0, 0.25, step, 100);
        assert!((lr(0) - 0.04).abs() < 1e-9);
        assert!((lr(25) - 1.0).abs() < 1e-9);
        assert!(lr(10) < lr(20));
        assert!(lr(60) > lr(90));
        assert!(lr(99) < 1e-3);
    }

    #[test]
    fn cosine_warms_up_linearly_and_ends_at_one_percent() {
        let lr = |step| learning_rate(Schedule::Cosine, 2.0, 0.1, step, 100);
        assert!((lr(4) - 1.0).abs() < 1e-9);
        assert!((lr(10) - 2.0).abs() < 1e-9);
        assert!((lr(100) - 0.02).abs() < 1e-9);
    }

    #[test]
    fn constant_is_constant() {
        assert_eq!(learning_rate(Schedule::Constant, 0.5, 0.3, 77, 100), 0.5);
    }
}
