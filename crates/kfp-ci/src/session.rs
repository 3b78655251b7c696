//! Session: the configuration, the target, a client connected to it (or to the embedded local
//! store), its health check and what the server's version allows. Every command that talks to a
//! server starts here; the data path (`prepare`) runs the health check alongside the compile.

use anyhow::{Context, Result, anyhow};
use kfp_api::wire::{Healthz, Pipeline, PipelineVersion};

use crate::cli::{GlobalArgs, TargetArgs};
use crate::client::Client;
use crate::settings::{self, LoadedConfig};
use crate::target::{self, Endpoint, Target};

/// The configuration, found from the current directory; run from outside any git work tree with
/// PATHs inside one (`kfp-ci deploy ~/repo/pipelines`), from that work tree instead: its
/// configuration applies, file paths are relative to its root and its commit is the one deployed.
pub fn load_config(global: &GlobalArgs, paths: &[std::path::PathBuf]) -> Result<LoadedConfig> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let base = match &global.config {
        None if crate::git::enclosing_work_tree(&cwd).is_none() => {
            crate::git::work_tree_of(&cwd, paths).unwrap_or(cwd)
        }
        _ => cwd,
    };
    settings::load(global.config.as_deref(), &base)
}

/// A client for the target, before its health check.
pub struct Connection {
    pub target: Target,
    pub client: Client,
    /// The endpoint as messages name it (no credentials).
    pub label: String,
    /// Keeps the embedded server alive while the client talks to it.
    embedded: Option<kfp_serve::RunningServer>,
}

/// A connected target that answered its health check.
pub struct Session {
    pub target: Target,
    pub client: Client,
    pub health: Healthz,
    pub label: String,
    _embedded: Option<kfp_serve::RunningServer>,
}

impl Connection {
    /// A client for `target`; starts the embedded local store when no endpoint is configured.
    pub async fn open(target: Target) -> Result<Connection> {
        let label = endpoint_label(&target);
        match &target.endpoint {
            Endpoint::Remote(url) => Ok(Connection {
                client: Client::for_target(url.clone(), &target)?,
                target,
                label,
                embedded: None,
            }),
            Endpoint::Embedded(db) => {
                let server = kfp_serve::spawn(kfp_serve::ServeOptions::ephemeral(db.clone()))
                    .await
                    .with_context(|| {
                        format!("cannot start the embedded local store at {}", db.display())
                    })?;
                tracing::info!(
                    "no KFP endpoint configured: using the local store {} (browse it with `kfp-ci serve`; set KF_PIPELINES_ENDPOINT or --endpoint for a cluster)",
                    db.display()
                );
                let url = url::Url::parse(&server.url()).context("embedded server URL")?;
                let client = Client::for_target(url, &target)?;
                Ok(Connection {
                    target,
                    client,
                    label,
                    embedded: Some(server),
                })
            }
        }
    }

    /// The health check of the data path: a transport failure is one readable line (the whole
    /// reqwest chain is for -v), with a hint where the client has one.
    pub async fn healthz(&self) -> Result<Healthz> {
        self.client.healthz().await.map_err(|e| {
            let hint = e
                .hint(self.client.auth())
                .map(|h| format!("\nhint: {h}"))
                .unwrap_or_default();
            match e.transport_reason() {
                Some(reason) => {
                    tracing::debug!("health check: {e}");
                    anyhow!(
                        "cannot reach the KFP API at {} ({reason}){hint}",
                        self.label
                    )
                }
                None => anyhow!(
                    "the KFP API at {} did not answer the health check: {}{hint}",
                    self.label,
                    e.server_message()
                ),
            }
        })
    }

    /// The session after a health check answered with `health`.
    pub fn ready(self, health: Healthz) -> Session {
        Session {
            target: self.target,
            client: self.client,
            health,
            label: self.label,
            _embedded: self.embedded,
        }
    }
}

