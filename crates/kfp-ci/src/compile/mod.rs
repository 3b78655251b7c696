//! The compile engine: a Python worker that imports kfp once and forks per file.
//!
//! [`compile_pipelines`] is discovery plus compile: it finds the pipeline files
//! ([`crate::discover`]), starts one Python worker (the embedded `worker.py`: it imports kfp once
//! and forks a child per file), keeps up to `settings.jobs` files in flight and collects one
//! [`FileResult`] per file, in discovery order. A file that
//! fails never stops the others; only a broken environment (no Python, no kfp and no way to
//! install it) is an `Err`.
//!
//! Exactness: the worker loads and compiles each file with kfp's own functions, the way
//! `kfp dsl compile --py FILE --output OUT` does, so the YAML is byte-identical to it (under the
//! same `PYTHONHASHSEED`; the worker uses 0). Embedded archives get fixed gzip and tar timestamps.

pub mod cache;
pub mod inputs;
mod view;
mod worker;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

pub use crate::discover::PipelineFile;
use crate::row::PipelineError;
pub use crate::settings::CompileSettings;
use crate::{cli::NameFrom, discover, pyenv};
use worker::{Launch, Message, Request, Script, Spawned, Started, Worker};

/// The worker script, embedded in the binary.
pub(crate) const WORKER_PY: &str = include_str!("worker.py");

/// What one `compile_pipelines` run produced.
#[derive(Debug, Clone)]
pub struct CompileRun {
    /// The kfp SDK version the worker imported.
    pub kfp_version: String,
    /// The Python interpreter used (the cached venv's, when one was needed).
    pub python: PathBuf,
    /// Number of pipeline files discovered (= `results.len()`).
    pub discovered: usize,
    /// One result per discovered file, sorted by `file.rel`.
    pub results: Vec<FileResult>,
    /// Wall time of discovery and compile.
    pub duration: Duration,
    /// What each compiled file read (by `file.rel`), as recorded in its compile (or cached with
    /// it); missing for a file whose compile failed.
    pub inputs: BTreeMap<String, cache::Inputs>,
}

impl CompileRun {
    pub fn compiled(&self) -> usize {
        self.results.iter().filter(|r| r.outcome.is_ok()).count()
    }
    pub fn failed(&self) -> usize {
        self.results.len() - self.compiled()
    }
}

/// The outcome for one file.
#[derive(Debug, Clone)]
pub struct FileResult {
    pub file: PipelineFile,
    pub outcome: Result<Compiled, PipelineError>,
    /// Everything the file printed (stdout and stderr, interleaved) while it loaded and compiled.
    pub output: String,
    pub duration: Duration,
}

/// A compiled pipeline.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The YAML exactly as `kfp dsl compile` writes it (one or two documents).
    pub yaml: String,
    /// The function that was compiled (its name in the module).
    pub function: String,
    /// `pipelineInfo.name` in the spec (the `@dsl.pipeline` name, sanitised by kfp).
    pub pipeline_name: String,
    /// `pipelineInfo.displayName`, when set.
    pub display_name: Option<String>,
}

/// Progress of a run, for output while it works.
#[derive(Debug)]
pub enum Progress<'a> {
    /// Discovery is done; the worker is starting.
    Started { files: usize },
    /// One file finished (in completion order); `done` of `total`.
    Finished {
        result: &'a FileResult,
        done: usize,
        total: usize,
    },
}

/// Discover and compile: see the module documentation.
pub async fn compile_pipelines(settings: &CompileSettings) -> Result<CompileRun> {
    compile_pipelines_with(settings, &mut |_| {}).await
}

