#!/usr/bin/env python3
"""The deploy step kfp-ci replaces: upload compiled pipelines one by one with kfp.Client.

Usage: old_deploy.py ENDPOINT DIR [--version-name NAME]

For every DIR/*.yaml (sorted), pipeline name = file stem (as the existing
workflow names its KFP pipelines), then, strictly one after the other:
  - kfp.Client(host=ENDPOINT).get_pipeline_id(name)
  - not found: client.upload_pipeline(path, pipeline_name=name)
  - found:     client.upload_pipeline_version(path, pipeline_version_name=VERSION, pipeline_id=id)
There is no change detection: an unchanged pipeline gets a new version every run,
which is what this workflow did. VERSION defaults to vYYYYMMDD-HHMMSS-<6 hex>, computed
once per run (UTC) so it is unique per run even when two runs start in the same second.

Prints one line per pipeline on stderr (kfp.Client's own "Pipeline details: ..." lines
go to stdout) and a summary: "old_deploy: N pipelines, C created, V new versions,
F failed, S.SSS s". Exit 1 when any failed, 2 on usage errors.
Run it with the Python of the kfp venv (e.g. /tmp/kfpvenv/bin/python).
"""

import argparse
import datetime
import glob
import os
import sys
import time
import uuid


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("endpoint", help="KFP API base URL, e.g. http://127.0.0.1:8899")
    parser.add_argument("dir", help="directory of compiled pipeline YAML files")
    parser.add_argument("--version-name", help="version name for existing pipelines (default: vYYYYMMDD-HHMMSS-xxxxxx)")
    args = parser.parse_args()

    files = sorted(glob.glob(os.path.join(args.dir, "*.yaml")))
    if not files:
        print(f"old_deploy: no *.yaml in {args.dir}", file=sys.stderr)
        return 2
    version = args.version_name or (
        datetime.datetime.now(datetime.timezone.utc).strftime("v%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    )

    started = time.perf_counter()
    import kfp

    client = kfp.Client(host=args.endpoint)
    created = versioned = failed = 0
    for path in files:
        name = os.path.splitext(os.path.basename(path))[0]
        try:
            pipeline_id = client.get_pipeline_id(name)
            if pipeline_id is None:
                pipeline = client.upload_pipeline(path, pipeline_name=name)
                created += 1
                print(f"old_deploy: created {name} ({pipeline.pipeline_id})", file=sys.stderr)
            else:
                pv = client.upload_pipeline_version(path, pipeline_version_name=version, pipeline_id=pipeline_id)
                versioned += 1
                print(f"old_deploy: new version {name} {version} ({pv.pipeline_version_id})", file=sys.stderr)
        except Exception as error:  # keep going, like the shell loop it replaces
            failed += 1
            print(f"old_deploy: FAILED {name}: {type(error).__name__}: {str(error)[:500]}", file=sys.stderr)
    elapsed = time.perf_counter() - started
    print(
        f"old_deploy: {len(files)} pipelines, {created} created, {versioned} new versions, "
        f"{failed} failed, {elapsed:.3f} s",
        file=sys.stderr,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
