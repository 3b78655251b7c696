//! `kfp-ci check`: `compile` that writes nothing (laptops, pre-commit).

use crate::cli::{CheckCmd, GlobalArgs};
use crate::status::ExitStatus;

pub async fn run(cmd: CheckCmd, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    if cmd.print_inputs || cmd.verify_workflow {
        return super::inputs::run(&cmd, global).await;
    }
    super::compile::run_compile(&cmd.compile, None, cmd.output, global).await
}
