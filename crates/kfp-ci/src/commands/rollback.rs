//! `kfp-ci rollback PIPELINE --to VERSION_NAME|GIT_SHA`: KFP runs the newest version by default
//! and versions are immutable, so a rollback uploads the chosen version's exact spec as a new
//! newest version, tagged `rollback-of=<version>` (described so where the server keeps no tags).
//! The rules: `crate::rollback`.

use anyhow::Result;
use serde_json::Value;

use crate::cli::{GlobalArgs, OutputFormat, RollbackCmd};
use crate::output;
use crate::session::Session;
use crate::status::ExitStatus;

pub async fn run(cmd: RollbackCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    let connected = Session::open(&cmd.target, global).await?;
    let pipeline = connected.pipeline(&cmd.pipeline).await?;
    let versions = connected.versions(&pipeline).await?;
    let plan = crate::rollback::plan(&pipeline.name, &versions, &cmd.to)?;
    let name = &pipeline.name;
    if plan.changes.is_empty() {
        output::always(&plan.nothing_to_do(name));
        print_result(&cmd, &plan.result(name, cmd.dry_run, None))?;
        return Ok(ExitStatus::Success);
    }
    output::message(&plan.preview(name));
    if cmd.dry_run {
        output::always("dry run: nothing uploaded\n");
        print_result(&cmd, &plan.result(name, cmd.dry_run, None))?;
        return Ok(ExitStatus::Success);
    }
    let version = crate::rollback::upload(
        &connected,
        &pipeline.pipeline_id,
        plan.chosen,
        cmd.version_tag.as_deref(),
    )
    .await?;
    output::always(&plan.uploaded(name, &version));
    print_result(&cmd, &plan.result(name, cmd.dry_run, Some(&version)))?;
    Ok(ExitStatus::Success)
}

fn print_result(cmd: &RollbackCmd, result: &Value) -> std::io::Result<()> {
    if cmd.output == OutputFormat::Json {
        let mut json = result.clone();
        crate::redact::redact_json(&mut json);
        output::data_line(&json.to_string())?;
    }
    Ok(())
}
