// kernels/attention.cu: fused attention forward (FlashAttention-2 style) on tensor cores.
// Rust side: crates/cuda/src/ops/attention.rs (`cuda.attention`), which documents the design.
//
//   out[b, i, h, :] = sum_j softmax_j(scale * q[b, i, h, :] . k[b, j, hk, :] + mask) v[b, j, hk, :]
//   lse[b, h, i]    = ln sum_j exp(scale * q . k_j + mask)               (natural log, f32)
//
// q [B, Sq, Hq, D], k and v [B, Skv, Hkv, D], out [B, Sq, Hq, D], contiguous, f16 or bf16;
// hk = h / (Hq / Hkv) (GQA, MQA); D = 64, 128 or 256. Causal masking is bottom-right aligned:
// query i sees keys j <= i + Skv - Sq. A query that sees no key gets out = 0 and lse = -inf.
//
// One configuration per head dim (Cfg<D>; never per Sq, Skv, B, H or device), sm_80 and newer:
// - one block of THREADS threads (THREADS / 32 warps) per (query block of BM rows, q head,
//   batch entry); warp w owns query rows WM w .. WM w + WM - 1 of the block (MT = WM / 16 m16
//   tiles), whole rows, so a row's softmax never leaves its warp (each row lives in one quad
//   of lanes). D = 64 and 128: 4 warps, BM = 128, WM = 32, BN = 64; D = 256: the tiling that
//   ATTN_D256 names when the module is built (below; by default 4 warps, BM = 64, WM = 16,
//   BN = 32);
// - key tiles of BN keys in increasing order; K and V tiles double-buffered in shared
//   memory with cp.async (tile j + 1 loads while tile j is used; one barrier per tile); the Q
//   tile is loaded once and read back with ldmatrix at every key tile (WM rows x D per warp
//   do not fit in registers next to the accumulators);
// - S = Q K^T by mma.sync.m16n8k16 (K fragments by ldmatrix from [key][d] rows), scaled by
//   scale * log2(e) in f32, masked (-inf), online softmax in base 2 (row max over the quad by
//   shuffles; a guarded max, so a row that has seen no key yet computes exp2(-inf - 0) = 0,
//   never (-inf) - (-inf)); P rounded to the dtype and used directly from the S accumulator
//   registers as the A fragment of O += P V (V fragments by ldmatrix.trans from [key][d]
//   rows); each thread keeps its part of the row sums (in shared memory: the 192 f32
//   accumulators of O and S at D = 128, 144 or 160 at D = 256, fill the registers), summed
//   over the quad once, at the end;
// - shared rows are D elements whose 16-byte chunks are XOR-swizzled by (row % 8), so the 8
//   rows an ldmatrix phase reads fall in 8 distinct bank groups, and cp.async stores too. The
//   XOR stays inside groups of 8 chunks, so D / 8 must be a multiple of 8 (D = 96 is not).
//
// Every output element is computed by one thread in a fixed order that depends on (Sq, Skv,
// D), the row's position and the build's ATTN_D256 only: no split over keys, no atomics, no
// choice of configuration by size or device. The kernels are deterministic and
// batch-invariant.
#include "common.cuh"
#include "mma.cuh"

