#!/usr/bin/env bash
# Session 14, call 2. Issue 18, cuda.attention.sm90: the committed build (.gpu/kernelyard:
# ping-pong + overlap, tiles 128/128/64 keys), the one-tile-at-a-time schedule
# (.gpu/kernelyard-base) and larger key tiles (.gpu/kernelyard-t1: 176 keys at D = 128, 80 at
# D = 256, V in 16-key boxes). verify --json with one fresh seed for all three (the committed
# build and base must report the same errors to the last digit: the schedules give the same
# bits); the three sanitizers on t1 through `bench --kernel`; two interleaved rounds of the
# suite's four shapes and attention_hd256 against torch SDPA. Issue 17 (H200 only): the row ops.
set -uo pipefail
FINAL=${OUT:-/tmp/out}; mkdir -p "$FINAL"
export OUT=/tmp/s14b; mkdir -p "$OUT"
export CUDA_PATH=/usr/local/cuda LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} KERNELYARD_CACHE_DIR=/tmp/kernelyard-cache
export PATH=$CUDA_PATH/bin:$PATH
note() { echo "## $1"; echo "## $1" >>"$FINAL/progress.txt"; }
nvidia-smi --query-gpu=name,compute_cap,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/device.txt" >>"$FINAL/progress.txt"
K=.gpu/kernelyard
A=cuda.attention.sm90
VARIANTS=${VARIANTS:-"pp base t1"}
bin() { [ "$1" = pp ] && echo $K || echo $K-$1; }
{
  seed=$RANDOM$RANDOM
  for v in $VARIANTS; do
    s=$SECONDS
    timeout 150 $(bin $v) verify --device cuda:0 --op attention --seed "$seed" --json >"$OUT/verify_$v.json" 2>"$OUT/verify_$v.log"
    rc=$?
    note "$v verify --op attention --seed $seed --json: rc=$rc, $((SECONDS - s)) s, $(python3 -c "import json,sys; d=json.load(open('$OUT/verify_$v.json')); print('passed', d['passed'], 'failed', d['failed'], 'skipped', d['skipped'])" 2>&1)"
    [ $rc = 0 ] || VARIANTS=$(echo " $VARIANTS " | sed "s/ $v / /")
  done
  python3 - "$OUT" <<'PY' 2>&1 | tee -a "$FINAL/progress.txt"
import json, sys, os
out = sys.argv[1]
def load(v):
    p = f"{out}/verify_{v}.json"
    if not os.path.exists(p): return None
    d = json.load(open(p))
    return {(r["kernel"], r["case"], r["dtype"]): r["outcome"] for r in d["results"] if r["kernel"] == "cuda.attention.sm90"}
pp, base, t1 = load("pp"), load("base"), load("t1")
if pp and base:
    same = sum(1 for k in pp if pp[k].get("status") == "pass" and pp[k].get("rel_l2") == base.get(k, {}).get("rel_l2") and pp[k].get("max_abs") == base.get(k, {}).get("max_abs"))
    npass = sum(1 for k in pp if pp[k].get("status") == "pass")
    print(f"## pp vs base: {same} of {npass} passing sm90 cases report identical rel_l2 and max_abs (full f64 digits)")
    checks = {tuple(o.get("checks", [])) for o in pp.values() if o.get("status") == "pass"}
    print(f"## pp checks per passing case: {checks}")
if t1:
    d256 = [o["rel_l2"] for k, o in t1.items() if "d256" in k[1] and o.get("status") == "pass"]
    print(f"## t1: {sum(1 for o in t1.values() if o.get('status') == 'pass')} sm90 cases pass; d256 max rel_l2 {max(d256) if d256 else None}")
PY
  cp "$OUT"/verify_pp.json "$FINAL/" 2>/dev/null
  for v in t1; do
    for tool in memcheck racecheck synccheck; do
      s=$SECONDS; rc=0
      for p in batch=2,seq_q=200,seq_kv=300,heads_q=4,heads_kv=2,head_dim=256,causal=1 batch=1,seq_q=129,seq_kv=385,heads_q=2,heads_kv=1,head_dim=256,causal=0 batch=1,seq_q=300,seq_kv=400,heads_q=2,heads_kv=2,head_dim=128,causal=1; do
        timeout 150 compute-sanitizer --tool $tool --error-exitcode 9 --print-limit 20 \
          $(bin $v) bench attention --problem "$p" --dtype bf16 --device cuda:0 \
          --kernel $A --iters 1 --warmup 1 >>"$OUT/sanitize_${v}_$tool.log" 2>&1 || rc=$?
      done
      note "$v compute-sanitizer $tool over bench --kernel $A (3 shapes): rc=$rc, $((SECONDS - s)) s, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitize_${v}_$tool.log" | sort | uniq -c | tr '\n' ' ')"
    done
  done
  cat "$OUT"/sanitize_*.log >"$FINAL/sanitize.log"
  : >"$OUT/attn.jsonl"
  for round in 1 2; do
    PYTHONUNBUFFERED=1 timeout 120 python3 .gpu/torch_ops.py --op attention_hd256 >>"$OUT/attn.jsonl" 2>>"$OUT/bench.err"
    PYTHONUNBUFFERED=1 timeout 120 python3 .gpu/torch_ops.py --op attention >>"$OUT/attn.jsonl" 2>>"$OUT/bench.err"
    for p in batch=2,seq_q=4096,heads_q=16,heads_kv=16,head_dim=256,causal=0 \
             batch=2,seq_q=4096,heads_q=16,heads_kv=16,head_dim=256,causal=1 \
             batch=4,seq_q=4096,heads_q=32,heads_kv=32,head_dim=128,causal=1 \
             batch=4,seq_q=4096,heads_q=32,heads_kv=32,head_dim=128,causal=0 \
             batch=1,seq_q=16384,heads_q=32,heads_kv=8,head_dim=128,causal=1 \
             batch=8,seq_q=2048,heads_q=16,heads_kv=16,head_dim=64,causal=1; do
      for v in ${BENCH_VARIANTS:-pp t1}; do
        timeout 60 $(bin $v) bench attention --problem "$p" --dtype bf16 --device cuda:0 \
          --kernel $A --json 2>>"$OUT/bench.err" \
          | sed "s/\"impl\":\"$A\"/\"impl\":\"$v:$A\"/" >>"$OUT/attn.jsonl"
      done
    done
    note "attention round $round done at $SECONDS s"
  done
  python3 scripts/ratio_table.py "$OUT/attn.jsonl" >"$OUT/attn.md" 2>&1
  note "attention ratio table: rc=$?"
  cp "$OUT/attn.md" "$OUT/attn.jsonl" "$FINAL/"
  if [ -f .gpu/decode.sh ]; then
    s=$SECONDS
    timeout 240 bash .gpu/decode.sh >"$OUT/decode.log" 2>&1
    note "decode: rc=$?, $((SECONDS - s)) s"
    cp "$OUT/decode.log" "$FINAL/"
  fi
  if grep -q H200 "$OUT/device.txt" && [ -z "${NO_ROWS:-}" ]; then
    s=$SECONDS
    bash scripts/gpu_rows.sh "$OUT" $K
    note "rows: $((SECONDS - s)) s"
    cp "$OUT/rows.md" "$FINAL/"
  fi
} >"$OUT/console.log" 2>&1
grep -v "^===" "$OUT/console.log" | grep "^##" | head -40
cat "$OUT/attn.md"
tar czf "$FINAL/all.tgz" -C "$OUT" .
