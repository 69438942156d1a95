// kernels/token_logprobs.cu: out[t] = log_softmax(logits[t] / T)[targets[t]] and, optionally,
// the entropy of softmax(logits[t] / T), in one pass over each row of logits.
//
// Rows of at most 2048 chunks (32 KiB): one CTA per row (blockDim.x a multiple of 32, at most
// 256, chosen from the vocabulary size and dtype alone). Longer rows are split, in one launch:
// `_split` CTAs each fold 2048 chunks of a row (256 threads) and write their merged state; the
// row's last CTA to finish (a per-row arrival counter, reset to 0 by that CTA) merges the
// row's states in split order and writes its outputs (`ky_tl_split_tail`). The split count is
// ceil(chunks / 2048), a function of the vocabulary size and dtype alone. The counters are the
// backend's: zero before the launch, written by no other kernel, and zero again after it (the
// host never clears them per launch). The row is cut into 16-byte chunks (4 f32 or 8 f16/bf16
// elements); thread `tid` takes chunks `base + u * blockDim.x + tid` for u < KY_TL_UNROLL, so
// each load instruction of a warp covers 512 contiguous bytes and KY_TL_UNROLL loads are in
// flight per thread.
//
// Every thread keeps an online state in the base-2 domain, with y = x * k and
// k = log2(e) / temperature (computed in f64 on the host):
//   m  the running maximum of y (never below -FLT_MAX, so that differences stay finite),
//   s  = sum 2^(y - m),
//   w  = sum 2^(y - m) * (y - m)       (<= 0; rescaled when m grows: w' = a (w + (m - m') s),
//                                       a = 2^(m - m')).
// Then log2-sum-exp = m + log2(s), and in nats:
//   logprob = (x_t k - m - log2 s) ln 2,      entropy = (log2 s - w / s) ln 2,
// the entropy as a sum of two non-negative terms (no cancellation). 2^d is the hardware's
// (`ky_ex2_approx`: ex2.approx.ftz on NVIDIA, v_exp_f32 on AMD; relative error about 2^-22);
// d = fma(x, k, -m) is rounded once.
//
// Special values match the f64 oracle: a -inf logit contributes nothing (its w term is
// clamped: 0 * -FLT_MAX = 0, not 0 * -inf = NaN); a NaN logit makes s NaN; a +inf logit gives
// NaN; a row of -inf gives NaN log-probabilities and entropy.
//
// Batch invariance and determinism: a chunk's position in the row fixes the split, the thread
// and the order in which its elements are folded, and the splits merge in split order, so the
// bits depend only on (vocab, dtype). The
// 16-byte path (`_v16`, taken when the problem is 16-byte aligned) and the any-alignment path
// load the same chunks (the latter element by element) and run the same arithmetic, so a row
// gives the same bits whichever path its batch's alignment selects.
//
// Checked mode: `token_logprobs_check` atomicMin's the index of every bad row (a target outside
// [0, vocab) that is not ignore_index) into `bad` (initialised to ~0 by the host); the main
// kernel (or a split row's last CTA), launched after it on the same stream, writes nothing
// when `*bad != ~0`.
#include "common.cuh"

#define KY_TL_FLT_MAX 3.402823466e+38f
#define KY_TL_LN2 0.693147180559945309f
#define KY_TL_UNROLL 2
// Whole steps whose loads are issued together before the first of them is folded: the split
// kernel's CTA folds 2048 chunks in 4 steps of 256 threads x 2 chunks, all 8 loads in flight
// at once (they were issued 2 at a time, 4 dependent round trips to DRAM per CTA). The fold
// order is the steps' own, so the bits do not depend on these (timing variants may change them).
#ifndef KY_TL_SPLIT_BATCH
#define KY_TL_SPLIT_BATCH 4
#endif
#ifndef KY_TL_ROW_BATCH
#define KY_TL_ROW_BATCH 1
#endif
// Resident CTAs per SM the split kernel is compiled for (`__launch_bounds__(256, n)`): 5 keeps
// it at 48 registers with its loads batched (64 at 4), so 64 rows of 151936 bf16 logits (640
// CTAs) run in one wave on 132 SMs. Measured on an H100 (sixteenth session): batched at 64
// registers, 4 CTAs/SM, two waves, it was 10 % slower there than one step at a time.
#ifndef KY_TL_SPLIT_BLOCKS
#define KY_TL_SPLIT_BLOCKS 5
#endif

