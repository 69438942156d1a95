// tests/emu/port_emu.hpp: crates/kernels/kernels/port.cuh for the CPU emulator (mod.rs splices
// it in port.cuh's place). One definition per helper of port.cuh, with the GPU's rounding:
// the test `every_port_helper_is_emulated` fails when port.cuh gains a helper this file lacks.
#pragma once

// Neither vendor: the sources' CUDA spelling is what prelude.hpp provides.
#define KY_HIP 0

// Lanes of the logical warp (port.cuh).
#define KY_LANES 32

// v from lane `lane ^ o` of this lane's 32-lane group; every lane of the group must call it.
inline float ky_shfl_xor(float v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }

// Single-rounded f32 add / subtract / multiply (the unit is compiled with -ffp-contract=off).
inline float ky_fadd_rn(float a, float b) { return a + b; }
inline float ky_fsub_rn(float a, float b) { return a - b; }
inline float ky_fmul_rn(float a, float b) { return a * b; }

// Correctly rounded square root (IEEE `sqrtf`).
inline float ky_sqrt_rn(float x) { return sqrtf(x); }

// 2^x by the hardware approximation (`ex2.approx.ftz.f32`): subnormal inputs read as zero and
// subnormal results flush to zero. The C library's exp2f (correctly rounded in nearly all
// cases) stands in for the hardware's 2^-22 relative error.
inline float ky_ex2_approx(float x) { return ky_emu::ftz(exp2f(ky_emu::ftz(x))); }

// f16 bit pattern -> f32, exact (NaN stays NaN).
inline float ky_f16_to_f32(unsigned short h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t man = h & 0x3ffu;
    if (exp == 0x1fu) return __uint_as_float(sign | 0x7f800000u | (man << 13));
    if (exp != 0) return __uint_as_float(sign | ((exp + 112u) << 23) | (man << 13));
    // Zero or subnormal: man * 2^-24, exact in f32.
    return __uint_as_float(sign | __float_as_uint((float)man * 0x1.0p-24f));
}

// f32 -> f16 bit pattern, rounded to nearest even; NaN gives NVIDIA's canonical NaN (0x7fff).
inline unsigned short ky_f32_to_f16(float f) {
    const uint32_t u = __float_as_uint(f);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return 0x7fffu;
    // From 65520 (halfway between 65504, the largest f16, and 2^16) up: infinity.
    if (a >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u);
    if (a >= 0x38800000u) {  // at least 2^-14: a normal f16
        const uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
        return (unsigned short)(sign | ((r >> 13) - (112u << 10)));
    }
    // Below 2^-14: a multiple of 2^-24 (1024 * 2^-24 = 2^-14 encodes as the least normal).
    // Scaling by 2^24 is exact; the default rounding mode rounds to nearest even.
    return (unsigned short)(sign | (uint32_t)nearbyintf(__uint_as_float(a) * 0x1.0p+24f));
}

namespace ky_emu {
// The GPU faults on a misaligned 16-byte access; the emulator reports it and goes on.
inline void check16(const void* p, const char* what) {
    if (((uintptr_t)p & 15u) != 0) fail("%s of a pointer that is not 16-byte aligned: %p", what, p);
}
}  // namespace ky_emu

// 16-byte accesses as four 32-bit words; `p` is 16-byte aligned.
inline void ky_port_load16_nc(const void* p, unsigned int (&w)[4]) {
    ky_emu::check16(p, "ky_port_load16_nc");
    memcpy(w, p, 16);
}

inline void ky_port_load16_cg(const void* p, unsigned int (&w)[4]) {
    ky_emu::check16(p, "ky_port_load16_cg");
    memcpy(w, p, 16);
}

inline void ky_port_store16(void* p, const unsigned int (&w)[4]) {
    ky_emu::check16(p, "ky_port_store16");
    memcpy(p, w, 16);
}

inline void ky_port_store16_global(void* p, const unsigned int (&w)[4]) {
    ky_emu::check16(p, "ky_port_store16_global");
    memcpy(p, w, 16);
}
