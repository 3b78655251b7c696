use crate::cli::{CiKind, GlobalArgs, InitCmd};
use crate::init::{self, InitOptions, Written};
use crate::output::message_line;
use crate::status::ExitStatus;

pub async fn run(cmd: InitCmd, _global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let options = InitOptions {
        ci: cmd.ci,
        kfp_namespace: cmd.kfp_namespace.clone(),
        runner_namespace: cmd.runner_namespace.clone(),
    };
    let mut files = init::plan(&options)?;
    crate::compile::inputs::init_hook(&cmd.dir, cmd.ci, &mut files);
    let written = init::write(&cmd.dir, &files, cmd.force)?;
    for w in &written {
        match w {
            Written::Created(p) => message_line(&format!("created {}", p.display())),
            Written::Overwritten(p) => message_line(&format!("overwrote {}", p.display())),
            Written::KeptConfig(p) => {
                message_line(&format!("kept {} (a configuration exists)", p.display()))
            }
        }
    }
    let settings = match cmd.ci {
        CiKind::Gitlab => "Settings → CI/CD → Variables",
        CiKind::Github => "Settings → Secrets and variables → Actions",
        CiKind::Gitea | CiKind::Forgejo => "Settings → Actions → Variables and Secrets",
    };
    message_line("");
    message_line("next steps:");
    message_line(&format!(
        "  1. kubectl apply -f {}   (lets runners in namespace {} reach ml-pipeline:8888 in {})",
        init::NETWORK_POLICY_PATH,
        cmd.runner_namespace,
        cmd.kfp_namespace
    ));
    message_line(&format!(
        "  2. in the repository's {settings}: KFP_ENDPOINT, NTFY_URL (variables), KFP_TOKEN, NTFY_TOKEN (secrets), as needed (the workflow installs kfp-ci {} from PyPI)",
        init::KFP_CI_VERSION
    ));
    message_line("  3. kfp-ci doctor   (checks the endpoint, token, namespace and ntfy from here)");
    message_line(&format!(
        "  4. commit {} and push to main",
        init::workflow_path(cmd.ci)
    ));
    Ok(ExitStatus::Success)
}
