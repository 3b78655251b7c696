//! Rollback: KFP runs the newest version by default and versions are immutable, so a rollback
//! uploads the chosen version's exact spec as a new newest version, tagged
//! `rollback-of=<version>` (described so where the server keeps no tags). Promote uploads the
//! specs another target serves the same way ([`spec_upload_text`]).

use std::collections::BTreeMap;

use anyhow::{Result, anyhow, bail};
use kfp_api::spec::spec_hash;
use kfp_api::wire::PipelineVersion;
use serde_json::Value;

use crate::client::UploadMeta;
use crate::history::{self, ROLLBACK_TAG, ROLLBACK_WORDS};
use crate::plan::LocalSpec;
use crate::session::Session;
use crate::versions::{DESCRIPTION_MARKER, MANAGED_BY_TAG};

/// A rollback of one pipeline: from its newest version to the spec of `chosen`.
pub struct Plan<'v> {
    pub newest: &'v PipelineVersion,
    pub chosen: &'v PipelineVersion,
    /// What changes from `newest` to `chosen` (none: nothing to do).
    pub changes: Vec<crate::diff::Change>,
}

impl Plan<'_> {
    /// When the newest version already holds the chosen spec.
    pub fn nothing_to_do(&self, pipeline: &str) -> String {
        format!(
            "{pipeline}: the newest version {} already holds the spec of {}; nothing to do\n",
            history::label(self.newest),
            history::label(self.chosen)
        )
    }

    /// The change, shown before uploading (and on a dry run).
    pub fn preview(&self, pipeline: &str) -> String {
        format!(
            "{pipeline}: rollback from {} to the spec of {}:\n{}",
            history::label(self.newest),
            history::label(self.chosen),
            crate::diff::render_text(&self.changes, "  ")
        )
    }

    /// After `version` was uploaded.
    pub fn uploaded(&self, pipeline: &str, version: &PipelineVersion) -> String {
        format!(
            "{pipeline}: uploaded version {} holding the spec of {}\n",
            history::label(version),
            history::label(self.chosen)
        )
    }

    /// The `--output json` result: `status` is `unchanged`, `planned` (a dry run) or `done`, then
    /// with the uploaded version's name and id.
    pub fn result(
        &self,
        pipeline: &str,
        dry_run: bool,
        uploaded: Option<&PipelineVersion>,
    ) -> Value {
        let mut result = serde_json::json!({
            "pipeline": pipeline,
            "from": history::label(self.newest),
            "to": history::label(self.chosen),
            "changes": self.changes,
            "dry_run": dry_run,
        });
        result["status"] = match uploaded {
            _ if self.changes.is_empty() => "unchanged",
            None => "planned",
            Some(_) => "done",
        }
        .into();
        if let Some(version) = uploaded {
            result["version_name"] = history::label(version).into();
            result["version_id"] = version.pipeline_version_id.clone().into();
        }
        result
    }
}

/// The rollback of pipeline `name` (its `versions`, newest first) to `to`, a version name or a
/// git sha prefix.
pub fn plan<'v>(name: &str, versions: &'v [PipelineVersion], to: &str) -> Result<Plan<'v>> {
    let Some(newest) = versions.first() else {
        bail!("pipeline `{name}` has no version to roll back from");
    };
    let chosen = choose(versions, to).ok_or_else(|| {
        anyhow!(
            "pipeline `{name}` has no version named `{to}` and none deployed from a git sha starting with it: `kfp-ci history {name}` lists them"
        )
    })?;
    let (Some(old_spec), Some(new_spec)) = (&newest.pipeline_spec, &chosen.pipeline_spec) else {
        bail!(
            "version {} or {} of `{name}` has no readable spec",
            history::label(newest),
            history::label(chosen)
        );
    };
    Ok(Plan {
        newest,
        chosen,
        changes: crate::diff::diff(old_spec, new_spec),
    })
}

/// Upload `chosen`'s spec as the newest version of `pipeline_id`, named `version_tag` (default
/// `rollback-<version>-<UTC time>`), tagged and described as a rollback of it.
pub async fn upload(
    session: &Session,
    pipeline_id: &str,
    chosen: &PipelineVersion,
    version_tag: Option<&str>,
) -> Result<PipelineVersion> {
    let Some(spec) = &chosen.pipeline_spec else {
        bail!("version {} has no readable spec", history::label(chosen));
    };
    let tag = match version_tag {
        Some(t) if !t.trim().is_empty() => t.trim().to_string(),
        Some(_) => bail!("--version-tag is empty"),
        None => format!(
            "rollback-{}-{}",
            history::label(chosen),
            jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S")
        ),
    };
    upload_spec(
        session,
        pipeline_id,
        spec,
        &tag,
        &format!(
            "{DESCRIPTION_MARKER} {}: {ROLLBACK_WORDS}{} ({})",
            env!("CARGO_PKG_VERSION"),
            history::label(chosen),
            history::git_sha(chosen).unwrap_or_else(|| "no git sha".into())
        ),
        [(ROLLBACK_TAG.to_string(), history::label(chosen))].into(),
        &chosen.code_source_url,
    )
    .await
}

