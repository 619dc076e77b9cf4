"""Acting: several envs stepped in lockstep by one CPU policy, emitting unrolls.

``UnrollWorker`` is plain Python (no Ray): the serial mode calls it in-process and
``actors.ray_source`` hosts the same class in a Ray process. Each call of
``unroll()`` steps every env ``T`` times with one batched forward per step and
returns one ``Unroll`` of ``T + 1`` steps (alignment: ``agent/types.py``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch

from actors.env_state import UnsealError, seal, unseal
from agent import Agent, AgentConfig
from agent.types import AgentInput, CoreState, EpisodeStat, Unroll

if TYPE_CHECKING:
    from envs.suites import Suite


def assign_tasks(task_ids: Sequence[int], actor_id: int, envs_per_actor: int) -> list[int]:
    """Round robin over all envs of all actors: global env ``g`` runs ``task_ids[g % len(task_ids)]``."""
    return [task_ids[(actor_id * envs_per_actor + j) % len(task_ids)] for j in range(envs_per_actor)]


def env_seed(seed: int, actor_id: int, env_index: int, incarnation: int) -> int:
    """Independent, reproducible seed per (run seed, actor, env, incarnation)."""
    return int(np.random.SeedSequence([seed, actor_id, env_index, incarnation]).generate_state(1)[0])


class UnrollWorker:
    """Owns ``envs_per_actor`` envs of ``suite`` and a CPU copy of the agent.

    Args:
      suite: an ``envs.suites.Suite`` (picklable).
      agent_config: the agent's config (the network is rebuilt here, weights come via ``set_weights``).
      task_ids: the task id of each env (see ``assign_tasks``).
      unroll_length: T.
      seed, actor_id, incarnation: identify the actor and seed its envs and action sampling.
    """

    def __init__(self, suite: Suite, agent_config: AgentConfig, task_ids: Sequence[int], *, unroll_length: int,
                 seed: int, actor_id: int, incarnation: int = 0, torch_threads: int = 1) -> None:
        torch.set_num_threads(torch_threads)
        self.suite = suite
        self.actor_id = actor_id
        self.incarnation = incarnation
        self.unroll_length = unroll_length
        self.task_ids = np.asarray(task_ids, dtype=np.int64)
        self.agent = Agent.for_suite(agent_config, suite)
        self.agent.eval()
        self.policy_version = -1
        self.generator = torch.Generator().manual_seed(env_seed(seed, actor_id, 1 << 20, incarnation))
        self.envs = [suite.make_env(int(t), seed=env_seed(seed, actor_id, j, incarnation))
                     for j, t in enumerate(task_ids)]
        self._last: dict[str, np.ndarray] | None = None   # step T of the previous unroll
        self._state = self.agent.initial_state(len(self.envs))
        self._state_before_last = self._state   # LSTM state before step T of the last unroll
        self._words: np.ndarray | None = None   # each env's current instruction [n, L] ...
        self._words_features: torch.Tensor | None = None   # ... and its encoding [n, D] (per episode)

    # ------------------------------------------------------------ weights
    def set_weights(self, version: int, weights: Mapping[str, Any]) -> None:
        """Loads ``weights`` (numpy arrays or tensors by parameter name) if ``version`` is newer."""
        if version <= self.policy_version:
            return
        state = {k: torch.as_tensor(np.array(v, copy=True)) if isinstance(v, np.ndarray) else v
                 for k, v in weights.items()}
        self.agent.load_state_dict(state)
        self.policy_version = version
        self._words = None   # the cached instruction encodings came from the old weights

    # ------------------------------------------------------------ acting
    def _reset_all(self) -> dict[str, np.ndarray]:
        n = len(self.envs)
        obs = [env.reset()[0] for env in self.envs]
        return {
            "frame": np.stack([o["frame"] for o in obs]),
            "instruction": np.stack([o["instruction"] for o in obs]).astype(np.int64, copy=False),
            "reward": np.zeros(n, np.float32),
            "done": np.ones(n, bool),
            "last_action": np.zeros(n, np.int64),
            "truncated": np.zeros(n, bool),
            "truncation_value": np.zeros(n, np.float32),
        }

    def _instruction_features(self, words: np.ndarray) -> torch.Tensor | None:
        """The encoding of each env's instruction ``[n, D]``, re-encoded only for envs whose words changed
        (an instruction is fixed for an episode, and encoding it is ~15% of a small agent's forward)."""
        if self.agent.instruction is None:
            return None
        if self._words is None:
            changed = np.ones(len(words), bool)
            self._words_features = torch.empty(len(words), self.agent.instruction.out_features)
        else:
            changed = (words != self._words).any(axis=-1)
        if changed.any():
            rows = torch.from_numpy(np.flatnonzero(changed))
            self._words_features[rows] = self.agent.encode_instruction(torch.from_numpy(words[changed]))
            self._words = words.copy()
        return self._words_features

    @torch.inference_mode()
    def _act(self, step: Mapping[str, np.ndarray], action: np.ndarray, logits: np.ndarray) -> None:
        """One batched forward at one step (arrays ``[n, ...]``); writes ``action`` and ``logits`` in place."""
        inputs = AgentInput(
            frame=torch.from_numpy(step["frame"][None]),
            instruction=torch.from_numpy(step["instruction"][None]),
            reward=torch.from_numpy(step["reward"][None]),
            done=torch.from_numpy(step["done"][None]),
            last_action=torch.from_numpy(step["last_action"][None]),
            task_id=torch.from_numpy(self.task_ids[None]),
        )
        features = self._instruction_features(step["instruction"])
        out, self._state = self.agent(inputs, self._state, None if features is None else features[None])
        out_logits = out.policy_logits[0]
        torch.from_numpy(logits).copy_(out_logits)
        sampled = torch.multinomial(torch.softmax(out_logits, -1), 1, generator=self.generator)
        torch.from_numpy(action).copy_(sampled[:, 0])

    @torch.no_grad()
    def _final_values(self, finals: list[tuple[int, dict]], reward: np.ndarray, last_action: np.ndarray,
                      out: np.ndarray) -> None:
        """Writes ``V(x')`` of each time-limit-truncated episode's final observation ``x'`` into ``out``
        ``[n]`` (0 elsewhere).

        ``finals`` holds (env index, final observation). One forward of those columns from the
        LSTM state after ``x_t`` (``self._state`` before this step's ``_act``), with what the agent
        would have seen at ``x'`` had the episode gone on: not done, last reward ``r``, last action
        ``a_t``. The actor's own state is left unchanged (the env was reset).
        """
        out[:] = 0.0
        if not finals:
            return
        idx = np.array([j for j, _ in finals])
        cols = torch.from_numpy(idx)
        inputs = AgentInput(
            frame=torch.from_numpy(np.stack([o["frame"] for _, o in finals])[None]),
            instruction=torch.from_numpy(np.stack([o["instruction"] for _, o in finals]).astype(np.int64)[None]),
            reward=torch.from_numpy(reward[idx][None]),
            done=torch.zeros(1, len(idx), dtype=torch.bool),
            last_action=torch.from_numpy(last_action[idx][None]),
            task_id=torch.from_numpy(self.task_ids[idx][None]),
        )
        values, _ = self.agent(inputs, CoreState(self._state.h[cols], self._state.c[cols]))
        out[idx] = values.baseline[0].float().numpy()

    def _buffers(self) -> dict[str, np.ndarray]:
        """Empty ``[T+1, n, ...]`` arrays for one unroll (handed off whole, so fresh per unroll)."""
        shape = (self.unroll_length + 1, len(self.envs))
        return {
            "frame": np.empty(shape + tuple(self.suite.frame_shape), np.uint8),
            "instruction": np.empty(shape + (self.suite.instruction_length,), np.int64),
            "reward": np.empty(shape, np.float32),
            "done": np.empty(shape, bool),
            "last_action": np.empty(shape, np.int64),
            "action": np.empty(shape, np.int64),
            "behaviour_logits": np.empty(shape + (self.suite.num_actions,), np.float32),
            "truncated": np.empty(shape, bool),
            "truncation_value": np.empty(shape, np.float32),
        }

    def unroll(self) -> Unroll:
        """Steps every env T times and returns the T+1-step unroll (step 0 = previous step T).

        Every step is written in place into the unroll's ``[T+1, n, ...]`` arrays (no per-step
        lists or stacking); the forward reads step t's rows as zero-copy tensors.
        """
        T, n = self.unroll_length, len(self.envs)
        buf = self._buffers()
        if self._last is None:   # first unroll: reset every env and act at step 0
            first = self._reset_all()
            for name, value in first.items():
                buf[name][0] = value
            self._state_before_last = self._state
            self._act(_row(buf, 0), buf["action"][0], buf["behaviour_logits"][0])
        else:
            for name, value in self._last.items():
                buf[name][0] = value
        initial = self._state_before_last
        episodes: list[EpisodeStat] = []
        frame, instruction, reward, done = buf["frame"], buf["instruction"], buf["reward"], buf["done"]
        cut = buf["truncated"]
        for t in range(1, T + 1):
            actions = buf["action"][t - 1].tolist()
            finals: list[tuple[int, dict]] = []   # (env, final observation) of time-limit ends
            for j, env in enumerate(self.envs):
                obs, r, terminated, truncated, info = env.step(actions[j])
                reward[t, j] = r
                ended = terminated or truncated
                done[t, j] = ended
                cut[t, j] = truncated and not terminated
                if ended:
                    if cut[t, j]:
                        finals.append((j, obs))
                    ep = info["episode"]
                    episodes.append(EpisodeStat(int(ep["task_id"]), float(ep["return"]), int(ep["length"])))
                    obs, _ = env.reset()
                frame[t, j] = obs["frame"]
                instruction[t, j] = obs["instruction"]
            np.multiply(buf["action"][t - 1], ~done[t], out=buf["last_action"][t])
            self._final_values(finals, reward[t], buf["action"][t - 1], buf["truncation_value"][t])
            self._state_before_last = self._state
            self._act(_row(buf, t), buf["action"][t], buf["behaviour_logits"][t])
        self._last = {name: array[T].copy() for name, array in buf.items()}
        return Unroll(
            **buf, task_id=np.broadcast_to(self.task_ids, (T + 1, n)).copy(),
            core_h=initial.h.numpy().copy(), core_c=initial.c.numpy().copy(),
            policy_version=self.policy_version, actor_id=self.actor_id, incarnation=self.incarnation,
            episodes=tuple(episodes),
        )

    # ------------------------------------------------------------ serial-mode checkpointing
    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly (serial mode): envs, last step, LSTM state, RNG.

        The envs and the last step are pickled and sealed with this user's key (``"episodes"``,
        bytes, and ``"episodes_mac"``; ``actors/env_state.py`` says why). Envs that cannot be
        pickled (the real ``deepmind_lab.Lab`` is a C object) give ``"episodes": None`` and
        ``"not_copyable"`` (the reason): a resume then starts new episodes, as in Ray mode.
        """
        try:
            (episodes, mac), reason = seal((self.envs, self._last)), None
        except Exception as e:  # noqa: BLE001 - TypeError for C objects, PicklingError, ... all mean "cannot copy"
            episodes, mac, reason = None, None, f"{type(e).__name__}: {e}"[:300]
        return {
            "episodes": episodes,
            "episodes_mac": mac,
            "not_copyable": reason,
            "task_ids": self.task_ids.tolist(),
            "core": tuple(t.clone() for t in (*self._state, *self._state_before_last)),
            "generator": self.generator.get_state(),
            "policy_version": self.policy_version,
        }

    def set_state(self, state: Mapping[str, Any], trust: bool = False) -> str | None:
        """Continues from ``get_state()``'s result if it has the envs, for the same tasks, sealed by
        this user (or ``trust``). Returns None if it did, else why not (this actor starts new episodes)."""
        if state.get("episodes") is None:
            return state.get("not_copyable") and f"its envs could not be copied ({state['not_copyable']})" \
                or "the checkpoint has no env state"
        if list(state.get("task_ids", [])) != self.task_ids.tolist():
            return "actors.envs_per_actor (the actors' tasks) changed"
        try:
            envs, last = unseal(state["episodes"], state.get("episodes_mac"), trust=trust)
        except UnsealError as e:
            return f"its env states were not restored: {e}"
        for env in self.envs:
            env.close()
        self.envs, self._last = envs, last
        h, c, h0, c0 = state["core"]
        self._state, self._state_before_last = CoreState(h, c), CoreState(h0, c0)
        self.generator.set_state(state["generator"])
        self._words = None
        self.policy_version = -1   # weights are set again by the learner right after
        return None

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _row(buf: Mapping[str, np.ndarray], t: int) -> dict[str, np.ndarray]:
    """Step ``t``'s agent inputs (views, no copies)."""
    return {name: buf[name][t] for name in ("frame", "instruction", "reward", "done", "last_action")}
