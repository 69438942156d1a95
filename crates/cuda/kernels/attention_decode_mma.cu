// kernels/attention_decode_mma.cu: attention for few query rows per key/value head against a
// long key/value sequence (decode, short-query prefill) on tensor cores (mma.sync.m16n8k16,
// sm_80 and newer, f16 / bf16), split over the keys, deterministic and batch-invariant.
// Rust side: crates/cuda/src/ops/attention_decode_mma.rs (`cuda.attention.decode.mma`), which
// documents the design, the split rule and what the launch checks.
//
// Layouts as the `attention` op: q, out [B, Sq, Hq, D]; k, v [B, Skv, Hkv, D]; lse [B, Hq, Sq]
// (f32, natural log). Query head hq uses key/value head hq / G, G = Hq / Hkv; D = 64, 128 or
// 256. Causal masking is bottom-right aligned: query i sees keys j <= i + Skv - Sq.
//
// Two kernels, launched per pass of batch entries:
// - `attention_decode_mma_<dtype>_d<D>`: CTA (b, s, hkv) takes keys [s chunk, (s + 1) chunk)
//   of key/value head hkv and the R = G Sq query rows that read it (R <= 16), which are the
//   16 M rows of every mma (row r = gi Sq + i: head hkv G + gi, query i; rows past R are zero
//   and never stored), so K and V are read once for a GQA group.
//   - The keys stream through STAGES shared-memory stages of BN keys (K and V tiles, rows of D
//     16-bit elements with 16-byte chunks XOR-swizzled by row % 8, as attention.cu) by cp.async;
//     tile j + STAGES - 1 is issued before tile j is used (one barrier per tile).
//   - Warp w owns keys [w KW, (w + 1) KW) of every tile (BN = WARPS KW) and keeps its own online
//     softmax (m, l, O) over them, as attention.cu does per key tile: S = Q K^T by mma.sync (q
//     fragments in registers for the whole split, K by ldmatrix), scaled by scale log2(e) and
//     masked (-inf) in f32, the row max over the quad, alpha = 2^(m_old - m_new) (exactly 1 when
//     the max did not move; a guarded max so a row that has seen no key computes 2^(-inf - 0) =
//     0), P rounded to the dtype as the A fragment of O += P V (V by ldmatrix.trans).
//   - At the end the warps' states meet in shared memory and are merged in warp order: M = max
//     m_w, O = sum 2^(m_w - M) O_w, l likewise; (M, l, O) goes to the scratch slot (row, s):
//     D + 2 floats, the layout of attention_decode.cu's.
// - `attention_decode_mma_<dtype>_combine`: CTA (row, 32 columns of D) of 256 threads merges
//   the row's `splits` slots: M = max m_s, w_s = 2^(m_s - M), l = sum w_s l_s (a fixed tree),
//   out = sum w_s acc_s / l with warp u summing splits u, u + 8, ... in order and the 8 warps in
//   order (0 when no key is visible); lse = (M + log2 l) ln 2 (-inf then).
//
// The tiling (WARPS, KW, STAGES) is one per head dim, `chunk` and the split count depend on Skv
// alone (the Rust side), and every sum runs in an order they fix. So a row's bits do not
// depend on the batch, the other rows, the pass it runs in or the device: deterministic and
// batch-invariant.
#include "common.cuh"
#include "mma.cuh"

