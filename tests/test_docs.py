"""The docs stay true: DMLab-30 tables equal the code's constants, nothing cites fact sheets outside the
repository, and every source file or dotted module that docs and docstrings name exists."""
import re
import subprocess
from pathlib import Path

import pytest

from configs.schema import SECTIONS
from envs.dmlab30 import ACTION_NAMES, ACTION_SET, HUMAN_SCORES, RANDOM_SCORES, TEST_LEVELS, TRAIN_LEVELS

ROOT = Path(__file__).resolve().parents[1]
CONFIG_KEYS = {f"{section}.{f}" for section, cls in SECTIONS.items() for f in cls.__dataclass_fields__}
PACKAGES = ("agent", "learner", "actors", "envs", "configs", "evaluation", "analysis", "training", "bench", "scripts", "tests")


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / n for n in names if n.endswith((".py", ".md", ".yaml", ".toml")) or n == "Dockerfile"]


def table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of the Markdown table whose header line starts with ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_dmlab30_doc_tables_equal_the_constants():
    text = (ROOT / "docs" / "DMLAB30.md").read_text()
    rows = table_rows(text, "| id | level")
    assert len(rows) == 30
    for i, (idx, train, test, human, rand) in enumerate(rows):
        assert int(idx) == i and train == TRAIN_LEVELS[i]
        assert (test if test != "=" else train) == TEST_LEVELS[i]
        assert float(human) == HUMAN_SCORES[TEST_LEVELS[i]] and float(rand) == RANDOM_SCORES[TEST_LEVELS[i]]
    actions = table_rows(text, "| index | action")
    assert [(int(i), name, eval(vec)) for i, name, vec in actions] == list(
        zip(range(len(ACTION_SET)), ACTION_NAMES, ACTION_SET))


def test_facts_are_cited_from_the_repository():
    """The facts a user needs are in docs/: nothing cites the fact sheets kept beside the checkout
    (the peers' harness, an external tool that bench/peers_side_by_side.py runs, is not a fact sheet)."""
    outside = [f"{p.relative_to(ROOT)}:{n}" for p in tracked_text_files()
               for n, line in enumerate(p.read_text().splitlines(), 1)
               if re.search(r"shared/(DMLAB30|STYLE)\.md|\.\./shared/?[`'\" ]|\.\./shared$", line)]
    assert not outside, f"references to files outside the repository: {outside}"


@pytest.mark.parametrize("pattern, to_path", [
    (r"\b((?:%s)/[\w/]+\.(?:py|yaml))\b" % "|".join(PACKAGES), lambda m: m),
    (r"``((?:agent|learner|actors|envs|configs|evaluation|analysis|training)\.[a-z_]+)``", lambda m: m.replace(".", "/") + ".py"),
])
def test_named_files_and_modules_exist(pattern, to_path):
    missing = []
    for p in tracked_text_files():
        for n, line in enumerate(p.read_text().splitlines(), 1):
            for m in re.findall(pattern, line):
                if m in CONFIG_KEYS or "NAME" in m or "nope" in m:
                    continue
                if not (ROOT / to_path(m)).exists() \
                        and not (ROOT / to_path(m)).with_suffix("").is_dir():
                    missing.append(f"{p.relative_to(ROOT)}:{n}: {m}")
    assert not missing, f"names of files that do not exist: {missing}"


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation but '-' and '_' dropped, spaces -> '-'."""
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", markdown, flags=re.M)}


def test_markdown_links_resolve():
    """Every relative link in the Markdown files points at a tracked file or folder, and a
    ``#anchor`` at a heading of that file (the README links into docs/ for the details)."""
    broken = []
    for p in tracked_text_files():
        if p.suffix != ".md":
            continue
        for target in re.findall(r"\]\(([^)\s]+)\)", p.read_text()):
            if re.match(r"[a-z]+://|mailto:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (p.parent / path).resolve() if path else p
            if not dest.exists():
                broken.append(f"{p.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.is_file() and anchor not in _anchors(dest.read_text()):
                broken.append(f"{p.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, f"broken links: {broken}"


def test_readme_stays_short():
    """The README is the five-minute read; measurements live in docs/BENCHMARKS.md."""
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150
