"""Models written by scm's serializer are the same models: checked with onnx and onnxruntime."""
import json
import os
import struct

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper, TensorProto

from conftest import ROOT, scm, node_test_names
from protocompare import first_difference
import make_tiny_model
from scmtools.onnxrt import ort_session


def roundtrip(src, dst):
    r = scm("scm-inspect", src, "--save", dst)
    assert r.returncode == 0, r.stderr
    return r


def load_value(value_type, path):
    """A test-data file as onnxruntime takes it: a TensorProto, SequenceProto, OptionalProto or
    MapProto, by the graph input's type."""
    data = open(path, "rb").read()
    kind = value_type.WhichOneof("value")
    if kind == "tensor_type":
        return numpy_helper.to_array(onnx.load_tensor_from_string(data))
    proto, convert = {"sequence_type": (onnx.SequenceProto, numpy_helper.to_list),
                      "optional_type": (onnx.OptionalProto, numpy_helper.to_optional),
                      "map_type": (onnx.MapProto, numpy_helper.to_dict)}[kind]
    message = proto()
    message.ParseFromString(data)
    return convert(message)


def case_inputs(model, case_dir):
    """The inputs of test_data_set_0 by graph-input name (graph inputs that are not initializers,
    in order, as ONNX's backend runner feeds them)."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [vi for vi in model.graph.input if vi.name not in inits]
    data = os.path.join(case_dir, "test_data_set_0")
    return {vi.name: load_value(vi.type, os.path.join(data, f"input_{i}.pb")) for i, vi in enumerate(inputs)}


def same_bits(a, b):
    """Outputs of onnxruntime equal bit for bit: arrays by dtype, shape and bytes (so -0.0 differs
    from 0.0 and NaN payloads count); sequences, maps and optionals element by element."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)) or a.dtype != b.dtype or a.shape != b.shape:
            return False
        return a.tolist() == b.tolist() if a.dtype == object else a.tobytes() == b.tobytes()
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_bits(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_bits(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


RANDOM_OPS = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial",
              "Dropout"}


def run_ort(path, feeds):
    """Outputs of onnxruntime (CPU, one thread, no logging) on the model at `path`."""
    return ort_session(path, 1, log_severity=3).run(None, feeds)


@pytest.mark.parametrize("name", node_test_names())
def test_onnx_node_test_roundtrip(name, node_tests_dir, tmp_path):
    """Every backend node test model loads, verifies and saves to a model equal field by field;
    where onnx.checker accepts the original it accepts ours; where onnxruntime runs the original,
    ours gives bitwise the same outputs on the test's inputs."""
    case = os.path.join(node_tests_dir, name)
    src = os.path.join(case, "model.onnx")
    dst = str(tmp_path / "rt.onnx")
    roundtrip(src, dst)
    a, b = onnx.load(src), onnx.load(dst)
    assert first_difference(a, b) is None, first_difference(a, b)
    try:
        onnx.checker.check_model(a, full_check=True)
        original_ok = True
    except Exception:
        original_ok = False
    if original_ok:
        onnx.checker.check_model(b, full_check=True)
    try:
        feeds = case_inputs(a, case)
        expected = run_ort(src, feeds)
    except Exception:
        return  # onnxruntime does not run the original (op, type or opset it lacks): nothing to compare
    ours = run_ort(dst, feeds)
    assert len(ours) == len(expected)
    if not all(same_bits(x, y) for x, y in zip(ours, expected)):
        # Random ops may differ from run to run even on the same file: then only if the original does.
        assert RANDOM_OPS & {n.op_type for n in a.graph.node}, "outputs differ after the round trip"
        again = run_ort(src, feeds)
        assert not all(same_bits(x, y) for x, y in zip(again, expected)), "outputs differ after the round trip"


def test_onnxruntime_runs_most_node_tests(node_tests_dir):
    """The comparison above is not vacuous: onnxruntime runs most originals on their inputs
    (1420 of 1884 with onnxruntime 1.31.1; the rest use ops, types or opsets it lacks)."""
    ran = 0
    for name in node_test_names():
        case = os.path.join(node_tests_dir, name)
        try:
            model = onnx.load(os.path.join(case, "model.onnx"))
            run_ort(os.path.join(case, "model.onnx"), case_inputs(model, case))
            ran += 1
        except Exception:
            pass
    assert ran >= 1400, ran


@pytest.mark.parametrize("groupnorm", ["onnx", "pytorch"])
def test_tiny_trigflow_model_roundtrip_runs_identically(groupnorm, tmp_path):
    src, dst = str(tmp_path / "m.onnx"), str(tmp_path / "rt.onnx")
    onnx.save(make_tiny_model.build(groupnorm), src)
    roundtrip(src, dst)
    onnx.checker.check_model(onnx.load(dst), full_check=True)
    assert first_difference(onnx.load(src), onnx.load(dst)) is None
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((3, 1, 8, 8)).astype(np.float32), "t": np.array([1.56, 1.1, 0.2], np.float32)}
    ya, yb = run_ort(src, feeds), run_ort(dst, feeds)
    assert len(ya) == len(yb) == 1
    assert all(same_bits(x, y) for x, y in zip(ya, yb))


