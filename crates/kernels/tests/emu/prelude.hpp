// tests/emu/prelude.hpp: the CUDA C++ dialect the kernel sources use, for a host C++20
// compiler (g++). Pasted at the top of the emulated translation unit, before the kernel source;
// port_emu.hpp takes port.cuh's place inside it, and runtime.hpp (the scheduler that runs the
// threads of a block as fibers) follows it. See mod.rs for the whole picture.
//
// What a kernel sees:
// - qualifiers: `__global__`, `__device__`, `__host__`, `__forceinline__`, `__noinline__`,
//   `__launch_bounds__(...)` (ignored), `__align__(n)` (GNU aligned), `__constant__`, and
//   `__shared__`, which is `static thread_local`: every thread of a block runs as a fiber on one
//   OS thread, which runs one block at a time, so the block's threads share the variable and
//   two blocks on two OS threads do not (values persist from block to block on the same OS
//   thread: a kernel that reads shared memory before writing it is not caught).
//   `extern __shared__ T name[];` inside a function is rewritten by mod.rs into a pointer to
//   the block's dynamic shared memory (`ky_emu::dyn_shared()`, filled with 0xff bytes before
//   each block, so floats read before written are NaN).
// - `threadIdx`, `blockIdx`, `blockDim`, `gridDim` (thread_local; set by the scheduler before a
//   fiber runs), `warpSize`;
// - `__syncthreads`, `__syncwarp`, `__shfl_{xor,sync,up,down}_sync` (and HIP's `__shfl_xor`),
//   `__ballot_sync`, `__any_sync`, `__all_sync`: every lane of a warp (32 consecutive linear
//   thread indices) must call a warp operation, as port.cuh requires;
// - f32 / f64 intrinsics: correctly rounded ones (`__fadd_rn` & co., `__fdiv_rn`, `__fmaf_rn`,
//   `__fsqrt_rn`) exactly; the approximate ones from the C library (`__expf` as 2^(x log2 e),
//   `__logf`, `__sinf`, ...) or, for `__fdividef`, with NVIDIA's behaviour (x * (1/y), zero
//   for 2^126 < |y| < 2^128); bit casts; float-to-int conversions;
// - vector types (`float4`, `int4`, `uint4`, ... with the GPU's alignment) and `make_*`;
// - atomics (`atomicAdd`, `atomicMin`, ... as host atomics: blocks run on several OS threads);
// - `__trap()` (fails the launch), `__threadfence*()`, `__ldg`, `printf`.
// The C library's math functions (`expf`, `exp2f`, `logf`, `log1pf`, `tanhf`, `sqrtf`, `fmaf`,
// `rint`, ...) come from <math.h>; `sqrtf` and `fmaf` are correctly rounded as on the GPU, the
// transcendental ones differ from CUDA's by a few ulp.
#pragma once

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cstddef>
#include <type_traits>
#include <utility>

#define KY_EMU 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __constant__
#define __shared__ static thread_local
// `__restrict__` is a g++ keyword already.

// ---- built-in index variables ---------------------------------------------------------------

struct uint3 {
    unsigned int x, y, z;
};

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1)
        : x(x_), y(y_), z(z_) {}
};

// Defined here, before any use (no thread_local wrapper calls), with external linkage (not
// `static`): a call into the scheduler changes them, and the compiler must not assume
// otherwise.
thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

static constexpr int warpSize = 32;

// ---- runtime hooks (runtime.hpp) ------------------------------------------------------------

namespace ky_emu {
void sync_block();
// Arrives at the warp's next synchronisation with `bits`; returns the 32 slots the lanes wrote
// (valid until this lane's next warp synchronisation). Lanes past the warp's end are absent.
const uint64_t* warp_exchange(uint64_t bits);
// The lane of the calling thread in its warp, and the number of lanes of its warp.
unsigned lane_id();
unsigned warp_lanes();
// Records a failure of the launch (the first one is reported); the thread continues.
void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// Records a failure and ends the block.
[[noreturn]] void trap(const char* what);
unsigned char* dyn_shared();

template <typename T>
inline uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>,
                  "warp exchanges carry values of at most 8 bytes");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof(T));
    return b;
}

template <typename T>
inline T from_bits(uint64_t b) {
    T v;
    memcpy(&v, &b, sizeof(T));
    return v;
}

enum class Shfl { Idx, Xor, Up, Down };