impl Session {
    /// A connected target without compiling anything (history, rollback, cleanup, promote).
    pub async fn open(args: &TargetArgs, global: &GlobalArgs) -> Result<Session> {
        let loaded = load_config(global, &[])?;
        let connection = Connection::open(target::resolve(args, &loaded)?).await?;
        let health = connection.client.healthz().await.map_err(|e| {
            anyhow!(
                "the KFP API at {} did not answer the health check: {}",
                connection.label,
                e.server_message()
            )
        })?;
        Ok(connection.ready(health))
    }

    /// The server's release, from its health check.
    pub fn server_version(&self) -> Option<String> {
        server_version(&self.health)
    }

    /// Send version tags? Upload handlers before 2.17 ignore the tags parameter, so unknown
    /// versions get them.
    pub fn sends_tags(&self) -> bool {
        self.server_version()
            .as_deref()
            .is_none_or(|v| !newer("2.17.0", v))
    }

    /// The server keeps pipelines as Kubernetes objects: names are DNS-1123.
    pub fn kubernetes_store(&self) -> bool {
        self.health.pipeline_store == "kubernetes"
    }

    /// A pipeline name as this server stores it (DNS-1123 on the kubernetes store).
    pub fn stored_name(&self, name: &str) -> String {
        if self.kubernetes_store() {
            target::dns1123(name)
        } else {
            name.to_string()
        }
    }

    /// The pipeline by name (its DNS-1123 form on the kubernetes store), or an error saying
    /// where it was looked for.
    pub async fn pipeline(&self, name: &str) -> Result<Pipeline> {
        let ns = &self.target.namespace;
        let lookup = self.stored_name(name);
        match self.client.pipeline_by_name(&lookup, ns).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(anyhow!(
                "no pipeline named `{lookup}` at {}{}: `kfp-ci plan` shows the names kfp-ci deploys",
                self.label,
                if ns.is_empty() {
                    String::new()
                } else {
                    format!(" in namespace {ns}")
                }
            )),
            Err(e) => Err(anyhow!(
                "looking up pipeline `{lookup}` at {}: {}",
                self.label,
                e.server_message()
            )),
        }
    }

    /// Every version of `pipeline`, newest first.
    pub async fn versions(&self, pipeline: &Pipeline) -> Result<Vec<PipelineVersion>> {
        self.client
            .all_versions(&pipeline.pipeline_id)
            .await
            .map_err(|e| {
                anyhow!(
                    "listing the versions of `{}` at {}: {}",
                    pipeline.name,
                    self.label,
                    e.server_message()
                )
            })
    }
}

/// The endpoint as reports and messages show it: the URL without credentials, or
/// `local:<path>` for the embedded store.
pub fn endpoint_label(target: &Target) -> String {
    match &target.endpoint {
        Endpoint::Remote(url) => crate::redact::display_url(url.as_str())
            .trim_end_matches('/')
            .to_string(),
        Endpoint::Embedded(db) => format!("local:{}", db.display()),
    }
}

/// The server's release from healthz `tag_name` (`2.17.0`, `v2.17.0`), unless `unknown`.
pub fn server_version(h: &Healthz) -> Option<String> {
    let tag = h.tag_name.trim().trim_start_matches('v');
    (!tag.is_empty() && tag != "unknown" && parse_version(tag).is_some()).then(|| tag.to_string())
}

pub fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v.trim_start_matches('v').split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some((major, minor, patch))
}

/// Is `a` a newer release than `b`?
pub fn newer(a: &str, b: &str) -> bool {
    matches!((parse_version(a), parse_version(b)), (Some(x), Some(y)) if x > y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(newer("2.17.0", "2.14.0"));
        assert!(!newer("2.17.0", "2.17.0"));
        assert!(!newer("2.5.0", "2.17.0"));
        let h = Healthz {
            tag_name: "unknown".into(),
            ..Default::default()
        };
        assert_eq!(server_version(&h), None);
    }
}
