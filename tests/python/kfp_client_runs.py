"""The official kfp client's experiment, run and recurring-run methods against `kfp-ci serve`.

Usage: python kfp_client_runs.py URL WORKDIR   (the server runs with --run-duration-ms 300)

Uploads a pipeline with the real SDK, then drives create_experiment, list_experiments,
run_pipeline, get_run, wait_for_run_completion, create_recurring_run, list_recurring_runs,
disable_recurring_run and delete_recurring_run, checking the results field by field. Exits 0 when
every check passed. Run by tests/it/schedules.rs; HOME must point to a scratch directory.
"""

import datetime
import json
import os
import re
import sys

from kfp import compiler, dsl
import kfp
import kfp_server_api
from kfp_server_api.exceptions import ApiException

URL, WORKDIR = sys.argv[1], sys.argv[2]
CHECKS = 0


def check(cond, what, *values):
    global CHECKS
    CHECKS += 1
    if not cond:
        raise AssertionError(f"{what}: {values!r}")


def expect_status(status, what, call):
    try:
        call()
    except ApiException as e:
        check(e.status == status, f"{what}: status", e.status, e.body)
        body = json.loads(e.body)
        check(body.get("code") and body.get("message"), f"{what}: gRPC status body", body)
        return body["message"]
    check(False, f"{what} must fail")


UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dsl.component(base_image="python:3.11")
def add(a: float, b: int) -> float:
    return a + b


@dsl.pipeline(name="runs-check")
def runs_check(x: float = 1.5, n: int = 3, label: str = "nightly"):
    add(a=x, b=n)


path = os.path.join(WORKDIR, "runs_check.yaml")
compiler.Compiler().compile(runs_check, path)
client = kfp.Client(host=URL)
pipeline = client.upload_pipeline(path)
version = client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions[0]

# experiments: created once, found by name afterwards (the client looks it up first)
exp = client.create_experiment("ci-smoke", description="smoke runs")
check(UUID.match(exp.experiment_id), "experiment id", exp.experiment_id)
check(exp.display_name == "ci-smoke", "experiment name", exp.display_name)
check(exp.description == "smoke runs", "experiment description", exp.description)
check(exp.storage_state == "AVAILABLE", "experiment storage state", exp.storage_state)
again = client.create_experiment("ci-smoke")
check(again.experiment_id == exp.experiment_id, "create_experiment finds the existing one")
other = client.create_experiment("nightly")
listed = client.list_experiments(sort_by="display_name")
check(listed.total_size == 2, "two experiments", listed.total_size)
check([e.display_name for e in listed.experiments] == ["ci-smoke", "nightly"], "sorted", listed)
paged = client.list_experiments(page_size=1, sort_by="display_name desc")
check([e.display_name for e in paged.experiments] == ["nightly"], "page 1", paged)
paged2 = client.list_experiments(page_size=1, page_token=paged.next_page_token)
check([e.display_name for e in paged2.experiments] == ["ci-smoke"], "page 2", paged2)
check(client.get_experiment(experiment_name="nightly").experiment_id == other.experiment_id,
      "get_experiment by name")
expect_status(409, "a duplicate experiment name",
              lambda: client._experiment_api.experiment_service_create_experiment(
                  experiment=kfp_server_api.V2beta1Experiment(display_name="ci-smoke")))

# run_pipeline from a stored version: recorded, then PENDING/RUNNING, then SUCCEEDED
run = client.run_pipeline(exp.experiment_id, "smoke 1", pipeline_id=pipeline.pipeline_id,
                          version_id=version.pipeline_version_id, params={"x": 2.5})
check(UUID.match(run.run_id), "run id", run.run_id)
check(run.display_name == "smoke 1", "run name", run.display_name)
check(run.experiment_id == exp.experiment_id, "run experiment", run.experiment_id)
check(run.state in ("PENDING", "RUNNING"), "a new run is not finished", run.state)
ref = run.pipeline_version_reference
check(ref.pipeline_id == pipeline.pipeline_id and
      ref.pipeline_version_id == version.pipeline_version_id, "run version reference", ref)
check(run.runtime_config.parameters == {"x": 2.5}, "run parameters", run.runtime_config)
check(run.storage_state == "AVAILABLE", "run storage state", run.storage_state)
got = client.get_run(run.run_id)
check(got.run_id == run.run_id and got.display_name == "smoke 1", "get_run", got)
done = client.wait_for_run_completion(run.run_id, timeout=20, sleep_duration=0.05)
check(done.state == "SUCCEEDED", "final state", done.state)
check([s.state for s in done.state_history][-1] == "SUCCEEDED", "state history", done.state_history)
check(done.state_history[0].state == "PENDING", "history starts PENDING", done.state_history)
check(isinstance(done.finished_at, datetime.datetime) and done.finished_at >= done.created_at,
      "finished_at", done.finished_at, done.created_at)
