//! `registry`: runs, model versions, aliases, summaries and verified pulls, on the embedded
//! registry or an MLflow server, for people (text) and pipelines (`--json`).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use registry_client::{
    DEFAULT_REGISTRY, Error, Lineage, ModelVersion, REGISTRY_URI_ENV, RegisterRequest, Registry,
    Run, Selector, Token,
};
use serde::Serialize;

/// Exit status when the run, model, version or alias does not exist.
const EXIT_NOT_FOUND: u8 = 3;

/// Exit status when a pulled file fails verification.
const EXIT_CHECKSUM: u8 = 4;

/// Exit status when the registry cannot be reached.
const EXIT_UNREACHABLE: u8 = 5;

/// Experiment runs and model registry of digit models. The token of a remote registry is read
/// from MODEL_REGISTRY_TOKEN only, never from a flag.
#[derive(Debug, Parser)]
#[command(
    name = "registry",
    version,
    about,
    after_help = "Exit status: 0 done, 1 failed, 2 bad usage, 3 not found, 4 checksum mismatch, \
                  5 registry unreachable."
)]
struct Cli {
    /// The registry: a directory or file:// URI (embedded), or an MLflow server's http(s) URL
    /// (GitLab: `<gitlab>/api/v4/projects/<id>/ml/mlflow`).
    #[arg(long, env = REGISTRY_URI_ENV, default_value = DEFAULT_REGISTRY, global = true)]
    registry: String,

    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,

    /// Log format on stderr: readable text or one JSON object per line.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// For people.
    Text,
    /// For log collectors.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List or show experiment runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Register the model a run made as the next version.
    Register(RegisterArgs),
    /// List the versions of a model.
    Versions(ModelArg),
    /// Show one version, by number or alias.
    Show(SelectArgs),
    /// Set, delete or resolve an alias.
    #[command(subcommand)]
    Alias(AliasCommand),
    /// Number of versions, average and best test accuracy, the production version.
    Summary(ModelArg),
    /// Put a version into a directory, verifying every file's SHA-256.
    Pull(PullArgs),
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// The runs of an experiment, newest first.
    List {
        /// Experiment name.
        #[arg(long, env = "MODEL_REGISTRY_EXPERIMENT", default_value = "digits")]
        experiment: String,
    },
    /// One run with its parameters, tags and latest metrics.
    Show {
        /// Run id.
        #[arg(long)]
        run: String,
    },
}

#[derive(Debug, Args)]
struct ModelArg {
    /// Registered model name.
    #[arg(long, env = "MODEL_NAME")]
    model: String,
}

#[derive(Debug, Args)]
struct RegisterArgs {
    /// The run that trained the model.
    #[arg(long)]
    run: String,
    /// Registered model name.
    #[arg(long, env = "MODEL_NAME")]
    model: String,
    /// Model directory to upload as the run's model first (default: the run's artifacts).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Commit of the code (default: CI_COMMIT_SHA, else the run's git tag or the model card).
    #[arg(long)]
    git_commit: Option<String>,
    /// Pipeline that registers it (default: CI_PIPELINE_URL).
    #[arg(long)]
    pipeline_url: Option<String>,
    /// Merge request it belongs to (default: from CI_MERGE_REQUEST_IID and the project URL).
    #[arg(long)]
    merge_request_url: Option<String>,
}

#[derive(Debug, Args)]
struct SelectArgs {
    /// Registered model name.
    #[arg(long, env = "MODEL_NAME")]
    model: String,
    /// Version number.
    #[arg(long, conflicts_with = "alias", required_unless_present = "alias")]
    version: Option<String>,
    /// Alias, such as production.
    #[arg(long)]
    alias: Option<String>,
}

impl SelectArgs {
    fn selector(&self) -> Selector {
        match (&self.version, &self.alias) {
            (Some(v), _) => Selector::Version(v.clone()),
            (None, Some(a)) => Selector::Alias(a.clone()),
            (None, None) => unreachable!("clap requires --version or --alias"),
        }
    }
}

#[derive(Debug, Subcommand)]
enum AliasCommand {
    /// Point an alias at a version, moving it if it exists.
    Set {
        /// Registered model name.
        #[arg(long, env = "MODEL_NAME")]
        model: String,
        /// Alias, such as production.
        #[arg(long)]
        alias: String,
        /// Version number.
        #[arg(long)]
        version: String,
    },
    /// Remove an alias.
    Delete(AliasArgs),
    /// Show the version an alias points at.
    Resolve(AliasArgs),
}

#[derive(Debug, Args)]
struct AliasArgs {
    /// Registered model name.
    #[arg(long, env = "MODEL_NAME")]
    model: String,
    /// Alias, such as production.
    #[arg(long)]
    alias: String,
}

#[derive(Debug, Args)]
struct PullArgs {
    /// Which version.
    #[command(flatten)]
    select: SelectArgs,
    /// Directory to create or replace; it appears only once complete and verified.
    #[arg(long)]
    dest: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            match e.downcast_ref::<Error>() {
                Some(Error::NotFound { .. }) => ExitCode::from(EXIT_NOT_FOUND),
                Some(Error::ChecksumMismatch { .. }) => ExitCode::from(EXIT_CHECKSUM),
                Some(Error::Unreachable { .. }) => ExitCode::from(EXIT_UNREACHABLE),
                _ => ExitCode::FAILURE,
            }
        }
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

