use crate::cli::{CheckCmd, GlobalArgs};
use crate::status::ExitStatus;

pub async fn run(_cmd: CheckCmd, _global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`kfp-ci check` is not implemented yet")
}
