"""The peer-comparison suite is exactly the peers' env (docs/PEERS.md: the stock MiniGrid wrappers) in our observation dict."""
import gymnasium as gym
import minigrid  # noqa: F401
import numpy as np
from minigrid.wrappers import ImgObsWrapper, RGBImgPartialObsWrapper

from envs.suites import get_suite


def test_frames_and_rewards_equal_the_stock_wrappers():
    suite = get_suite("peer_doorkey")
    assert suite.frame_shape == (56, 56, 3) and suite.num_actions == 7 and suite.action_repeat == 1
    ours = suite.make_env(0, seed=5)
    stock = ImgObsWrapper(RGBImgPartialObsWrapper(gym.make("MiniGrid-DoorKey-5x5-v0"), tile_size=8))
    o, _ = ours.reset()
    s, _ = stock.reset(seed=5)
    assert np.array_equal(o["frame"], s) and not o["instruction"].any()
    rng = np.random.default_rng(0)
    for _ in range(300):
        a = int(rng.integers(7))
        o, r, term, trunc, info = ours.step(a)
        s, r2, term2, trunc2, _ = stock.step(a)
        assert np.array_equal(o["frame"], s) and r == r2 and (term, trunc) == (term2, trunc2)
        if term or trunc:
            assert info["episode"]["task_id"] == 0
            break


def test_scoring_uses_the_measured_random_and_the_return_bound():
    suite = get_suite("peer_doorkey")
    assert suite.normalized_score("doorkey_5x5", 1.0) == 100.0
    assert abs(suite.normalized_score(0, 0.0255)) < 1e-9
