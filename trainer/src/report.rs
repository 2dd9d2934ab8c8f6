//! `trainer report`: the review of a candidate model for its merge request.
//!
//! The candidate's test figures are set against the registry's summary (project average, best
//! and production versions) and, class by class, against the production model's card. The
//! review is Markdown with a hidden marker, so that a pipeline can find and update its note
//! on later pushes; next to it go PNG charts of loss and accuracy per epoch, a GitLab metrics
//! report (`metrics.txt`) and the promotion decision for `register-model` (`decision.env`).
//! Everything works offline from files; only [`upsert_note`] talks to GitLab.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use plotters::prelude::*;
use registry_client::{PRODUCTION_ALIAS, Selector, Summary, Token, VersionAccuracy};
use shared::ModelCard;
use shared::card::{CARD_FILE, METRICS_FILE};

use crate::train::EpochMetrics;

/// Hidden first line of the review, by which its merge-request note is found again.
pub const NOTE_MARKER: &str = "<!-- digit-lab:model-review -->";

/// Chart size in pixels.
const CHART_SIZE: (u32, u32) = (640, 320);

/// Colours of the training and test series, named in the review's legend.
const SERIES: [(RGBColor, &str); 2] =
    [(RGBColor(31, 119, 180), "blue"), (RGBColor(255, 127, 14), "orange")];

/// Arguments of `trainer report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The candidate model directory (model.json and metrics.jsonl).
    #[arg(long)]
    pub model: PathBuf,

    /// Directory to write review.md, loss.png, accuracy.png, metrics.txt and decision.env into.
    #[arg(long)]
    pub out: PathBuf,

    /// Registry to compare against (a directory, file:// URI or MLflow URL); the token comes
    /// from MODEL_REGISTRY_TOKEN.
    #[arg(long, env = registry_client::REGISTRY_URI_ENV, conflicts_with = "summary")]
    pub registry: Option<String>,

    /// Registered model name.
    #[arg(long, env = "MODEL_NAME", default_value = "digits")]
    pub model_name: String,

    /// Offline: the registry summary as `registry --json summary` prints it.
    #[arg(long)]
    pub summary: Option<PathBuf>,

    /// Offline: the production model directory, for the per-class comparison.
    #[arg(long, conflicts_with = "registry")]
    pub production_model: Option<PathBuf>,

    /// Production moves when the candidate's test accuracy is at least production's minus this.
    #[arg(long, default_value_t = 0.002)]
    pub tolerance: f64,

    /// The tracked run that trained the candidate.
    #[arg(long)]
    pub run_id: Option<String>,

    /// Where people can look at the run.
    #[arg(long)]
    pub run_url: Option<String>,

    /// URL under which the charts will be served (default: next to review.md).
    #[arg(long)]
    pub image_base_url: Option<String>,

    /// Where to post the review.
    #[command(flatten)]
    pub note: NoteArgs,
}

/// Flags of `trainer report` that post the review as a merge-request note.
#[derive(Debug, Args)]
pub struct NoteArgs {
    /// Post the review on the merge request, replacing this command's earlier note. The token
    /// is REVIEW_NOTE_TOKEN (sent as PRIVATE-TOKEN), else CI_JOB_TOKEN (as JOB-TOKEN).
    #[arg(long, requires = "merge_request")]
    pub post_note: bool,

    /// GitLab's REST API root.
    #[arg(long, env = "CI_API_V4_URL")]
    pub gitlab_api_url: Option<String>,

    /// Project id or path.
    #[arg(long, env = "CI_PROJECT_ID")]
    pub project_id: Option<String>,

    /// Merge request IID.
    #[arg(long)]
    pub merge_request: Option<String>,
}

/// What the candidate is compared with.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    /// The registry's summary of the model; none when there is no registry.
    pub summary: Option<Summary>,
    /// The production model's card, for per-class figures.
    pub production: Option<ModelCard>,
}

/// Whether production should move to the candidate, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// True when production should move.
    pub promote: bool,
    /// One sentence for people.
    pub reason: String,
}

/// Decides promotion: production moves unless the candidate is worse than production by more
/// than `tolerance` (a fraction, as the accuracies).
pub fn decide(candidate: f64, production: Option<&VersionAccuracy>, tolerance: f64) -> Decision {
    let Some(p) = production.filter(|p| p.test_accuracy.is_finite()) else {
        return Decision { promote: true, reason: "there is no production version to beat".into() };
    };
    let (promote, verb) = if candidate >= p.test_accuracy - tolerance {
        (true, "is not below")
    } else {
        (false, "is below")
    };
    let reason = format!(
        "test accuracy {} {verb} production (version {}, {}) by more than the tolerance of \
         {:.2} pp",
        percent(candidate),
        p.version,
        percent(p.test_accuracy),
        tolerance * 100.0
    );
    Decision { promote, reason }
}

