//! `kfp-ci history PIPELINE`: the pipeline's versions, newest first (`crate::history`).

use anyhow::{Result, anyhow};
use kfp_api::wire::{Pipeline, PipelineVersion};

use super::plan::{connect, endpoint_label, load_config};
use crate::cli::{GlobalArgs, HistoryCmd, OutputFormat, TargetArgs};
use crate::client::Client;
use crate::history;
use crate::status::ExitStatus;
use crate::target::{self, Target};

/// A connected target without compiling anything (history, rollback, cleanup, promote).
pub(super) struct Connected {
    pub target: Target,
    pub client: Client,
    pub health: kfp_api::wire::Healthz,
    pub label: String,
    pub _embedded: Option<kfp_serve::RunningServer>,
}

pub(super) async fn open(args: &TargetArgs, global: &GlobalArgs) -> Result<Connected> {
    let loaded = load_config(global, &[])?;
    let target = target::resolve(args, &loaded)?;
    let (client, embedded) = connect(&target).await?;
    let label = endpoint_label(&target);
    let health = client.healthz().await.map_err(|e| {
        anyhow!(
            "the KFP API at {label} did not answer the health check: {}",
            e.server_message()
        )
    })?;
    Ok(Connected {
        target,
        client,
        health,
        label,
        _embedded: embedded,
    })
}

impl Connected {
    /// The pipeline by name (its DNS-1123 form on the kubernetes store), or an error saying
    /// where it was looked for.
    pub async fn pipeline(&self, name: &str) -> Result<Pipeline> {
        let ns = &self.target.namespace;
        let lookup = if self.health.pipeline_store == "kubernetes" {
            target::dns1123(name)
        } else {
            name.to_string()
        };
        match self.client.pipeline_by_name(&lookup, ns).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(anyhow!(
                "no pipeline named `{lookup}` at {}{}: `kfp-ci plan` shows the names kfp-ci deploys",
                self.label,
                if ns.is_empty() {
                    String::new()
                } else {
                    format!(" in namespace {ns}")
                }
            )),
            Err(e) => Err(anyhow!(
                "looking up pipeline `{lookup}` at {}: {}",
                self.label,
                e.server_message()
            )),
        }
    }

    pub async fn versions(&self, pipeline: &Pipeline) -> Result<Vec<PipelineVersion>> {
        self.client
            .all_versions(&pipeline.pipeline_id)
            .await
            .map_err(|e| {
                anyhow!(
                    "listing the versions of `{}` at {}: {}",
                    pipeline.name,
                    self.label,
                    e.server_message()
                )
            })
    }
}

pub async fn run(cmd: HistoryCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    let connected = open(&cmd.target, global).await?;
    let pipeline = connected.pipeline(&cmd.pipeline).await?;
    let versions = connected.versions(&pipeline).await?;
    let entries = history::entries(&versions);
    match cmd.output {
        OutputFormat::Text => print!(
            "{}",
            crate::redact::redact(&history::render_table(&pipeline.name, &entries))
        ),
        OutputFormat::Json => {
            let mut json = serde_json::json!({
                "pipeline": pipeline.name,
                "pipeline_id": pipeline.pipeline_id,
                "versions": entries,
            });
            crate::redact::redact_json(&mut json);
            println!("{json}");
        }
    }
    Ok(ExitStatus::Success)
}
