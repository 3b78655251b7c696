//! One function per command: typed arguments in, an exit status out.

mod cache;
mod check;
mod compile;
mod deploy;
mod doctor;
mod init;
mod inputs;
mod notify;
mod plan;
mod render;
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
        Command::Render(cmd) => render::run(cmd, &global).await,
        Command::Cache(cmd) => cache::run(cmd, &global).await,
    }
}
