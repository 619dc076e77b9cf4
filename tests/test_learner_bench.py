"""Quick modes of bench/learner_throughput.py and bench/actor_efficiency.py (what CI runs)."""
import importlib.util
import json
import os
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_learner_throughput_quick_prints_one_json_line_per_configuration(capsys):
    results = load("learner_throughput").main(["--quick"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == results
    assert [(r["precision"], r["memory_format"]) for r in lines] == [
        ("fp32", "contiguous"), ("fp32", "channels_last"), ("bf16", "contiguous"), ("bf16", "channels_last")]
    for r in lines:
        assert r["agent_steps_per_s"] > 0 and r["env_frames_per_s"] == r["agent_steps_per_s"]   # repeat 1
        # the rate times the time is the work done, up to the JSON's rounding (rate 0.1, seconds 1 ms)
        rounding = 0.05 * r["seconds"] + 0.0005 * r["agent_steps_per_s"] + 1e-6
        assert abs(r["agent_steps_per_s"] * r["seconds"] - r["T"] * r["B"] * r["steps"]) <= rounding
        assert {"torch", "device_name", "threads"} <= r.keys()
    fp32, fp32_cl, bf16, bf16_cl = lines
    assert fp32["first_loss_rel_diff"] == 0.0 and fp32["on_policy_log_rho_abs_mean"] < 1e-5
    assert fp32_cl["first_loss_rel_diff"] < 1e-5 and fp32_cl["on_policy_log_rho_abs_mean"] < 1e-5
    for r in (bf16, bf16_cl):   # bf16 changes the numbers, a little
        assert 0 < r["first_loss_rel_diff"] < 1e-2 and 0 < r["on_policy_log_rho_abs_mean"] < 1e-3


def test_actor_efficiency_quick(capsys):
    result = load("actor_efficiency").main(["--quick"])
    assert json.loads(capsys.readouterr().out) == result
    assert result["envs_per_actor"] == 2 and result["unroll_length"] == 5
    assert result["agent_steps_per_round"] == 2 * 5 * 2                       # unrolls x T x envs
    assert result["raw_env_steps_per_s"] > 0 and result["actor_agent_steps_per_s"] > 0
    assert abs(result["ratio"] - result["actor_agent_steps_per_s"] / result["raw_env_steps_per_s"]) < 1e-3
    parts = result["breakdown_fraction"]
    assert all(0 <= parts[k] <= 1 for k in ("env_step", "inference", "handoff"))
    assert abs(sum(parts.values()) - 1) < 1e-3 and parts["inference"] > 0
    assert result["unroll_bytes"] > 6 * 2 * 28 * 28 * 3                          # the frames at least
    if len(os.sched_getaffinity(0)) < 2:                     # the overlap needs a second core
        assert result["overlap"] is None and result["two_actors"] is None
        return
    overlap, pair = result["overlap"], result["two_actors"]
    assert overlap["cores"] == pair["cores"] and len(set(overlap["cores"])) == 2
    assert overlap["agent_steps_per_s"] > 0 and 0 <= overlap["network_waits_for_envs_fraction"] < 1
    # the bound is steps / max(env, inference) of today's actor, so it exceeds today's rate
    assert overlap["bound_agent_steps_per_s"] > result["actor_agent_steps_per_s"]
    assert abs(overlap["of_bound"] - overlap["agent_steps_per_s"] / overlap["bound_agent_steps_per_s"]) < 1e-3
    assert abs(overlap["speedup_over_actor"] - overlap["agent_steps_per_s"] / result["actor_agent_steps_per_s"]) < 1e-3
    assert len(pair["per_round"]) == 1 and pair["agent_steps_per_s"] == pair["per_round"][0] > 0
