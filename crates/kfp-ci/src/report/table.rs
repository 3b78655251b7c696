//! The human table and summary a plan or deploy writes to stderr.

use super::{Action, Command, PipelineReport, Report, Status};

impl Report {
    /// The human table and summary for stderr.
    pub fn render_table(&self, verbose: bool) -> String {
        let applied = self.command == Command::Deploy && !self.dry_run;
        let mut rows: Vec<Vec<String>> = vec![
            if applied {
                vec!["PIPELINE", "ACTION", "STATUS", "VERSION", "REASON"]
            } else {
                vec!["PIPELINE", "ACTION", "REASON"]
            }
            .into_iter()
            .map(String::from)
            .collect(),
        ];
        for p in &self.pipelines {
            let reason = match &p.error {
                Some(e) if p.reason.is_empty() || p.status == Status::Failed => e.message.clone(),
                _ => p.reason.clone(),
            };
            let reason = reason.lines().next().unwrap_or_default().to_string();
            if applied {
                rows.push(vec![
                    p.name.clone(),
                    p.action.label().into(),
                    p.status.label().into(),
                    p.version_name.clone().unwrap_or_else(|| "-".into()),
                    reason,
                ]);
            } else {
                rows.push(vec![p.name.clone(), p.action.label().into(), reason]);
            }
        }
        let mut out = String::new();
        let cols = rows[0].len();
        let widths: Vec<usize> = (0..cols)
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        if self.pipelines.is_empty() {
            out.push_str("no pipelines found\n");
        } else {
            for row in &rows {
                let mut line = String::new();
                for (i, cell) in row.iter().enumerate() {
                    if i + 1 == cols {
                        line.push_str(cell);
                    } else {
                        line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                    }
                }
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
        let failures: Vec<&PipelineReport> = self
            .pipelines
            .iter()
            .filter(|p| {
                p.error.is_some() && (p.status == Status::Failed || p.action == Action::Error)
            })
            .collect();
        if !failures.is_empty() {
            out.push_str("\nfailures:\n");
            for p in failures {
                if let Some(e) = &p.error {
                    out.push_str(&format!(
                        "  {} ({}): [{}] {}\n",
                        p.name, p.file, e.kind, e.message
                    ));
                    if verbose && !e.detail.is_empty() {
                        for line in e.detail.lines() {
                            out.push_str(&format!("    {line}\n"));
                        }
                    } else if let Some(hint) = e.detail.lines().find(|l| l.starts_with("hint: ")) {
                        out.push_str(&format!("    {hint}\n"));
                    }
                }
            }
        }
        out.push_str(&crate::schedules::render(&self.schedules, applied));
        out.push_str(&crate::smoke::render(&self.smoke));
        for e in &self.errors {
            out.push_str(&format!("error: {e}\n"));
        }
        let c = &self.counts;
        let verb = if applied { "" } else { "would be " };
        out.push_str(&format!(
            "\n{}: {} discovered, {} compiled; {} {verb}created, {} {verb}updated, {} unchanged, {} failed",
            if applied { "deploy" } else { "plan" },
            c.discovered,
            c.compiled,
            c.created,
            c.updated,
            c.unchanged,
            c.failed
        ));
        if let Some(tag) = &self.version_tag
            && c.uploaded() > 0
        {
            out.push_str(&format!(" (version {tag})"));
        }
        out.push('\n');
        if applied {
            for p in &self.pipelines {
                if let Some(url) = &p.url
                    && matches!(p.action, Action::Create | Action::NewVersion)
                    && p.status == Status::Done
                {
                    out.push_str(&format!("  {}: {url}\n", p.name));
                }
            }
        }
        out
    }
}