/// [`compile_pipelines`], reporting [`Progress`] as it goes.
pub async fn compile_pipelines_with(
    settings: &CompileSettings,
    on_progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> Result<CompileRun> {
    let started = Instant::now();
    let python = pyenv::interpreter(settings.python.as_deref());
    // Start the worker (Python start-up and `import kfp`, most of a small run's time) while
    // discovery walks the tree. Its errors count only once there are files to compile; with none
    // it is dropped (killed) unused.
    let script = Script::write().context("cannot write the compile worker script")?;
    // An explicit interpreter is always the one used, whatever its kfp version (a warning, or an
    // error with `strict`); only the default `python3` is swapped for the cached venv.
    let explicit = settings.python.is_some();
    let mut cache = cache::Cache::open(settings);
    // With a trusted description of the interpreter, every file is looked up before Python
    // starts, and the worker starts only for the misses; otherwise it starts at once, as below.
    let trusted = cache.as_mut().is_some_and(|c| c.trust_manifest());
    let spawn = || {
        Worker::spawn(&launch(
            settings,
            &script,
            &python,
            settings.jobs.max(1),
            explicit,
        ))
    };
    let mut early = if trusted { None } else { Some(spawn()) };
    let files = discover::discover(settings)?;
    for key in settings.functions.keys() {
        if !files.iter().any(|f| &f.rel == key) {
            tracing::warn!(
                "`functions` names {key}, which is not among the discovered pipeline files"
            );
        }
    }
    let total = files.len();
    on_progress(Progress::Started { files: total });
    if files.is_empty() {
        return Ok(CompileRun {
            kfp_version: String::new(),
            python,
            discovered: 0,
            results: vec![],
            duration: started.elapsed(),
            inputs: BTreeMap::new(),
        });
    }
    let mut slots: Vec<Option<FileResult>> = vec![None; total];
    let mut done = 0;
    let mut emit = |idx: usize, mut result: FileResult, slots: &mut Vec<Option<FileResult>>| {
        if settings.name_from == NameFrom::Pipeline
            && let Ok(c) = &result.outcome
        {
            result.file.name = c.pipeline_name.clone();
        }
        done += 1;
        on_progress(Progress::Finished {
            result: &result,
            done,
            total,
        });
        slots[idx] = Some(result);
    };
    let mut misses: Vec<usize> = Vec::with_capacity(total);
    let mut inputs: BTreeMap<String, cache::Inputs> = BTreeMap::new();
    match cache.as_mut().filter(|_| trusted) {
        Some(c) => {
            for (idx, file) in files.iter().enumerate() {
                match c.lookup(file) {
                    cache::Lookup::Hit {
                        compiled,
                        output,
                        inputs: read,
                    } => {
                        tracing::debug!("{}: compile cache hit", file.rel);
                        inputs.insert(file.rel.clone(), read);
                        let result = FileResult {
                            file: file.clone(),
                            outcome: Ok(compiled),
                            output,
                            duration: Duration::ZERO,
                        };
                        emit(idx, result, &mut slots);
                    }
                    cache::Lookup::Miss(why) => {
                        tracing::debug!("{}: compile cache miss: {why}", file.rel);
                        misses.push(idx);
                    }
                }
            }
        }
        None => misses.extend(0..total),
    }
    if misses.is_empty() {
        drop(early);
        tracing::debug!(
            "compile cache ({}): every file hit; Python not started",
            cache
                .as_ref()
                .map_or_else(String::new, |c| c.dir().display().to_string())
        );
        let mut results: Vec<FileResult> = slots.into_iter().flatten().collect();
        mark_duplicate_names(&mut results, settings.name_from);
        return Ok(CompileRun {
            // The version the cached compiles were made with (the key includes it).
            kfp_version: settings.kfp_version.clone(),
            python,
            discovered: total,
            results,
            duration: started.elapsed(),
            inputs,
        });
    }
    let early = match early.take() {
        Some(e) => e,
        None => spawn(),
    };
    let jobs = settings.jobs.clamp(1, misses.len());
    let (mut worker, python) = start_worker(settings, &python, &script, jobs, early).await?;
    let kfp_version = worker.kfp_version.clone();
    tracing::debug!(
        "compile worker: {} (Python {}, kfp {kfp_version}), up to {jobs} at a time",
        python.display(),
        worker.python_version,
    );
    if let Some(c) = cache.as_mut() {
        c.set_environment(worker.environment.as_ref(), &kfp_version);
        if !trusted {
            for file in &files {
                tracing::debug!(
                    "{}: compile cache miss: the interpreter's state was not known before it started",
                    file.rel
                );
            }
        }
    }

    let mut queue: VecDeque<usize> = misses.into_iter().collect();
    let mut inputs_of = inputs;
    // Files that were in flight when the worker died: each runs again on its own, so that only the
    // file that kills the worker is reported for it.
    let mut suspects: VecDeque<usize> = VecDeque::new();
    // Sent and not yet answered: file index → (sent at, a child started on it, is a suspect).
    let mut in_flight: BTreeMap<usize, (Instant, bool, bool)> = BTreeMap::new();
    let guard = settings.timeout + worker::GUARD_SLACK;
    // The worker queues requests and runs `jobs` at a time; a few more than that are sent ahead
    // so that it never waits for kfp-ci between two files.
    // (Capped: the requests sent ahead must fit in the pipe buffer, ~300 bytes each.)
    let window = (jobs + jobs.min(16) + 2).min(160);
    'run: loop {
        let isolating = !suspects.is_empty() || in_flight.values().any(|(_, _, s)| *s);
        let limit = if isolating { 1 } else { window };
        let mut died = None;
        while in_flight.len() < limit {
            let (idx, suspect) = match suspects.pop_front() {
                Some(i) => (i, true),
                None if isolating => break,
                None => match queue.pop_front() {
                    Some(i) => (i, false),
                    None => break,
                },
            };
            let file = &files[idx];
            let req = Request {
                id: idx as u64,
                path: &file.path,
                rel: &file.rel,
                root: &settings.root,
                function: file.function.as_deref(),
                timeout: settings.timeout.as_secs_f64(),
                record: true,
            };
            in_flight.insert(idx, (Instant::now(), false, suspect));
            if let Err(e) = worker.send(&req).await {
                died = Some(e);
                break;
            }
        }
        if died.is_none() {
            if in_flight.is_empty() {
                break;
            }
            match worker.recv(guard).await {
                Ok((id, Message::Started { .. })) => {
                    if let Some(entry) = in_flight.get_mut(&(id as usize)) {
                        entry.1 = true;
                    }
                }
                Ok((id, msg)) => {
                    let idx = id as usize;
                    match in_flight.remove(&idx) {
                        Some((sent, _, _)) => {
                            let (msg, inputs) = take_inputs(msg);
                            let result = to_result(files[idx].clone(), msg, sent.elapsed());
                            if let (Some(read), Ok(_)) = (&inputs, &result.outcome) {
                                inputs_of.insert(result.file.rel.clone(), read.clone());
                            }
                            if let (Some(c), Ok(compiled)) = (cache.as_mut(), &result.outcome) {
                                c.store(&result.file, inputs, compiled, &result.output);
                            }
                            emit(idx, result, &mut slots);
                        }
                        None => {
                            tracing::warn!("the compile worker answered an unknown request {id}")
                        }
                    }
                }
                Err(e) => died = Some(e),
            }
        }
        let Some(died) = died else { continue };
        // Files that were only queued go back to the queue; those being compiled are suspects.
        let lost = std::mem::take(&mut in_flight);
        let running: Vec<(usize, Instant)> = lost
            .iter()
            .filter(|(_, (_, started, _))| *started)
            .map(|(idx, (sent, _, _))| (*idx, *sent))
            .collect();
        for idx in lost.keys().rev().filter(|i| !lost[i].1) {
            queue.push_front(*idx);
        }
        if let [(idx, sent)] = running[..] {
            let result = FileResult {
                file: files[idx].clone(),
                outcome: Err(error("crash", &died.to_string(), "")),
                output: String::new(),
                duration: sent.elapsed(),
            };
            emit(idx, result, &mut slots);
        } else {
            tracing::debug!(
                "{died}; running the {} files it was compiling again, one at a time",
                running.len()
            );
            suspects.extend(running.iter().map(|(idx, _)| *idx));
        }
        // Same rules as the first start: the interpreter that was accepted then is accepted now.
        worker = match Worker::start(&launch(settings, &script, &python, jobs, explicit)).await {
            Ok(Started::Ready(w)) => *w,
            Ok(Started::Mismatch { .. }) => break 'run,
            Err(e) => {
                tracing::error!("cannot restart the compile worker: {e:#}");
                break 'run;
            }
        };
    }
    worker.shutdown().await;
    drop(script);
    if let Some(c) = &cache {
        c.prune();
    }

    let mut results: Vec<FileResult> = slots
        .into_iter()
        .zip(files)
        .map(|(slot, file)| {
            slot.unwrap_or_else(|| FileResult {
                file,
                outcome: Err(error(
                    "crash",
                    "not compiled: the compile worker could not be restarted (see the error above)",
                    "",
                )),
                output: String::new(),
                duration: Duration::ZERO,
            })
        })
        .collect();
    mark_duplicate_names(&mut results, settings.name_from);
    Ok(CompileRun {
        kfp_version,
        python,
        discovered: total,
        results,
        duration: started.elapsed(),
        inputs: inputs_of,
    })
}

