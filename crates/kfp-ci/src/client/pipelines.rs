//! Client calls for pipelines and their versions: health, lookups, lists, creation, upload,
//! deletion. Each answer is checked for the ids kfp-ci relies on.

use kfp_api::compat::FillNames;
use kfp_api::routes::{Route, query, sort};
use kfp_api::wire::{
    Filter, Healthz, ListPipelineVersionsResponse, ListPipelinesResponse, Pipeline,
    PipelineVersion, limits,
};
use reqwest::Method;
use serde_json::Value;

use super::{ApiError, Body, Client, UploadMeta};
use crate::redact::redact;
use crate::text::truncate;

/// The largest page the server gives, as text for the query.
fn max_page() -> String {
    limits::MAX_PAGE_SIZE.to_string()
}

impl Client {
    fn check_versions(
        &self,
        route: Route<'_>,
        versions: &[PipelineVersion],
    ) -> Result<(), ApiError> {
        if versions.iter().any(|v| v.pipeline_version_id.is_empty()) {
            return Err(self.invalid("GET", route, "a listed version has no pipeline_version_id"));
        }
        Ok(())
    }

    /// One page of a pipeline's versions, checked.
    async fn versions_page(
        &self,
        pipeline_id: &str,
        query: &[(&str, &str)],
    ) -> Result<ListPipelineVersionsResponse, ApiError> {
        let route = Route::Versions(pipeline_id);
        let list: ListPipelineVersionsResponse = self.get(route, query).await?;
        self.check_versions(route, &list.pipeline_versions)?;
        Ok(list)
    }

    /// `GET /healthz`. KFP answers `commit_sha`, `tag_name` and `multi_user` (and, since 2.14,
    /// `pipeline_store`); an answer with none of them is not KFP's.
    pub async fn healthz(&self) -> Result<Healthz, ApiError> {
        let raw: Value = self.get(Route::Healthz, &[]).await?;
        let known = ["commit_sha", "tag_name", "multi_user"];
        if !raw
            .as_object()
            .is_some_and(|o| known.iter().any(|k| o.contains_key(*k)))
        {
            return Err(self.invalid(
                "GET",
                Route::Healthz,
                &format!(
                    "the health check answered {} without commit_sha, tag_name or multi_user",
                    truncate(&redact(&raw.to_string()), 100)
                ),
            ));
        }
        serde_json::from_value(raw).map_err(|e| {
            self.invalid(
                "GET",
                Route::Healthz,
                &format!("the health check answer does not parse ({e})"),
            )
        })
    }

