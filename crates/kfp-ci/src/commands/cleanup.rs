//! `kfp-ci cleanup --preview NAME`, and the deploy hooks for `--preview` and `--prune`
//! (`crate::review` holds the rules).

use std::collections::BTreeSet;

use anyhow::{Result, anyhow};

use super::history::open;
use super::plan::Prepared;
use crate::cli::{CleanupCmd, GlobalArgs, OutputFormat};
use crate::plan::{self, PlanItem};
use crate::review::{self, PruneItem};
use crate::status::ExitStatus;

pub async fn run(cmd: CleanupCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    let preview = review::check_preview_name(&cmd.preview)?;
    let connected = open(&cmd.target, global).await?;
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
        if !global.quiet {
            eprintln!("{}: {outcome}", p.name);
        }
        results.push(
            serde_json::json!({"name": p.name, "pipeline_id": p.pipeline_id, "result": outcome}),
        );
    }
    if results.is_empty() && !global.quiet {
        eprintln!("no preview pipelines of {preview} at {}", connected.label);
    }
    if cmd.output == OutputFormat::Json {
        let mut json =
            serde_json::json!({"preview": preview, "pipelines": results, "dry_run": cmd.dry_run});
        crate::redact::redact_json(&mut json);
        println!("{json}");
    }
    Ok(if failed {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// `deploy --preview NAME`: each created or changed item is replaced by its preview pipeline's
/// plan (create, new version, or unchanged when the preview already holds the spec); unchanged
/// and failed items stay as they are, so apply leaves the production pipelines alone.
pub(super) async fn preview_items(prepared: &mut Prepared, preview: &str) -> Result<()> {
    let kubernetes = prepared.health.pipeline_store == "kubernetes";
    let locals = review::preview_locals(&prepared.items, preview, kubernetes);
    let remotes = crate::apply::fetch_remote(
        &prepared.client,
        &locals,
        &prepared.target.namespace,
        prepared.health.multi_user,
    )
    .await
    .map_err(|e| anyhow!("looking up the preview pipelines: {}", e.server_message()))?;
    let mut previews = plan::plan(locals, remotes, false).into_iter();
    let items: Vec<PlanItem> = std::mem::take(&mut prepared.items)
        .into_iter()
        .map(|item| {
            if item.changes() {
                previews.next().unwrap_or(item)
            } else {
                item
            }
        })
        .collect();
    prepared.items = items;
    Ok(())
}

/// `deploy --prune`, planning half: kfp-ci's pipelines whose files are gone. A failed listing
/// (pipelines or recurring runs) prunes nothing and says why.
pub(super) async fn prune_plan(
    prepared: &Prepared,
    root: &std::path::Path,
) -> Result<Vec<PruneItem>, String> {
    let ns = &prepared.target.namespace;
    let pipelines = review::all_pipelines(&prepared.client, ns)
        .await
        .map_err(|e| {
            format!(
                "--prune: listing the pipelines failed, nothing pruned: {}",
                e.server_message()
            )
        })?;
    let in_use = review::recurring_runs(&prepared.client, ns)
        .await
        .map_err(|e| {
            format!(
                "--prune: listing the recurring runs failed, nothing pruned: {}",
                e.server_message()
            )
        })?;
    let deployed: BTreeSet<String> = prepared.items.iter().map(|i| i.name.clone()).collect();
    Ok(review::prune_plan(&pipelines, root, &deployed, &in_use))
}

/// `deploy --prune`, applying half: delete the planned pipelines with their versions.
pub(super) async fn prune_apply(prepared: &Prepared, items: &mut [PruneItem]) {
    for item in items.iter_mut().filter(|i| i.action == "delete") {
        let p = kfp_api::wire::Pipeline {
            pipeline_id: item.pipeline_id.clone(),
            name: item.name.clone(),
            ..Default::default()
        };
        match review::delete_with_versions(&prepared.client, &p).await {
            Ok(n) => {
                item.action = "deleted".into();
                item.reason = format!("{} ({n} version(s))", item.reason);
            }
            Err(e) => {
                item.action = "failed".into();
                item.reason = format!("{}: {}", item.reason, e.server_message());
            }
        }
    }
}
