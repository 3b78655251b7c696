//! What each Kubeflow Pipelines server release accepts, in one table.
//!
//! The client reads the server's healthz (`tag_name`, `pipeline_store`, `multi_user`) once and
//! asks [`Capabilities`] what to send; the local server (`kfp-ci serve --server-version`) asks
//! the same table how to behave. The facts come from the KFP Go sources at each tag (see
//! `docs/compat.md`):
//!
//! | release | `name` ≠ `display_name` | `display_name` on upload | Kubernetes store | version resource name | tags, PATCH | `code_source_url` on upload |
//! |---|---|---|---|---|---|---|
//! | 2.0–2.5 | no (one `Name`, shown as `display_name`) | ignored | no | – | no | no |
//! | 2.14–2.16 | yes | yes | yes | bare version name (unique per namespace) | no | no |
//! | 2.17.0 | yes | yes | yes | `{pipeline}-{version}` | yes | no |
//! | after 2.17.0 | yes | yes | yes | `{pipeline}-{version}` | yes | yes |
//!
//! A recurring run that names only its pipeline (no `pipeline_version_id`) runs the pipeline's
//! newest version at each trigger from 2.5.0 (kubeflow/pipelines#11560); 2.0 resolves the newest
//! version once, at creation, and keeps running it.
//!
//! There were no server releases 2.6–2.13. A `tag_name` that is not a release (`dev`, `unknown`, a
//! fork's own scheme) gets [`Capabilities::conservative`]: requests every release reads the
//! same way (extra upload parameters are ignored by releases that do not know them; no PATCH).

use std::fmt;

use crate::wire::{Healthz, Pipeline, PipelineVersion};

/// A server release, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Release(pub u64, pub u64, pub u64);

impl Release {
    pub const V2_0: Release = Release(2, 0, 0);
    pub const V2_5: Release = Release(2, 5, 0);
    pub const V2_14: Release = Release(2, 14, 0);
    pub const V2_16: Release = Release(2, 16, 0);
    pub const V2_17: Release = Release(2, 17, 0);
    /// The releases `kfp-ci serve --server-version` emulates (and the test matrix runs against).
    pub const EMULATED: [Release; 5] = [
        Release::V2_0,
        Release::V2_5,
        Release::V2_14,
        Release::V2_16,
        Release::V2_17,
    ];

    /// `2.17.0`, `v2.5.1`, `2.14.0-rc.1` (pre-release and build parts are dropped). `None` for
    /// anything else (`dev`, `unknown`, `latest`, a commit).
    pub fn parse(text: &str) -> Option<Release> {
        let t = text.trim();
        let t = t.strip_prefix('v').unwrap_or(t);
        let core = t.split(['-', '+']).next().unwrap_or_default();
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Release(major, minor, patch))
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Where the server keeps pipelines (healthz `pipeline_store`, absent before 2.14 = database).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Store {
    #[default]
    Database,
    /// Pipelines and versions as `pipelines.kubeflow.org/v2beta1` custom resources (2.14+).
    Kubernetes,
}

impl Store {
    pub fn parse(text: &str) -> Option<Store> {
        match text.trim() {
            "" | "database" => Some(Store::Database),
            "kubernetes" => Some(Store::Kubernetes),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Store::Database => "database",
            Store::Kubernetes => "kubernetes",
        }
    }
}

impl fmt::Display for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the Kubernetes store names a version's custom resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionResourceName {
    /// Database store: version names are unique per pipeline, no resource.
    None,
    /// 2.14–2.16: the bare version name, so version names are unique per *namespace*: two
    /// pipelines cannot both have a version `v1` (kubeflow/pipelines #13534).
    Bare,
    /// 2.17+: `{pipeline}-{version}` (the bare name when both are equal), fixed by #13552.
    Composite,
}

/// What a server accepts. Build it with [`Capabilities::from_healthz`] or [`Capabilities::of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The release, `None` when the healthz `tag_name` is not one (then the conservative set).
    pub release: Option<Release>,
    pub store: Store,
    pub multi_user: bool,
    /// Objects carry `name` apart from `display_name` (2.14+). Before, the one `Name` column is
    /// the identity: it is what get-by-name matches, what `POST /pipelines` takes from
    /// `display_name`, and what responses show as `display_name` (there is no `name` field).
    pub separate_name: bool,
    /// The upload handlers read `display_name` (2.14+; before, `name` sets both).
    pub upload_display_name: bool,
    /// The upload handlers read `tags`; objects carry tags (2.17+).
    pub tags: bool,
    /// `PATCH` of pipelines and versions (2.17+).
    pub patch: bool,
    /// The upload handlers read `code_source_url` (after 2.17.0: kubeflow/pipelines #13590).
    pub upload_code_source_url: bool,
    /// Pipeline and version names must be DNS-1123 subdomains (Kubernetes store).
    pub dns1123_names: bool,
    pub version_resource_name: VersionResourceName,
    /// A recurring run without `pipeline_version_id` follows the pipeline's newest version at
    /// each trigger (2.5+); before, the newest version is fixed when the recurring run is made.
    pub recurring_run_follows_latest: bool,
}