fn run(cli: &Cli) -> anyhow::Result<()> {
    let registry = registry_client::open(&cli.registry, Token::from_env())?;
    let out = Output { json: cli.json };
    let registry = registry.as_ref();
    match &cli.command {
        Command::Runs(RunsCommand::List { experiment }) => out.runs(&registry.runs(experiment)?),
        Command::Runs(RunsCommand::Show { run }) => out.run(&registry.run(run)?),
        Command::Register(args) => register(registry, args, out),
        Command::Versions(args) => out.versions(&registry.versions(&args.model)?),
        Command::Show(args) => out.version(&registry.select(&args.model, &args.selector())?),
        Command::Alias(command) => alias(registry, command, out),
        Command::Summary(args) => {
            let summary = registry.summary(&args.model)?;
            out.print(&summary, || {
                let production = summary.production.as_ref().map_or("none".into(), |p| {
                    format!("version {} ({:.4})", p.version, p.test_accuracy)
                });
                let best = summary.best.as_ref().map_or("none".into(), |b| {
                    format!("version {} ({:.4})", b.version, b.test_accuracy)
                });
                let average =
                    summary.average_test_accuracy.map_or("none".into(), |a| format!("{a:.4}"));
                format!(
                    "model {}: {} versions, average test accuracy {average}, best {best}, \
                     production {production}\n",
                    summary.model, summary.versions
                )
            })
        }
        Command::Pull(args) => {
            let pulled = registry.pull(&args.select.model, &args.select.selector(), &args.dest)?;
            out.print(&pulled, || {
                let state =
                    if pulled.already_present { "already present in" } else { "pulled into" };
                format!("version {} {state} {}\n", pulled.version.version, pulled.dest.display())
            })
        }
    }
}

fn register(registry: &dyn Registry, args: &RegisterArgs, out: Output) -> anyhow::Result<()> {
    let lineage = Lineage {
        git_commit: args.git_commit.clone(),
        pipeline_url: args.pipeline_url.clone(),
        merge_request_url: args.merge_request_url.clone(),
    }
    .or(Lineage::from_env());
    let request = RegisterRequest { run_id: args.run.clone(), dir: args.dir.clone(), lineage };
    out.version(&registry.register(&args.model, &request)?)
}

fn alias(registry: &dyn Registry, command: &AliasCommand, out: Output) -> anyhow::Result<()> {
    match command {
        AliasCommand::Set { model, alias, version } => {
            registry.set_alias(model, alias, version)?;
            out.version(&registry.version(model, version)?)
        }
        AliasCommand::Delete(AliasArgs { model, alias }) => {
            registry.delete_alias(model, alias)?;
            let deleted = serde_json::json!({ "model": model, "alias": alias, "deleted": true });
            out.print(&deleted, || format!("alias {alias} of {model} deleted\n"))
        }
        AliasCommand::Resolve(AliasArgs { model, alias }) => {
            out.version(&registry.resolve_alias(model, alias)?)
        }
    }
}

/// Writes results as text or JSON on stdout.
#[derive(Debug, Clone, Copy)]
struct Output {
    json: bool,
}

impl Output {
    fn print<T: Serialize>(self, value: &T, text: impl FnOnce() -> String) -> anyhow::Result<()> {
        let mut stdout = std::io::stdout().lock();
        if self.json {
            writeln!(stdout, "{}", serde_json::to_string(value)?)?;
        } else {
            write!(stdout, "{}", text())?;
        }
        Ok(())
    }

    fn runs(self, runs: &[Run]) -> anyhow::Result<()> {
        self.print(&runs, || runs.iter().map(run_line).collect())
    }

    fn run(self, run: &Run) -> anyhow::Result<()> {
        self.print(run, || {
            let mut text = run_line(run);
            for (title, map) in [("params", &run.params), ("tags", &run.tags)] {
                for (k, v) in map {
                    text.push_str(&format!("  {title}.{k} = {v}\n"));
                }
            }
            for (k, v) in &run.metrics {
                text.push_str(&format!("  metrics.{k} = {v}\n"));
            }
            text
        })
    }

    fn versions(self, versions: &[ModelVersion]) -> anyhow::Result<()> {
        self.print(&versions, || versions.iter().map(version_line).collect())
    }

    fn version(self, version: &ModelVersion) -> anyhow::Result<()> {
        self.print(version, || {
            let mut text = version_line(version);
            let lineage = &version.lineage;
            let fields = [
                ("git commit", &lineage.git_commit),
                ("pipeline", &lineage.pipeline_url),
                ("merge request", &lineage.merge_request_url),
            ];
            for (name, value) in fields {
                if let Some(value) = value {
                    text.push_str(&format!("  {name}: {value}\n"));
                }
            }
            for (file, digest) in &version.files {
                text.push_str(&format!("  {digest}  {file}\n"));
            }
            text
        })
    }
}

fn run_line(run: &Run) -> String {
    let accuracy = run.metrics.get("test_accuracy").map_or(String::new(), |a| format!(" {a:.4}"));
    format!("{} {} {}{accuracy}\n", run.id, run.status, run.name.as_deref().unwrap_or("-"))
}

fn version_line(v: &ModelVersion) -> String {
    let accuracy = v.test_accuracy().map_or("-".into(), |a| format!("{a:.4}"));
    let aliases =
        if v.aliases.is_empty() { String::new() } else { format!(" [{}]", v.aliases.join(", ")) };
    format!(
        "{} version {} test_accuracy {accuracy} run {}{aliases}\n",
        v.model,
        v.version,
        v.run_id.as_deref().unwrap_or("-")
    )
}
