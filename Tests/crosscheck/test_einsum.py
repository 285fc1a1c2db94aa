"""Einsum in float32 through every kernel form (SGEMM with operands in place, transposed, packed;
output unpacked; rows as samples; the loop form) against numpy in float64, bitwise the same at 1
and 3 threads, sample rows the same alone and in a batch; bad equations are errors naming the
node. ONNX's own Einsum node tests (float64) run in the conformance suite."""
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import scm

RNG = np.random.default_rng(5)

EQUATIONS = [
    ("ij,jk->ik", [(5, 7), (7, 3)]),            # rows as samples, in place
    ("ij,kj->ik", [(5, 7), (3, 7)]),            # B transposed in place
    ("ji,jk->ik", [(7, 5), (7, 3)]),            # A transposed in place
    ("bhid,bhjd->bhij", [(2, 3, 4, 8), (2, 3, 6, 8)]),  # attention scores
    ("bhij,bhjd->bhid", [(2, 3, 4, 6), (2, 3, 6, 8)]),  # attention values
    ("bid,bjd->bji", [(3, 4, 5), (3, 6, 5)]),    # output unpacked
    ("ikj,jl->lik", [(3, 4, 2), (2, 5)]),        # A packed, output unpacked
    ("...ij,...jk->...ik", [(2, 3, 4, 5), (3, 5, 2)]),  # broadcast ellipsis: B packed
    ("bij,bjk->bik", [(1, 3, 4), (4, 4, 2)]),    # a batch label broadcast from 1
    ("nk,kd->nd", [(600, 40), (40, 700)]),       # large: column chunks
    ("nhwpqc->nchpwq", [(3, 4, 4, 2, 2, 1)]),    # DiT's unpatchify (loop)
    ("ij,jk,kl->il", [(3, 4), (4, 5), (5, 2)]),  # three operands (loop)
    ("bii->bi", [(2, 4, 4)]),                    # diagonal (loop)
    ("ij->", [(3, 5)]),                          # full sum (loop)
    ("i,i", [(6,), (6,)]),                       # implicit scalar output
    ("ij,jk", [(3, 4), (4, 2)]),                 # implicit output "ik"
    ("Ab,bA", [(3, 4), (4, 3)]),                 # implicit, uppercase: trace
    ("bij , bjk -> bik", [(2, 3, 4), (2, 4, 5)]),  # spaces
]


def model(equation, shapes):
    names = [f"x{i}" for i in range(len(shapes))]
    node = helper.make_node("Einsum", names, ["y"], equation=equation)
    g = helper.make_graph([node], "einsum", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in zip(names, shapes)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def infer(tmp, m, arrays, threads=1, tag="a"):
    d = os.path.join(tmp, tag)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "m.onnx")
    onnx.save(m, path)
    files = []
    for i, a in enumerate(arrays):
        f = os.path.join(d, f"in{i}.pb")
        open(f, "wb").write(numpy_helper.from_array(a).SerializeToString())
        files.append(f)
    r = scm("scm-infer", path, "--inputs", *files, "--output-dir", d, "--threads", threads, "--min-parallel-elements", 0)
    assert r.returncode == 0, r.stderr
    return numpy_helper.to_array(onnx.load_tensor(os.path.join(d, "output_0.pb")))


@pytest.mark.parametrize("equation,shapes", EQUATIONS, ids=[e for e, _ in EQUATIONS])
def test_einsum_float32_matches_numpy_and_thread_counts(equation, shapes, tmp_path):
    arrays = [RNG.normal(size=s).astype(np.float32) for s in shapes]
    want = np.einsum(equation, *[a.astype(np.float64) for a in arrays])
    got1 = infer(str(tmp_path), model(equation, shapes), arrays, 1, "t1")
    got3 = infer(str(tmp_path), model(equation, shapes), arrays, 3, "t3")
    assert got1.shape == want.shape
    scale = np.einsum(equation, *[np.abs(a).astype(np.float64) for a in arrays])
    assert np.all(np.abs(got1 - want) <= 1e-5 * scale + 1e-6), np.abs(got1 - want).max()
    assert got1.tobytes() == got3.tobytes(), "thread counts differ"


@pytest.mark.parametrize("equation,a_shape,b_shape", [("nk,kd->nd", (1, 40), (40, 700)),
                                                      ("bhid,bhjd->bhij", (1, 2, 5, 8), (1, 2, 5, 8)),
                                                      ("nhwpqc->nchpwq", (1, 4, 4, 2, 2, 1), None)])
def test_einsum_samples_are_batch_invariant(equation, a_shape, b_shape, tmp_path):
    """A sample's rows are the same bytes alone and among 37 others (rows as samples or a batch label)."""
    def draw(shape, n):
        return RNG.normal(size=(n,) + shape[1:]).astype(np.float32)
    n = 37
    a = draw(a_shape, n)
    if b_shape is None:
        alone = infer(str(tmp_path), model(equation, [a_shape]), [a[:1]], 2, "one")
        batch = infer(str(tmp_path), model(equation, [a.shape]), [a], 2, "all")
    else:
        # A [N, ...] with B shared (a weight) or per sample (attention).
        b = draw(b_shape, n) if b_shape[0] == 1 and equation.startswith("bh") else RNG.normal(size=b_shape).astype(np.float32)
        b1 = b[:1] if equation.startswith("bh") else b
        alone = infer(str(tmp_path), model(equation, [a_shape, b1.shape]), [a[:1], b1], 2, "one")
        batch = infer(str(tmp_path), model(equation, [a.shape, b.shape]), [a, b], 2, "all")
    assert alone[0].tobytes() == batch[0].tobytes()


@pytest.mark.parametrize("equation,shapes,message", [
    ("ij,jk->ik", [(3, 4), (5, 2)], "label 'j' has sizes 4 and 5"),
    ("ij->ijk", [(3, 4)], "output label 'k' is in no input"),
    ("ij,jk", [(3, 4)], "2 operand terms for 1 inputs"),
    ("i1->i", [(3, 4)], "'1' is not a label"),
    ("ijk->i", [(3, 4)], "term 0 has 3 labels for rank 2"),
    ("ij->ii", [(3, 4)], "output label 'i' repeated"),
    ("i..j->i", [(3, 4)], "'...'"),
])
def test_einsum_errors_name_the_node(equation, shapes, message, tmp_path):
    path = str(tmp_path / "m.onnx")
    onnx.save(model(equation, shapes), path)
    arrays = [RNG.normal(size=s).astype(np.float32) for s in shapes]
    files = []
    for i, a in enumerate(arrays):
        f = str(tmp_path / f"in{i}.pb")
        open(f, "wb").write(numpy_helper.from_array(a).SerializeToString())
        files.append(f)
    r = scm("scm-infer", path, "--inputs", *files, "--output-dir", tmp_path)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Einsum" in r.stderr and message in r.stderr, r.stderr
    assert "Fatal" not in r.stderr and "Traceback" not in r.stderr
