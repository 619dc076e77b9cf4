"""The Docker image's steps, run natively (no Docker engine here), so that a broken step fails CI.

Every RUN step of the Dockerfile is one script under scripts/. Natively, on the distribution
the image is based on: the apt lists resolve (simulated install), the DeepMind Lab build is the
same script .ci/run runs (offline there, online in the image: only the download differs), and the
image's final check runs with this interpreter. The torch version the image installs is the one
CI tests. The step that downloads the CUDA torch wheel is the only one not run here.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        current += " " + line.rstrip("\\").strip()
        if not line.endswith("\\"):
            lines.append(current.strip())
            current = ""
    return [tuple(line.split(None, 1)) for line in lines]


def _run_commands() -> list[str]:
    return [args for op, args in _instructions() if op == "RUN"]


def test_every_run_step_is_a_project_script_and_every_copied_path_exists():
    runs = _run_commands()
    assert len(runs) >= 4
    for command in runs:
        for part in command.split("&&"):
            words = [w for w in shlex.split(part) if not re.match(r"^[A-Z_]+=", w)]
            if words[:2] == ["rm", "-rf"]:
                continue
            script = ROOT / words[0]
            assert words[0].startswith("scripts/") and script.is_file() and os.access(script, os.X_OK), command
    for op, args in _instructions():
        if op == "COPY" and not args.startswith("--from"):
            for src in args.split()[:-1]:
                assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def test_every_stage_that_installs_the_project_copies_all_its_packages():
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    stages, copied = [], None
    for op, args in _instructions():
        if op == "FROM":
            copied = set()
            stages.append(copied)
        elif op == "COPY" and not args.startswith("--from"):
            copied.update(args.split()[:-1])
    installing = [c for c in stages if "pyproject.toml" in c]
    assert len(installing) == 2
    for copied in installing:
        assert set(packages) <= copied, f"Dockerfile stage lacks COPY of {sorted(set(packages) - copied)}"


def test_base_image_is_the_debian_release_ci_runs_on():
    image = re.search(r"ARG PYTHON_IMAGE=(\S+)", DOCKERFILE.read_text()).group(1)
    assert image.endswith("-bookworm"), image
    os_release = Path("/etc/os-release")
    if not os_release.exists() or "ID=debian" not in os_release.read_text():
        pytest.skip("not on Debian: cannot compare the image's release with this machine's")
    assert "VERSION_CODENAME=bookworm" in os_release.read_text()


def test_image_installs_the_torch_version_ci_tests():
    pins = {
        "image": re.search(r'TORCH="torch==([\d.]+)"', (ROOT / "scripts/image/python_env.sh").read_text()),
        ".ci/run": re.search(r"torch==([\d.]+)", (ROOT / ".ci/run").read_text()),
        "README": re.search(r"torch==([\d.]+)", (ROOT / "README.md").read_text()),
    }
    versions = {where: match.group(1) for where, match in pins.items()}
    assert len(set(versions.values())) == 1, versions
    import torch
    assert torch.__version__.split("+")[0] == versions[".ci/run"]


@pytest.mark.parametrize("listing", ["apt-build.txt", "apt-runtime.txt"])
def test_apt_steps_resolve_on_this_distribution(listing):
    if shutil.which("apt-get") is None:
        pytest.skip("no apt-get: not a Debian machine")
    r = subprocess.run([str(ROOT / "scripts/image/apt_install.sh"), str(ROOT / "scripts/dmlab" / listing),
                        "--simulate"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_image_build_step_is_the_script_ci_runs():
    ci = (ROOT / ".ci/run").read_text()
    assert "scripts/build_dmlab.sh --apt --offline ../shared/dmlab/sources --python .venv/bin/python" in ci
    assert any("scripts/build_dmlab.sh --online" in c for c in _run_commands())


def test_the_images_final_check_passes_natively(real_deepmind_lab):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    r = subprocess.run([str(ROOT / "scripts/image/check.sh"), sys.executable], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "deepmind_lab" in r.stdout and ": OK" in r.stdout
