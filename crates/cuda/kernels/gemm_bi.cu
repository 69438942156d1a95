// kernels/gemm_bi.cu: batch-invariant, deterministic GEMM on tensor cores (mma.sync).
// Rust side: crates/cuda/src/ops/gemm_bi.rs (`cuda.gemm.batch_invariant`).
//
//   C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b]     (b < batch; batch stride 0 = broadcast)
//
// A and B are f16 or bf16 (the same dtype), row-major with row strides lda / ldb; op(A) is
// A (stored [m, k]) or A^T (stored [k, m], `TA`); op(B) is B (stored [k, n]) or B^T (stored
// [n, k], `TB`). Accumulation is f32; C is A's dtype or f32 (`c_f32`), read only when
// `accumulate` (beta != 0), so with accumulate == 0 C may hold anything (NaN included).
//
// One configuration for every problem (sm_80 and newer):
// - block tile BM x BN x BK = 128 x 128 x 32, 256 threads = 8 warps as 2 (M) x 4 (N), each
//   warp owning a 64 x 32 sub-tile = 4 x 4 m16n8 accumulator tiles (64 f32 per thread);
// - a 4-stage shared-memory pipeline: stage s holds the A tile and the B tile of one k-tile,
//   each in its stored orientation with rows padded by 8 elements (ldmatrix reads 8 rows of
//   16 bytes; a row pitch of 80 or 272 bytes puts them in 8 distinct bank quads);
// - fragments by ldmatrix.x4: plain for a K-major operand (A when !TA, B when TB), `.trans`
//   for an MN-major one (A when TA, B when !TB); then mma.sync.m16n8k16 with f32 accumulators;
// - global -> shared: `VEC` (every pointer, row stride and batch stride 16-byte aligned, i.e.
//   problem.align == 16) uses 16-byte cp.async for whole in-range chunks; a chunk that runs
//   past the matrix edge is read element by element with zero fill and stored to shared memory
//   directly (rather than by cp.async with a partial src-size), a chunk wholly outside is
//   stored as zeros. Without `VEC` every chunk is read element by element into registers
//   before the tile's math and stored after it.
//
// The reduction order, and why it is batch-invariant:
// every output element C[b][i][j] is computed by exactly one thread, in one accumulator that
// starts at 0 and receives, for k-tiles kt = 0, 1, ..., ceil(K / 32) - 1 in increasing order,
// two mma.sync.m16n8k16 steps (k = 32 kt + 0..15, then 32 kt + 16..31); the elements past K
// are zeros in both operands (exact zero products). An mma computes each output element from
// its own row of A, column of B and accumulator, in the hardware's fixed order. That sequence
// depends on K alone: not on M, not on the batch, not on which block or warp or fragment row
// holds the element, not on the alignment (the VEC and scalar paths fill shared memory with
// the same values). There is no split-K, no atomic, no choice among configurations (the same
// one on every device; bits may still differ between GPU generations, whose tensor cores may
// round differently). The epilogue is `v = alpha * acc` then, when accumulating,
// `v = fma(beta, c, v)`, written with explicit round-to-nearest intrinsics so the paired and
// the single-element stores compute the same bits. A row of C is therefore bitwise identical
// whatever batch (M, or batch count) it rides in, and every run gives the same bits.
//
// Launch: a 1-D grid of batch * M-tiles * N-tiles blocks of THREADS threads (grouped
// rasterization for L2 reuse: which block computes which tile never changes a tile's
// arithmetic), SMEM_BYTES (80 KiB) of dynamic shared memory. At most 128 registers per thread
// (__launch_bounds__(256, 2)): two blocks per SM where shared memory allows (sm_80, sm_90).
#include "common.cuh"
#include "mma.cuh"

