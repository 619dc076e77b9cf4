"""bench/chaos.py --quick: actors SIGKILLed, a node removed and the learner preempted twice, on a
simulated Ray cluster; nothing partial is learned from and the counters never go back.

The undisturbed run that the bench trains after the chaos run (to compare scores at the same frames)
is left out here (--no-baseline: it is a second training run of ~30 s that tests no fault); the
comparison it feeds is checked on the chaos run's own files instead (summarize with a baseline)."""
import importlib.util
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from configs.schema import load_config
from conftest import ROOT, read_jsonl


def bench_chaos():
    spec = importlib.util.spec_from_file_location("bench_chaos", ROOT / "bench" / "chaos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.heavy(75)
def test_chaos_quick(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "chaos.py"), "--quick", "--no-baseline",
                          "--workdir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout)
    assert r == json.loads((tmp_path / "chaos.json").read_text())
    assert "[chaos" in out.stderr                                          # progress lines
    faults = r["faults"]
    assert faults["exit_codes"] == [143, 143, 143] and faults["resumes"] == 2
    assert faults["node_removed"] is not None and faults["actor_sigkills"] >= 1
    # every actor process that a kill or the node removal ended is restarted (one process can be hit by both)
    hit = {(k["actor"], k["incarnation"]) for k in faults["kills"]}
    hit |= {tuple(x) for x in faults["node_removed"]["incarnations"]}
    assert faults["actor_processes_hit"] == len(hit) >= 1
    assert faults["actor_restarts"] >= faults["actor_processes_hit"]
    u = r["unrolls"]
    assert u["partial_unrolls_used"] == 0 and u["used"] > 0
    assert u["dropped"] >= faults["actor_restarts"]                         # at least the one in progress each
    assert r["frames_lost"]["to_actor_restarts_at_most"] == faults["actor_restarts"] * 20 * 16
    c = r["counters"]
    assert c["frames_never_go_back"] and c["updates_never_go_back"] and c["resume_frames_equal_preemption_checkpoint"]
    assert c["tensorboard"]["files"] == 3 and c["tensorboard"]["steps_continue"]
    s = r["score"]
    last = read_jsonl(tmp_path / "chaos" / "metrics.jsonl")[-1]
    assert s["chaos"] == {k: last[k] for k in ("frames", "mean_capped_score", "mean_episode_return")}
    assert "undisturbed" not in s                       # --no-baseline
    # with a baseline, its last record is compared at the same frames (here: the chaos run's own files)
    chaos = bench_chaos()
    args = SimpleNamespace(**{k: r["config"][k] for k in ("seconds", "kill_every", "resumes", "overrides")})
    result = {"logdir": tmp_path / "chaos", "kills": faults["kills"], "node_removed": faults["node_removed"],
              "exit_codes": faults["exit_codes"], "samples": r["memory"]["samples"]}
    cfg = load_config(None, ["actors.cpus_per_actor=0.5", "run.report_every_seconds=5", "run.checkpoint_every_seconds=0"])
    with_baseline = json.loads(json.dumps(chaos.summarize(args, cfg, result, tmp_path / "chaos")))
    assert with_baseline["score"]["undisturbed"] == s["chaos"]
    assert {k: v for k, v in with_baseline.items() if k != "score"} == {k: v for k, v in r.items() if k != "score"}
    m = r["memory"]
    assert m["samples"] and all(x["learner_rss_mb"] > 50 for x in m["samples"])
