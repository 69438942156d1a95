// kernels/common.cuh: helpers shared by every kernel source in kernels/.
//
// Needs no toolkit header: NVRTC or hiprtc compiles it alone (f16 and bf16 are handled as raw
// 16-bit patterns, converted by port.cuh or with integer arithmetic), so CI can compile every
// kernel with PyPI's libnvrtc and nothing else. What differs between CUDA and HIP is in
// port.cuh, spliced first; the code below is written once. The pipeline
// (crates/kernels/src/source.rs) splices this file in place of the line `#include "common.cuh"`.
//
// Conventions for every kernel source:
// - entry points are `extern "C" __global__`, one per dtype, named `<op>_<dtype>` (or with a
//   variant suffix); the Rust side lists each name once (`KernelSource::symbols`) and a test
//   checks that every listed name is in the compiled module;
// - pointers arrive as `const void*` / `void*` and are cast with the dtype's storage type;
// - sizes arrive as `long long` (i64) and strides in elements;
// - every reduction runs in a fixed order that depends only on the row length and the block
//   shape (which depends only on the row length), never on the number of rows: the kernels are
//   deterministic and batch-invariant;
// - a warp is the logical 32-lane warp of port.cuh (KY_LANES) on every device: shuffles go
//   through `ky_shfl_xor`, lanes are `threadIdx.x & 31`, warps `threadIdx.x >> 5`.
#pragma once

#include "port.cuh"

typedef unsigned short ky_u16;
typedef unsigned int ky_u32;
typedef long long ky_i64;

// Storage types: bf16 and f16 are 16-bit patterns.
struct ky_bf16 { ky_u16 bits; };
struct ky_f16 { ky_u16 bits; };

// ---- conversions ---------------------------------------------------------------------------

__device__ __forceinline__ float ky_bf16_to_f32(ky_u16 b) {
    return __uint_as_float(((ky_u32)b) << 16);
}

// Round to nearest even; NaN stays NaN (quiet). Integer arithmetic, so it runs on sm_75 too
// (cvt.rn.bf16.f32 needs sm_80).
__device__ __forceinline__ ky_u16 ky_f32_to_bf16(float f) {
    ky_u32 u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (ky_u16)((u >> 16) | 0x0040u);
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ky_u16)(u >> 16);
}

// ky_f16_to_f32 / ky_f32_to_f16 (exact / round to nearest even): in port.cuh.

// Element traits: `Elem<T>::load(p, i)` reads element i as float, `store(p, i, v)` rounds and
// writes. `T` is the storage type (float, ky_bf16, ky_f16).
template <typename T> struct Elem;

template <> struct Elem<float> {
    typedef float storage;
    static const int size = 4;
    __device__ __forceinline__ static float to_f32(float v) { return v; }
    __device__ __forceinline__ static float from_f32(float v) { return v; }
    __device__ __forceinline__ static float load(const float* p, ky_i64 i) { return p[i]; }
    __device__ __forceinline__ static void store(float* p, ky_i64 i, float v) { p[i] = v; }
};

template <> struct Elem<ky_bf16> {
    typedef ky_u16 storage;
    static const int size = 2;
    __device__ __forceinline__ static float to_f32(ky_u16 v) { return ky_bf16_to_f32(v); }
    __device__ __forceinline__ static ky_u16 from_f32(float v) { return ky_f32_to_bf16(v); }
    __device__ __forceinline__ static float load(const ky_u16* p, ky_i64 i) {
        return ky_bf16_to_f32(p[i]);
    }
    __device__ __forceinline__ static void store(ky_u16* p, ky_i64 i, float v) {
        p[i] = ky_f32_to_bf16(v);
    }
};

template <> struct Elem<ky_f16> {
    typedef ky_u16 storage;
    static const int size = 2;
    __device__ __forceinline__ static float to_f32(ky_u16 v) { return ky_f16_to_f32(v); }
    __device__ __forceinline__ static ky_u16 from_f32(float v) { return ky_f32_to_f16(v); }
    __device__ __forceinline__ static float load(const ky_u16* p, ky_i64 i) {
        return ky_f16_to_f32(p[i]);
    }
    __device__ __forceinline__ static void store(ky_u16* p, ky_i64 i, float v) {
        p[i] = ky_f32_to_f16(v);
    }
};

// ---- 16-byte vectors -----------------------------------------------------------------------

// A 16-byte chunk: 4 floats or 8 halves. Loaded and stored with one 128-bit access; the caller
// guarantees 16-byte alignment (the kernel's `align = 16` requirement, checked before launch).
struct __align__(16) ky_vec16 { ky_u32 w[4]; };

template <typename T> struct Vec16;

