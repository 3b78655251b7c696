//! Server-side pieces of review and undo: listing pipelines, which of them kfp-ci created (and
//! from which file), preview pipelines (`deploy --preview`, `cleanup --preview`), pruning
//! (`deploy --prune`) and the recurring-run check that keeps a pipeline in use.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kfp_api::runs::RecurringRun;
use kfp_api::wire::{ListPipelinesResponse, Pipeline};
use serde::{Deserialize, Serialize};

use crate::client::{ApiError, Client};
use crate::plan::{LocalPipeline, PlanItem};
use crate::session::Session;
use crate::versions::DESCRIPTION_MARKER;

/// Every pipeline in `namespace` (every page).
pub async fn all_pipelines(client: &Client, namespace: &str) -> Result<Vec<Pipeline>, ApiError> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let mut query = vec![("page_size", "200"), ("sort_by", "name")];
        if !namespace.is_empty() {
            query.push(("namespace", namespace));
        }
        if !token.is_empty() {
            query.push(("page_token", token.as_str()));
        }
        let value = client.get_value(&["pipelines"], &query).await?;
        let list: ListPipelinesResponse = serde_json::from_value(value).unwrap_or_default();
        out.extend(list.pipelines);
        if list.next_page_token.is_empty() {
            return Ok(out);
        }
        token = list.next_page_token;
    }
}

/// Where a pipeline kfp-ci created came from: its description `Deployed by kfp-ci from <file>`
/// (a preview adds ` (preview <NAME>)`). `None` for pipelines kfp-ci did not create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub file: String,
    pub preview: Option<String>,
}

pub fn provenance(p: &Pipeline) -> Option<Provenance> {
    let rest = p
        .description
        .strip_prefix(DESCRIPTION_MARKER)?
        .strip_prefix(" from ")?;
    match rest
        .strip_suffix(')')
        .and_then(|r| r.rsplit_once(PREVIEW_WORDS))
    {
        Some((file, name)) => Some(Provenance {
            file: file.to_string(),
            preview: Some(name.to_string()),
        }),
        None => Some(Provenance {
            file: rest.to_string(),
            preview: None,
        }),
    }
}

const PREVIEW_WORDS: &str = " (preview ";

// ---------------------------------------------------------------------------------------------
// Previews

/// A preview name: lowercase letters, digits and `-`, 1–40 characters, so `<name>-<NAME>` stays a
/// valid pipeline name on every store.
pub fn check_preview_name(name: &str) -> anyhow::Result<String> {
    let n = name.trim();
    if n.is_empty()
        || n.len() > 40
        || !n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || n.starts_with('-')
        || n.ends_with('-')
    {
        anyhow::bail!(
            "--preview `{name}`: use 1-40 lowercase letters, digits and '-', not starting or ending with '-' (e.g. pr-12)"
        );
    }
    Ok(n.to_string())
}

/// The preview pipeline's name for a production pipeline name.
pub fn preview_pipeline_name(name: &str, preview: &str, kubernetes_store: bool) -> String {
    let joined = format!("{name}-{preview}");
    if kubernetes_store {
        crate::target::dns1123(&joined)
    } else {
        joined
    }
}

/// The local pipelines a preview deploys: one per created or changed item, under its preview
/// name, described as the preview (apply writes `Deployed by kfp-ci from <file>`). Unchanged and
/// failed items get none.
pub fn preview_locals(
    items: &[PlanItem],
    preview: &str,
    kubernetes_store: bool,
) -> Vec<LocalPipeline> {
    items
        .iter()
        .filter(|i| i.changes())
        .filter_map(|i| {
            Some(LocalPipeline {
                name: preview_pipeline_name(&i.name, preview, kubernetes_store),
                display_name: format!("{} (preview {preview})", i.display_name),
                file: format!("{}{PREVIEW_WORDS}{preview})", i.file),
                spec: Ok(i.spec.clone()?),
            })
        })
        .collect()
}

/// Pipelines of preview `preview`: created by kfp-ci as that preview.
pub fn preview_pipelines<'p>(pipelines: &'p [Pipeline], preview: &str) -> Vec<&'p Pipeline> {
    pipelines
        .iter()
        .filter(|p| {
            provenance(p).is_some_and(|prov| prov.preview.as_deref() == Some(preview))
                && p.name.ends_with(&format!("-{preview}"))
        })
        .collect()
}

