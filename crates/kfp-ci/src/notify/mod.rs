//! ntfy notifications.
//!
//! One JSON `POST` to the server root (the topic goes in the body, so non-ASCII text needs no
//! header encoding), `Authorization: Bearer tk_…` or Basic, a markdown message under ntfy's
//! 4096-byte limit, a click link to the CI run and up to three view actions. A notification that
//! cannot be sent is a warning unless `--notify-required`. Contract: `docs/ci.md`.
//!
//! Split in three: settings (here: flags, configuration and credentials), the message built from
//! a report ([`message`]), and the publish to the server ([`ntfy`]).

use anyhow::{Context, Result, bail};

use crate::ci::Outcome;
use crate::cli::NotifyArgs;
use crate::redact::{Secret, redact};
use crate::report::Report;
use crate::settings::NotifyConfig;

mod message;
mod ntfy;

pub use message::{MAX_MESSAGE, Message, ViewAction, message, title};
pub use ntfy::publish;

/// ntfy topic names: `^[-_A-Za-z0-9]{1,64}$`.
const TOPIC_MAX: usize = 64;

/// When to send (`notify.on`, `--notify-on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NotifyOn {
    /// Every run.
    #[default]
    Always,
    /// Only when something failed.
    Failure,
    /// When something was uploaded, or failed.
    Change,
}

impl std::str::FromStr for NotifyOn {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "always" => Ok(NotifyOn::Always),
            "failure" => Ok(NotifyOn::Failure),
            "change" => Ok(NotifyOn::Change),
            other => bail!("unknown notify.on value {other:?}: use always, failure or change"),
        }
    }
}

/// How to authenticate to ntfy. The secrets never print.
#[derive(Debug, Clone)]
pub enum NtfyAuth {
    /// `Authorization: Bearer <token>` (an access token, `tk_…`).
    Token(Secret),
    /// `Authorization: Basic base64(user:password)`.
    Basic { user: String, password: Secret },
}

/// An ntfy topic URL split into the server root (where JSON is published) and the topic.
#[derive(Debug, Clone)]
pub struct NtfyTarget {
    /// Server root with a trailing `/`, e.g. `https://ntfy.example/`.
    pub base: String,
    pub topic: String,
    pub auth: Option<NtfyAuth>,
    /// The environment variables the credentials come from (`NTFY_TOKEN`, `NTFY_PASSWORD`, or
    /// the ones `notify.ntfy.token_env` / `password_env` name), for messages.
    pub token_env: String,
    pub password_env: String,
}

impl NtfyTarget {
    /// Split `https://ntfy.example/topic` (a path prefix before the topic is kept).
    pub fn parse(topic_url: &str) -> Result<NtfyTarget> {
        // Shown without userinfo or query (`?auth=…` is an ntfy credential).
        let shown = crate::redact::display_url(topic_url);
        let url = url::Url::parse(topic_url.trim())
            .with_context(|| format!("invalid ntfy URL {shown:?}: expected https://host/topic"))?;
        if let Some(password) = url.password() {
            crate::redact::register(password);
        }
        if let Some((_, auth)) = url.query_pairs().find(|(k, _)| k == "auth") {
            crate::redact::register(&auth);
        }
        let topic_url = shown.as_str();
        if !matches!(url.scheme(), "http" | "https") {
            bail!(
                "invalid ntfy URL {topic_url:?}: the scheme must be http or https (e.g. https://ntfy.sh/my-topic)"
            );
        }
        if !url.username().is_empty() || url.password().is_some() {
            bail!(
                "the ntfy URL carries credentials: remove them and set NTFY_TOKEN (or notify.ntfy.user and NTFY_PASSWORD) instead"
            );
        }
        if url.query().is_some() {
            bail!(
                "the ntfy URL {topic_url:?} has a query string (not shown: it may hold a credential such as ?auth=): give only https://host/topic, and the token in NTFY_TOKEN"
            );
        }
        let path = url.path().trim_end_matches('/');
        let (prefix, topic) = path.rsplit_once('/').unwrap_or(("", path));
        if topic.is_empty() {
            bail!("the ntfy URL {topic_url:?} names no topic: expected https://host/topic");
        }
        if topic.len() > TOPIC_MAX
            || !topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!(
                "invalid ntfy topic {topic:?} in {topic_url:?}: ntfy allows 1 to 64 letters, digits, `-` and `_`"
            );
        }
        let mut base = url.clone();
        base.set_path(&format!("{prefix}/"));
        base.set_fragment(None);
        Ok(NtfyTarget {
            base: base.to_string(),
            topic: topic.to_string(),
            auth: None,
            token_env: "NTFY_TOKEN".to_string(),
            password_env: "NTFY_PASSWORD".to_string(),
        })
    }
}

