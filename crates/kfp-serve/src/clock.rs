//! The server's clock: wall-clock seconds plus an offset that only the `--test-clock` testing
//! aid moves (`POST /_test/clock/advance?seconds=N`). KFP timestamps have second precision, so
//! tests that need "a later second" advance the clock instead of sleeping for it. A test that
//! must *fail* without the advance first stops the wall clock (`POST /_test/clock/freeze`): from
//! then on only the advance moves time.
//!
//! The offset is process-wide because timestamps are taken deep inside store functions; only a
//! server started with `--test-clock` mounts the route that changes it.

use std::sync::atomic::{AtomicI64, Ordering};

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

static OFFSET_SECS: AtomicI64 = AtomicI64::new(0);
/// The wall-clock second the clock was frozen at; 0 while it runs.
static FROZEN_AT: AtomicI64 = AtomicI64::new(0);

/// Seconds since the Unix epoch, as the server stamps `created_at`.
pub fn now() -> i64 {
    let wall = match FROZEN_AT.load(Ordering::Relaxed) {
        0 => jiff::Timestamp::now().as_second(),
        frozen => frozen,
    };
    wall + OFFSET_SECS.load(Ordering::Relaxed)
}

/// `POST /_test/clock/freeze`: the wall clock stops at this second (idempotent); only
/// [`advance`] moves time from then on. Answers the frozen second.
pub(crate) async fn freeze() -> Response {
    let wall = jiff::Timestamp::now().as_second();
    let frozen = match FROZEN_AT.compare_exchange(0, wall, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => wall,
        Err(already) => already,
    };
    (StatusCode::OK, format!("{{\"frozen_at\":{frozen}}}\n")).into_response()
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