namespace gbi {

constexpr int BM = 128;
constexpr int BN = 128;
constexpr int BK = 32;
constexpr int STAGES = 4;
constexpr int THREADS = 256;
constexpr int WARPS_M = 2;
constexpr int WARPS_N = 4;
constexpr int GROUP_M = 8;
// Elements of padding per shared-memory row.
constexpr int PAD = 8;
// One operand's tile in shared memory: K-major (rows of BK + PAD) or MN-major (rows of
// BM + PAD); both fit in OPERAND_ELEMS.
constexpr int KMAJOR_ELEMS = BM * (BK + PAD);
constexpr int MNMAJOR_ELEMS = BK * (BM + PAD);
constexpr int OPERAND_ELEMS = KMAJOR_ELEMS > MNMAJOR_ELEMS ? KMAJOR_ELEMS : MNMAJOR_ELEMS;
constexpr int OPERAND_BYTES = OPERAND_ELEMS * 2;
constexpr int STAGE_BYTES = 2 * OPERAND_BYTES;
constexpr int SMEM_BYTES = STAGES * STAGE_BYTES;
// The Rust side (`SHARED_BYTES` in gemm_bi.rs) launches with this much dynamic shared memory.
static_assert(SMEM_BYTES == 81920, "keep crates/cuda/src/ops/gemm_bi.rs in step");

constexpr int WM = BM / WARPS_M;  // 64 rows per warp
constexpr int WN = BN / WARPS_N;  // 32 columns per warp
constexpr int MI = WM / 16;       // m16 tiles per warp
constexpr int NI = WN / 8;        // n8 tiles per warp

static_assert(BM == BN, "one operand tile shape serves A and B");
static_assert(WARPS_M * WARPS_N * 32 == THREADS, "8 warps");
static_assert(BK % 16 == 0 && NI % 2 == 0, "k16 steps; B fragments loaded in pairs");
static_assert(STAGES >= 2, "the pipeline refills the stage consumed one iteration earlier");

// ---- PTX: the shared mma.sync wrappers (mma.cuh) and a 16-byte shared store -----------

using namespace ky_mma;

__device__ __forceinline__ void st_shared16(ky_u32 dst, const ky_vec16& v) {
    asm volatile("st.shared.v4.u32 [%0], {%1, %2, %3, %4};\n" ::"r"(dst), "r"(v.w[0]),
                 "r"(v.w[1]), "r"(v.w[2]), "r"(v.w[3])
                 : "memory");
}

// ---- end of PTX ----------------------------------------------------------------------

// Two adjacent f32 of C, for one 8-byte access.
struct __align__(8) float2_t {
    float x, y;
};

__device__ __forceinline__ ky_i64 min64(ky_i64 a, ky_i64 b) { return a < b ? a : b; }

// Eight elements from `src`, the first `n` read (n <= 0: none), the rest zero.
__device__ __forceinline__ ky_vec16 fetch8(const ky_u16* src, ky_i64 n) {
    ky_u16 e[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) e[i] = i < n ? src[i] : (ky_u16)0;
    ky_vec16 v;
#pragma unroll
    for (int i = 0; i < 4; ++i) v.w[i] = (ky_u32)e[2 * i] | ((ky_u32)e[2 * i + 1] << 16);
    return v;
}

// Loads one operand's k-tiles. A tile as stored in global memory is ROWS x COLS elements with
// COLS contiguous: COLS = BK for a K-major operand (A [m, k], B^T stored [n, k]), COLS = BM
// for an MN-major one (A^T stored [k, m], B [k, n]); shared memory holds it as ROWS rows of
// COLS + PAD elements. Thread `tid` moves PER_THREAD 16-byte chunks per tile: column c of
// rows r, r + ROW_STEP, ... (chunk i). The state is the chunks' global addresses for the next
// k-tile, advanced by one k-tile per `load`, and what bounds them (32-bit).
template <int COLS, bool VEC>
struct Loader {
    static constexpr bool KMAJOR = COLS == BK;
    static constexpr int ROWS = BM * BK / COLS;
    static constexpr int LDS = COLS + PAD;
    static constexpr int CHUNKS_PER_ROW = COLS / 8;
    static constexpr int ROW_STEP = THREADS / CHUNKS_PER_ROW;
    static constexpr int PER_THREAD = ROWS / ROW_STEP;
    static_assert(ROWS * LDS <= OPERAND_ELEMS, "tile fits its shared-memory slot");
    static_assert(PER_THREAD * ROW_STEP == ROWS, "whole chunks per thread");

