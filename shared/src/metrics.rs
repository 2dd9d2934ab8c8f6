//! Classification figures: accuracy, per-class precision and recall, and the confusion matrix.

use serde::{Deserialize, Serialize};

use crate::CLASSES;

/// Precision and recall of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// The class index.
    pub class: usize,
    /// Of the items predicted as this class, the fraction that are (1 when none is predicted).
    pub precision: f64,
    /// Of the items of this class, the fraction predicted as such (the per-class accuracy).
    pub recall: f64,
    /// Number of items of this class.
    pub support: u64,
}

/// The result of classifying a labelled set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Fraction of items classified correctly (0..1).
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Number of items.
    pub items: u64,
    /// Figures per class.
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[actual][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
}

/// Accumulates predictions, then summarises them as an [`Evaluation`].
#[derive(Debug, Clone)]
pub struct ConfusionMatrix {
    counts: [[u64; CLASSES]; CLASSES],
    loss_sum: f64,
}

impl Default for ConfusionMatrix {
    fn default() -> Self {
        Self { counts: [[0; CLASSES]; CLASSES], loss_sum: 0.0 }
    }
}

impl ConfusionMatrix {
    /// Records one prediction; labels and predictions at or above [`CLASSES`] are ignored.
    pub fn record(&mut self, actual: usize, predicted: usize) {
        if let Some(row) = self.counts.get_mut(actual)
            && let Some(cell) = row.get_mut(predicted)
        {
            *cell += 1;
        }
    }

    /// Adds a batch's summed loss.
    pub fn add_loss(&mut self, summed_loss: f64) {
        self.loss_sum += summed_loss;
    }

    /// The figures so far.
    pub fn evaluation(&self) -> Evaluation {
        let items: u64 = self.counts.iter().flatten().sum();
        let correct: u64 = (0..CLASSES).map(|c| self.counts[c][c]).sum();
        let ratio = |num: u64, den: u64| {
            if den == 0 { 1.0 } else { num as f64 / den as f64 }
        };
        let per_class = (0..CLASSES)
            .map(|c| {
                let support: u64 = self.counts[c].iter().sum();
                let predicted: u64 = self.counts.iter().map(|row| row[c]).sum();
                ClassMetrics {
                    class: c,
                    precision: ratio(self.counts[c][c], predicted),
                    recall: ratio(self.counts[c][c], support),
                    support,
                }
            })
            .collect();
        Evaluation {
            accuracy: if items == 0 { 0.0 } else { correct as f64 / items as f64 },
            loss: if items == 0 { 0.0 } else { self.loss_sum / items as f64 },
            items,
            per_class,
            confusion: self.counts.iter().map(|row| row.to_vec()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_follow_from_counts() {
        let mut m = ConfusionMatrix::default();
        for (actual, predicted) in [(0, 0), (0, 0), (0, 1), (1, 1), (2, 1)] {
            m.record(actual, predicted);
        }
        m.add_loss(5.0);
        let e = m.evaluation();
        assert_eq!(e.items, 5);
        assert!((e.accuracy - 0.6).abs() < 1e-12);
        assert!((e.loss - 1.0).abs() < 1e-12);
        assert!((e.per_class[0].recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((e.per_class[1].precision - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(e.per_class[2].recall, 0.0);
        assert_eq!(e.per_class[3].support, 0);
        assert_eq!(e.confusion[0][1], 1);
    }
}
