// kernels/gemm_bi_simt.cu: batch-invariant, deterministic GEMM with plain f32 FMAs (no matrix
// instructions): the portable path of the AMD backend (every gfx arch hiprtc targets, wave32
// or wave64), which also compiles with NVRTC so that its logic is proven on NVIDIA hardware
// (crates/cuda/tests/gemm_simt_on_cuda.rs). Rust side: crates/kernels/src/gemm_bi_simt.rs.
//
//   C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b]     (b < batch; batch stride 0 = broadcast)
//
// A and B are f32, f16 or bf16 (the same dtype), row-major with row strides lda / ldb; op(A)
// is A (stored [m, k]) or A^T (stored [k, m], `TA`); op(B) is B (stored [k, n]) or B^T
// (stored [n, k], `TB`). Accumulation is f32; C is A's dtype or f32 (`c_f32`), read only when
// `accumulate` (beta != 0), so with accumulate == 0 C may hold anything (NaN included). Any
// M, N, K >= 1, any alignment: every global access is one element.
//
// One configuration for every problem:
// - block tile BM x BN x BK = 64 x 64 x 16, THREADS = 256 (a multiple of 64: four wave64
//   wavefronts, eight wave32 ones or eight warps), as 16 x 16 threads; thread (tx, ty) =
//   (tid % 16, tid / 16) owns the 4 x 4 outputs at tile rows ty + 16 i and columns tx + 16 j
//   (i, j < 4), each in one f32 accumulator;
// - static shared memory: one k-tile of each operand converted to f32, A as As[k][m] and B as
//   Bs[k][n] (rows padded by one float, so the transposing stores of a K-major operand do not
//   all hit one bank), 8,320 bytes;
// - global -> shared: each thread reads 4 elements of each operand per k-tile (consecutive
//   threads read consecutive addresses in the operand's stored orientation), element by
//   element, with zero fill outside the matrix; the next k-tile is read into registers while
//   the current one is multiplied (a register double buffer: it moves loads, never values).
//   No warp shuffles, no atomics, no dynamic shared memory.
//
// The reduction order, and why it is batch-invariant:
// every output element C[b][i][j] is computed by exactly one thread, in one accumulator that
// starts at +0 and receives, for k = 0, 1, ..., 16 * ceil(K / 16) - 1 in increasing order, one
// `acc = fma(a[i][k], b[k][j], acc)` rounded to nearest (`__fmaf_rn`, so no compiler may
// contract or reassociate it differently); the k past K are exact zeros in both operands
// (products +0, which leave acc unchanged except that -0 becomes +0, the same for every M).
// That sequence depends on K alone: not on M, not on the batch, not on which block or thread
// or register holds the element; there is no split-K, no atomic, no choice among
// configurations. The epilogue is `v = alpha * acc` rounded on its own (`ky_fmul_rn`: CUDA's
// `__fmul_rn`; on HIP a multiply that is never contracted into the next FMA) then, when
// accumulating, `v = __fmaf_rn(beta, c_old, v)`, stored rounded to nearest in C's dtype (as in
// gemm_bi.cu).
// A row of C therefore has the same bits whatever batch (M, or batch count) it rides in, and
// every run gives the same bits, on a given device and compiler.
//
// Launch: a 1-D grid of batch * ceil(M / 64) * ceil(N / 64) blocks of THREADS threads, block
// bz * tiles + tm * tiles_n + tn computing tile (tm, tn) of batch entry bz; no dynamic shared
// memory.
#include "common.cuh"

