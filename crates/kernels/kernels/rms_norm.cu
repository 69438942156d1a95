// kernels/rms_norm.cu: y = x / sqrt(mean(x^2) + eps) * weight, row by row, with an optional
// fused residual add.
//
// x, y (and residual, residual_out) are contiguous [rows, cols]; weight is [cols]; one dtype
// (float, ky_f16, ky_bf16); math in f32. With a residual (a non-null `residual` pointer, and
// then `residual_out` too), x' = x + residual is rounded to the dtype, written to
// residual_out, and y is the norm of that stored x' (so y and residual_out agree).
//
// The launch configuration is chosen by crates/kernels/src/rms_norm.rs from `cols` alone
// (and the dtype): see that file for the table. Two families of entry points:
//
// - Register path, `rms_norm_<dtype>_{v,s}<C>[_res]`: each row is owned by a group of `tpr`
//   threads (tpr a power of two <= 32, several rows per block; or tpr == blockDim.x, a multiple
//   of 32, one row per block). Thread `lane` of a group holds C chunks of V = 16 / sizeof(dtype)
//   consecutive elements, chunk i starting at element (i * tpr + lane) * V, and the weight
//   chunks it needs, in registers as raw storage (converted to f32 where used). x (and the
//   residual) read once, y (and residual_out) written once; the weight is read by every row,
//   from L1/L2. `v` variants use one 16-byte access per chunk (16-byte aligned pointers and
//   cols % V == 0); `s` variants scalar accesses (any alignment and cols), with the same
//   mapping and reduction order, so the bits do not depend on the path. `_res`: the fused add.
// - Long-row path, `rms_norm_<dtype>_long_{v,s}[_res]`: one row per block (a multiple of 32
//   threads, at most 512). Pass 1 streams the row (KY_U chunks per thread in flight), writes
//   residual_out and sums the squares; pass 2 reads x' again (residual_out, or x; from L2 while
//   the rows in flight fit) with the weight and writes y. Each thread re-reads only what it
//   wrote. Any cols.
//
// Reductions: per thread in chunk order, then a xor butterfly over the group's lanes, then (one
// row per block) a butterfly over the warps' results. The order depends on (cols, tpr, C, block
// size) only, and the launcher picks those from cols alone: deterministic and batch-invariant.
// The scale 1 / sqrt(mean + eps) divides by a correctly rounded square root (`ky_sqrt_rn`) on
// every device.
#include "common.cuh"

#include "rows.cuh"

// x' = round(x + r) to the dtype, as f32 (exact).
template <typename T>
__device__ __forceinline__ float ky_add_round(float x, float r) {
    return Elem<T>::to_f32(Elem<T>::from_f32(x + r));
}

// ---- register path ---------------------------------------------------------------------------
// x' and the weight stay in registers as raw storage (half the registers of f32 for 16-bit
// types) and are converted where used; RES (the fused residual add) is a template parameter so
// the plain kernel holds no residual registers.

// One set of loads of the register path: x (and the residual) of one row, as raw chunks.
template <typename T, int C, bool VEC, bool RES>
struct KyRmsIn {
    typedef typename Elem<T>::storage S;
    KyChunks<T, C, VEC> x;
    KyChunks<T, RES ? C : 1, VEC> r;  // RES only

    __device__ __forceinline__ void load(const void* xv, const void* rv, ky_i64 off, int lane,
                                         int tpr, int cols, bool active) {
        x.template load<true>((const S*)xv + off, lane, tpr, cols, active);
        if constexpr (RES) r.template load<true>((const S*)rv + off, lane, tpr, cols, active);
    }
};

