//! The shared registry suite on the embedded backend.

mod suite;

use std::path::{Path, PathBuf};

use anyhow::Result;
use registry_client::{LocalRegistry, ModelVersion};
use suite::{Backend, Damage};

fn backend() -> Result<Backend> {
    let root = tempfile::tempdir()?;
    let registry = LocalRegistry::open(root.path().join("registry"))?;
    let base = registry.root().to_owned();
    let damage = Box::new(move |v: &ModelVersion, file: &str, how: Damage| {
        damage_file(&stored(&base, v, file), how)
    });
    Ok(Backend::new(Box::new(registry), damage, root))
}

fn stored(root: &Path, v: &ModelVersion, file: &str) -> PathBuf {
    root.join("models").join(&v.model).join("versions").join(&v.version).join("files").join(file)
}

/// Damages a file in place.
pub fn damage_file(path: &Path, how: Damage) -> Result<()> {
    match how {
        Damage::FlipByte => {
            let mut bytes = std::fs::read(path)?;
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x01;
            std::fs::write(path, bytes)?;
        }
        Damage::Truncate => {
            let bytes = std::fs::read(path)?;
            std::fs::write(path, &bytes[..bytes.len() / 2])?;
        }
        Damage::Remove => std::fs::remove_file(path)?,
    }
    Ok(())
}

registry_suite!(backend);
