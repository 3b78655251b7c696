//! Messages go to stderr; stdout is for data (`--output json`). Filter from `KFP_CI_LOG`, then
//! `RUST_LOG`, then `-v`/`-q`; no colour with `NO_COLOR` or when stderr is not a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::GlobalArgs;

pub fn init(global: &GlobalArgs) {
    let default = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn,kfp_ci=info,kfp_serve=info",
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
        .with_writer(std::io::stderr)
        .with_ansi(use_color())
        .with_target(false)
        .without_time()
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
