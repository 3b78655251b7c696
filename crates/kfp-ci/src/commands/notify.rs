use crate::cli::{GlobalArgs, NotifyCmd};
use crate::status::ExitStatus;

pub async fn run(_cmd: NotifyCmd, _global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`kfp-ci notify` is not implemented yet")
}
