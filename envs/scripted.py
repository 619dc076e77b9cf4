"""Oracle scripted policies for the embedded tasks (shortest paths over the true layout).

They define the suite's "solved" reference scores (``envs/reference_scores.py``) and let
tests check that tasks are solvable and that the interfering pair wants opposite actions.
A policy reads the unwrapped MiniGrid env (``MiniGridTask.env``): it knows the whole layout,
which the agent has to discover through its 7x7 view.
"""
from __future__ import annotations

from collections import deque
from typing import Callable

from minigrid.core.actions import Actions
from minigrid.core.constants import DIR_TO_VEC
from minigrid.core.world_object import Ball, Door, Key
from minigrid.envs import DoorKeyEnv, FetchEnv, GoToDoorEnv, MemoryEnv
from minigrid.minigrid_env import MiniGridEnv

from envs.minigrid_tasks import CollectEnv, GoalLocationsEnv, GoalRoomEnv

State = tuple[int, int, int]           # x, y, direction
Goal = Callable[[State], bool]
MOVES = (Actions.left, Actions.right, Actions.forward)


def _passable(env: MiniGridEnv, x: int, y: int) -> bool:
    cell = env.grid.get(x, y)
    return cell is None or cell.can_overlap()


def successor(env: MiniGridEnv, state: State, action: int) -> State:
    """Where a turn or forward move leads (forward into a blocked cell stays put)."""
    x, y, d = state
    if action == Actions.left:
        return x, y, (d - 1) % 4
    if action == Actions.right:
        return x, y, (d + 1) % 4
    dx, dy = DIR_TO_VEC[d]
    return (x + dx, y + dy, d) if _passable(env, x + dx, y + dy) else state


def agent_state(env: MiniGridEnv) -> State:
    return int(env.agent_pos[0]), int(env.agent_pos[1]), int(env.agent_dir)


def shortest_path(env: MiniGridEnv, goal: Goal, start: State | None = None) -> list[int] | None:
    """Fewest left/right/forward actions from ``start`` (default: the agent) to a state where
    ``goal`` holds; None when unreachable."""
    start = agent_state(env) if start is None else start
    parent: dict[State, tuple[State, int] | None] = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        if goal(state):
            path = []
            while parent[state] is not None:
                state, action = parent[state]
                path.append(action)
            return path[::-1]
        for action in MOVES:
            nxt = successor(env, state, action)
            if nxt not in parent:
                parent[nxt] = (state, action)
                queue.append(nxt)
    return None


def optimal_first_actions(env: MiniGridEnv, goal: Goal) -> set[int]:
    """Every move that starts some shortest path to ``goal`` (empty if already there)."""
    start = agent_state(env)
    best = shortest_path(env, goal, start)
    if not best:
        return set()
    return {a for a in MOVES
            if (rest := shortest_path(env, goal, successor(env, start, a))) is not None
            and len(rest) + 1 == len(best)}


def at(cells) -> Goal:
    cells = {tuple(int(v) for v in c) for c in cells}
    return lambda s: (s[0], s[1]) in cells


def facing(cells) -> Goal:
    cells = {tuple(int(v) for v in c) for c in cells}
    return lambda s: (s[0] + int(DIR_TO_VEC[s[2]][0]), s[1] + int(DIR_TO_VEC[s[2]][1])) in cells


def _cells(env: MiniGridEnv, match: Callable[[object], bool]) -> list[tuple[int, int]]:
    return [(x, y) for x in range(env.width) for y in range(env.height)
            if (c := env.grid.get(x, y)) is not None and match(c)]


def _go_then(env: MiniGridEnv, goal: Goal, final: int) -> int:
    path = shortest_path(env, goal)
    if path is None:
        return int(Actions.done)
    return int(path[0]) if path else int(final)


def _collect(env: CollectEnv) -> int:
    good = _cells(env, lambda c: isinstance(c, Ball) and c.color == env.good_color)
    return _go_then(env, facing(good), Actions.pickup)


def _door_key(env: DoorKeyEnv) -> int:
    if env.carrying is None and _cells(env, lambda c: isinstance(c, Key)):
        return _go_then(env, facing(_cells(env, lambda c: isinstance(c, Key))), Actions.pickup)
    doors = _cells(env, lambda c: isinstance(c, Door) and not c.is_open)
    if doors:
        return _go_then(env, facing(doors), Actions.toggle)
    return _go_then(env, at(_cells(env, lambda c: c.type == "goal")), Actions.done)


def _fetch(env: FetchEnv) -> int:
    targets = _cells(env, lambda c: c.type == env.targetType and c.color == env.targetColor)
    return _go_then(env, facing(targets), Actions.pickup)


def _goto_door(env: GoToDoorEnv) -> int:
    tx, ty = env.target_pos
    return _go_then(env, at([(tx + 1, ty), (tx - 1, ty), (tx, ty + 1), (tx, ty - 1)]), Actions.done)


def _goal(env: GoalRoomEnv | GoalLocationsEnv) -> int:
    return _go_then(env, at([env.goal_pos]), Actions.done)


def _memory(env: MemoryEnv) -> int:
    return _go_then(env, at([env.success_pos]), Actions.done)


def oracle_action(env: MiniGridEnv) -> int:
    """The scripted action for the current state of any embedded task's MiniGrid env."""
    for cls, policy in ((CollectEnv, _collect), (DoorKeyEnv, _door_key), (FetchEnv, _fetch),
                        (GoToDoorEnv, _goto_door), (GoalRoomEnv, _goal),
                        (GoalLocationsEnv, _goal), (MemoryEnv, _memory)):
        if isinstance(env, cls):
            return policy(env)
    raise TypeError(f"no scripted policy for {type(env).__name__}")


class NoTaskIdCollector:
    """The best policy for the collect pair without the task id (docs/ENVS.md, "no-id optimum"):
    it sees the layout and its rewards, not ``good_color``. It picks up the nearest ball (any colour:
    before the first reward both colours are equally likely good), infers the good colour from the
    reward (+1: that ball's colour, -1: the other), then collects the good balls by shortest paths.
    Return 2 when the first ball was good, -1 + 2 = 1 when it was bad. One instance per episode."""

    def __init__(self) -> None:
        self.good: str | None = None       # the inferred good colour (None before the first reward)
        self.picked: str | None = None     # the colour of the ball picked up at the last step

    def act(self, env: CollectEnv, last_reward: float) -> int:
        """The action at ``env``'s current state, given the reward of the previous step."""
        if self.good is None and last_reward != 0 and self.picked is not None:
            other = [c for c in CollectEnv.COLORS if c != self.picked][0]
            self.good = self.picked if last_reward > 0 else other
        wanted = (lambda c: isinstance(c, Ball)) if self.good is None else (
            lambda c: isinstance(c, Ball) and c.color == self.good)
        targets = _cells(env, wanted)
        action = _go_then(env, facing(targets), Actions.pickup)
        if action == Actions.pickup:
            fx, fy = env.front_pos
            self.picked = env.grid.get(int(fx), int(fy)).color
        return action