// A shuffle of CUDA's `__shfl_*_sync` family over `width`-lane segments of the warp: lanes
// outside the caller's segment give the caller's own value (xor may read earlier segments);
// a source lane the warp does not have is a failure.
template <typename T>
inline T shfl(T v, int arg, int width, Shfl mode) {
    const uint64_t* slots = warp_exchange(to_bits(v));
    if (width <= 0 || width > 32 || (width & (width - 1)) != 0) {
        fail("shuffle width %d is not a power of two in [1, 32]", width);
        return v;
    }
    const int lane = (int)lane_id();
    const int seg = lane / width * width;
    int src = lane;
    switch (mode) {
        case Shfl::Idx: src = seg + (arg & (width - 1)); break;
        case Shfl::Xor:
            src = lane ^ (arg & 31);
            if (src >= seg + width) return v;
            break;
        case Shfl::Up:
            src = lane - arg;
            if (src < seg) return v;
            break;
        case Shfl::Down:
            src = lane + arg;
            if (src >= seg + width) return v;
            break;
    }
    if (src < 0 || src >= (int)warp_lanes()) {
        fail("lane %d shuffles from lane %d, which its warp of %u lanes does not have", lane, src,
             warp_lanes());
        return v;
    }
    return from_bits<T>(slots[src]);
}
}  // namespace ky_emu

// ---- synchronisation and warp operations ----------------------------------------------------

inline void __syncthreads() { ky_emu::sync_block(); }
inline int __syncthreads_count(int p) {
    (void)p;
    ky_emu::fail("__syncthreads_count is not emulated");
    ky_emu::sync_block();
    return 0;
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    (void)mask;
    ky_emu::warp_exchange(0);
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
    (void)mask;
    return ky_emu::shfl(v, src_lane, width, ky_emu::Shfl::Idx);
}

template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    (void)mask;
    return ky_emu::shfl(v, lane_mask, width, ky_emu::Shfl::Xor);
}

template <typename T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    (void)mask;
    return ky_emu::shfl(v, (int)delta, width, ky_emu::Shfl::Up);
}

template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    (void)mask;
    return ky_emu::shfl(v, (int)delta, width, ky_emu::Shfl::Down);
}

// HIP's spelling (no mask; every lane of the group calls it).
template <typename T>
inline T __shfl_xor(T v, int lane_mask, int width = 32) {
    return ky_emu::shfl(v, lane_mask, width, ky_emu::Shfl::Xor);
}

inline unsigned __ballot_sync(unsigned mask, int pred) {
    (void)mask;
    const uint64_t* s = ky_emu::warp_exchange(pred != 0);
    unsigned r = 0;
    for (unsigned l = 0; l < ky_emu::warp_lanes(); ++l) r |= (s[l] != 0 ? 1u : 0u) << l;
    return r;
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) {
    const unsigned lanes = ky_emu::warp_lanes();
    const unsigned all = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
    return __ballot_sync(mask, pred) == all;
}

[[noreturn]] inline void __trap() { ky_emu::trap("__trap()"); }

// ---- bit casts and conversions --------------------------------------------------------------

inline float __uint_as_float(unsigned int u) { return __builtin_bit_cast(float, u); }
inline unsigned int __float_as_uint(float f) { return __builtin_bit_cast(unsigned int, f); }
inline float __int_as_float(int i) { return __builtin_bit_cast(float, i); }
inline int __float_as_int(float f) { return __builtin_bit_cast(int, f); }
inline double __longlong_as_double(long long i) { return __builtin_bit_cast(double, i); }
inline long long __double_as_longlong(double d) { return __builtin_bit_cast(long long, d); }

inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
inline int __float2int_rz(float x) { return (int)truncf(x); }
inline int __float2int_rd(float x) { return (int)floorf(x); }
inline int __float2int_ru(float x) { return (int)ceilf(x); }
inline unsigned __float2uint_rn(float x) { return (unsigned)nearbyintf(x); }
inline unsigned __float2uint_rz(float x) { return (unsigned)truncf(x); }
inline long long __float2ll_rn(float x) { return (long long)nearbyintf(x); }
inline long long __float2ll_rz(float x) { return (long long)truncf(x); }
inline float __int2float_rn(int x) { return (float)x; }
inline float __uint2float_rn(unsigned x) { return (float)x; }
inline int __double2int_rn(double x) { return (int)nearbyint(x); }
inline float __double2float_rn(double x) { return (float)x; }

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __umulhi(unsigned a, unsigned b) {
    return (unsigned)(((unsigned long long)a * b) >> 32);
}
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}

// ---- f32 / f64 arithmetic -------------------------------------------------------------------
// The translation unit is compiled with -ffp-contract=off: every operation is rounded on its
// own, as the `_rn` intrinsics promise. (NVRTC contracts plain `a * b + c` into an FMA; the
// emulator does not, so such expressions may differ from the GPU by an ulp.)

inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline float __frsqrt_rn(float a) { return 1.0f / sqrtf(a); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }

namespace ky_emu {
// Flush a subnormal result to a zero of its sign (the GPU's `.ftz`).
inline float ftz(float x) { return fabsf(x) < 0x1.0p-126f ? copysignf(0.0f, x) : x; }
}  // namespace ky_emu

