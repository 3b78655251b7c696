//! ntfy notifications.
//!
//! One JSON `POST` to the server root (the topic goes in the body, so non-ASCII text needs no
//! header encoding), `Authorization: Bearer tk_…` or Basic, a markdown message under ntfy's
//! 4096-byte limit, a click link to the CI run and up to three view actions. A notification that
//! cannot be sent is a warning unless `--notify-required`. Contract: `docs/ci.md`.

use std::fmt::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::cli::NotifyArgs;
use crate::redact::{Secret, redact};
use crate::report::{Action, Report, Status};
use crate::report::{Outcome, action_label, first_line};
use crate::settings::NotifyConfig;

/// ntfy treats a body of 4096 bytes or more as an attachment; stay clearly below.
pub const MAX_MESSAGE: usize = 4000;
/// ntfy topic names: `^[-_A-Za-z0-9]{1,64}$`.
const TOPIC_MAX: usize = 64;
const ATTEMPTS: usize = 3;

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

/// A view action button.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewAction {
    pub action: String,
    pub label: String,
    pub url: String,
}

/// The JSON body of a publish to the server root. Types as ntfy requires: priority an integer,
/// tags an array, markdown a bool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub topic: String,
    pub title: String,
    pub message: String,
    pub priority: u8,
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub click: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ViewAction>,
    pub markdown: bool,
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

/// The title: outcome and counts, prefixed with the repository when known.
pub fn title(report: &Report) -> String {
    let c = &report.counts;
    let repo = report
        .ci
        .as_ref()
        .and_then(|ci| ci.repository.as_deref())
        .map(|r| format!("{r}: "))
        .unwrap_or_default();
    let dry = if report.dry_run { " (dry run)" } else { "" };
    let body = match Outcome::of(report) {
        Outcome::Failure if report.pipelines.is_empty() && c.compiled == 0 && c.failed == 0 => {
            "deploy failed".to_string()
        }
        Outcome::Failure => format!(
            "deploy failed: {} failed, {} uploaded, {} unchanged",
            c.failed,
            c.uploaded(),
            c.unchanged
        ),
        Outcome::Changed => format!(
            "deployed {} uploaded, {} unchanged",
            c.uploaded(),
            c.unchanged
        ),
        Outcome::Unchanged => format!("no changes, {} unchanged", c.unchanged),
    };
    format!("{repo}{body}{}{dry}", crate::smoke::title_suffix(report))
}

