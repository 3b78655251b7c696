//! Exit statuses: 0 success, 1 some pipelines failed, 2 usage, configuration or unexpected error,
//! 3 changes pending (`plan --detailed-exitcode` only); 130/143 a deploy stopped by SIGINT/SIGTERM.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything went through.
    Success,
    /// Some pipelines failed (compile, plan or upload); the others went through.
    Failure,
    /// Usage, configuration, an unreachable server, or an unexpected error.
    Error,
    /// `plan --detailed-exitcode`: the plan worked and something would change. A code of its own,
    /// so a script can tell "changes pending" from "the server is unreachable" (2).
    ChangesPending,
    /// Stopped by a signal after writing the report: 128 + the signal number.
    Interrupted(crate::interrupt::Signal),
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        match status {
            ExitStatus::Success => ExitCode::from(0),
            ExitStatus::Failure => ExitCode::from(1),
            ExitStatus::Error => ExitCode::from(2),
            ExitStatus::ChangesPending => ExitCode::from(3),
            ExitStatus::Interrupted(signal) => ExitCode::from(signal.exit_code()),
        }
    }
}

/// One line, `error: what: why: cause`, then the `hint: …` lines the messages carry; secrets
/// redacted. A cause whose text the line already holds is not repeated.
pub fn print_error(err: &anyhow::Error) {
    crate::output::always(&render_error(err));
}

/// The text [`print_error`] prints.
pub fn render_error(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut hints: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = crate::redact::redact(&cause.to_string());
        let mut body: Vec<&str> = Vec::new();
        for line in text.lines() {
            if line.trim_start().starts_with("hint:") {
                hints.push(line.trim().to_string());
            } else {
                body.push(line);
            }
        }
        let body = body.join("\n").trim().to_string();
        if !body.is_empty() && !parts.iter().any(|p| p.contains(&body)) {
            parts.push(body);
        }
    }
    let mut out = format!("error: {}\n", parts.join(": "));
    for hint in hints {
        out.push_str(&hint);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_is_one_line_and_hints_follow() {
        let err = anyhow::anyhow!("Address already in use (os error 98)")
            .context("cannot listen on 127.0.0.1:8888\nhint: pick another port with --addr");
        assert_eq!(
            render_error(&err),
            "error: cannot listen on 127.0.0.1:8888: Address already in use (os error 98)\nhint: pick another port with --addr\n"
        );
        let repeated = anyhow::anyhow!("file is not a database").context("file is not a database");
        assert_eq!(render_error(&repeated), "error: file is not a database\n");
    }
}
