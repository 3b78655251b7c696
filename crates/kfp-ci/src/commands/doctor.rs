//! `kfp-ci doctor`: from where it runs (a laptop, a CI runner pod), check that the KFP endpoint
//! answers, its healthz, that the credentials are accepted, that the namespace is visible, and that
//! ntfy answers. One line per check on stderr; exit 1 when one fails, 2 on a configuration error.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cli::{DoctorCmd, GlobalArgs};
use crate::client::{ApiError, Client};
use crate::http::{self, Failure, Transport};
use crate::output;
use crate::redact::redact;
use crate::settings;
use crate::status::ExitStatus;
use crate::target::{self, Endpoint, Target};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Ok,
    Fail,
    Skip,
}

#[derive(Default)]
struct Checks {
    failed: bool,
}

impl Checks {
    fn line(&mut self, mark: Mark, text: &str) {
        let tag = match mark {
            Mark::Ok => "ok  ",
            Mark::Fail => {
                self.failed = true;
                "FAIL"
            }
            Mark::Skip => "skip",
        };
        let line = format!("{tag}  {}", redact(text));
        // A failed check is an error: said even with -q.
        if mark == Mark::Fail {
            output::always(&format!("{line}\n"));
        } else {
            output::message_line(&line);
        }
    }

    fn hint(&self, text: &str) {
        output::always(&format!("      hint: {}\n", redact(text)));
    }
}