/// Links and names shown in the review.
#[derive(Debug, Clone, Default)]
pub struct Links {
    /// The tracked run's id.
    pub run_id: Option<String>,
    /// Where to look at the run.
    pub run_url: Option<String>,
    /// URL prefix of the charts; relative file names when none.
    pub image_base_url: Option<String>,
}

/// Reads the per-epoch figures a training run wrote.
pub fn read_epochs(model_dir: &Path) -> anyhow::Result<Vec<EpochMetrics>> {
    let path = model_dir.join(METRICS_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).with_context(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect()
}

/// The review as Markdown, starting with [`NOTE_MARKER`].
pub fn render_markdown(
    card: &ModelCard,
    epochs: &[EpochMetrics],
    baseline: &Baseline,
    decision: &Decision,
    links: &Links,
) -> String {
    let mut md = String::new();
    let accuracy = card.metrics.test_accuracy;
    let _ = writeln!(md, "{NOTE_MARKER}\n## Model review: {}", percent(accuracy));
    let _ = writeln!(md, "\n{}\n", provenance(card, links));
    headline_table(&mut md, card, baseline);
    let verdict =
        if decision.promote { "production moves to this model" } else { "production stays" };
    let _ = writeln!(md, "\n**On merge:** {verdict}: {}.\n", decision.reason);
    per_class_table(&mut md, card, baseline.production.as_ref());
    confusion_table(&mut md, card);
    curves(&mut md, epochs, links);
    md
}

fn provenance(card: &ModelCard, links: &Links) -> String {
    let t = &card.training;
    let commit =
        card.source.git_commit.as_deref().map_or("an unknown commit".into(), |c| {
            format!("commit `{}`", c.get(..12).unwrap_or(c))
        });
    let mut line = format!(
        "Candidate `{}` trained on {} from {commit}: {} epochs, batch {}, seed {}.",
        card.architecture.name, t.dataset, t.epochs, t.batch_size, t.seed
    );
    match (&links.run_id, &links.run_url) {
        (Some(id), Some(url)) => line.push_str(&format!(" Run [`{id}`]({url}).")),
        (Some(id), None) => line.push_str(&format!(" Run `{id}`.")),
        (None, Some(url)) => line.push_str(&format!(" [Run]({url}).")),
        (None, None) => {}
    }
    line
}

fn headline_table(md: &mut String, card: &ModelCard, baseline: &Baseline) {
    let accuracy = card.metrics.test_accuracy;
    md.push_str("| | test accuracy | candidate's difference |\n|---|---:|---:|\n");
    let _ = writeln!(md, "| **candidate** | **{}** | |", percent(accuracy));
    let Some(s) = &baseline.summary else {
        md.push_str("| *no registry to compare with* | | |\n");
        return;
    };
    let mut row = |name: String, value: Option<f64>| {
        let (value, delta) = match value.filter(|v| v.is_finite()) {
            Some(v) => (percent(v), points(accuracy - v)),
            None => ("n/a".into(), String::new()),
        };
        let _ = writeln!(md, "| {name} | {value} | {delta} |");
    };
    match &s.production {
        Some(p) => row(format!("production (version {})", p.version), Some(p.test_accuracy)),
        None => row("production (none yet)".into(), None),
    }
    row(format!("project average ({} versions)", s.versions), s.average_test_accuracy);
    if let Some(b) = &s.best {
        row(format!("best (version {})", b.version), Some(b.test_accuracy));
    }
}

fn per_class_table(md: &mut String, card: &ModelCard, production: Option<&ModelCard>) {
    md.push_str("### Accuracy per class\n\n");
    md.push_str("| class | candidate | production | difference | precision | test images |\n");
    md.push_str("|---|---:|---:|---:|---:|---:|\n");
    let theirs = production.map(|p| &p.metrics.test.per_class);
    for (i, c) in card.metrics.test.per_class.iter().enumerate() {
        let name = card.classes.get(i).map_or_else(|| c.class.to_string(), Clone::clone);
        let other = theirs.and_then(|t| t.iter().find(|o| o.class == c.class)).map(|o| o.recall);
        let (prod, delta) =
            other.map_or(("n/a".into(), String::new()), |o| (percent(o), points(c.recall - o)));
        let _ = writeln!(
            md,
            "| {name} | {} | {prod} | {delta} | {} | {} |",
            percent(c.recall),
            percent(c.precision),
            c.support
        );
    }
}

fn confusion_table(md: &mut String, card: &ModelCard) {
    let matrix = &card.metrics.test.confusion;
    md.push_str("\n### Confusion matrix\n\nRows: actual class; columns: predicted class.\n\n");
    let header: String = (0..matrix.len()).map(|j| format!(" {} |", class_name(card, j))).collect();
    let _ = writeln!(md, "| |{header}");
    let _ = writeln!(md, "|---|{}", "---:|".repeat(matrix.len()));
    for (i, row) in matrix.iter().enumerate() {
        let cells: String = row
            .iter()
            .enumerate()
            .map(|(j, n)| if i == j { format!(" **{n}** |") } else { format!(" {n} |") })
            .collect();
        let _ = writeln!(md, "| **{}** |{cells}", class_name(card, i));
    }
}

fn class_name(card: &ModelCard, i: usize) -> String {
    card.classes.get(i).cloned().unwrap_or_else(|| i.to_string())
}

fn curves(md: &mut String, epochs: &[EpochMetrics], links: &Links) {
    let image = |file: &str| match &links.image_base_url {
        Some(base) => format!("{}/{file}", base.trim_end_matches('/')),
        None => file.to_owned(),
    };
    md.push_str("\n### Training curves\n\n");
    let _ = writeln!(
        md,
        "![loss per epoch]({}) ![accuracy per epoch]({})\n",
        image("loss.png"),
        image("accuracy.png")
    );
    let _ = writeln!(
        md,
        "Loss (left) and accuracy (right) per epoch: {} training, {} test.\n",
        SERIES[0].1, SERIES[1].1
    );
    md.push_str("| epoch | training loss | test loss | training accuracy | test accuracy |\n");
    md.push_str("|---:|---:|---:|---:|---:|\n");
    for e in epochs {
        let _ = writeln!(
            md,
            "| {} | {:.4} | {:.4} | {} | {} |",
            e.epoch,
            e.train_loss,
            e.test_loss,
            percent(e.train_accuracy),
            percent(e.test_accuracy)
        );
    }
}

/// A fraction as a percentage with two decimals.
fn percent(fraction: f64) -> String {
    format!("{:.2} %", fraction * 100.0)
}

/// A difference of fractions in percentage points, signed.
fn points(delta: f64) -> String {
    format!("{:+.2} pp", delta * 100.0)
}

/// GitLab's metrics report: one `name value` line per figure.
pub fn render_metrics(card: &ModelCard, baseline: &Baseline) -> String {
    let m = &card.metrics;
    let mut out = format!(
        "test_accuracy {}\ntest_loss {}\ntrain_loss {}\n",
        m.test_accuracy, m.test_loss, m.train_loss
    );
    let summary = baseline.summary.as_ref();
    let production = summary.and_then(|s| s.production.as_ref()).map(|p| p.test_accuracy);
    let average = summary.and_then(|s| s.average_test_accuracy);
    for (name, other) in [("production", production), ("average", average)] {
        if let Some(v) = other.filter(|v| v.is_finite()) {
            let _ = writeln!(out, "test_accuracy_delta_{name} {}", m.test_accuracy - v);
        }
    }
    for c in &m.test.per_class {
        let _ = writeln!(out, "class_{}_accuracy {}", c.class, c.recall);
    }
    out
}

/// The decision as shell assignments for `register-model` (`. decision.env`).
pub fn render_decision(decision: &Decision) -> String {
    let reason = decision.reason.replace('\'', "");
    format!("PROMOTE={}\nDECISION='{reason}'\n", decision.promote)
}

/// Draws one line chart per call: the series (training, test) against the epoch, without
/// text, so that no font is needed; the review names the colours.
pub fn draw_chart(path: &Path, series: [&[f64]; 2]) -> anyhow::Result<()> {
    let (w, h) = CHART_SIZE;
    let mut pixels = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_error(&e))?;
        let values = series.iter().flat_map(|s| s.iter().copied()).filter(|v| v.is_finite());
        let (lo, hi) =
            values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (lo, hi) = if lo < hi { (lo, hi) } else { (lo - 0.5, lo + 0.5) };
        let pad = (hi - lo) * 0.05;
        let epochs = series.iter().map(|s| s.len()).max().unwrap_or(1).max(2);
        let mut chart = ChartBuilder::on(&root)
            .margin(16)
            .build_cartesian_2d(1.0..epochs as f64, (lo - pad)..(hi + pad))
            .map_err(|e| draw_error(&e))?;
        chart
            .configure_mesh()
            .x_labels(epochs)
            .y_labels(6)
            .disable_x_mesh()
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| draw_error(&e))?;
        for (values, (colour, _)) in series.iter().zip(SERIES) {
            let points = values.iter().enumerate().map(|(i, v)| ((i + 1) as f64, *v));
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(3)))
                .map_err(|e| draw_error(&e))?;
            chart
                .draw_series(points.map(|p| Circle::new(p, 4, colour.filled())))
                .map_err(|e| draw_error(&e))?;
        }
        root.present().map_err(|e| draw_error(&e))?;
    }
    let picture = image::RgbImage::from_raw(w, h, pixels).context("chart buffer size")?;
    picture.save(path).with_context(|| format!("writing {}", path.display()))
}