struct ky_tl_state {
    float m;
    float s;
    float w;
};

__device__ __forceinline__ ky_tl_state ky_tl_empty() {
    ky_tl_state r;
    r.m = -KY_TL_FLT_MAX;
    r.s = 0.0f;
    r.w = 0.0f;
    return r;
}

// Folds `n` values (padding is -inf, which leaves the state's bits unchanged).
template <int N>
__device__ __forceinline__ void ky_tl_fold(ky_tl_state& st, const float* x, int chunk, float k) {
    float cm = x[0];
    #pragma unroll
    for (int i = 1; i < N; ++i) cm = fmaxf(cm, x[i]);
    const float cmk = ky_fmul_rn(cm, k);
    if (cmk > st.m) {
        const float d = fmaxf(ky_fsub_rn(st.m, cmk), -KY_TL_FLT_MAX);
        const float a = ky_ex2_approx(d);
        st.w = ky_fmul_rn(a, fmaf(d, st.s, st.w));
        st.s = ky_fmul_rn(st.s, a);
        st.m = cmk;
    }
    // One chain per chunk (independent chains across chunks), then added to the state.
    #pragma unroll
    for (int c = 0; c < N; c += chunk) {
        float cs = 0.0f, cw = 0.0f;
        #pragma unroll
        for (int i = 0; i < chunk; ++i) {
            const float d = fmaf(x[c + i], k, -st.m);
            const float e = ky_ex2_approx(d);
            cs = ky_fadd_rn(cs, e);
            cw = fmaf(e, fmaxf(d, -KY_TL_FLT_MAX), cw);
        }
        st.s = ky_fadd_rn(st.s, cs);
        st.w = ky_fadd_rn(st.w, cw);
    }
}

__device__ __forceinline__ ky_tl_state ky_tl_merge(ky_tl_state a, ky_tl_state b) {
    const float m = fmaxf(a.m, b.m);
    const float da = fmaxf(ky_fsub_rn(a.m, m), -KY_TL_FLT_MAX);
    const float db = fmaxf(ky_fsub_rn(b.m, m), -KY_TL_FLT_MAX);
    const float ea = ky_ex2_approx(da), eb = ky_ex2_approx(db);
    ky_tl_state r;
    r.m = m;
    r.s = fmaf(a.s, ea, ky_fmul_rn(b.s, eb));
    r.w = fmaf(ea, fmaf(da, a.s, a.w), ky_fmul_rn(eb, fmaf(db, b.s, b.w)));
    return r;
}

__device__ __forceinline__ ky_tl_state ky_tl_warp_merge(ky_tl_state v) {
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        ky_tl_state u;
        u.m = ky_shfl_xor(v.m, o);
        u.s = ky_shfl_xor(v.s, o);
        u.w = ky_shfl_xor(v.w, o);
        v = ky_tl_merge(v, u);
    }
    return v;
}

__device__ __forceinline__ ky_i64 ky_tl_target(const void* targets, ky_i64 target_size, ky_i64 row) {
    return target_size == 8 ? static_cast<const ky_i64*>(targets)[row]
                            : (ky_i64) static_cast<const int*>(targets)[row];
}

