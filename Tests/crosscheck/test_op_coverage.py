"""docs/conformance.md lists every op of ONNX's default domain the runtime does not run, with why:
the table must name exactly the ops that `scm-infer --list-ops` leaves out."""
import os
import re
import subprocess

import onnx.defs

from conftest import BIN, ROOT


def documented_unsupported():
    text = open(os.path.join(ROOT, "docs", "conformance.md")).read()
    section = text.split("## ONNX ops this runtime does not run", 1)[1].split("\n## ", 1)[0]
    ops = []
    for line in section.splitlines():
        cells = line.split("|")
        if len(cells) > 3 and "`" in cells[2]:
            ops += re.findall(r"`([A-Za-z0-9]+)`", cells[2])
    return ops


def test_the_unsupported_ops_table_matches_the_runtime():
    standard = {s.name for s in onnx.defs.get_all_schemas_with_history() if s.domain == "" and not s.deprecated}
    listed = subprocess.run([os.path.join(BIN, "scm-infer"), "--list-ops"], capture_output=True, text=True, check=True)
    supported = {op for op in listed.stdout.split() if ":" not in op}
    documented = documented_unsupported()
    assert len(documented) == len(set(documented)), "an op is listed twice"
    assert supported <= standard, supported - standard
    assert set(documented) == standard - supported, {
        "documented but supported or not in ONNX": sorted(set(documented) - (standard - supported)),
        "unsupported and not documented": sorted((standard - supported) - set(documented))}
