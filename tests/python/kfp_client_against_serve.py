"""The official kfp client (the pinned SDK) against a running `kfp-ci serve`.

Usage: python kfp_client_against_serve.py URL WORKDIR

Compiles two pipelines with the real SDK (one with a kfp-kubernetes platform document), then drives
every pipeline method of `kfp.Client` the local server must support and checks the results field
by field. Exits 0 when every check passed; an AssertionError (with the offending values) otherwise.
Run by tests/it/serve.rs; HOME must point to a scratch directory (kfp.Client reads and may write
~/.config/kfp).
"""

import datetime
import json
import math
import os
import re
import sys

import yaml

from kfp import compiler, dsl, kubernetes
import kfp
from kfp_server_api.exceptions import ApiException

URL, WORKDIR = sys.argv[1], sys.argv[2]
CHECKS = 0


def check(cond, what, *values):
    global CHECKS
    CHECKS += 1
    if not cond:
        raise AssertionError(f"{what}: {values!r}")


@dsl.component(base_image="python:3.11")
def add(a: float, b: int) -> float:
    return a + b


@dsl.pipeline(name="client-check", description="checked by the kfp client test")
def client_check(x: float = 1.5, n: int = 3):
    add(a=x, b=n)


@dsl.pipeline(name="with-platform")
def with_platform(x: float = 2.0):
    task = add(a=x, b=1)
    kubernetes.use_secret_as_env(task, secret_name="s3", secret_key_to_env={"key": "KEY"})


def compile_to(func, name):
    path = os.path.join(WORKDIR, name)
    compiler.Compiler().compile(func, path)
    return path