namespace adm {

using namespace ky_mma;

// One tiling per head dim: WARPS warps, KW keys per warp and tile (BN = WARPS KW keys per
// tile), STAGES tiles in flight. Every stage is 32 KiB (a K and a V tile), so 96 KiB of shared
// memory in all: it fits the 99 KiB per block of sm_86 / sm_89 / sm_120, and two CTAs share an
// A100 or H100 SM.
template <int D>
struct Cfg;
template <>
struct Cfg<64> {
    static constexpr int WARPS = 4, KW = 32, STAGES = 3;
};
template <>
struct Cfg<128> {
    static constexpr int WARPS = 4, KW = 16, STAGES = 3;
};
template <>
struct Cfg<256> {
    static constexpr int WARPS = 2, KW = 16, STAGES = 3;
};

template <int D>
struct Shape {
    static constexpr int WARPS = Cfg<D>::WARPS;
    static constexpr int THREADS = 32 * WARPS;
    static constexpr int KW = Cfg<D>::KW;
    static constexpr int BN = WARPS * KW;
    static constexpr int STAGES = Cfg<D>::STAGES;
    static constexpr int ROW = 2 * D;        // bytes of a K or V row
    static constexpr int TILE = BN * ROW;    // bytes of a K (or V) tile
    static constexpr int STAGE = 2 * TILE;   // K tile, then V tile
    static constexpr int BYTES = STAGES * STAGE;
    // The warps' states at the end (in the stages' space): m and l of 16 rows per warp, then O
    // rows of D + 4 floats (the padding spreads a quad's rows over the banks).
    static constexpr int OROW = D + 4;
    static constexpr int MERGE_BYTES = (2 * WARPS * 16 + WARPS * 16 * OROW) * 4;
    static_assert(MERGE_BYTES <= BYTES, "the merge fits in the stages");
    static_assert(KW % 16 == 0 && D % 64 == 0, "whole k16 steps; the swizzle's groups of 8");
    static_assert((BN * D / 8) % THREADS == 0, "whole copy passes");
};

// The Rust side (`TILINGS` in attention_decode_mma.rs) launches with these; its unit tests find
// each line here.
#define ADM_STEP "keep crates/cuda/src/ops/attention_decode_mma.rs in step"
static_assert(Shape<64>::THREADS == 128 && Shape<64>::BN == 128 && Shape<64>::STAGES == 3 &&
                  Shape<64>::BYTES == 98304,
              ADM_STEP);
static_assert(Shape<128>::THREADS == 128 && Shape<128>::BN == 64 && Shape<128>::STAGES == 3 &&
                  Shape<128>::BYTES == 98304,
              ADM_STEP);
static_assert(Shape<256>::THREADS == 64 && Shape<256>::BN == 32 && Shape<256>::STAGES == 3 &&
                  Shape<256>::BYTES == 98304,
              ADM_STEP);

#define ADM_NEG_INF (-__int_as_float(0x7f800000))
#define ADM_LN2 0.693147180559945309f
// Most query rows per key/value head: the 16 M rows of an mma.
#define ADM_MAX_ROWS 16
// Threads of the combine (8 warps of 32 columns).
#define ADM_COMBINE_THREADS 256

template <typename T, int D>
__device__ __forceinline__ void split(const ky_u16* __restrict__ q, const ky_u16* __restrict__ k,
                                      const ky_u16* __restrict__ v, float* __restrict__ part,
                                      int seq_q, ky_i64 seq_kv, int heads_q, int heads_kv,
                                      ky_i64 splits, int chunk, float scale_log2, int causal) {
    typedef Shape<D> S;
    constexpr int KW = S::KW, BN = S::BN, STAGES = S::STAGES, THREADS = S::THREADS;
    constexpr int ROW = S::ROW;
    constexpr int NT = KW / 8;   // n8 tiles of S per warp and tile
    constexpr int PS = KW / 16;  // k16 steps of P V
    constexpr int DT = D / 8;    // n8 tiles of O
    constexpr int KS = D / 16;   // k16 steps of Q K^T
    constexpr int CPR = D / 8;   // 16-byte chunks per row
    static_assert(NT % 2 == 0 && DT % 2 == 0, "fragments loaded in pairs");
    extern __shared__ __align__(128) unsigned char smem[];

    // CTA = (b splits + s) Hkv + hkv: CTAs launched together read the same keys of every
    // key/value head (whole 2 Hkv D-byte rows of K and V: DRAM pages used at once). The order
    // is scheduling only; no bit depends on it.
    const ky_i64 cta = blockIdx.x;
    const int hkv = (int)(cta % heads_kv);
    const ky_i64 bs = cta / heads_kv;
    const ky_i64 s = bs % splits;
    const ky_i64 b = bs / splits;
    const int G = heads_q / heads_kv, R = G * seq_q;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const ky_i64 j0 = s * chunk;
    const int n = (int)(seq_kv - j0 < chunk ? seq_kv - j0 : chunk);  // keys of this split
    const int tiles = (n + BN - 1) / BN;

    // Keys of this split row r sees (rows past R: all; they are never stored).
    auto seen = [&](int r) -> int {
        if (!causal || r >= R) return n;
        const ky_i64 last = (ky_i64)(r % seq_q) + seq_kv - seq_q + 1 - j0;
        return (int)(last < 0 ? 0 : (last > n ? n : last));
    };
    const int seen0 = seen(g), seen1 = seen(g + 8);

    // Tile `tile` of K and V into its stage: thread tid copies chunk c = idx % CPR of row
    // idx / CPR for idx = tid + i THREADS; rows past the split's keys are zero-filled (nothing
    // read: the source is the split's first row).
    const ky_i64 kv_row = (ky_i64)heads_kv * D;
    const ky_u16* kb = k + (b * seq_kv + j0) * kv_row + (ky_i64)hkv * D;
    const ky_u16* vb = v + (b * seq_kv + j0) * kv_row + (ky_i64)hkv * D;
    const ky_u32 s0 = (ky_u32)__cvta_generic_to_shared(smem);
    auto load = [&](int tile) {
        const ky_u32 st = s0 + (ky_u32)((tile % STAGES) * S::STAGE);
        const int key0 = tile * BN;
#pragma unroll
        for (int i = 0; i < BN * CPR / THREADS; ++i) {
            const int idx = tid + i * THREADS;
            const int r = idx / CPR, c = idx % CPR;
            const bool in = key0 + r < n;
            const ky_i64 off = in ? (ky_i64)(key0 + r) * kv_row + c * 8 : 0;
            const ky_u32 d = st + (ky_u32)(r * ROW + ((c ^ (r & 7)) << 4));
            cp_async16(d, kb + off, in ? 16u : 0u);
            cp_async16(d + (ky_u32)S::TILE, vb + off, in ? 16u : 0u);
        }
    };

    // Prologue: the first STAGES - 1 tiles (a group each, empty past the last tile, so the
    // wait below counts the same groups everywhere), issued before anything else waits.
#pragma unroll
    for (int st = 0; st < STAGES - 1; ++st) {
        if (st < tiles) load(st);
        cp_async_commit();
    }

    // q fragments (A of Q K^T) for the whole split: a0 (row g, k 2t, 2t + 1), a1 (row g + 8),
    // a2 / a3 the same at k + 8, per k16 step; rows past R are zero.
    auto q_row = [&](int r) -> const ky_u16* {
        const int gi = r / seq_q, i = r - gi * seq_q;
        return q + ((b * seq_q + i) * heads_q + (ky_i64)hkv * G + gi) * D;
    };
    const bool in0 = g < R, in1 = g + 8 < R;
    const ky_u16* q0 = in0 ? q_row(g) : q;
    const ky_u16* q1 = in1 ? q_row(g + 8) : q;
    ky_u32 qf[KS][4];
#pragma unroll
    for (int ks = 0; ks < KS; ++ks) {
        const int c = 16 * ks + 2 * t;
        qf[ks][0] = in0 ? *(const ky_u32*)(q0 + c) : 0u;
        qf[ks][1] = in1 ? *(const ky_u32*)(q1 + c) : 0u;
        qf[ks][2] = in0 ? *(const ky_u32*)(q0 + c + 8) : 0u;
        qf[ks][3] = in1 ? *(const ky_u32*)(q1 + c + 8) : 0u;
    }

    // ldmatrix lane offsets in a stage (attention.cu's, for this warp's KW keys):
    //   K ([key][d], non-transposed): for k16 step i and 16 keys: key lane % 8 + 8 (lane / 16),
    //     chunk 2 i + (lane / 8) % 2 = b0 b1 of two n8 tiles;
    //   V ([key][d], transposed): for 16 keys and d8 tiles 2 i, 2 i + 1: key lane % 16, chunk
    //     2 i + lane / 16.
    // The physical chunk of logical chunk 2 i + hi in row r is 8 (i / 4) + ((2 (i % 4)) ^ x),
    // x = hi ^ (r % 8): four per-lane offsets plus immediates.
    const int l7 = lane & 7;
    const int xk = ((lane >> 3) & 1) ^ l7;
    const int xv = (lane >> 4) ^ l7;
    ky_u32 k_off[4], v_off[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        k_off[i] = (ky_u32)((warp * KW + l7 + ((lane >> 4) << 3)) * ROW + (((2 * i) ^ xk) << 4));
        v_off[i] = (ky_u32)(S::TILE + (warp * KW + (lane & 15)) * ROW + (((2 * i) ^ xv) << 4));
    }

    float o[DT][4];
#pragma unroll
    for (int j = 0; j < DT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) o[j][e] = 0.0f;
    // Running max (base-2 units of scaled scores) of rows g and g + 8, and this thread's part
    // of their sums.
    float m[2] = {ADM_NEG_INF, ADM_NEG_INF};
    float l[2] = {0.0f, 0.0f};

    for (int tile = 0; tile < tiles; ++tile) {
        // Tile `tile` has landed (this thread's copies; after the barrier everyone's), and every
        // warp is done with tile - 1, whose stage the next copies overwrite.
        cp_async_wait<STAGES - 2>();
        __syncthreads();
        if (tile + STAGES - 1 < tiles) load(tile + STAGES - 1);
        cp_async_commit();
        const ky_u32 st = s0 + (ky_u32)((tile % STAGES) * S::STAGE);

        // S = Q K^T over this warp's KW keys.
        float sc[NT][4];
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) sc[j][e] = 0.0f;
#pragma unroll
        for (int ks = 0; ks < KS; ++ks) {
#pragma unroll
            for (int np = 0; np < NT / 2; ++np) {
                ky_u32 kf[4];
                ldmatrix_x4(kf, st + k_off[ks & 3] + (ky_u32)(np * 16 * ROW + (ks >> 2) * 128));
                Mma<T>::run(sc[2 * np], qf[ks], kf[0], kf[1]);
                Mma<T>::run(sc[2 * np + 1], qf[ks], kf[2], kf[3]);
            }
        }

        // Scale to base 2, mask (element (j, 2 hh + e) is key 8 j + 2 t + e of the warp's keys,
        // row g + 8 hh), and each row's max over the thread's elements in a fixed tree, then
        // over the quad (xor butterfly: the four lanes get the same value).
        const int key0 = tile * BN + warp * KW;
        const int rel[2] = {seen0 - key0, seen1 - key0};
        float alpha[2], m_use[2];
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
            float x[2 * NT];
#pragma unroll
            for (int j = 0; j < NT; ++j) {
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    float y = sc[j][2 * hh + e] * scale_log2;
                    if (8 * j + 2 * t + e >= rel[hh]) y = ADM_NEG_INF;
                    sc[j][2 * hh + e] = y;
                    x[2 * j + e] = y;
                }
            }
#pragma unroll
            for (int w = 1; w < 2 * NT; w *= 2)
#pragma unroll
                for (int i = 0; i + w < 2 * NT; i += 2 * w) x[i] = fmaxf(x[i], x[i + w]);
            float mx = x[0];
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float m_old = m[hh];
            const float m_new = fmaxf(m_old, mx);
            m_use[hh] = m_new == ADM_NEG_INF ? 0.0f : m_new;
            const float a = ky_ex2_approx(m_old - m_use[hh]);
            alpha[hh] = m_old == m_new ? 1.0f : a;
            m[hh] = m_new;
        }
        // Rescale O only when some row's max moved (multiplying by 1 would change no bit).
        if (__any_sync(0xffffffffu, alpha[0] != 1.0f || alpha[1] != 1.0f)) {
#pragma unroll
            for (int j = 0; j < DT; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) o[j][e] *= alpha[e >> 1];
        }
        // P = 2^(x - m), this thread's row sums (a fixed pairwise tree), P as A fragments.
        ky_u32 pf[PS][4];
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
            float sum[NT];
