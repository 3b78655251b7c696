//! A pipeline's versions as a history: where each came from (git sha, kfp-ci or not), its spec
//! hash, and which versions repeat an older one's spec (a revert, a rollback, a forced upload).
//! Pure except [`revert_note`], the small hook deploy uses to say "same as vN (a revert?)".

use kfp_api::spec::spec_hash;
use kfp_api::wire::PipelineVersion;
use serde::Serialize;

use crate::client::Client;
use crate::plan::PlanItem;
use crate::versions::{DESCRIPTION_MARKER, managed_by_kfp_ci};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub name: String,
    pub version_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_sha: Option<String>,
    /// Uploaded by kfp-ci (its tag or description marker).
    pub by_kfp_ci: bool,
    /// The canonical spec hash (computed from the stored spec, not read from a tag).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    /// The nearest older version holding the same spec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub same_spec_as: Option<String>,
    /// `rollback-of` tag (or description) of a rollback version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A version's name, or its id when it has none.
pub fn label(v: &PipelineVersion) -> String {
    if v.name.is_empty() {
        v.pipeline_version_id.clone()
    } else {
        v.name.clone()
    }
}

/// The git sha a version was deployed from: its `git-sha` tag, else `… at <sha>` in kfp-ci's
/// description (servers before 2.17 keep no tags).
pub fn git_sha(v: &PipelineVersion) -> Option<String> {
    if let Some(sha) = v.tags.get("git-sha").filter(|s| !s.is_empty()) {
        return Some(sha.clone());
    }
    if !v.description.starts_with(DESCRIPTION_MARKER) {
        return None;
    }
    let mut words = v.description.split_whitespace();
    while let Some(w) = words.next() {
        if w == "at"
            && let Some(sha) = words.next()
        {
            let sha = sha.trim_end_matches([',', ';']);
            if sha.len() >= 7 && sha.chars().all(|c| c.is_ascii_hexdigit()) {
                return Some(sha.to_string());
            }
        }
    }
    None
}

fn rollback_of(v: &PipelineVersion) -> Option<String> {
    if let Some(of) = v.tags.get(ROLLBACK_TAG) {
        return Some(of.clone());
    }
    let rest = v.description.split(ROLLBACK_WORDS).nth(1)?;
    rest.split_whitespace()
        .next()
        .map(|s| s.trim_end_matches([',', ';']).to_string())
}

/// Tag a rollback version carries (servers with tags), and the words of its description.
pub const ROLLBACK_TAG: &str = "rollback-of";
pub const ROLLBACK_WORDS: &str = "rollback of ";

/// The history of `versions` (newest first, as listed), each with the nearest older version of
/// the same spec.
pub fn entries(versions: &[PipelineVersion]) -> Vec<Entry> {
    let hashes: Vec<Option<String>> = versions
        .iter()
        .map(|v| v.pipeline_spec.as_ref().map(spec_hash))
        .collect();
    versions
        .iter()
        .enumerate()
        .map(|(i, v)| Entry {
            name: label(v),
            version_id: v.pipeline_version_id.clone(),
            created_at: v.created_at.clone(),
            git_sha: git_sha(v),
            by_kfp_ci: managed_by_kfp_ci(v),
            spec_hash: hashes[i].clone(),
            same_spec_as: hashes[i].as_ref().and_then(|h| {
                (i + 1..versions.len())
                    .find(|&j| hashes[j].as_ref() == Some(h))
                    .map(|j| label(&versions[j]))
            }),
            rollback_of: rollback_of(v),
            description: v.description.clone(),
        })
        .collect()
}

/// The newest version (of `versions`, newest first) other than the newest one that holds the
/// spec with this hash: uploading that spec again repeats it.
pub fn repeats(hash: &str, versions: &[PipelineVersion]) -> Option<String> {
    versions
        .iter()
        .skip(1)
        .find(|v| v.pipeline_spec.as_ref().map(spec_hash).as_deref() == Some(hash))
        .map(label)
}

