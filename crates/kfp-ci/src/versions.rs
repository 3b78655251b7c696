//! The versions kfp-ci uploads: their names, descriptions and tags (where a deploy comes from),
//! how to recognise them again, and which of them `--keep-versions` deletes. Pure.

use std::collections::BTreeMap;

use kfp_api::wire::{PipelineVersion, limits};

use crate::plan::{LocalSpec, PlanItem};
use crate::text;

/// Tag and description marker of versions kfp-ci uploaded (what `--keep-versions` may delete).
pub const MANAGED_BY_TAG: (&str, &str) = ("managed-by", "kfp-ci");
pub const DESCRIPTION_MARKER: &str = "Deployed by kfp-ci";

/// Where this deploy comes from, for version descriptions and tags.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    pub commit_sha: Option<String>,
    /// The work tree differed from `commit_sha`: versions say `<sha>-dirty`.
    pub dirty: bool,
    pub git_ref: Option<String>,
    pub run_url: Option<String>,
    pub run_id: Option<String>,
}

impl Provenance {
    /// The commit as versions name it: `<sha>`, or `<sha>-dirty`.
    pub fn commit_label(&self) -> Option<String> {
        let sha = self.commit_sha.as_deref()?;
        Some(if self.dirty {
            format!("{sha}{}", crate::git::DIRTY_SUFFIX)
        } else {
            sha.to_string()
        })
    }
}

/// `vYYYYMMDD-HHMMSS` in UTC, computed once per run: the default `--version-tag`.
pub fn default_version_tag() -> String {
    jiff::Timestamp::now()
        .strftime("v%Y%m%d-%H%M%S")
        .to_string()
}

/// Candidate version names: the tag, then the tag with the short git sha, then `-2`, `-3`, `-4`.
/// Each stays within KFP's 127 bytes by shortening the tag, never the suffix (a 127-byte tag
/// would otherwise make every candidate the same name).
pub fn version_names(tag: &str, short_sha: Option<&str>) -> Vec<String> {
    let with_suffix = |suffix: &str| {
        let room = limits::MAX_VERSION_NAME.saturating_sub(suffix.len());
        format!("{}{suffix}", text::clip(tag, room))
    };
    let mut names = vec![with_suffix("")];
    if let Some(sha) = short_sha.filter(|s| !s.is_empty() && !tag.contains(*s)) {
        names.push(with_suffix(&format!("-{sha}")));
    }
    for n in 2..=4 {
        names.push(with_suffix(&format!("-{n}")));
    }
    names
}

/// Version description: marker, source file, commit, ref, run link.
pub fn description(item: &PlanItem, p: &Provenance) -> String {
    let mut out = format!(
        "{DESCRIPTION_MARKER} {} from {}",
        env!("CARGO_PKG_VERSION"),
        item.file
    );
    if let Some(sha) = p.commit_label() {
        out.push_str(&format!(" at {sha}"));
    }
    if let Some(r) = &p.git_ref {
        out.push_str(&format!(" ({r})"));
    }
    if let Some(url) = &p.run_url {
        out.push_str(&format!(", run {url}"));
    }
    out
}

/// Version tags within KFP's limits: ≤ 20, key and value ≤ 63 characters, no `.` in keys.
pub fn tags(spec: &LocalSpec, p: &Provenance) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    tags.insert(MANAGED_BY_TAG.0.to_string(), MANAGED_BY_TAG.1.to_string());
    tags.insert(
        "kfp-ci-version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    tags.insert("spec-hash".to_string(), spec.hash.clone());
    if let Some(sha) = p.commit_label() {
        tags.insert("git-sha".to_string(), sha);
    }
    if let Some(r) = &p.git_ref {
        tags.insert("git-ref".to_string(), r.clone());
    }
    if let Some(id) = &p.run_id {
        tags.insert("run-id".to_string(), id.clone());
    }
    tags.into_iter()
        .take(limits::MAX_TAGS)
        .map(|(k, v)| {
            let k = k.replace('.', "-");
            // Keep the end of long values (a ref's branch name is more telling than its prefix),
            // within 63 bytes: the server's Go `len` counts bytes, so a non-ASCII branch name of
            // 63 characters would still be refused.
            (
                text::clip(&k, limits::MAX_TAG_LEN).to_string(),
                text::tail(&v, limits::MAX_TAG_LEN).to_string(),
            )
        })
        .collect()
}

/// Was this version uploaded by kfp-ci?
pub fn managed_by_kfp_ci(v: &PipelineVersion) -> bool {
    v.tags.get(MANAGED_BY_TAG.0).map(String::as_str) == Some(MANAGED_BY_TAG.1)
        || v.description.starts_with(DESCRIPTION_MARKER)
}

