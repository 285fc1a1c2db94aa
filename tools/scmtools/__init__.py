"""Helpers shared by the scripts in tools/ and the Python tests (Tests/crosscheck, Tests/train,
Tests/serve):

    paths        the repository root, the build folders (.build/debug, .build/release), binaries, data files
    proc         runs one of the project's binaries (scm-run, scm-infer, ...)
    onnxrt       onnxruntime CPU sessions (ort_session) and their timing (ort_median_ms)
    trigflow_ref the reference sampler: the TrigFlow sampling contract in NumPy + onnxruntime

A script run as `python tools/X.py` finds this package by itself (tools/ is the script's folder, the
first entry of sys.path); a test puts tools/ on sys.path once, in its conftest.py. Importing the
package imports no submodule: paths and proc need only the standard library, onnxrt imports
onnxruntime when it first builds a session.
"""