// Approximate intrinsics: the hardware's 2^x / log2 at the C library's precision.
inline float __expf(float x) { return ky_emu::ftz(exp2f(ky_emu::ftz(x * 1.4426950408889634f))); }
inline float __exp10f(float x) { return ky_emu::ftz(exp2f(x * 3.3219280948873622f)); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline void __sincosf(float x, float* s, float* c) { *s = sinf(x); *c = cosf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __saturatef(float x) { return x >= 1.0f ? 1.0f : (x > 0.0f ? x : 0.0f); }
// NVIDIA's `div.approx.f32`: x * (1 / y), the reciprocal flushed to zero below 2^-126 (so the
// result is zero for 2^126 < |y| < 2^128, NaN for infinite x).
inline float __fdividef(float x, float y) { return x * ky_emu::ftz(1.0f / y); }
inline float fdividef(float x, float y) { return x / y; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float rcbrtf(float x) { return 1.0f / cbrtf(x); }

// CUDA's `min` / `max` overloads for any pair of arithmetic types (fminf / fmaxf semantics
// for floating point).
template <typename A, typename B,
          typename = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> min(A a, B b) {
    typedef std::common_type_t<A, B> C;
    if constexpr (std::is_floating_point_v<C>) {
        return fmin((C)a, (C)b);
    } else {
        return (C)a < (C)b ? (C)a : (C)b;
    }
}
template <typename A, typename B,
          typename = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> max(A a, B b) {
    typedef std::common_type_t<A, B> C;
    if constexpr (std::is_floating_point_v<C>) {
        return fmax((C)a, (C)b);
    } else {
        return (C)a < (C)b ? (C)b : (C)a;
    }
}

// ---- loads ------------------------------------------------------------------------------------

template <typename T>
inline T __ldg(const T* p) {
    return *p;
}

// ---- vector types (the GPU's sizes and alignments) -------------------------------------------

#define KY_EMU_VEC2(T, N, A)                                                                       \
    struct alignas(A) N##2 { T x, y; };                                                            \
    inline N##2 make_##N##2(T x, T y) { return N##2{x, y}; }
#define KY_EMU_VEC3(T, N)                                                                          \
    struct N##3 { T x, y, z; };                                                                    \
    inline N##3 make_##N##3(T x, T y, T z) { return N##3{x, y, z}; }
#define KY_EMU_VEC4(T, N, A)                                                                       \
    struct alignas(A) N##4 { T x, y, z, w; };                                                      \
    inline N##4 make_##N##4(T x, T y, T z, T w) { return N##4{x, y, z, w}; }

KY_EMU_VEC2(float, float, 8)
KY_EMU_VEC3(float, float)
KY_EMU_VEC4(float, float, 16)
KY_EMU_VEC2(int, int, 8)
KY_EMU_VEC3(int, int)
KY_EMU_VEC4(int, int, 16)
KY_EMU_VEC2(unsigned int, uint, 8)
KY_EMU_VEC4(unsigned int, uint, 16)
KY_EMU_VEC2(double, double, 16)
KY_EMU_VEC4(double, double, 16)
KY_EMU_VEC2(long long, longlong, 16)
KY_EMU_VEC2(unsigned long long, ulonglong, 16)
KY_EMU_VEC2(short, short, 4)
KY_EMU_VEC4(short, short, 8)
KY_EMU_VEC2(unsigned short, ushort, 4)
KY_EMU_VEC4(unsigned short, ushort, 8)
KY_EMU_VEC2(char, char, 2)
KY_EMU_VEC4(char, char, 4)
KY_EMU_VEC2(unsigned char, uchar, 2)
KY_EMU_VEC4(unsigned char, uchar, 4)
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }

// ---- atomics (host atomics: blocks run on several OS threads) -------------------------------

template <typename T>
inline T atomicAdd(T* p, T v) {
    if constexpr (std::is_floating_point_v<T>) {
        T old, sum;
        __atomic_load(p, &old, __ATOMIC_RELAXED);
        do {
            sum = old + v;
        } while (!__atomic_compare_exchange(p, &old, &sum, true, __ATOMIC_SEQ_CST,
                                            __ATOMIC_RELAXED));
        return old;
    } else {
        return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
    }
}
template <typename T>
inline T atomicSub(T* p, T v) {
    return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST);
}
template <typename T>
inline T atomicExch(T* p, T v) {
    T old;
    __atomic_exchange(p, &v, &old, __ATOMIC_SEQ_CST);
    return old;
}
template <typename T>
inline T atomicCAS(T* p, T cmp, T v) {
    __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return cmp;
}
template <typename T>
inline T atomicMin(T* p, T v) {
    T old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (v < old &&
           !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
    }
    return old;
}
template <typename T>
inline T atomicMax(T* p, T v) {
    T old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (v > old &&
           !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
    }
    return old;
}
template <typename T>
inline T atomicAnd(T* p, T v) {
    return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST);
}
template <typename T>
inline T atomicOr(T* p, T v) {
    return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST);
}
template <typename T>
inline T atomicXor(T* p, T v) {
    return __atomic_fetch_xor(p, v, __ATOMIC_SEQ_CST);
}