// Loads chunk `c` (elements [c * n, c * n + n)) as floats; `full` chunks lie wholly in the
// row, others are padded with -inf. VEC: one 16-byte streaming load for full chunks.
template <typename T, bool VEC>
__device__ __forceinline__ void ky_tl_load_chunk(const typename Elem<T>::storage* row, ky_i64 c,
                                                 ky_i64 vocab, bool full, float* out) {
    const int n = Vec16<T>::n;
    if (VEC && full) {
        Vec16<T>::unpack(ky_load16_stream(row + c * n), out);
    } else if (full) {
        #pragma unroll
        for (int i = 0; i < n; ++i) out[i] = Elem<T>::load(row, c * n + i);
    } else {
        #pragma unroll
        for (int i = 0; i < n; ++i) {
            const ky_i64 j = c * n + i;
            out[i] = j < vocab ? Elem<T>::load(row, j) : -__int_as_float(0x7f800000);
        }
    }
}

// Folds chunks [begin, end) of `row` (end <= the row's chunk count) into thread `tid`'s state:
// steps of KY_TL_UNROLL * blockDim.x chunks from `begin`, thread tid taking chunks
// `base + u * blockDim.x + tid`; the steps that lie wholly in the row's whole chunks first
// (with 16-byte loads, BATCH steps' loads at a time, kept packed until their step is folded),
// then at most one guarded step (chunks at or past `end` are -inf).
template <typename T, bool VEC, int BATCH>
__device__ __forceinline__ ky_tl_state ky_tl_fold_range(const typename Elem<T>::storage* row,
                                                        ky_i64 begin, ky_i64 end, ky_i64 vocab,
                                                        float k) {
    const int n = Vec16<T>::n;
    const int tid = threadIdx.x;
    const ky_i64 nt = blockDim.x;
    const ky_i64 nfull = vocab / n;
    const ky_i64 fend = end < nfull ? end : nfull;
    const ky_i64 step = nt * KY_TL_UNROLL;
    ky_tl_state st = ky_tl_empty();
    float x[KY_TL_UNROLL * n];
    ky_i64 base = begin;
    // Batches of whole steps, every load issued before the first fold (the same folds, in the
    // same order, as one step at a time).
    if (VEC && BATCH > 1) {
        for (; base + BATCH * step <= fend; base += BATCH * step) {
            ky_vec16 raw[BATCH * KY_TL_UNROLL];
            #pragma unroll
            for (int u = 0; u < BATCH * KY_TL_UNROLL; ++u) {
                raw[u] = ky_load16_stream(row + (base + u * nt + tid) * n);
            }
            #pragma unroll
            for (int b = 0; b < BATCH; ++b) {
                #pragma unroll
                for (int u = 0; u < KY_TL_UNROLL; ++u) {
                    Vec16<T>::unpack(raw[b * KY_TL_UNROLL + u], x + u * n);
                }
                ky_tl_fold<KY_TL_UNROLL * n>(st, x, n, k);
            }
        }
    }
    // Groups whose chunks all lie wholly in the row (the same for every thread).
    for (; base + step <= fend; base += step) {
        #pragma unroll
        for (int u = 0; u < KY_TL_UNROLL; ++u) {
            ky_tl_load_chunk<T, VEC>(row, base + u * nt + tid, vocab, true, x + u * n);
        }
        ky_tl_fold<KY_TL_UNROLL * n>(st, x, n, k);
    }
    // The last group, if any: chunks past the end are all -inf.
    if (base < end) {
        #pragma unroll
        for (int u = 0; u < KY_TL_UNROLL; ++u) {
            const ky_i64 c = base + u * nt + tid;
            if (c < end) {
                ky_tl_load_chunk<T, VEC>(row, c, vocab, c < nfull, x + u * n);
            } else {
                #pragma unroll
                for (int i = 0; i < n; ++i) x[u * n + i] = -__int_as_float(0x7f800000);
            }
        }
        ky_tl_fold<KY_TL_UNROLL * n>(st, x, n, k);
    }
    return st;
}