/// Everything `notify` needs, resolved from flags, environment and configuration.
#[derive(Debug, Clone, Default)]
pub struct NotifySettings {
    /// `None`: no ntfy URL configured, nothing to send.
    pub ntfy: Option<NtfyTarget>,
    pub on: NotifyOn,
    /// A failed notification fails the command (exit 2).
    pub required: bool,
}

/// Flags (and their env vars) > configuration > defaults. Credentials come from the environment:
/// `NTFY_TOKEN` (or `notify.ntfy.token_env`), else `notify.ntfy.user`/`NTFY_USER` with
/// `NTFY_PASSWORD` (or `notify.ntfy.password_env`).
pub fn resolve(args: &NotifyArgs, config: &NotifyConfig) -> Result<NotifySettings> {
    resolve_from(args, config, &|name| std::env::var(name).ok())
}

pub fn resolve_from(
    args: &NotifyArgs,
    config: &NotifyConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<NotifySettings> {
    let var = |name: &str| {
        env(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let on = match args.notify_on.as_deref().or(config.on.as_deref()) {
        Some(value) => value
            .parse()
            .context("invalid --notify-on / KFP_CI_NOTIFY_ON / notify.on")?,
        None => NotifyOn::Always,
    };
    let required = args.notify_required || config.required.unwrap_or(false);
    if args.no_notify {
        return Ok(NotifySettings {
            ntfy: None,
            on,
            required: false,
        });
    }
    let url = args
        .ntfy_url
        .clone()
        .filter(|u| !u.trim().is_empty())
        .or_else(|| config.ntfy.url.clone().filter(|u| !u.trim().is_empty()));
    let Some(url) = url else {
        return Ok(NotifySettings {
            ntfy: None,
            on,
            required,
        });
    };
    let mut target = NtfyTarget::parse(&url)?;
    let token_env = config.ntfy.token_env.as_deref().unwrap_or("NTFY_TOKEN");
    let password_env = config
        .ntfy
        .password_env
        .as_deref()
        .unwrap_or("NTFY_PASSWORD");
    let user = config.ntfy.user.clone().or_else(|| var("NTFY_USER"));
    target.token_env = token_env.to_string();
    target.password_env = password_env.to_string();
    target.auth = if let Some(token) = var(token_env) {
        crate::redact::check_secret(&format!("the ntfy token in {token_env}"), &token)?;
        let token = Secret::new(token);
        if reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose())).is_err() {
            bail!(
                "the ntfy token in {token_env} holds a line break or another character HTTP headers cannot carry (pasted across lines?): set it on one line"
            );
        }
        Some(NtfyAuth::Token(token))
    } else if let Some(user) = user {
        let Some(password) = var(password_env) else {
            bail!(
                "ntfy user {user:?} is set but {password_env} is empty: set the password in {password_env}, or use a token in {token_env}"
            );
        };
        crate::redact::check_secret(&format!("the ntfy password in {password_env}"), &password)?;
        Some(NtfyAuth::Basic {
            user,
            password: Secret::new(password),
        })
    } else {
        None
    };
    Ok(NotifySettings {
        ntfy: Some(target),
        on,
        required,
    })
}

/// What happened to the notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Published; ntfy's message id.
    Sent { id: Option<String> },
    /// `notify.on` said not to.
    Skipped(String),
    /// No ntfy URL configured (or `--no-notify`).
    NotConfigured,
    /// Could not be sent; the explanation was logged as a warning (not `required`).
    Failed(String),
}

/// Whether `notify.on` lets this report through; the reason when not.
pub fn should_send(report: &Report, on: NotifyOn) -> Result<(), String> {
    let outcome = Outcome::of(report);
    match (on, outcome) {
        (NotifyOn::Always, _) | (_, Outcome::Failure) => Ok(()),
        (NotifyOn::Change, Outcome::Changed) => Ok(()),
        (NotifyOn::Failure, _) => Err("notify.on = failure and nothing failed".into()),
        (NotifyOn::Change, _) => Err("notify.on = change and nothing changed".into()),
    }
}

/// Send the notification for `report`. Errors explain the server's answer; whether they fail the
/// command is the caller's choice ([`deliver`] applies `required`).
pub async fn notify(report: &Report, settings: &NotifySettings) -> Result<Sent> {
    let Some(target) = &settings.ntfy else {
        return Ok(Sent::NotConfigured);
    };
    if let Err(reason) = should_send(report, settings.on) {
        return Ok(Sent::Skipped(reason));
    }
    // Pipeline output and server answers in the report may carry a secret: hide them all.
    let report = crate::redact::redact_serde(report)?;
    let message = message(&report, &target.topic);
    publish(target, &message).await
}

