// tests/emu/mma_emu.hpp: crates/kernels/kernels/mma.cuh for the CPU emulator (mod.rs splices it
// in mma.cuh's place). One definition per wrapper of mma.cuh, on the block's dynamic shared
// memory (a shared-window address is a byte offset into it):
// - `cp.async` copies at once (commit and wait do nothing), zero-filling past `src_bytes`. What
//   this cannot show is a missing wait or barrier: the GPU's sanitizer (racecheck, synccheck)
//   and the suite on a GPU are the proof of those.
// - `ldmatrix` (plain and transposed) and `mma.sync.m16n8k16` are warp-collective: every lane
//   of the warp must call them, as on the GPU; they trade the lanes' addresses and fragments by
//   warp exchanges, with the PTX ISA's fragment layouts. The products of two 16-bit values are
//   exact; the emulated multiply sums them and the accumulator in f64 and rounds once, where
//   the tensor cores keep at least f32 precision in an order of their own: the emulator's bits
//   are not the GPU's, its errors are no larger.
// A wrapper mma.cuh gains must be added here: an emulated kernel that uses it fails to build.
#pragma once

// A generic pointer into the dynamic shared memory as a shared-window address.
inline size_t __cvta_generic_to_shared(const void* p) {
    return (size_t)((const unsigned char*)p - ky_emu::dyn_shared());
}