namespace attn {

// The tiling of head dim 256, fixed when the module is built (crates/cuda/src/ops/attention.rs
// reads this line: `D256_TILING`, whose `tiling` and `shared_bytes` launch it). Every choice
// gives a warp one m16 tile of 16 whole rows (two would need 256 f32 of O per thread):
//   0: 4 warps (BM = 64),  32-key tiles:  97 KiB of shared memory (every sm_80+ device);
//   1: 8 warps (BM = 128), 32-key tiles: 130 KiB (sm_80 / sm_90's opt-in; not sm_86 / 89 / 120);
//   2: 4 warps (BM = 64),  64-key tiles: 161 KiB (sm_80 / sm_90);
//   3: 8 warps (BM = 128), 64-key tiles: 194 KiB (sm_90 only: A100 has 163 KiB).
// 0 and 1 give every row the same bits (a row's warp, key tiles and arithmetic are the same;
// a block of 128 rows visits, for its first 64, only key tiles that are wholly masked for
// them, which change no bit); so do 2 and 3, which differ from 0 and 1 (64-key steps of the
// online softmax). NVRTC builds take the line below; `nvcc -DATTN_D256=N` (register and PTX
// checks) overrides it, and the Rust side would not know: never pass it to NVRTC.
#ifndef ATTN_D256
#define ATTN_D256 0
#endif

// A tiling: THREADS = 32 WARPS threads per block, BM query rows per block, WM = BM / WARPS per
// warp (MT = WM / 16 m16 tiles), BN keys per tile, and the blocks per SM the registers are
// budgeted for (__launch_bounds__). A thread holds MT * D / 2 f32 of O and MT * BN / 2 of S.
template <int WARPS, int BM_, int BN_, int MIN_BLOCKS_>
struct Tiling {
    static constexpr int THREADS = 32 * WARPS;
    static constexpr int BM = BM_;
    static constexpr int WM = BM_ / WARPS;
    static constexpr int BN = BN_;
    static constexpr int MIN_BLOCKS = MIN_BLOCKS_;
};

// The tiling of head dim D (one per head dim; never per Sq, Skv, B or H). D = 64 and 128: 4
// warps of 32 rows and 64-key tiles (O and S: 128 + 64 f32 per thread at D = 128, 64 + 64 at
// D = 64; two blocks per SM). D = 256: a warp owns one m16 tile (128 + BN / 2 f32), and the
// tiling is ATTN_D256's (0, the default, fits the 99 KiB of sm_86 / sm_89 / sm_120, with two
// blocks per H100 SM as at D = 128; the others need more shared memory per block: one block
// per SM, 8 warps for 1 and 3).
template <int D>
struct Cfg : Tiling<4, 128, 64, 2> {};
#if ATTN_D256 == 0
template <>
struct Cfg<256> : Tiling<4, 64, 32, 2> {};
#elif ATTN_D256 == 1
template <>
struct Cfg<256> : Tiling<8, 128, 32, 1> {};
#elif ATTN_D256 == 2
template <>
struct Cfg<256> : Tiling<4, 64, 64, 1> {};
#elif ATTN_D256 == 3
template <>
struct Cfg<256> : Tiling<8, 128, 64, 1> {};
#else
#error "ATTN_D256 is 0, 1, 2 or 3"
#endif

// Dynamic shared memory: the Q tile, 2 stages of (K tile, V tile) (16-bit elements, rows of
// D with swizzled chunks, no padding), then each thread's partial row sums (MT * 2 f32 per
// thread: kept here rather than in registers, which the accumulators fill).
template <int D>
struct Smem {
    typedef Cfg<D> C;
    static constexpr int ROW = D * 2;
    static constexpr int Q_BYTES = C::BM * ROW;
    static constexpr int KV_BYTES = C::BN * ROW;
    static constexpr int STAGE_BYTES = 2 * KV_BYTES;
    static constexpr int SUM_OFFSET = Q_BYTES + 2 * STAGE_BYTES;
    static constexpr int BYTES = SUM_OFFSET + C::WM / 16 * 2 * C::THREADS * 4;
};
// The Rust side (`tiling` and `shared_bytes` in attention.rs) launches with these; its unit
// tests find each line here (head dim 256: one line per ATTN_D256 choice).
#define ATTN_STEP "keep crates/cuda/src/ops/attention.rs in step"
static_assert(Cfg<64>::THREADS == 128 && Cfg<64>::BM == 128 && Cfg<64>::WM == 32 &&
                  Cfg<64>::BN == 64,
              ATTN_STEP);
static_assert(Cfg<128>::THREADS == 128 && Cfg<128>::BM == 128 && Cfg<128>::WM == 32 &&
                  Cfg<128>::BN == 64,
              ATTN_STEP);
static_assert(ATTN_D256 != 0 || (Cfg<256>::THREADS == 128 && Cfg<256>::BM == 64 &&
                                 Cfg<256>::WM == 16 && Cfg<256>::BN == 32),
              ATTN_STEP);
static_assert(ATTN_D256 != 1 || (Cfg<256>::THREADS == 256 && Cfg<256>::BM == 128 &&
                                 Cfg<256>::WM == 16 && Cfg<256>::BN == 32),
              ATTN_STEP);
static_assert(ATTN_D256 != 2 || (Cfg<256>::THREADS == 128 && Cfg<256>::BM == 64 &&
                                 Cfg<256>::WM == 16 && Cfg<256>::BN == 64),
              ATTN_STEP);
static_assert(ATTN_D256 != 3 || (Cfg<256>::THREADS == 256 && Cfg<256>::BM == 128 &&
                                 Cfg<256>::WM == 16 && Cfg<256>::BN == 64),
              ATTN_STEP);
static_assert(Smem<64>::BYTES == 51200, ATTN_STEP);
static_assert(Smem<128>::BYTES == 100352, ATTN_STEP);
static_assert(ATTN_D256 != 0 || Smem<256>::BYTES == 99328, ATTN_STEP);
static_assert(ATTN_D256 != 1 || Smem<256>::BYTES == 133120, ATTN_STEP);
static_assert(ATTN_D256 != 2 || Smem<256>::BYTES == 164864, ATTN_STEP);
static_assert(ATTN_D256 != 3 || Smem<256>::BYTES == 198656, ATTN_STEP);

// ---- PTX: the shared mma.sync wrappers (mma.cuh) and exp2 ---------------------------------

using namespace ky_mma;

// 2^x (MUFU.EX2): exp2(-inf) = +0, exp2(0) = 1.
__device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// ---- end of PTX ----------------------------------------------------------------------

#define ATTN_NEG_INF (-__int_as_float(0x7f800000))
constexpr float LOG2E = 1.4426950408889634f;
constexpr float LN2 = 0.6931471805599453f;

extern __shared__ __align__(128) unsigned char smem[];

// The thread index, read anew where it is used (volatile: not hoisted out of the key loop), so
// the copy offsets derived from it are recomputed at each tile instead of occupying registers
// through the math (the accumulators leave none to spare).
__device__ __forceinline__ int fresh_tid() {
    ky_u32 t;
    asm volatile("mov.u32 %0, %%tid.x;\n" : "=r"(t));
    return (int)t;
}

// Global -> shared copies of whole tiles: thread `tid` moves 16-byte chunks c + j TPR (j <
// CH) of rows r = tid / TPR + i * RS, c = tid % TPR (TPR = min(D / 8, 16) threads per row,
// CH = D / 8 / TPR chunks each: 1, or 2 at D = 256; RS = THREADS / TPR (the head dim's
// Cfg<D>::THREADS), a multiple of 8, so
// all of a thread's rows share r % 8 and its chunks their swizzled columns: chunk c + j TPR of
// row r sits at (c ^ (r % 8)) + j TPR, since TPR is a multiple of 8). Rows at or past the
// valid count are zero-filled (and read nothing; their source address is the tensor's base).
template <int D>
struct Copy {
    static constexpr int CPR = D / 8;
    static constexpr int TPR = CPR < 16 ? CPR : 16;
    static constexpr int CH = CPR / TPR;
    static constexpr int RS = Cfg<D>::THREADS / TPR;
    static_assert(RS % 8 == 0, "a thread's rows share row % 8");
    static_assert(TPR % 8 == 0 && CH * TPR == CPR, "whole rows, a thread's chunks 8-aligned apart");
    int r;       // this thread's first row
    int c;       // its first chunk
    ky_u32 dst;  // its first chunk's byte offset in a tile