#pragma unroll
            for (int j = 0; j < NT; ++j) {
                const float p0 = ky_ex2_approx(sc[j][2 * hh] - m_use[hh]);
                const float p1 = ky_ex2_approx(sc[j][2 * hh + 1] - m_use[hh]);
                sc[j][2 * hh] = p0;
                sc[j][2 * hh + 1] = p1;
                sum[j] = p0 + p1;
            }
#pragma unroll
            for (int w = 1; w < NT; w *= 2)
#pragma unroll
                for (int j = 0; j + w < NT; j += 2 * w) sum[j] += sum[j + w];
            l[hh] = l[hh] * alpha[hh] + sum[0];
        }
        // A fragment of k16 step kk: a0 = (row g, keys 16 kk + 2 t, + 1) = S tile 2 kk c0 c1,
        // a1 = (row g + 8) = c2 c3, a2 / a3 = the same of S tile 2 kk + 1.
#pragma unroll
        for (int kk = 0; kk < PS; ++kk) {
            pf[kk][0] = Mma<T>::pack(sc[2 * kk][0], sc[2 * kk][1]);
            pf[kk][1] = Mma<T>::pack(sc[2 * kk][2], sc[2 * kk][3]);
            pf[kk][2] = Mma<T>::pack(sc[2 * kk + 1][0], sc[2 * kk + 1][1]);
            pf[kk][3] = Mma<T>::pack(sc[2 * kk + 1][2], sc[2 * kk + 1][3]);
        }

        // O += P V.
