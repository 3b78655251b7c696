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
}
