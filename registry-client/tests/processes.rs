//! The embedded registry shared between processes: concurrent registrations, processes killed
//! half way, and the `registry` command line end to end.

mod suite;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use registry_client::{
    LocalRegistry, Metric, RegisterRequest, Registry, RunSpec, RunStatus, Selector, verify,
};

const BIN: &str = env!("CARGO_BIN_EXE_registry");

fn registry_cmd(root: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--registry").arg(root).env_remove("MODEL_REGISTRY_URI").env("RUST_LOG", "warn");
    cmd
}

fn json_of(output: &Output) -> Result<serde_json::Value> {
    ensure!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// A finished run whose model directory (with a weights file of `weights_bytes`) is uploaded.
fn run_with_model(registry: &LocalRegistry, dir: &Path, weights_bytes: usize) -> Result<String> {
    suite::write_model(dir, 0.98)?;
    if weights_bytes > 0 {
        let weights: Vec<u8> = (0..weights_bytes).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.join("model.safetensors"), weights)?;
    }
    let run = registry.start_run(&RunSpec { experiment: "digits".into(), ..Default::default() })?;
    registry.log_metrics(&run.id, &[Metric::now("test_accuracy", 0.98, 1)])?;
    registry.upload_artifacts(&run.id, dir, "model")?;
    registry.finish_run(&run.id, RunStatus::Finished)?;
    Ok(run.id)
}

fn numbers(registry: &LocalRegistry, model: &str) -> Result<Vec<u64>> {
    registry.versions(model)?.iter().map(|v| Ok(v.version.parse()?)).collect()
}

#[test]
fn twelve_processes_registering_at_once_get_consecutive_versions() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("registry");
    let registry = LocalRegistry::open(&root)?;
    let run = run_with_model(&registry, &tmp.path().join("model"), 0)?;

    let started = Instant::now();
    let children: Vec<_> = (0..12)
        .map(|_| {
            registry_cmd(&root)
                .args(["--json", "register", "--model", "digits", "--run", &run])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    let mut got = Vec::new();
    for child in children {
        let version = json_of(&child.wait_with_output()?)?;
        got.push(version["version"].as_str().context("version")?.parse::<u64>()?);
    }
    eprintln!("12 concurrent registrations took {:?}", started.elapsed());
    got.sort_unstable();
    ensure!(got == (1..=12).collect::<Vec<_>>(), "{got:?}");
    ensure!(numbers(&registry, "digits")? == got);
    for v in registry.versions("digits")? {
        let files = root.join("models/digits/versions").join(&v.version).join("files");
        verify(&files, &v)?;
    }
    Ok(())
}

/// Starts `registry` with `args`, kills it after `after`, and waits for it.
fn kill_after(root: &Path, args: &[&str], after: Duration) -> Result<()> {
    let mut child =
        registry_cmd(root).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    std::thread::sleep(after);
    let _ = child.kill();
    child.wait()?;
    Ok(())
}

#[test]
fn a_registration_killed_half_way_leaves_no_visible_version() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("registry");
    let registry = LocalRegistry::open(&root)?;
    let run = run_with_model(&registry, &tmp.path().join("model"), 48 << 20)?;
    for delay_ms in [5, 20, 60, 150] {
        let args = ["register", "--model", "digits", "--run", run.as_str()];
        kill_after(&root, &args, Duration::from_millis(delay_ms))?;
        // Whatever got in is complete; nothing else is visible.
        for v in registry.versions("digits")? {
            let files = root.join("models/digits/versions").join(&v.version).join("files");
            verify(&files, &v)?;
        }
    }
    let before = numbers(&registry, "digits")?;
    // Killed before any process reached the model, there is no staging folder at all.
    let interrupted =
        std::fs::read_dir(root.join("models/digits/staging")).map_or(0, Iterator::count);
    eprintln!("after 4 kills: {} complete versions, {interrupted} interrupted", before.len());
    let next =
        registry.register("digits", &RegisterRequest { run_id: run, ..Default::default() })?;
    let after = numbers(&registry, "digits")?;
    ensure!(after == (1..=before.len() as u64 + 1).collect::<Vec<_>>(), "{before:?} -> {after:?}");
    ensure!(next.version == after.len().to_string());
    let staging = std::fs::read_dir(root.join("models/digits/staging"))?.count();
    ensure!(staging == 0, "the next registration clears what killed ones left");
    Ok(())
}

