//! The one HTTP layer. Every request kfp-ci sends (the KFP API client, ntfy, `doctor`'s probes,
//! forge comments, the Gitea version probe) goes through a client built by [`client`]: one user
//! agent, one way to trust a CA bundle or to skip verification, one place for timeouts.
//!
//! Around it, what every caller needs the same way: why a request got no answer ([`Transport`],
//! classified once from reqwest's error chain), retry delays ([`Backoff`], [`retry`]), and
//! one line of a response body for an error message ([`body_excerpt`]; the cutting itself is
//! [`crate::text`]).

use std::time::Duration;

use anyhow::Context;

use crate::target::Tls;

/// `kfp-ci/<version>`, sent with every request.
pub const USER_AGENT: &str = concat!("kfp-ci/", env!("CARGO_PKG_VERSION"));

/// The reason of a TLS handshake answered in plain HTTP.
pub const PLAIN_HTTP: &str = "the server answered plain HTTP; use http://";

/// How a client is built. `Default`: reqwest's timeouts and redirect policy, system roots.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Limit on establishing the connection (TCP and TLS).
    pub connect_timeout: Option<Duration>,
    /// Limit on a whole request, answer included (callers may set one per request instead).
    pub timeout: Option<Duration>,
    /// A CA bundle to trust besides the system roots, or no verification at all.
    pub tls: Option<&'a Tls>,
    /// Do not follow redirects: behind Dex or oauth2-proxy a redirect leads to a login page,
    /// which the caller reports as such.
    pub no_redirects: bool,
    /// Idle connections kept per host (many parallel requests to one API).
    pub pool_max_idle_per_host: Option<usize>,
}

/// The HTTP client for `options`: the only place kfp-ci builds one.
pub fn client(options: Options<'_>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().user_agent(USER_AGENT);
    if let Some(t) = options.connect_timeout {
        builder = builder.connect_timeout(t);
    }
    if let Some(t) = options.timeout {
        builder = builder.timeout(t);
    }
    if options.no_redirects {
        builder = builder.redirect(reqwest::redirect::Policy::none());
    }
    if let Some(n) = options.pool_max_idle_per_host {
        builder = builder.pool_max_idle_per_host(n);
    }
    if let Some(tls) = options.tls {
        if let Some(path) = &tls.ca_cert {
            builder = builder.tls_certs_merge(ca_bundle(path)?);
        }
        if tls.insecure_skip_verify {
            warn_insecure();
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
    }
    builder.build().context("cannot build the HTTP client")
}

/// The certificates of a PEM bundle (`--ca-cert`), refusing a file without one.
fn ca_bundle(path: &std::path::Path) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let pem = fs_err::read(path).context("cannot read the CA bundle given by --ca-cert")?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .with_context(|| format!("{} is not a PEM certificate bundle", path.display()))?;
    if certs.is_empty() {
        // reqwest accepts a file without a single certificate; verification would then fail
        // later with a misleading "unknown issuer".
        anyhow::bail!(
            "the CA bundle {} (--ca-cert) holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(certs)
}

/// Said once per process, however many clients are built.
fn warn_insecure() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing::warn!(
            "TLS certificate verification is off (--insecure-skip-tls-verify): never use this in production"
        );
    });
}

/// Why a request got no HTTP answer, classified once from reqwest's error chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No connection within the connect timeout.
    ConnectTimeout,
    /// Connected, but no (whole) answer in time.
    Timeout,
    /// A TLS handshake answered in plain HTTP (an `https://` URL on an HTTP port).
    PlainHttp,
    /// The host name does not resolve.
    Dns,
    /// The server's certificate is not trusted; the detail (`invalid peer certificate: …`).
    Certificate(String),
    /// Another TLS failure; the innermost cause.
    Tls(String),
    Refused,
    Reset,
    /// Anything else; the innermost cause without ` (os error N)`.
    Other(String),
}

/// A request that got no HTTP answer: the whole cause chain (for `-v`) and what it means.
#[derive(Debug, Clone)]
pub struct Transport {
    /// The error and its causes on one line, secrets redacted, the URL shown as `url` says.
    pub chain: String,
    pub failure: Failure,
    /// reqwest's own flags: the failure was on connecting / was a timeout.
    pub connect: bool,
    pub timeout: bool,
}

impl Transport {
    /// Classify `err`; in its text the request URL is replaced by `shown` (how every URL is shown:
    /// without userinfo or query).
    pub fn of(err: &reqwest::Error, shown: &str) -> Transport {
        let mut chain = error_chain(err);
        if let Some(full) = err.url() {
            chain = chain.replace(full.as_str(), shown);
        }
        let chain = crate::redact::redact(&chain);
        let https = err
            .url()
            .map_or(shown.starts_with("https://"), |u| u.scheme() == "https");
        let failure = classify(
            &chain,
            &crate::redact::redact(&innermost(err)),
            err.is_timeout(),
            err.is_connect(),
            https,
        );
        Transport {
            chain,
            failure,
            connect: err.is_connect(),
            timeout: err.is_timeout(),
        }
    }
}

