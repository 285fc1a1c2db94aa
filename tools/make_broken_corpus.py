#!/usr/bin/env python3
"""Writes the broken-model corpus: Tests/corpus/broken/<case>.onnx and expected.tsv.

Each line of expected.tsv is `<file>\t<error kind>\t<text the error message must contain>`.
The Swift test suite loads every file and checks both; the CLI test checks scm-inspect exits 1
with the text on stderr. Deterministic: rerunning rewrites the same bytes.
"""
import os
import random
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = sys.argv[1] if len(sys.argv) > 1 else "Tests/corpus/broken"
cases = []


def add(name, data, kind, text):
    with open(os.path.join(OUT, name + ".onnx"), "wb") as f:
        f.write(data)
    cases.append((name + ".onnx", kind, text))


def model(nodes, inputs=None, outputs=None, inits=(), opset=21, **kw):
    inputs = inputs if inputs is not None else [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])]
    outputs = outputs if outputs is not None else [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])]
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], **kw)
    m.ir_version = 10
    return m


def ser(m):
    return m.SerializeToString()


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number, wire, payload):
    if wire == 2:
        return varint(number << 3 | 2) + varint(len(payload)) + payload
    return varint(number << 3 | wire) + payload


def relu(name="n0", inp="x", out="y"):
    return helper.make_node("Relu", [inp], [out], name=name)


