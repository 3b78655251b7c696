//! `kfp-ci notify`: the separate notify job. Reads the deploy's report from `--report-file` or
//! from `KFP_CI_REPORT` (the deploy job's `report` output) and sends the ntfy notification; when
//! the deploy job failed before it could report, says so, with the run link.

use std::path::Path;

use anyhow::{Context, Result};

use crate::ci::{self, CiInfo};
use crate::cli::{GlobalArgs, NotifyCmd};
use crate::notify::{self, Sent};
use crate::report::{REPORT_SCHEMA, Report};
use crate::settings;
use crate::status::ExitStatus;

/// The environment variable a workflow fills from the deploy job's `report` output.
pub const REPORT_ENV: &str = "KFP_CI_REPORT";

pub async fn run(cmd: NotifyCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let loaded = settings::load(global.config.as_deref(), &cwd)?;
    let settings = notify::resolve(&cmd.notify, &loaded.config.notify)?;
    if settings.required && settings.ntfy.is_none() && !cmd.notify.no_notify {
        anyhow::bail!(
            "a notification is required (--notify-required or notify.required) but no ntfy URL is configured: set --ntfy-url, KFP_CI_NTFY_URL or notify.ntfy.url"
        );
    }
    let job_status = cmd
        .job_status
        .as_deref()
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty());
    if job_status.as_deref() == Some("skipped") {
        tracing::info!("the deploy job was skipped: nothing to notify");
        return Ok(ExitStatus::Success);
    }

    let (report, problem) = read_report(cmd.report_file.as_deref());
    let ci_here = ci::detect_probing(&loaded.config.ci, cmd.notify.run_url.as_deref()).await;
    let mut report = match report {
        Some(report) => report,
        None => {
            let why = match job_status.as_deref() {
                Some("failure") => "the deploy job failed before it could report".to_string(),
                Some("cancelled") => {
                    "the deploy job was cancelled before it could report".to_string()
                }
                Some(other) => format!("the deploy job ended ({other}) without a report"),
                None if problem
                    .as_deref()
                    .is_some_and(|p| !p.ends_with(MISSING) && !p.ends_with(EMPTY)) =>
                {
                    "the deploy report could not be read".to_string()
                }
                None => "no deploy report was found".to_string(),
            };
            let why = match problem {
                Some(problem) => format!("{why} ({problem}); see the run log"),
                None => format!("{why}; see the run log"),
            };
            tracing::warn!("{why}");
            Report {
                schema: REPORT_SCHEMA,
                kfp_ci_version: env!("CARGO_PKG_VERSION").to_string(),
                command: "deploy".to_string(),
                errors: vec![why],
                ..Report::default()
            }
        }
    };
    if let Some(problem) = report_vs_job(&report, job_status.as_deref()) {
        report.errors.push(problem);
    }
    report.ci = Some(merge_ci(
        report.ci.take(),
        ci_here,
        cmd.notify.run_url.as_deref(),
    ));

    match notify::deliver(&report, &settings).await? {
        Sent::NotConfigured => tracing::warn!(
            "no ntfy URL configured (--ntfy-url, KFP_CI_NTFY_URL or notify.ntfy.url): nothing sent"
        ),
        Sent::Sent { .. } | Sent::Skipped(_) | Sent::Failed(_) => {}
    }
    Ok(ExitStatus::Success)
}

/// How [`read_report`] ends its reason when there is no report at all (as opposed to a bad one).
const MISSING: &str = "does not exist";
const EMPTY: &str = "is empty";

/// The report from the file, else from `KFP_CI_REPORT`; `None` with the reason when neither has one.
fn read_report(file: Option<&Path>) -> (Option<Report>, Option<String>) {
    if let Some(path) = file {
        return match fs_err::read_to_string(path) {
            Ok(text) => match parse_report(&text) {
                Ok(report) => (Some(report), None),
                Err(err) => (
                    None,
                    Some(format!("{} is not a kfp-ci report: {err}", path.display())),
                ),
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                (None, Some(format!("{} {MISSING}", path.display())))
            }
            Err(err) => (None, Some(err.to_string())),
        };
    }
    match std::env::var(REPORT_ENV) {
        Ok(text) if !text.trim().is_empty() => match parse_report(&text) {
            Ok(report) => (Some(report), None),
            Err(err) => (
                None,
                Some(format!("{REPORT_ENV} does not hold a kfp-ci report: {err}")),
            ),
        },
        _ => (None, Some(format!("{REPORT_ENV} {EMPTY}"))),
    }
}

/// A report as `kfp-ci deploy --output json` / `--report-file` writes it: a JSON object with a
/// `schema` number (serde alone would also take an array, or `{}`, for a report of defaults).
fn parse_report(text: &str) -> std::result::Result<Report, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if !value.get("schema").is_some_and(serde_json::Value::is_u64) {
        return Err(
            "expected the JSON object `kfp-ci deploy --report-file` writes (with a `schema` number)"
                .to_string(),
        );
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// A job that failed after its report still failed: say so when the report looks fine.
fn report_vs_job(report: &Report, job_status: Option<&str>) -> Option<String> {
    let failed_job = matches!(job_status, Some("failure" | "cancelled"));
    if failed_job && ci::Outcome::of(report) != ci::Outcome::Failure {
        let status = job_status.unwrap_or("failure");
        let verb = if status == "cancelled" {
            "was cancelled"
        } else {
            "failed"
        };
        return Some(format!(
            "the deploy job {verb} after writing its report; see the run log"
        ));
    }
    None
}

/// The deploy job's CI facts win (same run); gaps are filled from this job's environment, and
/// an explicit `--run-url` wins over both.
fn merge_ci(from_report: Option<CiInfo>, here: CiInfo, run_url: Option<&str>) -> CiInfo {
    let Some(mut ci) = from_report else {
        return here;
    };
    if ci.platform == ci::Platform::Unstated {
        ci.platform = here.platform;
    }
    ci.commit_sha = ci.commit_sha.or(here.commit_sha);
    ci.git_ref = ci.git_ref.or(here.git_ref);
    ci.repository = ci.repository.or(here.repository);
    ci.actor = ci.actor.or(here.actor);
    ci.run_id = ci.run_id.or(here.run_id);
    ci.run_number = ci.run_number.or(here.run_number);
    ci.run_url = match run_url.filter(|u| !u.trim().is_empty()) {
        Some(_) => here.run_url,
        None => ci.run_url.or(here.run_url),
    };
    ci
}