    __device__ __forceinline__ explicit Copy(int tid) {
        r = tid / TPR;
        c = tid % TPR;
        dst = (ky_u32)(r * D * 2 + ((c ^ (r & 7)) << 4));
    }

    // ROWS rows of `a` (and, when TWO, the same rows of `b` to `s + b_off`) into the tile at
    // shared address `s`: the thread's first row at element `off`, each next one `step`
    // elements further; `left` = valid rows - r.
    template <int ROWS, bool TWO>
    __device__ __forceinline__ void rows(ky_u32 s, const ky_u16* a, const ky_u16* b,
                                         ky_u32 b_off, ky_i64 off, ky_i64 step,
                                         int left) const {
        static_assert(ROWS % RS == 0, "whole passes");
#pragma unroll
        for (int i = 0; i < ROWS / RS; ++i) {
            const bool in = i * RS < left;
#pragma unroll
            for (int j = 0; j < CH; ++j) {
                const ky_i64 o = in ? off + i * step + j * TPR * 8 : 0;
                const ky_u32 d = s + dst + (ky_u32)(i * RS * D * 2 + j * TPR * 16);
                cp_async16(d, a + o, in ? 16u : 0u);
                if (TWO) cp_async16(d + b_off, b + o, in ? 16u : 0u);
            }
        }
    }
};

// Scales this thread's scores of one key tile to base 2 (x = s * scale * log2 e, in place),
// masks (MASK: element (mt, n, 2 hh + e), i.e. key 8 n + 2 t + e of the tile, is -inf when it
// is not below rel[mt][hh], the row's visible keys in the tile), and takes each row's max over
// the thread's 2 NT elements in a fixed tree.
template <bool MASK, int MT, int NT>
__device__ __forceinline__ void scale_max(float (&s)[MT][NT][4], float (&mx)[MT][2],
                                          float scale_log2, const int (&rel)[MT][2], int t) {
    static_assert((NT & (NT - 1)) == 0, "a power-of-two tree");
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
            float v[2 * NT];
#pragma unroll
            for (int n = 0; n < NT; ++n) {
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    float x = s[mt][n][2 * hh + e] * scale_log2;
                    if (MASK && 8 * n + 2 * t + e >= rel[mt][hh]) x = ATTN_NEG_INF;
                    s[mt][n][2 * hh + e] = x;
                    v[2 * n + e] = x;
                }
            }
#pragma unroll
            for (int w = 1; w < 2 * NT; w *= 2)
#pragma unroll
                for (int i = 0; i + w < 2 * NT; i += 2 * w) v[i] = fmaxf(v[i], v[i + w]);
            mx[mt][hh] = v[0];
        }
    }
}