def w(dims, data=None, name="w", dtype=TensorProto.FLOAT):
    t = TensorProto(name=name, data_type=dtype, dims=dims)
    if data is not None:
        t.raw_data = data
    return t


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    good = ser(model([relu()]))
    rng = random.Random(1234)

    # Not a model at all.
    add("empty_file", b"", "invalidModel", "is an empty file, not an ONNX model")
    add("truncated", good[: len(good) - 7], "malformedProtobuf", "ModelProto.graph: field 7 declares 63 bytes but only 62 remain (truncated file?)")
    add("random_bytes", bytes([0x3A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]) + bytes(rng.randrange(256) for _ in range(4090)),
        "malformedProtobuf", "over protobuf's 2 GiB limit")
    add("text_file", b"hello, this is not a model\n", "malformedProtobuf", "byte 2 in ModelProto.<field 13>: field 13 uses protobuf groups")
    add("png_header", bytes.fromhex("89504e470d0a1a0a0000000d49484452"), "invalidModel", "looks like a PNG image, not an ONNX model")
    add("overlong_varint", field(1, 0, b"\xff" * 10 + b"\x01"), "malformedProtobuf", "byte 1 in ModelProto.ir_version: varint overflows 64 bits")
    add("field_number_zero", b"\x02\x00" + good, "malformedProtobuf", "field number 0")
    add("group_wire_type", good + varint(50 << 3 | 3) + varint(50 << 3 | 4), "malformedProtobuf", "groups")
    add("graph_as_varint", field(1, 0, b"\x0a") + field(7, 0, b"\x01"), "malformedProtobuf", "graph must be a message")
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1])
    tbytes = t.SerializeToString() + field(4, 2, b"\x00\x00\x80")  # 3 bytes of packed float_data
    gbytes = field(5, 2, tbytes) + field(2, 2, b"g")
    add("packed_floats_misaligned", field(1, 0, b"\x0a") + field(7, 2, gbytes), "malformedProtobuf",
        "packed float_data has 3 bytes, not a multiple of 4")

    # Strings.
    m = model([relu(name="ZZZZ")])
    add("invalid_utf8_name", ser(m).replace(b"ZZZZ", b"\xff\xfe\xfd\xfc"), "malformedProtobuf", "name is not valid UTF-8")
    add("nul_in_name", ser(m).replace(b"ZZZZ", b"Z\x00ZZ"), "malformedProtobuf", "name contains a NUL byte")

    # Graph structure.
    add("duplicate_output", ser(model([relu("a", "x", "y"), relu("b", "x", "y")])), "duplicateName",
        "output 'y' is already defined")
    add("duplicate_initializer", ser(model([helper.make_node("Add", ["x", "w"], ["y"])],
                                           inits=[numpy_helper.from_array(np.ones((2, 2), np.float32), "w")] * 2)),
        "duplicateName", "initializer #1 'w': name is used by an earlier initializer")
    two_x = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])] * 2
    add("duplicate_input", ser(model([relu()], inputs=two_x)), "duplicateName", "graph input #1 'x'")
    add("undefined_input", ser(model([helper.make_node("Add", ["x", "nope"], ["y"], name="add1")])), "undefinedValue",
        "node 'add1' (Add, #0): input 'nope' is not defined")
    add("undefined_output", ser(model([relu(out="z")])), "undefinedValue", "graph output #0 'y'")
    add("cycle", ser(model([helper.make_node("Add", ["x", "b"], ["a"], name="A"),
                            helper.make_node("Relu", ["a"], ["b"], name="B"),
                            helper.make_node("Relu", ["a"], ["y"], name="C")])), "cycle", "nodes form a cycle")
    add("self_loop", ser(model([helper.make_node("Add", ["x", "y"], ["y"], name="S")])), "cycle", "node 'S' (Add, #0)")
    add("no_op_type", ser(model([helper.make_node("", ["x"], ["y"], name="blank")])), "invalidModel", "has no op_type")
    add("domain_not_imported", ser(model([helper.make_node("Fused", ["x"], ["y"], name="f", domain="ai.scm")])),
        "invalidModel", "domain 'ai.scm' is not in the model's opset_import")
    m = model([relu()])
    helper.set_model_props(m, {"scm.format": "trigflow/1"})
    m.metadata_props.add(key="scm.format", value="again")
    add("duplicate_metadata", ser(m), "duplicateName", "key 'scm.format' appears twice")
    add("negative_declared_dim", ser(model([relu()], inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, -3])])),
        "invalidModel", "dim 1 is negative (-3)")

    # Tensors.
    add("negative_dim", ser(model([helper.make_node("Add", ["x", "w"], ["y"])], inits=[w([2, -2], b"")])),
        "invalidTensor", "dim 1 is negative (-2)")
    add("overflowing_dims", ser(model([helper.make_node("Add", ["x", "w"], ["y"])], inits=[w([1 << 62, 4, 4], b"")])),
        "invalidTensor", "product that overflows")
    add("raw_data_too_short", ser(model([helper.make_node("Add", ["x", "w"], ["y"])], inits=[w([2, 2], b"\x00" * 12)])),
        "invalidTensor", "raw_data has 12 bytes, expected 16 for FLOAT [2, 2]")
    t = w([2, 2], name="w")
    t.float_data.extend([1, 2, 3])
    add("float_data_count", ser(model([helper.make_node("Add", ["x", "w"], ["y"])], inits=[t])),
        "invalidTensor", "float_data has 3 values, expected 4")
    t = w([1], b"\x00" * 4)
    t.float_data.append(1.0)
    add("two_payloads", ser(model([helper.make_node("Add", ["x", "w"], ["y"])], inits=[t])),
        "invalidTensor", "payload is set in both raw_data and float_data")
    add("unknown_dtype", ser(model([helper.make_node("Add", ["x", "w"], ["y"])], inits=[w([1], b"\x00", dtype=99)])),
        "unknownDataType", "unknown data type 99")
    add("undefined_dtype", ser(model([helper.make_node("Add", ["x", "w"], ["y"])], inits=[w([1], b"\x00", dtype=0)])),
        "unknownDataType", "data_type is missing")
    add("rank_65", ser(model([helper.make_node("Add", ["x", "w"], ["y"])], inits=[w([1] * 65, b"\x00" * 4)])),
        "limitExceeded", "more than 64 dims")
    t = TensorProto(name="w", data_type=TensorProto.INT32, dims=[1])
    t.float_data.append(1.0)
    add("payload_in_wrong_field", ser(model([helper.make_node("Add", ["x", "w"], ["y"])], inits=[t])),
        "invalidTensor", "INT32 tensor stores its payload in float_data; expected int32_data")

    # Attributes.
    a = helper.make_attribute("alpha", 0.5)
    a.i = 3  # INT's field set on a FLOAT attribute
    n = helper.make_node("LeakyRelu", ["x"], ["y"], name="lr")
    n.attribute.append(a)
    add("attribute_two_values", ser(model([n])), "invalidAttribute", "is FLOAT but also sets the field for INT")
    a = onnx.AttributeProto(name="alpha", type=onnx.AttributeProto.FLOAT)
    n = helper.make_node("LeakyRelu", ["x"], ["y"], name="lr")
    n.attribute.append(a)
    add("attribute_missing_value", ser(model([n])), "invalidAttribute", "is FLOAT but its value field is missing")
    # An AttributeType outside ONNX's enum cannot be built through the Python API: write its bytes.
    attr = field(1, 2, b"alpha") + field(2, 5, np.float32(1.0).tobytes()) + field(20, 0, varint(99))
    n = onnx.NodeProto()
    n.ParseFromString(helper.make_node("LeakyRelu", ["x"], ["y"], name="lr").SerializeToString() + field(5, 2, attr))
    add("attribute_unknown_type", ser(model([n])), "invalidAttribute", "unknown attribute type 99")
    n = helper.make_node("LeakyRelu", ["x"], ["y"], name="lr", alpha=0.1)
    n.attribute.append(helper.make_attribute("alpha", 0.2))
    add("attribute_twice", ser(model([n])), "invalidAttribute", "attribute 'alpha' is given twice")

    # External data.
    def ext(location, offset=None, length=None):
        t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 2])
        t.data_location = TensorProto.EXTERNAL
        t.external_data.add(key="location", value=location)
        if offset is not None:
            t.external_data.add(key="offset", value=str(offset))
        if length is not None:
            t.external_data.add(key="length", value=str(length))
        return ser(model([helper.make_node("Add", ["x", "w"], ["y"])], inits=[t]))

    with open(os.path.join(OUT, "weights.bin"), "wb") as f:
        f.write(np.arange(4, dtype=np.float32).tobytes())
    add("external_parent_dir", ext("../../Package.swift"), "externalData", "points outside the model's folder")
    add("external_absolute", ext("/etc/passwd"), "externalData", "points outside the model's folder")
    add("external_missing", ext("no_such_file.bin"), "externalData", "cannot be opened")
    add("external_past_end", ext("weights.bin", offset=8), "externalData", "past its end")
    add("external_wrong_length", ext("weights.bin", length=12), "externalData", "length is 12 bytes, expected 16")
    add("external_bad_offset", ext("weights.bin", offset="-5"), "externalData", "offset '-5'")

    with open(os.path.join(OUT, "expected.tsv"), "w") as f:
        f.write("# file\terror kind\ttext the message must contain (see tools/make_broken_corpus.py)\n")
        for c in cases:
            f.write("\t".join(c) + "\n")
    print(f"broken corpus: {len(cases)} files in {OUT}")


if __name__ == "__main__":
    main()