    const ky_u16* ptr[PER_THREAD];
    // K-major: 8 if chunk i's row (an M or N index) is inside the matrix, else 0.
    // MN-major: elements of the chunks' column range inside the matrix (0 .. 8).
    int limit[PER_THREAD];
    ky_i64 step;    // elements from one k-tile to the next
    ky_u32 soff;    // chunk 0's byte offset in the tile
    int r, c;       // chunk 0's row and column in the tile
    ky_vec16 held[PER_THREAD];  // scalar path: the chunks between `load` and `store`

    // `p`: the matrix (row stride `ld`); `mn`: its M (or N) extent; `mn0`: the block's first
    // M (or N) index.
    __device__ __forceinline__ void init(const ky_u16* p, ky_i64 ld, ky_i64 mn, ky_i64 mn0,
                                         int tid) {
        r = tid / CHUNKS_PER_ROW;
        c = (tid % CHUNKS_PER_ROW) * 8;
        soff = (ky_u32)(r * LDS + c) * 2u;
        step = KMAJOR ? (ky_i64)BK : (ky_i64)BK * ld;
#pragma unroll
        for (int i = 0; i < PER_THREAD; ++i) {
            if (KMAJOR) {
                const ky_i64 row = mn0 + r + i * ROW_STEP;
                const bool in = row < mn;
                limit[i] = in ? 8 : 0;
                ptr[i] = p + (in ? row * ld : 0) + c;
            } else {
                const ky_i64 col = mn0 + c;
                const ky_i64 n = min64(mn - col, 8);
                limit[i] = n > 0 ? (int)n : 0;
                ptr[i] = p + (ky_i64)(r + i * ROW_STEP) * ld + (n > 0 ? col : 0);
            }
        }
    }

    // Loads the next k-tile, of which `kr` (1 .. BK) k indices are inside the matrix, into the
    // tile at shared address `s`: VEC: whole chunks by cp.async, edge chunks now by element
    // loads, chunks outside as zeros; scalar: into `held`, for `store`.
    __device__ __forceinline__ void load(ky_u32 s, int kr) {
#pragma unroll
        for (int i = 0; i < PER_THREAD; ++i) {
            // Elements of chunk i inside the matrix (<= 0: none).
            const int n = KMAJOR ? min(kr - c, limit[i]) : (r + i * ROW_STEP < kr ? limit[i] : 0);
            if (VEC) {
                const ky_u32 dst = s + soff + (ky_u32)(i * ROW_STEP * LDS * 2);
                if (n == 8) {
                    cp_async16(dst, ptr[i]);
                } else {
                    st_shared16(dst, fetch8(ptr[i], n));
                }
            } else {
                held[i] = fetch8(ptr[i], n);
            }
            ptr[i] += step;
        }
    }