#pragma unroll
        for (int kk = 0; kk < PS; ++kk) {
#pragma unroll
            for (int dp = 0; dp < DT / 2; ++dp) {
                ky_u32 vf[4];
                ldmatrix_x4_trans(vf, st + v_off[dp & 3] + (ky_u32)(kk * 16 * ROW + (dp >> 2) * 128));
                Mma<T>::run(o[2 * dp], pf[kk], vf[0], vf[1]);
                Mma<T>::run(o[2 * dp + 1], pf[kk], vf[2], vf[3]);
            }
        }
    }

    // The warps' states to shared memory (the stages are free once every copy has landed and
    // every warp has left the loop): the row sums over the quad first (xor butterfly).
    cp_async_wait_all();
    __syncthreads();
    float* ms = (float*)smem;                 // [WARPS][16] maxima
    float* ls = ms + S::WARPS * 16;           // [WARPS][16] sums
    float* os = ls + S::WARPS * 16;           // [WARPS][16][OROW] O
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
        float x = l[hh];
        x += __shfl_xor_sync(0xffffffffu, x, 1);
        x += __shfl_xor_sync(0xffffffffu, x, 2);
        const int r = g + 8 * hh;
        if (t == 0) {
            ms[warp * 16 + r] = m[hh];
            ls[warp * 16 + r] = x;
        }
        float* orow = os + (warp * 16 + r) * S::OROW + 2 * t;
