use crate::cli::{GlobalArgs, PlanCmd};
use crate::status::ExitStatus;

pub async fn run(_cmd: PlanCmd, _global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`kfp-ci plan` is not implemented yet")
}