/// The failure behind an error chain. `innermost`: the last cause's text.
pub fn classify(
    chain: &str,
    innermost: &str,
    timeout: bool,
    connect: bool,
    https: bool,
) -> Failure {
    let lower = chain.to_lowercase();
    if timeout && connect {
        Failure::ConnectTimeout
    } else if timeout {
        Failure::Timeout
    } else if https
        && (lower.contains("invalidcontenttype")
            || lower.contains("corrupt message")
            || lower.contains("wrong version number")
            || lower.contains("invalid message"))
    {
        // rustls read an HTTP answer where a TLS record should be.
        Failure::PlainHttp
    } else if lower.contains("dns error") || lower.contains("failed to lookup") {
        Failure::Dns
    } else if lower.contains("certificate") {
        // rustls: "invalid peer certificate: UnknownIssuer".
        let detail = chain
            .split(": ")
            .skip_while(|p| !p.to_lowercase().contains("certificate"))
            .collect::<Vec<_>>()
            .join(": ");
        Failure::Certificate(detail)
    } else if lower.contains("tls") || lower.contains("handshake") {
        Failure::Tls(innermost.to_string())
    } else if lower.contains("connection refused") {
        Failure::Refused
    } else if lower.contains("connection reset") {
        Failure::Reset
    } else {
        let end = innermost.find(" (os error").unwrap_or(innermost.len());
        Failure::Other(innermost[..end].to_string())
    }
}

/// The error and its causes on one line (reqwest's Display hides the interesting part); a cause
/// whose text is already there is not repeated.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    text
}

/// A response body for an error message: its first line, at most `max` bytes, secrets redacted.
pub fn body_excerpt(body: &str, max: usize) -> String {
    crate::redact::redact(crate::text::excerpt(body, max))
}

/// Seconds for people: one decimal under 10 s when it matters ("1.5"), else whole ("30").
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 && s.fract() >= 0.05 {
        format!("{s:.1}")
    } else {
        format!("{s:.0}")
    }
}

/// Retry delays: exponential, with full jitter unless `jitter` is off; zero under
/// `KFP_CI_TEST_NO_RETRY_DELAY` (tests).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    pub jitter: bool,
}

impl Backoff {
    /// `base · 2^attempt`, at most `max`; jittered into its upper half.
    pub fn new(base: Duration, max: Duration, jitter: bool) -> Backoff {
        if std::env::var_os("KFP_CI_TEST_NO_RETRY_DELAY").is_some() {
            Backoff::none()
        } else {
            Backoff { base, max, jitter }
        }
    }

    /// No delay at all.
    pub fn none() -> Backoff {
        Backoff {
            base: Duration::ZERO,
            max: Duration::ZERO,
            jitter: false,
        }
    }

    /// Delay before attempt `attempt + 1` (attempt counts from 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        if self.base.is_zero() {
            return Duration::ZERO;
        }
        let cap = self.base.saturating_mul(1 << attempt.min(16)).min(self.max);
        if !self.jitter {
            return cap;
        }
        let millis = cap.as_millis() as u64;
        // Jitter: somewhere in [cap/2, cap].
        Duration::from_millis(millis / 2 + rand::random_range(0..=millis / 2))
    }

    /// The delay, or the server's `Retry-After` when that is longer (at most 30 s).
    pub fn delay_or_retry_after(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let d = self.delay(attempt);
        match retry_after {
            Some(after) if !self.base.is_zero() => d.max(after.min(Duration::from_secs(30))),
            _ => d,
        }
    }
}

/// What one attempt of [`retry`] came to.
pub enum Attempt<T, E> {
    Done(T),
    /// Failed; try again (while attempts are left).
    Retry(E),
    /// Failed; trying again would not help.
    Fail(E),
}

