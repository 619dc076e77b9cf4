"""The table of docs/BENCHMARKS.md ("Actors that overlap env stepping and inference") from the JSON files here."""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROWS = [("embedded", "embedded, small torso, T=20"), ("peer_doorkey", "peer DoorKey, shallow torso, T=20"),
        ("dmlab30_local", "DMLab-30, 4 levels, shallow torso, T=50"),
        ("dmlab30_deep4", "DMLab-30, deep torso, T=50")]

print("| workload | envs per actor | today's actor, 1 core | env / inference share of its time | overlap, 2 cores "
      "| speedup | bound: steps / max(env, inference) | overlap / bound | network waits for envs "
      "| two 1-core actors | overlap / two actors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, label in ROWS:
    r = json.loads((HERE / f"{name}.json").read_text())
    o, p, b = r["overlap"], r["two_actors"], r["breakdown_fraction"]
    print(f"| {label} | {r['envs_per_actor']} | {r['actor_agent_steps_per_s']:,.0f} | "
          f"{b['env_step']:.0%} / {b['inference']:.0%} | {o['agent_steps_per_s']:,.0f} | {o['speedup_over_actor']:.2f}x | "
          f"{o['bound_agent_steps_per_s']:,.0f} | {o['of_bound']:.2f} | {o['network_waits_for_envs_fraction']:.0%} | "
          f"{p['agent_steps_per_s']:,.0f} | {p['overlap_over_two_actors']:.2f} |")
