"""Runs the project's binaries."""
import subprocess

from . import paths


def scm(tool, *args, bin_dir=None, timeout=None, check=False, **kwargs):
    """Runs the project binary `tool` (scm-run, scm-infer, ...) of `bin_dir` (default:
    paths.RELEASE) with `args` (each passed through str); returns the CompletedProcess, output
    captured in text mode. check=True raises CalledProcessError on a non-zero exit; other keyword
    arguments go to subprocess.run."""
    return subprocess.run([paths.binary(tool, bin_dir), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          check=check, **kwargs)
