"""kfp-ci compile worker (embedded in the kfp-ci binary, written to a temp file, run as `python -u -B`).

Arguments: TMPDIR KFP_VERSION JOBS ACCEPT_OTHER_KFP ("1": an interpreter the user named, used
whatever its kfp version).

Protocol (one JSON document per line):
  * results go to the worker's *original* stdout, which is duplicated to a private fd at start-up;
    fd 1 itself is pointed at stderr, so nothing printed by kfp or by user code can reach the channel.
  * the first line is {"type": "ready", "kfp_version": ..., "python": ...}.
  * requests arrive on stdin: {"id": N, "path": "/abs/file.py", "function": null | "name", "timeout": S}.
  * each request is answered, when its child finishes, by {"type": "ok", "id": N, ...} or
    {"type": "error", "id": N, ...}; kfp-ci keeps at most --jobs requests in flight, so up to that
    many children compile at the same time.

Each file compiles in a forked child: the parent imported kfp once, the child gets a copy of that
interpreter and nothing else any earlier file did (module cache, sys.path, globals). The child loads the
file the way `kfp dsl compile` does (kfp.cli.compile_: the file's directory first on sys.path,
`__import__(stem)`) and compiles it with `kfp.compiler.Compiler().compile`, so the bytes are the same.
The child's stdout/stderr (fds 1 and 2, so subprocesses too) go to a capture file, returned with the result.
"""

import gc
import json
import os
import select
import signal
import struct
import sys
import time
import traceback

# The result channel: a private copy of the stdout pipe; fd 1 now writes to stderr.
_RESULT_FD = os.dup(1)
os.dup2(2, 1)
_CHANNEL = os.fdopen(_RESULT_FD, "w", encoding="utf-8", buffering=1)

# The worker's own directory (a temp dir) is not something `kfp dsl compile` has on sys.path.
if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

TMPDIR = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
MAX_OUTPUT = 64 * 1024
TRACEBACK_LINES = 20


def send(msg):
    """One message to kfp-ci: a dict, or a line already encoded (a child's answer)."""
    _CHANNEL.write((msg if isinstance(msg, str) else json.dumps(msg)) + "\n")
    _CHANNEL.flush()


# The pin (argv[2]): a worker with another kfp (or none) says so and exits; kfp-ci then uses a
# virtualenv with the pinned version.
EXPECTED_KFP = sys.argv[2] if len(sys.argv) > 2 else ""
# argv[4] == "1": an explicit interpreter; its kfp is used whatever its version (kfp-ci compares
# the version in the ready message and warns). A missing kfp is still a mismatch.
ACCEPT_OTHER_KFP = len(sys.argv) > 4 and sys.argv[4] == "1"


def _mismatch(found):
    send({"type": "mismatch", "found": found, "python": sys.executable})
    sys.stdout.flush()
    os._exit(0)


