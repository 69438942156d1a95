// kernels/gemm_bi_mfma.cu: batch-invariant, deterministic GEMM on AMD matrix cores (MFMA),
// for gfx908 (CDNA1, MI100) and gfx90a (CDNA2, MI200) only: wave64. Rust side:
// crates/kernels/src/gemm_bi_mfma.rs.
//
// NOT YET RUN ON AMD HARDWARE: it compiles with hiprtc for gfx908 and gfx90a, and its lane
// layouts are those of AMD's documentation (below); its tiling, loads and epilogue are those
// of gemm_bi_simt.cu, which is proven on an NVIDIA GPU. It is written to be simple and
// obviously right rather than fast.
//
//   C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b]     (b < batch; batch stride 0 = broadcast)
//
// A and B are f16 or bf16 (the same dtype), row-major with row strides lda / ldb; op(A) is A
// (stored [m, k]) or A^T (stored [k, m], `TA`); op(B) is B (stored [k, n]) or B^T (stored
// [n, k], `TB`). Accumulation is f32; C is A's dtype or f32 (`c_f32`), read only when
// `accumulate` (beta != 0), so with accumulate == 0 C may hold anything (NaN included). Any
// M, N, K >= 1, any alignment: every global access is one element.
//
// One configuration for every problem (per architecture):
// - block tile BM x BN x BK = 64 x 64 x 16, THREADS = 256 = four wavefronts of 64 lanes as
//   2 (M) x 2 (N); wavefront w = tid / 64 owns the 32 x 32 sub-tile at rows 32 (w / 2), columns
//   32 (w % 2): 2 x 2 MFMA output tiles of 16 x 16, one float4 accumulator each per lane;
// - static shared memory (LDS): one k-tile of each operand as raw 16-bit patterns, K-major
//   whatever the operand's stored orientation: As[m][k] and Bs[n][k] (rows of BK + PAD
//   elements), 4,608 bytes;
// - global -> LDS exactly as gemm_bi_simt.cu: each thread reads 4 elements of each operand per
//   k-tile, element by element (consecutive threads read consecutive addresses in the
//   operand's stored orientation), zero outside the matrix (+0 in f16 and bf16); the next
//   k-tile is read into registers while the current one is multiplied;
// - the MFMA steps of a k-tile: f16 (both archs) and bf16 on gfx90a, one 16x16x16 step
//   (v_mfma_f32_16x16x16f16, v_mfma_f32_16x16x16bf16_1k); bf16 on gfx908, which lacks the _1k
//   instruction, two 16x16x8 steps (v_mfma_f32_16x16x8bf16: k = 0..7, then 8..15).
//
// Operand and result layouts (lane l of the 64, i and j the row and column of a 16 x 16 tile,
// k the index inside the instruction's k-slice; vector element e of a lane's operand is bits
// 16 (e % 2) .. of register e / 2, i.e. little-endian order):
//   16x16x16 (f16, bf16_1k):  A[i][k] in lane 16 (k / 4) + i, element k % 4;
//                             B[k][j] in lane 16 (k / 4) + j, element k % 4;
//   16x16x8 (bf16, gfx908):   A[i][k] in lane 16 (k / 2) + i, element k % 2;
//                             B[k][j] in lane 16 (k / 2) + j, element k % 2;
//   all three, C and D:       D[i][j] in lane 16 (i / 4) + j, element (register) i % 4.
// So lane l supplies A row l % 16 and B column l % 16 at k = E (l / 16) + e (E = 4 or 2
// elements), and receives D rows 4 (l / 16) + e, column l % 16. Source: AMD's Matrix
// Instruction Calculator (github.com/ROCm/amd_matrix_instruction_calculator, `--detail-
// instruction` for CDNA1 v_mfma_f32_16x16x16f16 and v_mfma_f32_16x16x8bf16, CDNA2
// v_mfma_f32_16x16x16bf16_1k: "A[i][k].block Lane: 16 * floor(k / 4) + i", "GPR: (floor(k /
// 2) % 2).[16*(k % 2)+15 : 16*(k % 2)]", "C or D[i][j].block Lane: 16 * floor(i / 4) + j,
// GPR: (i % 4)"; for x8bf16 "Lane: 16 * floor(k / 2) + i", "GPR: 0.[16*(k % 2)+15 : ...]"),
// with CBSZ = ABID = BLGP = 0 (no broadcast, no lane swizzle). The clang builtins take the
// operands as 4 x _Float16 (f16), 4 x short (bf16_1k) or 2 x short (x8bf16), C as 4 x float.
//
// The reduction order, and why it is batch-invariant:
// every output element C[b][i][j] is held by exactly one lane, in one accumulator register
// that starts at +0 and receives, for the k-tiles of 16 in increasing order, the MFMA step(s)
// of that k-tile in increasing k order (each adds its k-slice's products to the register in
// the hardware's fixed internal order); the k past K are exact zeros in both operands. That
// instruction sequence depends on K alone (and on the architecture, which fixes the bf16
// instruction): not on M, not on the batch, not on which block or wavefront or lane holds the
// element; there is no split-K, no atomic, no choice among configurations. The epilogue is
// gemm_bi_simt.cu's: `v = alpha * acc` rounded on its own (`ky_fmul_rn`), then when
// accumulating `v = __fmaf_rn(beta, c_old, v)`, stored rounded to nearest in C's dtype. A row of
// C therefore has the same bits whatever batch it rides in, and every run the same bits, on a
// given device (another architecture, or another compiler's instruction schedule of the same
// sequence, may round differently: invariance is per device).
//
// Launch: a 1-D grid of batch * ceil(M / 64) * ceil(N / 64) blocks of THREADS threads, block
// bz * tiles + tm * tiles_n + tn computing tile (tm, tn) of batch entry bz; no dynamic shared
// memory.
#include "common.cuh"