/// The message for a report: markdown body cut under [`MAX_MESSAGE`] bytes.
pub fn message(report: &Report, topic: &str) -> Message {
    let outcome = Outcome::of(report);
    let c = &report.counts;
    let mut head = String::new();
    // Without a report (the deploy job failed before writing one) there are no counts to show.
    let no_report = report.pipelines.is_empty()
        && c.compiled == 0
        && c.failed == 0
        && !report.errors.is_empty();
    if !no_report {
        let _ = writeln!(
            head,
            "**{} compiled · {} uploaded** ({} created, {}) · {} unchanged · **{} failed**",
            c.compiled,
            c.uploaded(),
            c.created,
            crate::report::new_versions(c.updated),
            c.unchanged,
            c.failed
        );
    }
    let mut facts = Vec::new();
    if let Some(tag) = &report.version_tag {
        facts.push(format!("version `{tag}`"));
    }
    if let Some(ci) = &report.ci
        && let Some(sha) = ci.short_sha()
    {
        let mut commit = format!("commit `{sha}`");
        if let Some(r) = &ci.git_ref {
            let _ = write!(commit, " on `{r}`");
        }
        if let Some(actor) = &ci.actor {
            let _ = write!(commit, " by {actor}");
        }
        facts.push(commit);
    }
    if !facts.is_empty() {
        let _ = writeln!(head, "{}", facts.join(" · "));
    }

    // Items, most important first; whole lines are dropped from the end when too long.
    let mut items: Vec<(&'static str, String)> = Vec::new();
    for err in &report.errors {
        items.push(("Errors", format!("- {}", clip(first_line(err), 300))));
    }
    for p in report.pipelines.iter().filter(|p| is_failed(p)) {
        let line = match &p.error {
            Some(e) => format!(
                "- `{}`: {}: {}",
                clip(&p.name, 120),
                e.kind,
                clip(first_line(&e.message), 300)
            ),
            None => format!("- `{}`: failed", clip(&p.name, 120)),
        };
        items.push(("Failed", line));
    }
    for p in report
        .pipelines
        .iter()
        .filter(|p| matches!(p.action, Action::Create | Action::NewVersion) && !is_failed(p))
    {
        items.push((
            "Uploaded",
            format!("- `{}` {}", clip(&p.name, 120), action_label(p)),
        ));
    }

    items.extend(crate::smoke::notify_items(report));

    let mut body = head;
    let mut section = "";
    let mut shown = 0;
    for (heading, line) in &items {
        let mut add = String::new();
        if *heading != section {
            let _ = write!(add, "\n**{heading}**\n");
        }
        add.push_str(line);
        add.push('\n');
        // Keep room for the "…and N more" line.
        if body.len() + add.len() + 40 > MAX_MESSAGE {
            break;
        }
        body.push_str(&add);
        section = heading;
        shown += 1;
    }
    if shown < items.len() {
        let _ = writeln!(body, "…and {} more", items.len() - shown);
    }
    let body = clip(body.trim(), MAX_MESSAGE).to_string();

    let run_url = report.ci.as_ref().and_then(|ci| ci.run_url.clone());
    let mut actions = Vec::new();
    if let Some(url) = &run_url {
        actions.push(view("Open run", url));
    }
    if let Some(ui) = report.target.as_ref().and_then(|t| t.ui_url.as_ref()) {
        actions.push(view("Open KFP", ui));
    }
    let changed_with_links: Vec<_> = report
        .pipelines
        .iter()
        .filter(|p| matches!(p.action, Action::Create | Action::NewVersion) || is_failed(p))
        .filter_map(|p| p.url.as_ref().map(|u| (p, u)))
        .collect();
    if let [(p, url)] = changed_with_links.as_slice() {
        actions.push(view(&format!("Open {}", clip(&p.name, 40)), url));
    }
    actions.truncate(3);

    let (priority, tag) = match outcome {
        Outcome::Failure => (4, "rotating_light"),
        Outcome::Changed => (3, "white_check_mark"),
        Outcome::Unchanged => (2, "white_check_mark"),
    };
    Message {
        topic: topic.to_string(),
        title: title(report),
        message: body,
        priority,
        tags: vec![tag.to_string()],
        click: run_url,
        actions,
        markdown: true,
    }
}

fn is_failed(p: &crate::report::PipelineReport) -> bool {
    p.status == Status::Failed || p.action == Action::Error || p.error.is_some()
}

fn view(label: &str, url: &str) -> ViewAction {
    ViewAction {
        action: "view".into(),
        label: label.into(),
        url: url.into(),
    }
}

/// At most `max` bytes, cut on a UTF-8 boundary (a clipped line ends abruptly but stays valid).
fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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

#[derive(Debug, Deserialize)]
struct NtfyOk {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NtfyError {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    link: Option<String>,
}

fn retry_delay(attempt: usize) -> Duration {
    if std::env::var_os("KFP_CI_TEST_NO_RETRY_DELAY").is_some() {
        return Duration::from_millis(0);
    }
    // ntfy's 429 carries no Retry-After; its limiter refills one request per 5 s.
    Duration::from_secs(5 * (1 << attempt.min(3)) as u64)
}

/// POST the message to the server root, retrying 429, 5xx and connection failures briefly.
pub async fn publish(target: &NtfyTarget, message: &Message) -> Result<Sent> {
    let client = reqwest::Client::builder()
        .user_agent(concat!("kfp-ci/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .build()
        .context("cannot build the HTTP client")?;
    let body = serde_json::to_vec(message).context("cannot encode the notification")?;
    let mut last: Option<anyhow::Error> = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(retry_delay(attempt - 1)).await;
        }
        let mut request = client
            .post(&target.base)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
        request = match &target.auth {
            Some(NtfyAuth::Token(token)) => request.header(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {}", token.expose()),
            ),
            Some(NtfyAuth::Basic { user, password }) => {
                request.basic_auth(user, Some(password.expose()))
            }
            None => request,
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(err) => {
                let what = if err.is_connect() {
                    "cannot connect to"
                } else if err.is_timeout() {
                    "no answer in time from"
                } else {
                    "request failed to"
                };
                last = Some(anyhow::anyhow!(
                    "{what} ntfy at {} ({} attempts): {}",
                    target.base,
                    attempt + 1,
                    redact(&error_chain(&err))
                ));
                continue;
            }
        };
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            let id = serde_json::from_str::<NtfyOk>(text.trim())
                .ok()
                .and_then(|ok| ok.id);
            return Ok(Sent::Sent { id });
        }
        let err = explain(target, status.as_u16(), &text, attempt + 1);
        if status.as_u16() == 429 || status.is_server_error() {
            last = Some(err);
            continue;
        }
        return Err(err);
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("ntfy at {} did not answer", target.base)))
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

/// A configuration error or server answer, in words: what the server said and what to do.
fn explain(target: &NtfyTarget, status: u16, body: &str, attempts: usize) -> anyhow::Error {
    let parsed = serde_json::from_str::<NtfyError>(body.trim()).ok();
    let said = match &parsed {
        Some(NtfyError {
            code,
            error: Some(error),
            link,
        }) => {
            let mut s = format!("HTTP {status}");
            if let Some(code) = code {
                let _ = write!(s, " code {code}");
            }
            let _ = write!(s, ": {error}");
            if let Some(link) = link {
                let _ = write!(s, " (see {link})");
            }
            s
        }
        _ => {
            let body = body.trim();
            if body.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {}", clip(first_line(body), 300))
            }
        }
    };
    let said = redact(&said);
    let base = &target.base;
    let topic = &target.topic;
    let hint = match status {
        401 => match &target.auth {
            Some(NtfyAuth::Token(_)) => format!(
                "the token was not accepted: {} must be a current access token (`tk_` and 29 more characters, from `ntfy token add` or the web app's account page)",
                target.token_env
            ),
            Some(NtfyAuth::Basic { user, .. }) => format!(
                "user {user:?} and its password were not accepted: check notify.ntfy.user / NTFY_USER and {}",
                target.password_env
            ),
            None => format!(
                "this server needs credentials: set {} (an access token) or a user and {}",
                target.token_env, target.password_env
            ),
        },
        403 => format!(
            "these credentials may not publish to topic {topic:?}: grant write access (`ntfy access <user> {topic} write-only`) or use a topic this user can write to"
        ),
        429 => format!(
            "rate limited after {attempts} attempts: ntfy limits requests per client (ntfy.sh: 250 messages a day on the free plan; self-hosted: visitor-request-limit-burst / -replenish); an authenticated user gets its own limits"
        ),
        413 => "the notification is larger than the server accepts".to_string(),
        404 => format!(
            "{base} does not look like an ntfy server root: give the topic URL, e.g. https://ntfy.example/{topic}"
        ),
        400 => "ntfy rejected the request as invalid".to_string(),
        s if s >= 500 => format!("ntfy had a server error, {attempts} attempts"),
        _ => "unexpected answer".to_string(),
    };
    anyhow::anyhow!("ntfy at {base} refused the notification for topic {topic:?} ({said}): {hint}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ci::CiInfo;
    use crate::report::{Counts, PipelineError, PipelineReport, TargetInfo};

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

    fn failing_report(n: usize) -> Report {
        let mut pipelines = Vec::new();
        for i in 0..n {
            pipelines.push(PipelineReport {
                name: format!("pipeline_ü_{i}"),
                file: format!("p/p{i}_pipeline.py"),
                action: Action::Error,
                status: Status::Failed,
                error: Some(PipelineError {
                    kind: "compile".into(),
                    message: format!("NameError: name 'ä{i}' is not defined — {}", "é".repeat(50)),
                    detail: String::new(),
                }),
                ..Default::default()
            });
        }
        Report {
            version_tag: Some("v20261124-120000".into()),
            counts: Counts {
                discovered: n,
                compiled: 0,
                failed: n,
                ..Default::default()
            },
            pipelines,
            ci: Some(CiInfo {
                platform: "gitea".into(),
                repository: Some("ml/pipes".into()),
                commit_sha: Some("0123456789abcdef".into()),
                run_url: Some("https://git.example/ml/pipes/actions/runs/7".into()),
                ..Default::default()
            }),
            target: Some(TargetInfo {
                endpoint: "http://kfp".into(),
                ui_url: Some("https://kfp.example".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn long_messages_are_cut_under_the_limit_with_a_count() {
        let m = message(&failing_report(200), "t");
        assert!(m.message.len() < 4096, "{}", m.message.len());
        assert!(m.message.len() <= MAX_MESSAGE);
        let tail = m.message.lines().last().expect("last line");
        assert!(
            tail.starts_with("…and ") && tail.ends_with(" more"),
            "{tail}"
        );
        let shown = m.message.lines().filter(|l| l.starts_with("- ")).count();
        assert_eq!(tail, format!("…and {} more", 200 - shown));
        assert_eq!(m.priority, 4);
        assert_eq!(m.tags, vec!["rotating_light"]);
        assert_eq!(
            m.title,
            "ml/pipes: deploy failed: 200 failed, 0 uploaded, 0 unchanged"
        );
        assert_eq!(
            m.click.as_deref(),
            Some("https://git.example/ml/pipes/actions/runs/7")
        );
        assert_eq!(m.actions.len(), 2);
    }

    #[test]
    fn a_short_report_is_not_cut() {
        let m = message(&failing_report(2), "t");
        assert!(!m.message.contains("more"));
        assert!(
            m.message
                .contains("- `pipeline_ü_1`: compile: NameError: name 'ä1'")
        );
        assert!(m.message.contains("commit `0123456`"));
    }

    #[test]
    fn clip_respects_utf8() {
        let s = "ééééé";
        for max in 0..12 {
            let c = clip(s, max);
            assert!(c.len() <= max);
        }
    }

    #[test]
    fn notify_on_rules() {
        let ok = Report::default();
        let failed = failing_report(1);
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
