"""Checkpoints: atomic writes, retention, corruption detected and the previous file used."""
import os

import pytest
import torch

from learner.checkpoint import Checkpointer, CorruptCheckpoint, load_file


def state(i):
    return {"updates": i, "w": torch.full((3,), float(i))}


def test_save_keeps_the_newest_and_loads_the_latest(tmp_path):
    ck = Checkpointer(tmp_path, keep=2)
    for i in (1, 2, 3):
        ck.save(state(i), updates=i)
    assert [p.name for p in ck.paths()] == ["ckpt-0000000002.pt", "ckpt-0000000003.pt"]
    loaded, path = ck.load_latest()
    assert loaded["updates"] == 3 and path.name == "ckpt-0000000003.pt"
    assert torch.equal(loaded["w"], torch.full((3,), 3.0))
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


def test_ordering_is_numeric_not_lexical(tmp_path):
    ck = Checkpointer(tmp_path, keep=5)
    for i in (9, 10, 100):
        ck.save(state(i), updates=i)
    assert ck.load_latest()[0]["updates"] == 100


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_latest_falls_back_to_previous(tmp_path, damage, caplog):
    ck = Checkpointer(tmp_path, keep=3)
    ck.save(state(1), updates=1)
    latest = ck.save(state(2), updates=2)
    data = latest.read_bytes()
    if damage == "truncate":
        latest.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        latest.write_bytes(data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:])
    else:
        latest.write_bytes(b"not a checkpoint")
    with pytest.raises(CorruptCheckpoint):
        load_file(latest)
    loaded, path = ck.load_latest()
    assert loaded["updates"] == 1 and path.name == "ckpt-0000000001.pt"
    assert "corrupt" in caplog.text and latest.name in caplog.text


def test_all_corrupt_is_an_error_and_empty_is_none(tmp_path):
    ck = Checkpointer(tmp_path / "c", keep=3)
    assert ck.load_latest() is None
    p = ck.save(state(1), updates=1)
    p.write_bytes(b"x")
    with pytest.raises(CorruptCheckpoint, match="every checkpoint"):
        ck.load_latest()


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path):
    ck = Checkpointer(tmp_path, keep=3)
    ck.save(state(1), updates=1)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        ck.save({"bad": Unpicklable()}, updates=2)
    assert [p.name for p in ck.paths()] == ["ckpt-0000000001.pt"]
    assert os.listdir(tmp_path) == ["ckpt-0000000001.pt"]
    assert ck.load_latest()[0]["updates"] == 1