/// Delete a pipeline and every version of it (versions first: KFP refuses a non-empty delete).
pub async fn delete_with_versions(client: &Client, p: &Pipeline) -> Result<usize, ApiError> {
    let versions = client.all_versions(&p.pipeline_id).await?;
    for v in &versions {
        match client
            .delete_version(&p.pipeline_id, &v.pipeline_version_id)
            .await
        {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    match client.delete_pipeline(&p.pipeline_id).await {
        Ok(()) => Ok(versions.len()),
        Err(e) if e.is_not_found() => Ok(versions.len()),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Pruning

/// One pipeline pruning looked at; the report's `prune` list (docs/review-and-undo.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PruneItem {
    pub name: String,
    pub pipeline_id: String,
    /// The file it was deployed from, now gone.
    pub file: String,
    /// `delete` (planned: a dry run, or not applied), `keep` (a recurring run uses it),
    /// `deleted`, `failed` (the reason says why).
    pub action: String,
    pub reason: String,
}

impl PruneItem {
    /// Deleted or failed to delete: pruning did something (or tried to).
    pub fn applied(&self) -> bool {
        matches!(self.action.as_str(), "deleted" | "failed")
    }
}

/// Which pipelines `--prune` deletes: created by kfp-ci (not previews), their file gone from the
/// repository, not deployed by this run; those a recurring run uses are kept and said so.
pub fn prune_plan(
    pipelines: &[Pipeline],
    repo_root: &Path,
    deployed: &BTreeSet<String>,
    in_use: &BTreeMap<String, Vec<String>>,
) -> Vec<PruneItem> {
    let mut out = Vec::new();
    for p in pipelines {
        let Some(prov) = provenance(p) else { continue };
        if prov.preview.is_some() || deployed.contains(&p.name) || prov.file.is_empty() {
            continue;
        }
        if repo_root.join(&prov.file).exists() {
            continue;
        }
        let mut item = PruneItem {
            name: p.name.clone(),
            pipeline_id: p.pipeline_id.clone(),
            file: prov.file.clone(),
            action: "delete".into(),
            reason: format!("{} is gone from the repository", prov.file),
        };
        if let Some(runs) = in_use.get(&p.pipeline_id) {
            item.action = "keep".into();
            item.reason = format!(
                "{} is gone, but recurring run(s) {} still use it: delete or repoint them first",
                prov.file,
                runs.join(", ")
            );
        }
        out.push(item);
    }
    out
}

/// Pipeline id → names of the recurring runs that run one of its versions (recurring runs with
/// an inline spec use no stored pipeline).
pub fn recurring_runs_by_pipeline(runs: &[RecurringRun]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rr in runs {
        let Some(pid) = rr
            .pipeline_version_reference
            .as_ref()
            .map(|r| r.pipeline_id.as_str())
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        let name = if rr.display_name.is_empty() {
            &rr.recurring_run_id
        } else {
            &rr.display_name
        };
        out.entry(pid.to_string()).or_default().push(name.clone());
    }
    out
}

/// The recurring runs of `namespace` by pipeline id, read with the typed listing (KFP spells
/// the list `recurringRuns`). A server without the runs API (404, e.g. an older `kfp-ci serve`)
/// has none; any other failure is an error (pruning then deletes nothing rather than a
/// pipeline in use).
pub async fn recurring_runs(
    client: &Client,
    namespace: &str,
) -> Result<BTreeMap<String, Vec<String>>, ApiError> {
    match client.all_recurring_runs(namespace).await {
        Ok(runs) => Ok(recurring_runs_by_pipeline(&runs)),
        Err(e) if e.is_not_found() => Ok(BTreeMap::new()),
        Err(e) => Err(e),
    }
}

/// The prune section of a plan or deploy, for stderr.
pub fn render_prune(items: &[PruneItem]) -> String {
    let mut out = String::new();
    for i in items {
        let verb = match i.action.as_str() {
            "delete" => "would delete",
            "deleted" => "deleted",
            "keep" => "kept",
            _ => "failed to delete",
        };
        out.push_str(&format!("prune: {verb} {} ({})\n", i.name, i.reason));
    }
    out
}

/// `deploy --preview NAME`: each created or changed item is replaced by its preview pipeline's
/// plan (create, new version, or unchanged when the preview already holds the spec); unchanged
/// and failed items stay as they are, so apply leaves the production pipelines alone.
pub async fn preview_items(
    session: &Session,
    items: Vec<PlanItem>,
    preview: &str,
) -> anyhow::Result<Vec<PlanItem>> {
    let kubernetes = session.kubernetes_store();
    let locals = preview_locals(&items, preview, kubernetes);
    let looked_up = crate::lookup::server_state(
        &session.client,
        locals,
        &session.target.namespace,
        session.health.multi_user,
    )
    .await
    .map_err(|e| anyhow::anyhow!("looking up the preview pipelines: {}", e.server_message()))?;
    let mut previews: BTreeMap<String, PlanItem> = crate::plan::plan(looked_up, false)
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect();
    Ok(items
        .into_iter()
        .map(|item| {
            if item.changes() {
                previews
                    .remove(&preview_pipeline_name(&item.name, preview, kubernetes))
                    .unwrap_or(item)
            } else {
                item
            }
        })
        .collect())
}

/// `deploy --prune`, planning half: kfp-ci's pipelines whose files are gone. A failed listing
/// (pipelines or recurring runs) prunes nothing and says why.
pub async fn plan_prune(
    session: &Session,
    deployed: &[PlanItem],
    root: &Path,
) -> Result<Vec<PruneItem>, String> {
    let ns = &session.target.namespace;
    let pipelines = all_pipelines(&session.client, ns).await.map_err(|e| {
        format!(
            "--prune: listing the pipelines failed, nothing pruned: {}",
            e.server_message()
        )
    })?;
    let in_use = recurring_runs(&session.client, ns).await.map_err(|e| {
        format!(
            "--prune: listing the recurring runs failed, nothing pruned: {}",
            e.server_message()
        )
    })?;
    let deployed: BTreeSet<String> = deployed.iter().map(|i| i.name.clone()).collect();
    Ok(prune_plan(&pipelines, root, &deployed, &in_use))
}

/// `deploy --prune`, applying half: delete the planned pipelines with their versions.
pub async fn apply_prune(client: &Client, items: &mut [PruneItem]) {
    for item in items.iter_mut().filter(|i| i.action == "delete") {
        let p = Pipeline {
            pipeline_id: item.pipeline_id.clone(),
            name: item.name.clone(),
            ..Default::default()
        };
        match delete_with_versions(client, &p).await {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pipeline(name: &str, description: &str) -> Pipeline {
        Pipeline {
            pipeline_id: format!("id-{name}"),
            name: name.into(),
            description: description.into(),
            ..Pipeline::default()
        }
    }

    #[test]
    fn provenance_and_previews() {
        let p = pipeline("a", "Deployed by kfp-ci from pipelines/a_pipeline.py");
        assert_eq!(
            provenance(&p),
            Some(Provenance {
                file: "pipelines/a_pipeline.py".into(),
                preview: None
            })
        );
        let p = pipeline("a-pr-1", "Deployed by kfp-ci from a.py (preview pr-1)");
        assert_eq!(
            provenance(&p).and_then(|p| p.preview).as_deref(),
            Some("pr-1")
        );
        assert_eq!(provenance(&pipeline("x", "made by hand")), None);
        let all = vec![
            p,
            pipeline("b-pr-12", "Deployed by kfp-ci from b.py (preview pr-12)"),
            pipeline("c-pr-1", "by hand"),
        ];
        let names: Vec<&str> = preview_pipelines(&all, "pr-1")
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["a-pr-1"]);
        assert_eq!(
            preview_pipeline_name("My_Pipe", "pr-1", true),
            "my-pipe-pr-1"
        );
        assert_eq!(
            preview_pipeline_name("My_Pipe", "pr-1", false),
            "My_Pipe-pr-1"
        );
        assert!(check_preview_name("PR 12").is_err());
        assert!(check_preview_name("-x").is_err());
        assert_eq!(check_preview_name("pr-12").ok().as_deref(), Some("pr-12"));
    }

    #[test]
    fn prune_only_kfp_cis_orphans_and_keeps_those_in_use() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("here_pipeline.py"), "").expect("write");
        let all = vec![
            pipeline("here", "Deployed by kfp-ci from here_pipeline.py"),
            pipeline("gone", "Deployed by kfp-ci from gone_pipeline.py"),
            pipeline("used", "Deployed by kfp-ci from used_pipeline.py"),
            pipeline("hand", "made by hand"),
            pipeline(
                "prev-pr-1",
                "Deployed by kfp-ci from gone_pipeline.py (preview pr-1)",
            ),
            pipeline("renamed", "Deployed by kfp-ci from gone2_pipeline.py"),
        ];
        let deployed: BTreeSet<String> = ["renamed".to_string()].into();
        // What KFP answers: the list is `recurringRuns`.
        let listed: kfp_api::runs::ListRecurringRunsResponse = serde_json::from_value(json!({"recurringRuns": [
            {"display_name": "nightly", "pipeline_version_reference": {"pipeline_id": "id-used"}},
            {"display_name": "inline", "pipeline_spec": {}}
        ]}))
        .expect("list");
        let in_use = recurring_runs_by_pipeline(&listed.recurring_runs);
        let plan = prune_plan(&all, dir.path(), &deployed, &in_use);
        let got: Vec<(&str, &str)> = plan
            .iter()
            .map(|i| (i.name.as_str(), i.action.as_str()))
            .collect();
        assert_eq!(got, [("gone", "delete"), ("used", "keep")]);
        assert!(plan[1].reason.contains("nightly"), "{}", plan[1].reason);
    }
}