    /// `GET /pipelines/names/{name}?namespace=`: `None` when absent (404).
    pub async fn pipeline_by_name(
        &self,
        name: &str,
        namespace: &str,
    ) -> Result<Option<Pipeline>, ApiError> {
        let route = Route::PipelineByName(name);
        match self
            .get::<Pipeline>(route, &[(query::NAMESPACE, namespace)])
            .await
        {
            Ok(p) if p.pipeline_id.is_empty() => Err(self.invalid(
                "GET",
                route,
                &format!("the pipeline {name} was answered without a pipeline_id"),
            )),
            Ok(p) => Ok(Some(p.fill_names())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The newest version of a pipeline (`sort_by=created_at desc`), and the other versions
    /// created in the same second (timestamps have second precision: any of them may be newest).
    pub async fn latest_versions(
        &self,
        pipeline_id: &str,
    ) -> Result<Option<(PipelineVersion, Vec<PipelineVersion>)>, ApiError> {
        let list = self
            .versions_page(
                pipeline_id,
                &[
                    (query::SORT_BY, sort::NEWEST_FIRST),
                    (query::PAGE_SIZE, "5"),
                ],
            )
            .await?;
        let mut versions = list.pipeline_versions.fill_names().into_iter();
        let Some(latest) = versions.next() else {
            return Ok(None);
        };
        let tied = versions
            .filter(|v| v.created_at.is_some() && v.created_at == latest.created_at)
            .collect();
        Ok(Some((latest, tied)))
    }

    /// The version of a pipeline with this exact name, if any.
    pub async fn version_by_name(
        &self,
        pipeline_id: &str,
        name: &str,
    ) -> Result<Option<PipelineVersion>, ApiError> {
        let filter = Filter::equals("name", name).to_query();
        let list = self
            .versions_page(
                pipeline_id,
                &[(query::FILTER, &filter), (query::PAGE_SIZE, &max_page())],
            )
            .await?;
        Ok(list
            .pipeline_versions
            .fill_names()
            .into_iter()
            .find(|v| v.name == name))
    }

    /// The pipelines named `name` that `GET /pipelines` lists in `namespace`: unlike get-by-name,
    /// the list filters on the exact namespace, `""` (shared) included.
    pub async fn pipelines_named(
        &self,
        name: &str,
        namespace: &str,
    ) -> Result<Vec<Pipeline>, ApiError> {
        let filter = Filter::equals("name", name).to_query();
        let list: ListPipelinesResponse = self
            .get(
                Route::Pipelines,
                &[
                    (query::NAMESPACE, namespace),
                    (query::FILTER, &filter),
                    (query::PAGE_SIZE, &max_page()),
                ],
            )
            .await?;
        if list.pipelines.iter().any(|p| p.pipeline_id.is_empty()) {
            return Err(self.invalid(
                "GET",
                Route::Pipelines,
                "a listed pipeline has no pipeline_id",
            ));
        }
        Ok(list.pipelines)
    }

    /// The newest versions of a pipeline (`sort_by=created_at desc`), at most `page_size`.
    pub async fn newest_versions(
        &self,
        pipeline_id: &str,
        page_size: usize,
    ) -> Result<Vec<PipelineVersion>, ApiError> {
        let size = page_size.to_string();
        let list = self
            .versions_page(
                pipeline_id,
                &[
                    (query::SORT_BY, sort::NEWEST_FIRST),
                    (query::PAGE_SIZE, &size),
                ],
            )
            .await?;
        Ok(list.pipeline_versions)
    }

    /// Every version of a pipeline, newest first.
    pub async fn all_versions(&self, pipeline_id: &str) -> Result<Vec<PipelineVersion>, ApiError> {
        let route = Route::Versions(pipeline_id);
        let mut out = Vec::new();
        let size = max_page();
        self.all_pages(
            route,
            &[
                (query::SORT_BY, sort::NEWEST_FIRST),
                (query::PAGE_SIZE, &size),
            ],
            |list: ListPipelineVersionsResponse| {
                self.check_versions(route, &list.pipeline_versions)?;
                out.extend(list.pipeline_versions.fill_names());
                Ok(list.next_page_token)
            },
        )
        .await?;
        Ok(out)
    }

    /// `POST /pipelines`: a pipeline without a version. Not retried (a 409 after a lost answer is
    /// handled by the caller's lookup).
    pub async fn create_pipeline(&self, pipeline: &Pipeline) -> Result<Pipeline, ApiError> {
        let mut pipeline = pipeline.clone();
        if !self.caps.separate_name {
            // Before 2.14 the gateway drops `name`: the display name is the identity.
            pipeline.display_name = pipeline.name.clone();
        }
        if !self.caps.tags {
            pipeline.tags.clear();
        }
        let created: Pipeline = self.post_json(Route::Pipelines, &pipeline).await?;
        if created.pipeline_id.is_empty() {
            return Err(self.invalid(
                "POST",
                Route::Pipelines,
                &format!(
                    "the pipeline {} was created without a pipeline_id in the answer",
                    pipeline.name
                ),
            ));
        }
        Ok(created.fill_names())
    }

    /// `DELETE /pipelines/{id}` without cascade: refused by the server unless the pipeline is empty.
    pub async fn delete_pipeline(&self, pipeline_id: &str) -> Result<(), ApiError> {
        self.call(Method::DELETE, Route::Pipeline(pipeline_id))
            .await
    }

    pub async fn delete_version(
        &self,
        pipeline_id: &str,
        version_id: &str,
    ) -> Result<(), ApiError> {
        self.call(Method::DELETE, Route::Version(pipeline_id, version_id))
            .await
    }

    /// `POST /pipelines/upload_version`, sent once (see the module docs).
    pub async fn upload_version(
        &self,
        pipeline_id: &str,
        meta: &UploadMeta,
        yaml: &str,
    ) -> Result<PipelineVersion, ApiError> {
        let url = self.url(Route::UploadVersion);
        // Only what this release reads (kfp_api::compat): older handlers ignore the rest.
        let tags = if meta.tags.is_empty() || !self.caps.tags {
            String::new()
        } else {
            serde_json::to_string(&meta.tags).unwrap_or_default()
        };
        let mut params = vec![
            (query::PIPELINE_ID, pipeline_id),
            (query::NAME, meta.name.as_str()),
            (query::DESCRIPTION, meta.description.as_str()),
        ];
        if self.caps.upload_display_name {
            params.push((query::DISPLAY_NAME, meta.display_name.as_str()));
        }
        if !tags.is_empty() {
            params.push((query::TAGS, tags.as_str()));
        }
        if self.caps.upload_code_source_url && !meta.code_source_url.is_empty() {
            params.push((query::CODE_SOURCE_URL, meta.code_source_url.as_str()));
        }
        let filename = format!("{}.yaml", meta.name);
        let bytes = self
            .send_once(
                &Method::POST,
                &url,
                &params,
                &Body::Upload {
                    filename: &filename,
                    yaml,
                },
                self.request_timeout,
            )
            .await?;
        let uploaded: PipelineVersion = Self::decode("POST", &url, &bytes)?;
        if uploaded.pipeline_version_id.is_empty() {
            return Err(self.invalid(
                "POST",
                Route::UploadVersion,
                &format!(
                    "version {} was uploaded without a pipeline_version_id in the answer",
                    meta.name
                ),
            ));
        }
        // Trust, but verify: the version must be there when asked for by its id.
        let listed: Result<PipelineVersion, ApiError> = self
            .get(
                Route::Version(pipeline_id, &uploaded.pipeline_version_id),
                &[],
            )
            .await;
        match listed {
            Ok(v) if v.pipeline_version_id == uploaded.pipeline_version_id => {
                Ok(uploaded.fill_names())
            }
            Ok(_) | Err(ApiError::Status { status: 404, .. }) | Err(ApiError::Decode { .. }) => {
                Err(self.invalid(
                    "POST",
                    Route::UploadVersion,
                    &format!(
                        "the upload of version {} answered id {}, but GET …/pipelines/{pipeline_id}/versions/{} does not return it",
                        meta.name,
                        uploaded.pipeline_version_id,
                        uploaded.pipeline_version_id
                    ),
                ))
            }
            Err(e) => Err(e),
        }
    }
}
