//! The compile cache: a file whose recorded inputs did not change is not compiled again.
//!
//! Each compile runs in a forked child that records what it read (`worker.py`, `_Recorder`): the
//! files it opened or imported, with their sha256, the directories it listed, the environment
//! variables it read, and whether it used the network or started a process (then it is never
//! cached). An entry is stored under a key made of
//! * the *environment fingerprint*: kfp-ci's version, the worker script, the interpreter asked for
//!   (and `PATH`, `PYTHONPATH`, `python_path`, `kfp_version`, `requirements`, `KFP_DSL_COMPILE_*`),
//!   and what the worker found: the interpreter's path and version, every `sys.path` directory with
//!   its modification time and the installed distributions;
//! * the file's path, the function named for it (`functions`) and the repository root.
//!
//! A run that can trust the environment without starting Python (the last worker's description
//! of it is stored with the modification times of the interpreter and of every `sys.path`
//! directory outside the repository; all unchanged) looks every file up first and starts the
//! worker only for the misses. A hit is checked by hashing each recorded file again and comparing
//! each recorded variable with the value the worker would see; anything unreadable or uncertain is
//! a miss.
//!
//! Location: `$KFP_CI_CACHE_DIR/compile` when `KFP_CI_CACHE_DIR` is set (the same variable puts
//! the virtualenvs in `$KFP_CI_CACHE_DIR/venvs`), else `.kfp-ci/cache/compile` in the repository.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{CompileSettings, Compiled, PipelineFile};

/// Bump when the entry format or the meaning of a key changes.
const FORMAT: &str = "kfp-ci-compile-cache-1";
/// Default bound of the entries' total size (`KFP_CI_CACHE_MAX_MB` overrides).
const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// The compile cache directory for a repository: see the module documentation.
pub fn dir_for(root: &Path) -> PathBuf {
    crate::settings::compile_cache_dir(root)
}

/// What the child recorded (the `inputs` of an `ok` answer).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Inputs {
    /// Why this compile must never be cached (network, subprocess, whole environment read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub never: Option<String>,
    /// Absolute path → sha256 (`dir:<listing hash>` for a directory), `None` when absent.
    #[serde(default)]
    pub files: Vec<(String, Option<String>)>,
    /// Directories listed: absolute path → sha256 of the sorted names (`absent` when missing).
    #[serde(default)]
    pub dirs: Vec<(String, String)>,
    /// Variables read → value (`None`: not set).
    #[serde(default)]
    pub env: Vec<(String, Option<String>)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    format: String,
    inputs: Inputs,
    yaml: String,
    function: String,
    pipeline_name: String,
    display_name: Option<String>,
    output: String,
}

/// The worker's description of its interpreter, stored with the times that vouch for it.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    environment: serde_json::Value,
    /// The interpreter's resolved path and modification time.
    executable: (PathBuf, Option<u128>),
    /// The kfp version the worker imported.
    kfp_version: String,
}

/// A cached compile, or why there is none.
pub(crate) enum Lookup {
    Hit {
        compiled: Compiled,
        output: String,
        inputs: Inputs,
    },
    Miss(String),
}

pub(crate) struct Cache {
    dir: PathBuf,
    root: PathBuf,
    /// Hash of everything about the launch that is known before Python runs.
    launch_key: String,
    /// The environment fingerprint, once known (from a trusted manifest or a started worker).
    fingerprint: Option<String>,
    /// The value each variable has in the worker's environment, as far as it was asked.
    python_path_env: Option<OsString>,
    secrets: std::collections::BTreeSet<String>,
    hashes: HashMap<String, Option<String>>,
    listings: HashMap<String, String>,
    stored: usize,
    /// Shard directories known to exist (created this run or found).
    shards: std::collections::HashSet<PathBuf>,
    /// The pin (`kfp_version`).
    pin: String,
}

