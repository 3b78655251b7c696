//! The Kubeflow Pipelines wire format, in one place: the REST API v2beta1 JSON types
//! ([`wire`]), compiled pipeline specs in the server's canonical form ([`spec`]), and what each
//! server release accepts ([`compat`]), the API's paths and query names ([`routes`]) and
//! protojson's number forms ([`protojson`]).
//! No I/O: the client in `kfp-ci` and the local server in `kfp-serve` both build on it.

pub mod compat;
pub mod protojson;
pub mod routes;
pub mod runs;
pub mod spec;
pub mod wire;
