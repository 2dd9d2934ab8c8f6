//! `ml-ui`: the drawing app that serves predictions of the registered digit model.
//!
//! The server is being built up; for now the binary loads a model directory and classifies
//! picture files given on the command line, which exercises the whole inference path.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use shared::model::argmax;
use shared::{DecodeLimits, Model};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let model_dir: PathBuf = args.next().context("usage: ml-ui MODEL_DIR [PICTURE...]")?.into();
    let model = Model::load(&model_dir)?;
    let mut stdout = std::io::stdout().lock();
    for path in args {
        let bytes =
            std::fs::read(&path).with_context(|| format!("reading {}", path.to_string_lossy()))?;
        let frame = shared::preprocess::preprocess(&bytes, DecodeLimits::default())?;
        let (digit, p) = argmax(&model.predict(&[frame])?[0]);
        writeln!(stdout, "{}: {digit} ({:.1} %)", path.to_string_lossy(), 100.0 * p)?;
    }
    Ok(())
}
