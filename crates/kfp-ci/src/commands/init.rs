use crate::cli::{GlobalArgs, InitCmd};
use crate::status::ExitStatus;

pub async fn run(_cmd: InitCmd, _global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`kfp-ci init` is not implemented yet")
}