/// Run `attempt(n)` (n from 1) up to `attempts` times, sleeping `backoff` between tries; the last
/// error when none succeeded.
pub async fn retry<T, E, F, Fut>(attempts: u32, backoff: Backoff, mut attempt: F) -> Result<T, E>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Attempt<T, E>>,
{
    let mut n = 1;
    loop {
        match attempt(n).await {
            Attempt::Done(v) => return Ok(v),
            Attempt::Retry(_) if n < attempts => {
                let delay = backoff.delay(n);
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                n += 1;
            }
            Attempt::Retry(e) | Attempt::Fail(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classified_from_the_chain() {
        let refused = "error sending request for url (http://127.0.0.1:1/apis/v2beta1/healthz): client error (Connect): tcp connect error: Connection refused (os error 111)";
        assert_eq!(
            classify(
                refused,
                "Connection refused (os error 111)",
                false,
                true,
                false
            ),
            Failure::Refused
        );
        let dns = "error sending request: dns error: failed to lookup address information: Name or service not known";
        assert_eq!(classify(dns, "x", false, true, false), Failure::Dns);
        assert_eq!(
            classify("x", "x", true, true, false),
            Failure::ConnectTimeout
        );
        assert_eq!(classify("x", "x", true, false, false), Failure::Timeout);
        let tls = "error sending request: client error (Connect): invalid peer certificate: UnknownIssuer";
        assert_eq!(
            classify(
                tls,
                "invalid peer certificate: UnknownIssuer",
                false,
                true,
                true
            ),
            Failure::Certificate("invalid peer certificate: UnknownIssuer".into())
        );
        let plain = "error sending request: client error (Connect): received corrupt message of type InvalidContentType";
        assert_eq!(classify(plain, "x", false, true, true), Failure::PlainHttp);
        // The same words over plain HTTP are no TLS problem.
        assert_ne!(classify(plain, "x", false, true, false), Failure::PlainHttp);
        assert_eq!(
            classify("a: TLS handshake eof", "handshake eof", false, true, true),
            Failure::Tls("handshake eof".into())
        );
        assert_eq!(
            classify("a: connection reset by peer", "reset", false, false, false),
            Failure::Reset
        );
        assert_eq!(
            classify(
                "x: connection closed before message completed (os error 5)",
                "connection closed before message completed (os error 5)",
                false,
                false,
                false
            ),
            Failure::Other("connection closed before message completed".into())
        );
    }

    #[test]
    fn body_excerpt_is_one_clipped_line() {
        assert_eq!(body_excerpt("  first line\nsecond\n", 5), "first");
        assert_eq!(body_excerpt("", 5), "");
    }

    #[test]
    fn error_chains_read_on_one_line_without_repeats() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl std::fmt::Display for E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let err = E(
            "outer: inner",
            Some(Box::new(E("inner", Some(Box::new(E("root", None)))))),
        );
        assert_eq!(error_chain(&err), "outer: inner: root");
        assert_eq!(innermost(&err), "root");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(250),
            max: Duration::from_secs(8),
            jitter: false,
        };
        assert_eq!(b.delay(1), Duration::from_millis(500));
        assert_eq!(b.delay(2), Duration::from_secs(1));
        assert_eq!(b.delay(10), Duration::from_secs(8));
        let j = Backoff { jitter: true, ..b };
        for attempt in 1..6 {
            let d = j.delay(attempt);
            assert!(d >= b.delay(attempt) / 2 && d <= b.delay(attempt), "{d:?}");
        }
        assert_eq!(
            b.delay_or_retry_after(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            b.delay_or_retry_after(1, Some(Duration::from_secs(300))),
            Duration::from_secs(30)
        );
        assert_eq!(
            Backoff::none().delay_or_retry_after(1, Some(Duration::from_secs(3))),
            Duration::ZERO
        );
        assert_eq!(seconds(Duration::from_millis(1_540)), "1.5");
        assert_eq!(seconds(Duration::from_millis(30_020)), "30");
    }

    #[tokio::test]
    async fn retry_stops_on_success_on_a_final_error_or_out_of_attempts() {
        let mut calls = 0;
        let out: Result<u32, &str> = retry(5, Backoff::none(), |n| {
            calls += 1;
            async move {
                if n < 3 {
                    Attempt::Retry("again")
                } else {
                    Attempt::Done(n)
                }
            }
        })
        .await;
        assert_eq!((out, calls), (Ok(3), 3));
        let mut calls = 0;
        let out: Result<u32, &str> = retry(5, Backoff::none(), |_| {
            calls += 1;
            async { Attempt::Fail("no") }
        })
        .await;
        assert_eq!((out, calls), (Err("no"), 1));
        let mut calls = 0;
        let out: Result<u32, u32> = retry(3, Backoff::none(), |n| {
            calls += 1;
            async move { Attempt::Retry(n) }
        })
        .await;
        assert_eq!((out, calls), (Err(3), 3));
    }

    #[test]
    fn an_empty_ca_bundle_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        fs_err::write(&path, "not a certificate\n").expect("write");
        let tls = Tls {
            ca_cert: Some(path.clone()),
            insecure_skip_verify: false,
        };
        let err = client(Options {
            tls: Some(&tls),
            ..Options::default()
        })
        .expect_err("no certificate");
        assert!(
            format!("{err:#}").contains(&path.display().to_string()),
            "{err:#}"
        );
    }
}
