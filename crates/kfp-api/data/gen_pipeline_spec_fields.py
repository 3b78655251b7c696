"""Regenerate pipeline_spec_fields.json: the field names of every message reachable from
`ml_pipelines.PipelineSpec` and `ml_pipelines.PlatformSpec`, for the strict (unknown fields are
errors) check the KFP server's protojson parse applies on upload.

Source: the `kfp-pipeline-spec` wheel (Apache-2.0, The Kubeflow Authors), i.e. the compiled
`api/v2alpha1/pipeline_spec.proto` of kubeflow/pipelines. Versions 2.17.0 and 2.17.3 give the
same output; 2.17.0 is the server release kfp-ci follows.

    python gen_pipeline_spec_fields.py > pipeline_spec_fields.json

Kinds: a message's full name; `list:<kind>`; `map:<kind>`; `enum:NAME|NAME…`; `scalar`; the
well-known types `google.protobuf.{Struct,Value,ListValue,Duration}` are free-form.
"""

import json
import sys

from google.protobuf import descriptor as d
from kfp.pipeline_spec import pipeline_spec_pb2 as ps

WELL_KNOWN = {
    "google.protobuf.Struct",
    "google.protobuf.Value",
    "google.protobuf.ListValue",
    "google.protobuf.Duration",
}


def kind_of(f, visit):
    if f.type == d.FieldDescriptor.TYPE_MESSAGE:
        mt = f.message_type
        if mt.GetOptions().map_entry:
            return "map:" + kind_of(mt.fields_by_name["value"], visit)
        if mt.full_name not in WELL_KNOWN:
            visit(mt)
        return mt.full_name
    if f.type == d.FieldDescriptor.TYPE_ENUM:
        return "enum:" + "|".join(v.name for v in f.enum_type.values)
    return "scalar"


def repeated(f):
    value = getattr(f, "is_repeated", None)
    if value is None:
        return f.label == d.FieldDescriptor.LABEL_REPEATED
    return value() if callable(value) else value


def dump(roots):
    out = {}

    def visit(md):
        if md.full_name in out:
            return
        fields = {}
        out[md.full_name] = fields
        for f in md.fields:
            kind = kind_of(f, visit)
            is_map = f.message_type is not None and f.message_type.GetOptions().map_entry
            if repeated(f) and not is_map:
                kind = "list:" + kind
            fields[f.json_name] = kind
            fields[f.name] = kind

    for r in roots:
        visit(r)
    return out


json.dump(
    dump([ps.PipelineSpec.DESCRIPTOR, ps.PlatformSpec.DESCRIPTOR]),
    sys.stdout,
    sort_keys=True,
    indent=1,
)
print()
