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

from actors.env_process import step_one
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
        self.num_envs = len(self.task_ids)
        self.groups = self._groups()
        self._start_envs([env_seed(seed, actor_id, j, incarnation) for j in range(self.num_envs)])
        self._last: dict[str, np.ndarray] | None = None   # step T of the previous unroll
        # the LSTM state of each group of envs, and each group's state before step T of the last unroll
        self._states = [self.agent.initial_state(g.stop - g.start) for g in self.groups]
        self._states_before_last = list(self._states)
        self._words: np.ndarray | None = None   # each env's current instruction [n, L] ...
        self._words_features: torch.Tensor | None = None   # ... and its encoding [n, D] (per episode)

    def _groups(self) -> list[slice]:
        """The env columns acted on by one forward each: all of them here (``OverlapWorker``: two halves)."""
        return [slice(0, self.num_envs)]

    def _start_envs(self, seeds: Sequence[int]) -> None:
        self.envs = [self.suite.make_env(int(t), seed=s) for t, s in zip(self.task_ids, seeds)]

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
        """Resets every env: step 0's fields ``[n, ...]`` of the first unroll."""
        obs = [env.reset()[0] for env in self.envs]
        return _first_step(np.stack([o["frame"] for o in obs]), np.stack([o["instruction"] for o in obs]))

    def _instruction_features(self, words: np.ndarray, cols: slice) -> torch.Tensor | None:
        """The encoding ``[len(cols), D]`` of the instructions ``words`` of envs ``cols``, re-encoded only
        for envs whose words changed (an instruction is fixed for an episode, and encoding it is ~15% of
        a small agent's forward)."""
        if self.agent.instruction is None:
            return None
        if self._words is None:        # new weights (or none yet): every env's encoding is stale
            self._words = np.full((self.num_envs, words.shape[-1]), -1, np.int64)
            self._words_features = torch.empty(self.num_envs, self.agent.instruction.out_features)
        known, features = self._words[cols], self._words_features[cols]   # views
        changed = (words != known).any(axis=-1)
        if changed.any():
            features[torch.from_numpy(np.flatnonzero(changed))] = \
                self.agent.encode_instruction(torch.from_numpy(words[changed]))
            known[changed] = words[changed]
        return features

    @torch.inference_mode()
    def _act(self, buf: Mapping[str, np.ndarray], t: int, g: int) -> None:
        """One batched forward of group ``g``'s envs at step ``t``; writes their actions and logits into
        ``buf`` and advances the group's LSTM state."""
        cols = self.groups[g]
        inputs = AgentInput(
            frame=torch.from_numpy(buf["frame"][t, cols][None]),
            instruction=torch.from_numpy(buf["instruction"][t, cols][None]),
            reward=torch.from_numpy(buf["reward"][t, cols][None]),
            done=torch.from_numpy(buf["done"][t, cols][None]),
            last_action=torch.from_numpy(buf["last_action"][t, cols][None]),
            task_id=torch.from_numpy(self.task_ids[cols][None]),
        )
        features = self._instruction_features(buf["instruction"][t, cols], cols)
        out, self._states[g] = self.agent(inputs, self._states[g], None if features is None else features[None])
        out_logits = out.policy_logits[0]
        torch.from_numpy(buf["behaviour_logits"][t, cols]).copy_(out_logits)
        sampled = torch.multinomial(torch.softmax(out_logits, -1), 1, generator=self.generator)
        torch.from_numpy(buf["action"][t, cols]).copy_(sampled[:, 0])

    @torch.no_grad()
    def _final_values(self, finals: list[tuple[int, dict]], buf: Mapping[str, np.ndarray], t: int, g: int) -> None:
        """Writes ``V(x')`` of each time-limit-truncated episode's final observation ``x'`` into
        ``buf["truncation_value"][t]`` (0 elsewhere in group ``g``'s columns).

        ``finals`` holds (env index, final observation) of group ``g``'s envs. One forward of those
        columns from the LSTM state after ``x_{t-1}`` (the group's state before this step's ``_act``),
        with what the agent would have seen at ``x'`` had the episode gone on: not done, last reward
        ``r_t``, last action ``a_{t-1}``. The actor's own state is left unchanged (the env was reset).
        """
        cols = self.groups[g]
        buf["truncation_value"][t, cols] = 0.0
        if not finals:
            return
        idx = np.array([j for j, _ in finals])
        rows = torch.from_numpy(idx - cols.start)
        inputs = AgentInput(
            frame=torch.from_numpy(np.stack([o["frame"] for _, o in finals])[None]),
            instruction=torch.from_numpy(np.stack([o["instruction"] for _, o in finals]).astype(np.int64)[None]),
            reward=torch.from_numpy(buf["reward"][t, idx][None]),
            done=torch.zeros(1, len(idx), dtype=torch.bool),
            last_action=torch.from_numpy(buf["action"][t - 1, idx][None]),
            task_id=torch.from_numpy(self.task_ids[idx][None]),
        )
        state = self._states[g]
        values, _ = self.agent(inputs, CoreState(state.h[rows], state.c[rows]))
        buf["truncation_value"][t, idx] = values.baseline[0].float().numpy()

    def _buffers(self) -> dict[str, np.ndarray]:
        """Empty ``[T+1, n, ...]`` arrays for one unroll (handed off whole, so fresh per unroll)."""
        shape = (self.unroll_length + 1, self.num_envs)
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

    def _begin(self) -> dict[str, np.ndarray]:
        """A new unroll's buffers with step 0 filled in: the previous unroll's step T, or (first
        unroll) every env reset and acted on."""
        buf = self._buffers()
        if self._last is None:
            for name, value in self._reset_all().items():
                buf[name][0] = value
            for g in range(len(self.groups)):
                self._states_before_last[g] = self._states[g]
                self._act(buf, 0, g)
        else:
            for name, value in self._last.items():
                buf[name][0] = value
        return buf

    def _end_of_step(self, buf: Mapping[str, np.ndarray], t: int, g: int, finals: list[tuple[int, dict]]) -> None:
        """Group ``g``'s envs have stepped to ``t`` (obs, reward, done, truncated written): last action,
        truncation values, then the forward that picks their actions at ``t``."""
        cols = self.groups[g]
        np.multiply(buf["action"][t - 1, cols], ~buf["done"][t, cols], out=buf["last_action"][t, cols])
        self._final_values(finals, buf, t, g)
        self._states_before_last[g] = self._states[g]
        self._act(buf, t, g)

    def _finish(self, buf: dict[str, np.ndarray], initial: list[CoreState], episodes: list[EpisodeStat]) -> Unroll:
        T = self.unroll_length
        self._last = {name: array[T].copy() for name, array in buf.items()}
        start = _cat(initial)
        return Unroll(
            **buf, task_id=np.broadcast_to(self.task_ids, (T + 1, self.num_envs)).copy(),
            core_h=start.h.numpy().copy(), core_c=start.c.numpy().copy(),
            policy_version=self.policy_version, actor_id=self.actor_id, incarnation=self.incarnation,
            episodes=tuple(episodes),
        )

    def unroll(self) -> Unroll:
        """Steps every env T times and returns the T+1-step unroll (step 0 = previous step T).

        Every step is written in place into the unroll's ``[T+1, n, ...]`` arrays (no per-step
        lists or stacking); the forward reads step t's rows as zero-copy tensors.
        """
        T = self.unroll_length
        buf = self._begin()
        initial = list(self._states_before_last)
        episodes: list[EpisodeStat] = []
        frame, instruction, reward, done = buf["frame"], buf["instruction"], buf["reward"], buf["done"]
        cut = buf["truncated"]
        for t in range(1, T + 1):
            actions = buf["action"][t - 1].tolist()
            finals: list[tuple[int, dict]] = []   # (env, final observation) of time-limit ends
            for j, env in enumerate(self.envs):
                obs, reward[t, j], done[t, j], cut[t, j], final, episode = step_one(env, actions[j])
                if final is not None:
                    finals.append((j, final))
                if episode is not None:
                    episodes.append(EpisodeStat(*episode))
                frame[t, j] = obs["frame"]
                instruction[t, j] = obs["instruction"]
            self._end_of_step(buf, t, 0, finals)
        return self._finish(buf, initial, episodes)

    # ------------------------------------------------------------ serial-mode checkpointing
    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly (serial mode): envs, last step, LSTM state, RNG.

        The envs and the last step are pickled and sealed with this user's key (``"episodes"``,
        bytes, and ``"episodes_mac"``; ``actors/env_state.py`` says why). Envs that cannot be
        pickled (the real ``deepmind_lab.Lab`` is a C object) give ``"episodes": None`` and
        ``"not_copyable"`` (the reason): a resume then starts new episodes, as in Ray mode.
        """
        try:
            (episodes, mac), reason = seal(self._env_state()), None
        except Exception as e:  # noqa: BLE001 - TypeError for C objects, PicklingError, ... all mean "cannot copy"
            episodes, mac, reason = None, None, f"{type(e).__name__}: {e}"[:300]
        return {
            "episodes": episodes,
            "episodes_mac": mac,
            "not_copyable": reason,
            "task_ids": self.task_ids.tolist(),
            "core": tuple(t.clone() for t in (*_cat(self._states), *_cat(self._states_before_last))),
            "generator": self.generator.get_state(),
            "policy_version": self.policy_version,
        }

    def _env_state(self) -> Any:
        """What ``get_state`` seals: the envs and the last step (raises if they cannot be copied)."""
        return self.envs, self._last

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
        self._states, self._states_before_last = self._split(CoreState(h, c)), self._split(CoreState(h0, c0))
        self.generator.set_state(state["generator"])
        self._words = None
        self.policy_version = -1   # weights are set again by the learner right after
        return None

    def close(self) -> None:
        for env in self.envs:
            env.close()


    def _split(self, state: CoreState) -> list[CoreState]:
        return [CoreState(state.h[g].clone(), state.c[g].clone()) for g in self.groups]


def _cat(states: Sequence[CoreState]) -> CoreState:
    """The LSTM states of consecutive env groups as one ``[n, H]`` state (the group's own if only one)."""
    if len(states) == 1:
        return states[0]
    return CoreState(torch.cat([s.h for s in states]), torch.cat([s.c for s in states]))


def _first_step(frame: np.ndarray, instruction: np.ndarray) -> dict[str, np.ndarray]:
    """Step 0's fields of a first unroll, from the reset observations ``[n, ...]``."""
    n = len(frame)
    return {
        "frame": frame,
        "instruction": instruction.astype(np.int64, copy=False),
        "reward": np.zeros(n, np.float32),
        "done": np.ones(n, bool),
        "last_action": np.zeros(n, np.int64),
        "truncated": np.zeros(n, bool),
        "truncation_value": np.zeros(n, np.float32),
    }
