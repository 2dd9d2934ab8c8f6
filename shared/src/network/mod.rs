//! The digit networks: their architectures, parameter tables and forward pass.
//!
//! Both networks read a batch of normalised 28x28 frames in NHWC layout,
//! `(batch, 28, 28, 1)`, and return one logit per class. They are two 5x5 convolutions with
//! ReLU and 2x2 max pooling, then a hidden dense layer: the shape of LeNet, which costs a
//! fraction of the multiply-adds of the usual 3x3 stacks at full resolution and reaches the
//! same accuracy on digits once augmentation and a learning-rate schedule do their part.

pub mod ops;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use candle_core::{D, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::{CLASSES, FRAME_SIDE};

/// The networks this crate defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    /// The default: 99 %+ on MNIST at about 1.7 million multiply-adds per image.
    Cnn,
    /// A quarter of the default's cost, for quick experiments and tests.
    Small,
}

/// The widths that distinguish the architectures.
#[derive(Debug, Clone, Copy)]
struct Widths {
    conv1: usize,
    conv2: usize,
    hidden: usize,
}

/// Side of the square convolution kernels.
const KERNEL: usize = 5;

/// One named parameter tensor of a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// Name in the weights file.
    pub name: &'static str,
    /// Tensor shape.
    pub shape: Vec<usize>,
    /// Inputs feeding each output unit (for initialisation); zero for biases.
    pub fan_in: usize,
}

impl Architecture {
    /// Every architecture, default first.
    pub const ALL: [Architecture; 2] = [Architecture::Cnn, Architecture::Small];

    /// Name used in configuration files and model cards.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cnn => "cnn",
            Self::Small => "small",
        }
    }

    /// Version of the layer layout; weights saved under another version do not load.
    pub fn version(self) -> u32 {
        1
    }

    fn widths(self) -> Widths {
        match self {
            Self::Cnn => Widths { conv1: 16, conv2: 32, hidden: 128 },
            Self::Small => Widths { conv1: 8, conv2: 16, hidden: 64 },
        }
    }

    /// Spatial side of the second pooling's output: 28 -(pad 2, 5x5)-> 28 -> 14 -(5x5)-> 10 -> 5.
    const fn final_side() -> usize {
        (FRAME_SIDE / 2 - (KERNEL - 1)) / 2
    }

    /// The parameter tensors, in a fixed order.
    pub fn parameters(self) -> Vec<ParamSpec> {
        let w = self.widths();
        let flat = Self::final_side() * Self::final_side() * w.conv2;
        let layer = |weight, bias, outputs: usize, inputs: usize| {
            [
                ParamSpec { name: weight, shape: vec![outputs, inputs], fan_in: inputs },
                ParamSpec { name: bias, shape: vec![outputs], fan_in: 0 },
            ]
        };
        [
            layer("conv1.weight", "conv1.bias", w.conv1, KERNEL * KERNEL),
            layer("conv2.weight", "conv2.bias", w.conv2, KERNEL * KERNEL * w.conv1),
            layer("fc1.weight", "fc1.bias", w.hidden, flat),
            layer("fc2.weight", "fc2.bias", CLASSES, w.hidden),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Number of trainable values.
    pub fn parameter_count(self) -> usize {
        self.parameters().iter().map(|p| p.shape.iter().product::<usize>()).sum()
    }

    /// Multiply-adds of one forward pass for one image.
    pub fn multiply_adds(self) -> usize {
        let w = self.widths();
        let conv2_side = FRAME_SIDE / 2 - KERNEL + 1;
        let flat = Self::final_side() * Self::final_side() * w.conv2;
        FRAME_SIDE * FRAME_SIDE * w.conv1 * KERNEL * KERNEL
            + conv2_side * conv2_side * w.conv2 * KERNEL * KERNEL * w.conv1
            + flat * w.hidden
            + w.hidden * CLASSES
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Architecture {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| {
            let known: Vec<_> = Self::ALL.iter().map(|a| a.name()).collect();
            format!("unknown architecture {s:?} (known: {})", known.join(", "))
        })
    }
}

/// A dense layer `y = x W^T + b`, also used on convolution patches.
#[derive(Debug, Clone)]
struct Dense {
    weight: Tensor,
    bias: Tensor,
}

impl Dense {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)
    }
}