def test_tensor_encodings_roundtrip(tmp_path):
    """Initializers in raw_data and in every typed field, of many dtypes, survive --save."""
    inits = []
    for i, (dt, arr) in enumerate([
        (TensorProto.FLOAT, np.array([1.5, -2, np.nan], np.float32)),
        (TensorProto.DOUBLE, np.array([1e300, -0.0], np.float64)),
        (TensorProto.INT8, np.array([-128, 127, -1], np.int8)),
        (TensorProto.UINT8, np.array([0, 255], np.uint8)),
        (TensorProto.INT16, np.array([-32768, 5], np.int16)),
        (TensorProto.UINT16, np.array([65535, 1], np.uint16)),
        (TensorProto.INT32, np.array([-(2**31), 2**31 - 1], np.int32)),
        (TensorProto.INT64, np.array([-(2**63), 2**63 - 1], np.int64)),
        (TensorProto.UINT32, np.array([2**32 - 1, 0], np.uint32)),
        (TensorProto.UINT64, np.array([2**64 - 1, 3], np.uint64)),
        (TensorProto.BOOL, np.array([True, False, True])),
        (TensorProto.FLOAT16, np.array([1.0, -65504.0, 0.1], np.float16)),
    ]):
        for raw in (True, False):
            inits.append(helper.make_tensor(f"t{i}_{raw}", dt, arr.shape, arr.flatten().tolist() if not raw else arr.tobytes(), raw=raw))
    inits.append(helper.make_tensor("strings", TensorProto.STRING, [2], [b"abc", b"\xff\x00"]))
    inits.append(helper.make_tensor("bf16", TensorProto.BFLOAT16, [2], [1.0, -3.0]))
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "enc",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    src, dst = str(tmp_path / "m.onnx"), str(tmp_path / "rt.onnx")
    onnx.save(m, src)
    roundtrip(src, dst)
    b = onnx.load(dst)
    assert first_difference(m, b) is None
    for ta, tb in zip(m.graph.initializer, b.graph.initializer):
        if ta.data_type == TensorProto.STRING:
            assert list(ta.string_data) == list(tb.string_data)
            continue
        va, vb = numpy_helper.to_array(ta), numpy_helper.to_array(tb)
        assert va.dtype == vb.dtype and va.shape == vb.shape
        assert va.tobytes() == vb.tobytes(), ta.name


def test_float_fields_compare_by_bytes(tmp_path):
    """protocompare tells -0.0 from 0.0 and NaN payloads apart, and --save keeps both, in a float
    attribute and in a typed float_data field."""
    def model(alpha, values):
        node = helper.make_node("LeakyRelu", ["x"], ["y"], alpha=alpha)
        init = helper.make_tensor("w", TensorProto.FLOAT, [len(values)], values)
        g = helper.make_graph([node], "zeros", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], initializer=[init])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])

    def f32(bits):
        return struct.unpack("<f", struct.pack("<I", bits))[0]

    m = model(-0.0, [-0.0, f32(0x7FC00123)])
    assert first_difference(m, model(-0.0, [-0.0, f32(0x7FC00123)])) is None
    assert first_difference(m, model(0.0, [-0.0, f32(0x7FC00123)])) is not None
    assert first_difference(m, model(-0.0, [0.0, f32(0x7FC00123)])) is not None
    assert first_difference(m, model(-0.0, [-0.0, f32(0x7FC00000)])) is not None
    src, dst = str(tmp_path / "m.onnx"), str(tmp_path / "rt.onnx")
    onnx.save(m, src)
    roundtrip(src, dst)
    assert first_difference(m, onnx.load(dst)) is None