// Block merge in a fixed order: a butterfly in each warp, then over the warps in warp 0.
// Returns true in thread 0, which holds the block's state; one __syncthreads.
__device__ __forceinline__ bool ky_tl_block_merge(ky_tl_state& st) {
    __shared__ float sm_m[32], sm_s[32], sm_w[32];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    st = ky_tl_warp_merge(st);
    if (lane == 0) {
        sm_m[warp] = st.m;
        sm_s[warp] = st.s;
        sm_w[warp] = st.w;
    }
    __syncthreads();
    if (warp != 0) return false;
    st = ky_tl_empty();
    if (lane < (int)(blockDim.x >> 5)) {
        st.m = sm_m[lane];
        st.s = sm_s[lane];
        st.w = sm_w[lane];
    }
    st = ky_tl_warp_merge(st);
    return tid == 0;
}

// Writes row `row_idx`'s log-probability (and entropy) from its merged state, its target and
// the target's logit `xt` (read only for a target in range).
__device__ __forceinline__ void ky_tl_finish(ky_tl_state st, ky_i64 target, float xt, float* out,
                                             float* entropy, ky_i64 row_idx, ky_i64 vocab,
                                             ky_i64 ignore_index, float k) {
    const float l2s = log2f(st.s);
    float lp;
    if (target == ignore_index) {
        lp = 0.0f;
    } else if (target >= 0 && target < vocab) {
        lp = ky_fmul_rn(ky_fsub_rn(fmaf(xt, k, -st.m), l2s), KY_TL_LN2);
    } else {
        lp = __int_as_float(0x7fc00000);
    }
    out[row_idx] = lp;
    if (entropy != nullptr) {
        entropy[row_idx] = ky_fmul_rn(ky_fsub_rn(l2s, __fdiv_rn(st.w, st.s)), KY_TL_LN2);
    }
}

template <typename T, bool VEC>
__device__ __forceinline__ void token_logprobs_impl(
    const void* logits_, const void* targets, float* out, float* entropy,
    const unsigned long long* bad, ky_i64 vocab, ky_i64 target_size, ky_i64 ignore_index,
    float k) {
    typedef typename Elem<T>::storage S;
    const int n = Vec16<T>::n;
    const ky_i64 row_idx = blockIdx.x;
    const S* row = static_cast<const S*>(logits_) + row_idx * vocab;

    // Thread 0 fetches the target and its logit first; the loads overlap the pass.
    ky_i64 target = 0;
    float xt = 0.0f;
    if (threadIdx.x == 0) {
        target = ky_tl_target(targets, target_size, row_idx);
        if (target != ignore_index && target >= 0 && target < vocab) {
            xt = Elem<T>::load(row, target);
        }
    }
    ky_tl_state st =
        ky_tl_fold_range<T, VEC, KY_TL_ROW_BATCH>(row, 0, (vocab + n - 1) / n, vocab, k);
    if (!ky_tl_block_merge(st)) return;
    if (bad != nullptr && *bad != ~0ull) return;  // checked mode found a bad row: write nothing
    ky_tl_finish(st, target, xt, out, entropy, row_idx, vocab, ignore_index, k);
}