def _installed_kfp_version():
    """The version of the kfp distribution on sys.path, from its .dist-info directory name (what
    importlib.metadata reads, without its import cost); None when not found this way."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.startswith("kfp-") and name.endswith(".dist-info"):
                return name[len("kfp-") : -len(".dist-info")]
    return None


if EXPECTED_KFP and not ACCEPT_OTHER_KFP:
    _listed = _installed_kfp_version()
    if _listed is not None and _listed != EXPECTED_KFP:
        _mismatch(_listed)

# `import kfp` also imports kfp.client (the REST client, with the kubernetes client, google-auth and
# kfp-server-api): about half of its import time, and nothing compiling needs it. kfp's own
# __init__ skips it (with dsl and components) when _KFP_RUNTIME=true, which is how kfp's container
# entrypoint imports it. The worker imports kfp that way, then imports components and dsl exactly
# as __init__ would have, and binds `kfp.Client` / `kfp.client` on first use (PEP 562 module
# __getattr__), so a file that uses them still gets the real ones. Only when kfp's __init__ ends
# with exactly that block; otherwise a plain `import kfp`.
_KFP_INIT_TAIL = (
    "if os.environ.get('_KFP_RUNTIME', 'false') != 'true':",
    "from kfp import components",
    "from kfp import dsl",
    "from kfp.client import Client",
)


def _can_defer_kfp_client():
    if "_KFP_RUNTIME" in os.environ:
        return False
    try:
        import importlib.util

        spec = importlib.util.find_spec("kfp")
        with open(spec.origin, encoding="utf-8") as f:
            source = f.read()
    except Exception:  # noqa: BLE001 - then a plain import
        return False
    lines = [line.split("#")[0].strip() for line in source.splitlines()]
    lines = [line for line in lines if line]
    return tuple(lines[-len(_KFP_INIT_TAIL) :]) == _KFP_INIT_TAIL


def _kfp_getattr(name):
    """kfp.Client and kfp.client, imported when first used (as kfp's __init__ would have)."""
    if name in ("Client", "client"):
        import importlib

        client = importlib.import_module("kfp.client")
        kfp.Client = client.Client
        return client if name == "client" else client.Client
    raise AttributeError(f"module 'kfp' has no attribute {name!r}")


class _Deferred(type(sys)):
    """Stands in for a module kfp imports at start-up but only uses in functions a compile does not
    call (`requests`: kfp.components' load_component_from_url). Its first attribute use imports the
    real module and forwards to it. It is in sys.modules only while kfp is imported: later imports,
    user code's included, get the real module."""

    def __getattr__(self, attr):
        import importlib

        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


def _import_kfp():
    global kfp
    deferred = {name: _Deferred(name) for name in ("requests",) if name not in sys.modules}
    sys.modules.update(deferred)
    try:
        if not _can_defer_kfp_client():
            import kfp
            return
        os.environ["_KFP_RUNTIME"] = "true"
        try:
            import kfp
        finally:
            del os.environ["_KFP_RUNTIME"]
        import kfp.components  # noqa: F401 - as kfp/__init__.py does
        import kfp.dsl  # noqa: F401

        kfp.__getattr__ = _kfp_getattr
    finally:
        for name, module in deferred.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


try:
    import logging

    _import_kfp()
except ImportError:
    if EXPECTED_KFP:
        _mismatch(None)
    send({"type": "fatal", "message": f"cannot import kfp: {traceback.format_exc(limit=1)}"})
    sys.exit(3)
except BaseException as e:  # noqa: BLE001 - a broken kfp install
    if EXPECTED_KFP and not ACCEPT_OTHER_KFP:
        try:
            import importlib.metadata

            _mismatch(importlib.metadata.version("kfp"))
        except Exception:  # noqa: BLE001
            pass
    send({"type": "fatal", "message": f"cannot import kfp: {type(e).__name__}: {e}"})
    sys.exit(3)
if EXPECTED_KFP and not ACCEPT_OTHER_KFP and getattr(kfp, "__version__", None) != EXPECTED_KFP:
    _mismatch(getattr(kfp, "__version__", None))

try:
    from kfp import compiler
    from kfp.cli import compile_ as kfp_compile_cli
    from kfp.dsl import pipeline_context
    from kfp.dsl.pipeline_context import Pipeline
except BaseException as e:  # noqa: BLE001 - reported to kfp-ci, which explains what to install
    send({"type": "fatal", "message": f"cannot import kfp: {type(e).__name__}: {e}"})
    sys.exit(3)

# kfp-kubernetes (optional) imports the kubernetes client: ~0.2 s. The worker imports it once, in
# the parent, before it forks the first file whose source mentions "kubernetes", so every file that
# uses it inherits it; a run without such files does not pay for it. (A file that only imports it
# through a helper module imports it in its child: slower, same result.)
_KUBERNETES = {"tried": False}


def _preload_kubernetes(path):
    if _KUBERNETES["tried"]:
        return
    try:
        with open(path, "rb") as f:
            if b"kubernetes" not in f.read():
                return
    except OSError:
        return
    _KUBERNETES["tried"] = True
    try:
        import kfp.kubernetes  # noqa: F401
    except Exception:  # noqa: BLE001 - not installed: the file's own import reports it
        pass

KFP_DIR = os.path.dirname(os.path.abspath(kfp.__file__))

# `kfp dsl compile` configures logging like this before it runs (kfp/cli/__main__.py).
logging.basicConfig(format="%(message)s", level=logging.INFO)


def _resolve_cli_options():
    """The options `kfp dsl compile` would take from the environment, resolved by its own click command."""
    opts = {
        "disable_execution_caching_by_default": False,
        "disable_type_check": False,
        "pipeline_parameters": None,
    }
    try:
        ctx = kfp_compile_cli.compile_.make_context(
            "compile",
            ["--py", os.path.abspath(__file__), "--output", "unused.yaml"],
            auto_envvar_prefix="KFP_DSL_COMPILE",
        )
        for key in opts:
            if key in ctx.params:
                opts[key] = ctx.params[key]
    except BaseException as e:  # noqa: BLE001
        sys.stderr.write(f"kfp-ci worker: cannot read kfp's compile options from the environment: {e}\n")
    return opts


CLI_OPTIONS = _resolve_cli_options()

# Which pipelines are used as a step of another pipeline: every task added to a pipeline records
# its component spec; a pipeline whose spec was used is not a root.
_USED_SPECS = []
_original_add_task = pipeline_context.Pipeline.add_task


def _recording_add_task(self, task, *args, **kwargs):
    spec = getattr(task, "component_spec", None)
    if spec is not None:
        _USED_SPECS.append(spec)
    return _original_add_task(self, task, *args, **kwargs)


pipeline_context.Pipeline.add_task = _recording_add_task


def _deterministic_archives():
    """Embedded archives (__KFP_EMBEDDED_ARCHIVE_B64) carry a gzip timestamp and file owners and
    times: fix them so the same source gives the same bytes on every run and machine."""
    import gzip
    import tarfile

    original_compress = gzip.compress

    def compress(data, compresslevel=9, *, mtime=None):
        return original_compress(data, compresslevel, mtime=0 if mtime is None else mtime)

    gzip.compress = compress

    original_add = tarfile.TarFile.add

    def normalise(info):
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    def add(self, name, arcname=None, recursive=True, *, filter=None):
        def chained(info):
            info = normalise(info)
            return filter(info) if filter is not None else info

        return original_add(self, name, arcname, recursive, filter=chained)

    tarfile.TarFile.add = add


def _deterministic_header():
    """The `# Inputs:` header comment prints dict defaults in the order of a protobuf Struct round
    trip, which with protobuf's upb backend depends on a per-process seed (ASLR), not on
    PYTHONHASHSEED. Sort those dicts so the header is the same in every process; files without dict
    defaults are unaffected (kfp's bytes exactly)."""
    from kfp.compiler import pipeline_spec_builder

    original = pipeline_spec_builder.extract_comments_from_pipeline_spec

    def ordered(value):
        if isinstance(value, dict):
            return {k: ordered(value[k]) for k in sorted(value)}
        if isinstance(value, list):
            return [ordered(v) for v in value]
        return value

    def extract(pipeline_spec, pipeline_description):
        try:
            root = pipeline_spec.get("root", {})
            for section in ("inputDefinitions", "outputDefinitions"):
                for body in root.get(section, {}).get("parameters", {}).values():
                    if isinstance(body, dict) and "defaultValue" in body:
                        body["defaultValue"] = ordered(body["defaultValue"])
        except Exception:  # noqa: BLE001 - never worse than kfp itself
            pass
        return original(pipeline_spec, pipeline_description)

    pipeline_spec_builder.extract_comments_from_pipeline_spec = extract


def _fast_caller_name():
    """kfp's PipelineTask._ensure_container_spec_exists (run by set_cpu_limit, set_env_variable &
    co.) calls inspect.stack() only to name its caller in an error message; inspect.stack() reads
    the source of every frame and scans every loaded module, the largest cost of compiling a small
    pipeline. The same name is the caller frame's code name: use that. Only when kfp's function is
    the one this replacement was written for (kfp 2.x); otherwise kfp's own runs."""
    import inspect

    from kfp.dsl import pipeline_task

    original = pipeline_task.PipelineTask._ensure_container_spec_exists
    try:
        source = inspect.getsource(original)
    except (OSError, TypeError):
        return False
    expected = (
        "caller_method_name = inspect.stack()[1][3]",
        "if self.container_spec is None:",
        "can only be used on single-step components, not pipelines used as components, or special components like importers.",
    )
    if not all(e in source for e in expected) or source.count("\n") > 12:
        return False

    def _ensure_container_spec_exists(self) -> None:
        """Ensures that the task has a container spec."""
        caller_method_name = sys._getframe(1).f_code.co_name

        if self.container_spec is None:
            raise ValueError(
                f"{caller_method_name} can only be used on single-step components, not pipelines used as components, or special components like importers."
            )

    pipeline_task.PipelineTask._ensure_container_spec_exists = _ensure_container_spec_exists
    return True


WORKER_FILE = os.path.abspath(__file__)


def _user_traceback(exc):
    """The exception's traceback without kfp-ci's own worker frames: users see their file and kfp."""
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    te.stack = traceback.StackSummary.from_list(
        [f for f in te.stack if os.path.abspath(f.filename) != WORKER_FILE]
    )
    return "".join(te.format())


def _tail(text, lines=TRACEBACK_LINES):
    parts = text.rstrip("\n").split("\n")
    return "\n".join(parts[-lines:])


def _user_location(tb, path):
    """The deepest traceback line in the pipeline file itself."""
    line = None
    for frame in traceback.extract_tb(tb):
        if os.path.abspath(frame.filename) == path:
            line = frame.lineno
    return line


_SKIPPED_DIRS = {"venv", "site-packages", "node_modules", "__pycache__"}


def _holds_python(directory):
    try:
        return any(n.endswith(".py") for n in os.listdir(directory))
    except OSError:
        return False


def _find_in_repository(root, top):
    """Directories (relative to the repository root, '.' for the root) that hold the module or
    package `top`, shallowest first; hidden directories and virtualenvs are not searched, and the
    walk is bounded (this only improves an error message)."""
    found = []
    visited = 0
    for dirpath, dirnames, filenames in os.walk(root):
        visited += 1
        if visited > 5000 or len(found) >= 3:
            break
        depth = 0 if dirpath == root else os.path.relpath(dirpath, root).count(os.sep) + 1
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".")
            and d not in _SKIPPED_DIRS
            and depth < 6
            and not os.path.exists(os.path.join(dirpath, d, "pyvenv.cfg"))
        )
        if f"{top}.py" in filenames or (top in dirnames and _holds_python(os.path.join(dirpath, top))):
            found.append(os.path.relpath(dirpath, root).replace(os.sep, "/"))
    found.sort(key=lambda d: (d != ".", d.count("/"), d))
    return found


