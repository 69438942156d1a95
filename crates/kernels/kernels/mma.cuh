// kernels/mma.cuh: the PTX wrappers the mma.sync kernels share (gemm_bi.cu, attention.cu):
// asynchronous 16-byte copies, ldmatrix and the m16n8k16 tensor-core multiply with f32
// accumulators. sm_80 and newer. Spliced after common.cuh (crates/cuda/src/source.rs).
#pragma once

namespace ky_mma {

// 16 bytes global -> shared, asynchronous. Both addresses 16-byte aligned.
__device__ __forceinline__ void cp_async16(ky_u32 dst, const void* src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
}

// The same with a source size: `src_bytes` = 0 writes 16 zero bytes and reads nothing (`src`
// must still be a valid address).
__device__ __forceinline__ void cp_async16(ky_u32 dst, const void* src, ky_u32 src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(src_bytes)
                 : "memory");
}

__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

// Waits until at most N of this thread's committed groups are pending.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void cp_async_wait_all() { cp_async_wait<0>(); }

// Four 8x8 b16 matrices; lane 8j + r gives the address of row r of matrix j; register j of
// lane l gets row l / 4, elements 2 (l % 4) and 2 (l % 4) + 1 of matrix j.
__device__ __forceinline__ void ldmatrix_x4(ky_u32 (&r)[4], ky_u32 addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// The same, transposed: register j of lane l gets elements (row 2 (l % 4), column l / 4) and
// (row 2 (l % 4) + 1, column l / 4) of matrix j.
__device__ __forceinline__ void ldmatrix_x4_trans(ky_u32 (&r)[4], ky_u32 addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// d += A (16x16, row) * B (16x8, col), f32 accumulators; `pack(lo, hi)` rounds two f32 to
// the dtype (nearest even) into one register, `lo` in the low half (the lower column).
template <typename T>
struct Mma;

template <>
struct Mma<ky_bf16> {
    __device__ __forceinline__ static void run(float (&d)[4], const ky_u32 (&a)[4], ky_u32 b0,
                                               ky_u32 b1) {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
            "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    __device__ __forceinline__ static ky_u32 pack(float lo, float hi) {
        ky_u32 r;
        // cvt.*x2.f32 d, a, b puts a in the upper half.
        asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
        return r;
    }
};

template <>
struct Mma<ky_f16> {
    __device__ __forceinline__ static void run(float (&d)[4], const ky_u32 (&a)[4], ky_u32 b0,
                                               ky_u32 b1) {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
            "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    __device__ __forceinline__ static ky_u32 pack(float lo, float hi) {
        ky_u32 r;
        asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
        return r;
    }
};

}  // namespace ky_mma