// The split path's end, in every thread of split CTA x = r * splits + s after its block merge
// (`lead`: thread 0, which holds the CTA's state). Thread 0 writes the state to
// part[x * 3 + {0, 1, 2}], fences, and counts the CTA on the row's counter; the CTA that counts
// last (old == splits - 1) is the only one to go on: it fences again, reads the row's states
// (volatile: never from a stale cache line), merges them in split order 0, 1, ... in thread 0
// (the arithmetic and order of the former combine kernel, so the same bits), writes the
// outputs (nothing when checked mode found a bad row) and resets the counter to 0, so the next
// launch finds zeros. Which CTA comes last changes nothing in the result. No CTA waits for
// another (no deadlock whatever the residency). Not inlined: the fold above keeps its
// registers (48 at KY_TL_SPLIT_BLOCKS = 5).
template <typename T>
__device__ __noinline__ void ky_tl_split_tail(ky_tl_state st, bool lead, const void* logits_,
                                             const void* targets, float* part,
                                             unsigned int* counters, float* out, float* entropy,
                                             const unsigned long long* bad, ky_i64 vocab,
                                             ky_i64 splits, ky_i64 target_size,
                                             ky_i64 ignore_index, float k) {
    typedef typename Elem<T>::storage S;
    __shared__ float sm_m[32], sm_s[32], sm_w[32];
    __shared__ int sm_last;
    const int tid = threadIdx.x;
    const ky_i64 r = (ky_i64)blockIdx.x / splits;
    if (lead) {
        float* p = part + blockIdx.x * 3ll;
        p[0] = st.m;
        p[1] = st.s;
        p[2] = st.w;
        __threadfence();  // the state before the count: the CTA that counts last sees it
        sm_last = atomicAdd(counters + r, 1u) == (unsigned int)(splits - 1);
    }
    __syncthreads();
    if (!sm_last) return;
    __threadfence();  // the other CTAs' states after their counts
    const S* row = static_cast<const S*>(logits_) + r * vocab;
    const volatile float* rp = part + r * splits * 3;
    ky_i64 target = 0;
    float xt = 0.0f;
    if (tid == 0) {
        target = ky_tl_target(targets, target_size, r);
        if (target != ignore_index && target >= 0 && target < vocab) {
            xt = Elem<T>::load(row, target);
        }
    }
    // 32 states at a time through shared memory, merged by thread 0 in split order.
    ky_tl_state acc = ky_tl_empty();
    for (ky_i64 base = 0; base < splits; base += 32) {
        if (tid < 32 && base + tid < splits) {
            sm_m[tid] = rp[(base + tid) * 3];
            sm_s[tid] = rp[(base + tid) * 3 + 1];
            sm_w[tid] = rp[(base + tid) * 3 + 2];
        }
        __syncthreads();
        if (tid == 0) {
            const int n = splits - base < 32 ? (int)(splits - base) : 32;
            for (int i = 0; i < n; ++i) {
                ky_tl_state u;
                u.m = sm_m[i];
                u.s = sm_s[i];
                u.w = sm_w[i];
                acc = base + i == 0 ? u : ky_tl_merge(acc, u);
            }
        }
        __syncthreads();
    }
    if (tid != 0) return;
    counters[r] = 0u;  // every CTA of the row has counted: the next launch finds 0
    if (bad != nullptr && *bad != ~0ull) return;  // checked mode found a bad row: write nothing
    ky_tl_finish(acc, target, xt, out, entropy, r, vocab, ignore_index, k);
}

// Split rows: CTA x = r * splits + s folds chunks [s * split_chunks, (s + 1) * split_chunks)
// of row r (the last split to the row's end); then `ky_tl_split_tail`: the row's last CTA
// merges the row's states and writes its outputs.
template <typename T, bool VEC>
__device__ __forceinline__ void token_logprobs_split_impl(
    const void* logits_, const void* targets, float* part, unsigned int* counters, float* out,
    float* entropy, const unsigned long long* bad, ky_i64 vocab, ky_i64 splits,
    ky_i64 split_chunks, ky_i64 target_size, ky_i64 ignore_index, float k) {
    typedef typename Elem<T>::storage S;
    const int n = Vec16<T>::n;
    const ky_i64 r = (ky_i64)blockIdx.x / splits, sp = (ky_i64)blockIdx.x - r * splits;
    const S* row = static_cast<const S*>(logits_) + r * vocab;
    const ky_i64 nchunks = (vocab + n - 1) / n;
    const ky_i64 begin = sp * split_chunks;
    const ky_i64 end = begin + split_chunks < nchunks ? begin + split_chunks : nchunks;
    ky_tl_state st = ky_tl_fold_range<T, VEC, KY_TL_SPLIT_BATCH>(row, begin, end, vocab, k);
    const bool lead = ky_tl_block_merge(st);
    ky_tl_split_tail<T>(st, lead, logits_, targets, part, counters, out, entropy, bad, vocab,
                        splits, target_size, ignore_index, k);
}