def _missing_module_message(name, root):
    """A module that is not installed: when it is a local package of the repository, the hint is
    to put its directory on the import path (`python_path`), not to install it."""
    top = name.split(".")[0]
    if top != name and top in sys.modules:
        found = getattr(sys.modules[top], "__file__", None) or top
        return f"missing module `{name}` (`{top}` was imported from {found}, which has no `{name[len(top) + 1:]}`)"
    where = _find_in_repository(root, top) if root and os.path.isdir(root) else []
    if not where:
        return f"missing module `{name}` (install it in the compile environment: `requirements` in kfp-ci.toml)"
    parent = where[0]
    module = top if parent == "." else f"{parent}/{top}"
    on_path = root if parent == "." else os.path.join(root, parent)
    return (
        f"missing module `{name}`: `{module}` is in this repository but not on the import path; "
        f"add `python_path = [\"{parent}\"]` to kfp-ci.toml "
        f"(for `kfp dsl compile`: PYTHONPATH={on_path})"
    )


def _classify(exc, path, phase, root=None):
    tb_text = _user_traceback(exc)
    detail = _tail(tb_text)
    rel = os.path.basename(path)
    if isinstance(exc, SyntaxError):
        where = exc.filename or path
        loc = f"{os.path.basename(where)}:{exc.lineno}" if exc.lineno else os.path.basename(where)
        return {
            "kind": "syntax",
            "message": f"syntax error at {loc}: {exc.msg}",
            "detail": detail,
            "line": exc.lineno if where == path else None,
        }
    if isinstance(exc, ImportError) and phase == "import":
        name = getattr(exc, "name", None)
        if isinstance(exc, ModuleNotFoundError) and name:
            message = _missing_module_message(name, root)
        else:
            message = f"import failed: {exc}"
        return {"kind": "import", "message": message, "detail": detail, "line": _user_location(exc.__traceback__, path)}
    in_kfp = any(
        os.path.abspath(f.filename).startswith(KFP_DIR + os.sep)
        for f in traceback.extract_tb(exc.__traceback__)
    )
    line = _user_location(exc.__traceback__, path)
    where = f" (line {line})" if line else ""
    first = str(exc).strip().split("\n")[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    if phase == "compile" or in_kfp:
        return {"kind": "compile", "message": f"kfp could not compile {rel}{where}: {text}", "detail": detail, "line": line}
    return {"kind": "import", "message": f"importing {rel} raised {text}{where}", "detail": detail, "line": line}


def _select_function(module, stem, rel):
    """Mirror kfp.cli.compile_.collect_pipeline_or_component_from_module, choosing a root when a
    file defines several pipelines. Returns (attribute name, object) or raises _Reject."""
    pipelines = []  # (attr, obj), one per object
    components = []
    seen = set()
    for attr in dir(module):
        obj = getattr(module, attr)
        if id(obj) in seen:
            continue
        if kfp_compile_cli.is_pipeline_func(obj):
            seen.add(id(obj))
            pipelines.append((attr, obj))
        elif kfp_compile_cli.is_component_func(obj):
            seen.add(id(obj))
            components.append((attr, obj))
    if len(pipelines) == 1:
        return pipelines[0]
    if not pipelines:
        # As kfp: a file with no pipeline and exactly one component compiles that component
        # (its pipeline spec is a one-step pipeline); several are an error naming them.
        if len(components) == 1:
            return components[0]
        if components:
            names = ", ".join(a for a, _ in components)
            raise _Reject(
                "several_components",
                f"no @dsl.pipeline and several components ({names}): pick one with `functions` in kfp-ci.toml, "
                f"e.g. [functions] \"{rel}\" = \"{components[0][0]}\"",
            )
        raise _Reject("no_pipeline", "no @dsl.pipeline function or component in this file")
    used = {id(s) for s in _USED_SPECS}
    roots = [(a, p) for a, p in pipelines if id(p.component_spec) not in used]
    if len(roots) == 1:
        return roots[0]
    candidates = roots or pipelines
    for attr, obj in candidates:
        if attr == stem:
            return attr, obj
    names = ", ".join(a for a, _ in candidates)
    raise _Reject(
        "several_pipelines",
        f"several root pipelines ({names}): pick one with `functions` in kfp-ci.toml, "
        f"e.g. [functions] \"{rel}\" = \"{candidates[0][0]}\"",
    )


class _Reject(Exception):
    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message



# --- Input recording (the compile cache) -------------------------------------------------------
# A child asked to record ({"record": true}) notes what its compile read: every file opened (an
# audit hook on `open`, which also sees each module's source or bytecode as it is imported, and
# the data files load_component_from_file & co. read), every directory listed outside the import
# system, every environment variable read (os.environ is swapped for a recording subclass), and
# any network use or subprocess: such a compile is never cached. Files of the interpreter and its
# installed distributions are left out: kfp-ci keys the cache on those as a whole.
# Imported here, before any fork: importing hashlib (OpenSSL) in each child costs ~10 ms.
import hashlib
import importlib.util

_NEVER_CACHE_EVENTS = {
    "socket.connect": "connected to the network",
    "socket.getaddrinfo": "looked up a host name",
    "urllib.Request": "opened a URL",
    "subprocess.Popen": "started a subprocess",
    "os.system": "started a subprocess",
    "os.exec": "started a program",
    "os.posix_spawn": "started a program",
    "os.fork": "forked",
    "ctypes.dlopen": "loaded a native library",
}


def _environment_prefixes():
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    for entry in sys.path:
        if entry and ("site-packages" in entry or "dist-packages" in entry):
            prefixes.add(os.path.realpath(entry))
    prefixes.add(os.path.realpath(TMPDIR))
    prefixes.update(("/dev", "/proc", "/sys"))
    return tuple(p.rstrip(os.sep) + os.sep for p in sorted(prefixes))


def _describe_environment():
    """What the cache keys on for the interpreter: its path and version, and every sys.path
    directory's modification time with the names of the distributions installed there (adding,
    removing or upgrading one changes its directory's time)."""
    dists = []
    paths = []
    for entry in sys.path:
        entry = os.path.abspath(entry or ".")
        try:
            mtime = os.stat(entry).st_mtime_ns
            names = os.listdir(entry) if os.path.isdir(entry) else []
        except OSError:
            mtime, names = None, []
        paths.append([entry, mtime])
        dists.extend(n for n in names if n.endswith((".dist-info", ".egg-info", ".egg-link", ".pth")))
    return {
        "executable": sys.executable,
        "version": sys.version,
        "paths": paths,
        "dists": sorted(dists),
    }


_RECORDER = None
# Computed once in the worker, before it forks (realpath costs a few system calls per path).
_PREFIXES = None


class _RecordingEnviron(type(os.environ)):
    """os.environ (and os.environb) in a recording child: each variable read is noted."""

    def __getitem__(self, key):
        try:
            value = super().__getitem__(key)
        except KeyError:
            _RECORDER.env.setdefault(_env_name(key), None)
            raise
        _RECORDER.env.setdefault(_env_name(key), _env_name(value))
        return value

    def __iter__(self):
        _RECORDER.whole_env = True
        return super().__iter__()


class _Recorder:
    def __init__(self):
        self.opened = set()
        self.listed = set()
        self.env = {}
        self.whole_env = False
        self.never = None
        self.prefixes = _PREFIXES or _environment_prefixes()

    def hook(self, event, args):
        if event == "open":
            path = args[0]
            if isinstance(path, int):
                return
            mode, flags = args[1], args[2]
            if isinstance(mode, str) and ("w" in mode or "a" in mode or "x" in mode) and "+" not in mode:
                return
            if mode is None and flags & 3 == os.O_WRONLY:
                return
            self.opened.add(path)
        elif event == "os.listdir" or event == "os.scandir":
            # The import system lists each directory on sys.path to cache its names: not a read
            # of the pipeline's (a new module there is a change to the importing file's directory).
            if sys._getframe(1).f_code.co_name != "_fill_cache":
                self.listed.add(args[0])
        elif event in _NEVER_CACHE_EVENTS and self.never is None:
            self.never = f"{_NEVER_CACHE_EVENTS[event]} ({event})"

    def install(self):
        global _RECORDER
        _RECORDER = self
        sys.addaudithook(self.hook)
        os.environ.__class__ = _RecordingEnviron
        os.environb.__class__ = _RecordingEnviron

    def report(self):
        """The inputs, with content hashes taken now (after the compile read them)."""
        if self.never is not None:
            return {"never": self.never}
        if self.whole_env:
            return {"never": "read the whole environment (os.environ iterated or copied)"}
        files = {}
        # (Copies: hashing opens the files again, and the hook is still installed.)
        for path in list(self.opened):
            try:
                path = os.path.abspath(os.fsdecode(path))
            except (TypeError, ValueError):
                return {"never": f"opened a path kfp-ci cannot record ({path!r})"}
            if path.endswith(".pyc") and os.path.basename(os.path.dirname(path)) == "__pycache__":
                try:
                    path = importlib.util.source_from_cache(path)
                except ValueError:
                    pass
            if path.startswith(self.prefixes) or path in files:
                continue
            try:
                with open(path, "rb") as f:
                    files[path] = hashlib.sha256(f.read()).hexdigest()
            except IsADirectoryError:
                files[path] = "dir:" + _listing_hash(path)
            except OSError:
                files[path] = None
        dirs = {}
        for path in list(self.listed):
            try:
                path = os.path.abspath(os.fsdecode(path))
            except (TypeError, ValueError):
                return {"never": "listed a directory kfp-ci cannot record"}
            if not path.startswith(self.prefixes):
                dirs[path] = _listing_hash(path)
        return {
            "files": sorted(files.items()),
            "dirs": sorted(dirs.items()),
            "env": sorted(self.env.items()),
        }


def _env_name(value):
    return os.fsdecode(value) if isinstance(value, bytes) else value


def _listing_hash(path):
    """sha256 of the directory's entry names, sorted, one per line (kfp-ci computes the same)."""
    try:
        names = sorted(os.listdir(path))
    except OSError:
        return "absent"
    return hashlib.sha256("".join(n + "\n" for n in names).encode("utf-8", "surrogateescape")).hexdigest()


def _compile_in_child(req, out_path):
    """Runs in the forked child. Returns the result dict."""
    path = req["path"]
    function_name = req.get("function")
    # What the file sees of its command line, as under `kfp dsl compile --py FILE --output OUT`.
    sys.argv = [os.path.join(os.path.dirname(sys.executable), "kfp"), "dsl", "compile", "--py", path, "--output", out_path]
    # As kfp.cli.compile_.compile_: the caching default is set before the module is imported.
    Pipeline._execution_caching_default = not CLI_OPTIONS["disable_execution_caching_by_default"]
    filename = os.path.basename(path)
    module_name = os.path.splitext(filename)[0]
    sys.path.insert(0, os.path.dirname(path))
    try:
        try:
            if function_name is None:
                module = __import__(module_name)
            else:
                module = __import__(module_name, fromlist=[function_name])
        except SystemExit:
            raise
        except BaseException as e:  # noqa: BLE001
            return {"type": "error", **_classify(e, path, "import", req.get("root"))}
        if getattr(module, "__file__", None) and os.path.abspath(module.__file__) != path:
            return {
                "type": "error",
                "kind": "import",
                "message": f"`import {module_name}` loaded {module.__file__}, not this file: rename the file",
                "detail": "",
            }
        if function_name is None:
            try:
                attr, func = _select_function(module, module_name, req.get("rel") or filename)
            except _Reject as r:
                return {"type": "error", "kind": r.kind, "message": r.message, "detail": ""}
        else:
            if not hasattr(module, function_name):
                return {
                    "type": "error",
                    "kind": "no_pipeline",
                    "message": f'Pipeline function or component "{function_name}" not found in module {filename}.',
                    "detail": "",
                }
            attr, func = function_name, getattr(module, function_name)
    finally:
        del sys.path[0]
    params = CLI_OPTIONS["pipeline_parameters"]
    try:
        parameters = json.loads(params) if params is not None else {}
        compiler.Compiler().compile(
            pipeline_func=func,
            pipeline_parameters=parameters,
            package_path=out_path,
            type_check=not CLI_OPTIONS["disable_type_check"],
            kubernetes_manifest_options=None,
            kubernetes_manifest_format=False,
        )
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001
        return {"type": "error", **_classify(e, path, "compile")}
    with open(out_path, encoding="utf-8") as f:
        yaml_text = f.read()
    spec = getattr(func, "pipeline_spec", None)
    pipeline_name = spec.pipeline_info.name if spec is not None else getattr(func, "name", attr)
    display_name = spec.pipeline_info.display_name if spec is not None else ""
    return {
        "type": "ok",
        "yaml": yaml_text,
        "function": attr,
        "pipeline_name": pipeline_name,
        "display_name": display_name or None,
    }


try:  # prctl(PR_SET_PDEATHSIG) for the children, looked up once here
    import ctypes

    _LIBC = ctypes.CDLL(None, use_errno=True)
    _LIBC.prctl  # noqa: B018 - fails early where there is no prctl
except Exception:  # noqa: BLE001
    _LIBC = None


def _die_with_parent():
    """Linux: the child is killed when its worker dies (kfp-ci interrupted), even in a hang."""
    if _LIBC is not None:
        try:
            _LIBC.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except Exception:  # noqa: BLE001 - the per-file timeout still applies
            pass


def _child(req, result_w, capture_path, out_path, parent_pid):
    os.setpgid(0, 0)
    _die_with_parent()
    if os.getppid() != parent_pid:
        os._exit(70)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    cap = os.open(capture_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(cap, 1)
    os.dup2(cap, 2)
    os.close(cap)
    os.close(devnull)
    try:
        os.close(_RESULT_FD)
    except OSError:
        pass
    status = 0
    recorder = None
    if req.get("record"):
        try:
            recorder = _Recorder()
            recorder.install()
        except BaseException as e:  # noqa: BLE001 - then this compile is not cached
            sys.stderr.write(f"kfp-ci worker: cannot record inputs: {e}\n")
            recorder = None
    try:
        result = _compile_in_child(req, out_path)
        if recorder is not None and result.get("type") == "ok":
            result["inputs"] = recorder.report()
    except SystemExit as e:
        code = e.code
        if code is None:
            status = 0
        elif isinstance(code, int):
            status = code
        else:
            sys.stderr.write(f"{code}\n")
            status = 1
        result = {
            "type": "error",
            "kind": "crash",
            "message": f"the file called sys.exit() and exited with status {status} before it compiled",
            "detail": _tail(_user_traceback(e)),
            "exit_status": status,
        }
    except BaseException as e:  # noqa: BLE001
        result = {"type": "error", **_classify(e, req["path"], "import", req.get("root"))}
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    payload = json.dumps(result).encode("utf-8")
    data = struct.pack(">Q", len(payload)) + payload
    view = memoryview(data)
    while view:
        n = os.write(result_w, view)
        view = view[n:]
    os._exit(0)


def _read_capture(path):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - MAX_OUTPUT))
            data = f.read()
        os.unlink(path)
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    if size > MAX_OUTPUT:
        text = f"[... {size - MAX_OUTPUT} bytes of output left out ...]\n" + text
    return text


