//! One integration-test binary: the real `kfp-ci` binary, the real kfp SDK, real HTTP on loopback.

mod common;
mod compile;
mod deploy;
mod faulty;
mod serve;
