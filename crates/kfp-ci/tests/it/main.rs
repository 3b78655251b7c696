//! One integration-test binary: the real `kfp-ci` binary, the real kfp SDK, real HTTP on loopback.

mod ci;
mod common;
mod compile;
mod deploy;
mod deploy_fixes;
mod deploy_target;
mod diff;
mod faulty;
mod forge_server;
mod ntfy_server;
mod promote;
mod qa;
mod review;
mod serve;
mod tls;
