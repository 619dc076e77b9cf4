"""Episode videos as animated GIFs (Pillow), one frame per agent step."""
from __future__ import annotations

import os

import numpy as np

FRAME_MS = 100   # 10 frames/s; GIF stores centiseconds, so 100 ms is exact


def write_gif(path: str, frames: np.ndarray, frame_ms: int = FRAME_MS) -> None:
    """Writes uint8 ``frames [N, H, W, 3]`` as a looping GIF. Identical consecutive frames are
    merged by the format (their durations add up), so the duration is always ``N * frame_ms``."""
    from PIL import Image  # noqa: PLC0415

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 [N, H, W, 3] with N >= 1, got {frames.dtype} {frames.shape}")
    images = [Image.fromarray(frame) for frame in frames]
    tmp = f"{path}.tmp.gif"
    images[0].save(tmp, save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    os.replace(tmp, path)
