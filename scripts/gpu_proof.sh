#!/usr/bin/env bash
# The GPU proof for the CUDA backend, in one device call (see docs/GPU.md):
#   here:   bash scripts/gpu_pack.sh      (stages .gpu/: test binaries, the CLI, torch_ops.py)
#   there:  bash scripts/gpu_proof.sh [STAGE...]   (default: tests verify bench sanitize)
# Stages:
#   tests          every test binary with --include-ignored                     -> tests.log
#   verify         kernelyard verify --device cuda:0                             -> verify.log
#   bench          every op's bench rows (gemm NN and NT), torch, ratio table   -> bench.jsonl, ratios.md
#                  (with .gpu/kernelyard-old staged: the same rows from it     -> bench_old.jsonl, compare.md)
#   sanitize       compute-sanitizer memcheck and racecheck: first over the GEMM suite with the
#                  invariant GEMM kernels alone instrumented (sanitize_gemm's run), then over
#                  the whole suite                                               -> memcheck.log, racecheck.log
#   gemm_bi        the invariant GEMM alone: its GPU test binaries (gemm_*), verify --op gemm,
#                  the gemm bench rows (NN, NT, TN; with .gpu/kernelyard-old its sm90 kernel's
#                  NN and NT rows as "old:"), torch.matmul and torch_ops.py --op gemm_layouts
#                                                                                -> gemm_bi.log, bench_gemm.jsonl, ratios_gemm.md
#   sanitize_op    memcheck, racecheck, synccheck over verify --op $SANITIZE_OP (default silu_mul)
#                                                                                -> {memcheck,racecheck,synccheck}_<op>.log
#   sanitize_gemm  memcheck, racecheck and synccheck over verify --op gemm      -> {memcheck,racecheck,synccheck}_gemm.log
#   tune           issue 16's sweep: `kernelyard tune` on row ops across widths, odd and small
#                  GEMMs, SSU shapes; tuned vs untuned per problem (scripts/tune_table.py)
#                  TUNE_SETS picks the groups (default `rows gemm ssu`)
#                                                                                -> tune.jsonl, tune.log, tuning.json, tune.md
#   gemm_tactics   issue 16's cuBLASLt tactics: the cublaslt_tactics test binary, then verify --op
#                  gemm (every kernel and every tactic, cublaslt@algo0..7 included)  -> gemm_tactics.log
#   candle         kernelyard-candle built with candle's `cuda` feature (KERNELYARD_PACK_CANDLE=1
#                  bash scripts/gpu_pack.sh stages .gpu/candle/): every test binary with
#                  --include-ignored, then every example with each of the argument lists
#                  in CANDLE_EXAMPLE_ARGS (`;`-separated; default `--device cuda`, with
#                  `--kv-heads 8`, with `--batch-invariant`)                      -> candle.log
#   ssu            selective_state_update (issue 15): its selection test binary, verify --op
#                  selective_state_update, compute-sanitizer memcheck, racecheck and synccheck over
#                  it, the bench rows at torch_ops.py's shapes with a bf16 and an f32 state, the
#                  torch.compile peer for each (scripts/ssu_peer.py), the ratio table
#                                                                                -> ssu.log, ssu_bench_{bf16,f32}.jsonl, ssu_ratios.md
#   rows           issue 17's row kernels: verify --op rms_norm/softmax/log_softmax (every tactic,
#                  the persistent `p`/`p128` included), memcheck/racecheck/synccheck over them
#                  (unless ROWS_SANITIZE=0),
#                  then ROWS_REPEATS (default 2) rounds of `bench --all` at torch_ops.py's row-op
#                  shapes (rms_norm, softmax, log_softmax, rope, silu_mul, token_logprobs with
#                  64 x 151936 too) and torch_ops.py for those ops   -> rows.log, rows_bench.jsonl, rows_ratios.md
#   logprobs       token_logprobs' split rows (issue 17): verify --op token_logprobs, memcheck/
#                  racecheck/synccheck over it, the graph test binary (.gpu/bin/graph), then
#                  bench at few and many rows (with .gpu/kernelyard-old: the same rows from it)
#                  and torch_ops.py                            -> logprobs.log, logprobs_bench.jsonl, logprobs_ratios.md
#   decode         cuda.attention.decode (issue 18): verify --op attention, memcheck/racecheck/
#                  synccheck over it with the decode kernels alone instrumented (unless
#                  DECODE_SANITIZE=0), bench at
#                  torch_ops.py's decode shapes and torch_ops.py --op attention_decode
#                                                              -> decode.log, decode_bench.jsonl, decode_ratios.md
#   hd256          cuda.attention at head dim 256 (issue 18): verify --op attention (its d256_*
#                  cases), memcheck/racecheck/synccheck over it with the head-dim-256 entry
#                  points alone instrumented (unless HD256_SANITIZE=0), bench at torch_ops.py's
#                  attention_hd256 shapes and torch_ops.py --op attention_hd256
#                                                              -> hd256.log, hd256_bench.jsonl, hd256_ratios.md
#   fp8            scaled_gemm (issue 19): verify --op scaled_gemm (cuBLASLt and the invariant
#                  sm90 kernel), memcheck/racecheck/synccheck over it with the invariant kernel
#                  alone instrumented (cuBLASLt's own FP8 kernel trips racecheck; unless
#                  FP8_SANITIZE=0), FP8_REPEATS (default 2) rounds of `bench --all` at
#                  torch_ops.py's shapes plus M = 1, interleaved with torch_ops.py --op scaled_gemm,
#                  and the ratio table with the cuBLASLt target (0.95x torch)
#                                                              -> fp8.log, fp8_bench.jsonl, fp8_ratios.md
# A GEMM-only call: `bash scripts/gpu_proof.sh gemm_bi sanitize_gemm` (7 files).
# Logs go to $OUT (at most 8 files come back: the default stages write 8); a summary is
# printed last.
set -uo pipefail
OUT=${OUT:-/tmp/kernelyard-gpu-proof}
mkdir -p "$OUT"
export CUDA_PATH=${CUDA_PATH:-/usr/local/cuda}
export LD_LIBRARY_PATH=$CUDA_PATH/lib64:${LD_LIBRARY_PATH:-}
export KERNELYARD_CACHE_DIR=${KERNELYARD_CACHE_DIR:-/tmp/kernelyard-cache}
export PATH=$CUDA_PATH/bin:$PATH
K=.gpu/kernelyard
stages=${*:-tests verify bench sanitize}
summary=()
note() { summary+=("$1"); echo "## $1"; }
# The gemm bench shapes (bf16): each NN (torch_ops.py's `a @ b`), NT (`x @ W^T`, a linear
# layer's forward; the JSON rows say "layout": "nt") and TN (`A^T @ dC`, the weight gradient;
# "layout": "tn", torch_ops.py --op gemm_layouts).
GEMM_SHAPES="m=4096,n=4096,k=4096 m=8192,n=8192,k=8192 m=4096,n=14336,k=4096 m=128,n=4096,k=4096 m=1,n=4096,k=4096"
# bench_rows OUT.jsonl OP ARGS...: one `kernelyard bench --all --json` into OUT.jsonl.
bench_rows() { local out=$1; shift; $K bench "$@" --device cuda:0 --all --json >>"$out" 2>>"$OUT/bench.err" || echo "bench $* failed" >&2; }
gemm_bench() { # gemm_bench OUT.jsonl: the gemm shapes, NN, NT, then TN
  for s in $GEMM_SHAPES; do bench_rows "$1" gemm --problem "$s" --dtype bf16; done
  for s in $GEMM_SHAPES; do bench_rows "$1" gemm --problem "$s,trans_b=1" --dtype bf16; done
  for s in $GEMM_SHAPES; do bench_rows "$1" gemm --problem "$s,trans_a=1" --dtype bf16; done
}
# gemm_bench_old OUT.jsonl: with .gpu/kernelyard-old staged, its invariant sm90 kernel on the NN and NT
# shapes, rows labelled "old:" (the same kernel before a change, in the same call).
gemm_bench_old() {
  [ -x .gpu/kernelyard-old ] || return 0
  local s t
  for s in $GEMM_SHAPES; do
    for t in "" ",trans_b=1"; do
      .gpu/kernelyard-old bench gemm --problem "$s$t" --dtype bf16 --device cuda:0 --kernel cuda.gemm.batch_invariant.sm90 --json 2>>"$OUT/bench.err" \
        | sed 's/"impl":"cuda.gemm/"impl":"old:cuda.gemm/' >>"$1"
    done
  done
}
# sanitized TOOL LOG LABEL [FILTER...] -- VERIFY-ARGS...: compute-sanitizer TOOL over `kernelyard
# verify --device cuda:0 VERIFY-ARGS` (170 s at most), appended to LOG, with a summary note.
sanitized() {
  local tool=$1 log=$2 label=$3; shift 3
  local filter=(); while [ $# -gt 0 ] && [ "$1" != "--" ]; do filter+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  local part start rc
  part=$(mktemp); start=$SECONDS
  echo "=== compute-sanitizer --tool $tool ${filter[*]} verify --device cuda:0 $*" >"$part"
  timeout 170 compute-sanitizer --tool "$tool" ${filter[@]+"${filter[@]}"} --error-exitcode 9 --print-limit 20 \
    $K verify --device cuda:0 "$@" >>"$part" 2>&1
  rc=$?
  cat "$part" >>"$log"
  note "compute-sanitizer $tool over $label: rc=$rc$([ $rc = 124 ] && echo ' (timed out)'), $((SECONDS - start)) s, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$part" | tail -1) | verify: $(grep -E 'passed|failed' "$part" | tail -1)"
  rm -f "$part"
}