#if !defined(__gfx908__) && !defined(__gfx90a__)
#error "gemm_bi_mfma.cu is for gfx908 and gfx90a only (CDNA1/2 MFMA, wave64)"
#endif
#if defined(__AMDGCN_WAVEFRONT_SIZE) && __AMDGCN_WAVEFRONT_SIZE != 64
#error "gemm_bi_mfma.cu assumes 64-lane wavefronts"
#endif

namespace gbm {

constexpr int BM = 64;
constexpr int BN = 64;
constexpr int BK = 16;
constexpr int THREADS = 256;
constexpr int WAVE = 64;
// Elements of padding per LDS row.
constexpr int PAD = 2;
// Wavefronts along N; the sub-tile of one wavefront; MFMA tiles per wavefront along M and N.
constexpr int WAVES_N = 2;
constexpr int WM = 32;
constexpr int WN = 32;
constexpr int MI = WM / 16;
constexpr int NI = WN / 16;
// Elements of each operand a thread loads per k-tile.
constexpr int LOADS = BM * BK / THREADS;  // 4
constexpr int SMEM_BYTES = BM * (BK + PAD) * 2 + BN * (BK + PAD) * 2;
// The Rust side (`SHARED_BYTES` in crates/kernels/src/gemm_bi_mfma.rs) documents this size.
static_assert(SMEM_BYTES == 4608, "keep crates/kernels/src/gemm_bi_mfma.rs in step");
static_assert(BM == BN, "one loader shape serves A and B");
static_assert((BM / WM) * (BN / WN) * WAVE == THREADS, "2 x 2 wavefronts of 64 lanes");
static_assert(LOADS * THREADS == BM * BK, "whole elements per thread");

typedef _Float16 half4_t __attribute__((ext_vector_type(4)));
typedef short short4_t __attribute__((ext_vector_type(4)));
typedef short short2_t __attribute__((ext_vector_type(2)));
typedef float float4_t __attribute__((ext_vector_type(4)));

// The MFMA step(s) of one k-tile for A/B of storage type T. `KS`: the instruction's k; `E =
// KS / 4`: elements per lane per operand. `acc = mma(a, b, acc)` where `a` holds A[i][k0 + E q
// + e] and `b` holds B[k0 + E q + e][j] (i = j = lane % 16, q = lane / 16, e < E).
template <typename T> struct Mfma;

template <> struct Mfma<ky_f16> {
    static constexpr int KS = 16;
    __device__ __forceinline__ static float4_t mma(const ky_u16* a, const ky_u16* b,
                                                   float4_t acc) {
        const short4_t x = {(short)a[0], (short)a[1], (short)a[2], (short)a[3]};
        const short4_t y = {(short)b[0], (short)b[1], (short)b[2], (short)b[3]};
        return __builtin_amdgcn_mfma_f32_16x16x16f16((half4_t)x, (half4_t)y, acc, 0, 0, 0);
    }
};

#if defined(__gfx90a__)
template <> struct Mfma<ky_bf16> {
    static constexpr int KS = 16;
    __device__ __forceinline__ static float4_t mma(const ky_u16* a, const ky_u16* b,
                                                   float4_t acc) {
        const short4_t x = {(short)a[0], (short)a[1], (short)a[2], (short)a[3]};
        const short4_t y = {(short)b[0], (short)b[1], (short)b[2], (short)b[3]};
        return __builtin_amdgcn_mfma_f32_16x16x16bf16_1k(x, y, acc, 0, 0, 0);
    }
};
#else
template <> struct Mfma<ky_bf16> {
    static constexpr int KS = 8;
    __device__ __forceinline__ static float4_t mma(const ky_u16* a, const ky_u16* b,
                                                   float4_t acc) {
        const short2_t x = {(short)a[0], (short)a[1]};
        const short2_t y = {(short)b[0], (short)b[1]};
        return __builtin_amdgcn_mfma_f32_16x16x8bf16(x, y, acc, 0, 0, 0);
    }
};
#endif

// As gemm_bi_simt.cu: element e (< LOADS) of the thread's share of a k-tile is at tile row
// r (an M or N index) and tile column c (a k index); `KMAJOR`: stored with k contiguous (A
// [m, k]; B^T stored [n, k]), else (A^T stored [k, m]; B [k, n]) with m or n contiguous.
template <bool KMAJOR>
__device__ __forceinline__ void tile_coords(int tid, int e, int& r, int& c) {
    const int idx = tid + e * THREADS;
    if (KMAJOR) {
        r = idx / BK;
        c = idx % BK;
    } else {
        r = idx % BM;
        c = idx / BM;
    }
}

// Reads the k-tile starting at k0 of an operand `p` (row stride `ld`; `mn` rows or columns
// along M or N, from `mn0` for this block; `K` along k) into `v` as bits, zero outside.
template <bool KMAJOR>
__device__ __forceinline__ void fetch(const ky_u16* p, ky_i64 ld, ky_i64 mn, ky_i64 mn0,
                                      ky_i64 K, ky_i64 k0, int tid, ky_u16 (&v)[LOADS]) {
#pragma unroll
    for (int e = 0; e < LOADS; ++e) {
        int r, c;
        tile_coords<KMAJOR>(tid, e, r, c);
        const ky_i64 row = mn0 + r, k = k0 + c;
        v[e] = 0;
        if (row < mn && k < K) v[e] = p[KMAJOR ? row * ld + k : k * ld + row];
    }
}

// Stores `v` (from `fetch`) to the LDS tile s[mn][k].
template <bool KMAJOR>
__device__ __forceinline__ void put(ky_u16 (*s)[BK + PAD], int tid, const ky_u16 (&v)[LOADS]) {
#pragma unroll
    for (int e = 0; e < LOADS; ++e) {
        int r, c;
        tile_coords<KMAJOR>(tid, e, r, c);
        s[r][c] = v[e];
    }
}

// One output tile: rows m0.., columns n0.. of the batch entry whose matrices are A, B and C.
template <typename T, bool TA, bool TB>
__device__ __forceinline__ void tile(const ky_u16* A, const ky_u16* B, void* C, ky_i64 M,
                                     ky_i64 N, ky_i64 K, ky_i64 lda, ky_i64 ldb, ky_i64 ldc,
                                     ky_i64 m0, ky_i64 n0, float alpha, float beta,
                                     int accumulate, int c_f32) {
    constexpr bool A_KMAJOR = !TA;
    constexpr bool B_KMAJOR = TB;
    constexpr int KS = Mfma<T>::KS;
    constexpr int E = KS / 4;  // elements per lane per operand and step
    __shared__ ky_u16 As[BM][BK + PAD];
    __shared__ ky_u16 Bs[BN][BK + PAD];

    const int tid = threadIdx.x;
    const int lane = tid % WAVE, wave = tid / WAVE;
    const int wm = wave / WAVES_N, wn = wave % WAVES_N;
    const int l16 = lane % 16, q = lane / 16;

    float4_t acc[MI][NI];
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j) acc[i][j] = float4_t{0.0f, 0.0f, 0.0f, 0.0f};

