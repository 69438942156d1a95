// kernels/port.cuh: the CUDA/HIP portability layer, spliced at the top of common.cuh.
//
// The same sources compile with NVRTC (NVIDIA, PTX) and hiprtc (AMD, gfx9 and gfx10+). Neither
// includes a toolkit header: NVRTC needs none for what the kernels use, and hiprtc pre-includes
// its own HIP runtime header (`threadIdx`, `__syncthreads`, `__align__`, `__launch_bounds__`,
// `__uint_as_float`, `__expf`, `exp2f`, `rint`, `atomicMin`, ... are then defined). HIP is
// recognised by `__HIPCC_RTC__` (hiprtc) or `__HIP__` (clang's HIP mode); hiprtc 5.2 does not
// define `__HIP_PLATFORM_AMD__`. What differs, and how this file handles it (everything else in
// kernels/ is written once):
// - f16 <-> f32: PTX `cvt` on CUDA; clang's `_Float16` on HIP (v_cvt_f32_f16 / v_cvt_f16_f32).
//   Both round to nearest even and keep NaN a NaN, so the bits agree (NaN payloads aside).
// - 16-byte streaming load, L2-only load and 16-byte stores: PTX `ld.global.nc.L1::no_allocate.v4`,
//   `ld.global.cg.v4` and
//   `st.v4` / `st.global.v4` on CUDA; on HIP a 4 x u32 vector access (one dwordx4), the load
//   with clang's nontemporal hint. Vector accesses may alias any type, like the asm did.
// - warp shuffles: `__shfl_xor_sync(full mask, ...)` on CUDA; `__shfl_xor(v, o, KY_LANES)` on
//   HIP (ROCm 5.2 has no _sync variants; every lane of a wavefront runs in lockstep there).
// - `__fadd_rn` / `__fsub_rn` / `__fmul_rn`: on CUDA they are never fused into an FMA; HIP
//   defines them as plain `+ - *`, which hiprtc contracts (fp-contract=fast). `ky_fadd_rn` &
//   co. switch contraction off on HIP, so the results agree (merge orders that rely on separate
//   roundings stay commutative).
// - `sqrtf`: correctly rounded on CUDA, 1 ulp on ROCm 5.2; `ky_sqrt_rn` rounds correctly on both.
// - `ex2.approx.ftz.f32` (token_logprobs): the hardware 2^x on both (`ky_ex2_approx`;
//   v_exp_f32 on AMD). Left as they are, and differing by a few ulp between vendors: the
//   hardware approximations (this one, `__expf`) and the math library's `exp2f`, `logf`,
//   `log2f` (none is correctly rounded).
// - `__launch_bounds__(T, B)`: B is the minimum number of blocks per SM on CUDA and of
//   wavefronts per SIMD on HIP (a register budget in both; it does not change results).
//
// Wavefronts. The kernels use a LOGICAL warp of KY_LANES = 32 lanes on every device: shuffles
// have width 32, lane and warp indices are `threadIdx.x & 31` and `threadIdx.x >> 5`, scratch
// arrays hold 32 floats, and blocks are multiples of 32 threads. A wave64 wavefront (gfx9,
// CDNA) holds two independent 32-lane groups, a wave32 one (gfx10+, RDNA) one. Every reduction
// thus runs the same tree on every device, and the launch shapes (chosen from the problem size
// alone) need no wavefront-size input. Nothing depends on which lanes are active
// (no `__activemask`, no ballots): every lane of a 32-lane group calls each shuffle.
#pragma once

#if defined(__HIPCC_RTC__) || defined(__HIP__)
#define KY_HIP 1
#else
#define KY_HIP 0
#endif

// Lanes of the logical warp (see above). The kernels spell it as 32, `& 31`, `>> 5` and the
// first butterfly offset 16.
#define KY_LANES 32

// v from the lane `lane ^ o` of this lane's 32-lane group (0 < o < 32). Every lane of the group
// must call it.
__device__ __forceinline__ float ky_shfl_xor(float v, int o) {
#if KY_HIP
    return __shfl_xor(v, o, KY_LANES);
#else
    return __shfl_xor_sync(0xffffffffu, v, o);
#endif
}

// Single-rounded f32 add / subtract / multiply, never fused with a neighbouring operation.
__device__ __forceinline__ float ky_fadd_rn(float a, float b) {
#if KY_HIP
#pragma clang fp contract(off)
    return a + b;
#else
    return __fadd_rn(a, b);
#endif
}

__device__ __forceinline__ float ky_fsub_rn(float a, float b) {
#if KY_HIP
#pragma clang fp contract(off)
    return a - b;
#else
    return __fsub_rn(a, b);
#endif
}