{ date -u; nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm --format=csv; nvcc --version 2>/dev/null | tail -2; } >"$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

for stage in $stages; do
  case $stage in
  tests)
    start=$SECONDS
    bash .gpu/run.sh -- --nocapture >"$OUT/tests.log" 2>&1
    rc=$?
    note "tests (every test binary, ignored GPU tests included): rc=$rc, $((SECONDS - start)) s, $(grep -c '^test .* ok$' "$OUT/tests.log") ok, $(grep -c '^test .* FAILED$' "$OUT/tests.log") FAILED"
    grep -E '^test .* FAILED$|panicked' "$OUT/tests.log" | head -20
    ;;
  verify)
    start=$SECONDS
    $K verify --device cuda:0 >"$OUT/verify.log" 2>&1
    rc=$?
    note "verify --device cuda:0: rc=$rc, $((SECONDS - start)) s: $(grep -E 'passed|failed' "$OUT/verify.log" | tail -3 | tr '\n' ' ')"
    grep -E 'FAIL' "$OUT/verify.log" | head -20
    ;;
  sanitize)
    # memcheck over the whole suite; racecheck and synccheck one operator at a time (a fault
    # in one operator would otherwise lose the context for every later case).
    : >"$OUT/memcheck.log"
    sanitized memcheck "$OUT/memcheck.log" "verify" --
    : >"$OUT/racecheck.log"
    for op in rms_norm softmax log_softmax token_logprobs rope attention gemm silu_mul; do
      sanitized racecheck "$OUT/racecheck.log" "verify --op $op" -- --op $op
    done
    : >"$OUT/synccheck.log"
    for op in attention gemm; do
      sanitized synccheck "$OUT/synccheck.log" "verify --op $op" -- --op $op
    done
    ;;
  sanitize_op)
    # memcheck, racecheck and synccheck over `verify --op $SANITIZE_OP` (default silu_mul): a
    # new kernel's sanitizer pass, one file per tool.
    sop=${SANITIZE_OP:-silu_mul}
    for tool in memcheck racecheck synccheck; do
      : >"$OUT/${tool}_$sop.log"
      sanitized $tool "$OUT/${tool}_$sop.log" "verify --op $sop" -- --op $sop
    done
    ;;
  sanitize_gemm)
    for tool in memcheck racecheck synccheck; do
      : >"$OUT/${tool}_gemm.log"
      # No --kernel-name filter: with one, racecheck aborted ("failed to handle a hardware
      # exception") once the TMA/wgmma kernel ran (docs/GPU.md). Unfiltered it runs clean for
      # ours; cuBLAS's own nvjet kernels report hazards that are not ours.
      sanitized $tool "$OUT/${tool}_gemm.log" "verify --op gemm" -- --op gemm
    done
    ;;
  gemm_bi)
    start=$SECONDS
    bash .gpu/run.sh gemm_ -- --nocapture >"$OUT/gemm_bi.log" 2>&1
    rc=$?
    note "gemm_bi tests (gemm_batch_invariance, gemm_bi_selection): rc=$rc, $((SECONDS - start)) s, $(grep -c '^test .* ok$' "$OUT/gemm_bi.log") ok, $(grep -c '^test .* FAILED$' "$OUT/gemm_bi.log") FAILED"
    grep -E '^test .* FAILED$|panicked|^SKIP' "$OUT/gemm_bi.log" | head -20
    start=$SECONDS
    part=$(mktemp)
    $K verify --device cuda:0 --op gemm >"$part" 2>&1
    rc=$?
    { echo "=== kernelyard verify --device cuda:0 --op gemm"; cat "$part"; } >>"$OUT/gemm_bi.log"
    note "verify --device cuda:0 --op gemm: rc=$rc, $((SECONDS - start)) s: $(grep -E 'passed|failed' "$part" | tail -3 | tr '\n' ' ')"
    grep -E 'FAIL' "$part" | head -20
    rm -f "$part"
    start=$SECONDS
    : >"$OUT/bench_gemm.jsonl"
    gemm_bench "$OUT/bench_gemm.jsonl"
    gemm_bench_old "$OUT/bench_gemm.jsonl"
    PYTHONUNBUFFERED=1 python3 .gpu/torch_ops.py --op gemm >>"$OUT/bench_gemm.jsonl" 2>>"$OUT/bench.err"
    PYTHONUNBUFFERED=1 python3 .gpu/torch_ops.py --op gemm_layouts >>"$OUT/bench_gemm.jsonl" 2>>"$OUT/bench.err"
    python3 scripts/ratio_table.py "$OUT/bench_gemm.jsonl" >"$OUT/ratios_gemm.md" 2>&1
    note "gemm bench: $((SECONDS - start)) s, $(grep -c kernelyard "$OUT/bench_gemm.jsonl") kernelyard rows"
    cat "$OUT/ratios_gemm.md"
    ;;
  bench)
    start=$SECONDS
    : >"$OUT/bench.jsonl"
    b() { bench_rows "$OUT/bench.jsonl" "$@"; }
    gemm_bench "$OUT/bench.jsonl"
    for s in rows=16384,hidden=4096 rows=4096,hidden=8192; do b rms_norm --problem $s --dtype bf16; done
    for op in softmax log_softmax; do
      for s in rows=16384,cols=4096 rows=4096,cols=32768; do b $op --problem $s --dtype bf16; done
    done
    for s in tokens=4096,vocab=151936 tokens=16384,vocab=32000; do b token_logprobs --problem $s --dtype bf16; done
    b rope --problem tokens=16384,heads=32,head_dim=128 --dtype bf16
    for s in rows=16384,d=14336 rows=4096,d=11008; do b silu_mul --problem $s --dtype bf16; done
    # torch_ops.py's attention shapes: (B, S, Hq, Hkv, D, causal).
    for s in batch=4,seq_q=4096,heads_q=32,heads_kv=32,head_dim=128,causal=0 \
      batch=4,seq_q=4096,heads_q=32,heads_kv=32,head_dim=128,causal=1 \
      batch=1,seq_q=16384,heads_q=32,heads_kv=8,head_dim=128,causal=1 \
      batch=8,seq_q=2048,heads_q=16,heads_kv=16,head_dim=64,causal=1; do
      b attention --problem $s --dtype bf16
    done
    # The same rows from the binary before a change (`.gpu/kernelyard-old`, staged by hand), in
    # the same call: `compare.md` gives new/old per row (the "no slowdown" check of a refactor).
    if [ -x .gpu/kernelyard-old ]; then
      : >"$OUT/bench_old.jsonl"
      old() { .gpu/kernelyard-old bench "$@" --device cuda:0 --all --json >>"$OUT/bench_old.jsonl" 2>>"$OUT/bench.err" || true; }
      for s in $GEMM_SHAPES; do old gemm --problem "$s" --dtype bf16; done
      for s in $GEMM_SHAPES; do old gemm --problem "$s,trans_b=1" --dtype bf16; done
      for s in rows=16384,hidden=4096 rows=4096,hidden=8192; do old rms_norm --problem $s --dtype bf16; done
      for op in softmax log_softmax; do
        for s in rows=16384,cols=4096 rows=4096,cols=32768; do old $op --problem $s --dtype bf16; done
      done
      for s in tokens=4096,vocab=151936 tokens=16384,vocab=32000; do old token_logprobs --problem $s --dtype bf16; done
      old rope --problem tokens=16384,heads=32,head_dim=128 --dtype bf16
      for s in batch=4,seq_q=4096,heads_q=32,heads_kv=32,head_dim=128,causal=1 \
        batch=8,seq_q=2048,heads_q=16,heads_kv=16,head_dim=64,causal=1; do
        old attention --problem $s --dtype bf16
      done
      python3 scripts/compare_bench.py "$OUT/bench_old.jsonl" "$OUT/bench.jsonl" >"$OUT/compare.md" 2>&1
      tail -1 "$OUT/compare.md"
    fi
    # torch for the ops benchmarked above (not torch_ops.py's whole list).
    for op in gemm rms_norm softmax log_softmax token_logprobs rope attention silu_mul; do
      PYTHONUNBUFFERED=1 python3 .gpu/torch_ops.py --op $op >>"$OUT/bench.jsonl" 2>>"$OUT/bench.err"
    done
    python3 scripts/ratio_table.py "$OUT/bench.jsonl" >"$OUT/ratios.md" 2>&1
    note "bench: $((SECONDS - start)) s, $(grep -c kernelyard "$OUT/bench.jsonl") kernelyard rows"
    cat "$OUT/ratios.md"
    ;;
  decode)
    start=$SECONDS
    : >"$OUT/decode.log"
    $K verify --device cuda:0 --op attention >>"$OUT/decode.log" 2>&1
    note "verify --op attention: rc=$?, $(grep -E 'passed|failed' "$OUT/decode.log" | tail -1)"
    grep -E "cuda.attention.decode +[0-9]" "$OUT/decode.log" | tail -1
    if [ "${DECODE_SANITIZE:-1}" = 1 ]; then
      for tool in memcheck racecheck synccheck; do
        sanitized $tool "$OUT/decode.log" "verify --op attention (decode kernels)" \
          --kernel-regex kns=attention_decode -- --op attention
      done
    fi
    : >"$OUT/decode_bench.jsonl"
    for s in batch=64,seq_q=1,seq_kv=4096,heads_q=32,heads_kv=8,head_dim=128 \
      batch=8,seq_q=1,seq_kv=32768,heads_q=32,heads_kv=8,head_dim=128 \
      batch=1,seq_q=1,seq_kv=131072,heads_q=32,heads_kv=8,head_dim=128; do
      bench_rows "$OUT/decode_bench.jsonl" attention --problem $s --dtype bf16
      if [ -x .gpu/kernelyard-old ]; then
        .gpu/kernelyard-old bench attention --problem $s --dtype bf16 --device cuda:0 --json \
          --kernel cuda.attention.decode 2>>"$OUT/bench.err" \
          | sed 's/"impl":"cuda.attention.decode"/"impl":"old:cuda.attention.decode"/' >>"$OUT/decode_bench.jsonl"
      fi
    done
    PYTHONUNBUFFERED=1 python3 .gpu/torch_ops.py --op attention_decode >>"$OUT/decode_bench.jsonl" 2>>"$OUT/bench.err"
    python3 scripts/decode_rows.py "$OUT/decode_bench.jsonl" >"$OUT/decode_rekeyed.jsonl"
    python3 scripts/ratio_table.py "$OUT/decode_rekeyed.jsonl" >"$OUT/decode_ratios.md" 2>&1
    rm -f "$OUT/decode_rekeyed.jsonl"
    note "decode: $((SECONDS - start)) s"
    cat "$OUT/decode_ratios.md"
    ;;
  hd256)
    start=$SECONDS
    : >"$OUT/hd256.log"
    $K verify --device cuda:0 --op attention >>"$OUT/hd256.log" 2>&1
    note "verify --op attention: rc=$?, $(grep -E 'passed|failed' "$OUT/hd256.log" | tail -1)"
    grep -E "cuda\.attention +[0-9]" "$OUT/hd256.log" | tail -1
    grep -E "cuda\.attention (f16|bf16) d256_" "$OUT/hd256.log"
    if [ "${HD256_SANITIZE:-1}" = 1 ]; then
      # attention_f16_d256 and attention_bf16_d256 (no other entry point ends in 16_d256).
      for tool in memcheck racecheck synccheck; do
        sanitized $tool "$OUT/hd256.log" "verify --op attention (head dim 256 kernels)" \
          --kernel-regex kns=16_d256 -- --op attention
      done
    fi
    : >"$OUT/hd256_bench.jsonl"
    # torch_ops.py's attention_hd256 shapes: (B, S, Hq, Hkv, D, causal).
    for s in batch=2,seq_q=4096,heads_q=16,heads_kv=16,head_dim=256,causal=0 \
      batch=2,seq_q=4096,heads_q=16,heads_kv=16,head_dim=256,causal=1; do
      bench_rows "$OUT/hd256_bench.jsonl" attention --problem $s --dtype bf16
    done
    PYTHONUNBUFFERED=1 python3 .gpu/torch_ops.py --op attention_hd256 >>"$OUT/hd256_bench.jsonl" 2>>"$OUT/bench.err"
    python3 scripts/ratio_table.py "$OUT/hd256_bench.jsonl" >"$OUT/hd256_ratios.md" 2>&1
    note "hd256: $((SECONDS - start)) s"
    cat "$OUT/hd256_ratios.md"
    ;;
  fp8)
    start=$SECONDS
    : >"$OUT/fp8.log"
    $K verify --device cuda:0 --op scaled_gemm >>"$OUT/fp8.log" 2>&1
    note "verify --op scaled_gemm: rc=$?, $(grep -E 'passed|failed' "$OUT/fp8.log" | tail -1)"
    grep -E "^cuda:0 cuda.scaled_gemm" "$OUT/fp8.log"
    if [ "${FP8_SANITIZE:-1}" = 1 ]; then
      for tool in memcheck racecheck synccheck; do
        sanitized $tool "$OUT/fp8.log" "verify --op scaled_gemm (invariant kernel)" \
          --kernel-regex kns=scaled_gemm_sm90 -- --op scaled_gemm
      done
    fi
    : >"$OUT/fp8_bench.jsonl"
    for round in $(seq "${FP8_REPEATS:-2}"); do
      PYTHONUNBUFFERED=1 python3 .gpu/torch_ops.py --op scaled_gemm >>"$OUT/fp8_bench.jsonl" 2>>"$OUT/bench.err"
      for s in m=4096,n=4096,k=4096 m=8192,n=8192,k=8192 m=4096,n=14336,k=4096 \
        m=128,n=4096,k=4096 m=1,n=4096,k=4096; do
        bench_rows "$OUT/fp8_bench.jsonl" scaled_gemm --problem $s --dtype f8e4m3
      done
    done
    python3 scripts/ratio_table.py "$OUT/fp8_bench.jsonl" \
      --target scaled_gemm:torch._scaled_mm:0.95 >"$OUT/fp8_ratios.md" 2>&1
    note "fp8: ratio table rc=$?, $((SECONDS - start)) s"
    cat "$OUT/fp8_ratios.md"
    ;;
  logprobs)
    start=$SECONDS
    : >"$OUT/logprobs.log"
    $K verify --device cuda:0 --op token_logprobs >>"$OUT/logprobs.log" 2>&1
    note "verify --op token_logprobs: rc=$?, $(grep -E 'passed|failed' "$OUT/logprobs.log" | tail -1)"
    for tool in memcheck racecheck synccheck; do
      sanitized $tool "$OUT/logprobs.log" "verify --op token_logprobs" -- --op token_logprobs
    done
    if [ -x .gpu/bin/graph ]; then
      .gpu/bin/graph --include-ignored --test-threads 1 --nocapture >>"$OUT/logprobs.log" 2>&1
      note "graph tests: rc=$?, $(grep -E '^test result' "$OUT/logprobs.log" | tail -1)"
    fi
    : >"$OUT/logprobs_bench.jsonl"
    for s in tokens=1,vocab=151936 tokens=64,vocab=151936 tokens=256,vocab=151936 \
      tokens=64,vocab=32000 tokens=64,vocab=128256 tokens=4096,vocab=151936 tokens=16384,vocab=32000; do
      bench_rows "$OUT/logprobs_bench.jsonl" token_logprobs --problem $s,entropy=1 --dtype bf16
      if [ -x .gpu/kernelyard-old ]; then
        .gpu/kernelyard-old bench token_logprobs --problem $s,entropy=1 --dtype bf16 --device cuda:0 --json \
          | sed 's/"impl":"cuda.token_logprobs"/"impl":"old:cuda.token_logprobs"/' >>"$OUT/logprobs_bench.jsonl" 2>>"$OUT/bench.err"
      fi
    done
    PYTHONUNBUFFERED=1 python3 .gpu/torch_ops.py --op token_logprobs >>"$OUT/logprobs_bench.jsonl" 2>>"$OUT/bench.err"
    python3 scripts/ratio_table.py "$OUT/logprobs_bench.jsonl" >"$OUT/logprobs_ratios.md" 2>&1
    note "logprobs: $((SECONDS - start)) s"
    cat "$OUT/logprobs_ratios.md"
    ;;
  rows)
    start=$SECONDS
    : >"$OUT/rows.log"
    for op in rms_norm softmax log_softmax; do
      $K verify --device cuda:0 --op $op >>"$OUT/rows.log" 2>&1
      note "verify --op $op: rc=$?, $(grep -E 'passed|failed' "$OUT/rows.log" | tail -1)"
    done
    if [ "${ROWS_SANITIZE:-1}" = 1 ]; then
      for op in rms_norm softmax log_softmax; do
        for tool in memcheck racecheck synccheck; do
          sanitized $tool "$OUT/rows.log" "verify --op $op" -- --op $op
        done
      done
    fi
    : >"$OUT/rows_bench.jsonl"
    r() { bench_rows "$OUT/rows_bench.jsonl" "$@"; }
    for rep in $(seq 1 "${ROWS_REPEATS:-2}"); do
      for s in rows=16384,hidden=4096 rows=4096,hidden=8192; do r rms_norm --problem $s --dtype bf16; done
      for op in softmax log_softmax; do
        for s in rows=16384,cols=4096 rows=4096,cols=32768 rows=4096,cols=8192; do r $op --problem $s --dtype bf16; done
      done
      r rope --problem tokens=16384,heads=32,head_dim=128 --dtype bf16
      for s in rows=16384,d=14336 rows=4096,d=11008; do r silu_mul --problem $s --dtype bf16; done
      for s in tokens=64,vocab=151936 tokens=4096,vocab=151936 tokens=16384,vocab=32000; do
        r token_logprobs --problem $s --dtype bf16
      done
      for op in rms_norm softmax log_softmax token_logprobs rope silu_mul; do
        PYTHONUNBUFFERED=1 python3 .gpu/torch_ops.py --op $op >>"$OUT/rows_bench.jsonl" 2>>"$OUT/bench.err"
      done
    done
    python3 scripts/ratio_table.py "$OUT/rows_bench.jsonl" >"$OUT/rows_ratios.md" 2>&1
    note "rows bench: $((SECONDS - start)) s, $(grep -c kernelyard "$OUT/rows_bench.jsonl") kernelyard rows"
    cat "$OUT/rows_ratios.md"
    ;;
  ssu)
    start=$SECONDS
    log="$OUT/ssu.log"
    : >"$log"
    for t in ssu_selection emulated; do
      [ -x ".gpu/bin/$t" ] && ".gpu/bin/$t" --include-ignored >>"$log" 2>&1
    done
    $K verify --device cuda:0 --op selective_state_update >>"$log" 2>&1
    note "ssu verify: rc=$? $(grep -E 'passed|failed' "$log" | tail -1)"
    # SSU_SANITIZE=0 leaves the sanitizers out (a call that runs them on its own).
    # SSU_SANITIZE_FILTER: compute-sanitizer options that limit instrumentation (e.g.
    # `--kernel-regex kns=ssut` for the tiled kernel alone).
    if [ "${SSU_SANITIZE:-1}" = 1 ]; then
      for tool in memcheck racecheck synccheck; do
        # shellcheck disable=SC2086
        sanitized $tool "$log" "selective_state_update" ${SSU_SANITIZE_FILTER:-} -- --op selective_state_update
      done
    fi
    for state in bf16 f32; do
      j="$OUT/ssu_bench_$state.jsonl"
      : >"$j"
      # torch_ops.py's shapes (full A, as its peer), then Mamba-2 2.7B as served (A per head,
      # i32 indices into a cache of 512 slots); `--all`: every tactic (row, tile4 .. tile32).
      for s in batch=64,heads=64,head_dim=64,state_dim=128,groups=8 \
        batch=256,heads=32,head_dim=64,state_dim=128,groups=1 \
        batch=64,heads=80,head_dim=64,state_dim=128,groups=1,a_per_head=1,state_indices=i32,cache_slots=512; do
        bench_rows "$j" selective_state_update --problem "$s,state_dtype=$state" --dtype bf16
        # With .gpu/kernelyard-old staged: the same rows from it, labelled `old:` (same device,
        # same run).
        if [ -x .gpu/kernelyard-old ]; then
          .gpu/kernelyard-old bench selective_state_update --problem "$s,state_dtype=$state" --dtype bf16 \
            --device cuda:0 --all --json 2>>"$OUT/bench.err" \
            | python3 -c 'import sys, json
