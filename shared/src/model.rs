//! A trained model on disk (`model.json` + `model.safetensors`) loaded for inference.

use std::path::Path;

use candle_core::{Device, Tensor};

use crate::card::{CARD_FILE, ModelCard, Normalisation, WEIGHTS_FILE};
use crate::error::{Error, Result};
use crate::network::DigitNet;
use crate::preprocess::Frame;
use crate::{CLASSES, FRAME_SIDE};

/// A model directory's card and network, ready to classify frames.
#[derive(Debug, Clone)]
pub struct Model {
    /// Everything known about the model.
    pub card: ModelCard,
    /// The network with its weights.
    pub net: DigitNet,
}

impl Model {
    /// Loads `model.json` and `model.safetensors` from `dir`, checking that the weights match
    /// the architecture the card names.
    pub fn load(dir: &Path) -> Result<Self> {
        let card = ModelCard::read(&dir.join(CARD_FILE))?;
        let weights_path = dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&weights_path).map_err(|e| Error::io(&weights_path, e))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| Error::InvalidModel(format!("{}: {e}", weights_path.display())))?;
        let net = DigitNet::from_tensors(card.architecture.name, &tensors)
            .map_err(|e| Error::InvalidModel(format!("{}: {e}", weights_path.display())))?;
        Ok(Self { card, net })
    }

    /// Class probabilities for each frame, in order.
    pub fn predict(&self, frames: &[Frame]) -> Result<Vec<[f32; CLASSES]>> {
        if frames.is_empty() {
            return Ok(Vec::new());
        }
        let input = frames_to_tensor(frames, self.card.input.normalisation)?;
        let probabilities = self.net.probabilities(&input)?.to_vec2::<f32>()?;
        Ok(probabilities.into_iter().map(|row| row.try_into().unwrap_or([0.0; CLASSES])).collect())
    }
}

/// A normalised `(batch, 28, 28, 1)` input tensor from frames.
pub fn frames_to_tensor(frames: &[Frame], normalisation: Normalisation) -> Result<Tensor> {
    let mut data = Vec::with_capacity(frames.len() * FRAME_SIDE * FRAME_SIDE);
    for frame in frames {
        frame.normalise_into(normalisation, &mut data);
    }
    Ok(Tensor::from_vec(data, (frames.len(), FRAME_SIDE, FRAME_SIDE, 1), &Device::Cpu)?)
}

/// The index and value of the largest probability.
pub fn argmax(probabilities: &[f32]) -> (usize, f32) {
    probabilities
        .iter()
        .copied()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, p)| if p > best.1 { (i, p) } else { best })
}
