//! `kfp-ci rollback PIPELINE --to VERSION_NAME|GIT_SHA`: KFP runs the newest version by default
//! and versions are immutable, so a rollback uploads the chosen version's exact spec as a new
//! newest version, tagged `rollback-of=<version>` (described so where the server keeps no tags).

//! The rules: `crate::rollback`.

use anyhow::{Result, anyhow, bail};
use serde_json::Value;

use crate::cli::{GlobalArgs, OutputFormat, RollbackCmd};
use crate::history::{self, ROLLBACK_TAG, ROLLBACK_WORDS, label};
use crate::output;
use crate::rollback::{choose, upload_spec};
use crate::session::Session;
use crate::status::ExitStatus;
use crate::versions::DESCRIPTION_MARKER;

pub async fn run(cmd: RollbackCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    let connected = Session::open(&cmd.target, global).await?;
    let pipeline = connected.pipeline(&cmd.pipeline).await?;
    let versions = connected.versions(&pipeline).await?;
    let Some(newest) = versions.first() else {
        bail!(
            "pipeline `{}` has no version to roll back from",
            pipeline.name
        );
    };
    let chosen = choose(&versions, &cmd.to).ok_or_else(|| {
        anyhow!(
            "pipeline `{}` has no version named `{}` and none deployed from a git sha starting with it: `kfp-ci history {}` lists them",
            pipeline.name,
            cmd.to,
            pipeline.name
        )
    })?;
    let (Some(old_spec), Some(new_spec)) = (&newest.pipeline_spec, &chosen.pipeline_spec) else {
        bail!(
            "version {} or {} of `{}` has no readable spec",
            label(newest),
            label(chosen),
            pipeline.name
        );
    };
    let changes = crate::diff::diff(old_spec, new_spec);
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
    let tag = match &cmd.version_tag {
        Some(t) if !t.trim().is_empty() => t.trim().to_string(),
        Some(_) => bail!("--version-tag is empty"),
        None => format!(
            "rollback-{}-{}",
            label(chosen),
            jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S")
        ),
    };
    let version = upload_spec(
        &connected,
        &pipeline.pipeline_id,
        new_spec,
        &tag,
        &format!(
            "{DESCRIPTION_MARKER} {}: {ROLLBACK_WORDS}{} ({})",
            env!("CARGO_PKG_VERSION"),
            label(chosen),
            history::git_sha(chosen).unwrap_or_else(|| "no git sha".into())
        ),
        [(ROLLBACK_TAG.to_string(), label(chosen))].into(),
        &chosen.code_source_url,
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
