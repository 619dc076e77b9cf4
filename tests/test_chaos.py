"""bench/chaos.py --quick: actors SIGKILLed, a node removed and the learner preempted twice, on a
simulated Ray cluster; nothing partial is learned from and the counters never go back."""
import pytest
import json
import subprocess
import sys

from conftest import ROOT


@pytest.mark.heavy(104)
def test_chaos_quick(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "chaos.py"), "--quick", "--workdir", str(tmp_path)],
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
    assert s["chaos"]["frames"] == s["undisturbed"]["frames"] > 0
    m = r["memory"]
    assert m["samples"] and all(x["learner_rss_mb"] > 50 for x in m["samples"])