fn draw_error(e: &impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e}")
}

/// Writes review.md, loss.png, accuracy.png, metrics.txt and decision.env into `out` and
/// returns the review.
pub fn write_report(
    out: &Path,
    card: &ModelCard,
    epochs: &[EpochMetrics],
    baseline: &Baseline,
    tolerance: f64,
    links: &Links,
) -> anyhow::Result<String> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let production = baseline.summary.as_ref().and_then(|s| s.production.as_ref());
    let decision = decide(card.metrics.test_accuracy, production, tolerance);
    let review = render_markdown(card, epochs, baseline, &decision, links);
    let column = |f: fn(&EpochMetrics) -> f64| epochs.iter().map(f).collect::<Vec<_>>();
    let (train_loss, test_loss) = (column(|e| e.train_loss), column(|e| e.test_loss));
    let (train_acc, test_acc) = (column(|e| e.train_accuracy), column(|e| e.test_accuracy));
    draw_chart(&out.join("loss.png"), [&train_loss, &test_loss])?;
    draw_chart(&out.join("accuracy.png"), [&train_acc, &test_acc])?;
    let files = [
        ("review.md", review.clone()),
        ("metrics.txt", render_metrics(card, baseline)),
        ("decision.env", render_decision(&decision)),
    ];
    for (name, text) in files {
        let path = out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    tracing::info!(out = %out.display(), promote = decision.promote, reason = %decision.reason, "review written");
    Ok(review)
}

