//! The one output layer: stdout is data, stderr is messages.
//!
//! - [`data`] writes to stdout (`--output json`, diffs, listings). A closed pipe
//!   (`kfp-ci plan --output json | head -c1`) is not an error: the rest of the data is dropped
//!   quietly and the command finishes with its own exit status.
//! - [`message`] writes human text to stderr (tables, summaries), unless `-q`.
//! - [`always`] writes to stderr even with `-q` (errors, the one line a signal prints).
//! - [`progress_bar`] is a bar only on an interactive terminal, never in CI, with `-q` or `-v`.
//!
//! Every byte passes through the secret redactor. One-line log messages go through `tracing`
//! (`logging.rs`), which writes to stderr as well.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Called once from `main` with `-q`.
pub fn init(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// `-q` was given: only errors and data.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Did a reader close stdout (`| head`)? Further data is dropped.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Data on stdout, as is (no newline added), secrets redacted. A closed pipe is swallowed; any
/// other write error (a full disk behind `>`) is returned.
pub fn data(text: &str) -> std::io::Result<()> {
    if stdout_closed() {
        return Ok(());
    }
    let text = crate::redact::redact(text);
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        other => other,
    }
}

/// [`data`] plus a newline.
pub fn data_line(text: &str) -> std::io::Result<()> {
    data(&format!("{text}\n"))
}

/// Human text on stderr, unless `-q`; secrets redacted.
pub fn message(text: &str) {
    if !quiet() {
        always(text);
    }
}

/// [`message`] plus a newline.
pub fn message_line(text: &str) {
    if !quiet() {
        always(&format!("{text}\n"));
    }
}

/// Text on stderr even with `-q`; secrets redacted. A closed stderr is ignored: there is nowhere
/// left to say so.
pub fn always(text: &str) {
    let text = crate::redact::redact(text);
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}

/// A progress bar with `template` (indicatif syntax, `{bar}`, `{pos}`, `{len}`), or `None` when
/// no bar should be drawn: not a terminal, in CI, `-q`, or `-v` (debug lines would interleave).
pub fn progress_bar(template: &str) -> Option<indicatif::ProgressBar> {
    let wanted = crate::logging::show_progress()
        && !quiet()
        && tracing::enabled!(tracing::Level::INFO)
        && !tracing::enabled!(tracing::Level::DEBUG);
    wanted.then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    })
}
