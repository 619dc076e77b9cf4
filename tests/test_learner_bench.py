"""Smoke run of bench/learner_throughput.py."""
import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "learner_throughput.py"


def test_learner_throughput_bench_prints_one_json_object(capsys):
    spec = importlib.util.spec_from_file_location("learner_throughput", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--torso", "small", "--head", "taskid_mi", "--frame", "12x12x3", "--T", "3", "--B", "2",
                "--steps", "1", "--warmup", "1", "--device", "cpu", "--action-repeat", "1", "--threads", "1"])
    result = json.loads(capsys.readouterr().out)
    assert result["agent_steps_per_s"] > 0 and result["env_frames_per_s"] == result["agent_steps_per_s"]
    assert {"torch", "device_name", "threads"} <= result.keys()
