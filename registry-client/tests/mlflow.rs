//! The shared registry suite against a real MLflow server (`scripts/mlflow-server.sh start`
//! prints the `MLFLOW_TRACKING_URI` to export), plus what only a server can show.

mod suite;

use anyhow::{Context, Result, bail};
use registry_client::{ModelVersion, RegisterRequest, Selector};
use suite::{Backend, Damage};

const IGNORE: &str = "needs a running MLflow server; scripts/test.sh starts one";

fn server() -> String {
    match std::env::var("MLFLOW_TRACKING_URI") {
        Ok(uri) if uri.starts_with("http") => uri,
        _ => panic!(
            "MLFLOW_TRACKING_URI is not set to the server's http URL: start one with \
             `eval \"$(scripts/mlflow-server.sh start)\"` ({IGNORE})"
        ),
    }
}

fn backend() -> Result<Backend> {
    let uri = server();
    let registry = registry_client::open(&uri, None)?;
    let damage =
        Box::new(move |v: &ModelVersion, file: &str, how: Damage| damage(&uri, v, file, how));
    Ok(Backend::new(registry, damage, tempfile::tempdir()?))
}

/// The proxy address of a version's stored file.
fn artifact_url(server: &str, v: &ModelVersion, file: &str) -> Result<String> {
    let run_id = v.run_id.as_deref().context("version without run")?;
    let url = format!("{server}/api/2.0/mlflow/runs/get?run_id={run_id}");
    let run: serde_json::Value = reqwest::blocking::get(url)?.error_for_status()?.json_value()?;
    let uri = run.pointer("/run/info/artifact_uri").and_then(|u| u.as_str()).context("uri")?;
    let path =
        uri.strip_prefix("mlflow-artifacts:").context("not proxied")?.trim_start_matches('/');
    Ok(format!("{server}/api/2.0/mlflow-artifacts/artifacts/{path}/model/{file}"))
}

/// Damages a stored file through the artifact proxy.
fn damage(server: &str, v: &ModelVersion, file: &str, how: Damage) -> Result<()> {
    let url = artifact_url(server, v, file)?;
    let client = reqwest::blocking::Client::new();
    let mut bytes = client.get(&url).send()?.error_for_status()?.bytes()?.to_vec();
    match how {
        Damage::FlipByte => {
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x01;
        }
        Damage::Truncate => bytes.truncate(bytes.len() / 2),
        Damage::Remove => {
            client.delete(&url).send()?.error_for_status()?;
            return Ok(());
        }
    }
    client.put(&url).body(bytes).send()?.error_for_status()?;
    Ok(())
}

trait JsonValue {
    fn json_value(self) -> Result<serde_json::Value>;
}

impl JsonValue for reqwest::blocking::Response {
    fn json_value(self) -> Result<serde_json::Value> {
        Ok(serde_json::from_slice(&self.bytes()?)?)
    }
}

registry_suite!(backend, #[ignore = "needs a running MLflow server; scripts/test.sh starts one"]);

/// Versions are linked to the run's artifacts on the server, and the trainer's flow works
/// end to end: run, metrics, artifacts, register, alias, pull.
#[test]
#[ignore = "needs a running MLflow server; scripts/test.sh starts one"]
fn version_source_points_into_the_run() -> Result<()> {
    let b = backend()?;
    let run_id = b.trained_run("source-check", 0.99)?;
    let model = format!("source-{}", b.namespace);
    let v = b
        .registry
        .register(&model, &RegisterRequest { run_id: run_id.clone(), ..Default::default() })?;
    let url = format!(
        "{}/api/2.0/mlflow/model-versions/get?name={model}&version={}",
        server(),
        v.version
    );
    let got = reqwest::blocking::get(url)?.error_for_status()?.json_value()?;
    let source = got.pointer("/model_version/source").and_then(|s| s.as_str()).unwrap_or("");
    if !(source.contains(&run_id) && source.ends_with("/model")) {
        bail!("source {source:?} does not point at the run's model artifacts");
    }
    b.registry.set_alias(&model, "production", &v.version)?;
    let dest = b.scratch.path().join("pulled");
    b.registry.pull(&model, &Selector::Alias("production".into()), &dest)?;
    let runs = b.registry.runs("source-check")?;
    if !runs.iter().any(|r| r.id == run_id) {
        bail!("run {run_id} not listed");
    }
    Ok(())
}
