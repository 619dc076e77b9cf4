"""MiniGrid's egocentric view encoding, computed with numpy instead of cell objects.

``egocentric_view(env)`` returns exactly ``MiniGridEnv.gen_obs(env)["image"]`` (uint8
``[V, V, 3]`` of (type, colour, state), indexed ``[x, y]``, agent at ``(V // 2, V - 1)``
facing up, cells it cannot see zeroed) at a fraction of the cost: MiniGrid slices, rotates
and occludes a grid of Python objects cell by cell on every step, which dominates an env
step. ``FastViewMixin`` puts it into any MiniGridEnv subclass. Tests check equality with
MiniGrid's own ``gen_obs`` on every embedded task.
"""
from __future__ import annotations

import numpy as np
from minigrid.core.constants import OBJECT_TO_IDX
from minigrid.core.world_object import Wall

_EMPTY = (OBJECT_TO_IDX["empty"], 0, 0)
_WALL = np.array(Wall().encode(), np.uint8)   # what MiniGrid shows outside the grid
_WALL_T, _DOOR_T = OBJECT_TO_IDX["wall"], OBJECT_TO_IDX["door"]


def grid_encoding(grid) -> np.ndarray:
    """uint8 ``[width, height, 3]`` encoding of every cell of a MiniGrid ``Grid``."""
    codes = [_EMPTY if cell is None else cell.encode() for cell in grid.grid]
    return np.array(codes, np.uint8).reshape(grid.height, grid.width, 3).transpose(1, 0, 2)


def visibility(view: np.ndarray) -> np.ndarray:
    """MiniGrid's ``Grid.process_vis`` on an encoded view: bool ``[V, V]`` of visible cells.

    Light spreads from the agent (bottom centre) sideways and one row up; walls and closed
    or locked doors stop it.
    """
    size = view.shape[0]
    opaque = ((view[..., 0] == _WALL_T) | ((view[..., 0] == _DOOR_T) & (view[..., 2] != 0))).tolist()
    mask = [[False] * size for _ in range(size)]   # mask[x][y]
    mask[size // 2][size - 1] = True
    for j in range(size - 1, -1, -1):
        for i in range(size - 1):
            if mask[i][j] and not opaque[i][j]:
                mask[i + 1][j] = True
                if j > 0:
                    mask[i + 1][j - 1] = mask[i][j - 1] = True
        for i in range(size - 1, 0, -1):
            if mask[i][j] and not opaque[i][j]:
                mask[i - 1][j] = True
                if j > 0:
                    mask[i - 1][j - 1] = mask[i][j - 1] = True
    return np.array(mask, bool)


def egocentric_view(env) -> np.ndarray:
    """Equals ``MiniGridEnv.gen_obs(env)["image"]`` for a MiniGridEnv ``env``."""
    size = env.agent_view_size
    full = grid_encoding(env.grid)
    padded = np.empty((env.grid.width + 2 * size, env.grid.height + 2 * size, 3), np.uint8)
    padded[:] = _WALL
    padded[size:-size, size:-size] = full
    top_x, top_y, _, _ = env.get_view_exts()
    view = padded[top_x + size:top_x + 2 * size, top_y + size:top_y + 2 * size]
    # MiniGrid turns the slice left (agent_dir + 1) times; a left turn of an [x, y] array is rot90(-1).
    view = np.ascontiguousarray(np.rot90(view, -(int(env.agent_dir) + 1)))
    if not env.see_through_walls:
        view[~visibility(view)] = 0
    view[size // 2, size - 1] = env.carrying.encode() if env.carrying is not None else _EMPTY
    return view


class FastViewMixin:
    """Use before a MiniGridEnv class in the bases: its observations come from ``egocentric_view``."""

    def gen_obs(self):
        return {"image": egocentric_view(self), "direction": self.agent_dir, "mission": self.mission}
