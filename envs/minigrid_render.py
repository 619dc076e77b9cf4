"""Fast egocentric RGB frames for MiniGrid, drawn from the agent's partial-view encoding.

MiniGrid's ``RGBImgPartialObsWrapper`` re-slices and re-renders the view cell by cell on
every step, which costs several times the env step itself. This renderer draws the same
7x7 egocentric view (agent at the bottom centre, facing up, with MiniGrid's own tile art)
from the ``obs["image"]`` encoding the env has already computed: each cell's
(type, colour, state) code indexes a table of pre-drawn tiles. Differences from the
wrapper: cells the agent cannot see are black (as in the symbolic observation) instead of
drawn un-highlighted, and visible cells are not highlighted.
"""
from __future__ import annotations

import numpy as np
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from minigrid.core.grid import Grid
from minigrid.core.world_object import WorldObj

_N_STATES = 3
_N_CODES = len(OBJECT_TO_IDX) * len(COLOR_TO_IDX) * _N_STATES
_UNSEEN = OBJECT_TO_IDX["unseen"]
_AGENT_UP = 3  # MiniGrid direction index of "up" (the agent's heading in its own view)
_TABLES: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # tile_size -> (tiles, filled), per process


def _draw_tile(code: int, tile_size: int) -> np.ndarray:
    with_agent, code = divmod(code, _N_CODES)
    type_idx, rest = divmod(code, len(COLOR_TO_IDX) * _N_STATES)
    color_idx, state = divmod(rest, _N_STATES)
    if type_idx == _UNSEEN:
        return np.zeros((tile_size, tile_size, 3), np.uint8)
    obj = WorldObj.decode(type_idx, color_idx, state)
    return Grid.render_tile(obj, agent_dir=_AGENT_UP if with_agent else None,
                            highlight=False, tile_size=tile_size)


class ViewRenderer:
    """Renders a ``[V, V, 3]`` MiniGrid view encoding (indexed ``[x, y]``) as uint8 RGB
    ``[V * tile_size, V * tile_size, 3]``, the agent drawn at the bottom centre."""

    def __init__(self, tile_size: int, view_size: int = 7):
        if tile_size < 1:
            raise ValueError(f"tile_size={tile_size} must be >= 1")
        self.tile_size, self.view_size = tile_size, view_size
        if tile_size not in _TABLES:
            _TABLES[tile_size] = (np.zeros((2 * _N_CODES, tile_size, tile_size, 3), np.uint8),
                                  np.zeros(2 * _N_CODES, bool))
        self._tiles, self._filled = _TABLES[tile_size]
        agent_cell = np.zeros((view_size, view_size), np.intp)
        agent_cell[view_size - 1, view_size // 2] = _N_CODES  # [y, x]: bottom row, centre
        self._agent_offset = agent_cell

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = image.astype(np.intp)
        codes = ((image[..., 0] * len(COLOR_TO_IDX) + image[..., 1]) * _N_STATES + image[..., 2]).T
        codes = codes + self._agent_offset
        missing = ~self._filled[codes]
        if missing.any():
            for code in np.unique(codes[missing]):
                self._tiles[code] = _draw_tile(int(code), self.tile_size)
                self._filled[code] = True
        v, t = self.view_size, self.tile_size
        return self._tiles[codes].transpose(0, 2, 1, 3, 4).reshape(v * t, v * t, 3)
