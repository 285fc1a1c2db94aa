"""schemas/model.proto declares every field with ONNX's number, type and packing."""
import os
import subprocess
import tempfile

import onnx.onnx_ml_pb2 as onnx_pb
from google.protobuf import descriptor_pb2

from conftest import ROOT


def our_descriptors():
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "set.pb")
        subprocess.run(["protoc-c", f"--proto_path={ROOT}/schemas", f"--descriptor_set_out={out}", "model.proto"],
                       check=True)
        fds = descriptor_pb2.FileDescriptorSet()
        fds.ParseFromString(open(out, "rb").read())
        return fds.file[0]


def test_every_field_matches_onnx():
    checked = 0

    def walk(messages, scope):
        nonlocal checked
        for m in messages:
            od = scope[m.name]
            for f in m.field:
                of = od.fields_by_name.get(f.name)
                assert of is not None, f"{m.name}.{f.name} is not an ONNX field"
                assert f.number == of.number, f"{m.name}.{f.name}: number {f.number} vs ONNX {of.number}"
                assert f.type == of.type, f"{m.name}.{f.name}: type {f.type} vs ONNX {of.type}"
                onnx_packed = of.GetOptions().packed if of.GetOptions().HasField("packed") else False
                assert f.options.packed == onnx_packed, f"{m.name}.{f.name}: packed differs"
                checked += 1
            walk(m.nested_type, od.nested_types_by_name)

    walk(our_descriptors().message_type, onnx_pb.DESCRIPTOR.message_types_by_name)
    assert checked >= 60  # the walk really visited the schema


def test_data_types_match_onnx():
    ours = {v.name: v.number for v in our_descriptors().enum_type[0].value}
    for name, number in ours.items():
        assert onnx_pb.TensorProto.DataType.Value(name) == number