template <> struct Vec16<float> {
    static const int n = 4;
    __device__ __forceinline__ static void unpack(const ky_vec16& v, float* out) {
        #pragma unroll
        for (int i = 0; i < 4; ++i) out[i] = __uint_as_float(v.w[i]);
    }
    __device__ __forceinline__ static ky_vec16 pack(const float* in) {
        ky_vec16 v;
        #pragma unroll
        for (int i = 0; i < 4; ++i) v.w[i] = __float_as_uint(in[i]);
        return v;
    }
};

template <typename H> struct Vec16Half {
    static const int n = 8;
    __device__ __forceinline__ static void unpack(const ky_vec16& v, float* out) {
        #pragma unroll
        for (int i = 0; i < 4; ++i) {
            out[2 * i] = Elem<H>::to_f32((ky_u16)(v.w[i] & 0xffffu));
            out[2 * i + 1] = Elem<H>::to_f32((ky_u16)(v.w[i] >> 16));
        }
    }
    __device__ __forceinline__ static ky_vec16 pack(const float* in) {
        ky_vec16 v;
        #pragma unroll
        for (int i = 0; i < 4; ++i) {
            v.w[i] = (ky_u32)Elem<H>::from_f32(in[2 * i]) |
                     ((ky_u32)Elem<H>::from_f32(in[2 * i + 1]) << 16);
        }
        return v;
    }
};
template <> struct Vec16<ky_bf16> : Vec16Half<ky_bf16> {};
template <> struct Vec16<ky_f16> : Vec16Half<ky_f16> {};

__device__ __forceinline__ ky_vec16 ky_load16(const void* p) {
    return *reinterpret_cast<const ky_vec16*>(p);
}

// Streaming load of read-only global data (read once: do not keep in L1).
__device__ __forceinline__ ky_vec16 ky_load16_stream(const void* p) {
    ky_vec16 v;
    ky_port_load16_nc(p, v.w);
    return v;
}

// Load cached in L2 only, for a row read once and written back in place (keeps L1 for data
// read again).
__device__ __forceinline__ ky_vec16 ky_load16_cg(const void* p) {
    ky_vec16 v;
    ky_port_load16_cg(p, v.w);
    return v;
}

// One 128-bit store (a plain struct assignment may be split into four 32-bit stores).
// Generic addressing: `p` may point to global or shared memory.
__device__ __forceinline__ void ky_store16(void* p, const ky_vec16& v) {
    ky_port_store16(p, v.w);
}

// ---- reductions ----------------------------------------------------------------------------
// Fixed butterfly order: the same inputs in the same lanes give the same bits.

__device__ __forceinline__ float ky_warp_sum(float v) {
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += ky_shfl_xor(v, o);
    return v;
}

__device__ __forceinline__ float ky_warp_max(float v) {
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, ky_shfl_xor(v, o));
    return v;
}

// Block-wide sum / max for blockDim.x a multiple of 32 (at most 1024). `scratch` holds 32
// floats of shared memory; every thread gets the result. Contains two __syncthreads(), so every
// thread of the block must call it.
__device__ __forceinline__ float ky_block_sum(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    v = ky_warp_sum(v);
    __syncthreads();  // scratch may still be read by a previous reduction
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float t = lane < warps ? scratch[lane] : 0.0f;
    return ky_warp_sum(t);
}

__device__ __forceinline__ float ky_block_max(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    v = ky_warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float t = lane < warps ? scratch[lane] : -__int_as_float(0x7f800000);
    return ky_warp_max(t);
}

// Online log-sum-exp state: max m and sum s of exp(x - m). Merging is order-dependent in its
// rounding, so callers merge in a fixed order.
struct ky_lse { float m; float s; };

__device__ __forceinline__ ky_lse ky_lse_empty() {
    ky_lse r; r.m = -__int_as_float(0x7f800000); r.s = 0.0f; return r;
}

__device__ __forceinline__ ky_lse ky_lse_push(ky_lse a, float x) {
    if (x > a.m) {
        a.s = a.s * __expf(a.m - x) + 1.0f;
        a.m = x;
    } else {
        a.s += __expf(x - a.m);
    }
    return a;
}

__device__ __forceinline__ ky_lse ky_lse_merge(ky_lse a, ky_lse b) {
    const float m = fmaxf(a.m, b.m);
    if (m == -__int_as_float(0x7f800000)) return a;
    ky_lse r;
    r.m = m;
    // Each product rounded on its own (no fused multiply-add), so merge(a, b) and merge(b, a)
    // give the same bits: the two lanes of a butterfly step then agree.
    r.s = ky_fadd_rn(ky_fmul_rn(a.s, __expf(a.m - m)), ky_fmul_rn(b.s, __expf(b.m - m)));
    return r;
}

__device__ __forceinline__ ky_lse ky_warp_lse(ky_lse v) {
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        ky_lse w;
        w.m = ky_shfl_xor(v.m, o);
        w.s = ky_shfl_xor(v.s, o);
        v = ky_lse_merge(v, w);
    }
    return v;
}
