//! kfp-ci: ship Kubeflow Pipelines from git.
//!
//! The data path, one module each (docs/architecture.md):
//! discover → compile → lookup → plan → apply → report → ci/notify, sequenced by `prepare` and
//! `deploy`; `session` connects to the target.
//! `serve` (the local KFP API) lives in the `kfp-serve` crate; the wire format in `kfp-api`.

pub mod cli;
pub mod commands;
pub mod logging;
pub mod output;
pub mod settings;
pub mod status;

// The data path.
pub mod apply;
pub mod compile;
pub mod deploy;
pub mod discover;
pub mod lookup;
pub mod notify;
pub mod plan;
pub mod prepare;
pub mod pyenv;
pub mod record;
pub mod report;
pub mod session;

// Around it.
pub mod changes;
pub mod child_env;
pub mod ci;
pub mod client;
pub mod compat;
pub mod dag;
pub mod diff;
pub mod forge;
pub mod git;
pub mod history;
pub mod http;
pub mod init;
pub mod interrupt;
pub mod paths;
pub mod pins;
pub mod promote;
pub mod redact;
pub mod render;
pub mod review;
pub mod rollback;
pub mod row;
pub mod run_params;
pub mod schedules;
pub mod smoke;
pub mod target;
pub mod text;
pub mod versions;

#[cfg(test)]
mod module_graph;

use std::process::ExitCode;

use clap::Parser;

use crate::status::ExitStatus;

pub fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init(&cli.global);
    output::init(cli.global.quiet);
    // Secrets by convention are hidden from every output of every command, even from text that
    // only passes through (pipeline output, server answers).
    redact::register_env_secrets(&[]);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            output::always(&format!("error: cannot start the async runtime: {err}\n"));
            return ExitStatus::Error.into();
        }
    };
    let result = runtime.block_on(commands::run(cli));
    // Stray requests or child waits must not hold the process open.
    runtime.shutdown_background();
    match result {
        Ok(status) => status.into(),
        Err(err) => {
            status::print_error(&err);
            ExitStatus::Error.into()
        }
    }
}
