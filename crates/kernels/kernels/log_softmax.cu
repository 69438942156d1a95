// kernels/log_softmax.cu: y[r, :] = x[r, :] - max - log(sum(exp(x[r, :] - max))), row by row.
//
// x and y are contiguous [rows, cols] of one dtype (float, ky_f16, ky_bf16); math in f32.
// The same structure, launch configurations and reduction order as kernels/softmax.cu (read
// its header): the launcher (crates/kernels/src/rows.rs) picks them from `cols` alone.
//
// - Register path, `log_softmax_<dtype>_{v,s}<C>`: a group of `tpr` threads per row, C chunks
//   of V = 16 / sizeof(dtype) elements per thread held in registers as f32; x read once, y
//   written once. `v`: 16-byte accesses; `s`: scalar accesses, same mapping and bits.
// - Two-pass paths, `log_softmax_<dtype>_{smem,long}_{v,s}`: one row per block, an online
//   (max, sum of exp) pass, a block merge, then a second read that writes y, from dynamic
//   shared memory (`smem`) or from global memory / L2 (`long`); the same bits. Any cols.
//
// The output is (x - max) - log(s) with s = sum(exp2f((x - max) * log2(e))) and an accurate
// logf: for f32 the error is a few ulps of the result.
#include "common.cuh"

#include "rows.cuh"

// ---- register path ---------------------------------------------------------------------------

// Finishes one row whose raw chunks `raw` holds: the reductions (through `red0` and `red1`, 32
// floats each) and y.
template <typename T, int C, bool VEC>
__device__ __forceinline__ void log_softmax_row(const KyChunks<T, C, VEC>& raw, void* yv, ky_i64 off,
                                            int lane, int tpr, int cols, bool active,
                                            float* red0, float* red1) {
    typedef typename Elem<T>::storage S;
    constexpr int V = Vec16<T>::n;
    float v[C][V];
    raw.unpack(lane, tpr, cols, active, KY_NEG_INF, v);

    float m = KY_NEG_INF;
    #pragma unroll
    for (int i = 0; i < C; ++i) {
        #pragma unroll
        for (int k = 0; k < V; ++k) m = fmaxf(m, v[i][k]);
    }
    m = ky_group_max(m, tpr, red0);

    // Padding reads as -inf: exp2f(-inf) = 0. A row of -inf (or with +inf or NaN) gives NaN,
    // as the f64 oracle does.
    float s = 0.0f;
    #pragma unroll
    for (int i = 0; i < C; ++i) {
        #pragma unroll
        for (int k = 0; k < V; ++k) {
            v[i][k] -= m;
            s += exp2f(v[i][k] * KY_LOG2E);
        }
    }
    s = ky_group_sum(s, tpr, red1);
    const float ls = logf(s);
    #pragma unroll
    for (int i = 0; i < C; ++i) {
        #pragma unroll
        for (int k = 0; k < V; ++k) v[i][k] -= ls;
    }
    ky_store_chunks<T, C, VEC>((S*)yv + off, lane, tpr, cols, active, v);
}

template <typename T, int C, bool VEC>
__device__ __forceinline__ void log_softmax_reg(const void* xv, void* yv, ky_i64 rows, ky_i64 cols64,
                                            ky_i64 tpr64) {
    typedef typename Elem<T>::storage S;
    __shared__ float red[2][32];
    const int tpr = (int)tpr64, cols = (int)cols64;
    const int group = threadIdx.x / tpr, lane = threadIdx.x - group * tpr;
    const ky_i64 row = (ky_i64)blockIdx.x * (blockDim.x / tpr) + group;
    const bool active = row < rows;
    const ky_i64 off = (active ? row : 0) * cols64;
    if (lane == 0) ky_l2_prefetch_ahead(xv, row, rows, cols64 * (ky_i64)sizeof(S));
    KyChunks<T, C, VEC> raw;
    raw.template load<true>((const S*)xv + off, lane, tpr, cols, active);
    log_softmax_row<T, C, VEC>(raw, yv, off, lane, tpr, cols, active, red[0], red[1]);
}

