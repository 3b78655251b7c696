//! Secrets never reach a log line, an error, an output or a notification.
//!
//! Every secret kfp-ci reads is registered here the moment it is read; every text that leaves the
//! process through [`redact`] has those values replaced with `[redacted]`, whatever their length.
//! A credential of a single character is refused where it is read ([`check_secret`]): it cannot be
//! a real credential, and hiding every `a` would make every message unreadable. URLs are shown
//! through [`display_url`], which drops what may carry credentials (userinfo and query).

use std::sync::{Mutex, MutexGuard, OnceLock};

fn registry() -> MutexGuard<'static, Vec<String>> {
    static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    // A panic while the list was held leaves it intact (pushes and sorts only): keep using it
    // rather than skipping redaction.
    SECRETS
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The shortest credential kfp-ci accepts, in characters.
pub const MIN_SECRET_CHARS: usize = 2;

/// Refuse a credential too short to be one (a stray `x`, a truncated paste): a configuration
/// error naming where it came from (`what`, e.g. "the token in KF_PIPELINES_TOKEN").
pub fn check_secret(what: &str, value: &str) -> anyhow::Result<()> {
    if value.trim().chars().count() < MIN_SECRET_CHARS {
        anyhow::bail!(
            "{what} is a single character, which cannot be a real credential: set the whole value (or unset the variable)"
        );
    }
    Ok(())
}

/// Remember a secret value so that [`redact`] hides it, whatever its length. Single characters
/// are refused before use ([`check_secret`]) and not registered.
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.chars().count() < MIN_SECRET_CHARS {
        return;
    }
    let mut list = registry();
    if !list.iter().any(|s| s == secret) {
        list.push(secret.to_string());
        // Longest first, so a secret that contains another is replaced whole.
        list.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Register a cookie string (`a=1; session=…`) and the values in it a server may echo on their
/// own: every value of a cookie whose name says it authenticates (session, token, auth, …), and
/// any other value of 12 characters or more (short ones such as `lang=en` are settings).
pub fn register_cookie(cookie: &str) {
    register(cookie);
    for pair in cookie.split(';') {
        if let Some((name, value)) = pair.split_once('=') {
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim().trim_matches('"');
            let authenticates = ["session", "token", "auth", "sid", "jwt", "csrf", "oauth"]
                .iter()
                .any(|k| name.contains(k));
            if authenticates || value.chars().count() >= 12 {
                register(value);
            }
        }
    }
}

/// Replace every registered secret in `text`.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for secret in registry().iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "[redacted]");
        }
    }
    out
}

/// A URL as kfp-ci shows it anywhere (errors, logs, reports, outputs, notifications, doctor):
/// without userinfo (`user:password@`) and without query (`?token=…`, ntfy's `?auth=…`), which
/// may carry credentials; the fragment stays (KFP UI links live there). Text that does not parse
/// as a URL is cut the same way by hand, so a malformed URL never shows its password either.
pub fn display_url(text: &str) -> String {
    let text = text.trim();
    if let Ok(mut url) = url::Url::parse(text)
        && url.has_host()
    {
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_query(None);
        return redact(url.as_str());
    }
    // By hand: `scheme://userinfo@host/path?query#fragment`.
    let (before_fragment, fragment) = match text.find('#') {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let without_query = before_fragment
        .split_once('?')
        .map_or(before_fragment, |(head, _)| head);
    let (scheme, rest) = match without_query.find("://") {
        Some(i) => (&without_query[..i + 3], &without_query[i + 3..]),
        None => ("", without_query),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    redact(&format!("{scheme}{rest}{fragment}"))
}

/// Environment variables that hold secrets by convention, whatever the command: their values are
/// registered at start-up, so that text which merely passes through kfp-ci (a pipeline file that
/// prints its environment, a server that echoes a header) never shows them.
pub const SECRET_ENV_VARS: &[&str] = &[
    "KF_PIPELINES_TOKEN",
    "KFP_CI_COOKIE",
    "KFP_CI_SERVE_TOKEN",
    "NTFY_TOKEN",
    "NTFY_PASSWORD",
];

/// Register the values of [`SECRET_ENV_VARS`] and of the variables the configuration names as
/// holding secrets (`token_env`, `cookie_env`, `password_env`), and the content of the token file
/// named by `KF_PIPELINES_SA_TOKEN_PATH`.
pub fn register_env_secrets(names: &[&str]) {
    for name in SECRET_ENV_VARS.iter().chain(names) {
        if let Some(value) = std::env::var_os(name) {
            register_cookie(&value.to_string_lossy());
        }
    }
    // Only a small regular file (a projected token), never a FIFO or a device that could block.
    if let Some(path) = std::env::var_os("KF_PIPELINES_SA_TOKEN_PATH")
        && std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() <= 64 * 1024)
        && let Ok(token) = std::fs::read_to_string(path)
    {
        register(&token);
    }
}

/// Replace every registered secret in every string of a JSON value (keys included).
pub fn redact_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            let r = redact(s);
            if r != *s {
                *s = r;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        serde_json::Value::Object(map) => {
            let redacted: serde_json::Map<String, serde_json::Value> = std::mem::take(map)
                .into_iter()
                .map(|(k, mut v)| {
                    redact_json(&mut v);
                    (redact(&k), v)
                })
                .collect();
            *map = redacted;
        }
        _ => {}
    }
}

