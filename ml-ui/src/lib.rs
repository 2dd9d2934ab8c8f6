//! The drawing app: an axum server with leptos-rendered pages and a canvas script, serving
//! batched candle predictions of the model from a directory or the registry.

pub mod api;
pub mod feedback;
pub mod inference;
pub mod metrics;
pub mod model_info;
pub mod openapi;
pub mod pages;
pub mod source;

pub use api::{AppState, Limits, app};
