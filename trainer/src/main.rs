//! `trainer`: train, evaluate, fetch data.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use shared::Model;
use shared::dataset::{Dataset, DatasetSpec};
use trainer::cli::{self, Cli, Command, EvaluateArgs, FetchArgs, LogFormat, TrainArgs};
use trainer::train::{Diverged, TrainRequest};

/// Training allocates and frees tens of megabytes per step; the system allocator hands those
/// pages back to the kernel every time, mimalloc keeps them, which saves a third of the time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e`, mimalloc 2.x).
const MIMALLOC_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Exit status when training diverged.
const EXIT_DIVERGED: u8 = 3;

/// Exit status when a model is less accurate than `--min-accuracy` demands.
const EXIT_BELOW_THRESHOLD: u8 = 4;

/// The evaluated accuracy fell short of the required one.
#[derive(Debug, thiserror::Error)]
#[error("accuracy {accuracy:.4} is below the required {required:.4}")]
struct BelowThreshold {
    accuracy: f64,
    required: f64,
}

fn main() -> ExitCode {
    tune_runtime();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Train(args) => train(&args),
        Command::Evaluate(args) => evaluate(&args),
        Command::Fetch(args) => fetch(&args),
        Command::Report(args) => trainer::report::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            if e.downcast_ref::<Diverged>().is_some() {
                ExitCode::from(EXIT_DIVERGED)
            } else if e.downcast_ref::<BelowThreshold>().is_some() {
                ExitCode::from(EXIT_BELOW_THRESHOLD)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Settings that make training on CPUs faster, each overridable by its environment variable.
#[allow(unsafe_code)]
fn tune_runtime() {
    // SAFETY: main has not started any thread yet.
    unsafe { shared::runtime::configure_cpu_threads() };
    // The main thread joins rayon's pool as its first worker: the kernels' parallel loops
    // then start where the training loop runs, instead of each handing work to the pool and
    // sleeping until it is done (a third more images per second).
    if let Err(e) = rayon::ThreadPoolBuilder::new().use_current_thread().build_global() {
        eprintln!("warning: rayon's thread pool was already started: {e}");
    }
    // Every step frees the same large buffers that the next one allocates: keeping the pages
    // instead of returning them to the kernel (MIMALLOC_PURGE_DELAY=-1) saves another 15 %.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a plain call into mimalloc's option table, valid at any time.
        unsafe { libmimalloc_sys::mi_option_set(MIMALLOC_PURGE_DELAY, -1) };
    }
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

fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let config = cli::config_path(&args.config);
    let settings = args.overrides.apply(trainer::config::load(&config)?)?;
    let data_dir = match &args.data {
        Some(dir) => dir.clone(),
        None => cli::default_data_dir(&settings.dataset, args.cache.as_deref()),
    };
    let source_dir =
        args.config.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(".".as_ref());
    let request = TrainRequest {
        settings,
        data_dir,
        out_dir: args.out.clone(),
        replace: args.force,
        source_dir: source_dir.to_owned(),
    };
    tracing::info!(settings = %serde_json::to_string(&request.settings)?, out = %args.out.display(), "training");
    let outcome = trainer::tracking::train_tracked(&request, &args.tracking)?;
    tracing::info!(
        dir = %outcome.dir.display(),
        test_accuracy = format_args!("{:.4}", outcome.card.metrics.test_accuracy),
        seconds = format_args!("{:.1}", outcome.card.timings.training_seconds),
        "model written"
    );
    Ok(())
}

fn evaluate(args: &EvaluateArgs) -> anyhow::Result<()> {
    let model = Model::load(&args.model)
        .with_context(|| format!("loading model {}", args.model.display()))?;
    let dataset = model.card.training.dataset.clone();
    let spec =
        DatasetSpec::builtin(&dataset).with_context(|| format!("unknown data set {dataset:?}"))?;
    let dir = match &args.data {
        Some(dir) => dir.clone(),
        None => cli::default_data_dir(&dataset, args.cache.as_deref()),
    };
    let data = Dataset::load(&dir, &spec)?;
    let evaluation =
        trainer::evaluate::evaluate(&model.net, &data.test, model.card.input.normalisation)?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let report = trainer::summary::EvaluationReport {
            accuracy: evaluation.accuracy,
            loss: evaluation.loss,
            dataset: &dataset,
            model: args.model.display().to_string(),
            evaluation: &evaluation,
        };
        writeln!(stdout, "{}", serde_json::to_string(&report)?)?;
    } else {
        write!(stdout, "{}", trainer::summary::render_text(&evaluation, &model.card.classes))?;
    }
    match args.min_accuracy {
        Some(required) if evaluation.accuracy < required => {
            Err(BelowThreshold { accuracy: evaluation.accuracy, required }.into())
        }
        _ => Ok(()),
    }
}

fn fetch(args: &FetchArgs) -> anyhow::Result<()> {
    let spec = match &args.spec {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("invalid data set specification {}", path.display()))?
        }
        None => DatasetSpec::builtin(&args.dataset).with_context(|| {
            format!(
                "unknown data set {:?} (known: {})",
                args.dataset,
                shared::dataset::BUILTIN_DATASETS.join(", ")
            )
        })?,
    };
    let dir = cli::cache_dir(args.cache.as_deref()).join(&spec.name);
    for outcome in trainer::fetch::fetch_dataset(&spec, &dir)? {
        tracing::info!(?outcome, "ready");
    }
    writeln!(std::io::stdout(), "{}", dir.display())?;
    Ok(())
}
