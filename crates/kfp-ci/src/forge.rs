//! One sticky comment per pull request: found by a marker in its body, created once, then
//! updated in place. GitHub and Gitea/Forgejo (issue comments API), GitLab (merge request notes),
//! with the CI's own token variables. The PR context comes from the CI environment.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

/// Marks kfp-ci's plan comment (HTML comment: invisible when rendered).
pub const MARKER: &str = "<!-- kfp-ci:plan -->";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    Github,
    Gitea,
    Gitlab,
}

/// Where the comment goes.
#[derive(Debug, Clone)]
pub struct PrContext {
    pub forge: Forge,
    /// API root: `https://api.github.com`, `https://gitea.example/api/v1`, `https://gitlab.example/api/v4`.
    pub api: String,
    /// `owner/repo` (GitHub, Gitea) or the project id (GitLab).
    pub repo: String,
    /// PR number (GitHub, Gitea) or merge request IID (GitLab).
    pub number: u64,
    /// (header name, value) carrying the token.
    auth: Option<(String, String)>,
    /// The variable the token came from, for messages.
    pub token_source: String,
}

/// Why there is no PR to comment on (printed, exit 0).
pub type NoContext = String;

/// The PR context from the CI environment, or why there is none.
pub fn detect(env: &dyn Fn(&str) -> Option<String>) -> std::result::Result<PrContext, NoContext> {
    let var = |n: &str| {
        env(n)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let is_true = |n: &str| var(n).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if is_true("GITLAB_CI") {
        let Some(iid) = var("CI_MERGE_REQUEST_IID").and_then(|v| v.parse().ok()) else {
            return Err("GitLab CI without a merge request (CI_MERGE_REQUEST_IID is not set: run the job in a merge request pipeline)".into());
        };
        let api = var("CI_API_V4_URL").ok_or("CI_API_V4_URL is not set")?;
        let project = var("CI_PROJECT_ID").ok_or("CI_PROJECT_ID is not set")?;
        let (auth, source) = match (
            var("KFP_CI_GITLAB_TOKEN"),
            var("GITLAB_TOKEN"),
            var("CI_JOB_TOKEN"),
        ) {
            (Some(t), _, _) => (
                Some(("PRIVATE-TOKEN".to_string(), t)),
                "KFP_CI_GITLAB_TOKEN",
            ),
            (None, Some(t), _) => (Some(("PRIVATE-TOKEN".to_string(), t)), "GITLAB_TOKEN"),
            (None, None, Some(t)) => (Some(("JOB-TOKEN".to_string(), t)), "CI_JOB_TOKEN"),
            _ => (None, "no token variable"),
        };
        return Ok(PrContext {
            forge: Forge::Gitlab,
            api: api.trim_end_matches('/').to_string(),
            repo: project,
            number: iid,
            auth,
            token_source: source.into(),
        });
    }
    let forge = if is_true("GITEA_ACTIONS") || is_true("FORGEJO_ACTIONS") {
        Forge::Gitea
    } else if is_true("GITHUB_ACTIONS") {
        Forge::Github
    } else {
        return Err("not running in GitHub Actions, Gitea/Forgejo Actions or GitLab CI".into());
    };
    let number = pr_number(&var).ok_or_else(|| {
        format!(
            "no pull request in this run (event {}): the comment is posted from pull_request workflows",
            var("GITHUB_EVENT_NAME").unwrap_or_else(|| "unknown".into())
        )
    })?;
    let repo = var("GITHUB_REPOSITORY").ok_or("GITHUB_REPOSITORY is not set")?;
    let api = match (forge, var("GITHUB_API_URL")) {
        (_, Some(api)) => api,
        (Forge::Github, None) => "https://api.github.com".into(),
        _ => {
            let server = var("GITHUB_SERVER_URL").ok_or("GITHUB_API_URL is not set")?;
            format!("{}/api/v1", server.trim_end_matches('/'))
        }
    };
    let names = [
        "KFP_CI_FORGE_TOKEN",
        "GITHUB_TOKEN",
        "GITEA_TOKEN",
        "FORGEJO_TOKEN",
    ];
    let found = names.iter().find_map(|n| var(n).map(|t| (*n, t)));
    let (auth, source) = match found {
        Some((n, t)) => {
            let scheme = if forge == Forge::Github {
                "Bearer"
            } else {
                "token"
            };
            (
                Some(("Authorization".to_string(), format!("{scheme} {t}"))),
                n,
            )
        }
        None => (None, "no token variable"),
    };
    Ok(PrContext {
        forge,
        api: api.trim_end_matches('/').to_string(),
        repo,
        number,
        auth,
        token_source: source.into(),
    })
}

/// The PR number: the event payload's `pull_request.number` (or `number`), else
/// `refs/pull/<n>/…` in `GITHUB_REF`.
fn pr_number(var: &dyn Fn(&str) -> Option<String>) -> Option<u64> {
    if let Some(path) = var("GITHUB_EVENT_PATH")
        && let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(event) = serde_json::from_str::<Value>(&text)
        && let Some(n) = event
            .pointer("/pull_request/number")
            .or_else(|| event.get("number"))
            .and_then(Value::as_u64)
    {
        return Some(n);
    }
    let r = var("GITHUB_REF")?;
    let rest = r.strip_prefix("refs/pull/")?;
    rest.split('/').next()?.parse().ok()
}

/// What [`post`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    Created(String),
    Updated(String),
}