// Entry points: one CTA per row, grid (tokens, 1, 1). `k` = log2(e) / temperature.
// `target_size` is 4 (i32 targets) or 8 (i64). `entropy` and `bad` may be null.
#define KY_TL_ENTRY(NAME, T, VEC)                                                              \
    extern "C" __global__ void __launch_bounds__(256, 4) NAME(                                  \
        const void* logits, const void* targets, void* out, void* entropy, const void* bad,   \
        long long vocab, long long target_size, long long ignore_index, float k) {            \
        token_logprobs_impl<T, VEC>(logits, targets, static_cast<float*>(out),                \
                                    static_cast<float*>(entropy),                             \
                                    static_cast<const unsigned long long*>(bad), vocab,       \
                                    target_size, ignore_index, k);                            \
    }

KY_TL_ENTRY(token_logprobs_f32, float, false)
KY_TL_ENTRY(token_logprobs_f16, ky_f16, false)
KY_TL_ENTRY(token_logprobs_bf16, ky_bf16, false)
KY_TL_ENTRY(token_logprobs_f32_v16, float, true)
KY_TL_ENTRY(token_logprobs_f16_v16, ky_f16, true)
KY_TL_ENTRY(token_logprobs_bf16_v16, ky_bf16, true)

// Split rows (rows longer than one split): grid (rows * splits, 1, 1) of any multiple of 32
// threads up to 256; `part` holds rows * splits * 3 floats; `counters` rows u32 that are 0 on
// entry, used by no other kernel while this one runs, and 0 again on exit.
#define KY_TL_SPLIT(NAME, T, VEC)                                                              \
    extern "C" __global__ void __launch_bounds__(256, KY_TL_SPLIT_BLOCKS) NAME(                 \
        const void* logits, const void* targets, void* part, void* counters, void* out,       \
        void* entropy, const void* bad, long long vocab, long long splits,                    \
        long long split_chunks, long long target_size, long long ignore_index, float k) {     \
        token_logprobs_split_impl<T, VEC>(                                                     \
            logits, targets, static_cast<float*>(part), static_cast<unsigned int*>(counters), \
            static_cast<float*>(out), static_cast<float*>(entropy),                           \
            static_cast<const unsigned long long*>(bad), vocab, splits, split_chunks,         \
            target_size, ignore_index, k);                                                    \
    }

KY_TL_SPLIT(token_logprobs_f32_split, float, false)
KY_TL_SPLIT(token_logprobs_f16_split, ky_f16, false)
KY_TL_SPLIT(token_logprobs_bf16_split, ky_bf16, false)
KY_TL_SPLIT(token_logprobs_f32_v16_split, float, true)
KY_TL_SPLIT(token_logprobs_f16_v16_split, ky_f16, true)
KY_TL_SPLIT(token_logprobs_bf16_v16_split, ky_bf16, true)

// Checked mode, before the main kernel: the least bad row index into `*bad` (left at ~0 when
// every target is in range or ignore_index). Grid-stride over the rows.
extern "C" __global__ void token_logprobs_check(const void* targets, long long tokens,
                                                long long vocab, long long target_size,
                                                long long ignore_index, void* bad) {
    const ky_i64 stride = (ky_i64)gridDim.x * blockDim.x;
    for (ky_i64 r = (ky_i64)blockIdx.x * blockDim.x + threadIdx.x; r < tokens; r += stride) {
        const ky_i64 t = ky_tl_target(targets, target_size, r);
        if (t != ignore_index && (t < 0 || t >= vocab)) {
            atomicMin(static_cast<unsigned long long*>(bad), (unsigned long long)r);
        }
    }
}