#pragma unroll
        for (int j = 0; j < DT; ++j) {
            orow[8 * j] = o[j][2 * hh];
            orow[8 * j + 1] = o[j][2 * hh + 1];
        }
    }
    __syncthreads();

    // Merge in warp order and write slot (row, s): m, l, O[D].
    for (int idx = tid; idx < R * D; idx += THREADS) {
        const int r = idx / D, d = idx - r * D;
        float mx = ADM_NEG_INF;
#pragma unroll
        for (int w = 0; w < S::WARPS; ++w) mx = fmaxf(mx, ms[w * 16 + r]);
        float acc = 0.0f, sum = 0.0f;
#pragma unroll
        for (int w = 0; w < S::WARPS; ++w) {
            const float mw = ms[w * 16 + r];
            const float ww = mw == ADM_NEG_INF ? 0.0f : ky_ex2_approx(mw - mx);
            acc = fmaf(ww, os[(w * 16 + r) * S::OROW + d], acc);
            sum = fmaf(ww, ls[w * 16 + r], sum);
        }
        const int gi = r / seq_q, i = r - gi * seq_q;
        const ky_i64 row = (b * heads_q + (ky_i64)hkv * G + gi) * seq_q + i;
        float* slot = part + (row * splits + s) * (D + 2);
        slot[2 + d] = acc;
        if (d == 0) {
            slot[0] = mx;
            slot[1] = sum;
        }
    }
}

