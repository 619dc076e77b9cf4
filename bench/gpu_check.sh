#!/usr/bin/env bash
# One prepared GPU check (issue 9, item 4) for a machine with one H100/H200; about 5-8 minutes.
#
#   bash bench/gpu_check.sh            # from the repository root, after the README's set-up
#   OUT=/some/dir bash bench/gpu_check.sh
#
# 1. names the card (nvidia-smi) and runs the CUDA tests: no host sync inside a learner step under
#    torch.cuda.set_sync_debug_mode("error") (every head, both optimizers, fp32 and fast path), the
#    fast path's loss and gradients close to fp32, pinned double-buffered host-to-device copies;
# 2. the learner bench, deep net, T=100, B=32, 72x96 frames, in ONE process: the fp32 baseline first,
#    then bf16 torso, channels_last, both, and both + torch.compile; each line carries the on-policy
#    mean |log rho| and the first loss's relative difference to the fp32 baseline;
# 3. a summary table: steps/s, speed-up over fp32, numerics, and the goal (>= 300K agent steps/s).
# Everything printed is also written to $OUT/gpu_check.log and the bench lines to $OUT/gpu_check.jsonl.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
OUT=${OUT:-.}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible to torch'; print(torch.__version__, torch.cuda.get_device_name(0))" || exit 1

echo "== CUDA tests"
timeout 240 "$PY" -m pytest -q -rs tests/test_learner_cuda.py tests/test_batching.py

echo "== learner bench: deep, T=100, B=32 (fp32 baseline first, same process)"
BENCH=(bench/learner_throughput.py --torso deep --T 100 --B 32 --device cuda --steps 20 --warmup 3)
{
  timeout 240 "$PY" "${BENCH[@]}" --head shared,taskid_mi --precision fp32,bf16 \
      --memory-format contiguous,channels_last --compile off
  timeout 300 "$PY" "${BENCH[@]}" --head shared --precision fp32,bf16 --memory-format contiguous,channels_last \
      --compile off,on --warmup 5
} | tee "$OUT/gpu_check.jsonl"

echo "== summary"
"$PY" - "$OUT/gpu_check.jsonl" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
base = {}
print(f"{'card':<24} {'head':<10} {'precision':<9} {'memory':<14} {'compile':<7} {'steps/s':>10} "
      f"{'x fp32':>7} {'|log rho|':>10} {'loss rel':>9}")
for r in rows:
    if r["precision"] == "fp32" and r["memory_format"] == "contiguous" and r["compile"] == "off":
        base[r["head"]] = r["agent_steps_per_s"]
    speedup = r["agent_steps_per_s"] / base[r["head"]] if r["head"] in base else float("nan")
    rel = r["first_loss_rel_diff"]
    print(f"{r['device_name'][:24]:<24} {r['head']:<10} {r['precision']:<9} {r['memory_format']:<14} "
          f"{r['compile']:<7} {r['agent_steps_per_s']:>10.0f} {speedup:>7.2f} "
          f"{r['on_policy_log_rho_abs_mean']:>10.2e} {float('nan') if rel is None else rel:>9.2e}")
best = max(rows, key=lambda r: r["agent_steps_per_s"])
print(f"best: {best['agent_steps_per_s']:.0f} agent steps/s ({best['precision']}, {best['memory_format']}, "
      f"compile {best['compile']}, head {best['head']}); goal 300000: {'met' if best['agent_steps_per_s'] >= 3e5 else 'NOT met'}")
bad = [r for r in rows if r["on_policy_log_rho_abs_mean"] >= 1e-3 or (r["first_loss_rel_diff"] or 0) >= 1e-2]
print("numerics: every configuration within |log rho| < 1e-3 and loss rel. diff < 1e-2" if not bad else
      f"numerics: {len(bad)} configuration(s) outside the tolerances: {[(r['precision'], r['memory_format'], r['compile']) for r in bad]}")
EOF
