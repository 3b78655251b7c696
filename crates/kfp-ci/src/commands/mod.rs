//! One function per command: typed arguments in, an exit status out.

mod cache;
mod check;
mod cleanup;
mod comment;
mod compile;
mod completions;
mod config;
mod deploy;
mod diff;
mod doctor;
mod history;
mod init;
mod inputs;
mod notify;
mod plan;
mod promote;
mod render;
mod rollback;
mod serve;

use crate::cli::{Cli, Command};
use crate::status::ExitStatus;

pub async fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    let global = cli.global;
    match cli.command {
        Command::Compile(cmd) => compile::run(cmd, &global).await,
        Command::Check(cmd) => check::run(cmd, &global).await,
        Command::Plan(cmd) => plan::run(cmd, &global).await,
        Command::Deploy(cmd) => deploy::run(*cmd, &global).await,
        Command::Serve(cmd) => serve::run(cmd, &global).await,
        Command::Init(cmd) => init::run(cmd, &global).await,
        Command::Notify(cmd) => notify::run(cmd, &global).await,
        Command::Doctor(cmd) => doctor::run(cmd, &global).await,
        Command::Diff(cmd) => diff::run(cmd, &global).await,
        Command::History(cmd) => history::run(cmd, &global).await,
        Command::Rollback(cmd) => rollback::run(cmd, &global).await,
        Command::Promote(cmd) => promote::run(cmd, &global).await,
        Command::Cleanup(cmd) => cleanup::run(cmd, &global).await,
        Command::Completions(cmd) => completions::run(cmd, &global).await,
        Command::Config(cmd) => config::run(cmd, &global).await,
        Command::Render(cmd) => render::run(cmd, &global).await,
        Command::Cache(cmd) => cache::run(cmd, &global).await,
    }
}
