"""onnxruntime on the CPU: the one place that builds InferenceSessions for the tools and tests.
onnxruntime is imported on the first call, not with this module."""
import os
import time

import numpy as np


def ort_session(model, threads=None, optimize=True, *, inter_threads=None, log_severity=None):
    """An onnxruntime CPU session of `model`: a file path (str or os.PathLike), the serialized
    bytes of a model, or an onnx.ModelProto.

    threads: intra-op threads (None: onnxruntime's default); inter_threads: inter-op threads (None:
    onnxruntime's default). optimize=True: all graph optimizations (ORT_ENABLE_ALL, onnxruntime's
    own default); False: none (ORT_DISABLE_ALL), the graph's nodes as written. log_severity:
    SessionOptions.log_severity_level (3: errors only; None: onnxruntime's default)."""
    import onnxruntime as ort
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    elif not isinstance(model, (str, bytes)):
        model = model.SerializeToString()  # an onnx.ModelProto
    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = threads
    if inter_threads is not None:
        so.inter_op_num_threads = inter_threads
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    if log_severity is not None:
        so.log_severity_level = log_severity
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def ort_median_ms(model_path, feeds, threads, repeat):
    """Median milliseconds of `repeat` onnxruntime runs after one warm-up run (`threads` intra-op
    threads, one inter-op thread, all graph optimizations)."""
    sess = ort_session(model_path, threads, inter_threads=1)
    sess.run(None, feeds)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        ts.append(time.perf_counter() - t0)
    return 1000 * float(np.median(ts))
