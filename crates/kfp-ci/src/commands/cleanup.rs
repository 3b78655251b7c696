//! stub
use crate::cli::GlobalArgs;
use crate::status::ExitStatus;
use anyhow::Result;

pub async fn run(_cmd: crate::cli::CleanupCmd, _global: &GlobalArgs) -> Result<ExitStatus> {
    anyhow::bail!("not yet")
}
