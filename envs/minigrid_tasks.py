"""The MiniGrid envs of the embedded suite: three custom tasks and four of MiniGrid's own.

Every class here takes its observations from ``FastViewMixin`` (numpy view encoding, equal
to MiniGrid's own); ``MemoryTask``, ``DoorKeyTask``, ``FetchTask`` and ``GoToDoorTask`` are
MiniGrid's ``MemoryEnv``, ``DoorKeyEnv``, ``FetchEnv`` and ``GoToDoorEnv`` with it.

All layouts come from ``self.np_random`` (seeded by ``reset(seed=...)``), so every task is
deterministic under a seed.

* ``GoalRoomEnv``: navigation. Reach the goal square placed anywhere in one room; MiniGrid's
  reward ``1 - 0.9 * steps / max_steps`` and the episode ends.
* ``GoalLocationsEnv``: navigation with memory (DMLab's explore_goal_locations). One goal per
  episode; reaching it gives +1 and respawns the agent at a random cell, so remembering
  where the goal is pays off until the time limit.
* ``CollectEnv``: DMLab's rooms_collect_good_objects. A room with balls of two colours;
  picking up a ball of ``good_color`` gives +1, the other colour -1 (balls vanish when
  picked up). The episode ends when every good ball is collected. Layouts where a ball is
  walled in by others are redrawn, so every episode can be solved. The layout does not
  depend on ``good_color``: ``CollectEnv("green")`` and ``CollectEnv("red")`` under the same
  seed show identical observations but reward opposite choices (the suite's interfering pair).
  ``CollectEnv(color, cued=True)``: the same env (same draws, rewards and ends) whose mission
  names the good colour ("collect the green balls"), so an agent that reads the instruction
  knows the task from the first step (the cued pair; docs/ENVS.md).
"""
from __future__ import annotations

from minigrid.core.actions import Actions
from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Ball, Goal
from minigrid.envs import DoorKeyEnv, FetchEnv, GoToDoorEnv, MemoryEnv
from minigrid.minigrid_env import MiniGridEnv

from envs.minigrid_view import FastViewMixin


class MemoryTask(FastViewMixin, MemoryEnv):
    pass


class DoorKeyTask(FastViewMixin, DoorKeyEnv):
    pass


class FetchTask(FastViewMixin, FetchEnv):
    pass


class GoToDoorTask(FastViewMixin, GoToDoorEnv):
    pass


class GoalRoomEnv(FastViewMixin, MiniGridEnv):
    @staticmethod
    def _gen_mission() -> str:
        return "get to the green goal square"

    def __init__(self, size: int = 7, max_steps: int = 40, **kwargs):
        super().__init__(mission_space=MissionSpace(mission_func=self._gen_mission),
                         grid_size=size, max_steps=max_steps, see_through_walls=True, **kwargs)

    def _gen_grid(self, width: int, height: int) -> None:
        self.grid = Grid(width, height)
        self.grid.wall_rect(0, 0, width, height)
        self.goal_pos = tuple(int(v) for v in self.place_obj(Goal()))
        self.place_agent()
        self.mission = self._gen_mission()


class GoalLocationsEnv(GoalRoomEnv):
    """GoalRoomEnv's room, but the goal respawns after each visit (see ``step``)."""

    @staticmethod
    def _gen_mission() -> str:
        return "find the goal as often as you can"

    def __init__(self, size: int = 9, max_steps: int = 100, **kwargs):
        super().__init__(size=size, max_steps=max_steps, **kwargs)

    def step(self, action):
        obs, _, terminated, truncated, info = super().step(action)
        reward = 0.0
        if terminated:  # stepped onto the goal: score and respawn, the episode goes on
            reward, terminated = 1.0, False
            self.place_agent()
            obs = self.gen_obs()
        return obs, reward, terminated, truncated, info


class CollectEnv(FastViewMixin, MiniGridEnv):
    COLORS = ("green", "red")

    @staticmethod
    def _gen_mission() -> str:
        return "collect the good balls"

    def __init__(self, good_color: str, size: int = 7, balls_per_color: int = 2,
                 max_steps: int = 50, cued: bool = False, **kwargs):
        if good_color not in self.COLORS:
            raise ValueError(f"good_color={good_color!r} must be one of {self.COLORS}")
        self.good_color = good_color
        self.balls_per_color = balls_per_color
        self.cued = bool(cued)   # the mission names the good colour (drawn from no RNG: same layouts)
        self.mission_text = f"collect the {good_color} balls" if self.cued else self._gen_mission()
        super().__init__(mission_space=MissionSpace(mission_func=self._gen_mission),
                         grid_size=size, max_steps=max_steps, see_through_walls=True, **kwargs)

    def _gen_grid(self, width: int, height: int) -> None:
        while True:  # the same draws whatever good_color is; redraw until every ball is reachable
            self.grid = Grid(width, height)
            self.grid.wall_rect(0, 0, width, height)
            for color in self.COLORS:
                for _ in range(self.balls_per_color):
                    self.place_obj(Ball(color))
            self.place_agent()
            if self._every_ball_reachable():
                break
        self.good_left = self.balls_per_color
        self.mission = self.mission_text

    def _every_ball_reachable(self) -> bool:
        """Whether the agent can stand next to every ball without picking any up first."""
        start = (int(self.agent_pos[0]), int(self.agent_pos[1]))
        seen, stack = {start}, [start]
        while stack:
            x, y = stack.pop()
            for nxt in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                if nxt not in seen and self.grid.get(*nxt) is None:
                    seen.add(nxt)
                    stack.append(nxt)
        balls = [(x, y) for x in range(self.width) for y in range(self.height)
                 if isinstance(self.grid.get(x, y), Ball)]
        return all({(x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)} & seen for x, y in balls)

    def step(self, action):
        reward = 0.0
        if action == Actions.pickup:
            fwd = self.front_pos
            cell = self.grid.get(*fwd)
            if isinstance(cell, Ball):
                self.grid.set(*fwd, None)
                if cell.color == self.good_color:
                    reward, self.good_left = 1.0, self.good_left - 1
                else:
                    reward = -1.0
            action = Actions.done  # a no-op step: counts time, checks the limit, observes
        obs, _, terminated, truncated, info = super().step(action)
        return obs, reward, terminated or self.good_left == 0, truncated, info