impl Capabilities {
    /// The capabilities of a known release on a store.
    pub fn of(release: Release, store: Store, multi_user: bool) -> Capabilities {
        let at_least = |r: Release| release >= r;
        // The Kubernetes store exists from 2.14; a healthz claiming it earlier is a fork: trust it.
        let kubernetes = store == Store::Kubernetes;
        Capabilities {
            release: Some(release),
            store,
            multi_user,
            separate_name: at_least(Release::V2_14),
            upload_display_name: at_least(Release::V2_14),
            tags: at_least(Release::V2_17),
            patch: at_least(Release::V2_17),
            upload_code_source_url: release > Release::V2_17,
            dns1123_names: kubernetes,
            version_resource_name: match (kubernetes, at_least(Release::V2_17)) {
                (false, _) => VersionResourceName::None,
                (true, false) => VersionResourceName::Bare,
                (true, true) => VersionResourceName::Composite,
            },
            recurring_run_follows_latest: at_least(Release::V2_5),
        }
    }

    /// An unknown release (`dev`, `unknown`, a fork): only what reads the same on every release.
    /// Upload parameters an older release does not know are ignored by it, so `display_name`,
    /// `tags` and `code_source_url` are sent; responses without `name` are read by their
    /// `display_name`; no PATCH; on a Kubernetes store, DNS-1123 names and version names that
    /// may collide across pipelines (the older rule).
    pub fn conservative(store: Store, multi_user: bool) -> Capabilities {
        let kubernetes = store == Store::Kubernetes;
        Capabilities {
            release: None,
            store,
            multi_user,
            separate_name: true,
            upload_display_name: true,
            tags: true,
            patch: false,
            upload_code_source_url: true,
            dns1123_names: kubernetes,
            version_resource_name: if kubernetes {
                VersionResourceName::Bare
            } else {
                VersionResourceName::None
            },
            // Not a request shape but a server behaviour nothing can probe: development builds
            // and forks are of current sources, which follow (an older fork is told apart only
            // by its tag).
            recurring_run_follows_latest: true,
        }
    }

    /// From the server's healthz. An unknown `pipeline_store` value is taken as Kubernetes
    /// (its naming rules are the stricter ones).
    pub fn from_healthz(h: &Healthz) -> Capabilities {
        let store = Store::parse(&h.pipeline_store).unwrap_or(Store::Kubernetes);
        match Release::parse(&h.tag_name) {
            Some(r) => Capabilities::of(r, store, h.multi_user),
            None => Capabilities::conservative(store, h.multi_user),
        }
    }

    /// Version names are unique per namespace rather than per pipeline (Kubernetes store < 2.17).
    pub fn version_names_per_namespace(&self) -> bool {
        self.version_resource_name == VersionResourceName::Bare
    }

    /// `2.17.0`, or `unknown`.
    pub fn release_label(&self) -> String {
        self.release
            .map_or_else(|| "unknown".to_string(), |r| r.to_string())
    }
}

impl Default for Capabilities {
    /// The newest release this table knows, database store, single-user.
    fn default() -> Self {
        Capabilities::of(Release::V2_17, Store::Database, false)
    }
}

/// Responses of releases before 2.14 have no `name`: their `display_name` is the identity.
pub trait FillNames {
    fn fill_names(self) -> Self;
}

impl FillNames for Pipeline {
    fn fill_names(mut self) -> Self {
        if self.name.is_empty() {
            self.name = self.display_name.clone();
        }
        self
    }
}

impl FillNames for PipelineVersion {
    fn fill_names(mut self) -> Self {
        if self.name.is_empty() {
            self.name = self.display_name.clone();
        }
        self
    }
}

impl<T: FillNames> FillNames for Option<T> {
    fn fill_names(self) -> Self {
        self.map(FillNames::fill_names)
    }
}

impl<T: FillNames> FillNames for Vec<T> {
    fn fill_names(self) -> Self {
        self.into_iter().map(FillNames::fill_names).collect()
    }
}