// CTA (row, 32-column slice) of the pass: merges the row's `splits` slots in a fixed order.
// Dynamic shared memory: `splits` floats of weights.
template <typename T>
__device__ __forceinline__ void combine(const float* __restrict__ part, ky_u16* __restrict__ out,
                                        float* __restrict__ lse, int seq_q, int heads_q,
                                        int head_dim, ky_i64 splits) {
    constexpr int WARPS = ADM_COMBINE_THREADS / 32;
    extern __shared__ __align__(16) float ky_adm_w[];
    __shared__ float red[WARPS];
    __shared__ float cols[WARPS][32];
    const int D = head_dim, slices = D / 32;
    const ky_i64 row = blockIdx.x / slices;
    const int slice = (int)(blockIdx.x % slices);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const ky_i64 slot = D + 2;
    const float* p = part + row * splits * slot;

    // M: each thread's splits, then the warp's (butterfly), then the warps'.
    float mx = ADM_NEG_INF;
    for (ky_i64 s = tid; s < splits; s += ADM_COMBINE_THREADS) mx = fmaxf(mx, p[s * slot]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if (lane == 0) red[warp] = mx;
    __syncthreads();
    mx = red[0];
#pragma unroll
    for (int w = 1; w < WARPS; ++w) mx = fmaxf(mx, red[w]);
    __syncthreads();  // red is reused below

    // Weights w_s = 2^(m_s - M) (0 for a split that saw no key) and l = sum w_s l_s: each
    // thread's splits in order, a xor butterfly, the warps in order.
    float l = 0.0f;
    for (ky_i64 s = tid; s < splits; s += ADM_COMBINE_THREADS) {
        const float m = p[s * slot];
        const float w = m == ADM_NEG_INF ? 0.0f : exp2f(m - mx);
        ky_adm_w[s] = w;
        l = fmaf(w, p[s * slot + 1], l);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
    if (lane == 0) red[warp] = l;
    __syncthreads();
    l = red[0];
#pragma unroll
    for (int w = 1; w < WARPS; ++w) l += red[w];

    // Column d of the slice: warp u sums splits u, u + WARPS, ... in order; the warps in order.
    const int d = slice * 32 + lane;
    float acc = 0.0f;
#pragma unroll 8
    for (ky_i64 s = warp; s < splits; s += WARPS) acc = fmaf(ky_adm_w[s], p[s * slot + 2 + d], acc);
    cols[warp][lane] = acc;
    __syncthreads();
    if (warp == 0) {
        float a = cols[0][lane];
#pragma unroll
        for (int w = 1; w < WARPS; ++w) a += cols[w][lane];
        // row = (b Hq + hq) Sq + i; out is [B, Sq, Hq, D].
        const ky_i64 i = row % seq_q, bh = row / seq_q;
        const ky_i64 hq = bh % heads_q, b = bh / heads_q;
        out[((b * seq_q + i) * heads_q + hq) * (ky_i64)D + d] =
            Elem<T>::from_f32(l > 0.0f ? a / l : 0.0f);
        if (lse != nullptr && slice == 0 && lane == 0) {
            // lse is [B, Hq, Sq]: the row index itself.
            lse[row] = l > 0.0f ? (mx + log2f(l)) * ADM_LN2 : ADM_NEG_INF;
        }
    }
}

}  // namespace adm

// Entry points. Split kernel: grid (batch_in_pass * Hkv * splits), adm::Shape<D>::THREADS
// threads, adm::Shape<D>::BYTES of dynamic shared memory; `part` holds (batch_in_pass * Hq *
// Sq * splits) slots of D + 2 floats; q, k, v point at the pass's first batch entry; scale_log2
// = scale log2(e). Combine: grid (rows * D / 32), ADM_COMBINE_THREADS threads, splits * 4 bytes
// of dynamic shared memory, rows = batch_in_pass * Hq * Sq; out and lse (may be null) at the
// pass's first batch entry.
#define ADM_SPLIT(NAME, T, D)                                                                  \
    extern "C" __global__ void __launch_bounds__(adm::Shape<D>::THREADS, 2) NAME(              \
        const void* q, const void* k, const void* v, void* part, long long seq_q,             \
        long long seq_kv, long long heads_q, long long heads_kv, long long splits,            \
        long long chunk, float scale_log2, long long causal) {                                \
        adm::split<T, D>((const ky_u16*)q, (const ky_u16*)k, (const ky_u16*)v, (float*)part,   \
                         (int)seq_q, seq_kv, (int)heads_q, (int)heads_kv, splits, (int)chunk, \
                         scale_log2, (int)causal);                                            \
    }
#define ADM_COMBINE(NAME, T)                                                                   \
    extern "C" __global__ void __launch_bounds__(ADM_COMBINE_THREADS) NAME(                     \
        const void* part, void* out, void* lse, long long seq_q, long long heads_q,           \
        long long head_dim, long long splits) {                                               \
        adm::combine<T>((const float*)part, (ky_u16*)out, (float*)lse, (int)seq_q,             \
                        (int)heads_q, (int)head_dim, splits);                                  \
    }

ADM_SPLIT(attention_decode_mma_f16_d64, ky_f16, 64)
ADM_SPLIT(attention_decode_mma_f16_d128, ky_f16, 128)
ADM_SPLIT(attention_decode_mma_f16_d256, ky_f16, 256)
ADM_SPLIT(attention_decode_mma_bf16_d64, ky_bf16, 64)
ADM_SPLIT(attention_decode_mma_bf16_d128, ky_bf16, 128)
ADM_SPLIT(attention_decode_mma_bf16_d256, ky_bf16, 256)
ADM_COMBINE(attention_decode_mma_f16_combine, ky_f16)
ADM_COMBINE(attention_decode_mma_bf16_combine, ky_bf16)
