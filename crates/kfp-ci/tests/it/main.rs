//! One integration-test binary: the real `kfp-ci` binary, the real kfp SDK, real HTTP on loopback.

mod ci;
mod common;
mod compile;
mod deploy;
mod deploy_fixes;
mod deploy_target;
mod faulty;
mod harness;
mod ntfy_server;
mod qa;
mod serve;
mod tls;
