//! Where pipelines go: the KFP endpoint, namespace and credentials, resolved once per run.
//!
//! Precedence: flags > environment (`KF_PIPELINES_ENDPOINT`, `KF_PIPELINES_NAMESPACE`,
//! `KF_PIPELINES_TOKEN`, `KF_PIPELINES_SA_TOKEN_PATH`, `KFP_CI_COOKIE`) > the named target
//! (`--target NAME` or `default_target`, a `[targets.NAME]` table) > the top-level keys of the
//! configuration file. With no endpoint at all, plan and deploy use the embedded local store, except
//! in CI (`CI` set), where that is a configuration error: a CI job never deploys to a laptop store.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::cli::TargetArgs;
use crate::redact::Secret;
use crate::settings::{LoadedConfig, TargetConfig};

/// Environment variable holding a bearer token (the kfp SDK's spelling).
pub const TOKEN_ENV: &str = "KF_PIPELINES_TOKEN";
/// Environment variable holding a cookie string sent verbatim as `Cookie:`.
pub const COOKIE_ENV: &str = "KFP_CI_COOKIE";

/// A resolved target.
#[derive(Debug, Clone)]
pub struct Target {
    /// `--target` name, if one was chosen.
    pub name: Option<String>,
    pub endpoint: Endpoint,
    /// Empty string = no namespace (single-user KFP, or shared pipelines in multi-user KFP).
    pub namespace: String,
    pub auth: Auth,
    pub tls: Tls,
    /// KFP UI base URL, for links.
    pub ui_url: Option<String>,
    /// How long one request to the KFP API (with its retries) may take.
    pub request_timeout: std::time::Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    /// A KFP API base URL: scheme explicit, path prefix kept, no trailing slash.
    Remote(url::Url),
    /// Nothing configured, not in CI: an in-process server on `<root>/.kfp-ci/registry.db`.
    Embedded(PathBuf),
}

/// Credentials sent with every request.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    pub token: Option<Secret>,
    /// Re-read on every request: projected service-account tokens rotate.
    pub token_file: Option<PathBuf>,
    pub cookie: Option<Secret>,
    pub headers: Vec<(String, Secret)>,
    /// The variable the token came from (`token_env`; empty: KF_PIPELINES_TOKEN), for hints.
    pub token_env: String,
    /// The variable the cookie came from (`cookie_env`; empty: KFP_CI_COOKIE), for hints.
    pub cookie_env: String,
}

impl Auth {
    /// Where the credentials sent with each request come from (for a 401/403 hint), e.g.
    /// "the token in PROD_TOKEN"; `None` when nothing is sent.
    pub fn source(&self) -> Option<String> {
        let or_default = |name: &str, default: &str| {
            if name.is_empty() {
                default.to_string()
            } else {
                name.to_string()
            }
        };
        let mut parts = Vec::new();
        if let Some(path) = &self.token_file {
            // The file wins over a token variable.
            parts.push(format!("the token in the file {}", path.display()));
        } else if self.token.is_some() {
            parts.push(format!(
                "the token in {}",
                or_default(&self.token_env, TOKEN_ENV)
            ));
        }
        if self.cookie.is_some() {
            parts.push(format!(
                "the cookie in {}",
                or_default(&self.cookie_env, COOKIE_ENV)
            ));
        }
        if !self.headers.is_empty() {
            let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
            parts.push(format!("the header(s) {}", names.join(", ")));
        }
        (!parts.is_empty()).then(|| parts.join(" and "))
    }

