// kernels/softmax.cu: y[r, :] = exp(x[r, :] - max) / sum(exp(x[r, :] - max)), row by row.
//
// x and y are contiguous [rows, cols] of one dtype (float, ky_f16, ky_bf16); math in f32.
// The launch configuration is chosen by crates/kernels/src/rows.rs from `cols` alone (and
// the dtype): see that file for the table. Two families of entry points:
//
// - Register path, `softmax_<dtype>_{v,s}<C>`: each row is owned by a group of `tpr` threads
//   (tpr a power of two <= 32, several rows per block; or tpr == blockDim.x, a multiple of 32,
//   one row per block). Thread `lane` of a group holds C chunks of V = 16 / sizeof(dtype)
//   consecutive elements, chunk i starting at element (i * tpr + lane) * V, in registers as f32:
//   x is read once, y written once. `v` variants load and store each chunk with one 16-byte
//   access (needs 16-byte aligned pointers and cols % V == 0); `s` variants read the same
//   elements with scalar accesses (any alignment, any cols). Both use the same element-to-thread
//   mapping and the same reduction order, so the bits do not depend on the path.
// - Two-pass paths, `softmax_<dtype>_{smem,long}_{v,s}`: one row per block (a multiple of 32
//   threads, at most 512). Pass 1 streams the row once, KY_U chunks per thread in flight,
//   keeping an online (max, sum of exp) per thread; the block merges them in a fixed tree;
//   pass 2 reads the row again and writes y: `smem` from dynamic shared memory where pass 1
//   kept it (cols * sizeof(dtype) bytes, rounded up to 16), `long` from global memory (L2
//   while the rows in flight fit in it). The two give the same bits. Any cols.
//
// Reductions: per thread in chunk order, then a xor butterfly over the group's lanes, then (one
// row per block) a butterfly over the warps' results. The order depends on (cols, tpr, C, block
// size) only, and the launcher picks those from cols alone: deterministic and batch-invariant.
//
// exp(d) is computed as exp2f(d * log2(e)) on d = x - max (<= 0): a relative error of about
// |d| * 2^-24 plus exp2f's 2 ulp, well inside the f32 tolerance (1e-5).
#include "common.cuh"

#include "rows.cuh"

// ---- register path ---------------------------------------------------------------------------

// Finishes one row whose raw chunks `raw` holds: the reductions (through `red0` and `red1`, 32
// floats each) and y.
template <typename T, int C, bool VEC>
__device__ __forceinline__ void softmax_row(const KyChunks<T, C, VEC>& raw, void* yv, ky_i64 off,
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
            v[i][k] = exp2f((v[i][k] - m) * KY_LOG2E);
            s += v[i][k];
        }
    }
    s = ky_group_sum(s, tpr, red1);
    const float inv = 1.0f / s;
    #pragma unroll
    for (int i = 0; i < C; ++i) {
        #pragma unroll
        for (int k = 0; k < V; ++k) v[i][k] *= inv;
    }
    ky_store_chunks<T, C, VEC>((S*)yv + off, lane, tpr, cols, active, v);
}

template <typename T, int C, bool VEC>
__device__ __forceinline__ void softmax_reg(const void* xv, void* yv, ky_i64 rows, ky_i64 cols64,
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
    softmax_row<T, C, VEC>(raw, yv, off, lane, tpr, cols, active, red[0], red[1]);
}

// The persistent form (rows.cuh, `ky_rows_pipelined`): the same rows, the next set's loads in
// flight while this one is reduced.
template <typename T, int C, bool VEC>
__device__ __forceinline__ void softmax_persistent(const void* xv, void* yv, ky_i64 rows,
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
            softmax_row<T, C, VEC>(raw, yv, (active ? row : 0) * cols64, lane, tpr, cols, active,
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
__device__ __forceinline__ void softmax_two_pass(const void* xv, void* yv, ky_i64 cols64) {
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
    const float inv = 1.0f / s;

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
            for (int k = 0; k < V; ++k) v[k] = exp2f((v[k] - m) * KY_LOG2E) * inv;
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

#define KY_SOFTMAX_REG(NAME, T, C, VEC, MAXT)                                                      \
    extern "C" __global__ void __launch_bounds__(MAXT)                                             \
        NAME(const void* x, void* y, long long rows, long long cols, long long tpr) {              \
        softmax_reg<T, C, VEC>(x, y, rows, cols, tpr);                                             \
    }

// Persistent register path (`_pv<C>`): the register path's block and tpr; grid =
// min(sets, multiprocessors * KY_P_TPSM(C, false) / blockDim.x), sets = ceil(rows /
// (blockDim.x / tpr)).
#define KY_SOFTMAX_P(NAME, T, C)                                                                 \
    extern "C" __global__ void __launch_bounds__(512, KY_P_TPSM(C, false) / 512)                  \
        NAME(const void* x, void* y, long long rows, long long cols, long long tpr) {              \
        softmax_persistent<T, C, true>(x, y, rows, cols, tpr);                                        \
    }

#define KY_SOFTMAX_TWO_PASS(NAME, T, VEC, SMEM)                                                    \
    extern "C" __global__ void __launch_bounds__(512)                                              \
        NAME(const void* x, void* y, long long rows, long long cols, long long tpr) {              \
        (void)rows;                                                                                \
        (void)tpr;                                                                                 \
        softmax_two_pass<T, VEC, SMEM>(x, y, cols);                                                \
    }

#define KY_SOFTMAX_DTYPE(D, T)                                                                     \
    KY_SOFTMAX_REG(softmax_##D##_v1, T, 1, true, 1024)                                             \
    KY_SOFTMAX_REG(softmax_##D##_v2, T, 2, true, 1024)                                             \
    KY_SOFTMAX_REG(softmax_##D##_v4, T, 4, true, 512)                                              \
    KY_SOFTMAX_REG(softmax_##D##_s1, T, 1, false, 1024)                                            \
    KY_SOFTMAX_REG(softmax_##D##_s2, T, 2, false, 1024)                                            \
    KY_SOFTMAX_REG(softmax_##D##_s4, T, 4, false, 512)                                             \
    KY_SOFTMAX_P(softmax_##D##_pv1, T, 1) \
    KY_SOFTMAX_P(softmax_##D##_pv2, T, 2) \
    KY_SOFTMAX_P(softmax_##D##_pv4, T, 4) \
    KY_SOFTMAX_TWO_PASS(softmax_##D##_smem_v, T, true, true)                                       \
    KY_SOFTMAX_TWO_PASS(softmax_##D##_smem_s, T, false, true)                                      \
    KY_SOFTMAX_TWO_PASS(softmax_##D##_long_v, T, true, false)                                      \
    KY_SOFTMAX_TWO_PASS(softmax_##D##_long_s, T, false, false)

KY_SOFTMAX_DTYPE(f32, float)
KY_SOFTMAX_DTYPE(f16, ky_f16)
KY_SOFTMAX_DTYPE(bf16, ky_bf16)
// f32 chunks hold 4 elements: 8 chunks keep 32 values per thread, as 4 chunks of a 16-bit type.
KY_SOFTMAX_REG(softmax_f32_v8, float, 8, true, 512)
KY_SOFTMAX_REG(softmax_f32_s8, float, 8, false, 512)
KY_SOFTMAX_P(softmax_f32_pv8, float, 8)
