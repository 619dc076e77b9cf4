"""launch.py's command line: `train --help` documents every config field, `print-config`, bad logdirs."""
import dataclasses
import subprocess
import sys
from dataclasses import dataclass

import pytest
import yaml

import launch
from conftest import ROOT
from configs.help import config_reference, field_descriptions
from configs.schema import SECTIONS, config_from_dict, load_config


def help_text(capsys) -> str:
    with pytest.raises(SystemExit) as e:
        launch.main(["train", "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


@dataclass(frozen=True)
class Example:
    plain: int = 3                 # a plain field
    wrapped: tuple[int, ...] = (1, 2,
                                3)  # the comment of a wrapped default
    undocumented: str = "x"

    # a block of comment lines right above a field
    # describes it
    above: int = 1
    # ignored: the field has its own trailing comment
    after: float = 0.5  # has a # inside


def test_field_descriptions_are_the_trailing_comments():
    assert field_descriptions(Example) == {"plain": "a plain field", "wrapped": "the comment of a wrapped default",
                                           "above": "a block of comment lines right above a field describes it",
                                           "after": "has a # inside"}


@pytest.mark.parametrize("section", list(SECTIONS))
def test_every_config_field_has_a_description(section):
    cls = SECTIONS[section]
    docs = field_descriptions(cls)
    missing = [f.name for f in dataclasses.fields(cls) if not docs.get(f.name)]
    assert not missing, f"{cls.__name__} fields without a trailing comment (their --help text): {missing}"


def test_train_help_lists_every_field_with_default_and_description(capsys):
    out = help_text(capsys)
    defaults = load_config(None)                       # configs/embedded.yaml: what `train` runs
    lines = out.splitlines()
    for section, cls in SECTIONS.items():
        docs = field_descriptions(cls)
        for f in dataclasses.fields(cls):
            key = f"{section}.{f.name}"
            line = next((ln for ln in lines if ln.strip().startswith(key + " ")), None)
            assert line is not None, f"{key} missing from train --help"
            assert docs[f.name] in line
            value = getattr(getattr(defaults, section), f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 10_000:
                assert f" {value}" in line, (key, line)
    # hand-checked lines: embedded.yaml's value, the schema's default where it differs, the short key
    line = next(ln for ln in lines if ln.strip().startswith("learner.unroll_length"))
    assert "(unroll_length)" in line and " 20 (schema: 100)" in line and "transitions per unroll" in line
    line = next(ln for ln in lines if ln.strip().startswith("run.total_frames"))
    assert "2_000_000" in line and "schema" not in line
    line = next(ln for ln in lines if ln.strip().startswith("learner.grad_norm_clip"))
    assert "40.0 (schema: null)" in line


def test_reference_follows_the_given_config():
    text = config_reference(load_config("configs/dmlab30.yaml"))
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("actors.num_actors"))
    assert " 150 (schema: 2)" in line


def test_print_config_prints_the_resolved_yaml(capsys):
    args = ["--config", "configs/dmlab30.yaml", "head=learnt_mi", "total_frames=2e6", "learner.batch_size=16"]
    assert launch.main(["print-config", *args]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    expected = load_config("configs/dmlab30.yaml", args[2:])
    assert printed == expected.to_dict()
    assert printed["agent"]["head"] == "learnt_mi" and printed["run"]["total_frames"] == 2_000_000
    assert config_from_dict(printed) == expected                   # usable as a --config file


def test_print_config_bad_override_is_one_line(capsys):
    assert launch.main(["print-config", "learner.batch_size=2.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "learner.batch_size=2.5" in err


def test_uncreatable_logdir_is_a_one_line_error_before_any_work(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    proc = subprocess.run([sys.executable, str(ROOT / "launch.py"), "train", f"logdir={blocker}/run",
                           "mode=serial", "device=cpu"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: run.logdir=") and "not a directory" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
