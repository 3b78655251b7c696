//! kfp-ci on every KFP server release: what to name versions, what to link, what to tell the user.
//! The facts per release live in [`kfp_api::compat`]; this module applies them to deploys.

use kfp_api::compat::{Capabilities, Release, Store, dns1123};
use kfp_api::wire::Healthz;
use kfp_api::wire::limits;

use crate::versions::{Provenance, version_names};

/// The version names to try, in order, for pipeline `pipeline` under the run's tag.
///
/// Everywhere: the tag, then the tag with the short sha, then `-2`…`-4` (see
/// [`version_names`]). On a Kubernetes store the tag is made a DNS-1123 name first. Before 2.17
/// that store names a version's custom resource by the bare version name, so a tag used by
/// another pipeline in the namespace is taken: then `{pipeline}-{tag}` (the name 2.17 itself
/// gives the resource), then its suffixed forms. Every pipeline still gets exactly one version.
pub fn version_candidates(
    caps: &Capabilities,
    pipeline: &str,
    tag: &str,
    short_sha: Option<&str>,
) -> Vec<String> {
    let tag = if caps.dns1123_names {
        dns1123(tag, limits::MAX_VERSION_NAME)
    } else {
        tag.to_string()
    };
    if !caps.version_names_per_namespace() {
        return version_names(&tag, short_sha);
    }
    let mut names = vec![tag.clone()];
    // Keep the whole tag: shorten the pipeline part if the two are too long together.
    let room = limits::MAX_VERSION_NAME.saturating_sub(tag.len() + 1);
    let prefix = dns1123(pipeline, room.max(1));
    let composite = dns1123(&format!("{prefix}-{tag}"), limits::MAX_VERSION_NAME);
    for name in version_names(&composite, short_sha) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Why the version is not named exactly as the tag, when the server is the reason.
pub fn rename_note(caps: &Capabilities, tag: &str, uploaded_as: &str) -> Option<String> {
    if uploaded_as == tag || !caps.dns1123_names {
        return None;
    }
    let first = dns1123(tag, limits::MAX_VERSION_NAME);
    if uploaded_as == first {
        return Some(format!(
            "version tag {tag:?} is not a DNS-1123 name, which the Kubernetes pipeline store requires: uploaded as {uploaded_as}"
        ));
    }
    if caps.version_names_per_namespace() {
        return Some(format!(
            "version name {first} is taken in this namespace by another pipeline's version (KFP {} on the Kubernetes store names version resources by the bare version name, kubeflow/pipelines#13534, fixed in 2.17): uploaded as {uploaded_as}",
            caps.release_label()
        ));
    }
    None
}

/// The forge a repository lives on, for links to files at a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    Github,
    Gitea,
    Forgejo,
    Gitlab,
}