// Finishes one row whose loads `in` holds: the fused add (stored to residual_out), the weight
// loads, the sum of squares, its reduction (through `red`, 32 floats) and y.
template <typename T, int C, bool VEC, bool RES>
__device__ __forceinline__ void rms_norm_row(KyRmsIn<T, C, VEC, RES>& in, const void* wv,
                                             void* yv, void* rov, ky_i64 off, int lane, int tpr,
                                             int cols, bool active, float eps, float* red) {
    typedef typename Elem<T>::storage S;
    constexpr int V = Vec16<T>::n;
    KyChunks<T, C, VEC>& xr = in.x;
    if constexpr (RES) {
        #pragma unroll
        for (int i = 0; i < C; ++i) {
            const int e0 = (i * tpr + lane) * V;
            float a[V], b[V];
            xr.unpack_chunk(i, e0, cols, active, 0.0f, a);
            in.r.unpack_chunk(i, e0, cols, active, 0.0f, b);
            #pragma unroll
            for (int k = 0; k < V; ++k) a[k] = ky_add_round<T>(a[k], b[k]);
            xr.pack_chunk(i, e0, cols, active, a);
        }
        xr.store((S*)rov + off, lane, tpr, cols, active);
    }
    KyChunks<T, C, VEC> wr;
    wr.template load<false>((const S*)wv, lane, tpr, cols, active);

    float ss = 0.0f;
    #pragma unroll
    for (int i = 0; i < C; ++i) {
        float a[V];
        xr.unpack_chunk(i, (i * tpr + lane) * V, cols, active, 0.0f, a);
        #pragma unroll
        for (int k = 0; k < V; ++k) ss = fmaf(a[k], a[k], ss);
    }
    ss = ky_group_sum(ss, tpr, red);
    const float inv = 1.0f / ky_sqrt_rn(ss / (float)cols + eps);

    #pragma unroll
    for (int i = 0; i < C; ++i) {
        const int e0 = (i * tpr + lane) * V;
        float a[V], w[V];
        xr.unpack_chunk(i, e0, cols, active, 0.0f, a);
        wr.unpack_chunk(i, e0, cols, active, 0.0f, w);
        #pragma unroll
        for (int k = 0; k < V; ++k) a[k] = a[k] * inv * w[k];
        xr.pack_chunk(i, e0, cols, active, a);
    }
    xr.store((S*)yv + off, lane, tpr, cols, active);
}

// Every load of the row (x and the residual, or x and the weight) is in flight before the
// first use; with a residual, the weight loads follow the add (fewer live registers) and
// overlap the sum of squares and the reduction.
template <typename T, int C, bool VEC, bool RES>
__device__ __forceinline__ void rms_norm_reg(const void* xv, const void* rv, const void* wv,
                                             void* yv, void* rov, ky_i64 rows, ky_i64 cols64,
                                             ky_i64 tpr64, float eps) {
    __shared__ float red[32];
    const int tpr = (int)tpr64, cols = (int)cols64;
    const int group = threadIdx.x / tpr, lane = threadIdx.x - group * tpr;
    const ky_i64 row = (ky_i64)blockIdx.x * (blockDim.x / tpr) + group;
    const bool active = row < rows;
    const ky_i64 off = (active ? row : 0) * cols64;
    if (lane == 0) {
        typedef typename Elem<T>::storage S;
        ky_l2_prefetch_ahead(xv, row, rows, cols64 * (ky_i64)sizeof(S));
        if constexpr (RES) ky_l2_prefetch_ahead(rv, row, rows, cols64 * (ky_i64)sizeof(S));
    }
    KyRmsIn<T, C, VEC, RES> in;
    in.load(xv, rv, off, lane, tpr, cols, active);
    rms_norm_row<T, C, VEC, RES>(in, wv, yv, rov, off, lane, tpr, cols, active, eps, red);
}

// The persistent form (rows.cuh, `ky_rows_pipelined`): the same rows, the next set's x (and
// residual) in flight while this one is reduced.
template <typename T, int C, bool VEC, bool RES>
__device__ __forceinline__ void rms_norm_persistent(const void* xv, const void* rv,
                                                    const void* wv, void* yv, void* rov,
                                                    ky_i64 rows, ky_i64 cols64, ky_i64 tpr64,
                                                    float eps) {
    __shared__ float red[2][32];
    const int tpr = (int)tpr64, cols = (int)cols64;
    const int rpb = (int)blockDim.x / tpr;
    const int group = threadIdx.x / tpr, lane = threadIdx.x - group * tpr;
    const ky_i64 sets = (rows + rpb - 1) / rpb;
    typedef KyRmsIn<T, C, VEC, RES> In;
    ky_rows_pipelined<In>(
        sets,
        [&](In& in, ky_i64 set) {
            const ky_i64 row = set * rpb + group;
            const bool active = set < sets && row < rows;
            in.load(xv, rv, (active ? row : 0) * cols64, lane, tpr, cols, active);
        },
        [&](In& in, ky_i64 set, int parity) {
            const ky_i64 row = set * rpb + group;
            const bool active = row < rows;
            rms_norm_row<T, C, VEC, RES>(in, wv, yv, rov, (active ? row : 0) * cols64, lane, tpr,
                                         cols, active, eps, red[parity]);
        });
}

