//! The one definition, shared by the trainer and the server, of everything a digit model is:
//! the networks ([`network`]), the preprocessing of pictures into 28x28 frames
//! ([`preprocess`]), the IDX data they learn from ([`idx`], [`dataset`]), the figures that judge
//! them ([`metrics`]) and the model card that travels with their weights ([`card`]).

pub mod canvas;
pub mod card;
pub mod dataset;
pub mod error;
pub mod fsutil;
pub mod idx;
pub mod metrics;
pub mod model;
pub mod network;
pub mod preprocess;
pub mod runtime;

pub use card::{ModelCard, Normalisation, TrainingSettings};
pub use error::{Error, Result};
pub use model::Model;
pub use network::{Architecture, DigitNet};
pub use preprocess::{DecodeLimits, Frame};

/// Number of classes (digits 0 to 9, or the ten kinds of Fashion-MNIST).
pub const CLASSES: usize = 10;

/// Side of the square frames the networks read.
pub const FRAME_SIDE: usize = 28;
