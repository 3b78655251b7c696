//! The Kubeflow Pipelines wire format, in one place: the REST API v2beta1 JSON types
//! ([`wire`]) and compiled pipeline specs in the server's canonical form ([`spec`]).
//! No I/O: the client in `kfp-ci` and the local server in `kfp-serve` both build on it.

pub mod runs;
pub mod spec;
pub mod wire;