/// How to start a worker for this run.
fn launch<'a>(
    settings: &'a CompileSettings,
    script: &'a Script,
    python: &'a std::path::Path,
    jobs: usize,
    accept_other_kfp: bool,
) -> Launch<'a> {
    Launch {
        python,
        script: &script.path,
        tmp: script.dir.path(),
        kfp_version: &settings.kfp_version,
        jobs,
        accept_other_kfp,
        python_path: &settings.python_path,
    }
}

/// The worker started with the configured interpreter (`early`). An explicit interpreter
/// (`--python`, `KFP_CI_PYTHON`, `python`) is used with whatever kfp it has: another version than
/// the pin is a warning naming both, or with `strict` an error. Only when it has no kfp at all,
/// or when no interpreter was named and the default one lacks the pin (or `requirements` are set,
/// which only the cached venv installs), does the cached venv's Python take over (built from that
/// interpreter, and said so on stderr).
async fn start_worker(
    settings: &CompileSettings,
    python: &std::path::Path,
    script: &Script,
    jobs: usize,
    early: Result<Spawned>,
) -> Result<(Worker, PathBuf)> {
    let explicit = settings.python.is_some();
    let pin = &settings.kfp_version;
    let found = match early?.ready().await? {
        // The default interpreter has the pin, but nothing says it has the `requirements`: only
        // the cached virtualenv is built with them (an interpreter the user names is trusted).
        Started::Ready(w) if !explicit && !settings.requirements.is_empty() => {
            tracing::debug!(
                "{} has kfp {pin}, but `requirements` are set: compiling in kfp-ci's cached virtualenv, which installs them",
                python.display()
            );
            let found = w.kfp_version.clone();
            w.shutdown().await;
            Some(found)
        }
        Started::Ready(w) => {
            if explicit && &w.kfp_version != pin {
                let message = format!(
                    "{} has kfp {}, but `kfp_version` is {pin}",
                    python.display(),
                    w.kfp_version
                );
                if settings.strict {
                    let found = w.kfp_version.clone();
                    w.shutdown().await;
                    anyhow::bail!(
                        "{message}, and strict mode (--strict or `strict = true`) makes that an error: install kfp=={pin} kfp-kubernetes=={pin} into it, set `kfp_version = \"{found}\"`, or drop --python/KFP_CI_PYTHON/`python` to let kfp-ci build a virtualenv with the pin"
                    );
                }
                tracing::warn!(
                    "{message}: compiling with kfp {} as asked (--strict makes this an error; specs may differ from kfp {pin}'s)",
                    w.kfp_version
                );
            }
            return Ok((*w, python.to_path_buf()));
        }
        Started::Mismatch { found } => found,
    };
    let venv_python = pyenv::ensure_venv(
        python,
        found.as_deref(),
        &settings.kfp_version,
        &settings.requirements,
    )
    .await?;
    match Worker::start(&launch(settings, script, &venv_python, jobs, false)).await? {
        Started::Ready(w) => Ok((*w, venv_python)),
        Started::Mismatch { found } => anyhow::bail!(
            "the virtualenv's Python {} has kfp {} instead of {}",
            venv_python.display(),
            found.as_deref().unwrap_or("(none)"),
            settings.kfp_version
        ),
    }
}