#[test]
fn a_pull_killed_half_way_leaves_no_partial_directory() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("registry");
    let registry = LocalRegistry::open(&root)?;
    let run = run_with_model(&registry, &tmp.path().join("model"), 48 << 20)?;
    let version =
        registry.register("digits", &RegisterRequest { run_id: run, ..Default::default() })?;
    let dest: PathBuf = tmp.path().join("serving/current");
    let dest_arg = dest.to_str().context("utf-8")?;
    for delay_ms in [5, 20, 60, 150] {
        let args = ["pull", "--model", "digits", "--version", "1", "--dest", dest_arg];
        kill_after(&root, &args, Duration::from_millis(delay_ms))?;
        ensure!(
            !dest.exists() || verify(&dest, &version).is_ok(),
            "half a model after {delay_ms} ms"
        );
        if dest.exists() {
            std::fs::remove_dir_all(&dest)?;
        }
    }
    registry.pull("digits", &Selector::Version("1".into()), &dest)?;
    verify(&dest, &version)?;
    let parent = dest.parent().context("parent")?;
    let partial: Vec<_> = std::fs::read_dir(parent)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".partial-"))
        .collect();
    ensure!(partial.is_empty(), "leftovers of killed pulls remain: {partial:?}");
    Ok(())
}

#[test]
fn the_command_line_registers_aliases_summarises_and_pulls() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("registry");
    let registry = LocalRegistry::open(&root)?;
    let run = run_with_model(&registry, &tmp.path().join("model"), 0)?;
    let run_cli = |args: &[&str]| -> Result<serde_json::Value> {
        json_of(&registry_cmd(&root).arg("--json").args(args).output()?)
    };

    let runs = run_cli(&["runs", "list", "--experiment", "digits"])?;
    ensure!(runs[0]["id"] == run.as_str(), "{runs}");
    let shown = run_cli(&["runs", "show", "--run", &run])?;
    ensure!(shown["metrics"]["test_accuracy"] == 0.98, "{shown}");

    let other = tmp.path().join("other");
    suite::write_model(&other, 0.99)?;
    let fresh =
        registry.start_run(&RunSpec { experiment: "digits".into(), ..Default::default() })?;
    let other_arg = other.to_str().context("utf-8")?;
    run_cli(&["register", "--model", "digits", "--run", &run])?;
    let v2 = run_cli(&["register", "--model", "digits", "--run", &fresh.id, "--dir", other_arg])?;
    ensure!(v2["version"] == "2" && v2["metrics"]["test_accuracy"] == 0.99, "{v2}");

    run_cli(&["alias", "set", "--model", "digits", "--alias", "production", "--version", "2"])?;
    let resolved = run_cli(&["alias", "resolve", "--model", "digits", "--alias", "production"])?;
    ensure!(resolved["version"] == "2", "{resolved}");
    let versions = run_cli(&["versions", "--model", "digits"])?;
    ensure!(versions.as_array().map(Vec::len) == Some(2), "{versions}");
    let summary = run_cli(&["summary", "--model", "digits"])?;
    ensure!(summary["versions"] == 2 && summary["production"]["version"] == "2", "{summary}");

    let dest = tmp.path().join("pulled");
    let dest_arg = dest.to_str().context("utf-8")?;
    let pulled =
        run_cli(&["pull", "--model", "digits", "--alias", "production", "--dest", dest_arg])?;
    ensure!(pulled["already_present"] == false, "{pulled}");
    let again =
        run_cli(&["pull", "--model", "digits", "--alias", "production", "--dest", dest_arg])?;
    ensure!(again["already_present"] == true, "{again}");

    run_cli(&["alias", "delete", "--model", "digits", "--alias", "production"])?;
    let missing = registry_cmd(&root)
        .args(["alias", "resolve", "--model", "digits", "--alias", "production"])
        .output()?;
    ensure!(missing.status.code() == Some(3), "not found exits 3: {missing:?}");
    ensure!(String::from_utf8_lossy(&missing.stderr).contains("alias production of model digits"));

    let text =
        registry_cmd(&root).args(["show", "--model", "digits", "--version", "2"]).output()?;
    let text = String::from_utf8(text.stdout)?;
    ensure!(text.contains("digits version 2 test_accuracy 0.9900"), "{text}");
    Ok(())
}
