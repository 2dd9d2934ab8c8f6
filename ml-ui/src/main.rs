//! `ml-ui`: serve the drawing app and its API.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use ml_ui::feedback::FeedbackStore;
use ml_ui::inference::Predictor;
use ml_ui::metrics::Metrics;
use ml_ui::source::{DirSource, ModelSource, RegistrySource};
use ml_ui::{AppState, Limits};

/// Inference allocates per batch; mimalloc keeps those pages instead of returning them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Serve the digit drawing app and its prediction API.
#[derive(Debug, Parser)]
#[command(name = "ml-ui", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    /// Model directory to serve (model.json + model.safetensors); watched for new versions.
    #[arg(long, env = "ML_UI_MODEL", conflicts_with = "registry")]
    model: Option<PathBuf>,

    /// Registry to pull the model from (a directory, file:// URI or MLflow URL); the token, if
    /// any, comes from MODEL_REGISTRY_TOKEN.
    #[arg(long, env = "MODEL_REGISTRY_URI")]
    registry: Option<String>,

    /// Registered model name.
    #[arg(long, env = "MODEL_NAME", default_value = "digits")]
    model_name: String,

    /// Alias whose version is served; the server follows it when it moves.
    #[arg(long, env = "ML_UI_ALIAS", default_value = "production")]
    alias: String,

    /// Where pulled versions are kept.
    #[arg(long, env = "ML_UI_CACHE", default_value = "models/pulled")]
    cache: PathBuf,

    /// Address to listen on.
    #[arg(long, env = "ML_UI_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,

    /// Seconds between checks for a new model version.
    #[arg(long, env = "ML_UI_POLL_SECONDS", default_value_t = 30)]
    poll_seconds: u64,

    /// Directory where user corrections are stored.
    #[arg(long, env = "ML_UI_FEEDBACK_DIR", default_value = "feedback")]
    feedback_dir: PathBuf,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "ML_UI_MAX_BODY_BYTES", default_value_t = 4 << 20,
          value_parser = clap::value_parser!(u64).range(1024..=(256 << 20)))]
    max_body_bytes: u64,

    /// Log format: readable text or one JSON object per line.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// Other tasks.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the stored corrections as IDX files for `trainer train --extra-data`.
    ExportFeedback {
        /// Directory where corrections are stored.
        #[arg(long, env = "ML_UI_FEEDBACK_DIR", default_value = "feedback")]
        feedback_dir: PathBuf,
        /// Directory to write train-images-idx3-ubyte and train-labels-idx1-ubyte into.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> anyhow::Result<()> {
    tune_runtime();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    if let Some(Command::ExportFeedback { feedback_dir, out }) = &cli.command {
        let count = FeedbackStore::open(feedback_dir)?.export(out)?;
        tracing::info!(count, out = %out.display(), "feedback exported");
        return Ok(());
    }
    let source: Box<dyn ModelSource> = match (&cli.model, &cli.registry) {
        (Some(dir), _) => Box::new(DirSource::new(dir)),
        (None, Some(uri)) => {
            Box::new(RegistrySource::open(uri, &cli.model_name, &cli.alias, &cli.cache)?)
        }
        (None, None) => anyhow::bail!("no model to serve: pass --model DIR or --registry URI"),
    };
    serve(&cli, source)
}

#[tokio::main]
async fn serve(cli: &Cli, source: Box<dyn ModelSource>) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let predictor = Predictor::start();
    let feedback = Arc::new(FeedbackStore::open(&cli.feedback_dir).with_context(|| {
        format!("opening the feedback directory {}", cli.feedback_dir.display())
    })?);
    let limits = Limits { body_bytes: usize::try_from(cli.max_body_bytes)?, ..Limits::default() };
    ml_ui::source::watch(
        source,
        predictor.clone(),
        metrics.clone(),
        Duration::from_secs(cli.poll_seconds.max(1)),
    );
    let app = ml_ui::app(AppState { predictor, metrics, feedback, limits });
    let listener = tokio::net::TcpListener::bind(cli.addr)
        .await
        .with_context(|| format!("listening on {}", cli.addr))?;
    let addr = listener.local_addr()?;
    tracing::info!(url = %format!("http://{addr}/"), "serving");
    axum::serve(listener, app).with_graceful_shutdown(shutdown()).await?;
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            signal.recv().await;
        }
    };
    tokio::select! { () = ctrl_c => {}, () = terminate => {} }
    tracing::info!("shutting down");
}

/// Settings that keep the server fast and small on few cores.
#[allow(unsafe_code)]
fn tune_runtime() {
    // SAFETY: main has not started any thread yet.
    unsafe { shared::runtime::configure_cpu_threads() };
    // mimalloc asks for transparent huge pages on its arenas: under load every thread's
    // partly used 2 MiB pages add up to twice the resident memory, for no measurable speed.
    // Best effort: where the kernel refuses, the server only holds more memory.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
