"""Serial mode: the whole pipeline in-process; stop + resume gives exactly the uninterrupted run."""
import json

import pytest
import torch

from configs.errors import ConfigError
from conftest import TINY, read_jsonl
from configs.schema import load_config
from learner.checkpoint import Checkpointer
from training import run as training_run

# T=8, B=3 columns from actors of 2 envs: batches straddle unrolls, so the batcher holds
# leftovers at checkpoint time, and both actors' env and RNG states must be restored.
SERIAL = TINY + ["mode=serial", "num_actors=2", "envs_per_actor=2", "batch_size=3"]
FRAMES_PER_UPDATE = 8 * 3   # embedded suite: action repeat 1


def final_state(logdir):
    state, _ = Checkpointer(logdir / "checkpoints").load_latest()
    return state


def run(logdir, extra=(), stop_after=None):
    cfg = load_config(None, SERIAL + [f"logdir={logdir}", f"total_frames={10 * FRAMES_PER_UPDATE}", *extra])

    def on_step(loop):
        if stop_after is not None and loop.learner.num_updates >= stop_after:
            loop.stop_reason = "test-stop"

    return training_run.train(cfg, on_step=on_step, install_signal_handlers=False)


@pytest.mark.parametrize("head", ["shared", "taskid_mi"])
def test_stop_and_resume_equals_uninterrupted(tmp_path, head):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run(straight, [f"head={head}"]) == "done"
    assert run(split, [f"head={head}"], stop_after=4) == "test-stop"
    mid = final_state(split)
    assert mid["updates"] == 4 and mid["frames"] == 4 * FRAMES_PER_UPDATE
    assert run(split, [f"head={head}"]) == "done"

    a, b = final_state(straight), final_state(split)
    assert a["updates"] == b["updates"] == 10
    assert a["frames"] == b["frames"] == 10 * FRAMES_PER_UPDATE
    pa, pb = a["learner"]["model"], b["learner"]["model"]
    assert pa.keys() == pb.keys()
    for k in pa:
        assert torch.equal(pa[k], pb[k]), f"parameter {k} differs after resume"
    # the learner really moved: the final parameters differ from the checkpoint at update 4
    # (otherwise the equality above would hold for a learner that never changes anything)
    moved = [k for k in pa if not torch.equal(mid["learner"]["model"][k], pa[k])]
    assert len(moved) > len(pa) // 2, f"only {moved} of {len(pa)} parameters changed in 6 updates"
    events = read_jsonl(split / "events.jsonl")
    assert [e["event"] for e in events].count("resume") == 1
    resume = next(e for e in events if e["event"] == "resume")
    assert resume["updates"] == 4
    # metrics continue from the checkpoint's frame count
    frames = [m["frames"] for m in read_jsonl(split / "metrics.jsonl")]
    assert frames == sorted(frames) and frames[-1] == 10 * FRAMES_PER_UPDATE


def test_resume_refuses_an_incompatible_config(tmp_path):
    logdir = tmp_path / "r"
    run(logdir, stop_after=1)
    before = sorted(p.name for p in (logdir / "checkpoints").iterdir())
    with pytest.raises(ConfigError, match="agent.head.*'shared'.*'multihead'"):
        run(logdir, ["head=multihead"])
    with pytest.raises(ConfigError, match="agent.core_size"):
        run(logdir, ["agent.core_size=16"])
    assert sorted(p.name for p in (logdir / "checkpoints").iterdir()) == before   # nothing touched


def test_resume_from_previous_checkpoint_when_latest_is_corrupt(tmp_path):
    logdir = tmp_path / "c"
    run(logdir, ["run.checkpoint_every_frames=24"], stop_after=3)
    ck = Checkpointer(logdir / "checkpoints", keep=5)
    paths = ck.paths()
    assert len(paths) >= 2
    paths[-1].write_bytes(paths[-1].read_bytes()[:100])        # truncate the newest
    assert run(logdir, ["run.checkpoint_every_frames=24"]) == "done"
    resume = next(e for e in read_jsonl(logdir / "events.jsonl") if e["event"] == "resume")
    assert resume["path"] == str(paths[-2])


def test_outputs_written(tmp_path):
    logdir = tmp_path / "o"
    run(logdir)
    saved = (logdir / "config.yaml").read_text()
    assert "head: shared" in saved and "mode: serial" in saved
    records = read_jsonl(logdir / "metrics.jsonl")
    assert records and {"frames", "mean_capped_score", "tasks", "fps"} <= set(records[-1])
    json.dumps(records[-1])
    # TensorBoard, read back from the event files: the resolved config as text, hparams + final scores
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2
    import yaml

    tb = EventAccumulator(str(logdir), size_guidance={"tensors": 0, "scalars": 0})
    tb.Reload()
    text = tb.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert yaml.safe_load("\n".join(ln[4:] for ln in text.splitlines())) == yaml.safe_load(saved)
    content = tb.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["agent.head"].string_value == "shared" and hp["learner.batch_size"].number_value == 3
    assert hp["learner.adam_betas"].string_value == "[0.9, 0.999]"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    tasks = records[-1]["tasks"]
    assert tasks                                             # some episodes finished in this run
    assert {f"final/{name}/score" for name in tasks} <= metric_tags
    for name, stats in tasks.items():                        # the same numbers as metrics.jsonl's last report
        assert tb.Scalars(f"final/{name}/score")[-1].value == pytest.approx(stats["score"], rel=1e-6)
        assert tb.Scalars(f"final/{name}/score")[-1].step == records[-1]["frames"]
    if records[-1]["mean_capped_score"] is not None:
        assert tb.Scalars("final/mean_capped_score")[-1].value == pytest.approx(records[-1]["mean_capped_score"])


def test_the_last_report_is_never_an_empty_one(tmp_path):
    # a report after every step: the end of the run has nothing new to report, so it writes none
    logdir = tmp_path / "r"
    run(logdir, ["run.report_every_seconds=1e-9"])
    records = read_jsonl(logdir / "metrics.jsonl")
    assert [r["updates"] for r in records] == list(range(1, 11))
    assert all({"total_loss", "entropy"} <= set(r["learner"]) and r["policy_lag"] is not None for r in records)
