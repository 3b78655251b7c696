#!/usr/bin/env python3
"""Generate N small, distinct, deterministic KFP pipelines for the benchmarks.

Usage: gen_pipelines.py N OUTDIR [--seed S]

Writes OUTDIR/p0001_pipeline.py ... OUTDIR/pNNNN_pipeline.py. Each file holds one
pipeline (function `pNNNN_pipeline`, display name `pNNNN-pipeline`) of 2-4 Python
components chained through parameters or Dataset artifacts, with varied defaults,
images, retries, caching and resource settings. The same N and seed always give
the same bytes; every file differs from every other. Uses the standard library only.
"""

import argparse
import os
import random
import sys

IMAGES = [
    "python:3.10.14-slim-bookworm",
    "python:3.11.9-slim-bookworm",
    "python:3.12.4-slim-bookworm",
]

# Each step kind: (component source template, how a task is called).
# {n} is the component's unique suffix; {image} its base image.
STEP_KINDS = {
    "make_numbers": '''
@dsl.component(base_image="{image}")
def make_numbers_{n}(count: int, scale: float, numbers: Output[Dataset]):
    """Write `count` scaled numbers, one per line."""
    with open(numbers.path, "w") as out:
        for i in range(count):
            out.write(f"{{i * scale}}\\n")
    numbers.metadata["count"] = count
''',
    "sum_numbers": '''
@dsl.component(base_image="{image}")
def sum_numbers_{n}(numbers: Input[Dataset]) -> float:
    """Sum the numbers of a dataset."""
    with open(numbers.path) as src:
        return sum(float(line) for line in src if line.strip())
''',
    "transform": '''
@dsl.component(base_image="{image}")
def transform_{n}(numbers: Input[Dataset], offset: float, shifted: Output[Dataset]):
    """Add an offset to every number."""
    with open(numbers.path) as src, open(shifted.path, "w") as out:
        for line in src:
            if line.strip():
                out.write(f"{{float(line) + offset}}\\n")
''',
    "threshold": '''
@dsl.component(base_image="{image}")
def threshold_{n}(value: float, limit: float) -> str:
    """Classify a value against a limit."""
    return "high" if value > limit else "low"
''',
    "report": '''
@dsl.component(base_image="{image}")
def report_{n}(label: str, metrics: Output[Metrics]):
    """Log the label as a metric."""
    metrics.log_metric("is_high", 1.0 if label == "high" else 0.0)
''',
}


def generate(index: int, seed: int) -> str:
    rng = random.Random(seed * 1_000_003 + index)
    stem = f"p{index:04d}_pipeline"
    steps = rng.randint(2, 4)
    images = [rng.choice(IMAGES) for _ in range(steps)]
    count = rng.randint(5, 500)
    scale = round(rng.uniform(0.1, 10.0), 3)
    offset = round(rng.uniform(-5.0, 5.0), 3)
    limit = round(rng.uniform(10.0, 10_000.0), 2)
    retries = rng.randint(0, 3)
    cache_first = rng.random() < 0.5
    cpu = rng.choice(["500m", "1", "2"])
    memory = rng.choice(["512M", "1G", "2G"])

    # The chain: make_numbers -> [transform] -> sum_numbers -> [threshold -> [report]]
    kinds = ["make_numbers"]
    if steps == 4 or (steps == 3 and rng.random() < 0.5):
        kinds.append("transform")
    kinds.append("sum_numbers")
    if len(kinds) < steps:
        kinds.append("threshold")
    if len(kinds) < steps:
        kinds.append("report")

    parts = [
        f'"""Generated benchmark pipeline {index} ({steps} steps). Do not edit: see bench/common/gen_pipelines.py."""',
        "",
        "from kfp import dsl",
        "from kfp.dsl import Dataset, Input, Metrics, Output",
    ]
    for kind, image in zip(kinds, images):
        parts.append(STEP_KINDS[kind].format(n=index, image=image).rstrip())
        parts.append("")

    body = [
        "",
        f'@dsl.pipeline(name="p{index:04d}-pipeline", description="Benchmark pipeline {index}: {" -> ".join(kinds)}.")',
        f"def {stem}(count: int = {count}, scale: float = {scale}, offset: float = {offset}, limit: float = {limit}):",
        f"    make = make_numbers_{index}(count=count, scale=scale)",
        f"    make.set_caching_options(enable_caching={cache_first})",
        f'    make.set_cpu_limit("{cpu}").set_memory_limit("{memory}")',
    ]
    if retries:
        body.append(f"    make.set_retry(num_retries={retries})")
    source = 'make.outputs["numbers"]'
    if "transform" in kinds:
        body.append(f"    shift = transform_{index}(numbers={source}, offset=offset)")
        source = 'shift.outputs["shifted"]'
    body.append(f"    total = sum_numbers_{index}(numbers={source})")
    if "threshold" in kinds:
        body.append(f"    label = threshold_{index}(value=total.output, limit=limit)")
    if "report" in kinds:
        body.append(f"    report_{index}(label=label.output)")
    parts.extend(body)
    return "\n".join(parts) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, help="number of pipelines")
    parser.add_argument("outdir", help="output directory (created)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    args = parser.parse_args()
    if args.n < 1 or args.n > 9999:
        parser.error("N must be between 1 and 9999")
    os.makedirs(args.outdir, exist_ok=True)
    for index in range(1, args.n + 1):
        path = os.path.join(args.outdir, f"p{index:04d}_pipeline.py")
        with open(path, "w", encoding="utf-8") as out:
            out.write(generate(index, args.seed))
    print(f"wrote {args.n} pipelines to {args.outdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
