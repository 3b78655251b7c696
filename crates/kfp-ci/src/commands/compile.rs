use crate::cli::{CompileCmd, GlobalArgs};
use crate::status::ExitStatus;

pub async fn run(_cmd: CompileCmd, _global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`kfp-ci compile` is not implemented yet")
}