def _describe_status(status):
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by signal {sig} ({name})", 128 + sig
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
    return f"exited with status {code}", code


class _Running:
    """One forked child compiling one file."""

    def __init__(self, req):
        self.req = req
        self.id = req["id"]
        self.timeout = float(req.get("timeout") or 120)
        self.capture_path = os.path.join(TMPDIR, f"output-{os.getpid()}-{self.id}.txt")
        self.out_path = os.path.join(TMPDIR, f"spec-{os.getpid()}-{self.id}.yaml")
        r, w = os.pipe()
        self.started = time.monotonic()
        self.deadline = self.started + self.timeout
        parent_pid = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                _child(req, w, self.capture_path, self.out_path, parent_pid)
            finally:
                os._exit(70)
        os.close(w)
        self.pid = pid
        self.fd = r
        self.buf = bytearray()
        self.need = None

    def feed(self):
        """Read what the child sent; True when its answer is complete or the pipe closed."""
        chunk = os.read(self.fd, 1 << 20)
        if not chunk:
            return True
        self.buf += chunk
        if self.need is None and len(self.buf) >= 8:
            self.need = struct.unpack(">Q", bytes(self.buf[:8]))[0]
        return self.need is not None and len(self.buf) >= 8 + self.need

    def finish(self, timed_out):
        os.close(self.fd)
        if timed_out:
            for kill in (os.killpg, os.kill):
                try:
                    kill(self.pid, signal.SIGKILL)
                except OSError:
                    pass
        _, status = os.waitpid(self.pid, 0)
        # Whatever the file started (daemons, subprocesses) ends with it.
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass
        elapsed = time.monotonic() - self.started
        output = _read_capture(self.capture_path)
        try:
            os.unlink(self.out_path)
        except OSError:
            pass
        complete = self.need is not None and len(self.buf) >= 8 + self.need
        if timed_out:
            result = {
                "type": "error",
                "kind": "timeout",
                "message": f"did not finish within {self.timeout:g}s and was killed (raise --timeout if it is just slow)",
                "detail": "",
            }
        elif complete:
            # The child's answer goes to kfp-ci as the child encoded it, with the worker's fields
            # appended: the spec is not decoded and encoded again here (less work and fewer page
            # faults in the worker, which forks the next file meanwhile).
            body = self.buf[8 : 8 + self.need].decode("utf-8")
            if body.startswith("{") and body.endswith("}") and len(body) > 2:
                extra = json.dumps({"id": self.id, "output": output, "duration_ms": int(elapsed * 1000)})
                return body[:-1] + ", " + extra[1:]
            result = json.loads(body)
        else:
            text, code = _describe_status(status)
            result = {
                "type": "error",
                "kind": "crash",
                "message": f"the process compiling it {text} before it finished (os._exit, a crash or a signal)",
                "detail": "",
                "exit_status": code,
            }
        result["id"] = self.id
        result["output"] = output
        result["duration_ms"] = int(elapsed * 1000)
        return result