/// [`notify`], then log the result: a failure is a warning, or an error when `required`.
pub async fn deliver(report: &Report, settings: &NotifySettings) -> Result<Sent> {
    match notify(report, settings).await {
        Ok(sent) => {
            match &sent {
                Sent::Sent { id } => tracing::info!(
                    "notification sent to ntfy topic {}{}",
                    settings
                        .ntfy
                        .as_ref()
                        .map(|t| t.topic.as_str())
                        .unwrap_or(""),
                    id.as_deref()
                        .map(|i| format!(" (id {i})"))
                        .unwrap_or_default()
                ),
                Sent::Skipped(reason) => tracing::info!("no notification: {reason}"),
                Sent::Failed(_) => {}
                Sent::NotConfigured => {
                    if settings.required {
                        bail!(
                            "a notification is required but no ntfy URL is configured: set --ntfy-url, KFP_CI_NTFY_URL or notify.ntfy.url"
                        );
                    }
                    tracing::debug!("no ntfy URL configured, no notification")
                }
            }
            Ok(sent)
        }
        Err(err) if settings.required => {
            Err(err.context("the notification is required (--notify-required)"))
        }
        Err(err) => {
            let text = redact(&format!("{err:#}"));
            tracing::warn!("notification not sent: {text}");
            Ok(Sent::Failed(text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_urls_split_into_root_and_topic() {
        let t = NtfyTarget::parse("https://ntfy.example/kfp-deploys").expect("valid");
        assert_eq!(
            (t.base.as_str(), t.topic.as_str()),
            ("https://ntfy.example/", "kfp-deploys")
        );
        let t = NtfyTarget::parse("http://127.0.0.1:8080/sub/path/t_1/").expect("valid");
        assert_eq!(
            (t.base.as_str(), t.topic.as_str()),
            ("http://127.0.0.1:8080/sub/path/", "t_1")
        );
        for bad in [
            "https://ntfy.example/",
            "https://ntfy.example",
            "ntfy.example/topic",
            "https://ntfy.example/a.b",
            "https://ntfy.example/topic?auth=x",
            "https://u:p@ntfy.example/topic",
        ] {
            assert!(NtfyTarget::parse(bad).is_err(), "{bad}");
        }
        let long = format!("https://ntfy.example/{}", "a".repeat(65));
        assert!(NtfyTarget::parse(&long).is_err());
    }

    #[test]
    fn resolve_prefers_flags_then_config_and_reads_credentials() {
        let env = |name: &str| match name {
            "NTFY_TOKEN" => Some("tk_abcdefghijklmnopqrstuvwxyz012".to_string()),
            _ => None,
        };
        let args = NotifyArgs {
            ntfy_url: Some("https://a.example/t1".into()),
            ..Default::default()
        };
        let mut config = NotifyConfig::default();
        config.ntfy.url = Some("https://b.example/t2".into());
        config.on = Some("failure".into());
        let s = resolve_from(&args, &config, &env).expect("resolves");
        let target = s.ntfy.expect("target");
        assert_eq!(target.topic, "t1");
        assert!(matches!(target.auth, Some(NtfyAuth::Token(_))));
        assert_eq!(s.on, NotifyOn::Failure);
        assert!(!format!("{target:?}").contains("tk_"));

        let s = resolve_from(&NotifyArgs::default(), &config, &|_| None).expect("resolves");
        assert_eq!(s.ntfy.expect("target").topic, "t2");

        let off = NotifyArgs {
            no_notify: true,
            notify_required: true,
            ..Default::default()
        };
        let s = resolve_from(&off, &config, &env).expect("resolves");
        assert!(s.ntfy.is_none() && !s.required);

        config.ntfy.user = Some("ci".into());
        let err =
            resolve_from(&NotifyArgs::default(), &config, &|_| None).expect_err("no password");
        assert!(format!("{err:#}").contains("NTFY_PASSWORD"));

        config.on = Some("sometimes".into());
        assert!(resolve_from(&NotifyArgs::default(), &config, &|_| None).is_err());
    }

    #[test]
    fn notify_on_rules() {
        let ok = Report::default();
        let failed = message::tests::failing_report(1);
        let mut changed = Report::default();
        changed.counts.created = 1;
        assert!(should_send(&ok, NotifyOn::Failure).is_err());
        assert!(should_send(&failed, NotifyOn::Failure).is_ok());
        assert!(should_send(&ok, NotifyOn::Change).is_err());
        assert!(should_send(&changed, NotifyOn::Change).is_ok());
        assert!(should_send(&failed, NotifyOn::Change).is_ok());
        assert!(should_send(&ok, NotifyOn::Always).is_ok());
    }
}
