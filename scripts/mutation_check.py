"""Do the fast tests catch plausible one-line bugs? Applies each mutation ALONE to a copy of the tree
and runs the tests there; a mutation that no test notices is a hole in the tests.

    .venv/bin/python scripts/mutation_check.py [--only NAME ...] [--keep]

For each mutation: copy the working tree (tracked and untracked, not ignored files) to a temporary
folder, replace the mutation's exact text (it must occur exactly once, else it is reported as
stale: the code moved, update the mutation), then run the path tests (tests/test_*_path.py and
tests/test_learner_boundaries.py) in full (the unmutated copy must pass them first); if none fails, run the whole fast suite with -x. Prints
one line per mutation and a JSON summary last. Exit status 1 if a mutation survived or is stale.
Not run in CI (about a minute per mutation on 2 cores); docs/TESTING.md records the last results.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATH_TESTS = ["tests/test_actor_path.py", "tests/test_report_path.py", "tests/test_learner_boundaries.py",
              "tests/test_language_path.py"]
FAST = ["tests", "--ignore=tests/test_learning.py", "--ignore=tests/test_faults.py",
        "--ignore=tests/test_train_ray.py"]

# (name, file, exact old text, new text). The first five are issue 11's.
MUTATIONS = [
    ("drop the reward of the step that ends an episode", "actors/env_process.py",
     "return obs, reward, ended, cut, final, episode\n", "return obs, 0.0 if ended else reward, ended, cut, final, episode\n"),
    ("ship the LSTM state from one step late", "actors/actor.py",
     "initial = list(self._states_before_last)\n        episodes: list[EpisodeStat] = []\n        frame,",
     "initial = list(self._states)\n        episodes: list[EpisodeStat] = []\n        frame,"),
    ("last_action not zeroed at a new episode", "actors/actor.py",
     'np.multiply(buf["action"][t - 1, cols], ~buf["done"][t, cols], out=buf["last_action"][t, cols])',
     'buf["last_action"][t, cols] = buf["action"][t - 1, cols]'),
    ("mean capped score uses max(s, 100)", "envs/dmlab30.py",
     "scores = [min(s, cap) for s in scores]", "scores = [max(s, cap) for s in scores]"),
    ("policy lag off by one", "training/loop.py",
     "learner.num_updates - 1 - versions", "learner.num_updates - versions"),
    # of the same kind
    ("discount from done[t] instead of done[t+1]", "learner/learner.py",
     '(~batch["done"][1:])', '(~batch["done"][:-1])'),
    ("actions shifted by one step in the learner", "learner/learner.py",
     'actions = batch["action"][:steps]', 'actions = batch["action"][1:]'),
    ("a time limit (truncation) not treated as an episode end", "actors/env_process.py",
     "ended = terminated or truncated\n", "ended = terminated\n"),
    ("a time limit reported as a termination (truncated flag lost)", "actors/env_process.py",
     "cut = truncated and not terminated\n", "cut = False\n"),
    ("instruction of the previous step shipped", "actors/actor.py",
     'instruction[t, j] = obs["instruction"]', 'instruction[t, j] = instruction[t - 1, j]'),
    ("mean score before every task finished an episode", "training/statistics.py",
     "if len(normalized) < len(self.task_ids):", "if not normalized:"),
    ("score window one episode too long", "training/statistics.py",
     "deque(maxlen=score_window) for t in self.task_ids}\n        self.lengths",
     "deque(maxlen=score_window + 1) for t in self.task_ids}\n        self.lengths"),
    ("overlap: a group's step sent with its previous actions", "actors/overlap.py",
     'self.process.step(g, buf["action"][t, cols])', 'self.process.step(g, buf["action"][t - 1, cols])'),
    ("overlap: a group's finished episodes read from the first group's rows", "actors/overlap.py",
     'for j in np.flatnonzero(a["done"][cols]) + cols.start:', 'for j in np.flatnonzero(a["done"][cols]):'),
    ("rewards of step 0 used as the first transition's", "learner/learner.py",
     'clip_rewards(batch["reward"][1:].float()', 'clip_rewards(batch["reward"][:-1].float()'),
]


def copy_tree(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def failing_tests(output: str) -> list[str]:
    return sorted(set(re.findall(r"^(?:FAILED|ERROR) (\S+)", output, re.M)))


def run_tests(tree: Path, args: list[str]) -> tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *args],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=1800)
    return proc.returncode, proc.stdout + proc.stderr


def check(name: str, path: str, old: str, new: str, keep: bool) -> dict:
    tree = Path(tempfile.mkdtemp(prefix="mut-"))
    try:
        copy_tree(tree)
        text = (tree / path).read_text()
        if text.count(old) != 1:
            return {"mutation": name, "file": path, "result": "stale", "count": text.count(old)}
        (tree / path).write_text(text.replace(old, new))
        code, out = run_tests(tree, PATH_TESTS)
        stage = "path tests"
        if code == 0:
            code, out = run_tests(tree, ["-x", *FAST])
            stage = "fast suite"
        failed = failing_tests(out)
        result = "caught" if code != 0 and failed else ("survived" if code == 0 else "error")
        return {"mutation": name, "file": path, "result": result, "stage": stage, "failing": failed,
                **({"tail": out[-1500:]} if result == "error" else {})}
    finally:
        if not keep:
            shutil.rmtree(tree, ignore_errors=True)


def baseline() -> dict:
    """The unmutated copy must pass the path tests, or "caught" would mean nothing."""
    tree = Path(tempfile.mkdtemp(prefix="mut-base-"))
    try:
        copy_tree(tree)
        code, out = run_tests(tree, PATH_TESTS)
        return {"result": "pass" if code == 0 else "fail", "failing": failing_tests(out)}
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="run the mutations whose name contains one of these")
    parser.add_argument("--keep", action="store_true", help="keep the mutated copies (printed paths)")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if not args.only or any(o in m[0] for o in args.only)]
    base = baseline()
    print(f"unmutated copy: {base['result']} {', '.join(base['failing'])}", flush=True)
    if base["result"] != "pass":
        return 1
    results = []
    for k, mutation in enumerate(chosen, 1):
        print(f"[{k}/{len(chosen)}] {mutation[0]} ...", flush=True)
        r = check(*mutation, keep=args.keep)
        results.append(r)
        shown = ", ".join(r.get("failing", [])[:4]) or r.get("tail", "")
        print(f"    {r['result']}: {shown}", flush=True)
    print(json.dumps({"mutations": len(results), "caught": sum(r["result"] == "caught" for r in results),
                      "results": results}))
    return 0 if all(r["result"] == "caught" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
