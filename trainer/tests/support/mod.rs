//! Helpers shared by the trainer's tests, from `trainer::testing`.

#![allow(unused_imports)]

pub use trainer::testing::{
    default_model, default_settings, mnist_dir, quick_settings, train_into,
};
