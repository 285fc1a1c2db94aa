#!/usr/bin/env python3
"""Runs the README's quickstart as a new user would (`make docs-check`, part of `make test`).

Every ```sh block of the README's "Quickstart" section runs verbatim, in order, from the
repository's root with bash (-e, -u, -o pipefail); each must exit 0. The ```swift block must be,
byte for byte, the example package's main.swift (which `make example` builds and the quickstart
runs), so the snippet a reader copies is the code that compiles. Every PNG the blocks make must be
a PNG, and every file and folder they create is removed afterwards. Every relative link of the
README and the pages it links (docs/, training/, models/, schemas/) must name a file that exists
and, with #anchor, a heading of it.
"""
import glob
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scmtools import paths  # noqa: E402

ROOT = paths.ROOT
EXAMPLE = os.path.join(ROOT, "Examples", "Sources", "sample-grid", "main.swift")
SKIP = {".git", ".build", ".venv", ".venv-bench", ".venv-torch"}


def quickstart_blocks(readme):
    """The (language, code) blocks of the section headed '## Quickstart'."""
    section = re.search(r"^## Quickstart\n(.*?)(?=^## )", readme, re.S | re.M)
    if not section:
        raise SystemExit("check_quickstart: README.md has no '## Quickstart' section")
    return re.findall(r"^```(\w+)\n(.*?)^```", section.group(1), re.S | re.M)


def snapshot():
    """Every path under the root, build folders and virtual environments left out."""
    found = set()
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP]
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(top, name), ROOT))
    return found


def remove(created):
    for rel in sorted(created, key=len, reverse=True):
        path = os.path.join(ROOT, rel)
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path) if not os.listdir(path) else None
        elif os.path.lexists(path):
            os.unlink(path)


def slug(heading):
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def broken_links():
    """(page, link) for each relative link whose file or heading does not exist."""
    pages = ["README.md", *sorted(glob.glob("docs/*.md", root_dir=ROOT)), "training/README.md", "models/README.md", "schemas/README.md"]
    bad = []
    for page in pages:
        path = os.path.join(ROOT, page)
        with open(path) as f:
            text = re.sub(r"```.*?```", "", f.read(), flags=re.S)
        for link in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", link):
                continue
            target, _, anchor = link.partition("#")
            resolved = os.path.normpath(os.path.join(os.path.dirname(path), target)) if target else path
            if not os.path.exists(resolved):
                bad.append((page, link))
            elif anchor and resolved.endswith(".md"):
                with open(resolved) as f:
                    headings = {slug(m) for m in re.findall(r"^#+\s+(.*)$", f.read(), re.M)}
                if anchor not in headings:
                    bad.append((page, link))
    return bad


def main():
    bad = broken_links()
    if bad:
        raise SystemExit("check_quickstart: broken links: " + ", ".join(f"{p}: {l}" for p, l in bad))
    with open(os.path.join(ROOT, "README.md")) as f:
        blocks = quickstart_blocks(f.read())
    swift = [code for lang, code in blocks if lang == "swift"]
    with open(EXAMPLE) as f:
        example = f.read()
    if swift != [example]:
        raise SystemExit("check_quickstart: the README's Swift block is not Examples/Sources/sample-grid/main.swift as it is")
    shell = [code for lang, code in blocks if lang == "sh"]
    if not shell:
        raise SystemExit("check_quickstart: no sh blocks in the quickstart")
    before = snapshot()
    failed = None
    try:
        for i, code in enumerate(shell, 1):
            t0 = time.time()
            r = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=1800)
            print(f"quickstart block {i}: exit {r.returncode} in {time.time() - t0:.1f} s")
            if r.returncode != 0:
                failed = f"block {i} exited {r.returncode}:\n{code}\n--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}"
                break
        created = snapshot() - before
        if not failed:
            pictures = [p for p in created if p.endswith(".png")]
            for p in pictures:
                with open(os.path.join(ROOT, p), "rb") as f:
                    if f.read(8) != b"\x89PNG\r\n\x1a\n":
                        failed = f"{p} is not a PNG"
            if not pictures:
                failed = "the quickstart made no PNG"
    finally:
        remove(snapshot() - before)
    if failed:
        raise SystemExit(f"check_quickstart: {failed}")
    print(f"check_quickstart: {len(shell)} blocks ran, the Swift snippet is the compiled example")


if __name__ == "__main__":
    main()
