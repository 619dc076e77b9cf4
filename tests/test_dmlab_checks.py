"""The DMLab-30 config fails fast: no engine, a psychlab level without its dataset, too many local actors."""
import pytest

import launch
from envs import dmlab_checks
from envs.dmlab_checks import DATASET_LEVELS, check_dmlab30_run

OK = dict(dataset_path=None, num_actors=2, cpus_per_actor=1.0, ray_address=None, oversubscribe=False,
          cpu_count=2, engine_available=True)


def _check(levels=("rooms_watermaze",), **changes):
    check_dmlab30_run(list(levels), **{**OK, **changes})


def test_a_runnable_config_passes():
    _check()
    _check(levels=DATASET_LEVELS, dataset_path="dummy")


def test_missing_engine_names_the_build_command():
    with pytest.raises(ValueError, match=r"scripts/build_dmlab\.sh .*docker build"):
        _check(engine_available=False)


def test_dataset_levels_need_dataset_path_and_are_named():
    with pytest.raises(ValueError) as info:
        _check(levels=("rooms_watermaze", "psychlab_continuous_recognition", "psychlab_visual_search"))
    message = str(info.value)
    assert "psychlab_continuous_recognition" in message and "env.options.dataset_path=" in message
    assert "psychlab_visual_search" not in message and "rooms_watermaze" not in message
    _check(levels=("psychlab_visual_search", "psychlab_sequential_comparison"))   # need no dataset


def test_dataset_path_must_exist(tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        _check(levels=DATASET_LEVELS, dataset_path=str(tmp_path / "absent"))
    _check(levels=DATASET_LEVELS, dataset_path=str(tmp_path))


@pytest.mark.parametrize("num_actors, cpus_per_actor, ok", [(2, 1.0, True), (3, 1.0, False), (4, 0.5, True),
                                                            (150, 1.0, False)])
def test_more_local_actors_than_cpus_is_refused_unless_allowed(num_actors, cpus_per_actor, ok):
    args = dict(num_actors=num_actors, cpus_per_actor=cpus_per_actor)
    if ok:
        _check(**args)
        return
    with pytest.raises(ValueError, match=r"num_actors=.*ray_address=.*actors\.oversubscribe=true"):
        _check(**args)
    _check(**args, oversubscribe=True)
    _check(**args, ray_address="auto")


def test_natlab_levels_are_refused_when_the_build_lacks_their_maps(monkeypatch):
    monkeypatch.setattr(dmlab_checks, "missing_maps",
                        lambda level: ["natlab_forage_ltm_day"] if level.startswith("natlab") else [])
    with pytest.raises(ValueError, match=r"natlab_fixed_large_map need maps .*--online.*env\.tasks"):
        _check(levels=("rooms_watermaze", "natlab_fixed_large_map"))
    _check(levels=("rooms_watermaze",))


def test_launch_refuses_before_writing_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dmlab_checks, "deepmind_lab_importable", lambda: True)
    monkeypatch.setattr(dmlab_checks, "missing_maps", lambda level: [])
    logdir = tmp_path / "run"
    # the reference config: 150 local actors, all 30 levels (two need the dataset)
    code = launch.main(["train", "--config", "configs/dmlab30.yaml", f"logdir={logdir}", "device=cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "psychlab_arbitrary_visuomotor_mapping" in err and err.count("\n") == 1
    code = launch.main(["train", "--config", "configs/dmlab30.yaml", f"logdir={logdir}", "device=cpu",
                        "env.options.dataset_path=dummy"])
    err = capsys.readouterr().err
    assert code == 2 and "num_actors=150" in err and "actors.oversubscribe=true" in err
    monkeypatch.setattr(dmlab_checks, "deepmind_lab_importable", lambda: False)
    code = launch.main(["train", "--config", "configs/dmlab30.yaml", f"logdir={logdir}", "device=cpu"])
    assert code == 2 and "scripts/build_dmlab.sh" in capsys.readouterr().err
    assert not logdir.exists()
