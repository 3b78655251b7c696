//! `kfp-ci promote --from TARGET --to TARGET [PIPELINE...]`: the second target gets exactly the
//! specs the first serves now (`crate::promote`).

use anyhow::Result;

use crate::cli::{GlobalArgs, PromoteCmd};
use crate::status::ExitStatus;

pub async fn run(cmd: PromoteCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    let report = crate::promote::run(&cmd, global).await?;
    crate::report::emit(&report, cmd.output, global.verbose > 0, None, true)?;
    Ok(if report.has_failures() {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}
