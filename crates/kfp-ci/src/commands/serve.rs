//! `kfp-ci serve`: the local KFP API on the repository's store (or `--db`), until Ctrl-C.

use anyhow::Context;

use crate::cli::{GlobalArgs, ServeCmd};
use crate::output;
use crate::redact::Secret;
use crate::settings;
use crate::status::ExitStatus;

/// How long requests in flight may take to finish after Ctrl-C or SIGTERM.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

pub async fn run(cmd: ServeCmd, _global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let db = match cmd.db {
        Some(db) => db,
        None => settings::repo_root(&cwd).join(kfp_serve::DEFAULT_DB),
    };
    let db = std::path::absolute(&db).unwrap_or(db);
    let token = cmd.token.filter(|t| !t.trim().is_empty());
    if let Some(t) = &token {
        crate::redact::check_secret("the token (--token or KFP_CI_SERVE_TOKEN)", t)?;
    }
    let token = token.map(Secret::new);
    let opts = kfp_serve::ServeOptions {
        addr: cmd.addr,
        db: db.clone(),
        token: token.as_ref().map(|t| t.expose().to_string()),
        insecure_no_auth: cmd.insecure_no_auth,
        multi_user: cmd.multi_user,
        latency_ms: cmd.latency_ms,
        fail_rate: cmd.fail_rate,
        seed: cmd.seed,
        run_outcome: cmd
            .run_outcome
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--run-outcome: {e}"))?,
        run_duration_ms: cmd.run_duration_ms,
        server_version: cmd.server_version,
        pipeline_store: cmd.pipeline_store,
        test_clock: cmd.test_clock,
    };
    let server = kfp_serve::spawn(opts).await?;
    let url = server.url();
    // The address is the one line a caller needs (scripts and tests read it): said even with -q.
    output::always(&format!("kfp-ci serve: listening on {url}\n"));
    output::message_line(&format!("  database: {}", db.display()));
    output::message_line(&format!(
        "  a local stand-in for the Kubeflow Pipelines API v2beta1 (pipelines, versions, experiments, runs, recurring runs, healthz), answering like KFP {}{}; runs are recorded, not executed (each ends {} after {} ms); no cluster",
        cmd.server_version,
        match cmd.pipeline_store {
            kfp_serve::Store::Database => "",
            kfp_serve::Store::Kubernetes => " with the Kubernetes pipeline store",
        },
        cmd.run_outcome.to_uppercase(),
        cmd.run_duration_ms
    ));
    output::message_line(&format!(
        "  mode: {}; auth: {}",
        if cmd.multi_user {
            "multi-user (namespaces kept)"
        } else {
            "single-user (namespaces ignored)"
        },
        if token.is_some() {
            "bearer token required on every request"
        } else {
            "none"
        }
    ));
    if cmd.latency_ms > 0 || cmd.fail_rate > 0.0 {
        output::message_line(&format!(
            "  testing aids: +{} ms per API request, {:.1}% of API requests answered 503{}",
            cmd.latency_ms,
            cmd.fail_rate * 100.0,
            cmd.seed.map(|s| format!(" (seed {s})")).unwrap_or_default()
        ));
    }
    if cmd.test_clock {
        output::message_line(&format!(
            "  testing aid: POST {url}/_test/clock/advance?seconds=N moves the clock forward"
        ));
    }
    if token.is_some() {
        output::message_line(&format!(
            "  pipelines page: {url}/?token=<the token> (once per browser; a session cookie keeps it open) · API: {url}/apis/v2beta1/pipelines · Ctrl-C stops"
        ));
    } else {
        output::message_line(&format!(
            "  pipelines page: {url}/ · API: {url}/apis/v2beta1/pipelines · Ctrl-C stops"
        ));
    }
    kfp_serve::shutdown_signal().await;
    output::message_line("kfp-ci serve: shutting down");
    // Requests in flight finish; a connection that stays open (a browser's keep-alive, a client
    // that never finishes its request) must not keep the server alive, nor must a second Ctrl-C
    // be ignored.
    tokio::select! {
        result = tokio::time::timeout(SHUTDOWN_GRACE, server.shutdown()) => match result {
            Ok(done) => done?,
            Err(_) => output::message_line(&format!(
                "kfp-ci serve: connections still open after {} s; stopped without them",
                SHUTDOWN_GRACE.as_secs()
            )),
        },
        () = kfp_serve::shutdown_signal() => output::message_line("kfp-ci serve: stopped at once"),
    }
    Ok(ExitStatus::Success)
}
