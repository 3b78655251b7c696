use crate::cli::{GlobalArgs, ServeCmd};
use crate::status::ExitStatus;

pub async fn run(_cmd: ServeCmd, _global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`kfp-ci serve` is not implemented yet")
}
