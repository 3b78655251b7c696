//! `kfp-ci plan --comment` and `plan --output markdown`: the plan table, the diff of each
//! changed pipeline and its DAG (changed tasks highlighted) as one Markdown body
//! (`crate::changes`), posted as the pull request's sticky comment (`crate::forge`) or written
//! to stdout.

use anyhow::Result;

use crate::cli::{GlobalArgs, PlanCmd, PlanOutput};
use crate::forge::{self, Posted};
use crate::output;
use crate::status::ExitStatus;

pub async fn run(cmd: PlanCmd, global: &GlobalArgs) -> Result<ExitStatus> {
    let (report, body) = crate::prepare::plan_comment(&cmd.compile, &cmd.target, global).await?;
    output::message(&report.render_table(global.verbose > 0));
    if cmd.output == PlanOutput::Markdown {
        output::data(&body)?;
    } else if cmd.output == PlanOutput::Json {
        output::data_line(&crate::report::report_json(&report)?)?;
    }
    if cmd.comment {
        let env = |name: &str| std::env::var(name).ok();
        match forge::detect(&env) {
            Err(why) => output::always(&format!(
                "no pull request to comment on: {why}; nothing posted\n"
            )),
            Ok(ctx) => match ctx.post(&body).await? {
                Posted::Created(id) => output::always(&format!(
                    "posted the plan comment {id} on {}\n",
                    ctx.describe()
                )),
                Posted::Updated(id) => output::always(&format!(
                    "updated the plan comment {id} on {}\n",
                    ctx.describe()
                )),
            },
        }
    }
    Ok(report.plan_status(cmd.detailed_exitcode))
}
