//! Plan: compiled specs × server state → create | new version | unchanged | error. Pure.
