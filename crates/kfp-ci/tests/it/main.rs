//! One integration-test binary: the real `kfp-ci` binary, the real kfp SDK, real HTTP on loopback.

mod ci;
mod common;
mod compat;
mod compile;
mod compile_env;
mod deploy;
mod deploy_fixes;
mod deploy_target;
mod discover;
mod docs;
mod faulty;
mod incremental;
mod interrupt;
mod ntfy_server;
mod provenance;
mod qa;
mod race;
mod render;
mod retries;
mod schedules;
mod secrets;
mod serve;
mod server_faults;
mod smoke;
mod tenancy;
mod tls;
