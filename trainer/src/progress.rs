//! Training progress for people and for logs: a bar on a terminal, plain periodic lines
//! otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often plain progress lines are written when no terminal is attached.
const LINE_INTERVAL: Duration = Duration::from_secs(15);

/// Where progress goes.
#[derive(Debug)]
pub enum Progress {
    /// A live bar on the terminal.
    Bar(Option<ProgressBar>),
    /// A log line now and then.
    Lines {
        /// When the last line was written.
        last: Instant,
    },
}

impl Progress {
    /// A bar when standard error is a terminal, lines otherwise.
    pub fn detect() -> Self {
        if std::io::stderr().is_terminal() {
            Self::Bar(None)
        } else {
            Self::Lines { last: Instant::now() }
        }
    }

    /// Announces an epoch of `steps` steps.
    pub fn start_epoch(&mut self, epoch: usize, epochs: usize, steps: usize) {
        if let Self::Bar(bar) = self {
            let b = ProgressBar::new(steps as u64);
            let style = ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} steps, {per_sec}, eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            b.set_style(style);
            b.set_prefix(format!("{epoch}/{epochs}"));
            *bar = Some(b);
        }
    }

    /// Reports that `done` of `steps` steps of `epoch` are complete.
    pub fn step(&mut self, epoch: usize, done: usize, steps: usize, loss: f64) {
        match self {
            Self::Bar(Some(bar)) => {
                bar.set_position(done as u64);
                if done.is_multiple_of(20) {
                    bar.set_message(format!("loss {loss:.4}"));
                }
            }
            Self::Bar(None) => {}
            Self::Lines { last } if last.elapsed() >= LINE_INTERVAL => {
                *last = Instant::now();
                tracing::info!(
                    epoch,
                    step = done,
                    steps,
                    loss = format_args!("{loss:.4}"),
                    "training"
                );
            }
            Self::Lines { .. } => {}
        }
    }

    /// Closes the epoch's bar, if any.
    pub fn finish_epoch(&mut self) {
        if let Self::Bar(bar) = self
            && let Some(bar) = bar.take()
        {
            bar.finish_and_clear();
        }
    }
}
