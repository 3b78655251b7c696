//! `kfp-ci history PIPELINE`: the pipeline's versions, newest first (`crate::history`).

use anyhow::Result;

use crate::cli::{GlobalArgs, HistoryCmd, OutputFormat};
use crate::history;
use crate::session::Session;
use crate::status::ExitStatus;

pub async fn run(cmd: HistoryCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    let session = Session::open(&cmd.target, global).await?;
    let pipeline = session.pipeline(&cmd.pipeline).await?;
    let versions = session.versions(&pipeline).await?;
    let entries = history::entries(&versions);
    match cmd.output {
        OutputFormat::Text => {
            crate::output::data(&history::render_table(&pipeline.name, &entries))?
        }
        OutputFormat::Json => {
            let mut json = serde_json::json!({
                "pipeline": pipeline.name,
                "pipeline_id": pipeline.pipeline_id,
                "versions": entries,
            });
            crate::redact::redact_json(&mut json);
            crate::output::data_line(&json.to_string())?;
        }
    }
    Ok(ExitStatus::Success)
}
