//! Classifying a labelled set with a network: accuracy, loss, per-class figures, confusion.

use candle_core::{D, Device, Tensor};
use shared::DigitNet;
use shared::card::Normalisation;
use shared::idx::LabelledImages;
use shared::metrics::{ConfusionMatrix, Evaluation};

/// Images per forward pass during evaluation.
const EVAL_BATCH: usize = 500;

/// Classifies every image of `data` and summarises the result.
pub fn evaluate(
    net: &DigitNet,
    data: &LabelledImages,
    normalisation: Normalisation,
) -> anyhow::Result<Evaluation> {
    let mut matrix = ConfusionMatrix::default();
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(EVAL_BATCH) {
        let input = batch_tensor(data, chunk, normalisation)?;
        let labels =
            Tensor::from_iter(chunk.iter().map(|&i| u32::from(data.labels[i])), &Device::Cpu)?;
        let logits = net.forward(&input)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &labels)?.to_scalar::<f32>()?;
        matrix.add_loss(f64::from(loss) * chunk.len() as f64);
        let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        for (&i, &p) in chunk.iter().zip(&predicted) {
            matrix.record(usize::from(data.labels[i]), p as usize);
        }
    }
    Ok(matrix.evaluation())
}

/// A normalised `(n, rows, cols, 1)` tensor of the chosen images, undistorted.
pub fn batch_tensor(
    data: &LabelledImages,
    indices: &[usize],
    normalisation: Normalisation,
) -> anyhow::Result<Tensor> {
    let mut values = Vec::with_capacity(indices.len() * data.rows * data.cols);
    for &i in indices {
        values.extend(data.image(i).iter().map(|&p| normalisation.apply(f32::from(p) / 255.0)));
    }
    Ok(Tensor::from_vec(values, (indices.len(), data.rows, data.cols, 1), &Device::Cpu)?)
}
