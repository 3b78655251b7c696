//! `kfp-ci plan`: compile, look every pipeline up on the server, print what deploy would do.

use anyhow::Result;

use crate::cli::{GlobalArgs, PlanCmd};
use crate::status::ExitStatus;

pub async fn run(cmd: PlanCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    let report = crate::prepare::plan_report(&cmd.compile, &cmd.target, global).await?;
    crate::report::emit(&report, cmd.output.into(), global.verbose > 0, None, true)?;
    Ok(report.plan_status(cmd.detailed_exitcode))
}