template <typename T, int D>
__device__ __forceinline__ void attention(const ky_u16* __restrict__ q,
                                          const ky_u16* __restrict__ k,
                                          const ky_u16* __restrict__ v, ky_u16* __restrict__ out,
                                          float* __restrict__ lse, ky_i64 seq_q, ky_i64 seq_kv,
                                          ky_i64 heads_q, ky_i64 heads_kv, float scale,
                                          int flags) {
    typedef Smem<D> S;
    constexpr int THREADS = Cfg<D>::THREADS;
    constexpr int BM = Cfg<D>::BM, WM = Cfg<D>::WM, BN = Cfg<D>::BN;
    constexpr int MT = WM / 16;  // m16 tiles per warp
    static_assert(BM == (THREADS / 32) * WM && WM % 16 == 0, "each warp owns WM whole rows");
    constexpr int ROW = S::ROW;
    constexpr int NT = BN / 8;   // n8 tiles of S per m16 tile
    constexpr int DT = D / 8;    // n8 tiles of O per m16 tile
    constexpr int KS = D / 16;   // k16 steps of Q K^T
    constexpr int PS = BN / 16;  // k16 steps of P V
    static_assert(NT % 2 == 0 && DT % 2 == 0, "fragments loaded in pairs");
    static_assert(D % 64 == 0, "the swizzle permutes 16-byte chunks in groups of 8");

    const bool causal = (flags & 1) != 0;
    const bool want_lse = (flags & 2) != 0;
    const int Sq = (int)seq_q, Skv = (int)seq_kv;

    const int nqb = (Sq + BM - 1) / BM;
    // Causal: the heaviest query blocks first (scheduling only; no effect on any bits).
    const int qb = causal ? nqb - 1 - (int)blockIdx.x : (int)blockIdx.x;
    const int q0 = qb * BM;
    const int h = blockIdx.y;
    const ky_i64 b = blockIdx.z;
    const ky_i64 hk = h / (heads_q / heads_kv);  // the key/value head (GQA)

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;

    // Keys seen by query row `row` (bottom-right causal): min(Skv, max(0, row + Skv - Sq + 1)).
    // The Rust side keeps Sq and Skv below 2^30, so these sums fit an int.
    const int shift = Skv - Sq + 1;
    auto seen = [&](int row) -> int { return causal ? min(max(row + shift, 0), Skv) : Skv; };
    // The block's first row sees the fewest keys, its last real row the most.
    const int seen_lo = seen(q0);
    const int seen_hi = seen(min(q0 + BM, Sq) - 1);
    // This thread's first row (row g of its warp's first m16 tile); its rows are
    // row0 + 16 mt + 8 hh.
    const int row0 = q0 + warp * WM + g;

    const ky_i64 q_stride = heads_q * D, kv_stride = heads_kv * D;
    const ky_u32 s_q = (ky_u32)__cvta_generic_to_shared(smem);
    const ky_u32 s_kv = s_q + (ky_u32)S::Q_BYTES;
    // Copies key tile `kv1 / BN` (keys kv1 .. kv1 + BN - 1) of K and V into the stage at `st`.
    auto load_kv = [&](ky_u32 st, int kv1) {
        const Copy<D> cp(fresh_tid());
        const ky_i64 off = ((b * seq_kv + kv1 + cp.r) * heads_kv + hk) * D + cp.c * 8;
        cp.template rows<BN, true>(st, k, v, S::KV_BYTES, off, kv_stride * Copy<D>::RS,
                                   Skv - kv1 - cp.r);
    };

    // ldmatrix lane addresses (bytes). Row r's logical 16-byte chunk c sits at physical chunk
    // c ^ (r % 8); every row a lane addresses has r % 8 == lane % 8. Each x4 load reads four
    // 8x8 matrices of rows R + 0-7 or R + 8-15 (R a multiple of 16) at logical chunk 2 i or
    // 2 i + 1; for chunk 2 i + hi the physical chunk is (2 i) ^ x with x = hi ^ (lane % 8),
    // i.e. 8 (i / 4) + ((2 (i % 4)) ^ x): four per-lane offsets plus immediates.
    //   Q (non-transposed): matrices (rows 0-7, chunk 2i) (8-15, 2i) (0-7, 2i+1) (8-15, 2i+1)
    //     = a0 a1 a2 a3 of m16 tile R / 16, k16 step i: row lane % 16, hi = lane / 16.
    //   K ([key][d], non-transposed): (keys 0-7, chunk 2i) (0-7, 2i+1) (8-15, 2i) (8-15, 2i+1)
    //     = b0 b1 of n8 tile R / 8, b0 b1 of n8 tile R / 8 + 1, for k16 step i:
    //     key lane % 8 + 8 (lane / 16), hi = (lane / 8) % 2.
    //   V ([key][d], transposed): (keys 0-7, chunk 2i) (8-15, 2i) (0-7, 2i+1) (8-15, 2i+1)
    //     = b0 b1 of d8 tile 2i, b0 b1 of d8 tile 2i + 1, for the k16 step of keys R + 0-15:
    //     key lane % 16, hi = lane / 16 (Q's lane offsets less the warp's first row).
    const int l7 = lane & 7;
    const int xq = (lane >> 4) ^ l7;
    const int xk = ((lane >> 3) & 1) ^ l7;
    ky_u32 q_addr[4], k_off[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        q_addr[i] = s_q + (ky_u32)((warp * WM + (lane & 15)) * ROW + (((2 * i) ^ xq) << 4));
        k_off[i] = (ky_u32)((l7 + ((lane >> 4) << 3)) * ROW + (((2 * i) ^ xk) << 4));
    }
    // A V tile's lane address is q_addr + (tile address - this warp's first Q row).
    const ky_u32 q_warp = s_q + (ky_u32)(warp * WM * ROW);

    float o[MT][DT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int j = 0; j < DT; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) o[mt][j][e] = 0.0f;
    // Running max of row g + 8 hh of m16 tile mt (base-2 units of scaled scores), and this
    // thread's part of that row's sum, at row_sum[(2 mt + hh) * THREADS] (its own slots).
    float m[MT][2];
    float* row_sum = (float*)(smem + S::SUM_OFFSET) + tid;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
            m[mt][hh] = ATTN_NEG_INF;
            row_sum[(2 * mt + hh) * THREADS] = 0.0f;
        }
    const float scale_log2 = scale * LOG2E;

    if (seen_hi > 0) {
        const Copy<D> cp(tid);
        const ky_i64 off = ((b * seq_q + q0 + cp.r) * heads_q + h) * D + cp.c * 8;
        cp.template rows<BM, false>(s_q, q, q, 0, off, q_stride * Copy<D>::RS, Sq - q0 - cp.r);
        load_kv(s_kv, 0);
        cp_async_commit();
    }

    // Key tiles kv0 = 0, BN, ... below seen_hi (tiles past it are masked for every row of the
    // block: skipping them changes no bit), alternating between the two stages.
    for (int kv0 = 0, stage = 0; kv0 < seen_hi; kv0 += BN, stage ^= 1) {
        // This tile has landed (this thread's copies; after the barrier everyone's), and every
        // warp is done with the previous tile, whose stage the next copies overwrite.
        cp_async_wait_all();
        __syncthreads();
        if (kv0 + BN < seen_hi) {
            load_kv(s_kv + (ky_u32)((stage ^ 1) * S::STAGE_BYTES), kv0 + BN);
            cp_async_commit();
        }
        const ky_u32 s_k = s_kv + (ky_u32)(stage * S::STAGE_BYTES);
        const ky_u32 v_delta = s_k + (ky_u32)S::KV_BYTES - q_warp;

        // S = Q K^T.
        float s[MT][NT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int n = 0; n < NT; ++n)
#pragma unroll
                for (int e = 0; e < 4; ++e) s[mt][n][e] = 0.0f;
#pragma unroll
        for (int ks = 0; ks < KS; ++ks) {
            ky_u32 qf[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
                ldmatrix_x4(qf[mt], q_addr[ks & 3] + (ky_u32)(mt * 16 * ROW + (ks >> 2) * 128));
#pragma unroll
            for (int np = 0; np < NT / 2; ++np) {
                ky_u32 kf[4];
                ldmatrix_x4(kf, s_k + k_off[ks & 3] + (ky_u32)(np * 16 * ROW + (ks >> 2) * 128));
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    Mma<T>::run(s[mt][2 * np], qf[mt], kf[0], kf[1]);
                    Mma<T>::run(s[mt][2 * np + 1], qf[mt], kf[2], kf[3]);
                }
            }
        }

        // Scale to base 2, mask, and each row's max: over this thread's elements, then over
        // the quad (xor butterfly: the four lanes get the same value). Only tiles past the
        // first row's last key need the mask (one uniform branch around all four rows).
        float mx[MT][2];
        if (kv0 + BN > seen_lo) {
            int rel[MT][2];
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int hh = 0; hh < 2; ++hh)
                    rel[mt][hh] = seen(row0 + 16 * mt + 8 * hh) - kv0;
            scale_max<true>(s, mx, scale_log2, rel, t);
        } else {
            const int rel[MT][2] = {};
            scale_max<false>(s, mx, scale_log2, rel, t);
        }
        float alpha[MT][2];
        float m_use[MT][2];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
                float x = mx[mt][hh];
                x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
                x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
                const float m_old = m[mt][hh];
                const float m_new = fmaxf(m_old, x);
                // Guarded max: a row that has seen no key yet uses 0, so exp2(-inf - 0) = 0
                // (m_old - m_use is never (-inf) - (-inf)).
                m_use[mt][hh] = m_new == ATTN_NEG_INF ? 0.0f : m_new;
                // Exactly 1 when the max did not move (a fully masked tile changes nothing).
                const float a = ex2(m_old - m_use[mt][hh]);
                alpha[mt][hh] = m_old == m_new ? 1.0f : a;
                m[mt][hh] = m_new;
            }
        }
        // Rescale O only when some row's max moved (multiplying by 1 would change no bit).
        bool moved = false;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) moved |= alpha[mt][hh] != 1.0f;
        if (__any_sync(0xffffffffu, moved)) {
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int n = 0; n < DT; ++n)
#pragma unroll
                    for (int e = 0; e < 4; ++e) o[mt][n][e] *= alpha[mt][e >> 1];
        }
        // P = exp2(x - m), this thread's row sums, and P as A fragments of P V.
        ky_u32 pf[MT][PS][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
                // The row sum in a fixed pairwise tree (short dependency chains, so the values
                // die early instead of waiting for a 2 NT-long chain of additions).
                float part[NT];
#pragma unroll
                for (int n = 0; n < NT; ++n) {
                    const float p0 = ex2(s[mt][n][2 * hh] - m_use[mt][hh]);
                    const float p1 = ex2(s[mt][n][2 * hh + 1] - m_use[mt][hh]);
                    s[mt][n][2 * hh] = p0;
                    s[mt][n][2 * hh + 1] = p1;
                    part[n] = p0 + p1;
                }
#pragma unroll
                for (int w = 1; w < NT; w *= 2)
#pragma unroll
                    for (int n = 0; n + w < NT; n += 2 * w) part[n] += part[n + w];
                float* sum = row_sum + (2 * mt + hh) * THREADS;
                *sum = *sum * alpha[mt][hh] + part[0];
            }
            // A fragment of k16 step kk: a0 = (row g, keys 16kk + 2t, +1) = S tile 2kk c0 c1,
            // a1 = (row g + 8, same keys) = c2 c3, a2 / a3 = the same of S tile 2kk + 1.