/// The summary and production card from a registry; the production card is left out, with a
/// warning, when it cannot be pulled.
pub fn baseline_from_registry(uri: &str, model: &str) -> anyhow::Result<Baseline> {
    let registry = registry_client::open(uri, Token::from_env())?;
    let summary = registry.summary(model).context("reading the registry summary")?;
    let production = match &summary.production {
        None => None,
        Some(_) => {
            let tmp = tempfile::tempdir()?;
            let dest = tmp.path().join("production");
            let pulled = registry
                .pull(model, &Selector::Alias(PRODUCTION_ALIAS.into()), &dest)
                .map_err(anyhow::Error::from)
                .and_then(|_| Ok(ModelCard::read(&dest.join(CARD_FILE))?));
            pulled.inspect_err(|e| tracing::warn!("no per-class comparison: {e:#}")).ok()
        }
    };
    Ok(Baseline { summary: Some(summary), production })
}

/// The summary and production card from files.
pub fn baseline_from_files(
    summary: Option<&Path>,
    production: Option<&Path>,
) -> anyhow::Result<Baseline> {
    let summary = summary
        .map(|p| -> anyhow::Result<Summary> {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("invalid summary {}", p.display()))
        })
        .transpose()?;
    let production = production.map(|dir| ModelCard::read(&dir.join(CARD_FILE))).transpose()?;
    Ok(Baseline { summary, production })
}

/// Where a merge-request note goes.
#[derive(Debug, Clone)]
pub struct NoteTarget {
    /// GitLab's REST API root, such as `https://gitlab.example.com/api/v4`.
    pub api_url: String,
    /// Project id or `group/project` path.
    pub project_id: String,
    /// Merge request IID.
    pub merge_request: String,
    /// The credential.
    pub token: NoteToken,
}

/// A GitLab credential and the header it travels in.
#[derive(Debug, Clone)]
pub enum NoteToken {
    /// A personal, project or group access token (`PRIVATE-TOKEN`).
    Private(Token),
    /// A CI job token (`JOB-TOKEN`).
    Job(Token),
}

impl NoteToken {
    /// REVIEW_NOTE_TOKEN as a private token, else CI_JOB_TOKEN as a job token.
    pub fn from_env() -> Option<Self> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        var("REVIEW_NOTE_TOKEN")
            .map(|t| Self::Private(Token::new(t)))
            .or_else(|| var("CI_JOB_TOKEN").map(|t| Self::Job(Token::new(t))))
    }

    fn header(&self) -> (&'static str, &str) {
        match self {
            Self::Private(t) => ("PRIVATE-TOKEN", t.expose()),
            Self::Job(t) => ("JOB-TOKEN", t.expose()),
        }
    }
}

