// kernels/attention_decode.cu: attention for few queries against a long key/value sequence
// (decode, short-query prefill), split over the keys, deterministic and batch-invariant.
//
// Layouts as the `attention` op: q, out [B, Sq, Hq, D]; k, v [B, Skv, Hkv, D]; lse [B, Hq, Sq]
// (f32, natural log); one float dtype (float, ky_f16, ky_bf16), 16-byte aligned rows (D a
// multiple of 16 / sizeof(dtype)), D <= 256. Query head hq uses key/value head hq / G,
// G = Hq / Hkv. Causal masking is bottom-right aligned: query i sees keys j <= i + Skv - Sq.
//
// Two kernels, launched in passes of batch entries (crates/kernels/src/attention_decode.rs):
// - `attention_decode_<dtype>_c<C>`: CTA (b, hkv, s) of 128 threads takes keys
//   [s * chunk, (s + 1) * chunk) of key/value head hkv and the R = G * Sq query rows that use
//   it (R <= KY_AD_MAX_ROWS), so K and V are read once for all of a GQA group's heads.
//   1. q rows to shared memory as f32, times scale * log2(e).
//   2. Scores: a group of g lanes (a power of two, g * C chunks of 16 bytes cover D) takes
//      KY_AD_U consecutive keys at a time, all their K loads in flight before the first use;
//      each lane dots its C chunks with every row, the group adds the partial dots by a xor
//      butterfly; the masked scores (-inf) go to shared memory.
//   3. Per row, in one warp: m = max, p = 2^(s - m) (0 when m = -inf), l = sum p, by fixed
//      butterflies.
//   4. Per tile of KY_AD_RT rows: every lane accumulates p * V over its keys (the same key
//      mapping as 2, V loads in flight), the groups of a warp are added by a xor butterfly, the
//      warps in warp order through shared memory; (m, l, acc[D]) goes to the scratch slot of
//      (row, s).
// - `attention_decode_<dtype>_combine`: one warp per query row merges the row's `splits`
//   slots in split order: M = max m_s, w_s = 2^(m_s - M), out = sum w_s acc_s / sum w_s l_s
//   (0 when no key is visible), lse = (M + log2 l) ln 2 (-inf then).
//
// The split count ceil(Skv / chunk) and chunk are functions of Skv alone, g and C of D and
// the dtype; every sum runs in an order fixed by them. So a row's bits do not depend on the
// batch, the other rows or the pass it runs in: deterministic and batch-invariant.
#include "common.cuh"

#define KY_AD_THREADS 128
#define KY_AD_WARPS 4
// Keys per lane group in flight per step.
#define KY_AD_U 4
// Query rows per pass over V (accumulators in registers: KY_AD_RT * C * V floats per lane).
#define KY_AD_RT 4
// Most query rows (G * Sq) per CTA.
#define KY_AD_MAX_ROWS 8
#define KY_AD_LN2 0.693147180559945309f