#pragma unroll
            for (int kk = 0; kk < PS; ++kk) {
                pf[mt][kk][0] = Mma<T>::pack(s[mt][2 * kk][0], s[mt][2 * kk][1]);
                pf[mt][kk][1] = Mma<T>::pack(s[mt][2 * kk][2], s[mt][2 * kk][3]);
                pf[mt][kk][2] = Mma<T>::pack(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
                pf[mt][kk][3] = Mma<T>::pack(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
            }
        }

        // O += P V.
#pragma unroll
        for (int kk = 0; kk < PS; ++kk) {
#pragma unroll
            for (int dp = 0; dp < DT / 2; ++dp) {
                ky_u32 vf[4];
                ldmatrix_x4_trans(
                    vf, q_addr[dp & 3] + v_delta + (ky_u32)(kk * 16 * ROW + (dp >> 2) * 128));
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    Mma<T>::run(o[mt][2 * dp], pf[mt][kk], vf[0], vf[1]);
                    Mma<T>::run(o[mt][2 * dp + 1], pf[mt][kk], vf[2], vf[3]);
                }
            }
        }
    }

    // Epilogue: the row sum over the quad (a xor butterfly: the four lanes get the same bits),
    // O / l in the dtype (element (mt, n, 2 hh + e) is row g + 8 hh, column 8 n + 2 t + e),
    // and lse = ln(2^m l) = m ln 2 + ln l.
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
            float sum = row_sum[(2 * mt + hh) * THREADS];
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            const int row = row0 + mt * 16 + 8 * hh;
            if (row >= Sq) continue;
            // A row that saw no key: sum = 0, O = 0, out = 0.
            const float inv = sum > 0.0f ? __frcp_rn(sum) : 0.0f;
            ky_u16* o_row = out + ((b * seq_q + row) * heads_q + h) * D + 2 * t;