for l in sys.stdin:
    try: r = json.loads(l)
    except ValueError: continue
    if "impl" in r: r["impl"] = "old:" + r["impl"]
    print(json.dumps(r))' >>"$j"
        fi
      done
      PYTHONUNBUFFERED=1 python3 scripts/ssu_peer.py peer --state $state >>"$j" 2>>"$OUT/bench.err"
    done
    # The issue's named peer (one call per timing, bf16 state).
    PYTHONUNBUFFERED=1 python3 .gpu/torch_ops.py --op selective_state_update >>"$OUT/ssu_bench_bf16.jsonl" 2>>"$OUT/bench.err"
    python3 scripts/ssu_peer.py table "$OUT/ssu_bench_bf16.jsonl" "$OUT/ssu_bench_f32.jsonl" >"$OUT/ssu_ratios.md" 2>&1
    cat "$OUT/ssu_ratios.md"
    note "ssu: $((SECONDS - start)) s"
    ;;
  tune)
    # Issue 16's sweep: `kernelyard tune` over shapes where the default choice may lose (row ops
    # across widths, odd and small GEMMs with cuBLASLt's algorithms, SSU tiles); each problem's
    # JSON has every candidate's ms, verified or rejected, the choice and the untuned choice.
    start=$SECONDS
    j="$OUT/tune.jsonl" cache="$OUT/tuning.json"
    : >"$j"
    tune_one() { $K tune "$@" --device cuda:0 --out "$cache" --json >>"$j" 2>>"$OUT/tune.log" || echo "tune $* failed" >>"$OUT/tune.log"; }
    sets=" ${TUNE_SETS:-rows gemm ssu} "
    # One width per power-of-two bucket of the one-row-per-block path (1025 .. 16384 columns).
    if [[ $sets == *" rows "* ]]; then
      for cols in 1536 3072 6144 12288; do
        for op in softmax log_softmax; do tune_one $op --problem rows=4096,cols=$cols --dtype bf16; done
        tune_one rms_norm --problem rows=4096,hidden=$cols --dtype bf16
      done
    fi
    # (The tuner verifies each candidate against the f64 reference on the host: shapes of a
    # few GFLOP at most.)
    if [[ $sets == *" gemm "* ]]; then
      for s in m=37,n=129,k=71 m=1,n=4096,k=4096 m=16,n=4096,k=4096 m=128,n=4096,k=4096 \
        m=77,n=3000,k=1000 m=128,n=4096,k=4096,trans_b=1; do
        tune_one gemm --problem "$s" --dtype bf16
      done
    fi
    if [[ $sets == *" ssu "* ]]; then
      for state in bf16 f32; do
        for s in batch=64,heads=64,head_dim=64,state_dim=128,groups=8 batch=256,heads=32,head_dim=64,state_dim=128,groups=1 \
          batch=4,heads=80,head_dim=64,state_dim=128,groups=1,a_per_head=1; do
          tune_one selective_state_update --problem "$s,state_dtype=$state" --dtype bf16
        done
      done
      tune_one selective_state_update --problem batch=64,heads=64,head_dim=64,state_dim=128,groups=8 --dtype bf16 --batch-invariant
    fi
    python3 scripts/tune_table.py "$j" >"$OUT/tune.md" 2>&1
    cat "$OUT/tune.md"
    note "tune: $((SECONDS - start)) s, $(wc -l <"$j") problems"
    ;;
  gemm_tactics)
    start=$SECONDS
    log="$OUT/gemm_tactics.log"
    : >"$log"
    if [ -x .gpu/bin/cublaslt_tactics ]; then
      timeout 200 .gpu/bin/cublaslt_tactics --include-ignored --nocapture >>"$log" 2>&1
      note "cublaslt_tactics: rc=$?, $(grep -E '^test result' "$log" | tail -1)"
    else
      note "cublaslt_tactics: .gpu/bin/cublaslt_tactics was not staged"
    fi
    timeout 300 $K verify --device cuda:0 --op gemm >>"$log" 2>&1
    note "verify --op gemm (every tactic): rc=$?, $((SECONDS - start)) s, $(grep -E '^total' "$log" | tail -1)"
    grep -E 'cublaslt|FAIL' "$log" | grep -v '^test ' | head -20
    ;;
  candle)
    # kernelyard-candle's GPU tests (every op against candle's own on the same tensors) and its
    # examples (the Llama-style block against plain candle), all in one log.
    start=$SECONDS
    : >"$OUT/candle.log"
    fails=0 runs=0
    if [ -f .gpu/candle.tar.xz ]; then # gpu_pack.sh's archive (python3 where xz is missing)
      rm -rf .gpu/candle
      tar -xJf .gpu/candle.tar.xz -C .gpu 2>/dev/null \
        || python3 -c 'import tarfile; tarfile.open(".gpu/candle.tar.xz").extractall(".gpu")'
    fi
    # candle_run EXE ARGS...: one run, appended to candle.log, counted.
    candle_run() {
      local rc
      runs=$((runs + 1))
      echo "=== $*" >>"$OUT/candle.log"
      timeout 300 "$@" >>"$OUT/candle.log" 2>&1
      rc=$?
      echo "=== $1: rc=$rc" >>"$OUT/candle.log"
      [ $rc = 0 ] || { fails=$((fails + 1)); echo "candle: $* failed (rc=$rc)"; }
    }
    for t in .gpu/candle/*; do
      [ -f "$t" ] && [ -x "$t" ] && candle_run "$t" --include-ignored --nocapture
    done
    # Each example once per `;`-separated argument list (llama_block: MHA, GQA, batch-invariant).
    IFS=';' read -ra example_runs <<<"${CANDLE_EXAMPLE_ARGS:---device cuda;--device cuda --kv-heads 8;--device cuda --batch-invariant}"
    for e in .gpu/candle/examples/*; do
      [ -f "$e" ] && [ -x "$e" ] || continue
      # shellcheck disable=SC2086 # each entry is an argument list
      for a in "${example_runs[@]}"; do candle_run "$e" $a; done
    done
    note "candle ($runs runs of .gpu/candle binaries, $fails failed): $((SECONDS - start)) s, $(grep -c '^test .* ok$' "$OUT/candle.log") ok, $(grep -c '^test .* FAILED$' "$OUT/candle.log") FAILED"
    [ $runs -gt 0 ] || echo "candle: nothing staged in .gpu/candle (KERNELYARD_PACK_CANDLE=1 bash scripts/gpu_pack.sh)"
    grep -E '^test .* FAILED$|panicked' "$OUT/candle.log" | head -20
    ;;
  *)
    note "unknown stage \`$stage\` (stages: tests verify bench sanitize gemm_bi sanitize_op sanitize_gemm tune gemm_tactics ssu candle)"
    ;;
  esac
done
echo
echo "== summary"
printf '%s\n' "${summary[@]}"