// Shared memory (floats): qs[R][D], sc[R][chunk], red[KY_AD_WARPS][KY_AD_RT][D], ml[2][R].
template <typename T, int C>
__device__ __forceinline__ void attention_decode_impl(const void* qv, const void* kv,
                                                      const void* vv, float* part, int seq_q,
                                                      ky_i64 seq_kv, int heads_q, int heads_kv,
                                                      int head_dim, ky_i64 splits, int chunk,
                                                      int g, float qscale, int causal) {
    typedef typename Elem<T>::storage S;
    constexpr int V = Vec16<T>::n;
    extern __shared__ float ky_ad_smem[];
    const int D = head_dim, G = heads_q / heads_kv, R = G * seq_q;
    float* qs = ky_ad_smem;
    float* sc = qs + R * D;
    float* red = sc + R * chunk;
    float* ml = red + KY_AD_WARPS * KY_AD_RT * D;

    const ky_i64 cta = blockIdx.x;
    const ky_i64 s = cta % splits;
    const ky_i64 bh = cta / splits;
    const int hkv = (int)(bh % heads_kv);
    const ky_i64 b = bh / heads_kv;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int ngrp = 32 / g, grp = lane / g, gl = lane - grp * g;
    const ky_i64 j0 = s * chunk;
    const int n = (int)((seq_kv - j0) < chunk ? (seq_kv - j0) : chunk);  // keys in this chunk

    // 1. q rows (row r = gi * Sq + i: head hkv * G + gi, query i), scaled.
    const S* q = static_cast<const S*>(qv);
    for (int idx = tid; idx < R * D; idx += KY_AD_THREADS) {
        const int r = idx / D, d = idx - r * D;
        const int gi = r / seq_q, i = r - gi * seq_q;
        const ky_i64 at = ((b * seq_q + i) * heads_q + (hkv * G + gi)) * (ky_i64)D + d;
        qs[idx] = Elem<T>::to_f32(q[at]) * qscale;
    }
    __syncthreads();

    // Keys: per step the CTA covers KY_AD_WARPS * ngrp * KY_AD_U keys; group (warp, grp) takes
    // KY_AD_U consecutive ones. Lane gl holds chunks c < C at elements (gl + c * g) * V.
    const int per_step = KY_AD_WARPS * ngrp * KY_AD_U;
    const int first = (warp * ngrp + grp) * KY_AD_U;
    const ky_i64 kv_row = (ky_i64)heads_kv * D;  // elements between consecutive keys
    const S* kbase = static_cast<const S*>(kv) + (b * seq_kv + j0) * kv_row + (ky_i64)hkv * D;
    const S* vbase = static_cast<const S*>(vv) + (b * seq_kv + j0) * kv_row + (ky_i64)hkv * D;
    const ky_i64 diag = seq_kv - seq_q;  // query i sees keys j <= i + diag

    // 2. Scores.
    for (int t0 = 0; t0 < n; t0 += per_step) {
        ky_vec16 raw[KY_AD_U][C];
        #pragma unroll
        for (int u = 0; u < KY_AD_U; ++u) {
            const int t = t0 + first + u;
            #pragma unroll
            for (int c = 0; c < C; ++c) {
                const int e0 = (gl + c * g) * V;
                if (t < n && e0 < D) raw[u][c] = ky_load16_stream(kbase + t * kv_row + e0);
            }
        }
        #pragma unroll
        for (int u = 0; u < KY_AD_U; ++u) {
            const int t = t0 + first + u;
            float kf[C][V];
            #pragma unroll
            for (int c = 0; c < C; ++c) {
                const int e0 = (gl + c * g) * V;
                if (t < n && e0 < D) {
                    Vec16<T>::unpack(raw[u][c], kf[c]);
                } else {
                    #pragma unroll
                    for (int k = 0; k < V; ++k) kf[c][k] = 0.0f;
                }
            }
            #pragma unroll
            for (int r = 0; r < KY_AD_MAX_ROWS; ++r) {
                if (r >= R) break;  // uniform across the CTA
                float dot = 0.0f;
                #pragma unroll
                for (int c = 0; c < C; ++c) {
                    const int e0 = (gl + c * g) * V;
                    if (e0 < D) {
                        #pragma unroll
                        for (int k = 0; k < V; ++k) dot = fmaf(qs[r * D + e0 + k], kf[c][k], dot);
                    }
                }
                #pragma unroll
                for (int o = 16; o > 0; o >>= 1) {
                    if (o < g) dot += ky_shfl_xor(dot, o);
                }
                if (gl == 0 && t < n) {
                    const int i = r % seq_q;
                    const bool seen = !causal || j0 + t <= i + diag;
                    sc[r * chunk + t] = seen ? dot : -__int_as_float(0x7f800000);
                }
            }
        }
    }
    __syncthreads();

    // 3. Softmax statistics of each row over this chunk, one warp per row.
    for (int r = warp; r < R; r += KY_AD_WARPS) {
        float m = -__int_as_float(0x7f800000);
        for (int t = lane; t < n; t += 32) m = fmaxf(m, sc[r * chunk + t]);
        m = ky_warp_max(m);
        float l = 0.0f;
        for (int t = lane; t < n; t += 32) {
            const float p = m == -__int_as_float(0x7f800000) ? 0.0f
                                                              : exp2f(sc[r * chunk + t] - m);
            sc[r * chunk + t] = p;
            l += p;
        }
        l = ky_warp_sum(l);
        if (lane == 0) {
            ml[r] = m;
            ml[R + r] = l;
        }
    }
    __syncthreads();

    // 4. p V, KY_AD_RT rows at a time.
    const ky_i64 slot = D + 2;
    for (int r0 = 0; r0 < R; r0 += KY_AD_RT) {
        float acc[KY_AD_RT][C][V];
        #pragma unroll
        for (int rr = 0; rr < KY_AD_RT; ++rr) {
            #pragma unroll
            for (int c = 0; c < C; ++c) {
                #pragma unroll
                for (int k = 0; k < V; ++k) acc[rr][c][k] = 0.0f;
            }
        }
        for (int t0 = 0; t0 < n; t0 += per_step) {
            ky_vec16 raw[KY_AD_U][C];
            #pragma unroll
            for (int u = 0; u < KY_AD_U; ++u) {
                const int t = t0 + first + u;
                #pragma unroll
                for (int c = 0; c < C; ++c) {
                    const int e0 = (gl + c * g) * V;
                    if (t < n && e0 < D) raw[u][c] = ky_load16_stream(vbase + t * kv_row + e0);
                }
            }
            #pragma unroll
            for (int u = 0; u < KY_AD_U; ++u) {
                const int t = t0 + first + u;
                if (t >= n) break;  // uniform across the group
                #pragma unroll
                for (int c = 0; c < C; ++c) {
                    const int e0 = (gl + c * g) * V;
                    if (e0 >= D) continue;
                    float vf[V];
                    Vec16<T>::unpack(raw[u][c], vf);
                    #pragma unroll
                    for (int rr = 0; rr < KY_AD_RT; ++rr) {
                        if (r0 + rr >= R) break;
                        const float p = sc[(r0 + rr) * chunk + t];
                        #pragma unroll
                        for (int k = 0; k < V; ++k) acc[rr][c][k] = fmaf(p, vf[k], acc[rr][c][k]);
                    }
                }
            }
        }
        // Groups of a warp (lanes gl, gl + g, ...), then the warps in order.
        #pragma unroll
        for (int rr = 0; rr < KY_AD_RT; ++rr) {
            #pragma unroll
            for (int c = 0; c < C; ++c) {
                #pragma unroll
                for (int k = 0; k < V; ++k) {
                    float a = acc[rr][c][k];
                    #pragma unroll
                    for (int o = 16; o > 0; o >>= 1) {
                        if (o >= g) a += ky_shfl_xor(a, o);
                    }
                    acc[rr][c][k] = a;
                }
            }
        }
        if (grp == 0) {
            #pragma unroll
            for (int rr = 0; rr < KY_AD_RT; ++rr) {
                #pragma unroll
                for (int c = 0; c < C; ++c) {
                    const int e0 = (gl + c * g) * V;
                    if (e0 >= D) continue;
                    #pragma unroll
                    for (int k = 0; k < V; ++k) {
                        red[(warp * KY_AD_RT + rr) * D + e0 + k] = acc[rr][c][k];
                    }
                }
            }
        }
        __syncthreads();
        const int rows = R - r0 < KY_AD_RT ? R - r0 : KY_AD_RT;
        for (int idx = tid; idx < rows * D; idx += KY_AD_THREADS) {
            const int rr = idx / D, d = idx - rr * D, r = r0 + rr;
            float a = red[rr * D + d];
            #pragma unroll
            for (int w = 1; w < KY_AD_WARPS; ++w) a += red[(w * KY_AD_RT + rr) * D + d];
            const int gi = r / seq_q, i = r - gi * seq_q;
            const ky_i64 row = (b * heads_q + (hkv * G + gi)) * seq_q + i;
            float* out = part + (row * splits + s) * slot;
            out[2 + d] = a;
            if (d == 0) {
                out[0] = ml[r];
                out[1] = ml[R + r];
            }
        }
        __syncthreads();
    }
}