#pragma unroll
            for (int n = 0; n < DT; ++n) {
                *(ky_u32*)(o_row + 8 * n) =
                    Mma<T>::pack(o[mt][n][2 * hh] * inv, o[mt][n][2 * hh + 1] * inv);
            }
            if (want_lse && t == 0) {
                lse[(b * heads_q + h) * seq_q + row] =
                    sum > 0.0f ? m[mt][hh] * LN2 + logf(sum) : ATTN_NEG_INF;
            }
        }
    }
}

}  // namespace attn

// Entry points: attention_<dtype>_d<head dim>. flags: bit 0 causal, bit 1 write lse.
// Grid (ceil(Sq / attn::Cfg<D>::BM), Hq, B), attn::Cfg<D>::THREADS threads,
// attn::Smem<D>::BYTES of dynamic shared memory.
#define ATTN_ENTRY(NAME, T, D)                                                                 \
    extern "C" __global__ void __launch_bounds__(attn::Cfg<D>::THREADS,                         \
                                                 attn::Cfg<D>::MIN_BLOCKS)                      \
        NAME(const void* q, const void* k, const void* v, void* out, void* lse,                \
             long long seq_q, long long seq_kv, long long heads_q, long long heads_kv,         \
             float scale, int flags) {                                                         \
        attn::attention<T, D>((const ky_u16*)q, (const ky_u16*)k, (const ky_u16*)v,            \
                              (ky_u16*)out, (float*)lse, seq_q, seq_kv, heads_q, heads_kv,     \
                              scale, flags);                                                   \
    }

#define ATTN_DTYPE(D, T)                       \
    ATTN_ENTRY(attention_##D##_d64, T, 64)     \
    ATTN_ENTRY(attention_##D##_d128, T, 128)   \
    ATTN_ENTRY(attention_##D##_d256, T, 256)

ATTN_DTYPE(bf16, ky_bf16)
ATTN_DTYPE(f16, ky_f16)