    // Scalar path: stores the chunks `load` left in `held` to the tile at `s`.
    __device__ __forceinline__ void store(ky_u32 s) const {
#pragma unroll
        for (int i = 0; i < PER_THREAD; ++i) {
            st_shared16(s + soff + (ky_u32)(i * ROW_STEP * LDS * 2), held[i]);
        }
    }
};

extern __shared__ __align__(16) unsigned char smem[];

// The output tile whose first element is (m0, n0), of the batch entry whose matrices are A, B
// and C: the main loop and the epilogue.
template <typename T, bool TA, bool TB, bool VEC>
__device__ __forceinline__ void tile(const ky_u16* A, const ky_u16* B, void* C, ky_i64 M,
                                     ky_i64 N, ky_i64 K, ky_i64 lda, ky_i64 ldb, ky_i64 ldc,
                                     ky_i64 m0, ky_i64 n0, float alpha, float beta,
                                     int accumulate, int c_f32) {
    // Stored shapes: A is [M, K] (K-major) or [K, M] (TA, MN-major); B is [K, N] (MN-major)
    // or [N, K] (TB, K-major).
    typedef Loader<TA ? BM : BK, VEC> LoaderA;
    typedef Loader<TB ? BK : BN, VEC> LoaderB;

    const int tid = threadIdx.x;
    const int lane = tid & 31, warp = tid >> 5;
    const int wm = warp / WARPS_N, wn = warp % WARPS_N;
    const ky_u32 sbase = (ky_u32)__cvta_generic_to_shared(smem);

    float acc[MI][NI][4];
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

    LoaderA la;
    LoaderB lb;
    la.init(A, lda, M, m0, tid);
    lb.init(B, ldb, N, n0, tid);

    // Per-lane byte offsets of the ldmatrix rows inside a stage's operand slot (k16 step 0,
    // fragment 0); see `ldmatrix_x4` for which lane addresses which row.
    //   A K-major  [m][k]: matrices (m, k) (m+8, k) (m, k+8) (m+8, k+8) -> a0 a1 a2 a3.
    //   A MN-major [k][m], .trans: (k, m) (k, m+8) (k+8, m) (k+8, m+8) -> a0 a1 a2 a3.
    //   B K-major  [n][k]: (n, k) (n, k+8) (n+8, k) (n+8, k+8) -> b0 b1 of n8 tiles j, j+1.
    //   B MN-major [k][n], .trans: (k, n) (k+8, n) (k, n+8) (k+8, n+8) -> the same.
    const int l7 = lane & 7, l8 = (lane >> 3) & 1, l16 = (lane >> 4) & 1;
    const ky_u32 a_lane =
        TA ? (ky_u32)(((l7 + l16 * 8) * LoaderA::LDS + wm * WM + l8 * 8) * 2)
           : (ky_u32)(((wm * WM + (lane & 15)) * LoaderA::LDS + l16 * 8) * 2);
    const ky_u32 b_lane =
        TB ? (ky_u32)(((wn * WN + l7 + l16 * 8) * LoaderB::LDS + l8 * 8) * 2)
           : (ky_u32)(((l7 + l8 * 8) * LoaderB::LDS + wn * WN + l16 * 8) * 2);
    // Byte steps of the offsets per m16 / n16 fragment and per k16 step.
    constexpr ky_u32 A_FRAG = TA ? 16 * 2 : 16 * LoaderA::LDS * 2;
    constexpr ky_u32 A_K16 = TA ? 16 * LoaderA::LDS * 2 : 16 * 2;
    constexpr ky_u32 B_FRAG = TB ? 16 * LoaderB::LDS * 2 : 16 * 2;
    constexpr ky_u32 B_K16 = TB ? 16 * 2 : 16 * LoaderB::LDS * 2;

    const ky_i64 nk = (K + BK - 1) / BK;
    // K indices not yet loaded (the next k-tile starts there).
    ky_i64 k_left = K;
    // Loads the next k-tile into stage `s` (VEC: asynchronously; else into the loaders' held
    // registers).
    auto load = [&](int s) {
        const ky_u32 sa = sbase + (ky_u32)(s * STAGE_BYTES);
        const int kr = (int)min64(k_left, BK);
        la.load(sa, kr);
        lb.load(sa + (ky_u32)OPERAND_BYTES, kr);
        k_left -= BK;
    };
    auto store_held = [&](int s) {
        const ky_u32 sa = sbase + (ky_u32)(s * STAGE_BYTES);
        la.store(sa);
        lb.store(sa + (ky_u32)OPERAND_BYTES);
    };

    // Prologue: k-tiles 0 .. STAGES-2 into stages 0 .. STAGES-2 (one commit group each,
    // empty past the last k-tile, so the group count stays fixed).
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < nk) {
            load(s);
            if (!VEC) store_held(s);
        }
        cp_async_commit();
    }

    int read_stage = 0;
    int write_stage = STAGES - 1;
    for (ky_i64 kt = 0; kt < nk; ++kt) {
        // This thread's copies of k-tile kt have landed; after the barrier everyone's have,
        // and every warp is done reading the stage consumed at kt - 1 (= write_stage).
        cp_async_wait<STAGES - 2>();
        __syncthreads();
        const ky_i64 next = kt + STAGES - 1;
        if (next < nk) load(write_stage);
        cp_async_commit();

        const ky_u32 sa = sbase + (ky_u32)(read_stage * STAGE_BYTES);
        const ky_u32 sb = sa + (ky_u32)OPERAND_BYTES;
#pragma unroll
        for (int ks = 0; ks < BK / 16; ++ks) {
            ky_u32 af[MI][4];
            ky_u32 bf[NI][2];
#pragma unroll
            for (int i = 0; i < MI; ++i) {
                const ky_u32 addr = sa + a_lane + (ky_u32)i * A_FRAG + (ky_u32)ks * A_K16;
                if (TA) {
                    ldmatrix_x4_trans(af[i], addr);
                } else {
                    ldmatrix_x4(af[i], addr);
                }
            }
#pragma unroll
            for (int j = 0; j < NI / 2; ++j) {
                const ky_u32 addr = sb + b_lane + (ky_u32)j * B_FRAG + (ky_u32)ks * B_K16;
                ky_u32 r[4];
                if (TB) {
                    ldmatrix_x4(r, addr);
                } else {
                    ldmatrix_x4_trans(r, addr);
                }
                bf[2 * j][0] = r[0];
                bf[2 * j][1] = r[1];
                bf[2 * j + 1][0] = r[2];
                bf[2 * j + 1][1] = r[3];
            }
#pragma unroll
            for (int i = 0; i < MI; ++i)
#pragma unroll
                for (int j = 0; j < NI; ++j) Mma<T>::run(acc[i][j], af[i], bf[j][0], bf[j][1]);
        }

        // Scalar path: the next k-tile's elements, loaded before the math, go to the stage
        // freed at kt - 1 (nobody reads it until after the next barrier).
        if (!VEC && next < nk) store_held(write_stage);
        read_stage = read_stage == STAGES - 1 ? 0 : read_stage + 1;
        write_stage = write_stage == STAGES - 1 ? 0 : write_stage + 1;
    }
    // Only empty groups remain; drain them anyway.
    cp_async_wait<0>();

    // Epilogue: accumulator element e of fragment (i, j) is row wm*64 + 16i + lane/4 (+8 for
    // e >= 2), column wn*32 + 8j + 2 (lane % 4) (+1 for odd e) of the block tile.
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int i = 0; i < MI; ++i) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const ky_i64 row = m0 + wm * WM + i * 16 + g + h * 8;
            if (row >= M) continue;