// One warp per query row (b, hq, i) of the pass: merges its `splits` slots in split order.
template <typename T>
__device__ __forceinline__ void attention_decode_combine_impl(const float* part, void* outv,
                                                              float* lse, ky_i64 rows,
                                                              int seq_q, int heads_q,
                                                              int head_dim, ky_i64 splits) {
    typedef typename Elem<T>::storage S;
    const ky_i64 row = ((ky_i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (row >= rows) return;  // whole warps
    const int D = head_dim;
    const ky_i64 slot = D + 2;
    const float* p = part + row * splits * slot;
    const float ninf = -__int_as_float(0x7f800000);
    float mx = ninf;
    for (ky_i64 s = 0; s < splits; ++s) mx = fmaxf(mx, p[s * slot]);
    // row = (b * Hq + hq) * Sq + i; out is [B, Sq, Hq, D].
    const ky_i64 i = row % seq_q, bh = row / seq_q;
    const ky_i64 hq = bh % heads_q, b = bh / heads_q;
    S* out = static_cast<S*>(outv) + ((b * seq_q + i) * heads_q + hq) * (ky_i64)D;
    float l = 0.0f;
    for (ky_i64 s = 0; s < splits; ++s) {
        const float m = p[s * slot];
        const float w = m == ninf ? 0.0f : exp2f(m - mx);
        l = fmaf(w, p[s * slot + 1], l);
    }
    for (int d = lane; d < D; d += 32) {
        float a = 0.0f;
        for (ky_i64 s = 0; s < splits; ++s) {
            const float m = p[s * slot];
            const float w = m == ninf ? 0.0f : exp2f(m - mx);
            a = fmaf(w, p[s * slot + 2 + d], a);
        }
        out[d] = Elem<T>::from_f32(l > 0.0f ? a / l : 0.0f);
    }
    if (lse != nullptr && lane == 0) {
        // lse is [B, Hq, Sq]: the row index itself.
        lse[row] = l > 0.0f ? (mx + log2f(l)) * KY_AD_LN2 : ninf;
    }
}

// Entry points. Split kernel: grid (batch_in_pass * Hkv * splits), KY_AD_THREADS threads,
// dynamic shared memory (R * (D + chunk) + KY_AD_WARPS * KY_AD_RT * D + 2 * R) floats; `part`
// holds (batch_in_pass * Hq * Sq * splits) slots of D + 2 floats; q, k, v point at the pass's
// first batch entry. Combine: grid ceil(rows * 32 / 128) of 128 threads, rows =
// batch_in_pass * Hq * Sq; out and lse (may be null) at the pass's first batch entry.
#define KY_AD_SPLIT(NAME, T, C)                                                                \
    extern "C" __global__ void __launch_bounds__(KY_AD_THREADS) NAME(                           \
        const void* q, const void* k, const void* v, void* part, long long seq_q,             \
        long long seq_kv, long long heads_q, long long heads_kv, long long head_dim,           \
        long long splits, long long chunk, long long g, float qscale, long long causal) {     \
        attention_decode_impl<T, C>(q, k, v, static_cast<float*>(part), (int)seq_q, seq_kv,    \
                                    (int)heads_q, (int)heads_kv, (int)head_dim, splits,       \
                                    (int)chunk, (int)g, qscale, (int)causal);                 \
    }
#define KY_AD_COMBINE(NAME, T)                                                                 \
    extern "C" __global__ void __launch_bounds__(128) NAME(                                     \
        const void* part, void* out, void* lse, long long rows, long long seq_q,              \
        long long heads_q, long long head_dim, long long splits) {                            \
        attention_decode_combine_impl<T>(static_cast<const float*>(part), out,                 \
                                         static_cast<float*>(lse), rows, (int)seq_q,          \
                                         (int)heads_q, (int)head_dim, splits);                \
    }

KY_AD_SPLIT(attention_decode_f32_c1, float, 1)
KY_AD_SPLIT(attention_decode_f32_c2, float, 2)
KY_AD_SPLIT(attention_decode_f16_c1, ky_f16, 1)
KY_AD_SPLIT(attention_decode_bf16_c1, ky_bf16, 1)
KY_AD_COMBINE(attention_decode_f32_combine, float)
KY_AD_COMBINE(attention_decode_f16_combine, ky_f16)
KY_AD_COMBINE(attention_decode_bf16_combine, ky_bf16)