pub async fn run(cmd: DoctorCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let loaded = settings::load(global.config.as_deref(), &cwd)?;
    let target = target::resolve(&cmd.target, &loaded)?;
    let notify = crate::notify::resolve(&cmd.notify, &loaded.config.notify)?;
    let connect_timeout = Duration::from_secs_f64(cmd.connect_timeout.max(0.1));
    let mut checks = Checks::default();

    match &target.endpoint {
        Endpoint::Embedded(path) => checks.line(
            Mark::Skip,
            &format!(
                "endpoint: none configured (KF_PIPELINES_ENDPOINT, --endpoint, `endpoint` in kfp-ci.toml); deploys go to the embedded store {}",
                path.display()
            ),
        ),
        Endpoint::Remote(base) => {
            let sdk = loaded
                .config
                .kfp_version
                .clone()
                .unwrap_or_else(|| settings::DEFAULT_KFP_VERSION.to_string());
            check_kfp(&mut checks, &target, base, connect_timeout, &sdk).await?;
        }
    }

    match &notify.ntfy {
        None => checks.line(
            Mark::Skip,
            "ntfy: not configured (--ntfy-url, KFP_CI_NTFY_URL, notify.ntfy.url)",
        ),
        Some(ntfy) => check_ntfy(&mut checks, ntfy, connect_timeout).await,
    }

    Ok(if checks.failed {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// The probes' HTTP client: short connect timeout, the target's TLS settings (`None`: ntfy).
fn http_client(
    tls: Option<&crate::target::Tls>,
    connect_timeout: Duration,
) -> Result<reqwest::Client> {
    http::client(http::Options {
        connect_timeout: Some(connect_timeout),
        timeout: Some(connect_timeout + Duration::from_secs(10)),
        tls,
        ..http::Options::default()
    })
}

/// Why a request got no answer, and what to do about it.
fn transport_problem(
    err: &reqwest::Error,
    connect_timeout: Duration,
    refused_hint: &str,
) -> (String, Option<String>) {
    let shown = err
        .url()
        .map(|u| crate::redact::display_url(u.as_str()))
        .unwrap_or_default();
    let t = Transport::of(err, &shown);
    // The short reason on the check's line; the whole chain at -v.
    tracing::debug!("{}", t.chain);
    match t.failure {
        Failure::ConnectTimeout => (
            format!("connect timeout after {} s", connect_timeout.as_secs_f64()),
            Some(format!(
                "a connect timeout from inside the cluster is usually a NetworkPolicy dropping traffic from this namespace: \
                 apply {} (`kfp-ci init` writes it; --runner-namespace names this runner's namespace)",
                crate::init::NETWORK_POLICY_PATH
            )),
        ),
        Failure::Timeout => ("no answer in time".to_string(), None),
        Failure::Dns => (
            "the host name does not resolve".to_string(),
            Some("check the endpoint's host name; in-cluster it is ml-pipeline.<kfp-namespace>.svc.cluster.local".into()),
        ),
        Failure::PlainHttp => (
            http::PLAIN_HTTP.to_string(),
            Some("the port speaks plain HTTP (the in-cluster ml-pipeline service on 8888 does): write the URL with http://".into()),
        ),
        Failure::Refused => (
            "connection refused".to_string(),
            Some(refused_hint.to_string()),
        ),
        _ => (t.chain, None),
    }
}

async fn check_kfp(
    checks: &mut Checks,
    target: &Target,
    base: &url::Url,
    connect_timeout: Duration,
    sdk: &str,
) -> Result<()> {
    let http = http_client(Some(&target.tls), connect_timeout)?;
    // Shown without userinfo or query, as every URL.
    let shown = crate::redact::display_url(base.as_str());
    let mut healthz = base.clone();
    if let Ok(mut path) = healthz.path_segments_mut() {
        path.pop_if_empty().extend(["apis", "v2beta1", "healthz"]);
    }
    let started = Instant::now();
    let response = match http.get(healthz.clone()).send().await {
        Ok(r) => r,
        Err(err) => {
            let (problem, hint) = transport_problem(
                &err,
                connect_timeout,
                "nothing listens there: check the port (the KFP API listens on 8888) and that ml-pipeline runs",
            );
            checks.line(Mark::Fail, &format!("endpoint {shown}: {problem}"));
            if let Some(hint) = hint {
                checks.hint(&hint);
            }
            checks.line(
                Mark::Skip,
                "healthz, token, namespace: the endpoint does not answer",
            );
            return Ok(());
        }
    };
    let ms = started.elapsed().as_millis();
    checks.line(
        Mark::Ok,
        &format!(
            "endpoint {shown} answers (HTTP {}, {ms} ms)",
            response.status().as_u16()
        ),
    );
    drop(response);

    let mut client = Client::for_target(base.clone(), target)?;
    client.backoff.max = Duration::from_millis(500);
    let configured = target.auth.is_configured();
    match client.healthz().await {
        Ok(h) => {
            let version = if h.tag_name.is_empty() || h.tag_name == "unknown" {
                "version unknown".to_string()
            } else {
                format!("KFP {}", h.tag_name)
            };
            let mode = if h.multi_user {
                "multi-user"
            } else {
                "single-user"
            };
            let store = if h.pipeline_store.is_empty() {
                String::new()
            } else {
                format!(", {} store", h.pipeline_store)
            };
            checks.line(Mark::Ok, &format!("healthz: {version}, {mode}{store}"));
            // What kfp-ci can do on this release and store (kfp_api::compat): details of
            // this check, indented like hints.
            for text in crate::compat::doctor_lines(&h, Some(sdk)) {
                output::message_line(&format!("      {}", redact(&text)));
            }
        }
        Err(err) if matches!(err.status(), Some(401 | 403)) => {
            checks.line(Mark::Fail, &format!("healthz: credentials rejected: {err}"));
            if let Some(hint) = err.hint(&target.auth) {
                checks.hint(&hint);
            }
            checks.line(Mark::Skip, "namespace: the credentials were rejected");
            return Ok(());
        }
        Err(err) if err.is_login_page() => {
            checks.line(Mark::Fail, &format!("healthz: {err}"));
            if let Some(hint) = err.hint(&target.auth) {
                checks.hint(&hint);
            }
            checks.line(Mark::Skip, "namespace: the requests go to a login page");
            return Ok(());
        }
        Err(err) => {
            checks.line(
                Mark::Fail,
                &format!(
                    "healthz {}: not a KFP healthz answer: {err}",
                    crate::redact::display_url(healthz.as_str())
                ),
            );
            checks.hint("is the endpoint the KFP API base URL? kfp-ci appends /apis/v2beta1/...; behind the Kubeflow gateway it is https://<host>/pipeline");
        }
    }

    // One authenticated, namespaced read: a name that does not exist answers 404 when the
    // credentials and the namespace are fine.
    let ns = &target.namespace;
    match client.pipeline_by_name("kfp-ci-doctor-probe", ns).await {
        Ok(_) => {
            checks.line(
                Mark::Ok,
                if configured {
                    "credentials accepted"
                } else {
                    "no credentials configured, and none needed for reads"
                },
            );
            if ns.is_empty() {
                checks.line(
                    Mark::Skip,
                    "namespace: none configured (single-user KFP, or shared pipelines)",
                );
            } else {
                checks.line(Mark::Ok, &format!("namespace {ns} visible"));
            }
        }
        Err(err) => {
            let status = err.status();
            match status {
                Some(403) if !ns.is_empty() => {
                    checks.line(Mark::Ok, "credentials recognised (403, not 401)");
                    checks.line(
                        Mark::Fail,
                        &format!("namespace {ns} not accessible: {}", err.server_message()),
                    );
                    checks.hint(&format!(
                        "the identity behind the token needs access to pipelines in {ns} (a contributor binding in the profile, or a RoleBinding for pipelines.kubeflow.org)"
                    ));
                }
                Some(401) | Some(403) => {
                    checks.line(Mark::Fail, &format!("credentials rejected: {err}"));
                    if let Some(hint) = err.hint(&target.auth) {
                        checks.hint(&hint);
                    }
                    checks.line(Mark::Skip, "namespace: the credentials were rejected");
                }
                _ => {
                    checks.line(Mark::Fail, &format!("authenticated read failed: {err}"));
                    if let Some(hint) = err.hint(&target.auth) {
                        checks.hint(&hint);
                    }
                    if let ApiError::Transport { .. } = err {
                        checks.line(Mark::Skip, "namespace: no answer");
                    }
                }
            }
        }
    }
    Ok(())
}

async fn check_ntfy(
    checks: &mut Checks,
    ntfy: &crate::notify::NtfyTarget,
    connect_timeout: Duration,
) {
    let http = match http_client(None, connect_timeout) {
        Ok(h) => h,
        Err(err) => {
            checks.line(
                Mark::Fail,
                &format!("ntfy: cannot build the HTTP client: {err:#}"),
            );
            return;
        }
    };
    let health = format!("{}v1/health", ntfy.base);
    let auth = match &ntfy.auth {
        Some(crate::notify::NtfyAuth::Token(_)) => "with a token",
        Some(crate::notify::NtfyAuth::Basic { .. }) => "with a user and password",
        None => "without credentials",
    };
    match http.get(&health).send().await {
        Ok(r) => {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            let healthy = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("healthy").and_then(serde_json::Value::as_bool));
            match (status.is_success(), healthy) {
                (true, Some(true)) => checks.line(
                    Mark::Ok,
                    &format!("ntfy {} healthy; topic {} {auth}", ntfy.base, ntfy.topic),
                ),
                _ => {
                    checks.line(
                        Mark::Fail,
                        &format!(
                            "ntfy {health}: HTTP {status}, not a healthy ntfy answer: {}",
                            http::body_excerpt(&body, 200)
                        ),
                    );
                    checks.hint("give the topic URL of an ntfy server, e.g. https://ntfy.example/kfp-deploys");
                }
            }
        }
        Err(err) => {
            let (problem, hint) = transport_problem(
                &err,
                connect_timeout,
                "nothing listens there: check the host and port of the ntfy URL",
            );
            checks.line(Mark::Fail, &format!("ntfy {}: {problem}", ntfy.base));
            if let Some(hint) = hint
                && !err.is_timeout()
            {
                checks.hint(&hint);
            } else if err.is_timeout() {
                checks.hint(
                    "an egress NetworkPolicy or a proxy may block the runner from reaching ntfy",
                );
            }
        }
    }
}
