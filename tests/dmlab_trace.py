"""A fixed script of calls into a ``deepmind_lab`` module, recorded as JSON-able results.

    python tests/dmlab_trace.py > tests/data/dmlab_trace.json    # record from the real engine

``record(module)`` plays the same calls on the real engine or on the fake
(``tests/fake_deepmind_lab``) and returns what the adapter relies on: construction errors,
specs, dtypes, return types, the errors of misuse (before reset, after the episode ends, after
close), and where an episode of ``episodeLengthSeconds=1`` ends at action repeat 4 (the real engine
finishes the step that crosses the end: frames = the first multiple of the step past 60). Frame
contents and reward values are engine-specific and not recorded. tests/test_dmlab_real.py
checks that the fake replays the committed trace identically, and, where the real engine is
installed, that it still records the same trace.
"""
from __future__ import annotations

import json
import sys
from typing import Any, Callable

import numpy as np

LEVEL = "contributed/dmlab30/rooms_watermaze"
LANGUAGE_LEVEL = "contributed/dmlab30/language_select_described_object"
OBSERVATIONS = ["RGB_INTERLEAVED", "INSTR"]
CONFIG = {"width": "96", "height": "72", "logLevel": "WARN"}


def _outcome(call: Callable[[], Any], describe: Callable[[Any], Any] = lambda r: r) -> Any:
    """``describe(result)`` when the call returns, else ``"raises <ExceptionType>"``."""
    try:
        result = call()
    except Exception as e:  # noqa: BLE001 (the exception's type is what is recorded)
        return f"raises {type(e).__name__}"
    return describe(result)


def _dtype(value: Any) -> str:
    return np.dtype(value).name if value is not str else "str"


def record(lab_module: Any) -> dict[str, Any]:
    Lab = lab_module.Lab
    zeros = np.zeros(7, np.intc)
    trace: dict[str, Any] = {}
    trace["construct: int config value"] = _outcome(lambda: Lab(LEVEL, OBSERVATIONS, config={"width": 96}), repr)
    trace["construct: unknown observation"] = _outcome(lambda: Lab(LEVEL, ["NOPE"], config=CONFIG), repr)
    trace["construct: unknown level"] = _outcome(
        lambda: Lab("contributed/dmlab30/no_such_level", OBSERVATIONS, config=CONFIG), repr)
    trace["construct: unknown renderer"] = _outcome(
        lambda: Lab(LEVEL, OBSERVATIONS, config=CONFIG, renderer="gpu"), repr)
    trace["construct: hold-out level without allowHoldOutLevels"] = _outcome(
        lambda: Lab("contributed/dmlab30/rooms_collect_good_objects_test", OBSERVATIONS, config=CONFIG), repr)

    lab = Lab(LEVEL, OBSERVATIONS, config={**CONFIG, "episodeLengthSeconds": "1"})
    trace["observation_spec"] = [[s["name"], _dtype(s["dtype"]), list(s["shape"])]
                                 for s in lab.observation_spec() if s["name"] in OBSERVATIONS]
    trace["action_spec"] = [[s["name"], s["min"], s["max"]] for s in lab.action_spec()]
    trace["before reset: is_running"] = lab.is_running()
    trace["before reset: observations"] = _outcome(lab.observations, sorted)
    trace["before reset: step"] = _outcome(lambda: lab.step(zeros))
    trace["reset: numpy int seed"] = _outcome(lambda: lab.reset(seed=np.int64(5)))
    trace["reset: float seed"] = _outcome(lambda: lab.reset(seed=1.5))
    trace["reset: seed beyond 64 bits"] = _outcome(lambda: lab.reset(seed=2**64))
    trace["reset: seed 7"] = _outcome(lambda: lab.reset(seed=7))
    trace["after reset: num_steps"] = lab.num_steps()
    obs = lab.observations()
    trace["after reset: observations"] = {name: [type(v).__name__, _dtype(v.dtype) if hasattr(v, "dtype") else "",
                                                 list(np.shape(v))] for name, v in sorted(obs.items())}
    trace["step: int64 action"] = _outcome(lambda: lab.step(np.zeros(7, np.int64)))
    trace["step: 8 values"] = _outcome(lambda: lab.step(np.zeros(8, np.intc)))
    trace["step: a list"] = _outcome(lambda: lab.step([0] * 7))
    trace["step: num_steps=0"] = _outcome(lambda: lab.step(zeros, num_steps=0), lambda r: type(r).__name__)
    trace["step: values outside action_spec"] = _outcome(
        lambda: lab.step(np.array([600, 0, 2, -3, 2, 0, 0], np.intc)), lambda r: type(r).__name__)
    trace["after misuse: num_steps"] = lab.num_steps()
    rewards, steps = set(), 0
    while lab.is_running():
        rewards.add(type(lab.step(zeros, num_steps=4)).__name__)
        steps += 1
    trace["episodeLengthSeconds=1 at num_steps=4: steps, frames, reward types"] = [steps, lab.num_steps(),
                                                                                  sorted(rewards)]
    trace["after the end: observations"] = _outcome(lab.observations, sorted)
    trace["after the end: step"] = _outcome(lambda: lab.step(zeros, num_steps=4))
    trace["after the end: num_steps"] = _outcome(lab.num_steps)
    trace["reset after the end"] = [_outcome(lambda: lab.reset(seed=8)), lab.is_running(), lab.num_steps()]
    lab.step(zeros, num_steps=1)   # off the 4-frame grid: does the step that crosses the end stop there?
    steps = 1
    while lab.is_running():
        lab.step(zeros, num_steps=4)
        steps += 1
    trace["episodeLengthSeconds=1, one 1-frame step then num_steps=4: steps, frames"] = [steps, lab.num_steps()]
    lab.close()
    trace["after close: is_running"] = _outcome(lab.is_running)
    trace["after close: observations"] = _outcome(lab.observations, sorted)

    language = Lab(LANGUAGE_LEVEL, OBSERVATIONS, config=CONFIG)
    language.reset(seed=3)
    instruction = language.observations()["INSTR"]
    trace["language level: INSTR type, non-empty"] = [type(instruction).__name__, bool(instruction.strip())]
    language.close()
    return trace


if __name__ == "__main__":
    import deepmind_lab

    json.dump(record(deepmind_lab), sys.stdout, indent=1)
    sys.stdout.write("\n")