/// The version named `to`, else the newest version deployed from a git sha starting with `to`
/// (7 hex digits at least).
pub fn choose<'v>(versions: &'v [PipelineVersion], to: &str) -> Option<&'v PipelineVersion> {
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
pub fn spec_upload_text(spec: &Value) -> String {
    match (spec.get("pipeline_spec"), spec.get("platform_spec")) {
        (Some(p), Some(platform)) => format!("{p}\n---\n{platform}\n"),
        _ => format!("{spec}\n"),
    }
}

/// Upload `spec` exactly as a new version of `pipeline_id` named `tag` (or a suffixed name when
/// taken), with kfp-ci's tags plus `extra_tags` where the server keeps tags. Checks first that
/// the upload parses back to the same canonical spec.
pub async fn upload_spec(
    session: &Session,
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
    let tags_ok = session.sends_tags();
    let mut tags = BTreeMap::new();
    if tags_ok {
        tags.insert(MANAGED_BY_TAG.0.to_string(), MANAGED_BY_TAG.1.to_string());
        tags.insert("spec-hash".to_string(), local.hash.clone());
        for (k, v) in extra_tags {
            tags.insert(
                k,
                crate::text::clip(&v, kfp_api::wire::limits::MAX_TAG_LEN).to_string(),
            );
        }
    }
    let mut last = None;
    for name in crate::versions::version_names(tag, None) {
        let meta = UploadMeta {
            name: name.clone(),
            display_name: name.clone(),
            description: description.to_string(),
            tags: tags.clone(),
            code_source_url: code_source_url.to_string(),
        };
        match session
            .client
            .upload_version(pipeline_id, &meta, &text)
            .await
        {
            Ok(v) => return Ok(v),
            Err(e) if e.is_conflict() => {
                // Taken: by our own upload whose answer was lost (same spec), or by another.
                if let Ok(Some(v)) = session.client.version_by_name(pipeline_id, &name).await
                    && v.pipeline_spec.as_ref().map(spec_hash).as_deref() == Some(&local.hash)
                {
                    return Ok(v);
                }
                last = Some(e);
            }
            Err(e) => {
                return Err(anyhow!(
                    "uploading version {name} to {}: {}",
                    session.label,
                    e.server_message()
                ));
            }
        }
    }
    Err(anyhow!(
        "every version name from `{tag}` is taken at {}: {}; pass another --version-tag",
        session.label,
        last.map(|e| e.server_message()).unwrap_or_default()
    ))
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

    #[test]
    fn plan_results_and_messages() {
        let v = |name: &str, threshold: f64| PipelineVersion {
            name: name.into(),
            pipeline_version_id: format!("id-{name}"),
            pipeline_spec: Some(
                serde_json::json!({"root": {"inputDefinitions": {"parameters": {
                "t": {"defaultValue": threshold, "parameterType": "NUMBER_DOUBLE"}}}}}),
            ),
            ..PipelineVersion::default()
        };
        let versions = vec![v("v2", 0.9), v("v1", 0.8), v("v0", 0.9)];
        let back = plan("p", &versions, "v1").expect("plan");
        assert!(!back.changes.is_empty());
        assert_eq!(back.result("p", true, None)["status"], "planned");
        let done = back.result("p", false, Some(&versions[2]));
        assert_eq!(done["status"], "done");
        assert_eq!(done["version_name"], "v0");
        assert_eq!(done["version_id"], "id-v0");
        assert_eq!((&done["from"], &done["to"]), (&"v2".into(), &"v1".into()));
        assert!(
            back.preview("p")
                .starts_with("p: rollback from v2 to the spec of v1:\n")
        );
        assert_eq!(
            back.uploaded("p", &versions[2]),
            "p: uploaded version v0 holding the spec of v1\n"
        );
        let same = plan("p", &versions, "v0").expect("plan");
        let result = same.result("p", false, None);
        assert_eq!(result["status"], "unchanged");
        assert!(result.get("version_name").is_none());
        assert_eq!(
            same.nothing_to_do("p"),
            "p: the newest version v2 already holds the spec of v0; nothing to do\n"
        );
    }
}