    ky_u16 ra[LOADS], rb[LOADS];
    fetch<A_KMAJOR>(A, lda, M, m0, K, 0, tid, ra);
    fetch<B_KMAJOR>(B, ldb, N, n0, K, 0, tid, rb);
    for (ky_i64 k0 = 0; k0 < K; k0 += BK) {
        // Every wavefront is done reading the previous k-tile.
        __syncthreads();
        put<A_KMAJOR>(As, tid, ra);
        put<B_KMAJOR>(Bs, tid, rb);
        __syncthreads();
        if (k0 + BK < K) {
            fetch<A_KMAJOR>(A, lda, M, m0, K, k0 + BK, tid, ra);
            fetch<B_KMAJOR>(B, ldb, N, n0, K, k0 + BK, tid, rb);
        }
#pragma unroll
        for (int ks = 0; ks < BK; ks += KS) {
#pragma unroll
            for (int i = 0; i < MI; ++i)
#pragma unroll
                for (int j = 0; j < NI; ++j) {
                    // This lane's A row and B column (rows of As / Bs) at k = ks + E q + e.
                    const ky_u16* a = &As[wm * WM + i * 16 + l16][ks + E * q];
                    const ky_u16* b = &Bs[wn * WN + j * 16 + l16][ks + E * q];
                    acc[i][j] = Mfma<T>::mma(a, b, acc[i][j]);
                }
        }
    }