JOBS = max(1, int(sys.argv[3])) if len(sys.argv) > 3 else 1


def serve():
    """Queue the requests as they arrive, keep up to JOBS children compiling, start the next one as
    soon as one finishes (before answering, so no round trip to kfp-ci sits between two files), and
    answer each request when its child finishes. A {"type": "started", "id": N} line tells kfp-ci
    which files were running, should the worker die."""
    running = {}  # fd -> _Running
    queued = []
    pending = bytearray()
    stdin_open = True

    def start_next():
        while queued and len(running) < JOBS:
            req = queued.pop(0)
            _preload_kubernetes(req["path"])
            try:
                child = _Running(req)
            except BaseException as e:  # noqa: BLE001 - e.g. fork failed (out of memory)
                send(
                    {
                        "type": "error",
                        "id": req.get("id"),
                        "kind": "crash",
                        "message": f"kfp-ci worker could not start a process for it: {type(e).__name__}: {e}",
                        "detail": _tail(traceback.format_exc()),
                        "output": "",
                    }
                )
                continue
            running[child.fd] = child
            send({"type": "started", "id": child.id})

    while stdin_open or running or queued:
        now = time.monotonic()
        wait = None
        if running:
            wait = max(0.0, min(r.deadline for r in running.values()) - now)
        fds = ([0] if stdin_open else []) + list(running)
        ready, _, _ = select.select(fds, [], [], wait)
        answers = []
        for fd in ready:
            if fd == 0:
                data = os.read(0, 1 << 16)
                if not data:
                    stdin_open = False
                    continue
                pending += data
                while b"\n" in pending:
                    line, _, rest = bytes(pending).partition(b"\n")
                    pending = bytearray(rest)
                    if line.strip():
                        queued.append(json.loads(line))
            else:
                child = running[fd]
                if child.feed():
                    del running[fd]
                    answers.append(child.finish(timed_out=False))
        now = time.monotonic()
        for fd, child in list(running.items()):
            if child.deadline <= now:
                del running[fd]
                answers.append(child.finish(timed_out=True))
        start_next()
        for answer in answers:
            send(answer)


