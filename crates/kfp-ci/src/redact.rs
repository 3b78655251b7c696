//! Secrets never reach a log line, an error, an output or a notification.
//!
//! Every secret kfp-ci reads is registered here the moment it is read; every text that leaves the
//! process through [`redact`] has those values replaced with `[redacted]`.

use std::sync::{Mutex, OnceLock};

fn registry() -> &'static Mutex<Vec<String>> {
    static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Remember a secret value so that [`redact`] hides it. Short values are ignored: hiding
/// every `a` in a message would make it unreadable, and such values are no secrets.
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.len() < 6 {
        return;
    }
    if let Ok(mut list) = registry().lock()
        && !list.iter().any(|s| s == secret)
    {
        list.push(secret.to_string());
        // Longest first, so a secret that contains another is replaced whole.
        list.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Register a cookie string (`a=1; session=…`) and each of its values, which a server may echo
/// on their own.
pub fn register_cookie(cookie: &str) {
    register(cookie);
    for pair in cookie.split(';') {
        // Session values are long; short ones (`lang=german`) are settings, not secrets.
        if let Some((_, value)) = pair.split_once('=')
            && value.trim().trim_matches('"').len() >= 12
        {
            register(value.trim().trim_matches('"'));
        }
    }
}

/// Replace every registered secret in `text`.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    if let Ok(list) = registry().lock() {
        for secret in list.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "[redacted]");
            }
        }
    }
    out
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

/// A copy of `value` with every registered secret replaced in every string it holds.
pub fn redact_serde<T>(value: &T) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned + Clone,
{
    let Ok(mut json) = serde_json::to_value(value) else {
        return value.clone();
    };
    redact_json(&mut json);
    serde_json::from_value(json).unwrap_or_else(|_| value.clone())
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
}