    /// Does any credential go with the requests? (for error hints)
    pub fn is_configured(&self) -> bool {
        self.token.is_some()
            || self.token_file.is_some()
            || self.cookie.is_some()
            || !self.headers.is_empty()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Tls {
    pub ca_cert: Option<PathBuf>,
    pub insecure_skip_verify: bool,
}

/// Is this process running in CI? (`CI` set to anything but empty, `0` or `false`)
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
        .unwrap_or(false)
}

/// Resolve the target from flags, environment and configuration.
pub fn resolve(args: &TargetArgs, loaded: &LoadedConfig) -> Result<Target> {
    resolve_with(args, loaded, &|name| std::env::var(name).ok(), in_ci())
}

/// [`resolve`] with the environment passed in (for tests).
pub fn resolve_with(
    args: &TargetArgs,
    loaded: &LoadedConfig,
    env: &dyn Fn(&str) -> Option<String>,
    ci: bool,
) -> Result<Target> {
    let config = &loaded.config;
    let config_name = loaded.path.as_ref().map_or_else(
        || "the configuration".to_string(),
        |p| p.display().to_string(),
    );
    let name = args
        .target
        .clone()
        .or_else(|| config.default_target.clone());
    let empty = TargetConfig::default();
    let named = match &name {
        None => &empty,
        Some(n) => config.targets.get(n).with_context(|| {
            let known: Vec<&str> = config.targets.keys().map(String::as_str).collect();
            format!(
                "unknown target `{n}`: {config_name} defines {}",
                if known.is_empty() {
                    "no [targets.NAME] tables".to_string()
                } else {
                    format!("[targets.{}]", known.join("], [targets."))
                }
            )
        })?,
    };

    let endpoint_text = non_empty(args.endpoint.clone())
        .map(|e| (e, "--endpoint / KF_PIPELINES_ENDPOINT".to_string()))
        .or_else(|| {
            let n = name.as_deref().unwrap_or_default();
            named
                .endpoint
                .clone()
                .map(|e| (e, format!("[targets.{n}] in {config_name}")))
        })
        .or_else(|| {
            config
                .endpoint
                .clone()
                .map(|e| (e, format!("`endpoint` in {config_name}")))
        });
    let endpoint = match endpoint_text {
        Some((text, source)) => Endpoint::Remote(
            parse_endpoint(&text).map_err(|e| anyhow::anyhow!("{e:#} (set by {source})"))?,
        ),
        None if ci => bail!(
            "no KFP endpoint configured, and this is a CI run (CI is set): refusing to deploy to a local store\n\
             hint: set KF_PIPELINES_ENDPOINT, pass --endpoint, or set `endpoint` (or [targets.NAME]) in kfp-ci.toml"
        ),
        None => Endpoint::Embedded(loaded.root.join(".kfp-ci").join("registry.db")),
    };

    let namespace = non_empty(args.namespace.clone())
        .or_else(|| named.namespace.clone())
        .or_else(|| config.namespace.clone())
        .unwrap_or_default();
    if namespace.len() > kfp_api::wire::limits::MAX_NAMESPACE {
        bail!(
            "namespace `{namespace}` is longer than {} characters",
            kfp_api::wire::limits::MAX_NAMESPACE
        );
    }

    let request_timeout = match args
        .request_timeout
        .or(named.request_timeout)
        .or(config.request_timeout)
    {
        Some(0) => bail!(
            "`request_timeout` (--request-timeout, KFP_CI_REQUEST_TIMEOUT, or `request_timeout` in {config_name}) must be at least 1 second"
        ),
        Some(secs) => std::time::Duration::from_secs(secs),
        None => crate::client::DEFAULT_REQUEST_TIMEOUT,
    };

    let token_env = named.token_env.as_deref().unwrap_or(TOKEN_ENV);
    let token = env(token_env).filter(|t| !t.trim().is_empty());
    if let Some(t) = &token {
        crate::redact::check_secret(&format!("the token in {token_env}"), t)?;
    }
    let token = token.map(|t| Secret::new(t.trim()));
    let token_file = args.token_file.clone().or_else(|| named.token_file.clone());
    if let Some(path) = &token_file
        && let Err(err) = std::fs::File::open(path)
    {
        bail!(
            "cannot read the token file {} (--token-file, KF_PIPELINES_SA_TOKEN_PATH or token_file): {err}",
            path.display()
        );
    }
    let cookie_env = named.cookie_env.as_deref().unwrap_or(COOKIE_ENV);
    let cookie = env(cookie_env).filter(|c| !c.trim().is_empty());
    if let Some(c) = &cookie {
        crate::redact::check_secret(&format!("the cookie in {cookie_env}"), c)?;
    }
    let cookie = cookie.map(|c| {
        crate::redact::register_cookie(c.trim());
        Secret::new(c.trim())
    });

    let mut headers = Vec::new();
    for (key, value) in &named.headers {
        headers.push((
            check_header_name(key)?,
            Secret::new(expand_env(value, env)?),
        ));
    }
    for header in &args.headers {
        let (key, value) = header.split_once(':').with_context(|| {
            "--header must look like `Name: value` (the value is hidden in all output)".to_string()
        })?;
        headers.push((check_header_name(key.trim())?, Secret::new(value.trim())));
    }
    // A value HTTP cannot carry (a line break from `echo`, a stray control character) is a
    // configuration error naming where it came from, not a failed request.
    if let Some(t) = &token {
        check_header_value(&format!("the token in {token_env}"), t)?;
    }
    if let Some(c) = &cookie {
        check_header_value(&format!("the cookie in {cookie_env}"), c)?;
    }
    for (name, value) in &headers {
        check_header_value(&format!("the value of header `{name}`"), value)?;
    }

    let ui_url = non_empty(args.ui_url.clone())
        .or_else(|| named.ui_url.clone())
        .or_else(|| config.ui_url.clone())
        .map(|u| u.trim_end_matches('/').to_string());
    if let Some(ui) = &ui_url {
        check_ui_url(ui)?;
    }
    // The token file's content is checked when it is read (every request): here, only that a
    // one-character token is refused before anything is sent.
    if let Some(path) = &token_file
        && let Ok(text) = std::fs::read_to_string(path)
        && !text.trim().is_empty()
    {
        crate::redact::check_secret(&format!("the token in the file {}", path.display()), &text)?;
    }

    Ok(Target {
        name,
        endpoint,
        namespace,
        auth: Auth {
            token,
            token_file,
            cookie,
            headers,
            token_env: token_env.to_string(),
            cookie_env: cookie_env.to_string(),
        },
        tls: Tls {
            ca_cert: args.ca_cert.clone().or_else(|| named.ca_cert.clone()),
            insecure_skip_verify: args.insecure_skip_tls_verify
                || named.insecure_skip_tls_verify.unwrap_or(false),
        },
        ui_url,
        request_timeout,
    })
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// Parse an endpoint: `http://` or `https://` required (no guessing), path prefix kept, no
/// credentials in the URL, no query or fragment.
pub fn parse_endpoint(text: &str) -> Result<url::Url> {
    let text = text.trim();
    if !(text.starts_with("http://") || text.starts_with("https://")) {
        bail!(
            "KFP endpoint `{}` has no scheme: write http://… (the in-cluster service, port 8888) or https://… (the Kubeflow gateway, e.g. https://host/pipeline)",
            crate::redact::display_url(text)
        );
    }
    let mut url = url::Url::parse(text).with_context(|| {
        format!(
            "KFP endpoint `{}` is not a URL",
            crate::redact::display_url(text)
        )
    })?;
    if carries_credentials(&url) {
        bail!(
            "KFP endpoint `{}` carries credentials: use KF_PIPELINES_TOKEN, --token-file or KFP_CI_COOKIE instead",
            crate::redact::display_url(text)
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!(
            "KFP endpoint `{}` must not have a query or fragment (a token goes in KF_PIPELINES_TOKEN or --token-file, not in the URL)",
            crate::redact::display_url(text)
        );
    }
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(&path);
    Ok(url)
}

/// Whether `url` has a user or password in it; a password is registered as a secret at once, so
/// the error that follows cannot print it.
fn carries_credentials(url: &url::Url) -> bool {
    if let Some(p) = url.password() {
        crate::redact::register(p);
    }
    !url.username().is_empty() || url.password().is_some()
}

/// The UI URL ends up in reports, job outputs and notifications: it needs a scheme (or the links
/// are broken) and must carry no credentials (they would be published).
fn check_ui_url(text: &str) -> Result<()> {
    let url = url::Url::parse(text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .with_context(|| {
            format!(
                "KFP UI URL `{}` (--ui-url, KFP_CI_UI_URL or ui_url) is not an http(s) URL: write e.g. https://kubeflow.example.com/pipeline",
                crate::redact::display_url(text)
            )
        })?;
    if carries_credentials(&url) {
        bail!(
            "KFP UI URL `{}` (--ui-url, KFP_CI_UI_URL or ui_url) carries credentials, which would be published in reports and notifications: remove them",
            crate::redact::display_url(text)
        );
    }
    if url.query().is_some() {
        bail!(
            "KFP UI URL `{}` (--ui-url, KFP_CI_UI_URL or ui_url) has a query, which would be published in reports and notifications: give the base URL only",
            crate::redact::display_url(text)
        );
    }
    Ok(())
}

fn check_header_value(what: &str, value: &Secret) -> Result<()> {
    if reqwest::header::HeaderValue::from_str(value.expose()).is_err() {
        bail!(
            "{what} holds a line break or another character HTTP headers cannot carry (pasted across lines?): set it on one line"
        );
    }
    Ok(())
}

fn check_header_name(name: &str) -> Result<String> {
    reqwest::header::HeaderName::from_bytes(name.as_bytes())
        .with_context(|| format!("`{name}` is not a valid HTTP header name"))?;
    Ok(name.to_string())
}

/// Replace `${NAME}` with the environment variable NAME (an error when unset).
fn expand_env(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .with_context(|| format!("unterminated `${{` in header value `{value}`"))?;
        let name = &after[..end];
        let v = env(name).with_context(|| {
            format!("header value references ${{{name}}}, but {name} is not set")
        })?;
        out.push_str(&v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// DNS-1123 subdomain form of a pipeline name, for the kubernetes store:
/// `Foo_Pipeline` → `foo-pipeline` (the rule lives in `kfp_api::compat`).
pub fn dns1123(name: &str) -> String {
    kfp_api::compat::dns1123(name, 253)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Config;

    fn loaded(config: Config) -> LoadedConfig {
        LoadedConfig {
            config,
            path: None,
            root: PathBuf::from("/repo"),
        }
    }

    #[test]
    fn endpoint_requires_scheme_and_keeps_prefix() {
        assert!(parse_endpoint("ml-pipeline:8888").is_err());
        let u = parse_endpoint("https://host/pipeline/").expect("valid");
        assert_eq!(u.as_str(), "https://host/pipeline");
        assert!(parse_endpoint("https://u:hunter2secret@host").is_err());
        let err = check_header_value(
            "the token in KF_PIPELINES_TOKEN",
            &Secret::new("tk_line\nbreak"),
        )
        .expect_err("newline");
        assert!(err.to_string().contains("KF_PIPELINES_TOKEN"), "{err}");
        assert!(check_header_value("x", &Secret::new("tk_fine_value")).is_ok());
        assert!(check_ui_url("https://kubeflow.example.com/pipeline").is_ok());
        assert!(check_ui_url("kubeflow.example.com").is_err());
        let err = check_ui_url("https://u:hunter2secretui@host").expect_err("credentials");
        assert!(!err.to_string().contains("hunter2secretui"), "{err}");
    }

    #[test]
    fn embedded_outside_ci_error_in_ci() {
        let args = TargetArgs::default();
        let t = resolve_with(&args, &loaded(Config::default()), &|_| None, false).expect("ok");
        assert_eq!(
            t.endpoint,
            Endpoint::Embedded(PathBuf::from("/repo/.kfp-ci/registry.db"))
        );
        let err = resolve_with(&args, &loaded(Config::default()), &|_| None, true)
            .expect_err("CI without endpoint");
        assert!(format!("{err}").contains("KF_PIPELINES_ENDPOINT"));
    }

    #[test]
    fn named_target_and_flag_precedence() {
        let mut config = Config {
            endpoint: Some("http://default:8888".into()),
            ..Config::default()
        };
        config.targets.insert(
            "prod".into(),
            TargetConfig {
                endpoint: Some("https://prod.example/pipeline".into()),
                namespace: Some("ml-prod".into()),
                token_env: Some("PROD_TOKEN".into()),
                headers: [("X-Team".to_string(), "${TEAM}".to_string())].into(),
                ..TargetConfig::default()
            },
        );
        let env = |k: &str| match k {
            "PROD_TOKEN" => Some("prod-token-value".to_string()),
            "TEAM" => Some("ml".to_string()),
            _ => None,
        };
        let args = TargetArgs {
            target: Some("prod".into()),
            ..TargetArgs::default()
        };
        let t = resolve_with(&args, &loaded(config.clone()), &env, true).expect("ok");
        assert_eq!(
            t.endpoint,
            Endpoint::Remote(url::Url::parse("https://prod.example/pipeline").expect("url"))
        );
        assert_eq!(t.namespace, "ml-prod");
        assert_eq!(
            t.auth.token.as_ref().map(Secret::expose),
            Some("prod-token-value")
        );
        assert_eq!(t.auth.headers[0].1.expose(), "ml");
        let args = TargetArgs {
            target: Some("prod".into()),
            endpoint: Some("http://override:8888".into()),
            namespace: Some("ns2".into()),
            ..TargetArgs::default()
        };
        let t = resolve_with(&args, &loaded(config.clone()), &env, true).expect("ok");
        assert_eq!(
            t.endpoint,
            Endpoint::Remote(url::Url::parse("http://override:8888").expect("url"))
        );
        assert_eq!(t.namespace, "ns2");
        let args = TargetArgs {
            target: Some("staging".into()),
            ..TargetArgs::default()
        };
        let err = resolve_with(&args, &loaded(config), &env, true).expect_err("unknown");
        assert!(format!("{err}").contains("[targets.prod]"), "{err}");
    }

    #[test]
    fn request_timeout_flag_over_target_over_file_over_default() {
        let mut config = Config {
            request_timeout: Some(45),
            ..Config::default()
        };
        config.targets.insert(
            "slow".into(),
            TargetConfig {
                request_timeout: Some(120),
                ..TargetConfig::default()
            },
        );
        let secs = |args: TargetArgs, config: &Config| {
            resolve_with(&args, &loaded(config.clone()), &|_| None, false)
                .map(|t| t.request_timeout.as_secs())
        };
        assert_eq!(
            secs(TargetArgs::default(), &Config::default()).ok(),
            Some(30)
        );
        assert_eq!(secs(TargetArgs::default(), &config).ok(), Some(45));
        let slow = TargetArgs {
            target: Some("slow".into()),
            ..TargetArgs::default()
        };
        assert_eq!(secs(slow.clone(), &config).ok(), Some(120));
        let flag = TargetArgs {
            request_timeout: Some(2),
            ..slow
        };
        assert_eq!(secs(flag, &config).ok(), Some(2));
        let zero = TargetArgs {
            request_timeout: Some(0),
            ..TargetArgs::default()
        };
        let err = secs(zero, &config).expect_err("zero");
        assert!(err.to_string().contains("at least 1 second"), "{err}");
    }

    #[test]
    fn a_single_character_credential_is_refused_naming_its_variable() {
        let mut config = Config::default();
        config.targets.insert(
            "prod".into(),
            TargetConfig {
                token_env: Some("PROD_TOKEN".into()),
                ..TargetConfig::default()
            },
        );
        let args = TargetArgs {
            target: Some("prod".into()),
            ..TargetArgs::default()
        };
        let env = |k: &str| (k == "PROD_TOKEN").then(|| "z".to_string());
        let err = resolve_with(&args, &loaded(config), &env, false).expect_err("one char");
        assert!(
            err.to_string()
                .contains("the token in PROD_TOKEN is a single character"),
            "{err}"
        );
    }

    #[test]
    fn dns1123_names() {
        assert_eq!(dns1123("foo_pipeline"), "foo-pipeline");
        assert_eq!(dns1123("_Foo__Bar_"), "foo-bar");
        assert_eq!(dns1123("a.b"), "a.b");
    }
}
