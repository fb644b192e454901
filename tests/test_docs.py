"""The docs name files that exist: every `path/like/this.py` in docs/ and README.md."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# A path with at least one folder and a source, doc, script or data extension.
PATH = re.compile(r"(?<![\w./$-])((?:\.\./)*[\w.-]+(?:/[\w.-]+)+\."
                  r"(?:py|md|sh|sbatch|jsonl?|toml|txt|ya?ml))\b")
# Files a run or a command writes (runs/..., OUT/...), and the data next to the checkout.
NOT_IN_REPO = re.compile(r"^(runs/|\.\./shared/|[A-Z]+/)")
SEARCHED = ("vitscale", "tests", "benchmarks", "configs", "examples", "docs", ".ci")


def _repo_files() -> list[str]:
    return [str(p.relative_to(REPO)) for top in SEARCHED for p in (REPO / top).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts]


def _exists(name: str, doc: Path, files: list[str]) -> bool:
    """At the repository root, beside the doc (a link), or the tail of exactly one file's
    path (the docs say `train/engine.py` for vitscale/train/engine.py)."""
    if (REPO / name).exists() or (doc.parent / name).exists():
        return True
    return sum(f.endswith("/" + name) for f in files) == 1


def test_every_path_named_in_the_docs_exists():
    files = _repo_files()
    missing = []
    for doc in DOCS:
        for number, line in enumerate(doc.read_text().splitlines(), start=1):
            for name in PATH.findall(line):
                if not NOT_IN_REPO.match(name) and not _exists(name, doc, files):
                    missing.append(f"{doc.relative_to(REPO)}:{number}: {name}")
    assert not missing, "files named in the docs that do not exist:\n" + "\n".join(missing)


def test_the_path_check_finds_a_missing_file(tmp_path):
    """The pattern sees paths in prose, backticks and links, and a wrong one fails."""
    line = "see `vitscale/optim.py`, [x](../examples/launch/train.sbatch) and train/engine.py."
    assert PATH.findall(line) == ["vitscale/optim.py", "../examples/launch/train.sbatch",
                                  "train/engine.py"]
    files = _repo_files()
    doc = REPO / "docs" / "architecture.md"
    assert not _exists("vitscale/optim.py", doc, files)
    assert _exists("../examples/launch/train.sbatch", doc, files)
    assert _exists("train/engine.py", doc, files)
