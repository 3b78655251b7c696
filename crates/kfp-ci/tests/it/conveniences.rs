//! Everyday conveniences: shell completions and the configuration's JSON Schema (checked against
//! the README's complete example).

use serde_json::Value;

use crate::common::{TestContext, command};
use crate::ship::{ok, read, run_tool, text, venv_bin};

#[test]
fn completions_for_every_shell() {
    let ctx = TestContext::new();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = ctx
            .cmd()
            .args(["completions", shell])
            .output()
            .expect("completions");
        ok(&out, shell);
        let script = text(&out.stdout);
        for word in ["deploy", "completions", "endpoint", "schema"] {
            assert!(script.contains(word), "{shell}: {word}");
        }
        assert!(out.stderr.is_empty(), "{shell}: nothing on stderr");
    }
    // bash: the script loads, and completing `kfp-ci de` offers deploy.
    let out = ctx
        .cmd()
        .args(["completions", "bash"])
        .output()
        .expect("completions");
    let script = ctx.write("kfp-ci.bash", &text(&out.stdout));
    // The function `complete -p` names, called the way bash calls it: (command, word, previous).
    let probe = format!(
        "source {}; f=$(complete -p kfp-ci | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p'); \
         COMP_WORDS=(kfp-ci de); COMP_CWORD=1; \"$f\" kfp-ci de kfp-ci; printf '%s\\n' \"${{COMPREPLY[@]}}\"; \
         COMP_WORDS=(kfp-ci init --ci ''); COMP_CWORD=3; \"$f\" kfp-ci '' --ci; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = command("bash")
        .args(["--norc", "-c", &probe])
        .output()
        .expect("bash");
    ok(&out, "bash completion");
    let words = text(&out.stdout);
    let words: Vec<&str> = words.lines().collect();
    assert!(words.contains(&"deploy"), "{words:?}");
    assert!(!words.contains(&"serve"), "only matches of `de`: {words:?}");
    // After a subcommand too (clap_complete's hyphenated-name bug is worked around).
    for ci in ["gitea", "forgejo", "github", "gitlab"] {
        assert!(words.contains(&ci), "--ci values: {words:?}");
    }
}

/// The README's complete example, as written there.
fn readme_example() -> String {
    let readme = read("README.md");
    let start = readme
        .find("A complete example:")
        .expect("README: 'A complete example:'");
    let rest = &readme[start..];
    let body = rest
        .split_once("```toml\n")
        .expect("```toml")
        .1
        .split_once("```")
        .expect("closing ```")
        .0;
    body.to_string()
}

#[test]
fn the_config_schema_accepts_the_readme_example_and_rejects_mistakes() {
    let ctx = TestContext::new();
    let out = ctx
        .cmd()
        .args(["config", "schema"])
        .output()
        .expect("config schema");
    ok(&out, "config schema");
    let schema: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(schema["additionalProperties"], false);
    let schema_file = ctx.write("kfp-ci.schema.json", &text(&out.stdout));

    // Every key of the README's configuration reference is in the schema, with a description.
    let props = schema["properties"].as_object().expect("properties");
    let readme = read("README.md");
    let table = readme
        .split_once("| key | default |")
        .expect("configuration table")
        .1
        .split("\n\n")
        .next()
        .expect("table");
    let keys: Vec<&str> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(|k| k.trim_start_matches('[').trim_end_matches(']'))
        .map(|k| k.split('.').next().unwrap_or(k))
        .collect();
    assert!(keys.len() > 15, "{keys:?}");
    for key in keys {
        let p = props
            .get(key)
            .unwrap_or_else(|| panic!("README key `{key}` is not in the schema"));
        assert!(
            p.get("description").is_some() || p.get("$ref").is_some() || p.get("allOf").is_some(),
            "{key}: {p}"
        );
    }

    // The README's complete example: kfp-ci parses it, and the schema validates it
    // (check-jsonschema reads TOML instances).
    let example = readme_example();
    let example_file = ctx.write("example/kfp-ci.toml", &example);
    kfp_ci::settings::read_file(&example_file).expect("the README example parses");
    run_tool(
        "check-jsonschema",
        &["--schemafile", &schema_file.display().to_string()],
        &example_file,
    );

    // And both reject the same mistakes.
    for (mistake, why) in [
        ("includes = [\"x\"]\n", "unknown key"),
        ("jobs = \"two\"\n", "wrong type"),
        ("[targets.prod]\ntoken = \"t\"\n", "unknown key in a target"),
        ("[notify]\non = \"sometimes\"\n", "not a notify.on value"),
    ] {
        let bad = ctx.write("bad/kfp-ci.toml", mistake);
        let out = command(venv_bin().join("check-jsonschema"))
            .args(["--schemafile", &schema_file.display().to_string()])
            .arg(&bad)
            .output()
            .expect("check-jsonschema");
        assert!(!out.status.success(), "schema accepted {why}: {mistake}");
        if why != "not a notify.on value" {
            assert!(
                kfp_ci::settings::read_file(&bad).is_err(),
                "kfp-ci accepted {why}"
            );
        }
    }
}