impl Cache {
    /// The cache for this run; `None` when disabled (`--no-cache`).
    pub fn open(settings: &CompileSettings) -> Option<Cache> {
        let dir = settings.cache_dir.clone()?;
        let mut h = Sha256::new();
        let mut put = |label: &str, value: &[u8]| {
            h.update(label.as_bytes());
            h.update((value.len() as u64).to_le_bytes());
            h.update(value);
        };
        put("format", FORMAT.as_bytes());
        put("kfp-ci", env!("CARGO_PKG_VERSION").as_bytes());
        put("worker", super::WORKER_PY.as_bytes());
        let python = settings
            .python
            .as_ref()
            .map(|p| p.as_os_str().as_encoded_bytes().to_vec())
            .unwrap_or_default();
        put("python", &python);
        put("kfp_version", settings.kfp_version.as_bytes());
        let mut requirements = settings.requirements.clone();
        requirements.sort();
        put("requirements", requirements.join("\n").as_bytes());
        for p in &settings.python_path {
            put("python_path", p.as_os_str().as_encoded_bytes());
        }
        let mut vars: Vec<(String, OsString)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
            .filter(|(k, _)| {
                k.starts_with("KFP_DSL_COMPILE_")
                    || matches!(
                        k.as_str(),
                        "PATH"
                            | "PYTHONPATH"
                            | "PYTHONHOME"
                            | "PYTHONSAFEPATH"
                            | "PYTHONNOUSERSITE"
                            | "PYTHONUSERBASE"
                            | "VIRTUAL_ENV"
                            | "_KFP_RUNTIME"
                    )
            })
            .collect();
        vars.sort();
        for (k, v) in &vars {
            put(k, v.as_encoded_bytes());
        }
        let launch_key = hex(&h.finalize());
        let python_path_env = super::worker::python_path_env(&settings.python_path)
            .ok()
            .flatten();
        Some(Cache {
            dir,
            root: settings.root.clone(),
            launch_key,
            fingerprint: None,
            python_path_env,
            secrets: crate::child_env::secret_names(),
            hashes: HashMap::new(),
            listings: HashMap::new(),
            stored: 0,
            shards: std::collections::HashSet::new(),
            pin: settings.kfp_version.clone(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn manifest_path(&self) -> PathBuf {
        self.dir
            .join("env")
            .join(format!("{}.json", self.launch_key))
    }

    /// Trust the stored description of the interpreter when nothing it depends on changed; then
    /// every file can be looked up before Python starts. Returns whether it did.
    pub fn trust_manifest(&mut self) -> bool {
        let Ok(text) = fs_err::read_to_string(self.manifest_path()) else {
            tracing::debug!("compile cache: no stored description of this interpreter yet");
            return false;
        };
        let Ok(manifest) = serde_json::from_str::<Manifest>(&text) else {
            return false;
        };
        if manifest.format != FORMAT {
            return false;
        }
        // An interpreter whose kfp is not the pin gets its warning (or, strict, its error) from
        // the worker every run: it is started.
        if manifest.kfp_version != self.pin {
            tracing::debug!(
                "compile cache: the interpreter has kfp {}, not the pinned {}; every file is compiled",
                manifest.kfp_version,
                self.pin
            );
            return false;
        }
        let (exe, mtime) = &manifest.executable;
        if mtime_ns(exe) != *mtime || mtime.is_none() {
            tracing::debug!(
                "compile cache: the interpreter {} changed; every file is compiled",
                exe.display()
            );
            return false;
        }
        for (dir, recorded) in environment_paths(&manifest.environment) {
            if self.in_repository(&dir) {
                continue;
            }
            if mtime_ns(Path::new(&dir)) != recorded {
                tracing::debug!(
                    "compile cache: {dir} (on the interpreter's sys.path) changed: installed distributions may differ; every file is compiled"
                );
                return false;
            }
        }
        self.fingerprint = Some(self.fingerprint_of(&manifest.environment));
        true
    }

    /// The worker started: its description of the interpreter fixes the fingerprint (and is
    /// stored for the next run).
    pub fn set_environment(&mut self, environment: Option<&serde_json::Value>, kfp_version: &str) {
        let Some(environment) = environment else {
            self.fingerprint = None;
            return;
        };
        let fingerprint = self.fingerprint_of(environment);
        if self.fingerprint.as_ref().is_some_and(|f| f != &fingerprint) {
            tracing::debug!(
                "compile cache: the interpreter's description changed while its times did not"
            );
        }
        self.fingerprint = Some(fingerprint);
        let exe = environment
            .get("executable")
            .and_then(|e| e.as_str())
            .map(PathBuf::from)
            .unwrap_or_default();
        let exe = fs_err::canonicalize(&exe).unwrap_or(exe);
        let manifest = Manifest {
            format: FORMAT.to_string(),
            environment: environment.clone(),
            executable: (exe.clone(), mtime_ns(&exe)),
            kfp_version: kfp_version.to_string(),
        };
        // In the repository: keep the cache out of git without asking anyone to edit .gitignore.
        if self.dir.starts_with(&self.root)
            && let Some(top) = self.dir.parent()
            && !top.join(".gitignore").exists()
        {
            let _ = fs_err::create_dir_all(top).and_then(|()| {
                fs_err::write(top.join(".gitignore"), "# kfp-ci's compile cache\n*\n")
            });
        }
        if let Err(e) = write_atomic(
            &self.manifest_path(),
            serde_json::to_string(&manifest)
                .unwrap_or_default()
                .as_bytes(),
        ) {
            tracing::debug!("compile cache: cannot store the interpreter's description: {e:#}");
        }
    }

    fn in_repository(&self, dir: &str) -> bool {
        Path::new(dir).starts_with(&self.root)
    }

    /// The fingerprint: the launch key and the environment, with the times of directories in the
    /// repository left out (a file added there does not change the interpreter).
    fn fingerprint_of(&self, environment: &serde_json::Value) -> String {
        let mut env = environment.clone();
        if let Some(paths) = env.get_mut("paths").and_then(|p| p.as_array_mut()) {
            for entry in paths {
                if let Some(pair) = entry.as_array_mut()
                    && let Some(dir) = pair.first().and_then(|d| d.as_str())
                    && self.in_repository(dir)
                    && pair.len() > 1
                {
                    pair[1] = serde_json::Value::Null;
                }
            }
        }
        let mut h = Sha256::new();
        h.update(self.launch_key.as_bytes());
        h.update(serde_json::to_string(&env).unwrap_or_default().as_bytes());
        hex(&h.finalize())
    }

    fn entry_path(&self, file: &PipelineFile) -> Option<PathBuf> {
        let fingerprint = self.fingerprint.as_ref()?;
        let mut h = Sha256::new();
        h.update(fingerprint.as_bytes());
        for part in [
            file.path.as_os_str().as_encoded_bytes(),
            file.function.as_deref().unwrap_or("").as_bytes(),
            self.root.as_os_str().as_encoded_bytes(),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        let key = hex(&h.finalize());
        Some(self.dir.join("entries").join(&key[..2]).join(key))
    }

    /// Look `file` up: a hit only when every recorded input is as it was.
    pub fn lookup(&mut self, file: &PipelineFile) -> Lookup {
        let Some(path) = self.entry_path(file) else {
            return Lookup::Miss("the interpreter is not known yet".into());
        };
        let text = match fs_err::read_to_string(&path) {
            Ok(t) => t,
            Err(_) => {
                return Lookup::Miss(
                    "not compiled before with this interpreter, kfp and settings".into(),
                );
            }
        };
        let entry: Entry = match serde_json::from_str(&text) {
            Ok(e) => e,
            Err(e) => return Lookup::Miss(format!("unreadable cache entry ({e})")),
        };
        if entry.format != FORMAT {
            return Lookup::Miss("cache entry of another format".into());
        }
        if let Some(why) = self.changed(&entry.inputs) {
            return Lookup::Miss(why);
        }
        // Recently used entries are the last to be pruned.
        if let Ok(f) = std::fs::File::options().append(true).open(&path) {
            let _ = f.set_modified(SystemTime::now());
        }
        Lookup::Hit {
            compiled: Compiled {
                yaml: entry.yaml,
                function: entry.function,
                pipeline_name: entry.pipeline_name,
                display_name: entry.display_name,
            },
            output: entry.output,
            inputs: entry.inputs,
        }
    }

    /// The first recorded input that differs now, said for `-v`.
    fn changed(&mut self, inputs: &Inputs) -> Option<String> {
        if let Some(never) = &inputs.never {
            return Some(format!("never cached: it {never}"));
        }
        for (path, recorded) in &inputs.files {
            let now = match recorded.as_deref() {
                Some(h) if h.starts_with("dir:") => Some(format!("dir:{}", self.listing(path))),
                _ => self.hash(path),
            };
            if &now != recorded {
                let what = if now.is_none() {
                    "was removed"
                } else if recorded.is_none() {
                    "was created"
                } else {
                    "changed"
                };
                return Some(format!("{} {what}", self.display(path)));
            }
        }
        for (dir, recorded) in &inputs.dirs {
            if &self.listing(dir) != recorded {
                return Some(format!(
                    "the listing of {} changed",
                    self.display(dir.as_str())
                ));
            }
        }
        for (name, recorded) in &inputs.env {
            let now = self.worker_env(name);
            match now {
                Err(()) => return Some(format!("environment variable {name} is not UTF-8")),
                Ok(now) if &now != recorded => {
                    return Some(format!("environment variable {name} changed"));
                }
                Ok(_) => {}
            }
        }
        None
    }

    fn display(&self, path: &str) -> String {
        Path::new(path)
            .strip_prefix(&self.root)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| path.to_string())
    }

    fn hash(&mut self, path: &str) -> Option<String> {
        if let Some(h) = self.hashes.get(path) {
            return h.clone();
        }
        let h = std::fs::read(path)
            .ok()
            .map(|bytes| hex(&Sha256::digest(&bytes)));
        self.hashes.insert(path.to_string(), h.clone());
        h
    }

    fn listing(&mut self, dir: &str) -> String {
        if let Some(h) = self.listings.get(dir) {
            return h.clone();
        }
        let h = listing_hash(Path::new(dir));
        self.listings.insert(dir.to_string(), h.clone());
        h
    }

    /// The value `name` has in the worker's environment (kfp-ci's minus its credentials, with the
    /// variables the worker sets); `Err` when it is not UTF-8 (never a hit).
    fn worker_env(&self, name: &str) -> Result<Option<String>, ()> {
        let value = match name {
            "PYTHONHASHSEED" => return Ok(Some("0".into())),
            "PYTHONUNBUFFERED" => return Ok(Some("1".into())),
            "PYTHONPATH" if self.python_path_env.is_some() => self.python_path_env.clone(),
            n if self.secrets.contains(n) => None,
            n => std::env::var_os(n),
        };
        match value {
            None => Ok(None),
            Some(v) => v.into_string().map(Some).map_err(|_| ()),
        }
    }

    /// Store a compile's result with its inputs (unless it must never be cached). A file whose
    /// inputs changed while it compiled is stored with the hashes the child took, so the next run
    /// sees the change.
    pub fn store(
        &mut self,
        file: &PipelineFile,
        inputs: Option<Inputs>,
        compiled: &Compiled,
        output: &str,
    ) {
        let Some(inputs) = inputs else {
            tracing::debug!("{}: not cached (no inputs recorded)", file.rel);
            return;
        };
        if let Some(never) = &inputs.never {
            tracing::debug!("{}: not cached: it {never}", file.rel);
            return;
        }
        let Some(path) = self.entry_path(file) else {
            return;
        };
        let entry = Entry {
            format: FORMAT.to_string(),
            inputs,
            yaml: compiled.yaml.clone(),
            function: compiled.function.clone(),
            pipeline_name: compiled.pipeline_name.clone(),
            display_name: compiled.display_name.clone(),
            output: output.to_string(),
        };
        // One `create_dir_all` per shard and run, not per entry (a first run stores every file).
        if let Some(shard) = path.parent()
            && !self.shards.contains(shard)
        {
            if let Err(e) = fs_err::create_dir_all(shard) {
                tracing::debug!("{}: not cached: {e:#}", file.rel);
                return;
            }
            self.shards.insert(shard.to_path_buf());
        }
        let result = serde_json::to_vec(&entry)
            .context("cannot encode the cache entry")
            .and_then(|bytes| write_in_place(&path, &bytes));
        match result {
            Ok(()) => self.stored += 1,
            Err(e) => tracing::debug!("{}: not cached: {e:#}", file.rel),
        }
    }

    /// Keep the entries under the size bound, oldest (least recently used) removed first.
    pub fn prune(&self) {
        if self.stored == 0 {
            return;
        }
        let max = std::env::var("KFP_CI_CACHE_MAX_MB")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(DEFAULT_MAX_BYTES, |mb| mb * 1024 * 1024);
        if let Err(e) = prune(&self.dir.join("entries"), max) {
            tracing::debug!("compile cache: cannot prune {}: {e:#}", self.dir.display());
        }
    }
}

fn prune(entries: &Path, max: u64) -> Result<()> {
    let mut files: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
    let mut total = 0;
    for shard in fs_err::read_dir(entries)? {
        let shard = shard?;
        let Ok(list) = std::fs::read_dir(shard.path()) else {
            continue;
        };
        for entry in list.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            total += meta.len();
            let when = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            files.push((when, meta.len(), entry.path()));
        }
    }
    if total <= max {
        return Ok(());
    }
    files.sort();
    for (_, len, path) in files {
        if total <= max {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
        }
    }
    Ok(())
}

/// The inputs of every entry in the cache at `dir` (any interpreter, any settings), without
/// checking them: what `init` knows about the pipelines' reads without running Python.
pub fn stored_inputs(dir: &Path) -> Vec<Inputs> {
    let mut out = Vec::new();
    let Ok(shards) = std::fs::read_dir(dir.join("entries")) else {
        return out;
    };
    for shard in shards.flatten() {
        let Ok(list) = std::fs::read_dir(shard.path()) else {
            continue;
        };
        for entry in list.flatten() {
            if let Ok(text) = std::fs::read_to_string(entry.path())
                && let Ok(e) = serde_json::from_str::<Entry>(&text)
            {
                out.push(e.inputs);
            }
        }
    }
    out
}

/// Remove the compile cache directory (`kfp-ci cache clear`); returns whether there was one.
pub fn clear(dir: &Path) -> Result<bool> {
    if !dir.exists() {
        return Ok(false);
    }
    fs_err::remove_dir_all(dir)
        .with_context(|| format!("cannot remove the compile cache {}", dir.display()))?;
    Ok(true)
}

fn environment_paths(environment: &serde_json::Value) -> Vec<(String, Option<u128>)> {
    let Some(paths) = environment.get("paths").and_then(|p| p.as_array()) else {
        return vec![];
    };
    paths
        .iter()
        .filter_map(|entry| {
            let pair = entry.as_array()?;
            let dir = pair.first()?.as_str()?.to_string();
            let mtime = pair.get(1).and_then(|m| m.as_u64()).map(u128::from);
            Some((dir, mtime))
        })
        .collect()
}

fn mtime_ns(path: &Path) -> Option<u128> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(
        modified
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()?
            .as_nanos(),
    )
}

/// sha256 of a directory's entry names, sorted, one per line (as the worker computes it).
fn listing_hash(dir: &Path) -> String {
    let Ok(list) = std::fs::read_dir(dir) else {
        return "absent".into();
    };
    let mut names: Vec<Vec<u8>> = list
        .flatten()
        .map(|e| e.file_name().as_encoded_bytes().to_vec())
        .collect();
    names.sort();
    let mut h = Sha256::new();
    for n in names {
        h.update(&n);
        h.update(b"\n");
    }
    hex(&h.finalize())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().context("cache path without a parent")?;
    fs_err::create_dir_all(parent)?;
    write_in_place(path, bytes)
}

/// [`write_atomic`] into a directory that exists: a temp file renamed over `path`, so a reader
/// (a concurrent run) sees the old entry or the new one, never half of one.
fn write_in_place(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().context("cache path without a parent")?;
    let mut tmp = tempfile::NamedTempFile::new_in(parent)
        .with_context(|| format!("cannot write in {}", parent.display()))?;
    tmp.write_all(bytes)?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_hash_matches_the_workers_definition() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("b.yaml"), "x").expect("write");
        std::fs::write(dir.path().join("a.yaml"), "x").expect("write");
        // sha256("a.yaml\nb.yaml\n")
        let expected = hex(&Sha256::digest(b"a.yaml\nb.yaml\n"));
        assert_eq!(listing_hash(dir.path()), expected);
        assert_eq!(listing_hash(&dir.path().join("none")), "absent");
    }

    #[test]
    fn prune_removes_the_oldest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shard = dir.path().join("ab");
        std::fs::create_dir_all(&shard).expect("mkdir");
        let old = shard.join("old");
        let new = shard.join("new");
        std::fs::write(&old, vec![0u8; 100]).expect("write");
        std::fs::write(&new, vec![0u8; 100]).expect("write");
        let f = std::fs::File::options()
            .append(true)
            .open(&old)
            .expect("open");
        f.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000))
            .expect("set time");
        prune(dir.path(), 150).expect("prune");
        assert!(!old.exists() && new.exists());
    }
}