#pragma unroll
            for (int j = 0; j < NI; ++j) {
                const ky_i64 col = n0 + wn * WN + j * 8 + 2 * t;
                if (col >= N) continue;
                // Both columns present and (VEC) the pair aligned: one paired access.
                const bool pair = VEC && col + 1 < N;
                const bool second = col + 1 < N;
                float v0 = __fmul_rn(alpha, acc[i][j][2 * h]);
                float v1 = __fmul_rn(alpha, acc[i][j][2 * h + 1]);
                if (c_f32) {
                    float* cp = (float*)C + row * ldc + col;
                    if (pair) {
                        if (accumulate) {
                            const float2_t o = *(const float2_t*)cp;
                            v0 = __fmaf_rn(beta, o.x, v0);
                            v1 = __fmaf_rn(beta, o.y, v1);
                        }
                        float2_t o;
                        o.x = v0;
                        o.y = v1;
                        *(float2_t*)cp = o;
                    } else {
                        if (accumulate) v0 = __fmaf_rn(beta, cp[0], v0);
                        cp[0] = v0;
                        if (second) {
                            if (accumulate) v1 = __fmaf_rn(beta, cp[1], v1);
                            cp[1] = v1;
                        }
                    }
                } else {
                    ky_u16* cp = (ky_u16*)C + row * ldc + col;
                    if (pair) {
                        if (accumulate) {
                            const ky_u32 o = *(const ky_u32*)cp;
                            v0 = __fmaf_rn(beta, Elem<T>::to_f32((ky_u16)(o & 0xffffu)), v0);
                            v1 = __fmaf_rn(beta, Elem<T>::to_f32((ky_u16)(o >> 16)), v1);
                        }
                        *(ky_u32*)cp = (ky_u32)Elem<T>::from_f32(v0) |
                                       ((ky_u32)Elem<T>::from_f32(v1) << 16);
                    } else {
                        if (accumulate) v0 = __fmaf_rn(beta, Elem<T>::to_f32(cp[0]), v0);
                        cp[0] = Elem<T>::from_f32(v0);
                        if (second) {
                            if (accumulate) v1 = __fmaf_rn(beta, Elem<T>::to_f32(cp[1]), v1);
                            cp[1] = Elem<T>::from_f32(v1);
                        }
                    }
                }
            }
        }
    }
}

