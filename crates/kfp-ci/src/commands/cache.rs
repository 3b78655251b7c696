//! `kfp-ci cache clear` and `kfp-ci cache dir`: the compile cache of this repository.

use anyhow::Context;

use crate::cli::{CacheCmd, GlobalArgs};
use crate::compile::cache;
use crate::settings;
use crate::status::ExitStatus;

pub async fn run(cmd: CacheCmd, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let loaded = settings::load(global.config.as_deref(), &cwd)?;
    let root = std::path::absolute(&loaded.root)
        .with_context(|| format!("invalid repository root {}", loaded.root.display()))?;
    let dir = cache::dir_for(&root);
    match cmd {
        CacheCmd::Dir => {
            crate::output::data_line(&dir.display().to_string())?;
        }
        CacheCmd::Clear => {
            if cache::clear(&dir)? {
                crate::output::message_line(&format!(
                    "removed the compile cache {}",
                    dir.display()
                ));
            } else {
                crate::output::message_line(&format!("no compile cache at {}", dir.display()));
            }
        }
    }
    Ok(ExitStatus::Success)
}
