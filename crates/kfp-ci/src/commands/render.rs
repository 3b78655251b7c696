//! `kfp-ci render --kubernetes`: the pipelines as `pipelines.kubeflow.org/v2beta1` custom
//! resources for KFP's Kubernetes pipeline store (2.14+), one file per pipeline, for GitOps
//! (Argo CD, Flux) to commit or sync.
//!
//! What each file holds and how its names are chosen: [`crate::render`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::cli::{GlobalArgs, RenderCmd};
use crate::render::{DEFAULT_OUT_DIR, FileRendered};
use crate::settings::{self, CompileSettings};
use crate::status::ExitStatus;

pub async fn run(cmd: RenderCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    if !cmd.kubernetes {
        bail!(
            "render needs a target format: pass --kubernetes (Pipeline and PipelineVersion custom resources for KFP's Kubernetes pipeline store)"
        );
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let loaded = settings::load(global.config.as_deref(), &cwd)?;
    let settings = CompileSettings::resolve(&cmd.compile, &loaded)?;
    let out_dir = match &cmd.out_dir {
        Some(dir) => cwd.join(dir),
        None => settings.root.join(DEFAULT_OUT_DIR),
    };
    fs_err::create_dir_all(&out_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the output directory {} (--out-dir): {e}; pick a writable directory",
            out_dir.display()
        )
    })?;
    let tag = match &cmd.version_tag {
        Some(tag) if !tag.trim().is_empty() => tag.trim().to_string(),
        Some(_) => bail!("--version-tag is empty"),
        None => crate::versions::default_version_tag(),
    };
    let namespace = cmd.namespace.clone().filter(|n| !n.trim().is_empty());

    let run = crate::compile::compile_pipelines_with(&settings, &mut |_| {}).await?;
    let failed =
        crate::render::render_run(run, &out_dir, &tag, namespace.as_deref(), &mut |file| {
            if let FileRendered::Written { path, .. } = file {
                crate::output::data_line(&display_path(path, &cwd))?;
            }
            crate::output::always(&file.message());
            Ok(())
        })?;
    Ok(if failed > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

fn display_path(path: &Path, cwd: &Path) -> String {
    path.strip_prefix(cwd)
        .map(PathBuf::from)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}
