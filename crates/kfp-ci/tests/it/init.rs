//! `kfp-ci init`: the workflow, configuration and NetworkPolicy it writes, checked with the
//! official schemas and linters; `-q`; never overwriting without `--force`.

use std::path::{Path, PathBuf};

use crate::ci::stderr;
use crate::common::TestContext;

/// A Python tool from the test venv (`scripts/test` installs tests/requirements.txt there).
fn venv_tool(name: &str) -> PathBuf {
    let python = crate::common::python();
    let tool = python.parent().expect("venv bin").join(name);
    assert!(
        tool.exists(),
        "{} is missing: run `scripts/test` (it installs tests/requirements.txt)",
        tool.display()
    );
    tool
}

pub(crate) fn run_tool(tool: &str, args: &[&str], file: &Path) {
    let out = crate::common::command(venv_tool(tool))
        .args(args)
        .arg(file)
        .env("NO_COLOR", "1")
        .output()
        .expect("run tool");
    assert!(
        out.status.success(),
        "{tool} {args:?} {} failed:\n{}\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn yaml(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("read");
    serde_yaml::from_str(&text).expect("valid YAML")
}

fn init(ctx: &TestContext, args: &[&str]) -> std::process::Output {
    ctx.cmd().arg("init").args(args).output().expect("run init")
}

#[test]
fn init_quiet_writes_the_files_and_says_nothing() {
    let ctx = TestContext::new();
    let out = init(&ctx, &["-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "-q: nothing on stderr");
    assert!(out.stdout.is_empty());
    let workflow = ctx.root().join(".gitea/workflows/compile-upload.yaml");
    assert!(workflow.is_file(), "the workflow is written");
    assert!(
        ctx.root().join("kfp-ci.toml").is_file(),
        "the configuration is written"
    );

    // Without -q the same run lists what it did and the next steps.
    let out = init(&ctx, &["--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("overwrote") && said.contains("next steps:"),
        "{said}"
    );
}

#[test]
fn init_gitea_writes_a_valid_safe_workflow() {
    let ctx = TestContext::new();
    let out = init(&ctx, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let workflow = ctx.root().join(".gitea/workflows/compile-upload.yaml");
    run_tool(
        "check-jsonschema",
        &["--builtin-schema", "vendor.github-workflows"],
        &workflow,
    );
    run_tool("zizmor", &["--offline"], &workflow);

    let w = yaml(&workflow);
    // serde_yaml reads `on` as a string key (YAML 1.2), as GitHub does.
    let on = &w["on"];
    assert_eq!(on["push"]["branches"], serde_json::json!(["main"]));
    assert_eq!(
        on["push"]["paths"],
        serde_json::json!(["**/*_pipeline.py", "**/*pipeline*.py", "kfp-ci.toml"])
    );
    assert!(on.get("workflow_dispatch").is_some());
    assert_eq!(w["permissions"], serde_json::json!({"contents": "read"}));

    let deploy = &w["jobs"]["compile-and-upload"];
    let outputs = deploy["outputs"].as_object().expect("outputs");
    // Every output the deploy step writes is exported by the job, and nothing else.
    let written: Vec<&str> = vec![
        "compiled",
        "uploaded",
        "unchanged",
        "failed",
        "version_tag",
        "failed_names",
        "smoke_failed",
        "report",
    ];
    let mut keys: Vec<&str> = outputs.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = written.clone();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    for key in written {
        assert_eq!(
            outputs[key],
            format!("${{{{ steps.deploy.outputs.{key} }}}}"),
            "{key}"
        );
    }
    let steps = deploy["steps"].as_array().expect("steps");
    assert!(
        steps[0]["uses"]
            .as_str()
            .expect("uses")
            .starts_with("actions/checkout@")
    );
    let deploy_step = steps
        .iter()
        .find(|s| s["id"] == "deploy")
        .expect("deploy step");
    assert!(
        deploy_step["run"]
            .as_str()
            .expect("run")
            .starts_with("kfp-ci deploy")
    );
    assert!(
        deploy_step["env"]["KF_PIPELINES_ENDPOINT"]
            .as_str()
            .expect("endpoint")
            .contains("http://ml-pipeline.kubeflow.svc.cluster.local:8888")
    );
    // Only the notify job notifies, so a configured ntfy URL never sends twice.
    assert_eq!(deploy_step["env"]["KFP_CI_NO_NOTIFY"], "true");
    // The exact kfp-ci that wrote the workflow, as a wheel from PyPI (never built from source),
    // with uv next to it; kfp-ci then makes the kfp virtualenv, which the cache step keeps.
    let version = env!("CARGO_PKG_VERSION");
    let install = steps
        .iter()
        .find(|s| s["name"] == format!("Install kfp-ci {version}"))
        .expect("install step")["run"]
        .as_str()
        .expect("install");
    assert!(
        install.contains(&format!(
            "--only-binary kfp-ci \"kfp-ci=={version}\" \"uv=={}\"",
            kfp_ci::pins::UV_VERSION
        )),
        "{install}"
    );
    let text = std::fs::read_to_string(&workflow).expect("read");
    for never in ["cargo", "rustup", "KFP_CI_GIT_URL", "KFP_CI_INSTALL"] {
        assert!(!text.contains(never), "{never} in the workflow");
    }
    let cache = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/cache@"))
        })
        .expect("cache step");
    assert_eq!(
        cache["with"]["key"],
        format!(
            "kfp-ci-{version}-kfp2.17.0-${{{{ runner.os }}}}-${{{{ hashFiles('kfp-ci.toml', 'pyproject.toml') }}}}"
        )
    );
    assert!(
        cache["with"]["path"]
            .as_str()
            .expect("path")
            .contains("~/.cache/kfp-ci")
    );
    // The compile cache: saved under a new key per commit, restored from the newest of the same
    // kfp version (and configuration).
    let compile = steps
        .iter()
        .find(|s| s["with"]["path"] == ".kfp-ci/cache")
        .expect("compile cache step");
    let prefix = "kfp-ci-compile-kfp2.17.0-${{ runner.os }}-";
    let files = "${{ hashFiles('kfp-ci.toml', 'pyproject.toml') }}-";
    assert_eq!(
        compile["with"]["key"],
        format!("{prefix}{files}${{{{ github.sha }}}}")
    );
    assert_eq!(
        compile["with"]["restore-keys"],
        format!("{prefix}{files}\n{prefix}\n")
    );
    // The notify job needs no kfp: kfp-ci alone.
    let notify_install = w["jobs"]["notify"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == format!("Install kfp-ci {version}"))
        .expect("notify install")["run"]
        .as_str()
        .expect("run");
    assert!(
        notify_install.contains(&format!("\"kfp-ci=={version}\""))
            && !notify_install.contains("uv=="),
        "{notify_install}"
    );
    assert!(deploy_step["env"].get("KFP_CI_PYTHON").is_none());

    let notify = &w["jobs"]["notify"];
    assert_eq!(notify["needs"], "compile-and-upload");
    assert_eq!(notify["if"], "always()");
    let notify_step = notify["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["run"] == "kfp-ci notify")
        .expect("notify step");
    assert_eq!(
        notify_step["env"]["KFP_CI_REPORT"],
        "${{ needs.compile-and-upload.outputs.report }}"
    );
    assert_eq!(
        notify_step["env"]["KFP_CI_JOB_STATUS"],
        "${{ needs.compile-and-upload.result }}"
    );
    // Secrets only by reference, and only in `env:` (never expanded inside a script).
    let text = std::fs::read_to_string(&workflow).expect("read");
    for line in text.lines().filter(|l| l.contains("secrets.")) {
        let line = line.trim();
        assert!(
            line.starts_with("KF_PIPELINES_TOKEN: ${{ secrets.")
                || line.starts_with("NTFY_TOKEN: ${{ secrets."),
            "{line}"
        );
    }

    // The configuration parses, and so does every commented-out setting once enabled.
    let config_path = ctx.root().join("kfp-ci.toml");
    kfp_ci::settings::read_file(&config_path).expect("generated kfp-ci.toml parses");
    let config = std::fs::read_to_string(&config_path).expect("read");
    let enabled: String = config
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '[') => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let all = ctx.write("enabled.toml", &enabled);
    let parsed = kfp_ci::settings::read_file(&all).expect("every documented setting is real");
    assert_eq!(
        parsed.notify.ntfy.url.as_deref(),
        Some("https://ntfy.example.com/kfp-deploys")
    );
    assert_eq!(parsed.ci.gitea_version.as_deref(), Some("1.26"));
    assert_eq!(parsed.kfp_version.as_deref(), Some("2.17.0"));
}

#[test]
fn init_networkpolicy_admits_the_runner_namespace() {
    let ctx = TestContext::new();
    let out = init(
        &ctx,
        &[
            "--kfp-namespace",
            "kubeflow-prod",
            "--runner-namespace",
            "ci-runners",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let np = yaml(
        &ctx.root()
            .join("deploy/networkpolicy-allow-gitea-ingress.yaml"),
    );
    assert_eq!(np["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(np["kind"], "NetworkPolicy");
    assert_eq!(np["metadata"]["namespace"], "kubeflow-prod");
    assert_eq!(
        np["metadata"]["name"],
        "allow-ci-runners-ingress-to-ml-pipeline"
    );
    assert_eq!(
        np["spec"]["podSelector"],
        serde_json::json!({"matchLabels": {"app": "ml-pipeline"}})
    );
    assert_eq!(np["spec"]["policyTypes"], serde_json::json!(["Ingress"]));
    let ingress = np["spec"]["ingress"].as_array().expect("ingress");
    assert_eq!(ingress.len(), 1);
    assert_eq!(
        ingress[0]["from"],
        serde_json::json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ci-runners"}}}])
    );
    assert_eq!(
        ingress[0]["ports"],
        serde_json::json!([{"protocol": "TCP", "port": 8888}])
    );
    // The in-cluster endpoint in the workflow points at the same namespace.
    let workflow = std::fs::read_to_string(ctx.root().join(".gitea/workflows/compile-upload.yaml"))
        .expect("workflow");
    assert!(workflow.contains("http://ml-pipeline.kubeflow-prod.svc.cluster.local:8888"));

    let out = init(&ctx, &["--force", "--runner-namespace", "Not_A_Namespace"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--runner-namespace \"Not_A_Namespace\""));
}

#[test]
fn init_github_forgejo_gitlab_validate() {
    for (ci, path, schema) in [
        (
            "github",
            ".github/workflows/compile-upload.yaml",
            "vendor.github-workflows",
        ),
        (
            "forgejo",
            ".forgejo/workflows/compile-upload.yaml",
            "vendor.github-workflows",
        ),
        ("gitlab", ".gitlab-ci.yml", "vendor.gitlab-ci"),
    ] {
        let ctx = TestContext::new();
        let out = init(&ctx, &["--ci", ci]);
        assert!(out.status.success(), "{ci}: {}", stderr(&out));
        let file = ctx.root().join(path);
        run_tool("check-jsonschema", &["--builtin-schema", schema], &file);
        if ci != "gitlab" {
            run_tool("zizmor", &["--offline"], &file);
        }
    }
    // GitLab: the notify job runs always, with the deploy job's artifacts, and the dotenv file
    // is the one `kfp-ci deploy` writes by default there.
    let ctx = TestContext::new();
    assert!(init(&ctx, &["--ci", "gitlab"]).status.success());
    let g = yaml(&ctx.root().join(".gitlab-ci.yml"));
    assert_eq!(
        g["compile-and-upload"]["artifacts"]["reports"]["dotenv"],
        kfp_ci::ci::DEFAULT_DOTENV
    );
    assert_eq!(g["compile-and-upload"]["artifacts"]["when"], "always");
    assert_eq!(
        g["notify"]["needs"],
        serde_json::json!([{"job": "compile-and-upload", "artifacts": true}])
    );
    for rule in g["notify"]["rules"].as_array().expect("rules") {
        assert_eq!(rule["when"], "always");
    }
    // kfp-ci from PyPI at the version that wrote the file; the kfp virtualenv and pip downloads
    // cached inside the project directory (GitLab caches only paths there).
    let install = &g[".install-kfp-ci"];
    let script: Vec<&str> = install["before_script"]
        .as_array()
        .expect("before_script")
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    assert!(
        script.iter().any(|l| l.contains(&format!(
            "--only-binary kfp-ci \"kfp-ci=={}\"",
            env!("CARGO_PKG_VERSION")
        ))),
        "{script:?}"
    );
    assert!(!script.iter().any(|l| l.contains("cargo")), "{script:?}");
    assert_eq!(
        install["variables"]["KFP_CI_CACHE_DIR"],
        "$CI_PROJECT_DIR/.cache/kfp-ci"
    );
    assert_eq!(
        install["cache"]["paths"],
        serde_json::json!([".cache/pip", ".cache/kfp-ci"])
    );
    assert_eq!(
        install["cache"]["key"]["files"],
        serde_json::json!(["kfp-ci.toml", "pyproject.toml"])
    );
}

#[test]
fn init_never_overwrites_without_force_and_keeps_an_existing_config() {
    let ctx = TestContext::new();
    ctx.write(
        "pyproject.toml",
        "[project]\nname = \"x\"\n[tool.kfp-ci]\nmax_depth = 2\n",
    );
    ctx.write(".gitea/workflows/compile-upload.yaml", "# mine\n");
    let out = init(&ctx, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(".gitea/workflows/compile-upload.yaml already exists: pass --force"),
        "{err}"
    );
    assert!(
        !ctx.root().join("deploy").exists(),
        "nothing written on a conflict"
    );
    assert_eq!(
        std::fs::read_to_string(ctx.root().join(".gitea/workflows/compile-upload.yaml"))
            .expect("read"),
        "# mine\n"
    );
    let out = init(&ctx, &["--force"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("overwrote .gitea/workflows/compile-upload.yaml"),
        "{err}"
    );
    assert!(
        err.contains("kept pyproject.toml (a configuration exists)"),
        "{err}"
    );
    assert!(!ctx.root().join("kfp-ci.toml").exists());
}
