//! List options as the real server reads them: `page_size`, `page_token`, `sort_by` and `filter`,
//! turned into SQL over one table.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kfp_api::wire::{Filter, Predicate, limits};
use rusqlite::types::Value as Sql;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;

/// Which table a list reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pipelines,
    Versions,
    Experiments,
    Runs,
    RecurringRuns,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Pipelines => "p",
            Kind::Versions => "v",
            Kind::Experiments => "e",
            Kind::Runs => "r",
            Kind::RecurringRuns => "j",
        }
    }

    /// API field name → SQL column (sort keys and filter keys).
    fn column(self, key: &str) -> Option<&'static str> {
        if let Some(col) = crate::runs::store::column(self, key) {
            return Some(col);
        }
        if matches!(self, Kind::Experiments | Kind::Runs | Kind::RecurringRuns) {
            return None;
        }
        let common = match key {
            "name" => Some("name"),
            "display_name" => Some("display_name"),
            "created_at" => Some("created_at"),
            "description" => Some("description"),
            _ => None,
        };
        if common.is_some() {
            return common;
        }
        match (self, key) {
            (Kind::Pipelines, "pipeline_id" | "id") => Some("id"),
            (Kind::Pipelines, "namespace") => Some("namespace"),
            (Kind::Versions, "pipeline_version_id" | "id") => Some("id"),
            (Kind::Versions, "pipeline_id") => Some("pipeline_id"),
            (Kind::Versions, "pipeline_spec") => Some("spec"),
            // Versions have no status in this store: every row sorts equal (then by creation).
            (Kind::Versions, "status") => Some("''"),
            _ => None,
        }
    }

    fn keys(self) -> &'static str {
        match self {
            Kind::Pipelines => {
                "pipeline_id, id, name, display_name, created_at, description, namespace"
            }
            Kind::Versions => {
                "pipeline_version_id, id, name, display_name, created_at, description, pipeline_id, status, pipeline_spec"
            }
            other => crate::runs::store::keys(other),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sort {
    pub column: &'static str,
    pub desc: bool,
    /// Normalised `field [desc]`, kept in page tokens.
    pub key: String,
}

/// Parsed list options, ready for [`ListParams::where_sql`].
#[derive(Debug, Clone)]
pub struct ListParams {
    pub page_size: i64,
    pub sort: Sort,
    pub where_sql: Vec<String>,
    pub params: Vec<Sql>,
    /// Canonical filter text, kept in page tokens.
    pub filter_key: String,
    /// Keyset position after the previous page: (sort value, seq).
    pub after: Option<(Sql, i64)>,
    /// The list's scope (namespace or pipeline id), kept in page tokens.
    pub scope: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Token {
    k: String,
    s: String,
    f: String,
    c: String,
    v: Value,
    q: i64,
}

/// Parse the list query parameters of the real server.
pub fn parse(
    kind: Kind,
    scope: &str,
    page_size: Option<&str>,
    page_token: Option<&str>,
    sort_by: Option<&str>,
    filter: Option<&str>,
) -> Result<ListParams, ApiError> {
    let page_size = match page_size.map(str::trim).filter(|s| !s.is_empty()) {
        None => i64::from(limits::DEFAULT_PAGE_SIZE),
        Some(text) => {
            let n: i32 = text.parse().map_err(|_| {
                ApiError::invalid(format!(
                    "parsing field \"page_size\": {text:?} is not a 32-bit integer"
                ))
            })?;
            if n < 0 {
                return Err(ApiError::invalid(format!(
                    "Invalid input error: the page size should be greater than or equal to 0, got {n}"
                )));
            }
            if n == 0 {
                i64::from(limits::DEFAULT_PAGE_SIZE)
            } else {
                i64::from(n.min(limits::MAX_PAGE_SIZE))
            }
        }
    };
    let sort_given = sort_by.filter(|s| !s.trim().is_empty());
    let filter_given = filter.filter(|s| !s.trim().is_empty());
    let mut sort = parse_sort(kind, sort_given.unwrap_or("created_at"))?;
    let mut filter_parsed = match filter_given {
        Some(text) => Some(parse_filter(text)?),
        None => None,
    };
    let mut after = None;
    if let Some(token) = page_token.filter(|t| !t.is_empty()) {
        let token = decode_token(token)?;
        if token.k != kind.tag() || token.c != scope {
            return Err(ApiError::invalid(
                "Invalid input error: the page token was generated for another list",
            ));
        }
        if sort_given.is_some() && sort.key != token.s {
            return Err(ApiError::invalid(format!(
                "Invalid input error: the page token was generated with sort_by {:?}, not {:?}",
                token.s, sort.key
            )));
        }
        let token_filter = if token.f.is_empty() {
            None
        } else {
            Some(parse_filter_json(&token.f)?)
        };
        if filter_given.is_some() && filter_key(filter_parsed.as_ref()) != token.f {
            return Err(ApiError::invalid(
                "Invalid input error: the page token was generated with a different filter",
            ));
        }
        sort = parse_sort(kind, &token.s)?;
        filter_parsed = token_filter;
        after = Some((json_to_sql(&token.v), token.q));
    }
    let mut where_sql = Vec::new();
    let mut params = Vec::new();
    if let Some(filter) = &filter_parsed {
        for predicate in &filter.predicates {
            let (sql, mut values) = predicate_sql(kind, predicate)?;
            where_sql.push(sql);
            params.append(&mut values);
        }
    }
    Ok(ListParams {
        page_size,
        sort,
        where_sql,
        params,
        filter_key: filter_key(filter_parsed.as_ref()),
        after,
        scope: scope.to_string(),
    })
}

impl ListParams {
    /// The page token that continues after a row with this sort value and seq.
    pub fn next_token(&self, kind: Kind, value: &Sql, seq: i64) -> String {
        let token = Token {
            k: kind.tag().to_string(),
            s: self.sort.key.clone(),
            f: self.filter_key.clone(),
            c: self.scope.clone(),
            v: sql_to_json(value),
            q: seq,
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
    }

    /// `ORDER BY` clause.
    pub fn order_sql(&self) -> String {
        let dir = if self.sort.desc { "DESC" } else { "ASC" };
        format!("ORDER BY {} {dir}, seq {dir}", self.sort.column)
    }

    /// The keyset condition for the page after `after`, with its parameters.
    pub fn after_sql(&self) -> Option<(String, Vec<Sql>)> {
        let (value, seq) = self.after.as_ref()?;
        let op = if self.sort.desc { "<" } else { ">" };
        let col = self.sort.column;
        Some((
            format!("({col} {op} ? OR ({col} = ? AND seq {op} ?))"),
            vec![value.clone(), value.clone(), Sql::Integer(*seq)],
        ))
    }
}

fn filter_key(filter: Option<&Filter>) -> String {
    match filter {
        Some(f) if !f.predicates.is_empty() => serde_json::to_string(f).unwrap_or_default(),
        _ => String::new(),
    }
}

fn decode_token(token: &str) -> Result<Token, ApiError> {
    let bad = || {
        ApiError::invalid(format!(
            "Invalid input error: invalid page token {token:?}: use the next_page_token of a previous response"
        ))
    };
    let bytes = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

fn parse_sort(kind: Kind, text: &str) -> Result<Sort, ApiError> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let (field, desc) = match parts.as_slice() {
        [field] => (*field, false),
        [field, dir] if dir.eq_ignore_ascii_case("asc") => (*field, false),
        [field, dir] if dir.eq_ignore_ascii_case("desc") => (*field, true),
        _ => {
            return Err(ApiError::invalid(format!(
                "Invalid input error: invalid sort_by {text:?}: expected \"field\", \"field asc\" or \"field desc\""
            )));
        }
    };
    let column = kind.column(field).ok_or_else(|| {
        ApiError::invalid(format!(
            "Invalid input error: invalid sorting field {field:?}: use one of {}",
            kind.keys()
        ))
    })?;
    Ok(Sort {
        column,
        desc,
        key: if desc {
            format!("{field} desc")
        } else {
            field.to_string()
        },
    })
}

/// The real server URL-decodes the filter a second time (after the query string itself).
fn parse_filter(text: &str) -> Result<Filter, ApiError> {
    let decoded = query_unescape(text).ok_or_else(|| {
        ApiError::invalid(format!(
            "Invalid input error: failed to URL-decode the filter {text:?}"
        ))
    })?;
    parse_filter_json(&decoded)
}

fn parse_filter_json(text: &str) -> Result<Filter, ApiError> {
    serde_json::from_str(text).map_err(|e| {
        ApiError::invalid(format!(
            "Invalid input error: failed to parse the filter {text:?} as JSON {{\"predicates\": [...]}}: {e}"
        ))
    })
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte; a bad escape is an error.
fn query_unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    In,
    Substring,
}

fn operation(value: &Value) -> Option<Op> {
    let n = match value {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => match s.as_str() {
            "EQUALS" => 1,
            "NOT_EQUALS" => 2,
            "GREATER_THAN" => 3,
            "GREATER_THAN_EQUALS" => 5,
            "LESS_THAN" => 6,
            "LESS_THAN_EQUALS" => 7,
            "IN" => 8,
            "IS_SUBSTRING" => 9,
            other => other.parse().ok()?,
        },
        _ => return None,
    };
    Some(match n {
        1 => Op::Eq,
        2 => Op::Ne,
        3 => Op::Gt,
        5 => Op::Ge,
        6 => Op::Lt,
        7 => Op::Le,
        8 => Op::In,
        9 => Op::Substring,
        _ => return None,
    })
}

fn predicate_sql(kind: Kind, p: &Predicate) -> Result<(String, Vec<Sql>), ApiError> {
    let op = operation(&p.operation).ok_or_else(|| {
        ApiError::invalid(format!(
            "Invalid input error: invalid filter operation {} for key {:?}: use EQUALS, NOT_EQUALS, GREATER_THAN, GREATER_THAN_EQUALS, LESS_THAN, LESS_THAN_EQUALS, IN or IS_SUBSTRING",
            p.operation, p.key
        ))
    })?;
    let (column, params_prefix) = if let Some(tag) = p.key.strip_prefix("tags.") {
        if op != Op::Eq {
            return Err(ApiError::invalid(format!(
                "Invalid input error: filter key {:?}: tags only support EQUALS",
                p.key
            )));
        }
        if tag.is_empty() || tag.contains('"') {
            return Err(ApiError::invalid(format!(
                "Invalid input error: invalid tag filter key {:?}",
                p.key
            )));
        }
        (
            "json_extract(tags, ?)".to_string(),
            vec![Sql::Text(format!("$.\"{tag}\""))],
        )
    } else {
        let column = kind.column(&p.key).filter(|c| *c != "''").ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid input error: invalid filter key {:?}: use one of {} or tags.<key>",
                p.key,
                kind.keys()
            ))
        })?;
        (column.to_string(), Vec::new())
    };
    let is_time = column == "created_at";
    let scalar = |p: &Predicate| -> Result<Sql, ApiError> {
        if let Some(s) = &p.string_value {
            return Ok(Sql::Text(s.clone()));
        }
        if let Some(v) = p.int_value.as_ref().or(p.long_value.as_ref()) {
            return int_value(v).map(Sql::Integer);
        }
        if let Some(t) = &p.timestamp_value {
            return timestamp_value(t).map(Sql::Integer);
        }
        Err(ApiError::invalid(format!(
            "Invalid input error: filter predicate on {:?} has no value (string_value, int_value, long_value or timestamp_value)",
            p.key
        )))
    };
    let mut params = params_prefix;
    let sql = if op == Op::In {
        let values = p
            .string_values
            .as_ref()
            .or(p.int_values.as_ref())
            .or(p.long_values.as_ref())
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "Invalid input error: IN on {:?} needs string_values, int_values or long_values",
                    p.key
                ))
            })?;
        if values.values.is_empty() {
            return Ok(("0".to_string(), params));
        }
        for v in &values.values {
            params.push(match v {
                Value::String(s) if !is_time => Sql::Text(s.clone()),
                other => Sql::Integer(int_value(other)?),
            });
        }
        let marks = vec!["?"; values.values.len()].join(", ");
        format!("{column} IN ({marks})")
    } else {
        let mut value = scalar(p)?;
        if is_time && let Sql::Text(t) = &value {
            value = Sql::Integer(timestamp_value(t)?);
        }
        let sql = match op {
            Op::Eq => format!("{column} = ?"),
            Op::Ne => format!("{column} <> ?"),
            Op::Gt => format!("{column} > ?"),
            Op::Ge => format!("{column} >= ?"),
            Op::Lt => format!("{column} < ?"),
            Op::Le => format!("{column} <= ?"),
            Op::Substring => format!("instr({column}, ?) > 0"),
            Op::In => unreachable_in(),
        };
        params.push(value);
        sql
    };
    Ok((sql, params))
}