/// A copy of `value` with every registered secret replaced in every string it holds. Fails
/// closed: when the redacted copy does not read back as a `T` (a secret equal to an enum value
/// such as `unchanged`, or to a timestamp), the error says so and nothing of `value` is shown.
pub fn redact_serde<T>(value: &T) -> anyhow::Result<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut json = serde_json::to_value(value).map_err(|_| not_redactable())?;
    redact_json(&mut json);
    serde_json::from_value(json).map_err(|_| not_redactable())
}

/// `value` as pretty JSON with every registered secret replaced in every string (keys included).
/// The redaction works on the JSON value, not on the text: a secret holding `"` or `\\`, which
/// JSON escapes, is still found.
pub fn redacted_json<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    let mut json = serde_json::to_value(value).map_err(|_| not_redactable())?;
    redact_json(&mut json);
    serde_json::to_string_pretty(&json).map_err(|_| not_redactable())
}

fn not_redactable() -> anyhow::Error {
    anyhow::anyhow!(
        "cannot remove the credentials from the report (a credential equals one of its fixed values, such as a status word or a date): nothing of it is shown; use a real credential"
    )
}

/// A secret string whose `Debug` and `Display` never show it.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        register(&value);
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_hidden() {
        let s = Secret::new("tk_abcdefghijklmnop");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(
            redact("Bearer tk_abcdefghijklmnop failed"),
            "Bearer [redacted] failed"
        );
    }

    #[test]
    fn json_strings_are_redacted_even_where_escaping_would_hide_the_secret() {
        register("tk_quote\"d_secret_value");
        let mut v = serde_json::json!({
            "a": ["x tk_quote\"d_secret_value y", 1],
            "tk_quote\"d_secret_value": {"b": "tk_quote\"d_secret_value"}
        });
        redact_json(&mut v);
        let text = v.to_string();
        assert!(!text.contains("secret_value"), "{text}");
        assert_eq!(v["a"][0], "x [redacted] y");
    }

    #[test]
    fn cookie_values_are_hidden_on_their_own() {
        register_cookie("theme=darkmode; authservice_session=MTcwMDAwMDAwMHxsecret");
        assert_eq!(
            redact("session MTcwMDAwMDAwMHxsecret expired"),
            "session [redacted] expired"
        );
        assert_eq!(
            redact("theme=dark"),
            "theme=dark",
            "short values are no secrets"
        );
    }

    #[test]
    fn secrets_are_redacted_whatever_their_length_and_single_characters_refused() {
        register("k9Q");
        assert_eq!(redact("token k9Q rejected"), "token [redacted] rejected");
        let err = check_secret("the token in KF_PIPELINES_TOKEN", " x\n").expect_err("one char");
        assert!(
            err.to_string()
                .contains("the token in KF_PIPELINES_TOKEN is a single character"),
            "{err}"
        );
        assert!(check_secret("t", "ab").is_ok());
    }

    #[test]
    fn urls_are_shown_without_userinfo_or_query() {
        for (url, shown) in [
            (
                "https://ntfy.example/topic?auth=QmFzaWMgdXNlcjpwYXNz",
                "https://ntfy.example/topic",
            ),
            (
                "https://user:pw-in-url@kfp.example/pipeline?token=abc#/runs",
                "https://kfp.example/pipeline#/runs",
            ),
            ("http://127.0.0.1:8888", "http://127.0.0.1:8888/"),
            // Malformed (a space in the host, a bad port): cut by hand.
            (
                "http://admin:pw-malformed@kfp host/x?token=q#frag",
                "http://kfp host/x#frag",
            ),
            ("https://u:p@host:99999/p?a=b", "https://host:99999/p"),
            ("not a url?token=t", "not a url"),
        ] {
            assert_eq!(display_url(url), shown, "{url}");
        }
    }

    #[test]
    fn a_report_that_does_not_survive_redaction_is_an_error() {
        #[derive(serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        enum Action {
            Quuxword,
        }
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Report {
            action: Action,
        }
        register("quuxword");
        let report = Report {
            action: Action::Quuxword,
        };
        let err = redact_serde(&report).err().expect("fails closed");
        assert!(err.to_string().contains("nothing of it is shown"), "{err}");
        let json = redacted_json(&report).expect("JSON is redacted as JSON");
        assert!(!json.contains("quuxword"), "{json}");
    }
}
