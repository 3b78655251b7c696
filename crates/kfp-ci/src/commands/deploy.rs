//! `kfp-ci deploy`: the whole data path (`crate::deploy`); table on stderr, JSON on stdout or in a
//! file, CI outputs and the notification.

use anyhow::Result;

use crate::cli::{DeployCmd, GlobalArgs};
use crate::status::ExitStatus;

pub async fn run(cmd: DeployCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    crate::deploy::run(&cmd, global).await
}