fn error(kind: &str, message: &str, detail: &str) -> PipelineError {
    PipelineError {
        kind: kind.into(),
        message: message.to_string(),
        detail: detail.to_string(),
    }
}

/// Split the recorded inputs off an answer.
fn take_inputs(mut msg: Message) -> (Message, Option<cache::Inputs>) {
    let inputs = match &mut msg {
        Message::Ok { inputs, .. } => inputs.take(),
        _ => None,
    };
    (msg, inputs)
}

fn to_result(file: PipelineFile, msg: Message, elapsed: Duration) -> FileResult {
    match msg {
        Message::Ok {
            yaml,
            function,
            pipeline_name,
            display_name,
            output,
            duration_ms,
            ..
        } => FileResult {
            file,
            outcome: Ok(Compiled {
                yaml,
                function,
                pipeline_name,
                display_name,
            }),
            output,
            duration: Duration::from_millis(duration_ms),
        },
        Message::Error {
            kind,
            message,
            detail,
            output,
            duration_ms,
            ..
        } => FileResult {
            file,
            outcome: Err(error(&kind, &message, &detail)),
            output,
            duration: Duration::from_millis(duration_ms),
        },
        other => FileResult {
            file,
            outcome: Err(error(
                "crash",
                &format!("unexpected answer from the compile worker: {other:?}"),
                "",
            )),
            output: String::new(),
            duration: elapsed,
        },
    }
}