// The persistent form (rows.cuh, `ky_rows_pipelined`): the same rows, the next set's loads in
// flight while this one is reduced.
template <typename T, int C, bool VEC>
__device__ __forceinline__ void log_softmax_persistent(const void* xv, void* yv, ky_i64 rows,
                                                   ky_i64 cols64, ky_i64 tpr64) {
    typedef typename Elem<T>::storage S;
    typedef KyChunks<T, C, VEC> Raw;
    __shared__ float red[2][2][32];
    const int tpr = (int)tpr64, cols = (int)cols64;
    const int rpb = (int)blockDim.x / tpr;
    const int group = threadIdx.x / tpr, lane = threadIdx.x - group * tpr;
    const ky_i64 sets = (rows + rpb - 1) / rpb;
    ky_rows_pipelined<Raw>(
        sets,
        [&](Raw& raw, ky_i64 set) {
            const ky_i64 row = set * rpb + group;
            const bool active = set < sets && row < rows;
            raw.template load<true>((const S*)xv + (active ? row : 0) * cols64, lane, tpr, cols,
                                    active);
        },
        [&](Raw& raw, ky_i64 set, int parity) {
            const ky_i64 row = set * rpb + group;
            const bool active = row < rows;
            log_softmax_row<T, C, VEC>(raw, yv, (active ? row : 0) * cols64, lane, tpr, cols, active,
                                 red[parity][0], red[parity][1]);
        });
}

// ---- two-pass paths --------------------------------------------------------------------------
// One row per block. Pass 1 reads the row, KY_U chunks per thread in flight per step, and keeps
// an online (max, sum) per thread; the block merges them. Pass 2 reads the row again and
// writes y: from dynamic shared memory where pass 1 stored it (SMEM: each thread re-reads only
// what it stored, so no barrier), or from global memory, last step first (the most recently
// read part of the row is the likeliest to be in L2). Both read and reduce in the same order.

template <typename T, bool VEC, bool SMEM>
__device__ __forceinline__ void log_softmax_two_pass(const void* xv, void* yv,
                                                     ky_i64 cols64) {
    typedef typename Elem<T>::storage S;
    constexpr int V = Vec16<T>::n;
    extern __shared__ ky_vec16 ky_row[];
    __shared__ float red[2][32];
    const int cols = (int)cols64, nt = (int)blockDim.x, tid = (int)threadIdx.x;
    const ky_i64 off = (ky_i64)blockIdx.x * cols64;
    if (tid == 0) ky_l2_prefetch_ahead(xv, blockIdx.x, gridDim.x, cols64 * (ky_i64)sizeof(S));
    const S* x = (const S*)xv + off;
    S* y = (S*)yv + off;
    S* kept = reinterpret_cast<S*>(ky_row);
    const int nv = (cols + V - 1) / V;  // chunks in the row
    const int step = KY_U * nt;         // chunks per step of the block

    float m = KY_NEG_INF, s = 0.0f;
    for (int c0 = 0; c0 < nv; c0 += step) {
        KyChunks<T, KY_U, VEC> raw;
        raw.template load<true>(x, c0 + tid, nt, cols, true);
        if constexpr (SMEM) raw.store(kept, c0 + tid, nt, cols, true);
        float v[KY_U][V];
        raw.unpack(c0 + tid, nt, cols, true, KY_NEG_INF, v);
        float mx = m;
        #pragma unroll
        for (int i = 0; i < KY_U; ++i) {
            #pragma unroll
            for (int k = 0; k < V; ++k) mx = fmaxf(mx, v[i][k]);
        }
        if (mx != KY_NEG_INF) {  // else nothing but -inf so far: the state stays empty
            s *= exp2f((m - mx) * KY_LOG2E);
            #pragma unroll
            for (int i = 0; i < KY_U; ++i) {
                #pragma unroll
                for (int k = 0; k < V; ++k) s += exp2f((v[i][k] - mx) * KY_LOG2E);
            }
            m = mx;
        }
    }
    ky_block_lse(m, s, red[0], red[1]);
    const float ls = logf(s);

    for (int c0 = (nv - 1) / step * step; c0 >= 0; c0 -= step) {
        KyChunks<T, KY_U, VEC> raw;
        if constexpr (SMEM) {
            raw.template load<false>(kept, c0 + tid, nt, cols, true);
        } else {
            raw.template load<false>(x, c0 + tid, nt, cols, true);
        }
        #pragma unroll
        for (int i = 0; i < KY_U; ++i) {
            const int e0 = (c0 + tid + i * nt) * V;
            float v[V];
            raw.unpack_chunk(i, e0, cols, true, KY_NEG_INF, v);
            #pragma unroll
            for (int k = 0; k < V; ++k) v[k] = (v[k] - m) - ls;
            raw.pack_chunk(i, e0, cols, true, v);
        }
        raw.store(y, c0 + tid, nt, cols, true);
    }
}