def normalise(value):
    """Numbers as doubles, as the server's protobuf Struct holds them."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    return value


def expected_spec(path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d is not None]
    if len(docs) == 1:
        return normalise(docs[0])
    return normalise({"pipeline_spec": docs[0], "platform_spec": docs[1]})


def check_time(ts, what):
    check(isinstance(ts, datetime.datetime), f"{what} is a datetime", ts)
    check(ts.microsecond == 0, f"{what} has second precision", ts)
    age = abs((datetime.datetime.now(datetime.timezone.utc) - ts).total_seconds())
    check(age < 300, f"{what} is now", ts)


UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

simple = compile_to(client_check, "client_check.yaml")
platform = compile_to(with_platform, "with_platform.yaml")
check("# PIPELINE DEFINITION" in open(simple).read(), "the compiled file has comments")

client = kfp.Client(host=URL)

# healthz
health = client.get_kfp_healthz()
check(health.multi_user is False, "healthz multi_user", health)
check(health.pipeline_store == "database", "healthz pipeline_store", health)

# nothing yet
check(client.get_pipeline_id("client-check") is None, "no pipeline before upload")
empty = client.list_pipelines()
check(not empty.pipelines and not empty.total_size, "empty list", empty)

# upload_pipeline: name defaults to pipelineInfo.name
p = client.upload_pipeline(simple, description="first upload")
check(UUID.match(p.pipeline_id), "pipeline_id is a UUID", p.pipeline_id)
check(p.name == "client-check", "pipeline name", p.name)
check(p.display_name == "client-check", "display_name defaults to name", p.display_name)
check(p.description == "first upload", "pipeline description", p.description)
check(not p.namespace, "single-user namespace is empty", p.namespace)
check_time(p.created_at, "pipeline created_at")

# a duplicate name is a 409
try:
    client.upload_pipeline(simple, pipeline_name="client-check")
    check(False, "duplicate upload must fail")
except ApiException as e:
    check(e.status == 409, "duplicate upload status", e.status, e.body)
    body = json.loads(e.body)
    check("error_message" in body and "error_details" in body, "upload error shape", body)

# get_pipeline_id: display_name EQUALS filter, operation as a number, stringValue spelling
check(client.get_pipeline_id("client-check") == p.pipeline_id, "get_pipeline_id")
got = client.get_pipeline(p.pipeline_id)
check(got.to_dict() == p.to_dict(), "get_pipeline equals the upload response", got, p)

# the first version carries the pipeline's name and description, and the stored spec
versions = client.list_pipeline_versions(p.pipeline_id)
check(versions.total_size == 1, "one version after upload", versions.total_size)
first = versions.pipeline_versions[0]
check(first.name == "client-check", "first version name = pipeline name", first.name)
check(first.display_name == "client-check", "first version display_name", first.display_name)
check(first.description == "first upload", "first version description", first.description)
check(first.pipeline_id == p.pipeline_id, "first version pipeline_id", first.pipeline_id)
check(UUID.match(first.pipeline_version_id), "version id is a UUID", first.pipeline_version_id)
check_time(first.created_at, "version created_at")
check(normalise(first.pipeline_spec) == expected_spec(simple), "stored spec = compiled spec")
check("PIPELINE DEFINITION" not in json.dumps(first.pipeline_spec), "comments dropped")

# upload_pipeline_version by id and by name
v2 = client.upload_pipeline_version(simple, "v2", pipeline_id=p.pipeline_id, description="second")
check(v2.name == "v2" and v2.display_name == "v2", "version names", v2.name, v2.display_name)
check(v2.description == "second", "version description", v2.description)
check(v2.pipeline_id == p.pipeline_id, "version pipeline_id", v2.pipeline_id)
check(normalise(v2.pipeline_spec) == expected_spec(simple), "upload_version returns the spec")
v3 = client.upload_pipeline_version(platform, "v3-platform", pipeline_name="client-check")
check(v3.pipeline_id == p.pipeline_id, "upload by pipeline_name resolves the id", v3.pipeline_id)
spec3 = v3.pipeline_spec
check(set(spec3) == {"pipeline_spec", "platform_spec"}, "two documents are wrapped", list(spec3))
check(normalise(spec3) == expected_spec(platform), "platform spec stored as compiled")
check("kubernetes" in spec3["platform_spec"]["platforms"], "platform_spec content", spec3)

# identical content is accepted; a duplicate version name is a 409
try:
    client.upload_pipeline_version(simple, "v2", pipeline_id=p.pipeline_id)
    check(False, "duplicate version name must fail")
except ApiException as e:
    check(e.status == 409, "duplicate version status", e.status, e.body)
# an unknown pipeline id is a 400 on upload_version
try:
    client.upload_pipeline_version(simple, "vx", pipeline_id="00000000-0000-0000-0000-000000000000")
    check(False, "unknown pipelineid must fail")
except ApiException as e:
    check(e.status == 400, "unknown pipelineid status", e.status, e.body)

# get_pipeline_version
got2 = client.get_pipeline_version(p.pipeline_id, v2.pipeline_version_id)
check(got2.to_dict() == v2.to_dict(), "get_pipeline_version equals the upload response")

# list_pipeline_versions: paging, sorting, total_size
page1 = client.list_pipeline_versions(p.pipeline_id, page_size=2, sort_by="name desc")
check(page1.total_size == 3, "total_size counts every version", page1.total_size)
check([v.name for v in page1.pipeline_versions] == ["v3-platform", "v2"], "sorted desc", page1)
check(page1.next_page_token, "a next page token", page1.next_page_token)
page2 = client.list_pipeline_versions(p.pipeline_id, page_size=2, page_token=page1.next_page_token)
check([v.name for v in page2.pipeline_versions] == ["client-check"], "second page", page2)
check(not page2.next_page_token, "no token on the last page", page2.next_page_token)

# list_pipelines with another pipeline: sort, filter, paging
other = client.upload_pipeline(platform, pipeline_name="another-pipeline")
check(other.name == "another-pipeline", "second pipeline name", other.name)
everything = client.list_pipelines(page_size=10, sort_by="name")
check(everything.total_size == 2, "two pipelines", everything.total_size)
check([x.name for x in everything.pipelines] == ["another-pipeline", "client-check"], "by name")
check(not everything.next_page_token, "one page", everything.next_page_token)
first_page = client.list_pipelines(page_size=1, sort_by="name desc")
check([x.name for x in first_page.pipelines] == ["client-check"], "page size 1 desc")
second_page = client.list_pipelines(page_size=1, page_token=first_page.next_page_token)
check([x.name for x in second_page.pipelines] == ["another-pipeline"], "token keeps the sort")
by_name = client.list_pipelines(filter=json.dumps({"predicates": [
    {"operation": "EQUALS", "key": "name", "string_value": "another-pipeline"}]}))
check([x.pipeline_id for x in by_name.pipelines] == [other.pipeline_id], "name filter", by_name)
substring = client.list_pipelines(filter=json.dumps({"predicates": [
    {"operation": "IS_SUBSTRING", "key": "name", "string_value": "check"}]}))
check([x.name for x in substring.pipelines] == ["client-check"], "substring filter", substring)
try:
    client.list_pipelines(sort_by="bogus")
    check(False, "a bad sort key must fail")
except ApiException as e:
    check(e.status == 400, "bad sort_by status", e.status)
    body = json.loads(e.body)
    check(body["code"] == 3 and body["message"], "gateway error shape", body)

# delete_pipeline_version, then delete_pipeline (non-empty refused without cascade)
check(client.delete_pipeline_version(p.pipeline_id, v2.pipeline_version_id) == {},
      "delete_pipeline_version returns {}")
try:
    client.get_pipeline_version(p.pipeline_id, v2.pipeline_version_id)
    check(False, "a deleted version is gone")
except ApiException as e:
    check(e.status == 404, "deleted version status", e.status)
check(client.list_pipeline_versions(p.pipeline_id).total_size == 2, "two versions left")
try:
    client.delete_pipeline(p.pipeline_id)
    check(False, "deleting a pipeline with versions needs cascade")
except ApiException as e:
    check(e.status == 400, "non-empty delete status", e.status, e.body)
for v in client.list_pipeline_versions(p.pipeline_id).pipeline_versions:
    client.delete_pipeline_version(p.pipeline_id, v.pipeline_version_id)
check(client.delete_pipeline(p.pipeline_id) == {}, "delete_pipeline returns {}")
try:
    client.get_pipeline(p.pipeline_id)
    check(False, "a deleted pipeline is gone")
except ApiException as e:
    check(e.status == 404, "deleted pipeline status", e.status)
check(client.get_pipeline_id("client-check") is None, "get_pipeline_id after delete")
remaining = client.list_pipelines()
check([x.name for x in remaining.pipelines] == ["another-pipeline"], "one pipeline left")

print(f"kfp {kfp.__version__} client against {URL}: {CHECKS} checks passed")
