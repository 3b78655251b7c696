//! `kfp-ci render --kubernetes`: Pipeline and PipelineVersion resources for KFP's Kubernetes
//! store, checked against the CRD schemas (tests/fixtures/crds, KFP 2.17.0) with check-jsonschema.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{TestContext, python, workspace_root};
use crate::deploy::{GOODBYE, HELLO, assert_exit, run, text};

/// Every YAML document of a file, as JSON (through the test venv's PyYAML).
fn yaml_docs(path: &Path) -> Vec<Value> {
    let out = crate::common::command(python())
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]))",
        ])
        .arg(path)
        .output()
        .expect("python");
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Check every rendered document against its CRD's `openAPIV3Schema` with check-jsonschema;
/// metadata.name against the DNS-1123 subdomain rule.
fn validate(dir: &Path, files: &[PathBuf]) {
    let crds = workspace_root().join("crates/kfp-ci/tests/fixtures/crds");
    let mut schemas = std::collections::BTreeMap::new();
    for (kind, file) in [
        ("Pipeline", "pipelines.kubeflow.org_pipelines.yaml"),
        (
            "PipelineVersion",
            "pipelines.kubeflow.org_pipelineversions.yaml",
        ),
    ] {
        let crd = &yaml_docs(&crds.join(file))[0];
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        assert!(schema.is_object(), "{file}");
        let path = dir.join(format!("{kind}.schema.json"));
        std::fs::write(&path, schema.to_string()).expect("write schema");
        schemas.insert(kind.to_string(), path);
    }
    let check = workspace_root().join("target/test-venv/bin/check-jsonschema");
    for file in files {
        let docs = yaml_docs(file);
        assert_eq!(docs.len(), 2, "{}", file.display());
        for (i, doc) in docs.iter().enumerate() {
            assert_eq!(doc["apiVersion"], "pipelines.kubeflow.org/v2beta1");
            let name = doc["metadata"]["name"].as_str().expect("metadata.name");
            assert!(
                kfp_api::compat::is_dns1123_subdomain(name),
                "{name} in {}",
                file.display()
            );
            let kind = doc["kind"].as_str().expect("kind");
            let instance = dir.join(format!("{kind}-{i}.json"));
            std::fs::write(&instance, doc.to_string()).expect("write instance");
            let out = crate::common::command(&check)
                .arg("--schemafile")
                .arg(&schemas[kind])
                .arg(&instance)
                .output()
                .expect("check-jsonschema");
            assert!(
                out.status.success(),
                "{} ({kind}) does not match the CRD schema:\n{}{}",
                file.display(),
                text(&out.stdout),
                text(&out.stderr)
            );
        }
    }
}

fn render(ctx: &TestContext, args: &[&str]) -> Vec<PathBuf> {
    let mut all = vec!["render", "--kubernetes", "--out-dir", "gitops"];
    all.extend_from_slice(args);
    let out = run(ctx, &all);
    assert_exit(&out, 0);
    text(&out.stdout)
        .lines()
        .map(|l| ctx.root().join(l.trim()))
        .collect()
}

#[test]
fn render_kubernetes_writes_valid_resources_and_re_renders_byte_identically() {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    ctx.write("goodbye_pipeline.py", GOODBYE);
    let files = render(
        &ctx,
        &["--version-tag", "V1_first", "--namespace", "team-a"],
    );
    assert_eq!(files.len(), 2, "{files:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    validate(dir.path(), &files);

    let hello = ctx.root().join("gitops/hello-pipeline.yaml");
    let docs = yaml_docs(&hello);
    assert_eq!(docs[0]["kind"], "Pipeline");
    assert_eq!(docs[0]["metadata"]["name"], "hello-pipeline");
    assert_eq!(docs[0]["metadata"]["namespace"], "team-a");
    assert_eq!(docs[0]["spec"]["displayName"], "hello_pipeline");
    assert_eq!(docs[1]["kind"], "PipelineVersion");
    // The version is named by the tag (DNS-1123), its resource `{pipeline}-{version}`.
    assert_eq!(docs[1]["spec"]["versionName"], "v1-first");
    assert_eq!(docs[1]["metadata"]["name"], "hello-pipeline-v1-first");
    assert_eq!(docs[1]["spec"]["pipelineName"], "hello-pipeline");
    assert_eq!(
        docs[1]["spec"]["pipelineSpec"]["pipelineInfo"]["name"],
        "hello-pipeline"
    );
    // The spec embedded is the one compile writes.
    let out = run(&ctx, &["compile", "--out-dir", "compiled"]);
    assert_exit(&out, 0);
    let compiled = yaml_docs(&ctx.root().join("compiled/hello_pipeline.yaml"));
    assert_eq!(docs[1]["spec"]["pipelineSpec"], compiled[0]);

    // Unchanged specs: the same bytes, whatever the new tag.
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("read"))
        .collect();
    let again = render(&ctx, &["--version-tag", "v2", "--namespace", "team-a"]);
    assert_eq!(again, files);
    let after: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("read"))
        .collect();
    assert_eq!(before, after);

    // One edit: only that pipeline's file changes, to a new version under the new tag.
    ctx.write(
        "hello_pipeline.py",
        &HELLO.replace("\"hello\"", "\"hello again\""),
    );
    render(&ctx, &["--version-tag", "v3", "--namespace", "team-a"]);
    let goodbye = ctx.root().join("gitops/goodbye-pipeline.yaml");
    assert_eq!(
        std::fs::read(&goodbye).expect("read"),
        before[files.iter().position(|f| f == &goodbye).expect("goodbye")]
    );
    let docs = yaml_docs(&hello);
    assert_eq!(docs[1]["spec"]["versionName"], "v3");
    assert_eq!(docs[1]["metadata"]["name"], "hello-pipeline-v3");
    validate(dir.path(), &files);
}

#[test]
fn render_needs_a_format_and_reports_broken_files() {
    let ctx = TestContext::new();
    ctx.write("hello_pipeline.py", HELLO);
    let out = run(&ctx, &["render"]);
    assert_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("--kubernetes"),
        "{}",
        text(&out.stderr)
    );
    ctx.write("broken_pipeline.py", "import module_that_does_not_exist\n");
    let out = run(&ctx, &["render", "--kubernetes"]);
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("broken_pipeline.py"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        ctx.root()
            .join("dist/kubernetes/hello-pipeline.yaml")
            .exists()
    );
}