// ---- entry points ----------------------------------------------------------------------------
// Every entry point: (x, y, rows, cols, tpr).
// Register path (`_v<C>`, `_s<C>`): a block of any multiple of 32 threads (at most the bound
// below) that tpr divides; grid = ceil(rows / (blockDim.x / tpr)).
// Two-pass paths (`_smem_*`, `_long_*`): tpr == blockDim.x, a multiple of 32 up to 512; one row
// per block: grid = rows. `_smem_*` need ceil(cols * sizeof(dtype) / 16) * 16 bytes of dynamic
// shared memory.

#define KY_LOG_SOFTMAX_REG(NAME, T, C, VEC, MAXT)                                                  \
    extern "C" __global__ void __launch_bounds__(MAXT)                                             \
        NAME(const void* x, void* y, long long rows, long long cols, long long tpr) {              \
        log_softmax_reg<T, C, VEC>(x, y, rows, cols, tpr);                                         \
    }

// Persistent register path (`_pv<C>`): the register path's block and tpr; grid =
// min(sets, multiprocessors * KY_P_TPSM(C, false) / blockDim.x), sets = ceil(rows /
// (blockDim.x / tpr)).
#define KY_LOG_SOFTMAX_P(NAME, T, C)                                                                 \
    extern "C" __global__ void __launch_bounds__(512, KY_P_TPSM(C, false) / 512)                  \
        NAME(const void* x, void* y, long long rows, long long cols, long long tpr) {              \
        log_softmax_persistent<T, C, true>(x, y, rows, cols, tpr);                                        \
    }

#define KY_LOG_SOFTMAX_TWO_PASS(NAME, T, VEC, SMEM)                                                \
    extern "C" __global__ void __launch_bounds__(512)                                              \
        NAME(const void* x, void* y, long long rows, long long cols, long long tpr) {              \
        (void)rows;                                                                                \
        (void)tpr;                                                                                 \
        log_softmax_two_pass<T, VEC, SMEM>(x, y, cols);                                            \
    }

#define KY_LOG_SOFTMAX_DTYPE(D, T)                                                                 \
    KY_LOG_SOFTMAX_REG(log_softmax_##D##_v1, T, 1, true, 1024)                                     \
    KY_LOG_SOFTMAX_REG(log_softmax_##D##_v2, T, 2, true, 1024)                                     \
    KY_LOG_SOFTMAX_REG(log_softmax_##D##_v4, T, 4, true, 512)                                      \
    KY_LOG_SOFTMAX_REG(log_softmax_##D##_s1, T, 1, false, 1024)                                    \
    KY_LOG_SOFTMAX_REG(log_softmax_##D##_s2, T, 2, false, 1024)                                    \
    KY_LOG_SOFTMAX_REG(log_softmax_##D##_s4, T, 4, false, 512)                                     \
    KY_LOG_SOFTMAX_P(log_softmax_##D##_pv1, T, 1) \
    KY_LOG_SOFTMAX_P(log_softmax_##D##_pv2, T, 2) \
    KY_LOG_SOFTMAX_P(log_softmax_##D##_pv4, T, 4) \
    KY_LOG_SOFTMAX_TWO_PASS(log_softmax_##D##_smem_v, T, true, true)                               \
    KY_LOG_SOFTMAX_TWO_PASS(log_softmax_##D##_smem_s, T, false, true)                              \
    KY_LOG_SOFTMAX_TWO_PASS(log_softmax_##D##_long_v, T, true, false)                              \
    KY_LOG_SOFTMAX_TWO_PASS(log_softmax_##D##_long_s, T, false, false)

KY_LOG_SOFTMAX_DTYPE(f32, float)
KY_LOG_SOFTMAX_DTYPE(f16, ky_f16)
KY_LOG_SOFTMAX_DTYPE(bf16, ky_bf16)
// f32 chunks hold 4 elements: 8 chunks keep 32 values per thread, as 4 chunks of a 16-bit type.
KY_LOG_SOFTMAX_REG(log_softmax_f32_v8, float, 8, true, 512)
KY_LOG_SOFTMAX_REG(log_softmax_f32_s8, float, 8, false, 512)
KY_LOG_SOFTMAX_P(log_softmax_f32_pv8, float, 8)
