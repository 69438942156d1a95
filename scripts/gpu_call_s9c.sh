#!/usr/bin/env bash
# Session 9, call 4. (1) The final GEMM build (one module per entry point, at most 4 splits):
# tests, verify, bench vs cuBLASLt and torch, memcheck, synccheck. (2) Issue 15: the SSU row
# kernel with the next row's index and state loads in flight while the current row computes
# (KY_SSU_PREFETCH=1), at 6 (kernelyard-pf6) and 5 (kernelyard-pf5) blocks per SM, against
# the default (kernelyard: no prefetch, 8 blocks per SM): verify each, two interleaved bench
# rounds at the issue's shapes, torch peers, memcheck and racecheck on pf6.
set -uo pipefail
FINAL=${OUT:-/tmp/out}; mkdir -p "$FINAL"
export OUT=/tmp/s9; mkdir -p "$OUT"
export CUDA_PATH=/usr/local/cuda LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} KERNELYARD_CACHE_DIR=/tmp/kernelyard-cache
export PATH=$CUDA_PATH/bin:$PATH
timeout 200 bash scripts/gpu_proof.sh gemm_bi >"$OUT/console_gemm_bi.log" 2>&1
source <(sed -n '/^sanitized() {/,/^}/p' scripts/gpu_proof.sh)
note() { echo "## $1"; }
K=.gpu/kernelyard
for tool in memcheck synccheck; do
  : >"$OUT/${tool}_gemm.log"
  sanitized $tool "$OUT/${tool}_gemm.log" "verify --op gemm" -- --op gemm
done >"$OUT/console_sanitize.log" 2>&1
# SSU
for b in kernelyard kernelyard-pf6 kernelyard-pf5; do
  s=$SECONDS
  timeout 120 .gpu/$b verify --device cuda:0 --op selective_state_update >"$OUT/ssu_verify_$b.log" 2>&1
  echo "## $b verify --op selective_state_update: rc=$?, $((SECONDS - s)) s, $(grep -E 'total' "$OUT/ssu_verify_$b.log" | tail -1)"
done >"$OUT/console_ssu.log"
: >"$OUT/ssu_ab.jsonl"
for round in 1 2; do
  for state in bf16 f32; do
    for s in batch=64,heads=64,head_dim=64,state_dim=128,groups=8 \
      batch=256,heads=32,head_dim=64,state_dim=128,groups=1 \
      batch=64,heads=80,head_dim=64,state_dim=128,groups=1,a_per_head=1,state_indices=i32,cache_slots=512; do
      for b in kernelyard kernelyard-pf6 kernelyard-pf5; do
        timeout 60 .gpu/$b bench selective_state_update --problem "$s,state_dtype=$state" --dtype bf16 --device cuda:0 \
          --kernel cuda.selective_state_update --json 2>>"$OUT/bench.err" \
          | sed "s/\"impl\":\"cuda.sel/\"impl\":\"$b-r$round:cuda.sel/" >>"$OUT/ssu_ab.jsonl"
      done
    done
  done
done
for state in bf16 f32; do
  PYTHONUNBUFFERED=1 timeout 120 python3 scripts/ssu_peer.py peer --state $state >>"$OUT/ssu_ab.jsonl" 2>>"$OUT/bench.err"
done
PYTHONUNBUFFERED=1 timeout 120 python3 .gpu/torch_ops.py --op selective_state_update >>"$OUT/ssu_ab.jsonl" 2>>"$OUT/bench.err"
python3 scripts/ratio_table.py "$OUT/ssu_ab.jsonl" >"$OUT/ssu_ab.md" 2>&1
grep -E "selective|torch" "$OUT/ssu_ab.md" | grep -v "not measured" | head -60
K=.gpu/kernelyard-pf6
for tool in memcheck racecheck; do
  sanitized $tool "$OUT/sanitize_ssu_pf6.log" "selective_state_update (pf6)" -- --op selective_state_update
done >>"$OUT/console_ssu.log" 2>&1
cp "$OUT/ratios_gemm.md" "$OUT/ssu_ab.md" "$FINAL/" 2>/dev/null
grep -hE "^## " "$OUT"/console_*.log >"$FINAL/summary.txt"
tar czf "$FINAL/all.tgz" -C "$OUT" .
cat "$FINAL/summary.txt"