/// Which versions `--keep-versions keep` deletes: kfp-ci's beyond the newest `keep` of them, never
/// the pipeline's newest version. `versions` are newest first.
pub fn versions_to_prune(versions: &[PipelineVersion], keep: usize) -> Vec<&PipelineVersion> {
    let keep = keep.max(1);
    // Timestamps have second precision: a version created in the same second as the newest
    // might be the newest, so it is never deleted either.
    let newest_at = versions.first().and_then(|v| v.created_at.clone());
    versions
        .iter()
        .skip(1)
        .filter(|v| managed_by_kfp_ci(v))
        .filter(|v| newest_at.is_none() || v.created_at != newest_at)
        .skip(keep.saturating_sub(usize::from(versions.first().is_some_and(managed_by_kfp_ci))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::ApplyOptions;

    fn version(name: &str, ours: bool) -> PipelineVersion {
        PipelineVersion {
            name: name.into(),
            pipeline_version_id: name.into(),
            description: if ours {
                format!("{DESCRIPTION_MARKER} 0.1.0 from x.py")
            } else {
                "by hand".into()
            },
            ..PipelineVersion::default()
        }
    }

    #[test]
    fn prune_keeps_newest_and_foreign_versions() {
        // newest first
        let versions = vec![
            version("v5", true),
            version("v4", false),
            version("v3", true),
            version("v2", true),
            version("v1", true),
        ];
        let names = |keep| {
            versions_to_prune(&versions, keep)
                .iter()
                .map(|v| v.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(2), vec!["v2", "v1"]);
        assert_eq!(names(1), vec!["v3", "v2", "v1"]);
        assert_eq!(names(0), vec!["v3", "v2", "v1"], "never the newest");
        assert!(names(10).is_empty());
        // A version from the same second as the newest is never deleted.
        let mut tied = versions.clone();
        tied[0].created_at = Some("2026-01-01T00:00:05Z".into());
        tied[2].created_at = Some("2026-01-01T00:00:05Z".into());
        let pruned: Vec<_> = versions_to_prune(&tied, 1)
            .iter()
            .map(|v| v.name.clone())
            .collect();
        assert_eq!(pruned, vec!["v2", "v1"]);
        // The newest is foreign: it is kept anyway and does not count against N.
        let versions = vec![
            version("hand", false),
            version("v2", true),
            version("v1", true),
        ];
        let pruned: Vec<_> = versions_to_prune(&versions, 1)
            .iter()
            .map(|v| v.name.clone())
            .collect();
        assert_eq!(pruned, vec!["v1"]);
    }

    #[test]
    fn version_name_suffixes() {
        assert_eq!(
            version_names("v20260101-000000", Some("abc1234")),
            vec![
                "v20260101-000000",
                "v20260101-000000-abc1234",
                "v20260101-000000-2",
                "v20260101-000000-3",
                "v20260101-000000-4"
            ]
        );
        // A tag at the limit (or beyond) still gives distinct names within 127 bytes.
        for len in [127, 200] {
            let long = "x".repeat(len);
            let names = version_names(&long, Some("abc1234"));
            assert!(
                names.iter().all(|n| n.len() <= limits::MAX_VERSION_NAME),
                "{names:?}"
            );
            let distinct: std::collections::BTreeSet<_> = names.iter().collect();
            assert_eq!(distinct.len(), 5, "{names:?}");
            assert!(names[1].ends_with("-abc1234") && names[4].ends_with("-4"));
        }
        // Multi-byte characters are cut on a character boundary.
        let names = version_names(&"é".repeat(64), None);
        assert!(names.iter().all(|n| n.len() <= limits::MAX_VERSION_NAME));
        assert!(names[1].ends_with("-2"));
    }

    #[test]
    fn tags_respect_kfp_limits() {
        let spec = LocalSpec {
            yaml: String::new(),
            value: serde_json::Value::Null,
            canonical: String::new(),
            hash: "c1-0123456789012345678901234567890123456789".into(),
            pipeline_info_name: "x".into(),
        };
        let opts = ApplyOptions {
            namespace: String::new(),
            multi_user: false,
            version_tag: "v1".into(),
            tags: true,
            provenance: Provenance {
                commit_sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
                dirty: false,
                git_ref: Some(format!("refs/heads/{}", "feature/".repeat(10))),
                run_url: None,
                run_id: Some("42".into()),
            },
            keep_versions: None,
            upload_jobs: 8,
        };
        let tags = tags(&spec, &opts.provenance);
        assert!(tags.len() <= limits::MAX_TAGS);
        for (k, v) in &tags {
            assert!(!k.contains('.') && !k.is_empty() && k.len() <= 63, "{k}");
            assert!(v.len() <= 63, "{k}={v}");
        }
        assert!(tags["git-ref"].ends_with("feature/feature/"), "{tags:?}");
        // A non-ASCII branch name: within 63 bytes, cut on a character boundary, end kept.
        let mut opts = opts;
        opts.provenance.git_ref = Some(format!("refs/heads/{}-end", "ü".repeat(40)));
        let tags = super::tags(&spec, &opts.provenance);
        assert!(tags["git-ref"].len() <= 63, "{tags:?}");
        assert!(tags["git-ref"].ends_with("ü-end"), "{tags:?}");
        assert_eq!(tags["managed-by"], "kfp-ci");
        assert_eq!(tags["spec-hash"], spec.hash);
    }
}