__device__ __forceinline__ float ky_fmul_rn(float a, float b) {
#if KY_HIP
#pragma clang fp contract(off)
    return a * b;
#else
    return __fmul_rn(a, b);
#endif
}

// Correctly rounded square root. CUDA's sqrtf is (sqrt.rn.f32); ROCm 5.2's is v_sqrt_f32
// (1 ulp), so on HIP the result steps to a neighbour when the residual says so, as LLVM's own
// lowering does from LLVM 17 (tiny inputs are scaled out of the subnormal range first).
__device__ __forceinline__ float ky_sqrt_rn(float x) {
#if KY_HIP
    const bool tiny = x < 0x1.0p-96f;
    const float xs = tiny ? x * 0x1.0p+32f : x;
    const float s = __builtin_sqrtf(xs);
    const float down = __uint_as_float(__float_as_uint(s) - 1u);
    const float up = __uint_as_float(__float_as_uint(s) + 1u);
    float r = fmaf(-down, s, xs) <= 0.0f ? down : s;
    r = fmaf(-up, s, xs) > 0.0f ? up : r;
    r = tiny ? r * 0x1.0p-16f : r;
    return (xs == 0.0f || xs == __builtin_inff()) ? xs : r;
#else
    return sqrtf(x);
#endif
}

// 2^x by the hardware approximation (relative error about 2^-22; subnormal results may flush
// to zero).
__device__ __forceinline__ float ky_ex2_approx(float x) {
#if KY_HIP
    return __builtin_exp2f(x);  // v_exp_f32 (ROCm 5.2's clang; later ones add subnormal care)
#else
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
#endif
}

// f16 bit pattern <-> f32: exact widening; narrowing rounds to nearest even, NaN stays NaN.
__device__ __forceinline__ float ky_f16_to_f32(unsigned short h) {
#if KY_HIP
    return (float)__builtin_bit_cast(_Float16, h);
#else
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#endif
}

__device__ __forceinline__ unsigned short ky_f32_to_f16(float f) {
#if KY_HIP
    return __builtin_bit_cast(unsigned short, (_Float16)f);
#else
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
#endif
}

// 16-byte accesses as four 32-bit words, one instruction each; `p` is 16-byte aligned.
#if KY_HIP
typedef unsigned int ky_port_u32x4 __attribute__((ext_vector_type(4), may_alias));
#endif

// Streaming load of read-only global data (not kept in L1).
__device__ __forceinline__ void ky_port_load16_nc(const void* p, unsigned int (&w)[4]) {
#if KY_HIP
    const ky_port_u32x4 v = __builtin_nontemporal_load(static_cast<const ky_port_u32x4*>(p));
    w[0] = v.x; w[1] = v.y; w[2] = v.z; w[3] = v.w;
#else
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(w[0]), "=r"(w[1]), "=r"(w[2]), "=r"(w[3])
                 : "l"(p));
#endif
}

// Load of global data cached in L2 only (`ld.global.cg`: not allocated in L1), for data read
// once and written back by the same thread (a state row updated in place): it keeps L1 for the
// data the block reads again. Plain (coherent) load on HIP.
__device__ __forceinline__ void ky_port_load16_cg(const void* p, unsigned int (&w)[4]) {
#if KY_HIP
    const ky_port_u32x4 v = *static_cast<const ky_port_u32x4*>(p);
    w[0] = v.x; w[1] = v.y; w[2] = v.z; w[3] = v.w;
#else
    asm volatile("ld.global.cg.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(w[0]), "=r"(w[1]), "=r"(w[2]), "=r"(w[3])
                 : "l"(p));
#endif
}

// Store; `p` may point to global or shared memory.
__device__ __forceinline__ void ky_port_store16(void* p, const unsigned int (&w)[4]) {
#if KY_HIP
    *static_cast<ky_port_u32x4*>(p) = ky_port_u32x4{w[0], w[1], w[2], w[3]};
#else
    asm volatile("st.v4.u32 [%0], {%1, %2, %3, %4};"
                 :
                 : "l"(p), "r"(w[0]), "r"(w[1]), "r"(w[2]), "r"(w[3])
                 : "memory");
#endif
}

// Store to global memory.
__device__ __forceinline__ void ky_port_store16_global(void* p, const unsigned int (&w)[4]) {
#if KY_HIP
    *static_cast<ky_port_u32x4*>(p) = ky_port_u32x4{w[0], w[1], w[2], w[3]};
#else
    asm volatile("st.global.v4.u32 [%0], {%1, %2, %3, %4};"
                 :
                 : "l"(p), "r"(w[0]), "r"(w[1]), "r"(w[2]), "r"(w[3])
                 : "memory");
#endif
}