// One block per (batch entry, output tile): blockIdx.x = bz * tiles + tile. Within a batch
// entry, grouped rasterization: consecutive blocks walk GROUP_M M-tiles of one N-tile, so a
// group's blocks share B's column panel and A's row panels in L2. (No loop over batch entries
// inside a block: the compiler would hoist the epilogue's indices out of it and keep them live
// through the main loop.)
template <typename T, bool TA, bool TB, bool VEC>
__device__ __forceinline__ void gemm(const void* a, const void* b, void* c, ky_i64 M, ky_i64 N,
                                     ky_i64 K, ky_i64 lda, ky_i64 ldb, ky_i64 ldc,
                                     ky_i64 stride_a, ky_i64 stride_b, ky_i64 stride_c,
                                     float alpha, float beta, int accumulate, int c_f32) {
    const ky_i64 tiles_m = (M + BM - 1) / BM, tiles_n = (N + BN - 1) / BN;
    const ky_i64 tiles = tiles_m * tiles_n;
    const ky_i64 bz = (ky_i64)blockIdx.x / tiles;
    const ky_i64 pid = (ky_i64)blockIdx.x % tiles;
    const ky_i64 per_group = (ky_i64)GROUP_M * tiles_n;
    const ky_i64 first_m = (pid / per_group) * GROUP_M;
    const ky_i64 group_m = min64(tiles_m - first_m, GROUP_M);
    const ky_i64 tm = first_m + (pid % per_group) % group_m;
    const ky_i64 tn = (pid % per_group) / group_m;
    const ky_i64 c_size = c_f32 ? 4 : 2;
    tile<T, TA, TB, VEC>((const ky_u16*)a + bz * stride_a, (const ky_u16*)b + bz * stride_b,
                         (unsigned char*)c + bz * stride_c * c_size, M, N, K, lda, ldb, ldc,
                         tm * BM, tn * BN, alpha, beta, accumulate, c_f32);
}

}  // namespace gbi

// Entry points: gemm_bi_<dtype>_<op(A)><op(B)>_<path>, n = stored as used, t = transposed;
// v = 16-byte cp.async path (problem.align == 16), s = element loads (any alignment).
#define GBI_ENTRY(NAME, T, TA, TB, VEC)                                                        \
    extern "C" __global__ void __launch_bounds__(gbi::THREADS, 2)                                 \
        NAME(const void* a, const void* b, void* c, long long m, long long n, long long k,     \
             long long lda, long long ldb, long long ldc, long long stride_a,                  \
             long long stride_b, long long stride_c, float alpha, float beta, int accumulate, \
             int c_f32) {                                                                      \
        gbi::gemm<T, TA, TB, VEC>(a, b, c, m, n, k, lda, ldb, ldc, stride_a, stride_b,         \
                                  stride_c, alpha, beta, accumulate, c_f32);                   \
    }

#define GBI_DTYPE(D, T)                                         \
    GBI_ENTRY(gemm_bi_##D##_nn_v, T, false, false, true)        \
    GBI_ENTRY(gemm_bi_##D##_nt_v, T, false, true, true)         \
    GBI_ENTRY(gemm_bi_##D##_tn_v, T, true, false, true)         \
    GBI_ENTRY(gemm_bi_##D##_tt_v, T, true, true, true)          \
    GBI_ENTRY(gemm_bi_##D##_nn_s, T, false, false, false)       \
    GBI_ENTRY(gemm_bi_##D##_nt_s, T, false, true, false)        \
    GBI_ENTRY(gemm_bi_##D##_tn_s, T, true, false, false)        \
    GBI_ENTRY(gemm_bi_##D##_tt_s, T, true, true, false)

GBI_DTYPE(bf16, ky_bf16)
GBI_DTYPE(f16, ky_f16)
