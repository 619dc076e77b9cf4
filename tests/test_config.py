"""The config tree: YAML + overrides, validation with clear errors, resume compatibility."""
import os

import pytest
import yaml

from configs.schema import (TrainConfig, config_from_dict, incompatible_changes, load_config, parse_override,
                            save_yaml)


def test_default_is_embedded_and_short_keys_map_to_fields():
    cfg = load_config(None, ["head=taskid_mi", "num_actors=3", "envs_per_actor=4", "total_frames=1000",
                             "logdir=/tmp/x", "seed=7", "device=cpu", "ray_address=auto"])
    assert cfg.env.suite == "embedded"
    assert (cfg.agent.head, cfg.actors.num_actors, cfg.actors.envs_per_actor) == ("taskid_mi", 3, 4)
    assert (cfg.run.total_frames, cfg.run.logdir, cfg.run.seed, cfg.run.device) == (1000, "/tmp/x", 7, "cpu")
    assert cfg.run.ray_address == "auto"


def test_dotted_overrides_parse_yaml_values():
    cfg = load_config(None, ["learner.grad_norm_clip=null", "learner.learning_rate=1e-4",
                             "env.tasks=[a, b]", "env.options.tile_size=4", "learner.adam_betas=[0.8, 0.9]"])
    assert cfg.learner.grad_norm_clip is None
    assert cfg.learner.learning_rate == pytest.approx(1e-4)
    assert cfg.env.tasks == ("a", "b")
    assert cfg.env.options["tile_size"] == 4
    assert cfg.learner.adam_betas == (0.8, 0.9)


def test_dmlab30_config_has_the_reference_settings():
    cfg = load_config("configs/dmlab30.yaml")
    assert (cfg.actors.num_actors, cfg.actors.envs_per_actor) == (150, 1)
    lc = cfg.learner
    assert (lc.batch_size, lc.unroll_length, lc.discount) == (32, 100, 0.99)
    assert lc.optimizer == "rmsprop" and (lc.rmsprop_decay, lc.rmsprop_momentum, lc.rmsprop_epsilon) == (0.99, 0, 0.1)
    assert lc.learning_rate == 0.00031866995608948655
    assert lc.entropy_cost == 0.0033391318945337044
    assert lc.grad_norm_clip is None and lc.reward_clipping == "soft_asymmetric"
    assert cfg.run.total_frames == 10_000_000_000 and cfg.agent.torso == "deep"


@pytest.mark.parametrize("override, words", [
    ("hed=shared", ["'hed'", "head"]),
    ("learner.batchsize=3", ["learner.batchsize", "learner.batch_size"]),
    ("nosuchsection.x=1", ["nosuchsection.x"]),
    ("learner.batch_size=abc", ["learner.batch_size", "integer"]),
    ("head=foo", ["agent.head", "'foo'", "taskid_mi"]),
    ("total_frames=-5", ["run.total_frames", "positive"]),
    ("device=tpu", ["run.device", "auto"]),
    ("mode=parallel", ["run.mode", "serial"]),
    ("learner.reward_clipping=tanh", ["reward_clipping", "soft_asymmetric"]),
    ("novalue", ["key=value"]),
])
def test_bad_input_names_the_key_and_the_fix(override, words):
    with pytest.raises(ValueError) as e:
        load_config(None, [override])
    for w in words:
        assert w in str(e.value)


def test_missing_config_file_lists_the_choices():
    with pytest.raises(ValueError, match="embedded.yaml"):
        load_config("configs/nope.yaml")


def test_round_trip_through_saved_yaml(tmp_path):
    cfg = load_config(None, ["head=learnt_mi", "env.options.tile_size=4", "learner.grad_norm_clip=null"])
    save_yaml(cfg, tmp_path / "config.yaml")
    back = config_from_dict(yaml.safe_load((tmp_path / "config.yaml").read_text()))
    assert back == cfg
    assert isinstance(back, TrainConfig)


def test_incompatible_changes_are_network_tasks_and_optimizer():
    base = load_config(None, [])
    bad, _ = incompatible_changes(base, load_config(None, ["head=multihead"]))
    assert bad == ["agent.head"]
    bad, _ = incompatible_changes(base, load_config(None, ["suite=dmlab30"]))
    assert bad == ["env.suite"]
    bad, _ = incompatible_changes(base, load_config(None, ["learner.optimizer=rmsprop"]))
    assert bad == ["learner.optimizer"]
    bad, other = incompatible_changes(base, load_config(None, ["total_frames=99999999", "num_actors=5"]))
    assert bad == [] and other == []
    bad, other = incompatible_changes(base, load_config(None, ["learning_rate=0.1"]))
    assert bad == [] and other == ["learner.learning_rate"]


def test_parse_override_types():
    assert parse_override("seed=3") == ("run.seed", 3)
    assert parse_override("ray_address=127.0.0.1:6379") == ("run.ray_address", "127.0.0.1:6379")
    assert parse_override("learner.grad_norm_clip=null") == ("learner.grad_norm_clip", None)


def test_actor_resources_are_a_validated_mapping():
    assert load_config(None, ["actors.resources={actor_slot: 0.5}"]).actors.resources == {"actor_slot": 0.5}
    for bad, words in [("actors.resources={CPU: 1}", "custom resource name"),
                       ("actors.resources={actor_slot: 0}", "actors.resources.actor_slot=0 must be a positive"),
                       ("actors.resources=3", "must be a mapping")]:
        with pytest.raises(ValueError, match=words):
            load_config(None, [bad])


@pytest.mark.parametrize("text, value", [
    ("2e6", 2_000_000), ("2_000_000", 2_000_000), ("2.5e6", 2_500_000), ("2.0e+6", 2_000_000), ("1E3", 1000),
    ("1_000e3", 1_000_000), ("10_000_000_000", 10_000_000_000), ("7", 7),
])
def test_integer_fields_accept_scientific_and_underscored_forms(text, value):
    cfg = load_config(None, [f"total_frames={text}", f"learner.batch_size={text}"])
    assert cfg.run.total_frames == value and type(cfg.run.total_frames) is int
    assert cfg.learner.batch_size == value and type(cfg.learner.batch_size) is int


@pytest.mark.parametrize("text", ["2.5", "2.5e0", "1e-3", "1_000.5", "inf", "nan", "true", "2e6x", "[1]"])
def test_integer_fields_refuse_values_that_are_not_whole_numbers(text):
    with pytest.raises(ValueError, match=r"run\.total_frames=.*(integer|whole number)"):
        load_config(None, [f"total_frames={text}"])


def test_integer_forms_work_in_yaml_files_too(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("run:\n  total_frames: 3e6\n  checkpoint_every_frames: 500_000\n")
    cfg = load_config(path)
    assert (cfg.run.total_frames, cfg.run.checkpoint_every_frames) == (3_000_000, 500_000)


def test_check_logdir_refuses_what_cannot_be_created_and_creates_nothing(tmp_path):
    from configs.schema import check_logdir

    check_logdir(tmp_path / "new" / "deeper")                 # creatable: fine, and not created
    assert not (tmp_path / "new").exists()
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="a_file.*not a directory.*logdir="):
        check_logdir(blocker / "run")
    with pytest.raises(ValueError, match="not a directory"):
        check_logdir(blocker)
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    try:
        if os.geteuid() != 0:                                 # root ignores permission bits
            with pytest.raises(ValueError, match="not writable"):
                check_logdir(readonly / "run")
    finally:
        readonly.chmod(0o700)