def test_outside_our_subset_is_kept_whole(tmp_path):
    """Subgraph attributes, sparse initializers, sequence types, functions and training fields
    are not in our schema; --save writes them back unchanged."""
    then_g = helper.make_graph([helper.make_node("Identity", ["x"], ["a"])], "then", [],
                               [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["b"])], "else", [],
                               [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])])
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g),
             helper.make_node("SequenceConstruct", ["x", "x"], ["seq"])]
    sparse = helper.make_sparse_tensor(numpy_helper.from_array(np.array([5.0], np.float32), "sv"),
                                       numpy_helper.from_array(np.array([1], np.int64), "si"), [3])
    g = helper.make_graph(nodes, "outside",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1]),
                           helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1]),
                           helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, [1])],
                          sparse_initializer=[sparse])
    g.input[0].type.tensor_type.shape.dim[0].denotation = "DATA_BATCH"
    g.input[0].type.denotation = "TENSOR"
    fn = helper.make_function("local", "Double", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])],
                              [helper.make_opsetid("", 21)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("local", 1)],
                          functions=[fn])
    m.training_info.add().algorithm.name = "train"
    src, dst = str(tmp_path / "m.onnx"), str(tmp_path / "rt.onnx")
    onnx.save(m, src)
    r = roundtrip(src, dst)
    assert r.stderr == ""  # nothing dropped, so nothing to report
    b = onnx.load(dst)
    assert first_difference(m, b) is None
    assert b.SerializeToString(deterministic=True) == m.SerializeToString(deterministic=True)


def test_inspect_json(tmp_path):
    m = make_tiny_model.build("pytorch")
    path = str(tmp_path / "m.onnx")
    onnx.save(m, path)
    r = scm("scm-inspect", path, "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    ops = {}
    for n in m.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    assert j["nodes"] == len(m.graph.node)
    assert j["ops"] == ops
    assert j["parameters"] == sum(int(np.prod(t.dims)) for t in m.graph.initializer)
    assert j["parameter_bytes"] == sum(numpy_helper.to_array(t).nbytes for t in m.graph.initializer)
    assert j["initializers"] == len(m.graph.initializer)
    assert [(v["name"], v["dtype"], v["shape"]) for v in j["inputs"]] == [("x", "FLOAT", ["N", 1, 8, 8]), ("t", "FLOAT", ["N"])]
    assert [(v["name"], v["shape"]) for v in j["outputs"]] == [("f", ["N", 1, 8, 8])]
    assert j["metadata"] == {p.key: p.value for p in m.metadata_props}
    assert j["ir_version"] == 10 and j["opsets"] == {"": 21}


def test_inspect_max_file_bytes(tmp_path):
    """--max-file-bytes N: a file over N bytes is refused before it is read (exit 1, a message
    naming the file, its size and the limit; nothing printed or saved); at N or under it loads."""
    path = os.path.join(ROOT, "models", "tiny-trigflow.onnx")
    size = os.path.getsize(path)
    for limit in (size, size + 1, 1 << 40):
        r = scm("scm-inspect", path, "--max-file-bytes", limit, "--json")
        assert r.returncode == 0, (limit, r.stderr)
        assert json.loads(r.stdout)["nodes"] == len(onnx.load(path).graph.node)
    for limit in (0, -5):  # no file can be read under such a limit: a usage error
        r = scm("scm-inspect", path, "--max-file-bytes", limit)
        assert r.returncode == 64 and "--max-file-bytes must be at least 1" in r.stderr, r.stderr
    for limit in (size - 1, 1):
        out = tmp_path / f"saved_{limit}.onnx"
        r = scm("scm-inspect", path, "--max-file-bytes", limit, "--save", out)
        assert r.returncode == 1, (limit, r.returncode, r.stderr)
        assert r.stderr == f"scm-inspect: error: {path}: file is {size} bytes, over the limit of {limit} bytes\n"
        assert r.stdout == "" and not out.exists()


def test_cli_errors_on_broken_corpus():
    corpus = os.path.join(ROOT, "Tests", "corpus", "broken")
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(corpus, "expected.tsv")) if not l.startswith("#")]
    assert len(rows) >= 40
    for file, kind, text in rows:
        r = scm("scm-inspect", os.path.join(corpus, file))
        assert r.returncode == 1, (file, r.returncode, r.stderr)
        assert text in r.stderr and "error" in r.stderr, (file, r.stderr)
        assert r.stdout == "", file


def test_cli_bad_flags_and_unwritable_save(tmp_path):
    r = scm("scm-inspect", os.path.join(ROOT, "models", "tiny-trigflow.onnx"), "--bogus")
    assert r.returncode != 0 and "--bogus" in r.stderr
    r = scm("scm-inspect", os.path.join(ROOT, "models", "tiny-trigflow.onnx"), "--save", str(tmp_path / "no" / "dir" / "m.onnx"))
    assert r.returncode == 1 and "cannot create a file" in r.stderr
    assert not (tmp_path / "no").exists()
