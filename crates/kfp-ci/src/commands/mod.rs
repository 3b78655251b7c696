//! One function per command: typed arguments in, one call of a stage or workflow module, an exit
//! status out. No command module imports another; the shared steps live in the stage modules
//! (`session`, `prepare`, `deploy`, `report`, …; docs/architecture.md).

mod cache;
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
        // `check` is `compile` that writes nothing (laptops, pre-commit).
        Command::Check(cmd) if cmd.print_inputs || cmd.verify_workflow => {
            inputs::run(&cmd, &global).await
        }
        Command::Check(cmd) => compile::run_compile(&cmd.compile, None, cmd.output, &global).await,
        Command::Plan(cmd) if cmd.comment || cmd.output == crate::cli::PlanOutput::Markdown => {
            comment::run(cmd, &global).await
        }
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
