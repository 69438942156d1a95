// kernels/silu_mul.cu: the SwiGLU activation, out[r, j] = silu(gate[r, j]) * up[r, j] with
// silu(g) = g / (1 + exp(-g)), f32 math, one rounding to the dtype (float, ky_f16, ky_bf16; one
// dtype for every tensor).
//
// Layouts: `gate` and `up` rows are `in_stride` elements apart, `out` rows `d` apart, every row
// contiguous. Fused x [rows, 2d]: gate = x, up = x + d, in_stride = 2d. Split gate [rows, d]
// and up [rows, d]: in_stride = d. Core validated the views (one dtype, one device, out disjoint
// from the inputs, so the inputs are read-only for the kernel's lifetime and may take the
// non-coherent streaming loads); the launcher passes the pointers and the stride.
//
// Work split (the launch shape is chosen by crates/kernels/src/silu_mul.rs from d alone): a
// "unit" is a 16-byte vector (`_v`: V = 16 / sizeof(dtype) elements; every pointer, in_stride
// and d a multiple of 16 bytes) or one element (`_s`: any alignment, any d). A block is
// blockDim.x threads over the columns of blockDim.y rows. Block column tile bx covers units
// [bx * U * blockDim.x, (bx + 1) * U * blockDim.x) of a row: thread x takes units
// bx * U * blockDim.x + x + i * blockDim.x, i < U (each warp access is contiguous), those past
// the row's end skipped (the tail). U is KY_SILU_VECS vectors (`_v`) or KY_SILU_ELEMS elements
// (`_s`). Thread y takes rows blockIdx.y * blockDim.y + y, then steps by gridDim.y * blockDim.y
// (gridDim.y is at most 65535: larger batches loop). A thread issues all 2 U loads of a row
// before its first computation and store (on the `_v` path 8 loads of 16 bytes in flight).
// No integer division anywhere; in-row unit indices are 32-bit (d <= 2^30, checked by the host).
// Measured on an H200 (crates/kernels/src/silu_mul.rs): 94% of a device copy's bandwidth.
//
// Arithmetic, per element: e = 2^(-g log2(e)) by the hardware approximation (`ky_ex2_approx`
// of port.cuh, as token_logprobs: ex2.approx.ftz on NVIDIA, v_exp_f32 on AMD; relative error
// about 2^-22, plus |g| 2^-24 from rounding the argument), then `__fdividef(g, 1 + e)` (the
// approximate division, 2 ulp on NVIDIA: a reciprocal and a product, where the correctly
// rounded `/` adds a Newton step and a slow-path call per element, which spilled registers on
// sm_75 .. sm_100; HIP defines it as the division), then the product with u, rounded once to
// the dtype. In all a few ulp of f32 for |g| < 10 (up to about 1.2 |g| ulp beyond; measured:
// at most 15 ulp for |g| < 15, relative L2 error 5e-8), far inside the f32 tolerance; f16 and
// bf16 within 1 ulp of the correctly rounded result.
// Edge values: g = +inf gives +inf (times u); g < about -88.7 gives e = inf and silu = -0;
// g = -inf gives NaN (-inf / inf), as the formula does; for -88.7 < g < -87.3 (1 + e above
// 2^126) NVIDIA's approximate division gives -0 where silu is about -1e-36; e is flushed to 0
// below 2^-126 (g > 87.3), where 1 + e = 1 anyway. Deterministic and batch-invariant: each
// output depends only on its two inputs, by the same arithmetic in both paths and every launch
// shape (nothing to contract into a fused multiply-add: the one add is behind ex2).
#include "common.cuh"

// 16-byte vectors of gate (and of up) per thread and row on the `_v` path; the host's
// `VECTORS_PER_THREAD`.
#define KY_SILU_VECS 4
// Elements of gate (and of up) per thread and row on the `_s` path; the host's
// `ELEMS_PER_THREAD`.
#define KY_SILU_ELEMS 8
// Threads per block, at most (the host's `THREADS`).
#define KY_SILU_THREADS 256

// log2(e), to turn exp into the hardware's 2^x.
#define KY_SILU_LOG2E 1.4426950408889634f

// silu(g) * u in f32.
__device__ __forceinline__ float ky_silu_mul(float g, float u) {
    const float e = ky_ex2_approx(g * -KY_SILU_LOG2E);  // exp(-g)
    return __fdividef(g, 1.0f + e) * u;
}