_WARMUP_SOURCE = """
from kfp import dsl


@dsl.component(base_image="python:3.11-slim")
def kfp_ci_warmup_prepare(rows: int, data: dsl.Output[dsl.Dataset]) -> str:
    '''Prepare rows (a docstring: kfp parses it with docstring_parser, whose regular expressions
    are then compiled once here instead of in every child).

    Args:
        rows: how many rows.
        data: where they go.

    Returns:
        A label.
    '''
    return "x"


@dsl.component(base_image="python:3.11-slim")
def kfp_ci_warmup_train(data: dsl.Input[dsl.Dataset], epochs: int, model: dsl.Output[dsl.Model], metrics: dsl.Output[dsl.Metrics]) -> float:
    return 0.5


@dsl.pipeline(name="kfp-ci-warmup")
def kfp_ci_warmup(rows: int = 100, epochs: int = 3, options: dict = {"a": 1}):
    prep = kfp_ci_warmup_prepare(rows=rows)
    with dsl.If(prep.outputs["Output"] == "x"):
        train = kfp_ci_warmup_train(data=prep.outputs["data"], epochs=epochs)
        train.set_retry(num_retries=2).set_caching_options(False)
        train.set_cpu_limit("1").set_memory_limit("1G").set_env_variable("A", "b")
"""


