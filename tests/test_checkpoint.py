"""Checkpoints: atomic writes, retention, corruption detected and the previous file used,
plain torch.load, leftovers of a killed save removed, the earlier single-file format read only
when trusted; a kill between any two file operations of a save loses no good checkpoint; files
get the umask's mode; unreadable files and failed clean-ups give the real error in one line."""
import hashlib
import io
import os
import subprocess
from pathlib import Path

import pytest
import torch

from learner.checkpoint import (LEGACY_MAGIC, TMP_PREFIX, Checkpointer, CorruptCheckpoint, UnreadableCheckpoint,
                                UntrustedCheckpoint, load_file, sidecar, verify)


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


def test_earlier_single_file_format_is_read_only_when_trusted(tmp_path):
    buffer = io.BytesIO()
    torch.save(state(5), buffer)
    payload = buffer.getvalue()
    old = tmp_path / "ckpt-0000000005.pt"
    old.write_bytes(LEGACY_MAGIC + hashlib.sha256(payload).digest() + payload)
    with pytest.raises(UntrustedCheckpoint, match=f"{old}.*old single-file.*--trust-checkpoint"):
        load_file(old)
    assert load_file(old, trust=True)["updates"] == 5
    old.write_bytes(LEGACY_MAGIC + hashlib.sha256(payload).digest() + payload[:-5])
    with pytest.raises(CorruptCheckpoint, match="hash mismatch"):
        load_file(old, trust=True)


# ---------------------------------------------------------------------- retention and kills
def test_a_corrupt_checkpoint_is_set_aside_and_not_counted_as_kept(tmp_path):
    """keep=1 with a corrupt newest file (a later update than the resumed one): the save keeps
    itself and the corrupt file is renamed aside with its sidecar, not deleted."""
    ck = Checkpointer(tmp_path, keep=1)
    ck.save(state(1), updates=1)
    bad = tmp_path / "ckpt-0000000009.pt"
    bad.write_bytes(b"garbage")
    sidecar(bad).write_text("0" * 64 + f"  {bad.name}\n")
    written = ck.save(state(3), updates=3)
    assert sorted(os.listdir(tmp_path)) == sorted([written.name, sidecar(written).name, "ckpt-0000000009.pt.corrupt",
                                                   "ckpt-0000000009.pt.sha256.corrupt"])
    assert (tmp_path / "ckpt-0000000009.pt.corrupt").read_bytes() == b"garbage"
    assert ck.load_latest()[0]["updates"] == 3


class Kill(BaseException):
    """A kill at one file operation (BaseException: nothing may catch it as an ordinary error)."""


def kill_at(monkeypatch, k):
    """Makes the k-th call of os.replace / os.unlink / os.fsync raise ``Kill``; returns the call counter."""
    calls = {"n": 0, "armed": True}

    def wrap(fn):
        def call(*args, **kwargs):
            calls["n"] += 1
            if calls["armed"] and calls["n"] == k:
                raise Kill(f"killed at file operation {k}")
            return fn(*args, **kwargs)
        return call

    for name in ("replace", "unlink", "fsync"):
        monkeypatch.setattr(os, name, wrap(getattr(os, name)))
    return calls


def setups():
    """(name, keep, checkpoints to write first (updates, value), a corrupt one to add, the save to kill)."""
    return [
        ("fresh name", 2, [(1, 1), (2, 2)], None, (3, 3)),
        ("same-name re-save", 2, [(1, 1), (2, 2)], None, (2, 20)),
        ("keep=1, corrupt newest", 1, [(1, 1)], 9, (3, 3)),
        ("re-save over a corrupt one", 1, [(1, 1)], 3, (3, 3)),
    ]


@pytest.mark.parametrize("name, keep, before, corrupt, new", setups(), ids=[s[0] for s in setups()])
def test_a_kill_between_any_two_file_operations_loses_no_good_checkpoint(tmp_path, monkeypatch, name, keep,
                                                                         before, corrupt, new):
    k = 0
    while True:
        k += 1
        directory = tmp_path / f"k{k}"
        ck = Checkpointer(directory, keep=keep)
        for updates, value in before:
            ck.save({"updates": updates, "w": torch.tensor(float(value))}, updates=updates)
        if corrupt is not None:
            (directory / f"ckpt-{corrupt:010d}.pt").write_bytes(b"half a checkpoint")
        good_before = {p.name: float(torch.load(p)["w"]) for p in ck.paths() if verify(p)}
        with monkeypatch.context() as m:
            calls = kill_at(m, k)
            try:
                ck.save({"updates": new[0], "w": torch.tensor(float(new[1]))}, updates=new[0])
                killed = False
            except Kill:
                killed = True
            calls["armed"] = False
        restarted = Checkpointer(directory, keep=keep)
        restarted.remove_partial_saves()                       # what the next start does
        loaded, path = restarted.load_latest()
        new_name = f"ckpt-{new[0]:010d}.pt"
        good_after = {p.name: float(torch.load(p)["w"]) for p in restarted.paths() if verify(p)}
        if good_after.get(new_name) != new[1]:                # the new checkpoint is not there: nothing lost
            assert killed and good_after == good_before, (name, k)
        else:
            assert float(loaded["w"]) == new[1] and path.name == new_name, (name, k)
        assert float(loaded["w"]) in (new[1], *good_before.values()), (name, k)
        if not killed:
            assert k > calls["n"], (name, k)             # every operation has been killed once
            assert new_name in good_after and len(good_after) == min(keep, len({*good_before, new_name}))
            break


# ---------------------------------------------------------------------- modes, permissions, failed clean-ups
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_checkpoints_get_the_umask_mode(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = Checkpointer(tmp_path).save(state(1), updates=1)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode and sidecar(path).stat().st_mode & 0o777 == mode


def without_read_override() -> None:
    """In the child before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set, so
    that even root gets the permission errors another user would (prctl PR_CAPBSET_DROP = 24)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_an_unreadable_checkpoint_is_one_line_naming_the_fix(tmp_path):
    """A real permission error, in a subprocess that cannot override file modes: one line naming
    the file and the fix, and the file is not taken for corrupt (not skipped, not set aside)."""
    import sys
    import textwrap

    ck = Checkpointer(tmp_path, keep=3)
    ck.save(state(1), updates=1)
    private = ck.save(state(2), updates=2)
    private.chmod(0)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from learner.checkpoint import Checkpointer, UnreadableCheckpoint
        try:
            print(Checkpointer({str(tmp_path)!r}).load_latest()[1])
        except UnreadableCheckpoint as e:
            print("ERR", e)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         preexec_fn=without_read_override if os.geteuid() == 0 else None)
    assert out.stdout.startswith("ERR cannot read checkpoint"), out.stdout + out.stderr
    assert out.stdout.count("\n") == 1 and "Permission denied" in out.stdout and f"chmod a+r {private}" in out.stdout
    private.chmod(0o644)
    assert verify(private) and ck.load_latest()[0]["updates"] == 2     # not set aside: it was never corrupt


def test_a_failed_clean_up_of_a_full_disk_save_does_not_hide_the_real_error(tmp_path, monkeypatch):
    import errno

    ck = Checkpointer(tmp_path, keep=3)
    ck.save(state(1), updates=1)

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    def unlink_fails(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(os, "fsync", disk_full)
    monkeypatch.setattr(os, "unlink", unlink_fails)
    with pytest.raises(OSError, match="No space left on device"):
        ck.save(state(2), updates=2)
    monkeypatch.undo()
    assert ck.load_latest()[0]["updates"] == 1
    assert ck.remove_partial_saves()          # the temporary file the failed clean-up left
