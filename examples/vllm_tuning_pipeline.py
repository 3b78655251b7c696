"""vLLM inference tuning: benchmark a model under a grid of engine settings in
parallel (one GPU each), collect every result and pick the configuration with the
best throughput that still meets the latency budget.
"""

from typing import Dict, List

from kfp import dsl, kubernetes
from kfp.dsl import Dataset, Input, Metrics, Output

PYTHON_IMAGE = "python:3.11.9-slim-bookworm"
VLLM_IMAGE = "vllm/vllm-openai:v0.5.3.post1"
MODEL_CACHE = "/models"

DEFAULT_SWEEP = [
    {"max_num_seqs": 64, "gpu_memory_utilization": 0.85, "max_num_batched_tokens": 4096, "enable_prefix_caching": False},
    {"max_num_seqs": 128, "gpu_memory_utilization": 0.90, "max_num_batched_tokens": 8192, "enable_prefix_caching": False},
    {"max_num_seqs": 128, "gpu_memory_utilization": 0.90, "max_num_batched_tokens": 8192, "enable_prefix_caching": True},
    {"max_num_seqs": 256, "gpu_memory_utilization": 0.92, "max_num_batched_tokens": 16384, "enable_prefix_caching": True},
]


@dsl.component(base_image=PYTHON_IMAGE, packages_to_install=["datasets==2.20.0"])
def sample_prompts(
    dataset_name: str,
    prompts: Output[Dataset],
    num_prompts: int = 500,
    seed: int = 0,
):
    """Draw a fixed sample of real chat prompts to replay against each configuration."""
    import json

    from datasets import load_dataset

    rows = load_dataset(dataset_name, split="train").shuffle(seed=seed).select(range(num_prompts))
    with open(prompts.path, "w", encoding="utf-8") as out:
        for row in rows:
            conversation = row.get("conversations") or row.get("messages") or []
            first = next((turn for turn in conversation if turn.get("from", turn.get("role")) in ("human", "user")), None)
            if first:
                out.write(json.dumps({"prompt": first.get("value", first.get("content", ""))}) + "\n")
    prompts.metadata["prompts"] = num_prompts


@dsl.component(base_image=VLLM_IMAGE)
def benchmark_config(
    prompts: Input[Dataset],
    model: str,
    config: dict,
    max_tokens: int = 256,
) -> dict:
    """Run offline generation with one engine configuration; measure throughput and latency."""
    import json
    import statistics
    import time

    from vllm import LLM, SamplingParams

    with open(prompts.path, encoding="utf-8") as src:
        texts = [json.loads(line)["prompt"] for line in src]

    started = time.perf_counter()
    llm = LLM(
        model=model,
        download_dir="/models",
        max_num_seqs=int(config["max_num_seqs"]),
        gpu_memory_utilization=float(config["gpu_memory_utilization"]),
        max_num_batched_tokens=int(config["max_num_batched_tokens"]),
        enable_prefix_caching=bool(config["enable_prefix_caching"]),
        enable_chunked_prefill=True,
    )
    load_seconds = time.perf_counter() - started

    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    latencies = []
    generated = 0
    started = time.perf_counter()
    outputs = llm.generate(texts, params, use_tqdm=False)
    elapsed = time.perf_counter() - started
    for output in outputs:
        generated += len(output.outputs[0].token_ids)
        metrics = output.metrics
        if metrics is not None and metrics.finished_time and metrics.arrival_time:
            latencies.append(metrics.finished_time - metrics.arrival_time)
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else elapsed
    return {
        "config": config,
        "tokens_per_second": generated / elapsed,
        "requests_per_second": len(texts) / elapsed,
        "p95_latency_s": p95,
        "median_latency_s": statistics.median(latencies) if latencies else elapsed,
        "load_seconds": load_seconds,
    }


@dsl.component(base_image=PYTHON_IMAGE)
def pick_best(results: List[dict], p95_budget_s: float, summary: Output[Metrics]) -> Dict:
    """Best throughput among configurations within the p95 latency budget."""
    import json

    if not results:
        raise ValueError("the sweep produced no results")
    eligible = [r for r in results if r["p95_latency_s"] <= p95_budget_s]
    if not eligible:
        fastest = min(results, key=lambda r: r["p95_latency_s"])
        raise ValueError(
            f"no configuration meets p95 <= {p95_budget_s}s; the fastest was {fastest['p95_latency_s']:.2f}s "
            f"with {json.dumps(fastest['config'], sort_keys=True)}"
        )
    best = max(eligible, key=lambda r: r["tokens_per_second"])
    summary.log_metric("configurations", float(len(results)))
    summary.log_metric("within_budget", float(len(eligible)))
    summary.log_metric("best_tokens_per_second", best["tokens_per_second"])
    summary.log_metric("best_p95_latency_s", best["p95_latency_s"])
    for key, value in sorted(best["config"].items()):
        summary.log_metric(f"best_{key}", float(value))
    return best


@dsl.pipeline(
    name="vllm-tuning",
    description="Sweep vLLM engine parameters in parallel and pick the best configuration.",
)
def vllm_tuning(
    model: str = "meta-llama/Meta-Llama-3.1-8B-Instruct",
    prompt_dataset: str = "anon8231489123/ShareGPT_Vicuna_unfiltered",
    num_prompts: int = 500,
    max_tokens: int = 256,
    p95_budget_s: float = 20.0,
    sweep: List[dict] = DEFAULT_SWEEP,
    model_cache_pvc: str = "hf-model-cache",
):
    prompts = sample_prompts(dataset_name=prompt_dataset, num_prompts=num_prompts)
    prompts.set_caching_options(enable_caching=True)
    prompts.set_retry(num_retries=3, backoff_duration="15s")

    with dsl.ParallelFor(sweep, parallelism=2, name="sweep") as config:
        bench = benchmark_config(
            prompts=prompts.outputs["prompts"],
            model=model,
            config=config,
            max_tokens=max_tokens,
        )
        bench.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
        bench.set_cpu_limit("8").set_memory_limit("32G")
        # Timings must be measured fresh on every run.
        bench.set_caching_options(enable_caching=False)
        bench.set_retry(num_retries=1, backoff_duration="60s")
        kubernetes.mount_pvc(bench, pvc_name=model_cache_pvc, mount_path=MODEL_CACHE)
        kubernetes.use_secret_as_env(bench, secret_name="huggingface-token", secret_key_to_env={"token": "HF_TOKEN"})
        kubernetes.empty_dir_mount(bench, volume_name="dshm", mount_path="/dev/shm", medium="Memory")
        kubernetes.add_toleration(bench, key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")

    best = pick_best(results=dsl.Collected(bench.output), p95_budget_s=p95_budget_s)
    best.set_caching_options(enable_caching=False)