def _warm_up(scan_modules):
    """Compile a small pipeline once in the parent, so every forked child inherits kfp's lazily
    built state (imports, caches) instead of building it again. Nothing of it stays visible to
    the files: the module is dropped and the recorded tasks are cleared."""
    import importlib.util

    path = os.path.join(TMPDIR, "kfp_ci_warmup.py")
    out = os.path.join(TMPDIR, "kfp_ci_warmup.yaml")
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(_WARMUP_SOURCE)
        spec = importlib.util.spec_from_file_location("kfp_ci_warmup", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        compiler.Compiler().compile(pipeline_func=module.kfp_ci_warmup, package_path=out)
        if scan_modules:
            # kfp calls inspect.stack() (set_cpu_limit & co.); its first call maps every loaded
            # module to its file (~0.2 s). Done here, each child only maps its own new modules.
            import inspect

            inspect.stack()
    except BaseException as e:  # noqa: BLE001 - only a lost optimisation
        sys.stderr.write(f"kfp-ci worker: warm-up failed (compiles will be slower): {e}\n")
    finally:
        _USED_SPECS.clear()
        sys.modules.pop("kfp_ci_warmup", None)
        # Warnings seen during the warm-up must still be shown (once) to each file.
        import warnings

        warnings._filters_mutated()
        for p in (path, out):
            try:
                os.unlink(p)
            except OSError:
                pass


def main():
    _deterministic_archives()
    _deterministic_header()
    _warm_up(scan_modules=not _fast_caller_name())
    send(
        {
            "type": "ready",
            "kfp_version": getattr(kfp, "__version__", "unknown"),
            "python": ".".join(str(v) for v in sys.version_info[:3]),
            "pid": os.getpid(),
            "environment": _describe_environment(),
        }
    )
    # Objects alive now are shared with every child; keep the collector from touching (copying) them.
    # (No gc.collect() first: 5-15 ms before the first fork, to free a little of the warm-up's
    # garbage that the children would never touch anyway.)
    global _PREFIXES
    _PREFIXES = _environment_prefixes()
    gc.freeze()
    serve()
    # Nothing left to clean up: skip the interpreter's teardown of every kfp module.
    _CHANNEL.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