/// Is `s` a DNS-1123 subdomain (what Kubernetes requires of `metadata.name`)?
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The nearest DNS-1123 subdomain of at most `max` bytes: lowercase, runs of other characters
/// become `-`, no `-` or `.` at either end or next to a `.`. Empty input gives `pipeline`.
pub fn dns1123(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' {
            c
        } else {
            '-'
        };
        let last = out.chars().last();
        match (last, c) {
            (None, '-' | '.') => {}
            (Some('-'), '-') | (Some('.'), '.') => {}
            (Some('-'), '.') => {
                out.pop();
                out.push('.');
            }
            (Some('.'), '-') => {}
            _ => out.push(c),
        }
    }
    out.truncate(max.min(253));
    let trimmed = out.trim_end_matches(['-', '.']).to_string();
    if trimmed.is_empty() {
        "pipeline".to_string()
    } else {
        trimmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthz(tag: &str, store: &str) -> Healthz {
        Healthz {
            commit_sha: "x".into(),
            tag_name: tag.into(),
            multi_user: false,
            pipeline_store: store.into(),
        }
    }

    #[test]
    fn releases_parse_and_order() {
        assert_eq!(Release::parse("2.17.0"), Some(Release::V2_17));
        assert_eq!(Release::parse("v2.5.0"), Some(Release::V2_5));
        assert_eq!(Release::parse("2.14.0-rc.1"), Some(Release::V2_14));
        assert_eq!(Release::parse("2.16"), Some(Release::V2_16));
        for bad in ["dev", "unknown", "", "latest", "1.2.3.4", "abc1234"] {
            assert_eq!(Release::parse(bad), None, "{bad}");
        }
        assert!(Release::V2_5 < Release::V2_14);
        assert_eq!(Release::V2_16.to_string(), "2.16.0");
    }

    #[test]
    fn the_table_per_release() {
        let c = Capabilities::from_healthz(&healthz("2.0.0", ""));
        assert!(!c.separate_name && !c.upload_display_name && !c.tags && !c.patch);
        assert_eq!(c.store, Store::Database);
        let c = Capabilities::from_healthz(&healthz("2.5.0", ""));
        assert!(!c.separate_name && !c.tags);
        let c = Capabilities::from_healthz(&healthz("2.14.0", "kubernetes"));
        assert!(c.separate_name && c.upload_display_name && !c.tags && !c.patch);
        assert!(c.dns1123_names && c.version_names_per_namespace());
        let c = Capabilities::from_healthz(&healthz("2.16.0", "kubernetes"));
        assert!(c.version_names_per_namespace());
        let c = Capabilities::from_healthz(&healthz("2.17.0", "kubernetes"));
        assert!(c.tags && c.patch && !c.upload_code_source_url);
        assert_eq!(c.version_resource_name, VersionResourceName::Composite);
        let c = Capabilities::from_healthz(&healthz("2.17.1", "database"));
        assert!(c.upload_code_source_url && !c.dns1123_names);
    }

    #[test]
    fn unknown_releases_get_the_conservative_set() {
        for tag in ["dev", "unknown", "my-fork-7"] {
            let c = Capabilities::from_healthz(&healthz(tag, "kubernetes"));
            assert_eq!(c.release, None);
            assert!(!c.patch, "{tag}");
            assert!(c.version_names_per_namespace(), "{tag}");
            assert_eq!(c.release_label(), "unknown");
        }
        let c = Capabilities::from_healthz(&healthz("dev", "something-new"));
        assert_eq!(c.store, Store::Kubernetes);
    }

    #[test]
    fn recurring_runs_follow_the_newest_version_from_2_5() {
        let follows = |tag: &str| {
            Capabilities::from_healthz(&healthz(tag, "database")).recurring_run_follows_latest
        };
        assert!(!follows("2.0.0") && !follows("2.4.1"));
        assert!(follows("2.5.0") && follows("2.17.0") && follows("dev"));
    }

    #[test]
    fn names_are_filled_from_display_names_before_2_14() {
        let p = Pipeline {
            display_name: "hello-pipeline".into(),
            ..Pipeline::default()
        }
        .fill_names();
        assert_eq!(p.name, "hello-pipeline");
        let v = PipelineVersion {
            name: "v1".into(),
            display_name: "Version one".into(),
            ..PipelineVersion::default()
        }
        .fill_names();
        assert_eq!(v.name, "v1");
    }

    #[test]
    fn dns1123_names() {
        assert_eq!(dns1123("Hello_Pipeline", 253), "hello-pipeline");
        assert_eq!(dns1123("--a..b--", 253), "a.b");
        assert_eq!(dns1123("v2026.12.02_10:10", 253), "v2026.12.02-10-10");
        assert_eq!(dns1123("___", 253), "pipeline");
        assert_eq!(dns1123("abc-def", 4), "abc");
        for s in ["Hello_Pipeline", "--a..b--", "x.-y", "Ünïcode name"] {
            assert!(is_dns1123_subdomain(&dns1123(s, 253)), "{s}");
        }
        assert!(!is_dns1123_subdomain("a_b"));
        assert!(!is_dns1123_subdomain("-a"));
        assert!(is_dns1123_subdomain("v20261202-101010"));
    }
}