impl PrContext {
    fn comments_url(&self) -> String {
        match self.forge {
            Forge::Gitlab => format!(
                "{}/projects/{}/merge_requests/{}/notes",
                self.api,
                urlencode(&self.repo),
                self.number
            ),
            _ => format!(
                "{}/repos/{}/issues/{}/comments",
                self.api, self.repo, self.number
            ),
        }
    }

    fn comment_url(&self, id: &str) -> String {
        match self.forge {
            Forge::Gitlab => format!("{}/{id}", self.comments_url()),
            _ => format!("{}/repos/{}/issues/comments/{id}", self.api, self.repo),
        }
    }

    pub fn describe(&self) -> String {
        match self.forge {
            Forge::Gitlab => format!("merge request !{} of project {}", self.number, self.repo),
            Forge::Github => format!("pull request #{} of {} (GitHub)", self.number, self.repo),
            Forge::Gitea => format!(
                "pull request #{} of {} (Gitea/Forgejo)",
                self.number, self.repo
            ),
        }
    }

    fn request(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        url: &str,
    ) -> reqwest::RequestBuilder {
        let mut req = http
            .request(method, url)
            .header("Accept", "application/json");
        if let Some((name, value)) = &self.auth {
            req = req.header(name.as_str(), value.as_str());
        }
        req
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Result<Value> {
        let response = req.send().await.map_err(|e| {
            let shown = e
                .url()
                .map(|u| crate::redact::display_url(u.as_str()))
                .unwrap_or_default();
            anyhow!(
                "{what} on {}: {}",
                self.describe(),
                crate::http::Transport::of(&e, &shown).chain
            )
        })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let hint = if matches!(status.as_u16(), 401 | 403 | 404) {
                format!(
                    "\nhint: the token ({}) needs permission to write comments on pull requests{}",
                    self.token_source,
                    if self.forge == Forge::Gitlab {
                        " (a job token cannot: set GITLAB_TOKEN to a project access token with the api scope)"
                    } else {
                        " (workflow `permissions: pull-requests: write`, and the token passed as GITHUB_TOKEN)"
                    }
                )
            } else {
                String::new()
            };
            bail!(
                "{what} on {}: HTTP {status}: {}{hint}",
                self.describe(),
                crate::redact::redact(crate::text::clip(&text, 300))
            );
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("{what}: the answer is not JSON"))
    }