namespace gbs {

constexpr int BM = 64;
constexpr int BN = 64;
constexpr int BK = 16;
constexpr int THREADS = 256;
// Floats of padding per shared-memory row.
constexpr int PAD = 1;
// Outputs per thread along M and N; threads along N and M.
constexpr int TM = 4;
constexpr int TN = 4;
constexpr int THREADS_N = BN / TN;  // 16
constexpr int THREADS_M = BM / TM;  // 16
// Elements of each operand a thread loads per k-tile.
constexpr int LOADS = BM * BK / THREADS;  // 4
constexpr int SMEM_BYTES = BK * (BM + PAD) * 4 + BK * (BN + PAD) * 4;
// The Rust side (`SHARED_BYTES` in crates/kernels/src/gemm_bi_simt.rs) documents this size.
static_assert(SMEM_BYTES == 8320, "keep crates/kernels/src/gemm_bi_simt.rs in step");
static_assert(BM == BN, "one loader shape serves A and B");
static_assert(THREADS_M * THREADS_N == THREADS, "16 x 16 threads");
static_assert(THREADS % 64 == 0, "whole wave64 wavefronts");
static_assert(LOADS * THREADS == BM * BK, "whole elements per thread");

// One operand's k-tile, as the thread moves it: element e (< LOADS) is at tile row r[e] (an M
// or N index, < BM) and tile column c[e] (a k index, < BK). `KMAJOR`: the operand is stored
// with k contiguous (A [m, k]; B^T stored [n, k]), so consecutive threads take consecutive k;
// else (A^T stored [k, m]; B [k, n]) consecutive threads take consecutive m or n.
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
// along M or N, from `mn0` for this block; `K` along k) into `v`, as f32, zero outside.
template <typename T, bool KMAJOR>
__device__ __forceinline__ void fetch(const typename Elem<T>::storage* p, ky_i64 ld, ky_i64 mn,
                                      ky_i64 mn0, ky_i64 K, ky_i64 k0, int tid,
                                      float (&v)[LOADS]) {
#pragma unroll
    for (int e = 0; e < LOADS; ++e) {
        int r, c;
        tile_coords<KMAJOR>(tid, e, r, c);
        const ky_i64 row = mn0 + r, k = k0 + c;
        v[e] = 0.0f;
        if (row < mn && k < K) {
            v[e] = Elem<T>::load(p, KMAJOR ? row * ld + k : k * ld + row);
        }
    }
}

// Stores `v` (from `fetch`) to the shared tile s[k][mn].
template <bool KMAJOR>
__device__ __forceinline__ void put(float (*s)[BM + PAD], int tid, const float (&v)[LOADS]) {
#pragma unroll
    for (int e = 0; e < LOADS; ++e) {
        int r, c;
        tile_coords<KMAJOR>(tid, e, r, c);
        s[c][r] = v[e];
    }
}

// One output tile: rows m0.., columns n0.. of the batch entry whose matrices are A, B and C.
template <typename T, bool TA, bool TB>
__device__ __forceinline__ void tile(const typename Elem<T>::storage* A,
                                     const typename Elem<T>::storage* B, void* C, ky_i64 M,
                                     ky_i64 N, ky_i64 K, ky_i64 lda, ky_i64 ldb, ky_i64 ldc,
                                     ky_i64 m0, ky_i64 n0, float alpha, float beta,
                                     int accumulate, int c_f32) {
    // A is K-major unless transposed; B is K-major when transposed.
    constexpr bool A_KMAJOR = !TA;
    constexpr bool B_KMAJOR = TB;
    __shared__ float As[BK][BM + PAD];
    __shared__ float Bs[BK][BN + PAD];

    const int tid = threadIdx.x;
    const int tx = tid % THREADS_N, ty = tid / THREADS_N;

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

    float ra[LOADS], rb[LOADS];
    fetch<T, A_KMAJOR>(A, lda, M, m0, K, 0, tid, ra);
    fetch<T, B_KMAJOR>(B, ldb, N, n0, K, 0, tid, rb);
    for (ky_i64 k0 = 0; k0 < K; k0 += BK) {
        // Everyone is done reading the previous k-tile.
        __syncthreads();
        put<A_KMAJOR>(As, tid, ra);
        put<B_KMAJOR>(Bs, tid, rb);
        __syncthreads();
        // The next k-tile, read while this one is multiplied.
        if (k0 + BK < K) {
            fetch<T, A_KMAJOR>(A, lda, M, m0, K, k0 + BK, tid, ra);
            fetch<T, B_KMAJOR>(B, ldb, N, n0, K, k0 + BK, tid, rb);
        }
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            float a[TM], b[TN];
#pragma unroll
            for (int i = 0; i < TM; ++i) a[i] = As[kk][ty + i * THREADS_M];
#pragma unroll
            for (int j = 0; j < TN; ++j) b[j] = Bs[kk][tx + j * THREADS_N];
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = __fmaf_rn(a[i], b[j], acc[i][j]);
        }
    }

    // Epilogue: the same arithmetic as gemm_bi.cu's, one element at a time.
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const ky_i64 row = m0 + ty + i * THREADS_M;
        if (row >= M) continue;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            const ky_i64 col = n0 + tx + j * THREADS_N;
            if (col >= N) continue;
            const ky_i64 at = row * ldc + col;
            float v = ky_fmul_rn(alpha, acc[i][j]);
            if (c_f32) {
                float* cp = (float*)C;
                if (accumulate) v = __fmaf_rn(beta, cp[at], v);
                cp[at] = v;
            } else {
                typename Elem<T>::storage* cp = (typename Elem<T>::storage*)C;
                if (accumulate) v = __fmaf_rn(beta, Elem<T>::load(cp, at), v);
                Elem<T>::store(cp, at, v);
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
    typedef typename Elem<T>::storage S;
    const ky_i64 tiles_n = (N + BN - 1) / BN;
    const ky_i64 tiles = ((M + BM - 1) / BM) * tiles_n;
    const ky_i64 bz = (ky_i64)blockIdx.x / tiles;
    const ky_i64 pid = (ky_i64)blockIdx.x % tiles;
    const ky_i64 tm = pid / tiles_n, tn = pid % tiles_n;
    const ky_i64 c_size = c_f32 ? 4 : (ky_i64)Elem<T>::size;
    tile<T, TA, TB>((const S*)a + bz * stride_a, (const S*)b + bz * stride_b,
                    (unsigned char*)c + bz * stride_c * c_size, M, N, K, lda, ldb, ldc, tm * BM,
                    tn * BN, alpha, beta, accumulate, c_f32);
}

}  // namespace gbs

// Entry points: gemm_bi_simt_<dtype>_<op(A)><op(B)>, n = used as stored, t = transposed.
#define GBS_ENTRY(NAME, T, TA, TB)                                                             \
    extern "C" __global__ void __launch_bounds__(gbs::THREADS)                                 \
        NAME(const void* a, const void* b, void* c, long long m, long long n, long long k,     \
             long long lda, long long ldb, long long ldc, long long stride_a,                  \
             long long stride_b, long long stride_c, float alpha, float beta, int accumulate, \
             int c_f32) {                                                                      \
        gbs::gemm<T, TA, TB>(a, b, c, m, n, k, lda, ldb, ldc, stride_a, stride_b, stride_c,    \
                             alpha, beta, accumulate, c_f32);                                  \
    }

#define GBS_DTYPE(D, T)                                  \
    GBS_ENTRY(gemm_bi_simt_##D##_nn, T, false, false)    \
    GBS_ENTRY(gemm_bi_simt_##D##_nt, T, false, true)     \
    GBS_ENTRY(gemm_bi_simt_##D##_tn, T, true, false)     \
    GBS_ENTRY(gemm_bi_simt_##D##_tt, T, true, true)

GBS_DTYPE(f32, float)
GBS_DTYPE(f16, ky_f16)
GBS_DTYPE(bf16, ky_bf16)
