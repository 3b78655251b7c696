//! The environment of the processes kfp-ci starts (the compile worker, the Python that builds the
//! cached virtualenv, pip): every variable that holds a credential of kfp-ci's is removed.
//!
//! Pipeline code runs at import time in the compile worker; it needs none of kfp-ci's credentials
//! (the KFP token, cookies, the ntfy token or password), and a file that prints or ships its
//! environment must not be able to see them. The names: the conventional ones
//! ([`crate::redact::SECRET_ENV_VARS`], `KF_PIPELINES_SA_TOKEN_PATH`), the variables the
//! configuration names (`token_env`, `cookie_env`, `password_env`, `${NAME}` in `headers`), and
//! `KFP_CI_*` credentials. Everything else (PATH, HOME, proxies, pip's index settings) is kept.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

/// Variables removed whatever the configuration says.
const ALWAYS: &[&str] = &["KF_PIPELINES_SA_TOKEN_PATH", "NTFY_USER", "KFP_CI_NTFY_URL"];

fn registry() -> &'static Mutex<BTreeSet<String>> {
    static NAMES: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    NAMES.get_or_init(|| Mutex::new(BTreeSet::new()))
}

/// Remember the variables a configuration names as holding credentials
/// ([`crate::settings::Config::register_secrets`] passes them).
pub fn register(names: impl IntoIterator<Item = String>) {
    if let Ok(mut set) = registry().lock() {
        set.extend(names.into_iter().filter(|n| !n.trim().is_empty()));
    }
}

/// The `NAME`s of `${NAME}` references in a header value.
pub fn referenced_vars(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        out.push(after[..end].trim().to_string());
        rest = &after[end + 1..];
    }
    out
}

/// Every variable name to remove from a child's environment.
pub fn secret_names() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = crate::redact::SECRET_ENV_VARS
        .iter()
        .chain(ALWAYS)
        .map(|s| s.to_string())
        .collect();
    if let Ok(set) = registry().lock() {
        names.extend(set.iter().cloned());
    }
    names
}

/// Remove the credentials from the environment `cmd` will start with.
pub fn scrub(cmd: &mut tokio::process::Command) -> &mut tokio::process::Command {
    for name in secret_names() {
        cmd.env_remove(name);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Config;

    #[test]
    fn configured_names_and_header_references_are_removed() {
        let config: Config = toml::from_str(
            r#"
            [targets.prod]
            token_env = "PROD_TOKEN"
            cookie_env = "PROD_COOKIE"
            headers = { "X-Api-Key" = "key ${API_KEY} and ${ OTHER }" }
            [notify.ntfy]
            password_env = "MY_NTFY_PASSWORD"
            "#,
        )
        .expect("valid");
        config.register_secrets();
        let names = secret_names();
        for n in [
            "PROD_TOKEN",
            "PROD_COOKIE",
            "API_KEY",
            "OTHER",
            "MY_NTFY_PASSWORD",
            "KF_PIPELINES_TOKEN",
            "KFP_CI_COOKIE",
            "NTFY_TOKEN",
            "NTFY_PASSWORD",
            "KF_PIPELINES_SA_TOKEN_PATH",
        ] {
            assert!(names.contains(n), "{n} missing from {names:?}");
        }
        assert!(!names.contains("PATH") && !names.contains("HOME"));
    }
}
