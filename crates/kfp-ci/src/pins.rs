//! Every version kfp-ci's shipping files pin, in one place: the GitHub Actions (by commit, with
//! the tag as a comment) and the tools the release workflows, the setup action, the
//! Containerfile and the `init` templates install. `init` fills its templates from here; a test
//! (`tests/it/ship.rs`) checks that the static files (`.github/workflows/release.yml`,
//! `.gitea/workflows/release.yml`, `action.yml`, `Containerfile`, `pyproject.toml`) agree, so
//! bumping a pin is: change it here, run the tests, update the files they name.

/// A GitHub Action pinned to a commit.
#[derive(Debug, Clone, Copy)]
pub struct ActionPin {
    pub name: &'static str,
    pub sha: &'static str,
    pub tag: &'static str,
}

impl ActionPin {
    /// `name@sha # tag`, as a `uses:` value.
    pub fn uses(&self) -> String {
        format!("{}@{} # {}", self.name, self.sha, self.tag)
    }
}

pub const CHECKOUT: ActionPin = ActionPin {
    name: "actions/checkout",
    sha: "11bd71901bbe5b1630ceea73d27597364c9af683",
    tag: "v4.2.2",
};
pub const CACHE: ActionPin = ActionPin {
    name: "actions/cache",
    sha: "27d5ce7f107fe9357f9df03efb73ab90386fccae",
    tag: "v5.0.5",
};
pub const UPLOAD_ARTIFACT: ActionPin = ActionPin {
    name: "actions/upload-artifact",
    sha: "bbbca2ddaa5d8feaa63e36b76fdaad77386f024f",
    tag: "v7.0.0",
};
pub const DOWNLOAD_ARTIFACT: ActionPin = ActionPin {
    name: "actions/download-artifact",
    sha: "3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c",
    tag: "v8.0.1",
};
pub const MATURIN_ACTION: ActionPin = ActionPin {
    name: "PyO3/maturin-action",
    sha: "e83996d129638aa358a18fbd1dfb82f0b0fb5d3b",
    tag: "v1.51.0",
};

/// Every pinned action.
pub const ACTIONS: &[ActionPin] = &[
    CHECKOUT,
    CACHE,
    UPLOAD_ARTIFACT,
    DOWNLOAD_ARTIFACT,
    MATURIN_ACTION,
];

/// maturin, which builds the wheels (pyproject.toml's build requirement allows 1.x).
pub const MATURIN_VERSION: &str = "1.16.0";
/// uv: the setup action installs it next to kfp-ci, which then creates the kfp virtualenv with it;
/// the release workflows publish with it.
pub const UV_VERSION: &str = "0.13.9";
/// The Rust toolchain of release builds and of the Containerfile's build stage (the MSRV).
pub const RUST_VERSION: &str = "1.89";
/// The Python of the Containerfile's image.
pub const PYTHON_VERSION: &str = "3.11";