// One 16-byte global store (port.cuh keeps it one instruction).
__device__ __forceinline__ void ky_silu_store16(void* p, const ky_vec16& v) {
    ky_port_store16_global(p, v.w);
}

template <typename T>
__device__ __forceinline__ void silu_mul_vec(const void* gate_, const void* up_, void* out_,
                                             ky_i64 rows, ky_i64 d, ky_i64 in_stride) {
    typedef typename Elem<T>::storage S;
    constexpr int V = Vec16<T>::n;
    constexpr int U = KY_SILU_VECS;
    const int nv = (int)(d / V);  // vectors per row (d % V == 0 on this path)
    const int tx = (int)blockDim.x;
    const int c0 = (int)blockIdx.x * (tx * U) + (int)threadIdx.x;
    const ky_i64 row_step = (ky_i64)gridDim.y * blockDim.y;
    for (ky_i64 row = (ky_i64)blockIdx.y * blockDim.y + threadIdx.y; row < rows;
         row += row_step) {
        const S* g = static_cast<const S*>(gate_) + row * in_stride;
        const S* u = static_cast<const S*>(up_) + row * in_stride;
        S* o = static_cast<S*>(out_) + row * d;
        ky_vec16 gv[U], uv[U];
        #pragma unroll
        for (int i = 0; i < U; ++i) {
            const int c = c0 + i * tx;
            if (c < nv) {
                gv[i] = ky_load16_stream(g + c * V);
                uv[i] = ky_load16_stream(u + c * V);
            }
        }
        #pragma unroll
        for (int i = 0; i < U; ++i) {
            const int c = c0 + i * tx;
            if (c < nv) {
                float a[V], b[V];
                Vec16<T>::unpack(gv[i], a);
                Vec16<T>::unpack(uv[i], b);
                #pragma unroll
                for (int k = 0; k < V; ++k) a[k] = ky_silu_mul(a[k], b[k]);
                ky_silu_store16(o + c * V, Vec16<T>::pack(a));
            }
        }
    }
}

template <typename T>
__device__ __forceinline__ void silu_mul_scalar(const void* gate_, const void* up_, void* out_,
                                                ky_i64 rows, ky_i64 d, ky_i64 in_stride) {
    typedef typename Elem<T>::storage S;
    constexpr int U = KY_SILU_ELEMS;
    const int n = (int)d;
    const int tx = (int)blockDim.x;
    const int c0 = (int)blockIdx.x * (tx * U) + (int)threadIdx.x;
    const ky_i64 row_step = (ky_i64)gridDim.y * blockDim.y;
    for (ky_i64 row = (ky_i64)blockIdx.y * blockDim.y + threadIdx.y; row < rows;
         row += row_step) {
        const S* g = static_cast<const S*>(gate_) + row * in_stride;
        const S* u = static_cast<const S*>(up_) + row * in_stride;
        S* o = static_cast<S*>(out_) + row * d;
        float a[U], b[U];
        #pragma unroll
        for (int i = 0; i < U; ++i) {
            const int c = c0 + i * tx;
            a[i] = 0.0f;  // defined past the tail too (no value carried between rows)
            b[i] = 0.0f;
            if (c < n) {
                a[i] = Elem<T>::load(g, c);
                b[i] = Elem<T>::load(u, c);
            }
        }
        #pragma unroll
        for (int i = 0; i < U; ++i) {
            const int c = c0 + i * tx;
            if (c < n) Elem<T>::store(o, c, ky_silu_mul(a[i], b[i]));
        }
    }
}

// Entry points: (gate, up, out, rows, d, in_stride); block (tx, ty) with tx * ty <= 256, grid
// (ceil(units / (U * tx)), min(ceil(rows / ty), 65535)), units = d / V (`_v`) or d (`_s`).
#define KY_SILU_ARGS                                                                               \
    const void *gate, const void *up, void *out, long long rows, long long d, long long in_stride

#define KY_SILU_DTYPE(D, T)                                                                        \
    extern "C" __global__ void __launch_bounds__(KY_SILU_THREADS) silu_mul_##D##_v(KY_SILU_ARGS) { \
        silu_mul_vec<T>(gate, up, out, rows, d, in_stride);                                        \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(KY_SILU_THREADS) silu_mul_##D##_s(KY_SILU_ARGS) { \
        silu_mul_scalar<T>(gate, up, out, rows, d, in_stride);                                     \
    }

KY_SILU_DTYPE(f32, float)
KY_SILU_DTYPE(f16, ky_f16)
KY_SILU_DTYPE(bf16, ky_bf16)
