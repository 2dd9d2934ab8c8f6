//! A model directory that appears complete or not at all: files are written into a hidden
//! staging directory next to the destination, which is renamed into place at the end. If the
//! process fails before that, the staging directory is removed and the destination untouched.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// A staging directory bound for `destination`.
#[derive(Debug)]
pub struct StagedDir {
    staging: tempfile::TempDir,
    destination: PathBuf,
    replace: bool,
}

impl StagedDir {
    /// Prepares to write `destination`. Unless `replace` is set, a destination that exists and
    /// is not empty is refused now, before any work is done.
    pub fn new(destination: &Path, replace: bool) -> anyhow::Result<Self> {
        if !replace && is_occupied(destination)? {
            bail!(
                "{} already exists and is not empty (pass --force to replace it)",
                destination.display()
            );
        }
        let name = destination
            .file_name()
            .with_context(|| format!("{} does not name a directory", destination.display()))?;
        let parent = match destination.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        let staging = tempfile::Builder::new()
            .prefix(&format!(".{}.partial-", name.to_string_lossy()))
            .tempdir_in(&parent)
            .with_context(|| format!("creating a staging directory in {}", parent.display()))?;
        Ok(Self { staging, destination: destination.to_owned(), replace })
    }

    /// Where to write the files.
    pub fn path(&self) -> &Path {
        self.staging.path()
    }

    /// Moves the staged files into place and returns the destination.
    pub fn commit(self) -> anyhow::Result<PathBuf> {
        let Self { staging, destination, replace } = self;
        let staged = staging.keep();
        let result = move_into_place(&staged, &destination, replace);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&staged);
        }
        result.map(|()| destination)
    }
}

fn move_into_place(staged: &Path, dest: &Path, replace: bool) -> anyhow::Result<()> {
    if !is_occupied(dest)? {
        if dest.exists() {
            std::fs::remove_dir(dest)
                .with_context(|| format!("replacing empty {}", dest.display()))?;
        }
        return std::fs::rename(staged, dest)
            .with_context(|| format!("moving output to {}", dest.display()));
    }
    if !replace {
        bail!("{} appeared while training; the new model was not written", dest.display());
    }
    let old = staged.with_extension("old");
    std::fs::rename(dest, &old).with_context(|| format!("moving aside {}", dest.display()))?;
    std::fs::rename(staged, dest)
        .with_context(|| format!("moving output to {}", dest.display()))?;
    let removed =
        if old.is_dir() { std::fs::remove_dir_all(&old) } else { std::fs::remove_file(&old) };
    removed.with_context(|| format!("removing the previous {}", dest.display()))
}

/// Whether `path` exists as anything but an empty directory.
fn is_occupied(path: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(path) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(_) => Ok(path.exists()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_appears_until_commit_and_nothing_remains_on_failure() -> anyhow::Result<()> {
        let root = tempfile::tempdir()?;
        let dest = root.path().join("model");
        {
            let staged = StagedDir::new(&dest, false)?;
            std::fs::write(staged.path().join("a"), "x")?;
            assert!(!dest.exists());
        }
        assert!(!dest.exists());
        assert_eq!(std::fs::read_dir(root.path())?.count(), 0, "staging directory left behind");

        let staged = StagedDir::new(&dest, false)?;
        std::fs::write(staged.path().join("a"), "x")?;
        staged.commit()?;
        assert_eq!(std::fs::read_to_string(dest.join("a"))?, "x");
        Ok(())
    }

    #[test]
    fn an_occupied_destination_is_refused_unless_replacing() -> anyhow::Result<()> {
        let root = tempfile::tempdir()?;
        let dest = root.path().join("model");
        std::fs::create_dir(&dest)?;
        std::fs::write(dest.join("old"), "1")?;
        assert!(StagedDir::new(&dest, false).is_err());

        let staged = StagedDir::new(&dest, true)?;
        std::fs::write(staged.path().join("new"), "2")?;
        staged.commit()?;
        assert!(!dest.join("old").exists());
        assert_eq!(std::fs::read_to_string(dest.join("new"))?, "2");
        assert_eq!(std::fs::read_dir(root.path())?.count(), 1, "leftovers next to the output");
        Ok(())
    }

    #[test]
    fn regression_replacing_a_plain_file_leaves_no_leftovers() -> anyhow::Result<()> {
        // The old destination was removed as a directory, which failed for a plain file and
        // left it next to the new model.
        let root = tempfile::tempdir()?;
        let dest = root.path().join("afile");
        std::fs::write(&dest, "not a directory")?;
        let staged = StagedDir::new(&dest, true)?;
        std::fs::write(staged.path().join("new"), "2")?;
        staged.commit()?;
        assert_eq!(std::fs::read_to_string(dest.join("new"))?, "2");
        assert_eq!(std::fs::read_dir(root.path())?.count(), 1, "leftovers next to the output");
        Ok(())
    }
}
