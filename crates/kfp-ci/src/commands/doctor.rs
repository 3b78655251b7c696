use crate::cli::{DoctorCmd, GlobalArgs};
use crate::status::ExitStatus;

pub async fn run(_cmd: DoctorCmd, _global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`kfp-ci doctor` is not implemented yet")
}
