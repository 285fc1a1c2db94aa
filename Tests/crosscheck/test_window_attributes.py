"""A Conv, ConvTranspose or pool whose window attributes do not fit its spatial rank is refused when
the file is read, as onnxruntime refuses it when it loads the model: scm-inspect and
`scm-export attach` name the node and the attribute, exit 1, and write nothing."""
import onnx
import onnxruntime as ort
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import scm


def window_model(path, op="Conv", weight=(4, 1, 3, 3), **attrs):
    """x [N, 1, 8, 8] and t [N] -> one window op -> ReduceMean: a network of the contract's form."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])
    t = helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = [numpy_helper.from_array(np.ones(weight, np.float32), "w")] if weight else []
    ins = ["x", "w"] if weight else ["x"]
    nodes = [helper.make_node(op, ins, ["c"], name="the_window", **attrs), helper.make_node("ReduceMean", ["c"], ["y"])]
    m = helper.make_model(helper.make_graph(nodes, "g", [x, t], [y], inits), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return str(path)


BAD = [
    ("Conv", (4, 1, 3, 3), dict(pads=[1, 1, 1]), "pads has 3 values for 2 spatial dims"),
    ("Conv", (4, 1, 3, 3), dict(strides=[2]), "strides has 1 value for 2 spatial dims"),
    ("Conv", (4, 1, 3, 3), dict(dilations=[1, 1, 1]), "dilations has 3 values"),
    ("Conv", (4, 1, 3, 3), dict(kernel_shape=[3, 3, 3]), "the input has 2 spatial dimensions but kernel_shape has 3"),
    ("Conv", (4, 1, 3, 3, 3), {}, "the input has 2 spatial dimensions but the weight has 3"),
    ("ConvTranspose", (1, 4, 3, 3), dict(pads=[0, 0]), "pads has 2 values"),
    ("ConvTranspose", (1, 4, 3, 3), dict(output_padding=[1]), "output_padding has 1 value for 2 spatial dims"),
    ("MaxPool", None, dict(kernel_shape=[2, 2], pads=[0, 0]), "pads has 2 values"),
    ("AveragePool", None, dict(kernel_shape=[2, 2], strides=[2, 2, 2]), "strides has 3 values"),
]


@pytest.mark.parametrize("op, weight, attrs, message", BAD, ids=[f"{b[0]}-{next(iter(b[2]), 'weight')}" for b in BAD])
def test_a_window_that_does_not_fit_its_rank_is_refused_on_reading(tmp_path, op, weight, attrs, message):
    path = window_model(tmp_path / "m.onnx", op, weight, **attrs)
    with pytest.raises(Exception):
        ort.InferenceSession(path)  # the reference refuses it too
    r = scm("scm-inspect", path)
    assert r.returncode == 1 and "'the_window'" in r.stderr and message in r.stderr, r.stderr
    out = tmp_path / "o.onnx"
    r = scm("scm-export", "attach", path, out, "--parameterization", "velocity", "--sigma-data", 0.5)
    assert r.returncode == 1 and "'the_window'" in r.stderr and message in r.stderr, r.stderr
    assert not out.exists()


@pytest.mark.parametrize("op, weight, attrs", [("Conv", (4, 1, 3, 3), dict(pads=[1, 1, 1, 1], strides=[2, 2])),
                                               ("ConvTranspose", (1, 4, 3, 3), dict(output_padding=[1, 1], strides=[2, 2])),
                                               ("MaxPool", None, dict(kernel_shape=[2, 2], strides=[2, 2]))])
def test_a_window_that_fits_is_read(tmp_path, op, weight, attrs):
    path = window_model(tmp_path / "m.onnx", op, weight, **attrs)
    ort.InferenceSession(path)
    assert scm("scm-inspect", path).returncode == 0
    r = scm("scm-export", "attach", path, tmp_path / "o.onnx", "--parameterization", "velocity", "--sigma-data", 0.5)
    assert r.returncode == 0, r.stderr
