//! Progress for humans: bars on a terminal, nothing for `--json`, pipes and tests.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::backend::Progress;

/// Whether the pipeline draws progress bars (on stderr).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ui {
    /// Draw nothing.
    pub quiet: bool,
    /// The user's request to stop starting invocations (Ctrl-C), passed to every job.
    pub stop: crate::backend::Stop,
}

impl Ui {
    /// No bars (tests, `--json`).
    pub const QUIET: Ui = Ui {
        quiet: true,
        stop: crate::backend::Stop::NEVER,
    };

    /// A bar of `len` steps drawn with `template` (indicatif syntax), hidden when quiet.
    pub fn bar(&self, len: u64, template: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
        bar
    }
}

/// A run's progress bar, fed by the backend as batches finish.
#[derive(Debug)]
pub struct BarProgress {
    /// The bar (finish it when the run ends).
    pub bar: ProgressBar,
    tasks: usize,
    done: AtomicUsize,
    failed: AtomicUsize,
}

impl BarProgress {
    /// A bar over `batches` batches of `tasks` tasks in all, labelled `label`.
    pub fn new(ui: Ui, batches: usize, tasks: usize, label: &str) -> Self {
        let bar = ui.bar(
            batches as u64,
            "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} batches · {msg}",
        );
        if !ui.quiet {
            bar.set_prefix(label.to_owned());
            bar.enable_steady_tick(Duration::from_millis(200));
        }
        bar.set_message(format!("0/{tasks} tasks, 0 failed"));
        Self {
            bar,
            tasks,
            done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
        }
    }
}

/// A run's progress: every batch journalled first, then counted on the bar.
#[derive(Debug)]
pub struct RunProgress<'a> {
    /// The bar.
    pub bar: &'a BarProgress,
    /// The run's journal.
    pub journal: &'a crate::journal::Journal,
}

impl Progress for RunProgress<'_> {
    fn batch_done(&self, tasks: usize, failed: usize) {
        self.bar.batch_done(tasks, failed);
    }

    fn batch_result(&self, result: &propack_runtime::BatchResult) {
        // A journal that cannot be written must not stop a run that is producing results;
        // say so once per batch, loudly.
        if let Err(e) = self.journal.result(result) {
            eprintln!("warning: writing {}: {e}", self.journal.path().display());
        }
    }

    fn batch_lost(&self, task_ids: &[String], error: &str) {
        if let Err(e) = self.journal.failed(task_ids, error) {
            eprintln!("warning: writing {}: {e}", self.journal.path().display());
        }
    }

    fn execution_started(&self, execution: &crate::journal::ExecutionRecord) {
        if let Err(e) = self.journal.execution(execution) {
            eprintln!("warning: writing {}: {e}", self.journal.path().display());
        }
    }

    fn execution_left(&self, arn: &str, stopped: bool) {
        let run_dir = self.journal.path().parent().unwrap_or(Path::new("."));
        let text = if stopped {
            format!(
                "stopped the execution {arn} (--stop-on-interrupt); `orchestrator resume {}` \
                 collects what it finished and runs the rest",
                run_dir.display()
            )
        } else {
            format!(
                "the execution keeps running; `orchestrator resume {}` re-attaches to it ({arn})",
                run_dir.display()
            )
        };
        self.note(&text);
    }

    fn note(&self, text: &str) {
        self.bar.bar.suspend(|| eprintln!("{text}"));
    }
}

impl Progress for BarProgress {
    fn batch_done(&self, tasks: usize, failed: usize) {
        let d = self.done.fetch_add(tasks, Ordering::SeqCst) + tasks;
        let f = self.failed.fetch_add(failed, Ordering::SeqCst) + failed;
        self.bar.inc(1);
        self.bar
            .set_message(format!("{d}/{} tasks, {f} failed", self.tasks));
    }
}
