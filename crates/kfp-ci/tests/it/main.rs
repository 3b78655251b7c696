//! One integration-test binary: the real `kfp-ci` binary, the real kfp SDK, real HTTP on loopback.

mod ci;
mod common;
mod compat;
mod compile;
mod compile_env;
mod deploy;
mod deploy_fixes;
mod deploy_target;
mod diff;
mod discover;
mod docs;
mod faulty;
mod forge_server;
mod ntfy_server;
mod promote;
mod qa;
mod render;
mod review;
mod secrets;
mod serve;
mod server_faults;
mod tls;
