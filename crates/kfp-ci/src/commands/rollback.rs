//! `kfp-ci rollback PIPELINE --to VERSION_NAME|GIT_SHA`: KFP runs the newest version by default
//! and versions are immutable, so a rollback uploads the chosen version's exact spec as a new
//! newest version, tagged `rollback-of=<version>` (described so where the server keeps no tags).

use std::collections::BTreeMap;

use anyhow::{Result, anyhow, bail};
use kfp_api::spec::spec_hash;
use kfp_api::wire::PipelineVersion;
use serde_json::Value;

use super::history::{Connected, open};
use super::plan::{newer, server_version};
use crate::apply::{DESCRIPTION_MARKER, MANAGED_BY_TAG};
use crate::cli::{GlobalArgs, OutputFormat, RollbackCmd};
use crate::client::UploadMeta;
use crate::history::{self, ROLLBACK_TAG, ROLLBACK_WORDS, label};
use crate::plan::LocalSpec;
use crate::status::ExitStatus;

pub async fn run(cmd: RollbackCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    let connected = open(&cmd.target, global).await?;
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
        eprintln!(
            "{}: the newest version {} already holds the spec of {}; nothing to do",
            pipeline.name,
            label(newest),
            label(chosen)
        );
        result["status"] = "unchanged".into();
        print_result(&cmd, &result);
        return Ok(ExitStatus::Success);
    }
    if !global.quiet {
        eprint!(
            "{}",
            crate::redact::redact(&format!(
                "{}: rollback from {} to the spec of {}:\n{}",
                pipeline.name,
                label(newest),
                label(chosen),
                crate::diff::render_text(&changes, "  ")
            ))
        );
    }
    if cmd.dry_run {
        eprintln!("dry run: nothing uploaded");
        result["status"] = "planned".into();
        print_result(&cmd, &result);
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
    eprintln!(
        "{}: uploaded version {} holding the spec of {}",
        pipeline.name,
        label(&version),
        label(chosen)
    );
    result["status"] = "done".into();
    result["version_name"] = label(&version).into();
    result["version_id"] = version.pipeline_version_id.clone().into();
    print_result(&cmd, &result);
    Ok(ExitStatus::Success)
}

fn print_result(cmd: &RollbackCmd, result: &Value) {
    if cmd.output == OutputFormat::Json {
        let mut json = result.clone();
        crate::redact::redact_json(&mut json);
        println!("{json}");
    }
}

/// The version named `to`, else the newest version deployed from a git sha starting with `to`
/// (7 hex digits at least).
pub(crate) fn choose<'v>(versions: &'v [PipelineVersion], to: &str) -> Option<&'v PipelineVersion> {
    if let Some(v) = versions.iter().find(|v| v.name == to) {
        return Some(v);
    }
    let sha = to.to_ascii_lowercase();
    if sha.len() < 7 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    versions
        .iter()
        .find(|v| history::git_sha(v).is_some_and(|s| s.to_ascii_lowercase().starts_with(&sha)))
}

/// A stored spec (the server's `pipeline_spec`) as an upload: one YAML document (JSON is YAML),
/// two when it carries a platform spec.
pub(crate) fn spec_upload_text(spec: &Value) -> String {
    match (spec.get("pipeline_spec"), spec.get("platform_spec")) {
        (Some(p), Some(platform)) => format!("{p}\n---\n{platform}\n"),
        _ => format!("{spec}\n"),
    }
}

/// Upload `spec` exactly as a new version of `pipeline_id` named `tag` (or a suffixed name when
/// taken), with kfp-ci's tags plus `extra_tags` where the server keeps tags. Checks first that
/// the upload parses back to the same canonical spec.
pub(crate) async fn upload_spec(
    connected: &Connected,
    pipeline_id: &str,
    spec: &Value,
    tag: &str,
    description: &str,
    extra_tags: BTreeMap<String, String>,
    code_source_url: &str,
) -> Result<PipelineVersion> {
    let text = spec_upload_text(spec);
    let local = LocalSpec::from_yaml(text.clone()).map_err(|e| anyhow!("{}", e.message))?;
    if local.hash != spec_hash(spec) {
        bail!("the stored spec does not survive a round trip through YAML; nothing uploaded");
    }
    let server = server_version(&connected.health);
    let tags_ok = server.as_deref().is_none_or(|v| !newer("2.17.0", v));
    let mut tags = BTreeMap::new();
    if tags_ok {
        tags.insert(MANAGED_BY_TAG.0.to_string(), MANAGED_BY_TAG.1.to_string());
        tags.insert("spec-hash".to_string(), local.hash.clone());
        for (k, v) in extra_tags {
            tags.insert(k, short(&v, kfp_api::wire::limits::MAX_TAG_LEN));
        }
    }
    let mut last = None;
    for name in crate::apply::version_names(tag, None) {
        let meta = UploadMeta {
            name: name.clone(),
            display_name: name.clone(),
            description: description.to_string(),
            tags: tags.clone(),
            code_source_url: code_source_url.to_string(),
        };
        match connected
            .client
            .upload_version(pipeline_id, &meta, &text)
            .await
        {
            Ok(v) => return Ok(v),
            Err(e) if e.is_conflict() => {
                // Taken: by our own upload whose answer was lost (same spec), or by another.
                if let Ok(Some(v)) = connected.client.version_by_name(pipeline_id, &name).await
                    && v.pipeline_spec.as_ref().map(spec_hash).as_deref() == Some(&local.hash)
                {
                    return Ok(v);
                }
                last = Some(e);
            }
            Err(e) => {
                return Err(anyhow!(
                    "uploading version {name} to {}: {}",
                    connected.label,
                    e.server_message()
                ));
            }
        }
    }
    Err(anyhow!(
        "every version name from `{tag}` is taken at {}: {}; pass another --version-tag",
        connected.label,
        last.map(|e| e.server_message()).unwrap_or_default()
    ))
}

fn short(v: &str, max: usize) -> String {
    let mut end = v.len().min(max);
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    v[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choose_by_name_then_sha_prefix() {
        let v = |name: &str, sha: &str| PipelineVersion {
            name: name.into(),
            tags: [("git-sha".to_string(), sha.to_string())].into(),
            ..PipelineVersion::default()
        };
        let versions = vec![
            v("v3", "cccccccc11"),
            v("v2", "bbbbbbbb22"),
            v("abcdef0", "aaaaaaa"),
        ];
        assert_eq!(choose(&versions, "v2").map(|v| v.name.as_str()), Some("v2"));
        assert_eq!(
            choose(&versions, "BBBBBBBB").map(|v| v.name.as_str()),
            Some("v2")
        );
        assert_eq!(
            choose(&versions, "abcdef0").map(|v| v.name.as_str()),
            Some("abcdef0")
        );
        assert!(choose(&versions, "bbb").is_none(), "too short for a sha");
        assert!(choose(&versions, "v9").is_none());
    }
}
