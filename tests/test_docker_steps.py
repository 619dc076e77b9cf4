"""The Docker image's steps, run natively (CI has no Docker engine), so that a broken step fails CI.

Every RUN step of the Dockerfile is a script under scripts/ (some wrapped by with_ca.sh). Natively,
on the distribution the image is based on: the apt lists resolve (simulated install, also with
Debian's python3 added for a bare base), the DeepMind Lab build is the same script .ci/run runs
(offline from image-inputs/dmlab-sources or online), bad step inputs are refused before any work,
and the image's final check runs with this interpreter. The torch version the image installs is the
one CI tests. The whole build, in a real engine, is scripts/image/build_local.sh (docs/DOCKER.md);
tests/test_dockerfile.py checks that script and the Dockerfile stay in step.
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
    """The RUN commands without their --mount=... flags."""
    return [re.sub(r"^(--mount=\S+\s+)+", "", args) for op, args in _instructions() if op == "RUN"]


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
            if words[0] == "scripts/image/with_ca.sh":   # a wrapper: the command it runs is a script too
                wrapped = ROOT / words[1]
                assert words[1].startswith("scripts/") and wrapped.is_file() and os.access(wrapped, os.X_OK), command
    for op, args in _instructions():
        if op == "COPY" and not args.startswith("--from"):
            for src in args.split()[:-1]:
                assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert ".venv" in ignored and ".git" in ignored
    assert not {"image-inputs", "scripts"} & set(ignored), "the build context must keep scripts/ and image-inputs/"


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


def test_base_image_is_the_debian_release_ci_runs_on_and_every_stage_uses_it():
    image = re.search(r"ARG BASE_IMAGE=(\S+)", DOCKERFILE.read_text()).group(1)
    assert image.endswith("-bookworm"), image
    froms = [args.split()[0] for op, args in _instructions() if op == "FROM"]
    assert froms == ["${BASE_IMAGE}", "${BASE_IMAGE}"], froms
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


@pytest.mark.parametrize("listing, python, added", [("apt-build.txt", "build", 3), ("apt-runtime.txt", "run", 1)])
def test_apt_steps_resolve_on_this_distribution_with_debians_python_for_a_bare_base(tmp_path, listing, python, added):
    """The Dockerfile's apt steps, as it runs them on a bare Debian base (no python3: a stub that fails
    shadows this machine's): the list plus python3, python3-venv and python3-dev (build stage) or
    python3 (run time) resolve on this Debian 12."""
    if shutil.which("apt-get") is None:
        pytest.skip("no apt-get: not a Debian machine")
    path = ROOT / "scripts/dmlab" / listing
    assert f"scripts/image/apt_install.sh scripts/dmlab/{listing} --python {python}" in DOCKERFILE.read_text()
    n = len([line for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")])
    stub = tmp_path / "bin" / "python3"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 1\n")
    stub.chmod(0o755)
    r = subprocess.run([str(ROOT / "scripts/image/apt_install.sh"), str(path), "--python", python, "--simulate"],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PATH=f"{stub.parent}{os.pathsep}{os.environ['PATH']}"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == f"apt_install: {n + added} packages of {listing} resolve"


def test_apt_step_refuses_an_unknown_python_kind_before_apt():
    r = subprocess.run([str(ROOT / "scripts/image/apt_install.sh"), str(ROOT / "scripts/dmlab/apt-runtime.txt"),
                        "--python", "dev"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == "apt_install: --python dev: expected build or run", r.stderr


def test_python_env_refuses_a_torch_wheel_of_another_version_before_any_work(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "torch-2.12.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    venv = tmp_path / "venv"
    env = dict(os.environ, IMAGE_INPUTS=str(tmp_path))
    r = subprocess.run([str(ROOT / "scripts/image/python_env.sh"), str(venv), "",
                        "wheels/torch-2.12.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 1 and "is not torch==2.13.0 (the version CI tests)" in r.stderr, r.stderr
    r = subprocess.run([str(ROOT / "scripts/image/python_env.sh"), str(venv), "", "wheels/absent.whl"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 1 and "absent.whl not found: put it under image-inputs/" in r.stderr, r.stderr
    assert not venv.exists()


def test_with_ca_exports_the_secret_to_pip_and_curl_only_when_it_is_given(tmp_path):
    ca = tmp_path / "ca"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    wrapper = str(ROOT / "scripts/image/with_ca.sh")
    clean = {k: v for k, v in os.environ.items() if k not in ("PIP_CERT", "CURL_CA_BUNDLE")}
    r = subprocess.run([wrapper, "env"], capture_output=True, text=True, env=dict(clean, IMAGE_CA_SECRET=str(ca)))
    assert r.returncode == 0
    assert f"PIP_CERT={ca}" in r.stdout.splitlines() and f"CURL_CA_BUNDLE={ca}" in r.stdout.splitlines()
    r = subprocess.run([wrapper, "env"], capture_output=True, text=True,
                       env=dict(clean, IMAGE_CA_SECRET=str(tmp_path / "absent")))
    assert r.returncode == 0 and "PIP_CERT=" not in r.stdout and "CURL_CA_BUNDLE=" not in r.stdout


def test_the_image_build_step_is_the_script_ci_runs():
    ci = (ROOT / ".ci/run").read_text()
    assert "scripts/build_dmlab.sh --apt --offline ../shared/dmlab/sources --python .venv/bin/python" in ci
    assert any("scripts/image/dmlab.sh /opt/venv/bin/python /image-inputs/dmlab-sources" in c for c in _run_commands())
    step = (ROOT / "scripts/image/dmlab.sh").read_text()
    assert '/build_dmlab.sh" --offline "$src" --python "$py"' in step
    assert '/build_dmlab.sh" --online --python "$py"' in step


def test_the_images_final_check_passes_natively(real_deepmind_lab):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    r = subprocess.run([str(ROOT / "scripts/image/check.sh"), sys.executable], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "deepmind_lab" in r.stdout and ": OK" in r.stdout
