"""Published weights are the weights of the update they are labelled with, whatever happens after."""
import numpy as np
import torch

from training.loop import WeightSnapshot, host_weights


def test_snapshot_is_a_copy_taken_at_take_time():
    net = torch.nn.Linear(3, 2)
    snap = WeightSnapshot(net)
    assert snap.result() is None
    snap.take(7)
    expected = host_weights(net)
    with torch.no_grad():
        net.weight.add_(1.0)                      # the optimizer moves on before the publish
    version, weights = snap.result()
    assert version == 7 and weights.keys() == expected.keys()
    for k in weights:
        assert np.array_equal(weights[k], expected[k])
    assert snap.result() is None                  # one publish per snapshot
    snap.take(8)                                  # buffers are reused: the new values arrive
    assert np.array_equal(snap.result()[1]["weight"], net.weight.detach().numpy())
