#!/usr/bin/env python3
"""The ideal compile baseline: ONE Python process imports kfp once, then imports
and compiles every pipeline file in-process, with no isolation between files.

Usage: inprocess_compile.py DIR OUTDIR

Compiles every *_pipeline.py below DIR (sorted, recursive, skipping hidden dirs) to
OUTDIR/<file stem>.yaml with kfp's own `collect_pipeline_or_component_from_module`
(the choice `kfp dsl compile` makes without --function) and
`kfp.compiler.Compiler().compile`. Like `kfp dsl compile`, the file's directory
goes first on sys.path while it is imported. Unlike it (and unlike kfp-ci), nothing
is reset between files: modules stay in sys.modules, so two files importing
different `common.helpers` would see the first one. Fine for the generated
benchmark files, which import only kfp. Prints timing on stderr:
"inprocess_compile: N files, F failed, import kfp X s, total Y s".
Run it with the Python of the kfp venv (e.g. /tmp/kfpvenv/bin/python).
"""

import importlib.util
import os
import sys
import time
import traceback


def find_files(root: str) -> list:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(os.path.join(dirpath, f) for f in filenames if f.endswith("_pipeline.py"))
    return sorted(found)


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    root, outdir = sys.argv[1], sys.argv[2]
    started = time.perf_counter()
    from kfp import compiler
    from kfp.cli.compile_ import collect_pipeline_or_component_from_module

    imported = time.perf_counter()
    os.makedirs(outdir, exist_ok=True)
    files = find_files(root)
    failed = 0
    for path in files:
        stem = os.path.splitext(os.path.basename(path))[0]
        directory = os.path.dirname(os.path.abspath(path))
        sys.path.insert(0, directory)
        try:
            spec = importlib.util.spec_from_file_location(stem, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[stem] = module
            spec.loader.exec_module(module)
            pipeline = collect_pipeline_or_component_from_module(module)
            compiler.Compiler().compile(pipeline, os.path.join(outdir, f"{stem}.yaml"))
        except (Exception, SystemExit) as error:  # report and continue, like a batch tool
            failed += 1
            print(f"inprocess_compile: FAILED {path}: {type(error).__name__}: {error}", file=sys.stderr)
            if os.environ.get("VERBOSE"):
                traceback.print_exc()
        finally:
            sys.path.remove(directory)
    done = time.perf_counter()
    print(
        f"inprocess_compile: {len(files)} files, {failed} failed, "
        f"import kfp {imported - started:.3f} s, total {done - started:.3f} s",
        file=sys.stderr,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
