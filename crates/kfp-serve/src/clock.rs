//! The server's clock: wall-clock seconds plus an offset that only the `--test-clock` testing
//! aid moves (`POST /_test/clock/advance?seconds=N`). KFP timestamps have second precision, so
//! tests that need "a later second" advance the clock instead of sleeping for it.
//!
//! The offset is process-wide because timestamps are taken deep inside store functions; only a
//! server started with `--test-clock` mounts the route that changes it.

use std::sync::atomic::{AtomicI64, Ordering};

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

static OFFSET_SECS: AtomicI64 = AtomicI64::new(0);

/// Seconds since the Unix epoch, as the server stamps `created_at`.
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second() + OFFSET_SECS.load(Ordering::Relaxed)
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct Advance {
    seconds: u32,
}

/// `POST /_test/clock/advance?seconds=N`: later timestamps are N seconds later than the wall
/// clock says. Answers the new offset.
pub(crate) async fn advance(
    query: Result<Query<Advance>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(Advance { seconds })) = query else {
        return (
            StatusCode::BAD_REQUEST,
            "expected ?seconds=N (a whole number of seconds to move the clock forward)\n",
        )
            .into_response();
    };
    let offset = OFFSET_SECS.fetch_add(i64::from(seconds), Ordering::Relaxed) + i64::from(seconds);
    (StatusCode::OK, format!("{{\"offset_seconds\":{offset}}}\n")).into_response()
}
