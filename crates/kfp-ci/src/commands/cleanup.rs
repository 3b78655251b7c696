//! `kfp-ci cleanup --preview NAME`: delete a preview's pipelines (`crate::review` holds the
//! rules, and the deploy hooks for `--preview` and `--prune`).

use anyhow::{Result, anyhow};

use crate::cli::{CleanupCmd, GlobalArgs, OutputFormat};
use crate::output;
use crate::review;
use crate::session::Session;
use crate::status::ExitStatus;

pub async fn run(cmd: CleanupCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    let preview = review::check_preview_name(&cmd.preview)?;
    let connected = Session::open(&cmd.target, global).await?;
    let pipelines = review::all_pipelines(&connected.client, &connected.target.namespace)
        .await
        .map_err(|e| {
            anyhow!(
                "listing the pipelines at {}: {}",
                connected.label,
                e.server_message()
            )
        })?;
    let mut results = Vec::new();
    let mut failed = false;
    for p in review::preview_pipelines(&pipelines, &preview) {
        let outcome = if cmd.dry_run {
            "would delete".to_string()
        } else {
            match review::delete_with_versions(&connected.client, p).await {
                Ok(n) => format!("deleted with {n} version(s)"),
                Err(e) => {
                    failed = true;
                    format!("failed: {}", e.server_message())
                }
            }
        };
        output::message_line(&format!("{}: {outcome}", p.name));
        results.push(
            serde_json::json!({"name": p.name, "pipeline_id": p.pipeline_id, "result": outcome}),
        );
    }
    if results.is_empty() {
        output::message_line(&format!(
            "no preview pipelines of {preview} at {}",
            connected.label
        ));
    }
    if cmd.output == OutputFormat::Json {
        let mut json =
            serde_json::json!({"preview": preview, "pipelines": results, "dry_run": cmd.dry_run});
        crate::redact::redact_json(&mut json);
        output::data_line(&json.to_string())?;
    }
    Ok(if failed {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}