    /// Create the sticky comment, or update the one holding [`MARKER`] in place.
    pub async fn post(&self, body: &str) -> Result<Posted> {
        if let Some((_, token)) = &self.auth {
            let secret = token.rsplit(' ').next().unwrap_or(token);
            crate::redact::register(secret);
        }
        let http = crate::http::client(crate::http::Options {
            timeout: Some(std::time::Duration::from_secs(30)),
            ..crate::http::Options::default()
        })?;
        let existing = self.find(&http).await?;
        let payload = serde_json::json!({ "body": body });
        match existing {
            Some(id) => {
                let method = match self.forge {
                    Forge::Gitlab => reqwest::Method::PUT,
                    _ => reqwest::Method::PATCH,
                };
                self.send(
                    self.request(&http, method, &self.comment_url(&id))
                        .json(&payload),
                    "updating the plan comment",
                )
                .await?;
                Ok(Posted::Updated(id))
            }
            None => {
                let created = self
                    .send(
                        self.request(&http, reqwest::Method::POST, &self.comments_url())
                            .json(&payload),
                        "posting the plan comment",
                    )
                    .await?;
                Ok(Posted::Created(id_of(&created).unwrap_or_default()))
            }
        }
    }

    /// The id of the comment holding the marker (every page; the oldest one when several).
    async fn find(&self, http: &reqwest::Client) -> Result<Option<String>> {
        for page in 1..=50 {
            let url = self.comments_url();
            let query: Vec<(&str, String)> = match self.forge {
                Forge::Gitea => vec![("limit", "50".into()), ("page", page.to_string())],
                _ => vec![("per_page", "100".into()), ("page", page.to_string())],
            };
            let list = self
                .send(
                    self.request(http, reqwest::Method::GET, &url).query(&query),
                    "listing the comments",
                )
                .await?;
            let Some(items) = list.as_array() else {
                bail!(
                    "listing the comments on {}: the answer is not a list",
                    self.describe()
                );
            };
            if let Some(found) = items.iter().find(|c| {
                c.get("body")
                    .and_then(Value::as_str)
                    .is_some_and(|b| b.contains(MARKER))
            }) {
                return Ok(id_of(found));
            }
            if items.is_empty() {
                break;
            }
        }
        Ok(None)
    }
}

fn id_of(v: &Value) -> Option<String> {
    match v.get("id")? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn contexts() {
        let gh = detect(&env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REF", "refs/pull/12/merge"),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_TOKEN", "t"),
        ]))
        .expect("github");
        assert_eq!(
            (gh.forge, gh.number, gh.api.as_str()),
            (Forge::Github, 12, "https://api.github.com")
        );
        assert_eq!(
            gh.comments_url(),
            "https://api.github.com/repos/o/r/issues/12/comments"
        );
        let gitea = detect(&env(&[
            ("GITEA_ACTIONS", "true"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REF", "refs/pull/3/head"),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_SERVER_URL", "https://git.example"),
        ]))
        .expect("gitea");
        assert_eq!(
            (gitea.forge, gitea.api.as_str()),
            (Forge::Gitea, "https://git.example/api/v1")
        );
        let gl = detect(&env(&[
            ("GITLAB_CI", "true"),
            ("CI_MERGE_REQUEST_IID", "7"),
            ("CI_API_V4_URL", "https://gl.example/api/v4"),
            ("CI_PROJECT_ID", "42"),
            ("CI_JOB_TOKEN", "j"),
        ]))
        .expect("gitlab");
        assert_eq!(
            gl.comment_url("9"),
            "https://gl.example/api/v4/projects/42/merge_requests/7/notes/9"
        );
        assert!(
            detect(&env(&[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_REF", "refs/heads/main")
            ]))
            .expect_err("push")
            .contains("no pull request")
        );
        assert!(detect(&env(&[])).is_err());
        assert!(
            detect(&env(&[("GITLAB_CI", "true")]))
                .expect_err("no mr")
                .contains("CI_MERGE_REQUEST_IID")
        );
    }
}
