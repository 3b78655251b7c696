"""Drive the compile worker directly: start it, compile the first N files of DIR one at a time
(record on, as kfp-ci asks), exit. Usage: fork_driver.py PYTHON WORKER_PY DIR N"""

import json
import os
import subprocess
import sys
import tempfile

py, worker, src, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
files = sorted(os.path.join(os.path.abspath(src), f) for f in os.listdir(src) if f.endswith("_pipeline.py"))[:n]
tmp = tempfile.mkdtemp()
env = dict(os.environ, PYTHONHASHSEED="0")
p = subprocess.Popen([py, "-u", "-B", worker, tmp, "", "1", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
assert json.loads(p.stdout.readline())["type"] == "ready"
for i, f in enumerate(files):
    p.stdin.write(json.dumps({"id": i, "path": f, "rel": f, "root": src, "function": None, "timeout": 60, "record": True}) + "\n")
    p.stdin.flush()
    while True:
        m = json.loads(p.stdout.readline())
        if m["type"] != "started":
            break
    assert m["type"] == "ok", m
p.stdin.close()
p.wait()
