//! `kfp-ci config schema`: the JSON Schema of the configuration file, for editors.

use anyhow::Context;

use crate::cli::{ConfigCmd, GlobalArgs};
use crate::status::ExitStatus;

pub async fn run(cmd: ConfigCmd, _global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    match cmd {
        ConfigCmd::Schema => {
            let text = crate::settings::json_schema();
            crate::output::data_line(&text).context("cannot write the schema to stdout")?;
        }
    }
    Ok(ExitStatus::Success)
}