fn unreachable_in() -> String {
    // Handled above; kept total so no panic path exists.
    "0".to_string()
}

fn int_value(v: &Value) -> Result<i64, ApiError> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| ApiError::invalid(format!("Invalid input error: {v} is not an integer")))
}

fn timestamp_value(t: &str) -> Result<i64, ApiError> {
    t.parse::<jiff::Timestamp>()
        .map(|ts| ts.as_second())
        .map_err(|e| {
            ApiError::invalid(format!(
                "Invalid input error: timestamp_value {t:?} is not RFC 3339: {e}"
            ))
        })
}

fn json_to_sql(v: &Value) -> Sql {
    match v {
        Value::Number(n) => n.as_i64().map_or(Sql::Null, Sql::Integer),
        Value::String(s) => Sql::Text(s.clone()),
        _ => Sql::Null,
    }
}

fn sql_to_json(v: &Sql) -> Value {
    match v {
        Sql::Integer(i) => Value::from(*i),
        Sql::Text(s) => Value::from(s.clone()),
        Sql::Real(f) => Value::from(*f),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(
        page_size: Option<&str>,
        token: Option<&str>,
        sort: Option<&str>,
        filter: Option<&str>,
    ) -> Result<ListParams, ApiError> {
        parse(Kind::Pipelines, "", page_size, token, sort, filter)
    }

    #[test]
    fn page_size_defaults_and_caps() {
        assert_eq!(p(None, None, None, None).expect("ok").page_size, 20);
        assert_eq!(p(Some("0"), None, None, None).expect("ok").page_size, 20);
        assert_eq!(p(Some("500"), None, None, None).expect("ok").page_size, 200);
        assert!(p(Some("-1"), None, None, None).is_err());
        assert!(p(Some("x"), None, None, None).is_err());
    }

    #[test]
    fn sort_keys() {
        let s = p(None, None, Some("name desc"), None).expect("ok").sort;
        assert_eq!((s.column, s.desc), ("name", true));
        assert!(p(None, None, Some("bogus"), None).is_err());
        assert!(p(None, None, Some("name sideways"), None).is_err());
    }

    #[test]
    fn filters_in_both_spellings() {
        let sdk =
            r#"{"predicates": [{"operation": 1, "key": "display_name", "stringValue": "x"}]}"#;
        let new =
            r#"{"predicates": [{"operation": "EQUALS", "key": "name", "string_value": "x"}]}"#;
        for f in [sdk, new] {
            let l = p(None, None, None, Some(f)).expect("ok");
            assert_eq!(l.where_sql.len(), 1);
        }
        assert!(p(None, None, None, Some("{not json")).is_err());
        let bad_key = r#"{"predicates": [{"operation": 1, "key": "nope", "string_value": "x"}]}"#;
        assert!(p(None, None, None, Some(bad_key)).is_err());
    }

    #[test]
    fn tokens_round_trip_and_reject_mismatches() {
        let l = p(None, None, Some("name"), None).expect("ok");
        let token = l.next_token(Kind::Pipelines, &Sql::Text("b".into()), 7);
        let next = p(None, Some(&token), None, None).expect("ok");
        assert_eq!(next.sort.key, "name");
        assert_eq!(next.after, Some((Sql::Text("b".into()), 7)));
        assert!(p(None, Some(&token), Some("created_at"), None).is_err());
        assert!(p(None, Some("garbage!"), None, None).is_err());
        assert!(parse(Kind::Versions, "x", None, Some(&token), None, None).is_err());
    }

    #[test]
    fn go_query_unescape() {
        assert_eq!(query_unescape("a+b%2Bc").as_deref(), Some("a b+c"));
        assert_eq!(query_unescape("100%"), None);
    }
}