/// For an item that uploads a new version of an existing pipeline: "same as <older version>
/// (a revert?)" when an older version already holds that spec. A listing that fails only loses
/// the note.
pub async fn revert_note(client: &Client, item: &PlanItem) -> Option<String> {
    let (Some(id), Some(spec), true) = (&item.pipeline_id, &item.spec, item.changes()) else {
        return None;
    };
    match client.all_versions(id).await {
        Ok(versions) => repeats(&spec.hash, &versions)
            .filter(|older| item.latest_version.as_deref() != Some(older.as_str()))
            .map(|older| format!("same as {older} (a revert?)")),
        Err(e) => {
            tracing::debug!("{}: listing versions: {}", item.name, e.server_message());
            None
        }
    }
}

/// The history as a table.
pub fn render_table(pipeline: &str, entries: &[Entry]) -> String {
    let mut rows = vec![[
        "VERSION".to_string(),
        "CREATED".to_string(),
        "GIT SHA".to_string(),
        "BY".to_string(),
        "SPEC HASH".to_string(),
        "NOTE".to_string(),
    ]];
    for e in entries {
        let mut note = Vec::new();
        if let Some(of) = &e.rollback_of {
            note.push(format!("rollback of {of}"));
        }
        if let Some(same) = &e.same_spec_as {
            note.push(format!("same spec as {same}"));
        }
        rows.push([
            e.name.clone(),
            e.created_at.clone().unwrap_or_else(|| "-".into()),
            e.git_sha
                .as_deref()
                .map(|s| s.chars().take(12).collect())
                .unwrap_or_else(|| "-".into()),
            if e.by_kfp_ci { "kfp-ci" } else { "other" }.into(),
            e.spec_hash
                .as_deref()
                .map(|h| h.chars().take(15).collect())
                .unwrap_or_else(|| "-".into()),
            note.join("; "),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!("{pipeline}: {} version(s), newest first\n", entries.len());
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, cell)| format!("{cell:<w$}", w = widths[c]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn version(name: &str, spec: serde_json::Value, description: &str) -> PipelineVersion {
        PipelineVersion {
            name: name.into(),
            pipeline_version_id: format!("id-{name}"),
            description: description.into(),
            pipeline_spec: Some(spec),
            ..PipelineVersion::default()
        }
    }

    #[test]
    fn repeats_point_at_the_nearest_older_version() {
        let a = json!({"root": {"x": 1}});
        let b = json!({"root": {"x": 2.0}});
        let versions = vec![
            version(
                "v4",
                json!({"root": {"x": 1.0}}),
                "Deployed by kfp-ci 0.1.0 from p.py at 0123456789abcdef (refs/heads/main)",
            ),
            version("v3", b.clone(), "by hand"),
            version("v2", a.clone(), "Deployed by kfp-ci 0.1.0 from p.py"),
            version(
                "v1",
                a,
                "Deployed by kfp-ci 0.1.0 from p.py; rollback of v0 (abc)",
            ),
        ];
        let e = entries(&versions);
        assert_eq!(
            e[0].same_spec_as.as_deref(),
            Some("v2"),
            "numbers as doubles compare equal"
        );
        assert_eq!(e[0].git_sha.as_deref(), Some("0123456789abcdef"));
        assert!(e[0].by_kfp_ci && !e[1].by_kfp_ci);
        assert_eq!(e[1].same_spec_as, None);
        assert_eq!(e[2].same_spec_as.as_deref(), Some("v1"));
        assert_eq!(e[3].same_spec_as, None);
        assert_eq!(e[3].rollback_of.as_deref(), Some("v0"));
        let hash = spec_hash(&b);
        assert_eq!(repeats(&hash, &versions).as_deref(), Some("v3"));
        assert_eq!(repeats(&spec_hash(&json!({"other": 1})), &versions), None);
        let table = render_table("p", &e);
        assert!(table.contains("same spec as v2"), "{table}");
        assert!(
            table
                .lines()
                .nth(1)
                .is_some_and(|l| l.starts_with("VERSION")),
            "{table}"
        );
    }
}
