//! Training and evaluation of the digit networks defined in `shared`, with candle on the CPU.

pub mod augment;
pub mod cli;
pub mod config;
pub mod evaluate;
pub mod fetch;
pub mod git;
pub mod output;
pub mod progress;
pub mod report;
pub mod schedule;
pub mod summary;
pub mod testing;
pub mod tracking;
pub mod train;
