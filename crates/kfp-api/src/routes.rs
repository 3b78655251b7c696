//! The REST API v2beta1 paths and query parameter names, spelled once: the client in `kfp-ci`
//! builds its URLs from [`Route`], the local server in `kfp-serve` its router from
//! [`Route::template`], and both read and write the query names in [`query`].

/// Every API path starts here.
pub const PREFIX: &str = "/apis/v2beta1";

/// One API path. Ids are path segments (the client percent-encodes them); a recurring run's
/// `:enable` / `:disable` action is part of its last segment, as the gateway matches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    Healthz,
    /// `GET` lists, `POST` creates a pipeline without a version.
    Pipelines,
    /// `POST` a pipeline and its first version in one call.
    PipelineCreate,
    /// `GET` by name (`?namespace=`).
    PipelineByName(&'a str),
    Pipeline(&'a str),
    /// Multipart uploads (hand-written handlers, query parameters in [`query`]).
    Upload,
    UploadVersion,
    Versions(&'a str),
    Version(&'a str, &'a str),
    Experiments,
    /// An experiment, or `{id}:archive` / `{id}:unarchive`.
    Experiment(&'a str),
    Runs,
    /// A run, or `{id}:terminate` and the other actions.
    Run(&'a str),
    RecurringRuns,
    /// A recurring run, or `{id}:enable` / `{id}:disable`.
    RecurringRun(&'a str),
}

impl<'a> Route<'a> {
    /// The path segments below [`PREFIX`].
    pub fn segments(&self) -> Vec<&'a str> {
        match *self {
            Route::Healthz => vec!["healthz"],
            Route::Pipelines => vec!["pipelines"],
            Route::PipelineCreate => vec!["pipelines", "create"],
            Route::PipelineByName(name) => vec!["pipelines", "names", name],
            Route::Pipeline(id) => vec!["pipelines", id],
            Route::Upload => vec!["pipelines", "upload"],
            Route::UploadVersion => vec!["pipelines", "upload_version"],
            Route::Versions(pipeline) => vec!["pipelines", pipeline, "versions"],
            Route::Version(pipeline, version) => {
                vec!["pipelines", pipeline, "versions", version]
            }
            Route::Experiments => vec!["experiments"],
            Route::Experiment(id) => vec!["experiments", id],
            Route::Runs => vec!["runs"],
            Route::Run(id) => vec!["runs", id],
            Route::RecurringRuns => vec!["recurringruns"],
            Route::RecurringRun(id) => vec!["recurringruns", id],
        }
    }

    /// The path as written, segments joined as they are (no encoding): with `{name}` parameters
    /// this is the server router's pattern.
    pub fn template(&self) -> String {
        let mut out = PREFIX.to_string();
        for s in self.segments() {
            out.push('/');
            out.push_str(s);
        }
        out
    }

    /// One route of each kind, ids filled with `{…}` parameters as the server router names
    /// them (the item routes of runs take `{rest}`: an id, or an id with its `:action`).
    pub fn patterns() -> [Route<'static>; 15] {
        [
            Route::Healthz,
            Route::Pipelines,
            Route::PipelineCreate,
            Route::PipelineByName("{name}"),
            Route::Pipeline("{pipeline_id}"),
            Route::Upload,
            Route::UploadVersion,
            Route::Versions("{pipeline_id}"),
            Route::Version("{pipeline_id}", "{pipeline_version_id}"),
            Route::Experiments,
            Route::Experiment("{rest}"),
            Route::Runs,
            Route::Run("{rest}"),
            Route::RecurringRuns,
            Route::RecurringRun("{rest}"),
        ]
    }
}

/// `{id}:{action}`, the last segment of an action route (`:enable`, `:disable`, `:archive`…).
pub fn with_action(id: &str, action: &str) -> String {
    format!("{id}:{action}")
}

/// `{id}` or `{id}:{action}`, split (the server's item routes match both).
pub fn split_action(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once(':') {
        Some((id, action)) => (id, Some(action)),
        None => (rest, None),
    }
}

/// Query parameter names.
pub mod query {
    /// Lists: the page size, at most [`crate::wire::limits::MAX_PAGE_SIZE`].
    pub const PAGE_SIZE: &str = "page_size";
    pub const PAGE_TOKEN: &str = "page_token";
    /// `field` or `field desc`.
    pub const SORT_BY: &str = "sort_by";
    /// URL-encoded JSON of a [`crate::wire::Filter`].
    pub const FILTER: &str = "filter";
    pub const NAMESPACE: &str = "namespace";
    pub const EXPERIMENT_ID: &str = "experiment_id";
    /// Uploads: the pipeline a version belongs to (one word, as the handler reads it).
    pub const PIPELINE_ID: &str = "pipelineid";
    pub const NAME: &str = "name";
    pub const DISPLAY_NAME: &str = "display_name";
    pub const DESCRIPTION: &str = "description";
    /// Uploads: the tags as a JSON object.
    pub const TAGS: &str = "tags";
    pub const CODE_SOURCE_URL: &str = "code_source_url";
    /// Uploads: the multipart field of the file.
    pub const UPLOAD_FILE: &str = "uploadfile";
}

/// `sort_by` values kfp-ci sends.
pub mod sort {
    pub const CREATED_AT: &str = "created_at";
    pub const NEWEST_FIRST: &str = "created_at desc";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_the_router_patterns() {
        assert_eq!(Route::Healthz.template(), "/apis/v2beta1/healthz");
        assert_eq!(
            Route::Version("{pipeline_id}", "{pipeline_version_id}").template(),
            "/apis/v2beta1/pipelines/{pipeline_id}/versions/{pipeline_version_id}"
        );
        assert_eq!(
            Route::RecurringRun(&with_action("j1", "enable")).segments(),
            ["recurringruns", "j1:enable"]
        );
        assert_eq!(split_action("j1:enable"), ("j1", Some("enable")));
        assert_eq!(split_action("j1"), ("j1", None));
        // Exhaustive on purpose: a new route does not compile here until `patterns` lists it
        // (kfp-serve's test checks that every pattern is served).
        fn index(r: &Route<'_>) -> usize {
            match r {
                Route::Healthz => 0,
                Route::Pipelines => 1,
                Route::PipelineCreate => 2,
                Route::PipelineByName(_) => 3,
                Route::Pipeline(_) => 4,
                Route::Upload => 5,
                Route::UploadVersion => 6,
                Route::Versions(_) => 7,
                Route::Version(..) => 8,
                Route::Experiments => 9,
                Route::Experiment(_) => 10,
                Route::Runs => 11,
                Route::Run(_) => 12,
                Route::RecurringRuns => 13,
                Route::RecurringRun(_) => 14,
            }
        }
        let indices: Vec<usize> = Route::patterns().iter().map(index).collect();
        assert_eq!(indices, (0..15).collect::<Vec<_>>());
        let patterns: std::collections::BTreeSet<String> =
            Route::patterns().iter().map(Route::template).collect();
        assert_eq!(patterns.len(), Route::patterns().len(), "one pattern each");
    }
}
