#!/usr/bin/env bash
# Issue 19, item 4: today's actor (one core) against the overlapped actor (network on one core, envs
# on the other) and against two one-core actors, in the same rounds. Each line: one JSON object.
# Needs an idle machine with 2 free cores; DeepMind Lab installed for the last two (scripts/build_dmlab.sh).
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=docs/results/actor-overlap
python bench/actor_efficiency.py --config configs/embedded.yaml --rounds 3 --unrolls 5 > $out/embedded.json
python bench/actor_efficiency.py --config configs/peer_doorkey.yaml --rounds 3 --unrolls 5 > $out/peer_doorkey.json
python bench/actor_efficiency.py --config configs/dmlab30_local.yaml --rounds 3 --unrolls 5 > $out/dmlab30_local.json
python bench/actor_efficiency.py --config configs/dmlab30.yaml --rounds 3 --unrolls 2 \
    actors.envs_per_actor=4 learner.unroll_length=50 > $out/dmlab30_deep4.json
python docs/results/actor-overlap/table.py
