//! Exit statuses: 0 success, 1 some pipelines failed, 2 usage, configuration or unexpected error.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything went through.
    Success,
    /// Some pipelines failed (compile, plan or upload); the others went through.
    Failure,
    /// Usage, configuration, an unreachable server, or an unexpected error.
    Error,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        match status {
            ExitStatus::Success => ExitCode::from(0),
            ExitStatus::Failure => ExitCode::from(1),
            ExitStatus::Error => ExitCode::from(2),
        }
    }
}

/// `error: …` then one `Caused by: …` line per cause, secrets redacted.
pub fn print_error(err: &anyhow::Error) {
    let mut chain = err.chain();
    if let Some(first) = chain.next() {
        eprintln!("error: {}", crate::redact::redact(&first.to_string()));
    }
    for cause in chain {
        eprintln!("  Caused by: {}", crate::redact::redact(&cause.to_string()));
    }
}
