//! Client calls for experiments, runs and recurring runs (schedules and smoke runs).

use kfp_api::routes::{Route, query, sort, with_action};
use kfp_api::runs::{
    Experiment, ListExperimentsResponse, ListRecurringRunsResponse, RecurringRun, Run,
};
use kfp_api::wire::{Filter, limits};
use reqwest::Method;

use super::{ApiError, Client};

impl Client {
    /// The experiment with this display name in `namespace`, if any.
    pub async fn experiment_by_name(
        &self,
        name: &str,
        namespace: &str,
    ) -> Result<Option<Experiment>, ApiError> {
        let filter = Filter::equals("display_name", name).to_query();
        let size = limits::MAX_PAGE_SIZE.to_string();
        let mut params = vec![(query::FILTER, filter.as_str()), (query::PAGE_SIZE, &size)];
        if !namespace.is_empty() {
            params.push((query::NAMESPACE, namespace));
        }
        let list: ListExperimentsResponse = self.get(Route::Experiments, &params).await?;
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
        let experiment = Experiment {
            display_name: name.to_string(),
            namespace: namespace.to_string(),
            ..Default::default()
        };
        match self.post_json(Route::Experiments, &experiment).await {
            Ok(created) => Ok(created),
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
        let size = limits::MAX_PAGE_SIZE.to_string();
        let mut params = vec![
            (query::SORT_BY, sort::CREATED_AT),
            (query::PAGE_SIZE, &size),
        ];
        if !namespace.is_empty() {
            params.push((query::NAMESPACE, namespace));
        }
        let mut out = Vec::new();
        self.all_pages(
            Route::RecurringRuns,
            &params,
            |list: ListRecurringRunsResponse| {
                out.extend(list.recurring_runs);
                Ok(list.next_page_token)
            },
        )
        .await?;
        Ok(out)
    }

    /// `POST /recurringruns`. Not retried: a lost answer is found by the caller's next listing.
    pub async fn create_recurring_run(&self, rr: &RecurringRun) -> Result<RecurringRun, ApiError> {
        self.post_json(Route::RecurringRuns, rr).await
    }

    /// `DELETE /recurringruns/{id}`; already gone counts as done.
    pub async fn delete_recurring_run(&self, id: &str) -> Result<(), ApiError> {
        match self.call(Method::DELETE, Route::RecurringRun(id)).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// `POST /recurringruns/{id}:enable` or `:disable`.
    pub async fn set_recurring_run_enabled(&self, id: &str, enabled: bool) -> Result<(), ApiError> {
        let action = with_action(id, if enabled { "enable" } else { "disable" });
        self.call(Method::POST, Route::RecurringRun(&action)).await
    }

    /// `POST /runs`. Not retried: a second attempt could start a second run.
    pub async fn create_run(&self, run: &Run) -> Result<Run, ApiError> {
        self.post_json(Route::Runs, run).await
    }

    /// `GET /runs/{id}`.
    pub async fn get_run(&self, id: &str) -> Result<Run, ApiError> {
        self.get(Route::Run(id), &[]).await
    }
}
