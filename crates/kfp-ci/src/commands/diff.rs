//! `kfp-ci diff`: compile, then show what changed against the server's newest version of each
//! pipeline (or `--against VERSION_NAME`), in the diff engine's terms (`crate::changes`).

use std::time::Instant;

use anyhow::Result;

use crate::changes;
use crate::cli::{DiffCmd, GlobalArgs, ReviewOutput};
use crate::status::ExitStatus;

pub async fn run(cmd: DiffCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    let started = Instant::now();
    let diffs =
        crate::prepare::diffs(&cmd.compile, &cmd.target, cmd.against.as_deref(), global).await?;
    tracing::debug!("diff took {} ms", started.elapsed().as_millis());
    let body = match cmd.output {
        ReviewOutput::Text => changes::render_text(&diffs),
        ReviewOutput::Markdown => changes::render_markdown(&diffs),
        ReviewOutput::Json => {
            let mut json = serde_json::json!({ "pipelines": diffs });
            crate::redact::redact_json(&mut json);
            format!("{json}\n")
        }
    };
    crate::output::data(&body)?;
    Ok(if diffs.iter().any(|d| d.error.is_some()) {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}