// ---- long-row path ---------------------------------------------------------------------------
// One row per block. Pass 1 reads x (and the residual), KY_U chunks per thread in flight per
// step, writes residual_out and sums the squares; pass 2 reads x' again (residual_out, written
// by this same thread, so plain loads and no barrier; or x) with the weight, last step first
// (the most recently touched part of the row is the likeliest to be in L2), and writes y.

template <typename T, bool VEC, bool RES>
__device__ __forceinline__ void rms_norm_long(const void* xv, const void* rv, const void* wv,
                                              void* yv, void* rov, ky_i64 cols64, float eps) {
    typedef typename Elem<T>::storage S;
    constexpr int V = Vec16<T>::n;
    __shared__ float red[32];
    const int cols = (int)cols64, nt = (int)blockDim.x, tid = (int)threadIdx.x;
    const ky_i64 off = (ky_i64)blockIdx.x * cols64;
    if (tid == 0) {
        ky_l2_prefetch_ahead(xv, blockIdx.x, gridDim.x, cols64 * (ky_i64)sizeof(S));
        if constexpr (RES) ky_l2_prefetch_ahead(rv, blockIdx.x, gridDim.x, cols64 * (ky_i64)sizeof(S));
    }
    const S* x = (const S*)xv + off;
    const int nv = (cols + V - 1) / V;  // chunks in the row
    const int step = KY_U * nt;         // chunks per step of the block

    float ss = 0.0f;
    for (int c0 = 0; c0 < nv; c0 += step) {
        KyChunks<T, KY_U, VEC> xr;
        xr.template load<true>(x, c0 + tid, nt, cols, true);
        if constexpr (RES) {
            KyChunks<T, KY_U, VEC> rr;
            rr.template load<true>((const S*)rv + off, c0 + tid, nt, cols, true);
            #pragma unroll
            for (int i = 0; i < KY_U; ++i) {
                const int e0 = (c0 + tid + i * nt) * V;
                float a[V], b[V];
                xr.unpack_chunk(i, e0, cols, true, 0.0f, a);
                rr.unpack_chunk(i, e0, cols, true, 0.0f, b);
                #pragma unroll
                for (int k = 0; k < V; ++k) a[k] = ky_add_round<T>(a[k], b[k]);
                xr.pack_chunk(i, e0, cols, true, a);
            }
            xr.store((S*)rov + off, c0 + tid, nt, cols, true);
        }
        #pragma unroll
        for (int i = 0; i < KY_U; ++i) {
            float a[V];
            xr.unpack_chunk(i, (c0 + tid + i * nt) * V, cols, true, 0.0f, a);
            #pragma unroll
            for (int k = 0; k < V; ++k) ss = fmaf(a[k], a[k], ss);
        }
    }
    ss = ky_group_sum(ss, nt, red);
    const float inv = 1.0f / ky_sqrt_rn(ss / (float)cols + eps);

    const S* xs = RES ? (const S*)rov + off : x;
    for (int c0 = (nv - 1) / step * step; c0 >= 0; c0 -= step) {
        KyChunks<T, KY_U, VEC> xr, wr;
        xr.template load<false>(xs, c0 + tid, nt, cols, true);
        wr.template load<false>((const S*)wv, c0 + tid, nt, cols, true);
        #pragma unroll
        for (int i = 0; i < KY_U; ++i) {
            const int e0 = (c0 + tid + i * nt) * V;
            float a[V], w[V];
            xr.unpack_chunk(i, e0, cols, true, 0.0f, a);
            wr.unpack_chunk(i, e0, cols, true, 0.0f, w);
            #pragma unroll
            for (int k = 0; k < V; ++k) a[k] = a[k] * inv * w[k];
            xr.pack_chunk(i, e0, cols, true, a);
        }
        xr.store((S*)yv + off, c0 + tid, nt, cols, true);
    }
}

