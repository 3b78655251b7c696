//! Client calls for experiments, runs and recurring runs (schedules and smoke runs).

use kfp_api::runs::{
    Experiment, ListExperimentsResponse, ListRecurringRunsResponse, RecurringRun, Run,
};
use reqwest::Method;
use serde_json::Value;

use super::{ApiError, Body, Client};

impl Client {
    /// The experiment with this display name in `namespace`, if any.
    pub async fn experiment_by_name(
        &self,
        name: &str,
        namespace: &str,
    ) -> Result<Option<Experiment>, ApiError> {
        let filter = serde_json::json!({
            "predicates": [{"operation": "EQUALS", "key": "display_name", "string_value": name}]
        })
        .to_string();
        let mut query = vec![("filter", filter.as_str()), ("page_size", "200")];
        if !namespace.is_empty() {
            query.push(("namespace", namespace));
        }
        let list: ListExperimentsResponse = self.get(&["experiments"], &query).await?;
        Ok(list
            .experiments
            .into_iter()
            .find(|e| e.display_name == name))
    }

    /// The experiment named `name`, created when missing (a 409 from a concurrent creation is
    /// answered by looking it up again).
    pub async fn ensure_experiment(
        &self,
        name: &str,
        namespace: &str,
    ) -> Result<Experiment, ApiError> {
        if let Some(e) = self.experiment_by_name(name, namespace).await? {
            return Ok(e);
        }
        let url = self.url(&["experiments"]);
        let body = serde_json::to_value(Experiment {
            display_name: name.to_string(),
            namespace: namespace.to_string(),
            ..Default::default()
        })
        .unwrap_or(Value::Null);
        match self
            .send_once(
                &Method::POST,
                &url,
                &[],
                &Body::Json(&body),
                self.request_timeout,
            )
            .await
        {
            Ok(bytes) => Self::decode("POST", &url, &bytes),
            Err(e) if e.is_conflict() || e.is_retryable() => {
                match self.experiment_by_name(name, namespace).await? {
                    Some(found) => Ok(found),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Every recurring run in `namespace` (every page).
    pub async fn all_recurring_runs(&self, namespace: &str) -> Result<Vec<RecurringRun>, ApiError> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let mut query = vec![("sort_by", "created_at"), ("page_size", "200")];
            if !namespace.is_empty() {
                query.push(("namespace", namespace));
            }
            if !token.is_empty() {
                query.push(("page_token", token.as_str()));
            }
            let list: ListRecurringRunsResponse = self.get(&["recurringruns"], &query).await?;
            out.extend(list.recurring_runs);
            if list.next_page_token.is_empty() {
                return Ok(out);
            }
            token = list.next_page_token;
        }
    }

    /// `POST /recurringruns`. Not retried: a lost answer is found by the caller's next listing.
    pub async fn create_recurring_run(&self, rr: &RecurringRun) -> Result<RecurringRun, ApiError> {
        let url = self.url(&["recurringruns"]);
        let body = serde_json::to_value(rr).unwrap_or(Value::Null);
        let bytes = self
            .send_once(
                &Method::POST,
                &url,
                &[],
                &Body::Json(&body),
                self.request_timeout,
            )
            .await?;
        Self::decode("POST", &url, &bytes)
    }

    /// `DELETE /recurringruns/{id}`; already gone counts as done.
    pub async fn delete_recurring_run(&self, id: &str) -> Result<(), ApiError> {
        let url = self.url(&["recurringruns", id]);
        match self
            .send_retrying(Method::DELETE, url, &[], Body::None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `POST /recurringruns/{id}:enable` or `:disable`.
    pub async fn set_recurring_run_enabled(&self, id: &str, enabled: bool) -> Result<(), ApiError> {
        let action = format!("{id}:{}", if enabled { "enable" } else { "disable" });
        let url = self.url(&["recurringruns", &action]);
        self.send_retrying(Method::POST, url, &[], Body::None)
            .await
            .map(|_| ())
    }

    /// `POST /runs`. Not retried: a second attempt could start a second run.
    pub async fn create_run(&self, run: &Run) -> Result<Run, ApiError> {
        let url = self.url(&["runs"]);
        let body = serde_json::to_value(run).unwrap_or(Value::Null);
        let bytes = self
            .send_once(
                &Method::POST,
                &url,
                &[],
                &Body::Json(&body),
                self.request_timeout,
            )
            .await?;
        Self::decode("POST", &url, &bytes)
    }

    /// `GET /runs/{id}`.
    pub async fn get_run(&self, id: &str) -> Result<Run, ApiError> {
        self.get(&["runs", id], &[]).await
    }
}
