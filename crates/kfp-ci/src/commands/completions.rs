//! `kfp-ci completions SHELL`: a completion script on stdout, generated from the clap definitions.

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell as Target;

use crate::cli::{Cli, CompletionsCmd, GlobalArgs, Shell};
use crate::status::ExitStatus;

pub async fn run(cmd: CompletionsCmd, _global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let shell = match cmd.shell {
        Shell::Bash => Target::Bash,
        Shell::Zsh => Target::Zsh,
        Shell::Fish => Target::Fish,
        Shell::Powershell => Target::PowerShell,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kfp-ci", &mut script);
    if shell == Target::Bash {
        script = fix_bash(&script);
    }
    crate::output::data(&String::from_utf8_lossy(&script))
        .context("cannot write the completion script to stdout")?;
    Ok(ExitStatus::Success)
}

/// clap_complete's bash script spells the state of a subcommand of a hyphenated binary two ways
/// (`kfp__ci__subcmd__init` in the dispatch loop, `kfp__subcmd__ci__subcmd__init` in the case
/// arms), so nothing after a subcommand completes (clap-rs/clap#6421). Spell the arms like the loop.
fn fix_bash(script: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(script)
        .replace("kfp__subcmd__ci__", "kfp__ci__")
        .into_bytes()
}
