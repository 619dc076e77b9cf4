"""Batcher: exactly B columns per batch, arrival order, split unrolls, nothing lost or repeated."""
import numpy as np
import pytest
import torch

from agent.types import EpisodeStat, Unroll
from training.batching import Batcher, DeviceCopier, split


def make_unroll(tag, n, T=3, S=2, version=0):
    """Column j of unroll `tag` carries the value tag*100 + j in every field."""
    col = (tag * 100 + np.arange(n)).astype(np.float32)
    tm = np.broadcast_to(col, (T + 1, n))
    return Unroll(
        frame=np.broadcast_to(col.astype(np.uint8)[None, :, None, None, None], (T + 1, n, 2, 2, 3)).copy(),
        instruction=np.broadcast_to(tm[..., None], (T + 1, n, 4)).astype(np.int64),
        reward=tm.copy(), done=np.zeros((T + 1, n), bool), last_action=tm.astype(np.int64),
        action=tm.astype(np.int64), behaviour_logits=np.broadcast_to(tm[..., None], (T + 1, n, 5)).copy(),
        task_id=tm.astype(np.int64), truncated=tm > 0, truncation_value=tm.copy(), core_h=np.broadcast_to(col[:, None], (n, S)).copy(),
        core_c=np.broadcast_to(col[:, None], (n, S)).copy(), policy_version=version, actor_id=tag,
        incarnation=0, episodes=(EpisodeStat(0, float(tag), 1),),
    )


def test_batches_take_columns_in_arrival_order_across_splits():
    b = Batcher(batch_size=4)
    b.add([make_unroll(1, 3, version=5), make_unroll(2, 3, version=6), make_unroll(3, 2, version=7)])
    assert b.ready()
    f1, v1 = b.take()
    f2, v2 = b.take()
    assert not b.ready() and b.columns == 0
    assert f1["reward"][0].tolist() == [100, 101, 102, 200]
    assert f2["reward"][0].tolist() == [201, 202, 300, 301]
    assert v1.tolist() == [5, 5, 5, 6] and v2.tolist() == [6, 6, 7, 7]
    for f in (f1, f2):
        # every field of a column comes from the same source column, state included
        assert np.array_equal(f["core_h"][:, 0], f["reward"][0])
        assert np.array_equal(f["task_id"][0], f["reward"][0].astype(np.int64))
        assert np.array_equal(f["truncation_value"][0], f["reward"][0]) and f["truncated"].dtype == bool
        assert np.array_equal(f["frame"][0, :, 0, 0, 0], f["reward"][0].astype(np.uint8))
        assert f["reward"].shape == (4, 4) and f["core_h"].shape == (4, 2)
        assert f["behaviour_logits"].shape == (4, 4, 5) and f["instruction"].shape == (4, 4, 4)


def test_not_ready_until_enough_columns():
    b = Batcher(batch_size=8)
    b.add([make_unroll(1, 3)])
    assert not b.ready()
    b.add([make_unroll(2, 5)])
    assert b.ready()


def test_split_keeps_episode_stats_once():
    u = make_unroll(4, 5)
    head, tail = split(u, 2)
    assert head.num_envs == 2 and tail.num_envs == 3
    assert len(head.episodes) + len(tail.episodes) == len(u.episodes)
    assert tail.reward[0].tolist() == [402, 403, 404]


def test_device_copier_on_cpu_wraps_without_copying():
    fields = {"reward": np.arange(6, dtype=np.float32).reshape(3, 2), "done": np.zeros((3, 2), bool)}
    out = DeviceCopier("cpu")(fields)
    assert out["reward"].dtype == torch.float32 and out["done"].dtype == torch.bool
    fields["reward"][0, 0] = 42.0                          # shares memory: no copy on CPU
    assert out["reward"][0, 0] == 42.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_device_copier_double_buffers_pinned_copies():
    copier = DeviceCopier("cuda")
    batches = [{"frame": np.full((3, 2, 4), k, np.uint8), "reward": np.full((3, 2), k, np.float32)}
               for k in range(5)]
    outs = [copier(b) for b in batches]                     # each copy reads its own pinned set
    for b in batches:
        b["frame"][:] = 99                                  # the host arrays are free once copied
    for k, out in enumerate(outs):
        assert out["frame"].is_cuda and out["frame"].dtype == torch.uint8
        assert (out["frame"] == k).all() and (out["reward"] == k).all()
    assert all(t.is_pinned() for slot in copier.slots for t in slot.values())
    assert copier.slots[0]["frame"].data_ptr() != copier.slots[1]["frame"].data_ptr()
