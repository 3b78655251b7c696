//! The SQLite store: one table per resource, unique constraints where the real server has them,
//! one transaction per request. WAL and a busy timeout let two processes share one file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use kfp_api::wire::{Pipeline, PipelineVersion, Url};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::error::ApiError;
use crate::list::{Kind, ListParams};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pipelines (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    namespace    TEXT NOT NULL DEFAULT '',
    tags         TEXT NOT NULL DEFAULT '{}',
    UNIQUE (namespace, name)
);
CREATE TABLE IF NOT EXISTS pipeline_versions (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    pipeline_id     TEXT NOT NULL REFERENCES pipelines (id),
    name            TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    package_url     TEXT NOT NULL DEFAULT '',
    code_source_url TEXT NOT NULL DEFAULT '',
    spec            TEXT NOT NULL,
    tags            TEXT NOT NULL DEFAULT '{}',
    UNIQUE (pipeline_id, name)
);
CREATE INDEX IF NOT EXISTS pipeline_versions_by_pipeline ON pipeline_versions (pipeline_id, seq);
";

/// A new pipeline row.
#[derive(Debug, Clone, Default)]
pub struct NewPipeline {
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub namespace: String,
    pub tags: BTreeMap<String, String>,
}

/// A new version row; `spec` is the stored JSON text.
#[derive(Debug, Clone, Default)]
pub struct NewVersion {
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub code_source_url: String,
    pub spec: String,
    pub tags: BTreeMap<String, String>,
}

pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Store {
    /// Open (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let fresh = !dir.exists();
            fs_err::create_dir_all(dir).with_context(|| {
                format!(
                    "cannot create the directory of database {}\nhint: the database needs a writable directory (`kfp-ci serve --db PATH` picks another file)",
                    path.display()
                )
            })?;
            // The default `.kfp-ci/` directory holds local state only: keep it out of git.
            if fresh && dir.file_name().is_some_and(|n| n == ".kfp-ci") {
                let _ = fs_err::write(dir.join(".gitignore"), "*\n");
            }
        }
        let conn = Connection::open(path).with_context(|| {
            format!(
                "cannot open database {}\nhint: the database needs a writable directory (`kfp-ci serve --db PATH` picks another file)",
                path.display()
            )
        })?;
        Self::init(conn, path)
            .with_context(|| format!("cannot initialise database {}\nhint: --db takes a kfp-ci serve database (SQLite) or a new file path", path.display()))
    }

    fn init(conn: Connection, path: &Path) -> anyhow::Result<Store> {
        conn.busy_timeout(Duration::from_secs(10))?;
        // WAL: readers never block the writer, and a second process can share the file.
        // synchronous=NORMAL in WAL mode survives a killed process (not a power cut).
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        tracing::debug!(journal_mode = %mode, "opened {}", path.display());
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            anyhow::bail!(
                "the database was written by a newer kfp-ci (schema {version}, this one knows {SCHEMA_VERSION}); upgrade kfp-ci or use another --db"
            );
        }
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {SCHEMA} {} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;",
            crate::runs::store::SCHEMA
        ))?;
        Ok(Store {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (the transaction rolls back).
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` in one write transaction (IMMEDIATE: takes the write lock up front, so two
    /// processes never deadlock upgrading a read lock).
    pub fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Run `f` in one read transaction (a consistent snapshot for count + page).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

fn now() -> i64 {
    crate::clock::now()
}

fn timestamp(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn tags_from(text: &str) -> BTreeMap<String, String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn tags_text(tags: &BTreeMap<String, String>) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "{}".into())
}

const PIPELINE_COLS: &str = "seq, id, name, display_name, description, created_at, namespace, tags";
const VERSION_COLS: &str = "seq, id, pipeline_id, name, display_name, description, created_at, package_url, code_source_url, spec, tags";

fn pipeline_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Pipeline> {
    Ok(Pipeline {
        pipeline_id: r.get(1)?,
        name: r.get(2)?,
        display_name: r.get(3)?,
        description: r.get(4)?,
        created_at: Some(timestamp(r.get(5)?)),
        namespace: r.get(6)?,
        tags: tags_from(&r.get::<_, String>(7)?),
        error: None,
    })
}

fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PipelineVersion> {
    let package_url: String = r.get(7)?;
    let spec: String = r.get(9)?;
    Ok(PipelineVersion {
        pipeline_version_id: r.get(1)?,
        pipeline_id: r.get(2)?,
        name: r.get(3)?,
        display_name: r.get(4)?,
        description: r.get(5)?,
        created_at: Some(timestamp(r.get(6)?)),
        package_url: (!package_url.is_empty()).then_some(Url {
            pipeline_url: package_url,
        }),
        // Echoed only by releases after 2.17.0 (see `emulate::version`).
        code_source_url: r.get(8)?,
        pipeline_spec: serde_json::from_str(&spec).ok(),
        tags: tags_from(&r.get::<_, String>(10)?),
        error: None,
    })
}

/// Insert a pipeline; 409 when the name is taken in its namespace.
pub fn insert_pipeline(tx: &Transaction<'_>, p: &NewPipeline) -> Result<Pipeline, ApiError> {
    let id = uuid::Uuid::new_v4().to_string();
    let created = now();
    let result = tx.execute(
        "INSERT INTO pipelines (id, name, display_name, description, created_at, namespace, tags)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            id,
            p.name,
            p.display_name,
            p.description,
            created,
            p.namespace,
            tags_text(&p.tags)
        ],
    );
    match result {
        Ok(_) => {}
        Err(e) if is_constraint(&e) => {
            let ns = if p.namespace.is_empty() {
                String::new()
            } else {
                format!(" in namespace {:?}", p.namespace)
            };
            return Err(ApiError::already_exists(format!(
                "Failed to create a pipeline: Already exist error: a pipeline named {:?} already exists{ns}: upload a new version to it (upload_version) or pick another name",
                p.name
            )));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Pipeline {
        pipeline_id: id,
        name: p.name.clone(),
        display_name: p.display_name.clone(),
        description: p.description.clone(),
        created_at: Some(timestamp(created)),
        namespace: p.namespace.clone(),
        tags: p.tags.clone(),
        error: None,
    })
}

/// Insert a version of an existing pipeline; 409 when the name is taken in that pipeline.
pub fn insert_version(
    tx: &Transaction<'_>,
    pipeline_id: &str,
    v: &NewVersion,
) -> Result<PipelineVersion, ApiError> {
    let id = uuid::Uuid::new_v4().to_string();
    let created = now();
    let result = tx.execute(
        "INSERT INTO pipeline_versions
             (id, pipeline_id, name, display_name, description, created_at, code_source_url, spec, tags)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            id,
            pipeline_id,
            v.name,
            v.display_name,
            v.description,
            created,
            v.code_source_url,
            v.spec,
            tags_text(&v.tags)
        ],
    );
    match result {
        Ok(_) => {}
        Err(e) if is_constraint(&e) => {
            return Err(ApiError::already_exists(format!(
                "Failed to create a pipeline version: Already exist error: pipeline {pipeline_id} already has a version named {:?}: pick another version name",
                v.name
            )));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(PipelineVersion {
        pipeline_id: pipeline_id.to_string(),
        pipeline_version_id: id,
        name: v.name.clone(),
        display_name: v.display_name.clone(),
        description: v.description.clone(),
        created_at: Some(timestamp(created)),
        package_url: None,
        code_source_url: v.code_source_url.clone(),
        pipeline_spec: serde_json::from_str(&v.spec).ok(),
        tags: v.tags.clone(),
        error: None,
    })
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
}

pub fn get_pipeline(tx: &Transaction<'_>, id: &str) -> Result<Option<Pipeline>, ApiError> {
    Ok(tx
        .query_row(
            &format!("SELECT {PIPELINE_COLS} FROM pipelines WHERE id = ?1"),
            [id],
            pipeline_row,
        )
        .optional()?)
}

/// By name; `namespace: None` (multi-user lookup without one) takes the newest in any namespace.
pub fn get_pipeline_by_name(
    tx: &Transaction<'_>,
    name: &str,
    namespace: Option<&str>,
) -> Result<Option<Pipeline>, ApiError> {
    let row = match namespace {
        Some(ns) => tx
            .query_row(
                &format!("SELECT {PIPELINE_COLS} FROM pipelines WHERE name = ?1 AND namespace = ?2"),
                [name, ns],
                pipeline_row,
            )
            .optional()?,
        None => tx
            .query_row(
                &format!(
                    "SELECT {PIPELINE_COLS} FROM pipelines WHERE name = ?1 ORDER BY created_at DESC, seq DESC LIMIT 1"
                ),
                [name],
                pipeline_row,
            )
            .optional()?,
    };
    Ok(row)
}

/// Kubernetes store: is the custom resource name `resource` taken by a version in `namespace`?
/// `composite`: resources are named `{pipeline}-{version}` (2.17), else by the bare version name.
pub fn version_resource_taken(
    tx: &Transaction<'_>,
    namespace: &str,
    resource: &str,
    composite: bool,
) -> Result<bool, ApiError> {
    let n: i64 = tx.query_row(
        "SELECT COUNT(*) FROM pipeline_versions v JOIN pipelines p ON p.id = v.pipeline_id
         WHERE p.namespace = ?1
           AND (CASE WHEN ?2 AND p.name <> v.name THEN p.name || '-' || v.name ELSE v.name END) = ?3",
        params![namespace, composite, resource],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

pub fn count_versions(tx: &Transaction<'_>, pipeline_id: &str) -> Result<i64, ApiError> {
    Ok(tx.query_row(
        "SELECT COUNT(*) FROM pipeline_versions WHERE pipeline_id = ?1",
        [pipeline_id],
        |r| r.get(0),
    )?)
}

pub fn delete_pipeline(tx: &Transaction<'_>, id: &str) -> Result<(), ApiError> {
    tx.execute("DELETE FROM pipeline_versions WHERE pipeline_id = ?1", [id])?;
    tx.execute("DELETE FROM pipelines WHERE id = ?1", [id])?;
    Ok(())
}

pub fn update_pipeline(
    tx: &Transaction<'_>,
    id: &str,
    display_name: Option<&str>,
    tags: Option<&BTreeMap<String, String>>,
) -> Result<(), ApiError> {
    if let Some(d) = display_name {
        tx.execute(
            "UPDATE pipelines SET display_name = ?1 WHERE id = ?2",
            [d, id],
        )?;
    }
    if let Some(t) = tags {
        tx.execute(
            "UPDATE pipelines SET tags = ?1 WHERE id = ?2",
            [tags_text(t).as_str(), id],
        )?;
    }
    Ok(())
}

pub fn get_version(
    tx: &Transaction<'_>,
    pipeline_id: &str,
    version_id: &str,
) -> Result<Option<PipelineVersion>, ApiError> {
    Ok(tx
        .query_row(
            &format!(
                "SELECT {VERSION_COLS} FROM pipeline_versions WHERE id = ?1 AND pipeline_id = ?2"
            ),
            [version_id, pipeline_id],
            version_row,
        )
        .optional()?)
}

/// The version of a pipeline with this exact name.
pub fn get_version_by_name(
    tx: &Transaction<'_>,
    pipeline_id: &str,
    name: &str,
) -> Result<Option<PipelineVersion>, ApiError> {
    Ok(tx
        .query_row(
            &format!(
                "SELECT {VERSION_COLS} FROM pipeline_versions WHERE pipeline_id = ?1 AND name = ?2"
            ),
            [pipeline_id, name],
            version_row,
        )
        .optional()?)
}

pub fn delete_version(tx: &Transaction<'_>, version_id: &str) -> Result<(), ApiError> {
    tx.execute("DELETE FROM pipeline_versions WHERE id = ?1", [version_id])?;
    Ok(())
}

pub fn update_version(
    tx: &Transaction<'_>,
    version_id: &str,
    display_name: Option<&str>,
    tags: Option<&BTreeMap<String, String>>,
) -> Result<(), ApiError> {
    if let Some(d) = display_name {
        tx.execute(
            "UPDATE pipeline_versions SET display_name = ?1 WHERE id = ?2",
            [d, version_id],
        )?;
    }
    if let Some(t) = tags {
        tx.execute(
            "UPDATE pipeline_versions SET tags = ?1 WHERE id = ?2",
            [tags_text(t).as_str(), version_id],
        )?;
    }
    Ok(())
}

/// One page of a list, with the total count and the token of the next page.
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub next_token: String,
}

/// List pipelines; `namespace: None` lists every namespace (the web page).
pub fn list_pipelines(
    tx: &Transaction<'_>,
    namespace: Option<&str>,
    p: &ListParams,
) -> Result<Page<Pipeline>, ApiError> {
    let scope = namespace.map(|ns| ("namespace = ?".to_string(), Sql::Text(ns.to_string())));
    list(
        tx,
        Kind::Pipelines,
        "pipelines",
        PIPELINE_COLS,
        scope,
        p,
        pipeline_row,
    )
}

pub fn list_versions(
    tx: &Transaction<'_>,
    pipeline_id: &str,
    p: &ListParams,
) -> Result<Page<PipelineVersion>, ApiError> {
    let scope = Some((
        "pipeline_id = ?".to_string(),
        Sql::Text(pipeline_id.to_string()),
    ));
    list(
        tx,
        Kind::Versions,
        "pipeline_versions",
        VERSION_COLS,
        scope,
        p,
        version_row,
    )
}

pub(crate) fn list<T>(
    tx: &Transaction<'_>,
    kind: Kind,
    table: &str,
    cols: &str,
    scope: Option<(String, Sql)>,
    p: &ListParams,
    row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Page<T>, ApiError> {
    let mut conds: Vec<String> = Vec::new();
    let mut params: Vec<Sql> = Vec::new();
    if let Some((sql, value)) = scope {
        conds.push(sql);
        params.push(value);
    }
    conds.extend(p.where_sql.iter().cloned());
    params.extend(p.params.iter().cloned());
    let where_all = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    let total: i64 = tx.query_row(
        &format!("SELECT COUNT(*) FROM {table} {where_all}"),
        rusqlite::params_from_iter(params.iter()),
        |r| r.get(0),
    )?;
    if let Some((sql, mut values)) = p.after_sql() {
        conds.push(sql);
        params.append(&mut values);
    }
    let where_page = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    let sql = format!(
        "SELECT {cols}, {sort} FROM {table} {where_page} {order} LIMIT {limit}",
        sort = p.sort.column,
        order = p.order_sql(),
        limit = p.page_size + 1,
    );
    let sort_index = cols.split(',').count();
    let mut stmt = tx.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
    let mut items = Vec::new();
    let mut last: Option<(Sql, i64)> = None;
    let mut more = false;
    while let Some(r) = rows.next()? {
        if items.len() as i64 == p.page_size {
            more = true;
            break;
        }
        items.push(row(r)?);
        last = Some((r.get::<_, Sql>(sort_index)?, r.get(0)?));
    }
    let next_token = match (more, last) {
        (true, Some((value, seq))) => p.next_token(kind, &value, seq),
        _ => String::new(),
    };
    Ok(Page {
        items,
        total,
        next_token,
    })
}
