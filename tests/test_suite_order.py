"""The suite's own order (conftest.deal): under `-n auto --dist worksteal` each worker starts on its
share of the heavy tests, dealt longest first to the least loaded; checked against xdist's real
work-stealing scheduler, whose first distribution decides which worker gets which slice."""
from types import SimpleNamespace

import pytest
from xdist.scheduler import WorkStealingScheduling

from conftest import deal


class Item:
    def __init__(self, name, seconds=0):
        self.name, self.seconds = name, seconds

    def get_closest_marker(self, name):
        assert name == "heavy"
        return SimpleNamespace(args=(self.seconds,)) if self.seconds else None

    def __repr__(self):
        return self.name


ITEMS = [Item("a"), Item("L", 115), Item("b"), Item("C", 104), Item("c"), Item("N", 43), Item("d"),
         Item("S", 31), Item("e"), Item("F", 30), Item("f"), Item("g"), Item("h"), Item("i"), Item("j")]


def names(items):
    return "".join(i.name for i in items)


def test_one_process_runs_the_heavy_tests_first_longest_first():
    assert names(deal(ITEMS, 1)) == "LCNSF" + "abcdefghij"


def test_two_workers_each_start_on_their_share_longest_first():
    # LPT by hand: L(115) -> 0; C(104) -> 1; N(43) -> 1 (104 < 115: 147); S(31) -> 0 (115 < 147: 146);
    # F(30) -> 0 (146 < 147: 176). Slices of 7 and 8 (15 // 2, then the rest), light tests in order.
    order = deal(ITEMS, 2)
    assert names(order[:7]) == "LSF" + "abcd" and names(order[7:]) == "CN" + "efghij"


def test_more_workers_than_heavy_tests():
    order = deal(ITEMS, 4)     # slices of 3, 4, 4, 4
    assert names(order) == "Lab" + "Ccde" + "Nfgh" + "SFij"   # S(31) and F(30) go to the only empty load: 4th


class Node:          # the part of xdist's WorkerController that the scheduler uses
    def __init__(self, k):
        self.shutting_down, self.sent, self.gateway = False, [], SimpleNamespace(id=f"gw{k}")

    def send_runtest_some(self, indices):
        self.sent.extend(indices)


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_xdist_worksteal_hands_each_worker_one_slice(workers):
    order = deal(ITEMS, workers)
    config = SimpleNamespace(getvalue=lambda name: [f"{workers}*popen"] if name == "tx" else None)
    sched = WorkStealingScheduling(config)
    nodes = [Node(k) for k in range(workers)]
    for node in nodes:
        sched.add_node(node)
    for node in nodes:
        sched.add_node_collection(node, [i.name for i in order])
    sched.schedule()
    got = sorted(n.sent for n in nodes)
    sizes = [len(ITEMS) // workers + (k >= workers - len(ITEMS) % workers) for k in range(workers)]
    bounds = [sum(sizes[:k]) for k in range(workers + 1)]
    assert got == [list(range(bounds[k], bounds[k + 1])) for k in range(workers)]   # deal()'s slices, whole
    assert all(order[n.sent[0]].seconds > 0 for n in nodes)       # each worker starts on a heavy test
