//! The git commit and dirty flag of the code that trains, for the model card.

use std::path::Path;
use std::process::Command;

use shared::card::SourceInfo;

/// Describes the checkout containing `dir`; CI variables win when git is unavailable
/// (shallow or detached checkouts in pipelines still have `CI_COMMIT_SHA`).
pub fn source_info(dir: &Path) -> SourceInfo {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "HEAD"]).or_else(|| std::env::var("CI_COMMIT_SHA").ok());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty());
    SourceInfo { git_commit: commit, git_dirty: dirty }
}
