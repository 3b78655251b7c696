use crate::cli::{DeployCmd, GlobalArgs};
use crate::status::ExitStatus;

pub async fn run(_cmd: DeployCmd, _global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`kfp-ci deploy` is not implemented yet")
}
