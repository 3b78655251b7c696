//! Messages go to stderr; stdout is for data (`--output json`). Filter from `KFP_CI_LOG`, then
//! `RUST_LOG`, then `-v`/`-q`; no colour with `NO_COLOR` or when stderr is not a terminal.
//!
//! One plain line per message, as CI logs want them: info as it is, `warning: …`, `error: …`,
//! `debug: …`. Every line passes through the secret redactor on its way out.

use std::io::{IsTerminal, Write};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::GlobalArgs;

pub fn init(global: &GlobalArgs) {
    let default = match (global.quiet, global.verbose) {
        // The TLS verifier logs each refused certificate as an error of its own; kfp-ci's error
        // already says why, with a hint (`-v` shows them).
        (true, _) => "error,rustls_platform_verifier=off",
        (false, 0) => "warn,kfp_ci=info,kfp_serve=info,rustls_platform_verifier=off",
        (false, 1) => "info,kfp_ci=debug,kfp_serve=debug",
        (false, _) => "debug",
    };
    let filter = std::env::var("KFP_CI_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr)
        // Also governs the fields (`key=value`), which are italic/dim with ANSI codes otherwise,
        // even in a file or a CI log.
        .with_ansi(use_color())
        .event_format(PlainLine { color: use_color() })
        .try_init();
}

/// Colour only on a terminal, never with `NO_COLOR` set (any value) or in CI logs.
pub fn use_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// Progress bars only on an interactive terminal outside CI.
pub fn show_progress() -> bool {
    std::io::stderr().is_terminal()
        && std::env::var("CI").is_err()
        && std::env::var_os("KFP_CI_NO_PROGRESS").is_none()
}

/// `warning: message key=value`, or just the message for info.
struct PlainLine {
    color: bool,
}

impl<S, N> FormatEvent<S, N> for PlainLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let prefix = match *event.metadata().level() {
            Level::ERROR => Some(("error", "\x1b[1;31m")),
            Level::WARN => Some(("warning", "\x1b[1;33m")),
            Level::INFO => None,
            _ => Some(("debug", "\x1b[2m")),
        };
        if let Some((word, colour)) = prefix {
            if self.color {
                write!(writer, "{colour}{word}\x1b[0m: ")?;
            } else {
                write!(writer, "{word}: ")?;
            }
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// stderr, with every registered secret replaced. tracing-subscriber writes each formatted event
/// with one `write_all`, so a secret is never split across two writes.
struct RedactingStderr;

struct RedactingWriter;

impl Write for RedactingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(crate::redact::redact(&text).as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingWriter;
    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter
    }
}
