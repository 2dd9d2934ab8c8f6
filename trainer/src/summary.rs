//! Evaluation results as text for people or JSON for scripts.

use std::fmt::Write;

use serde::Serialize;
use shared::metrics::Evaluation;

/// The JSON object `trainer evaluate --json` prints.
#[derive(Debug, Serialize)]
pub struct EvaluationReport<'a> {
    /// Fraction of test images classified correctly (0..1).
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Data set name.
    pub dataset: &'a str,
    /// The model directory.
    pub model: String,
    /// The full figures.
    #[serde(flatten)]
    pub evaluation: &'a Evaluation,
}

/// A readable report: accuracy, per-class precision and recall, the confusion matrix.
pub fn render_text(e: &Evaluation, classes: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "accuracy {:.2} % on {} test images (loss {:.4})\n",
        100.0 * e.accuracy,
        e.items,
        e.loss
    );
    let _ = writeln!(out, "class  precision    recall  support");
    for c in &e.per_class {
        let name = classes.get(c.class).map_or("?", String::as_str);
        let _ = writeln!(
            out,
            "{name:>5}  {:>7.2} %  {:>6.2} %  {:>7}",
            100.0 * c.precision,
            100.0 * c.recall,
            c.support
        );
    }
    let _ = writeln!(out, "\nconfusion matrix (rows: actual, columns: predicted)");
    let _ = write!(out, "     ");
    for name in classes {
        let _ = write!(out, "{name:>6}");
    }
    let _ = writeln!(out);
    for (name, row) in classes.iter().zip(&e.confusion) {
        let _ = write!(out, "{name:>5}");
        for count in row {
            let _ = write!(out, "{count:>6}");
        }
        let _ = writeln!(out);
    }
    out
}