// ---- entry points ----------------------------------------------------------------------------
// Every entry point: (x, residual, weight, y, residual_out, rows, cols, tpr, eps). The `_res`
// entry points do the fused add (residual and residual_out set); the others ignore both
// pointers (pass null).
// Register path (`_v<C>`, `_s<C>`): a block of any multiple of 32 threads (at most the bound
// below) that tpr divides; grid = ceil(rows / (blockDim.x / tpr)).
// Long path (`_long_*`): tpr == blockDim.x, a multiple of 32 up to 512; one row per block:
// grid = rows.

#define KY_RMS_ARGS                                                                                \
    const void *x, const void *residual, const void *weight, void *y, void *residual_out,          \
        long long rows, long long cols, long long tpr, float eps

#define KY_RMS_REG(NAME, T, C, VEC, MAXT)                                                          \
    extern "C" __global__ void __launch_bounds__(MAXT) NAME(KY_RMS_ARGS) {                         \
        rms_norm_reg<T, C, VEC, false>(x, residual, weight, y, residual_out, rows, cols, tpr,      \
                                       eps);                                                       \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(MAXT) NAME##_res(KY_RMS_ARGS) {                   \
        rms_norm_reg<T, C, VEC, true>(x, residual, weight, y, residual_out, rows, cols, tpr,       \
                                      eps);                                                        \
    }

// Persistent register path (`_pv<C>`): the register path's block and tpr; grid =
// min(sets, multiprocessors * KY_P_TPSM(C, RES) / blockDim.x), sets = ceil(rows /
// (blockDim.x / tpr)).
#define KY_RMS_P(NAME, T, C, MAXT)                                                                 \
    extern "C" __global__ void __launch_bounds__(MAXT, KY_P_TPSM(C, false) / MAXT)                 \
        NAME(KY_RMS_ARGS) {                                                                        \
        rms_norm_persistent<T, C, true, false>(x, residual, weight, y, residual_out, rows, cols,   \
                                               tpr, eps);                                          \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(MAXT, KY_P_TPSM(C, true) / MAXT)                  \
        NAME##_res(KY_RMS_ARGS) {                                                                  \
        rms_norm_persistent<T, C, true, true>(x, residual, weight, y, residual_out, rows, cols,    \
                                              tpr, eps);                                           \
    }

#define KY_RMS_LONG(NAME, T, VEC)                                                                  \
    extern "C" __global__ void __launch_bounds__(512) NAME(KY_RMS_ARGS) {                          \
        (void)rows;                                                                                \
        (void)tpr;                                                                                 \
        rms_norm_long<T, VEC, false>(x, residual, weight, y, residual_out, cols, eps);             \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(512) NAME##_res(KY_RMS_ARGS) {                    \
        (void)rows;                                                                                \
        (void)tpr;                                                                                 \
        rms_norm_long<T, VEC, true>(x, residual, weight, y, residual_out, cols, eps);              \
    }

#define KY_RMS_DTYPE(D, T)                                                                         \
    KY_RMS_REG(rms_norm_##D##_v1, T, 1, true, 1024)                                                \
    KY_RMS_REG(rms_norm_##D##_v2, T, 2, true, 1024)                                                \
    KY_RMS_REG(rms_norm_##D##_v4, T, 4, true, 512)                                                 \
    KY_RMS_REG(rms_norm_##D##_s1, T, 1, false, 1024)                                               \
    KY_RMS_REG(rms_norm_##D##_s2, T, 2, false, 1024)                                               \
    KY_RMS_REG(rms_norm_##D##_s4, T, 4, false, 512)                                                \
    KY_RMS_P(rms_norm_##D##_pv1, T, 1, 512)                                                        \
    KY_RMS_P(rms_norm_##D##_pv2, T, 2, 512)                                                        \
    KY_RMS_P(rms_norm_##D##_pv4, T, 4, 512)                                                        \
    KY_RMS_LONG(rms_norm_##D##_long_v, T, true)                                                    \
    KY_RMS_LONG(rms_norm_##D##_long_s, T, false)

KY_RMS_DTYPE(f32, float)
KY_RMS_DTYPE(f16, ky_f16)
KY_RMS_DTYPE(bf16, ky_bf16)
// f32 chunks hold 4 elements: 8 chunks keep 32 values per thread, as 4 chunks of a 16-bit type.
KY_RMS_REG(rms_norm_f32_v8, float, 8, true, 512)
KY_RMS_REG(rms_norm_f32_s8, float, 8, false, 512)
KY_RMS_P(rms_norm_f32_pv8, float, 8, 512)