/// `{web}/…` link to `path` at `sha`: GitHub `blob/SHA/PATH`, Gitea and Forgejo
/// `src/commit/SHA/PATH`, GitLab `-/blob/SHA/PATH`. `web` is the repository's page
/// (`https://github.com/org/repo`).
pub fn file_link(forge: Forge, web: &str, sha: &str, path: &str) -> String {
    let web = web.trim_end_matches('/');
    let path: String = path
        .trim_start_matches("./")
        .split('/')
        .map(|seg| {
            url::form_urlencoded::byte_serialize(seg.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        })
        .collect::<Vec<_>>()
        .join("/");
    match forge {
        Forge::Github => format!("{web}/blob/{sha}/{path}"),
        Forge::Gitea | Forge::Forgejo => format!("{web}/src/commit/{sha}/{path}"),
        Forge::Gitlab => format!("{web}/-/blob/{sha}/{path}"),
    }
}

/// The forge and repository page of this CI run, from the CI's environment.
pub fn forge_from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<(Forge, String)> {
    let var = |n: &str| {
        env(n)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let is_true = |n: &str| var(n).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if is_true("GITLAB_CI") {
        return Some((Forge::Gitlab, var("CI_PROJECT_URL")?));
    }
    if var("CI").is_some_and(|v| v == "woodpecker") {
        let forge = match var("CI_FORGE_TYPE")?.as_str() {
            "github" => Forge::Github,
            "gitea" => Forge::Gitea,
            "forgejo" => Forge::Forgejo,
            "gitlab" => Forge::Gitlab,
            _ => return None,
        };
        return Some((forge, var("CI_REPO_URL")?));
    }
    let forge = if is_true("FORGEJO_ACTIONS") {
        Forge::Forgejo
    } else if is_true("GITEA_ACTIONS") {
        Forge::Gitea
    } else if is_true("GITHUB_ACTIONS") {
        Forge::Github
    } else {
        return None;
    };
    let server = var("GITHUB_SERVER_URL")?;
    let repo = var("GITHUB_REPOSITORY")?;
    Some((forge, format!("{}/{repo}", server.trim_end_matches('/'))))
}

/// The `code_source_url` of a version uploaded from `file` (relative to the repository root):
/// empty outside CI, without a commit, or when the server does not read the parameter.
pub fn code_source_url(caps: &Capabilities, file: &str, provenance: &Provenance) -> String {
    if !caps.upload_code_source_url {
        return String::new();
    }
    let Some(sha) = provenance.commit_sha.as_deref().filter(|s| !s.is_empty()) else {
        return String::new();
    };
    let env = |n: &str| std::env::var(n).ok();
    match forge_from_env(&env) {
        Some((forge, web)) => file_link(forge, &web, sha, file),
        None => String::new(),
    }
}

/// One line of `kfp-ci doctor`: a feature and whether it works on this server.
pub struct FeatureLine {
    pub feature: &'static str,
    pub works: bool,
    pub detail: String,
}

/// What kfp-ci can do on this server, for `kfp-ci doctor`.
pub fn features(caps: &Capabilities) -> Vec<FeatureLine> {
    let release = caps.release_label();
    let unknown = caps.release.is_none();
    vec![
        FeatureLine {
            feature: "names",
            works: true,
            detail: if caps.separate_name {
                "name (identity) and display_name are separate".into()
            } else {
                format!(
                    "KFP {release} has one name per pipeline: kfp-ci uses the pipeline name as display name"
                )
            },
        },
        FeatureLine {
            feature: "tags",
            works: caps.tags,
            detail: if caps.tags && unknown {
                "sent (a release that ignores them loses nothing); provenance is in the description too".into()
            } else if caps.tags {
                "versions carry managed-by, spec-hash, git-sha, git-ref, run-id tags".into()
            } else {
                format!(
                    "KFP {release} has no tags (2.17+): provenance and --keep-versions use the version description instead"
                )
            },
        },
        FeatureLine {
            feature: "PATCH",
            works: caps.patch,
            detail: if caps.patch {
                "display names and tags can be changed in place".into()
            } else {
                "not used: no PATCH route before 2.17 (nothing kfp-ci needs)".into()
            },
        },
        FeatureLine {
            feature: "code links",
            works: caps.upload_code_source_url,
            detail: if caps.upload_code_source_url {
                "code_source_url links each version to its file at the commit (in CI)".into()
            } else {
                format!(
                    "KFP {release} does not read code_source_url on upload (added after 2.17.0): the description names the file and commit"
                )
            },
        },
        FeatureLine {
            feature: "DNS-1123 names",
            works: true,
            detail: match (caps.store, caps.version_names_per_namespace()) {
                (Store::Database, _) => "not needed (database store)".into(),
                (Store::Kubernetes, true) => format!(
                    "needed (Kubernetes store): kfp-ci converts names; KFP {release} names version resources by the bare version name, so a tag taken by another pipeline becomes <pipeline>-<tag>"
                ),
                (Store::Kubernetes, false) => {
                    "needed (Kubernetes store): kfp-ci converts names".into()
                }
            },
        },
        FeatureLine {
            feature: "schedules with version = \"latest\"",
            works: caps.recurring_run_follows_latest,
            detail: if caps.recurring_run_follows_latest {
                "a recurring run follows the pipeline's newest version".into()
            } else {
                format!(
                    "KFP {release} fixes the version when a recurring run is created (following came with 2.5.0): use version = \"pinned\""
                )
            },
        },
    ]
}

/// `kfp-ci doctor`'s lines under its healthz check: what kfp-ci can do on this release and
/// store (`yes` / `no` and why), then SDK ↔ server advice (`hint: …`).
pub fn doctor_lines(h: &Healthz, sdk: Option<&str>) -> Vec<String> {
    let caps = Capabilities::from_healthz(h);
    let mut lines = Vec::new();
    if caps.release.is_none() {
        lines.push(format!(
            "release: unknown (tag_name {:?}): kfp-ci sends only what every release from 2.0 reads the same way",
            h.tag_name
        ));
    }
    for f in features(&caps) {
        let mark = if f.works { "yes" } else { "no" };
        lines.push(format!("{}: {mark}: {}", f.feature, f.detail));
    }
    for advice in sdk_advice(sdk, &caps) {
        lines.push(format!("hint: {advice}"));
    }
    lines
}

/// SDK ↔ server advice for `kfp-ci doctor` and deploy warnings; `sdk` is the kfp SDK version.
pub fn sdk_advice(sdk: Option<&str>, caps: &Capabilities) -> Vec<String> {
    let mut out = Vec::new();
    let sdk_release = sdk.and_then(Release::parse);
    if sdk_release == Some(Release(2, 15, 0)) {
        out.push(
            "kfp SDK 2.15.0 writes a `custom_path` field that servers before 2.15 reject as an unknown field: use kfp 2.15.2 or later (fixed there)".into(),
        );
    }
    if let (Some(s), Some(r)) = (sdk_release, caps.release)
        && (s.0, s.1) > (r.0, r.1)
    {
        out.push(format!(
            "the kfp SDK ({s}) is newer than the server ({r}): specs using newer fields may fail to upload; pin kfp_version = \"{r}\" (or the newest SDK of the server's line)"
        ));
    }
    if caps.release.is_some_and(|r| r < Release::V2_14) {
        out.push(format!(
            "KFP {} predates the 2.14 API (separate pipeline names): kfp-ci sends the pipeline name as display name",
            caps.release_label()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kfp_api::compat::Release;

    #[test]
    fn candidates_per_release_and_store() {
        let db = Capabilities::of(Release::V2_5, Store::Database, false);
        assert_eq!(
            version_candidates(&db, "hello", "v1", None),
            ["v1", "v1-2", "v1-3", "v1-4"]
        );
        let k16 = Capabilities::of(Release::V2_16, Store::Kubernetes, false);
        assert_eq!(
            version_candidates(&k16, "hello", "V_1", Some("abc1234")),
            [
                "v-1",
                "hello-v-1",
                "hello-v-1-abc1234",
                "hello-v-1-2",
                "hello-v-1-3",
                "hello-v-1-4"
            ]
        );
        let k17 = Capabilities::of(Release::V2_17, Store::Kubernetes, false);
        assert_eq!(
            version_candidates(&k17, "hello", "v1", None)[..2],
            ["v1", "v1-2"]
        );
        // A long pipeline name is shortened, never the tag.
        let long = "p".repeat(200);
        let names = version_candidates(&k16, &long, "v20261202-101010", None);
        assert!(names[1].ends_with("-v20261202-101010"), "{names:?}");
        assert!(names.iter().all(|n| n.len() <= limits::MAX_VERSION_NAME));
    }

    #[test]
    fn rename_notes_say_why() {
        let k16 = Capabilities::of(Release::V2_16, Store::Kubernetes, false);
        let note = rename_note(&k16, "v1", "hello-v1").expect("note");
        assert!(
            note.contains("#13534") && note.contains("hello-v1"),
            "{note}"
        );
        assert!(rename_note(&k16, "v1", "v1").is_none());
        let db = Capabilities::of(Release::V2_16, Store::Database, false);
        assert!(rename_note(&db, "v1", "v1-2").is_none());
    }

    #[test]
    fn file_links_per_forge() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            file_link(
                Forge::Github,
                "https://github.com/o/r/",
                sha,
                "pipes/a b.py"
            ),
            format!("https://github.com/o/r/blob/{sha}/pipes/a%20b.py")
        );
        assert_eq!(
            file_link(Forge::Gitea, "https://git.example/o/r", sha, "./x.py"),
            format!("https://git.example/o/r/src/commit/{sha}/x.py")
        );
        assert_eq!(
            file_link(Forge::Forgejo, "https://codeberg.org/o/r", sha, "x.py"),
            format!("https://codeberg.org/o/r/src/commit/{sha}/x.py")
        );
        assert_eq!(
            file_link(Forge::Gitlab, "https://gitlab.com/g/sub/r", sha, "x.py"),
            format!("https://gitlab.com/g/sub/r/-/blob/{sha}/x.py")
        );
    }

    #[test]
    fn forges_from_ci_environments() {
        let env_of = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            }
        };
        let gh = env_of(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "o/r"),
        ]);
        assert_eq!(
            forge_from_env(&gh),
            Some((Forge::Github, "https://github.com/o/r".into()))
        );
        let fj = env_of(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITEA_ACTIONS", "true"),
            ("FORGEJO_ACTIONS", "true"),
            ("GITHUB_SERVER_URL", "https://codeberg.org/"),
            ("GITHUB_REPOSITORY", "o/r"),
        ]);
        assert_eq!(forge_from_env(&fj).map(|f| f.0), Some(Forge::Forgejo));
        let gl = env_of(&[
            ("GITLAB_CI", "true"),
            ("CI_PROJECT_URL", "https://gitlab.com/g/r"),
        ]);
        assert_eq!(
            forge_from_env(&gl),
            Some((Forge::Gitlab, "https://gitlab.com/g/r".into()))
        );
        assert_eq!(forge_from_env(&env_of(&[])), None);
    }

    #[test]
    fn sdk_advice_names_the_custom_path_break() {
        let old = Capabilities::of(Release::V2_5, Store::Database, false);
        let advice = sdk_advice(Some("2.15.0"), &old);
        assert!(
            advice
                .iter()
                .any(|a| a.contains("custom_path") && a.contains("2.15.2"))
        );
        assert!(advice.iter().any(|a| a.contains("newer than the server")));
        let new = Capabilities::of(Release::V2_17, Store::Database, false);
        assert!(sdk_advice(Some("2.17.0"), &new).is_empty());
    }
}
