"""The official kfp client against `kfp-ci serve --multi-user`: namespaces are kept.

Usage: python kfp_client_multi_user.py URL WORKDIR   (HOME must be a scratch directory)
"""

import os
import sys

from kfp import compiler, dsl
import kfp
from kfp_server_api.exceptions import ApiException

URL, WORKDIR = sys.argv[1], sys.argv[2]


@dsl.component(base_image="python:3.11")
def hello(name: str) -> str:
    return name


@dsl.pipeline(name="tenant-pipeline")
def tenant(name: str = "x"):
    hello(name=name)


path = os.path.join(WORKDIR, "tenant.yaml")
compiler.Compiler().compile(tenant, path)

client = kfp.Client(host=URL)
assert client.get_kfp_healthz().multi_user is True

a = client.upload_pipeline(path, pipeline_name="tenant-pipeline", namespace="team-a")
assert a.namespace == "team-a", a
b = client.upload_pipeline(path, pipeline_name="tenant-pipeline", namespace="team-b")
assert b.namespace == "team-b" and b.pipeline_id != a.pipeline_id, b
shared = client.upload_pipeline(path, pipeline_name="tenant-pipeline")
assert not shared.namespace, shared
try:
    client.upload_pipeline(path, pipeline_name="tenant-pipeline", namespace="team-a")
    raise AssertionError("a duplicate name in one namespace must fail")
except ApiException as e:
    assert e.status == 409, e

in_a = client.list_pipelines(namespace="team-a")
assert [p.pipeline_id for p in in_a.pipelines] == [a.pipeline_id], in_a
no_ns = client.list_pipelines()
assert [p.pipeline_id for p in no_ns.pipelines] == [shared.pipeline_id], no_ns
# get_pipeline_id sends no namespace: it sees the shared pipeline only (kubeflow/pipelines#10609).
assert client.get_pipeline_id("tenant-pipeline") == shared.pipeline_id

v = client.upload_pipeline_version(path, "v2", pipeline_id=a.pipeline_id)
assert v.pipeline_id == a.pipeline_id, v
assert client.list_pipeline_versions(a.pipeline_id).total_size == 2
assert client.list_pipeline_versions(b.pipeline_id).total_size == 1
print(f"kfp {kfp.__version__} client against {URL} --multi-user: checks passed")