    // Epilogue: register e of accumulator (i, j) is D row 4 q + e, column l16 of that 16 x 16
    // tile; the arithmetic is gemm_bi_simt.cu's.
#pragma unroll
    for (int i = 0; i < MI; ++i) {
#pragma unroll
        for (int j = 0; j < NI; ++j) {
            const ky_i64 col = n0 + wn * WN + j * 16 + l16;
            if (col >= N) continue;
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const ky_i64 row = m0 + wm * WM + i * 16 + 4 * q + e;
                if (row >= M) continue;
                const ky_i64 at = row * ldc + col;
                float v = ky_fmul_rn(alpha, acc[i][j][e]);
                if (c_f32) {
                    float* cp = (float*)C;
                    if (accumulate) v = __fmaf_rn(beta, cp[at], v);
                    cp[at] = v;
                } else {
                    ky_u16* cp = (ky_u16*)C;
                    if (accumulate) v = __fmaf_rn(beta, Elem<T>::load(cp, at), v);
                    Elem<T>::store(cp, at, v);
                }
            }
        }
    }
}

// One block per (batch entry, output tile): blockIdx.x = bz * tiles + tm * tiles_n + tn.
template <typename T, bool TA, bool TB>
__device__ __forceinline__ void gemm(const void* a, const void* b, void* c, ky_i64 M, ky_i64 N,
                                     ky_i64 K, ky_i64 lda, ky_i64 ldb, ky_i64 ldc,
                                     ky_i64 stride_a, ky_i64 stride_b, ky_i64 stride_c,
                                     float alpha, float beta, int accumulate, int c_f32) {
    const ky_i64 tiles_n = (N + BN - 1) / BN;
    const ky_i64 tiles = ((M + BM - 1) / BM) * tiles_n;
    const ky_i64 bz = (ky_i64)blockIdx.x / tiles;
    const ky_i64 pid = (ky_i64)blockIdx.x % tiles;
    const ky_i64 tm = pid / tiles_n, tn = pid % tiles_n;
    const ky_i64 c_size = c_f32 ? 4 : 2;
    tile<T, TA, TB>((const ky_u16*)a + bz * stride_a, (const ky_u16*)b + bz * stride_b,
                    (unsigned char*)c + bz * stride_c * c_size, M, N, K, lda, ldb, ldc, tm * BM,
                    tn * BN, alpha, beta, accumulate, c_f32);
}

}  // namespace gbm

// Entry points: gemm_bi_mfma_<dtype>_<op(A)><op(B)>, n = used as stored, t = transposed.
#define GBM_ENTRY(NAME, T, TA, TB)                                                             \
    extern "C" __global__ void __launch_bounds__(gbm::THREADS)                                 \
        NAME(const void* a, const void* b, void* c, long long m, long long n, long long k,     \
             long long lda, long long ldb, long long ldc, long long stride_a,                  \
             long long stride_b, long long stride_c, float alpha, float beta, int accumulate, \
             int c_f32) {                                                                      \
        gbm::gemm<T, TA, TB>(a, b, c, m, n, k, lda, ldb, ldc, stride_a, stride_b, stride_c,    \
                             alpha, beta, accumulate, c_f32);                                  \
    }

#define GBM_DTYPE(D, T)                                  \
    GBM_ENTRY(gemm_bi_mfma_##D##_nn, T, false, false)    \
    GBM_ENTRY(gemm_bi_mfma_##D##_nt, T, false, true)     \
    GBM_ENTRY(gemm_bi_mfma_##D##_tn, T, true, false)     \
    GBM_ENTRY(gemm_bi_mfma_##D##_tt, T, true, true)

GBM_DTYPE(f16, ky_f16)
GBM_DTYPE(bf16, ky_bf16)