/// Two files giving the same pipeline name: both fail, each naming the other.
fn mark_duplicate_names(results: &mut [FileResult], name_from: NameFrom) {
    let fix = match name_from {
        NameFrom::File => "rename one of the files, or set `name_from = \"pipeline\"`",
        NameFrom::Pipeline => "give one of them another @dsl.pipeline(name=...)",
    };
    let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, r) in results.iter().enumerate() {
        by_name.entry(r.file.name.clone()).or_default().push(i);
    }
    for indices in by_name.values().filter(|v| v.len() > 1) {
        for &i in indices {
            let others: Vec<String> = indices
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| results[j].file.rel.clone())
                .collect();
            let name = results[i].file.name.clone();
            results[i].outcome = Err(error(
                "duplicate_name",
                &format!(
                    "pipeline name `{name}` is also given by {}: {fix}",
                    others.join(", ")
                ),
                "",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(rel: &str, name: &str, ok: bool) -> FileResult {
        FileResult {
            file: PipelineFile {
                path: PathBuf::from("/repo").join(rel),
                rel: rel.to_string(),
                name: name.to_string(),
                function: None,
            },
            outcome: if ok {
                Ok(Compiled {
                    yaml: String::new(),
                    function: "f".into(),
                    pipeline_name: name.into(),
                    display_name: None,
                })
            } else {
                Err(error("syntax", "bad", ""))
            },
            output: String::new(),
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn duplicate_names_fail_each_naming_the_others() {
        let mut results = vec![
            result("a/x_pipeline.py", "x_pipeline", true),
            result("b/x_pipeline.py", "x_pipeline", false),
            result("c/y_pipeline.py", "y_pipeline", true),
        ];
        mark_duplicate_names(&mut results, NameFrom::File);
        let a = results[0].outcome.as_ref().expect_err("duplicate");
        assert_eq!(a.kind, "duplicate_name");
        assert!(a.message.contains("b/x_pipeline.py"), "{}", a.message);
        let b = results[1].outcome.as_ref().expect_err("duplicate");
        assert!(b.message.contains("a/x_pipeline.py"), "{}", b.message);
        assert!(results[2].outcome.is_ok());
    }

    #[test]
    fn worker_messages_map_to_results() {
        let file = result("p_pipeline.py", "p_pipeline", true).file;
        let msg: Message = serde_json::from_str(
            r#"{"type":"error","id":0,"kind":"timeout","message":"did not finish","detail":"","output":"hi\n","duration_ms":1500}"#,
        )
        .expect("parse");
        let r = to_result(file, msg, Duration::ZERO);
        let e = r.outcome.expect_err("error");
        assert_eq!((e.kind.as_str(), r.output.as_str()), ("timeout", "hi\n"));
        assert_eq!(r.duration, Duration::from_millis(1500));
    }
}
