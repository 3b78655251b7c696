//! `kfp-ci rollback PIPELINE --to VERSION_NAME|GIT_SHA`: KFP runs the newest version by default
//! and versions are immutable, so a rollback uploads the chosen version's exact spec as a new
//! newest version, tagged `rollback-of=<version>` (described so where the server keeps no tags).
//! The rules: `crate::rollback`.

use anyhow::Result;
use serde_json::Value;

use crate::cli::{GlobalArgs, OutputFormat, RollbackCmd};
use crate::history::label;
use crate::output;
use crate::session::Session;
use crate::status::ExitStatus;

pub async fn run(cmd: RollbackCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    let connected = Session::open(&cmd.target, global).await?;
    let pipeline = connected.pipeline(&cmd.pipeline).await?;
    let versions = connected.versions(&pipeline).await?;
    let crate::rollback::Plan {
        newest,
        chosen,
        changes,
    } = crate::rollback::plan(&pipeline.name, &versions, &cmd.to)?;
    let mut result = serde_json::json!({
        "pipeline": pipeline.name,
        "from": label(newest),
        "to": label(chosen),
        "changes": changes,
        "dry_run": cmd.dry_run,
    });
    if changes.is_empty() {
        output::always(&format!(
            "{}: the newest version {} already holds the spec of {}; nothing to do\n",
            pipeline.name,
            label(newest),
            label(chosen)
        ));
        result["status"] = "unchanged".into();
        print_result(&cmd, &result)?;
        return Ok(ExitStatus::Success);
    }
    output::message(&format!(
        "{}: rollback from {} to the spec of {}:\n{}",
        pipeline.name,
        label(newest),
        label(chosen),
        crate::diff::render_text(&changes, "  ")
    ));
    if cmd.dry_run {
        output::always("dry run: nothing uploaded\n");
        result["status"] = "planned".into();
        print_result(&cmd, &result)?;
        return Ok(ExitStatus::Success);
    }
    let version = crate::rollback::upload(
        &connected,
        &pipeline.pipeline_id,
        chosen,
        cmd.version_tag.as_deref(),
    )
    .await?;
    output::always(&format!(
        "{}: uploaded version {} holding the spec of {}\n",
        pipeline.name,
        label(&version),
        label(chosen)
    ));
    result["status"] = "done".into();
    result["version_name"] = label(&version).into();
    result["version_id"] = version.pipeline_version_id.clone().into();
    print_result(&cmd, &result)?;
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
