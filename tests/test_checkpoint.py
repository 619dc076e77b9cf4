"""Checkpoints: atomic writes, retention, corruption detected and the previous file used,
plain torch.load, leftovers of a killed save removed, the earlier single-file format still read."""
import hashlib
import io
import os
import subprocess

import pytest
import torch

from learner.checkpoint import LEGACY_MAGIC, TMP_PREFIX, Checkpointer, CorruptCheckpoint, load_file, sidecar


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
    assert sorted(os.listdir(tmp_path)) == ["ckpt-0000000001.pt", "ckpt-0000000001.pt.sha256"]
    assert ck.load_latest()[0]["updates"] == 1


def test_plain_torch_load_and_sha256sum_check_a_checkpoint(tmp_path):
    path = Checkpointer(tmp_path).save({"updates": 7, "blob": b"\x00\x01", "w": torch.arange(3.0)}, updates=7)
    loaded = torch.load(path)                       # torch's default: weights_only=True
    assert loaded["updates"] == 7 and loaded["blob"] == b"\x00\x01" and torch.equal(loaded["w"], torch.arange(3.0))
    assert sidecar(path).read_text() == f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n"
    check = subprocess.run(["sha256sum", "-c", sidecar(path).name], cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0 and "OK" in check.stdout


def test_checkpoint_without_its_hash_file_is_not_trusted(tmp_path):
    ck = Checkpointer(tmp_path, keep=3)
    ck.save(state(1), updates=1)
    sidecar(ck.save(state(2), updates=2)).unlink()
    with pytest.raises(CorruptCheckpoint, match="hash file"):
        load_file(ck.paths()[-1])
    assert ck.load_latest()[0]["updates"] == 1


def test_leftovers_of_a_killed_save_are_removed_and_nothing_else(tmp_path):
    ck = Checkpointer(tmp_path, keep=3)
    kept = ck.save(state(1), updates=1)
    # what a save killed between its steps leaves: temporary files, a hash file renamed before its checkpoint
    (tmp_path / f"{TMP_PREFIX}abc123").write_bytes(b"half a checkpoint")
    (tmp_path / f"{TMP_PREFIX}def456").write_bytes(b"a hash")
    (tmp_path / "ckpt-0000000002.pt.sha256").write_text("0" * 64 + "  ckpt-0000000002.pt\n")
    (tmp_path / "notes.txt").write_text("the user's")
    removed = ck.remove_partial_saves()
    assert sorted(removed) == sorted([f"{TMP_PREFIX}abc123", f"{TMP_PREFIX}def456", "ckpt-0000000002.pt.sha256"])
    assert sorted(os.listdir(tmp_path)) == sorted([kept.name, sidecar(kept).name, "notes.txt"])
    assert ck.remove_partial_saves() == []


def test_earlier_single_file_format_is_still_read(tmp_path):
    buffer = io.BytesIO()
    torch.save(state(5), buffer)
    payload = buffer.getvalue()
    old = tmp_path / "ckpt-0000000005.pt"
    old.write_bytes(LEGACY_MAGIC + hashlib.sha256(payload).digest() + payload)
    assert load_file(old)["updates"] == 5
    old.write_bytes(LEGACY_MAGIC + hashlib.sha256(payload).digest() + payload[:-5])
    with pytest.raises(CorruptCheckpoint, match="hash mismatch"):
        load_file(old)