namespace ky_mma {

namespace emu {
inline unsigned char* shared_at(ky_u32 addr, unsigned align, const char* what) {
    if ((addr & (align - 1)) != 0)
        ky_emu::fail("%s: shared address %u is not %u-byte aligned", what, addr, align);
    return ky_emu::dyn_shared() + addr;
}
}  // namespace emu

__device__ __forceinline__ void cp_async16(ky_u32 dst, const void* src, ky_u32 src_bytes) {
    unsigned char* d = emu::shared_at(dst, 16, "cp.async");
    ky_emu::check16(src, "cp.async");
    if (src_bytes > 16) {
        ky_emu::fail("cp.async with a source size of %u bytes (at most 16)", src_bytes);
        src_bytes = 16;
    }
    memcpy(d, src, src_bytes);
    memset(d + src_bytes, 0, 16 - src_bytes);
}

__device__ __forceinline__ void cp_async16(ky_u32 dst, const void* src) {
    cp_async16(dst, src, 16u);
}

__device__ __forceinline__ void cp_async_commit() {}

template <int N>
__device__ __forceinline__ void cp_async_wait() {}

__device__ __forceinline__ void cp_async_wait_all() { cp_async_wait<0>(); }

// Lane 8j + r gives the address of row r of matrix j (16-byte aligned rows of 8 b16).
__device__ __forceinline__ void ldmatrix_x4(ky_u32 (&r)[4], ky_u32 addr) {
    const uint64_t* s = ky_emu::warp_exchange(addr);
    const unsigned lane = ky_emu::lane_id();
    for (int j = 0; j < 4; ++j) {
        const unsigned char* row = emu::shared_at((ky_u32)s[8 * j + lane / 4], 16, "ldmatrix");
        memcpy(&r[j], row + 4 * (lane % 4), 4);
    }
}

// Register j of lane l: (row 2 (l % 4), column l / 4) low, (row 2 (l % 4) + 1, same column)
// high, of matrix j.
__device__ __forceinline__ void ldmatrix_x4_trans(ky_u32 (&r)[4], ky_u32 addr) {
    const uint64_t* s = ky_emu::warp_exchange(addr);
    const unsigned lane = ky_emu::lane_id();
    for (int j = 0; j < 4; ++j) {
        ky_u16 e[2];
        for (int h = 0; h < 2; ++h) {
            const unsigned char* row =
                emu::shared_at((ky_u32)s[8 * j + 2 * (lane % 4) + h], 16, "ldmatrix.trans");
            memcpy(&e[h], row + 2 * (lane / 4), 2);
        }
        r[j] = (ky_u32)e[0] | ((ky_u32)e[1] << 16);
    }
}

namespace emu {
// d += A B for the calling lane (g = lane / 4, t = lane % 4), every lane of the warp calling:
//   A 16x16: a0 (row g, k 2t, 2t+1), a1 (row g+8, same k), a2 (row g, k 2t+8, 2t+9), a3 (row g+8,
//   k 2t+8, 2t+9); B 16x8: b0 (k 2t, 2t+1, column g), b1 (k 2t+8, 2t+9, column g); D: d0 d1
//   (row g, columns 2t, 2t+1), d2 d3 (row g+8, same columns). The lower k (column) in the low
//   half of each register.
template <float (*WIDEN)(ky_u16)>
inline void mma(float (&d)[4], const ky_u32 (&a)[4], ky_u32 b0, ky_u32 b1) {
    const unsigned lane = ky_emu::lane_id();
    if (ky_emu::warp_lanes() != 32) {
        ky_emu::fail("mma.sync in a warp of %u lanes", ky_emu::warp_lanes());
        return;
    }
    // Three exchanges: (a0, a1), (a2, a3), (b0, b1) of every lane.
    uint64_t x[3][32];
    const uint64_t mine[3] = {a[0] | ((uint64_t)a[1] << 32), a[2] | ((uint64_t)a[3] << 32),
                              b0 | ((uint64_t)b1 << 32)};
    for (int i = 0; i < 3; ++i) memcpy(x[i], ky_emu::warp_exchange(mine[i]), sizeof x[i]);
    auto half = [](uint64_t v, int i) { return (ky_u16)(v >> (16 * i)); };
    const int g = lane / 4, t = lane % 4;
    // This lane's rows of A (g and g + 8: row h * 8 + g, from lanes 4 g + u) and columns of B
    // (2 t + e: from lanes 4 (2 t + e) + u), k = 2 u + f (+ 8).
    float A[2][16], B[2][16];
    for (int u = 0; u < 4; ++u) {
        for (int f = 0; f < 2; ++f) {
            for (int h = 0; h < 2; ++h) {
                A[h][2 * u + f] = WIDEN(half(x[0][4 * g + u], 2 * h + f));      // a0, a1
                A[h][2 * u + 8 + f] = WIDEN(half(x[1][4 * g + u], 2 * h + f));  // a2, a3
            }
            for (int e = 0; e < 2; ++e) {
                const int l = 4 * (2 * t + e) + u;
                B[e][2 * u + f] = WIDEN(half(x[2][l], f));          // b0
                B[e][2 * u + 8 + f] = WIDEN(half(x[2][l], 2 + f));  // b1
            }
        }
    }
    for (int i = 0; i < 4; ++i) {
        double acc = d[i];
        for (int k = 0; k < 16; ++k) acc += (double)A[i / 2][k] * (double)B[i % 2][k];
        d[i] = (float)acc;
    }
}
inline float widen_bf16(ky_u16 b) { return ky_bf16_to_f32(b); }
inline float widen_f16(ky_u16 h) { return ky_f16_to_f32(h); }
}  // namespace emu

template <typename T>
struct Mma;

template <>
struct Mma<ky_bf16> {
    __device__ __forceinline__ static void run(float (&d)[4], const ky_u32 (&a)[4], ky_u32 b0,
                                               ky_u32 b1) {
        emu::mma<emu::widen_bf16>(d, a, b0, b1);
    }
    __device__ __forceinline__ static ky_u32 pack(float lo, float hi) {
        return (ky_u32)ky_f32_to_bf16(lo) | ((ky_u32)ky_f32_to_bf16(hi) << 16);
    }
};

template <>
struct Mma<ky_f16> {
    __device__ __forceinline__ static void run(float (&d)[4], const ky_u32 (&a)[4], ky_u32 b0,
                                               ky_u32 b1) {
        emu::mma<emu::widen_f16>(d, a, b0, b1);
    }
    __device__ __forceinline__ static ky_u32 pack(float lo, float hi) {
        return (ky_u32)ky_f32_to_f16(lo) | ((ky_u32)ky_f32_to_f16(hi) << 16);
    }
};

}  // namespace ky_mma