/// What [`upsert_note`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteAction {
    /// A new note, with its id.
    Created(u64),
    /// The earlier note, with its id, now holds the new body.
    Updated(u64),
}

#[derive(serde::Deserialize)]
struct Note {
    id: u64,
    body: String,
}

/// Posts `body` on the merge request, or replaces the body of the note that already starts
/// with [`NOTE_MARKER`], so that a merge request carries one review however often it is pushed.
pub fn upsert_note(target: &NoteTarget, body: &str) -> anyhow::Result<NoteAction> {
    let client =
        reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
    let notes_url = format!(
        "{}/projects/{}/merge_requests/{}/notes",
        target.api_url.trim_end_matches('/'),
        target.project_id.replace('/', "%2F"),
        target.merge_request
    );
    let (header, token) = target.token.header();
    let payload = serde_json::to_vec(&serde_json::json!({ "body": body }))?;
    let send = |request: reqwest::blocking::RequestBuilder| -> anyhow::Result<reqwest::blocking::Response> {
        let response = request.header(header, token).send().context("reaching GitLab")?;
        let status = response.status();
        if !status.is_success() {
            bail!("GitLab answered {status}: {}", response.text().unwrap_or_default());
        }
        Ok(response)
    };
    let existing = find_note(&notes_url, |url| send(client.get(url)))?;
    let json = |r: reqwest::blocking::RequestBuilder| {
        r.header(reqwest::header::CONTENT_TYPE, "application/json").body(payload.clone())
    };
    let action = match existing {
        Some(id) => {
            send(json(client.put(format!("{notes_url}/{id}"))))?;
            NoteAction::Updated(id)
        }
        None => {
            let created: Note =
                serde_json::from_slice(&send(json(client.post(&notes_url)))?.bytes()?)?;
            NoteAction::Created(created.id)
        }
    };
    tracing::info!(?action, merge_request = %target.merge_request, "review note posted");
    Ok(action)
}

/// Pages through the notes, newest first, for the one that starts with the marker.
fn find_note(
    notes_url: &str,
    get: impl Fn(&str) -> anyhow::Result<reqwest::blocking::Response>,
) -> anyhow::Result<Option<u64>> {
    let mut page = "1".to_owned();
    loop {
        let url = format!("{notes_url}?sort=desc&order_by=created_at&per_page=100&page={page}");
        let response = get(&url)?;
        let next = response
            .headers()
            .get("x-next-page")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_default();
        let notes: Vec<Note> =
            serde_json::from_slice(&response.bytes()?).context("GitLab's list of notes")?;
        if let Some(note) = notes.iter().find(|n| n.body.starts_with(NOTE_MARKER)) {
            return Ok(Some(note.id));
        }
        if next.is_empty() || next == page {
            return Ok(None);
        }
        page = next;
    }
}

/// `trainer report`: writes the review and, when asked, posts it.
pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let card = ModelCard::read(&args.model.join(CARD_FILE))?;
    let epochs = read_epochs(&args.model)?;
    let baseline = match &args.registry {
        Some(uri) => baseline_from_registry(uri, &args.model_name)?,
        None => baseline_from_files(args.summary.as_deref(), args.production_model.as_deref())?,
    };
    let links = Links {
        run_id: args.run_id.clone().filter(|s| !s.is_empty()),
        run_url: args.run_url.clone().filter(|s| !s.is_empty()),
        image_base_url: args.image_base_url.clone(),
    };
    let review = write_report(&args.out, &card, &epochs, &baseline, args.tolerance, &links)?;
    if args.note.post_note {
        upsert_note(&note_target(&args.note)?, &review)?;
    }
    Ok(())
}

fn note_target(args: &NoteArgs) -> anyhow::Result<NoteTarget> {
    let need = |value: &Option<String>, what: &str| {
        value.clone().filter(|v| !v.is_empty()).with_context(|| format!("posting needs {what}"))
    };
    Ok(NoteTarget {
        api_url: need(&args.gitlab_api_url, "--gitlab-api-url or CI_API_V4_URL")?,
        project_id: need(&args.project_id, "--project-id or CI_PROJECT_ID")?,
        merge_request: need(&args.merge_request, "--merge-request")?,
        token: NoteToken::from_env().context("posting needs REVIEW_NOTE_TOKEN or CI_JOB_TOKEN")?,
    })
}
