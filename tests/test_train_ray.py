"""launch.py with real Ray: bad input fails before any work. Training end to end with Ray (TensorBoard,
metrics, checkpoints, SIGTERM, resume in the same logdir) is tests/test_learning.py's run."""
from conftest import TINY, launch


def test_bad_override_fails_before_any_work(run_dir, tmp_path):
    proc = launch([f"logdir={run_dir}", "learner.batchsize=8"], log=tmp_path / "bad.log")
    assert proc.wait(timeout=60) == 2
    out = (tmp_path / "bad.log").read_text()
    assert "learner.batchsize" in out and "learner.batch_size" in out
    assert not run_dir.exists()


def test_unreachable_ray_address_fails_before_any_work(run_dir, tmp_path):
    proc = launch(TINY + [f"logdir={run_dir}", "ray_address=127.0.0.1:9"], log=tmp_path / "bad.log")
    assert proc.wait(timeout=60) == 2
    out = (tmp_path / "bad.log").read_text()
    assert "ray_address='127.0.0.1:9'" in out and "ray start --head" in out
    assert not run_dir.exists()