check(client.get_experiment(experiment_id=exp.experiment_id).last_run_created_at.year > 1970,
      "experiment last_run_created_at follows its runs")

# run_pipeline from a package (inline spec), in the default experiment when none is named
inline = client.run_pipeline(exp.experiment_id, "inline", pipeline_package_path=path,
                             params={"label": "x"})
check(inline.pipeline_spec and inline.pipeline_spec["pipelineInfo"]["name"] == "runs-check",
      "inline spec echoed", inline.pipeline_spec)
check(inline.pipeline_version_reference is None, "no reference for an inline spec")
runs = client.list_runs(experiment_id=exp.experiment_id, sort_by="created_at desc")
check(runs.total_size == 2, "two runs in the experiment", runs.total_size)

# parameters are checked against the pipeline's root inputs, as the server does
msg = expect_status(400, "an undeclared parameter",
                    lambda: client.run_pipeline(exp.experiment_id, "bad",
                                                pipeline_id=pipeline.pipeline_id,
                                                version_id=version.pipeline_version_id,
                                                params={"nope": 1}))
check("nope" in msg, "the message names the parameter", msg)
msg = expect_status(400, "a parameter of the wrong type",
                    lambda: client.run_pipeline(exp.experiment_id, "bad",
                                                pipeline_id=pipeline.pipeline_id,
                                                version_id=version.pipeline_version_id,
                                                params={"label": 3}))
check("label" in msg, "the message names the parameter", msg)
expect_status(404, "an unknown run", lambda: client.get_run("00000000-0000-0000-0000-000000000000"))

# recurring runs: created enabled, listed, disabled, deleted
rr = client.create_recurring_run(other.experiment_id, "nightly-eval", description="managed",
                                 cron_expression="0 0 2 * * *", max_concurrency=2,
                                 pipeline_id=pipeline.pipeline_id,
                                 version_id=version.pipeline_version_id,
                                 params={"x": 0.9}, no_catchup=True)
check(UUID.match(rr.recurring_run_id), "recurring run id", rr.recurring_run_id)
check(rr.display_name == "nightly-eval" and rr.description == "managed", "names", rr)
check(rr.status == "ENABLED", "enabled on creation", rr.status)
check(rr.trigger.cron_schedule.cron == "0 0 2 * * *", "cron kept", rr.trigger)
check(rr.max_concurrency == "2", "max_concurrency (int64 as a string)", rr.max_concurrency)
check(rr.no_catchup is True, "no_catchup", rr.no_catchup)
check(rr.experiment_id == other.experiment_id, "recurring run experiment", rr.experiment_id)
check(rr.runtime_config.parameters == {"x": 0.9}, "recurring run parameters", rr.runtime_config)
periodic = client.create_recurring_run(other.experiment_id, "every-6h", interval_second=21600,
                                       pipeline_id=pipeline.pipeline_id,
                                       version_id=version.pipeline_version_id, enabled=False)
check(periodic.status == "DISABLED", "created disabled", periodic.status)
check(periodic.trigger.periodic_schedule.interval_second == "21600", "interval", periodic.trigger)
msg = expect_status(400, "a bad cron",
                    lambda: client.create_recurring_run(other.experiment_id, "bad",
                                                        cron_expression="0 61 * * * *",
                                                        pipeline_id=pipeline.pipeline_id,
                                                        version_id=version.pipeline_version_id))
check("cron" in msg, "bad cron message", msg)
expect_status(400, "max_concurrency out of range",
              lambda: client.create_recurring_run(other.experiment_id, "bad", interval_second=60,
                                                  max_concurrency=11,
                                                  pipeline_id=pipeline.pipeline_id,
                                                  version_id=version.pipeline_version_id))

listed = client.list_recurring_runs(experiment_id=other.experiment_id, sort_by="display_name")
check(listed.total_size == 2, "two recurring runs", listed.total_size)
check([r.display_name for r in listed.recurring_runs] == ["every-6h", "nightly-eval"], "sorted")
client.disable_recurring_run(rr.recurring_run_id)
check(client.get_recurring_run(rr.recurring_run_id).status == "DISABLED", "disabled")
client.enable_recurring_run(rr.recurring_run_id)
check(client.get_recurring_run(rr.recurring_run_id).status == "ENABLED", "enabled again")
client.delete_recurring_run(rr.recurring_run_id)
expect_status(404, "a deleted recurring run", lambda: client.get_recurring_run(rr.recurring_run_id))
left = client.list_recurring_runs()
check([r.recurring_run_id for r in left.recurring_runs] == [periodic.recurring_run_id], "left", left)

print(f"{CHECKS} checks passed")