/// A network with its weights, ready to run forward (and backward, when its weights are
/// training variables).
#[derive(Debug, Clone)]
pub struct DigitNet {
    architecture: Architecture,
    conv1: Dense,
    conv2: Dense,
    fc1: Dense,
    fc2: Dense,
}

impl DigitNet {
    /// Builds the network from named tensors, checking that every parameter is present with
    /// its exact shape and that nothing else is.
    pub fn from_tensors(
        architecture: Architecture,
        tensors: &HashMap<String, Tensor>,
    ) -> Result<Self> {
        let specs = architecture.parameters();
        if let Some(extra) = tensors.keys().find(|k| !specs.iter().any(|s| s.name == k.as_str())) {
            return Err(Error::InvalidModel(format!(
                "unexpected tensor {extra:?} for architecture {architecture}"
            )));
        }
        let get = |index: usize| -> Result<Tensor> {
            let spec = &specs[index];
            let tensor = tensors
                .get(spec.name)
                .ok_or_else(|| Error::InvalidModel(format!("missing tensor {:?}", spec.name)))?;
            if tensor.dims() != spec.shape.as_slice() {
                return Err(Error::InvalidModel(format!(
                    "tensor {:?} has shape {:?}, expected {:?}",
                    spec.name,
                    tensor.dims(),
                    spec.shape
                )));
            }
            if tensor.dtype() != candle_core::DType::F32 {
                return Err(Error::InvalidModel(format!(
                    "tensor {:?} is {:?}, expected f32",
                    spec.name,
                    tensor.dtype()
                )));
            }
            Ok(tensor.clone())
        };
        let dense =
            |i: usize| -> Result<Dense> { Ok(Dense { weight: get(i)?, bias: get(i + 1)? }) };
        Ok(Self {
            architecture,
            conv1: dense(0)?,
            conv2: dense(2)?,
            fc1: dense(4)?,
            fc2: dense(6)?,
        })
    }

    /// The architecture of this network.
    pub fn architecture(&self) -> Architecture {
        self.architecture
    }

    /// The hidden representation `(batch, hidden)` of normalised frames `(batch, 28, 28, 1)`,
    /// after the last ReLU; training applies dropout to it before [`DigitNet::head`].
    pub fn features(&self, frames: &Tensor) -> Result<Tensor> {
        let batch = frames.dim(0)?;
        let x = conv_relu_pool(frames, &self.conv1, KERNEL / 2)?;
        let x = conv_relu_pool(&x, &self.conv2, 0)?;
        let x = x.reshape((batch, ()))?;
        Ok(self.fc1.forward(&x)?.relu()?)
    }

    /// Class logits `(batch, 10)` from [`DigitNet::features`].
    pub fn head(&self, features: &Tensor) -> Result<Tensor> {
        Ok(self.fc2.forward(features)?)
    }

    /// Class logits `(batch, 10)` of normalised frames `(batch, 28, 28, 1)`.
    pub fn forward(&self, frames: &Tensor) -> Result<Tensor> {
        self.head(&self.features(frames)?)
    }

    /// Class probabilities `(batch, 10)` of normalised frames.
    ///
    /// The pass runs on one of rayon's threads: the parallel loops of the kernels then start
    /// inside the pool instead of each handing its work across threads and waiting, which is
    /// most of the time of a single frame.
    pub fn probabilities(&self, frames: &Tensor) -> Result<Tensor> {
        rayon::scope(|_| Ok(candle_nn::ops::softmax(&self.forward(frames)?, D::Minus1)?))
    }
}

/// Convolution, 2x2 max pooling, ReLU; NHWC in and out. Pooling before the ReLU gives the same
/// result on a quarter of the values.
fn conv_relu_pool(x: &Tensor, layer: &Dense, padding: usize) -> candle_core::Result<Tensor> {
    ops::max_pool_2x2(&ops::conv2d(x, &layer.weight, &layer.bias, KERNEL, padding)?)?.relu()
}
