// kernels/hopper.cuh: the sm_90a helpers the Hopper kernels share (gemm_bi_sm90.cu,
// attention_sm90.cu): the tensor map parameter, mbarriers, the wgmma shared-memory descriptor
// with the 128-byte swizzle, wgmma's fence/commit/wait, and the thread-block cluster helpers
// (rank, barrier, remote mbarrier arrival). Spliced after common.cuh
// (crates/cuda/src/source.rs). Each kernel keeps its own TMA copy (its tensor rank) and its
// generated wgmma instructions (its shapes).
#pragma once

typedef unsigned long long ky_u64;

// CUtensorMap as the driver encodes it (cuTensorMapEncodeTiled), passed by value as a
// `__grid_constant__` kernel parameter.
struct __align__(64) KyTensorMap {
    ky_u64 opaque[16];
};

namespace ky_hopper {

__device__ __forceinline__ ky_u32 smem_addr(const void* p) {
    return (ky_u32)__cvta_generic_to_shared(p);
}

__device__ __forceinline__ void mbar_init(ky_u64* bar, ky_u32 count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(count));
}

__device__ __forceinline__ void mbar_expect_tx(ky_u64* bar, ky_u32 bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(bar)),
                 "r"(bytes)
                 : "memory");
}

__device__ __forceinline__ void mbar_arrive(ky_u64* bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(bar)) : "memory");
}

__device__ __forceinline__ void mbar_wait(ky_u64* bar, ky_u32 parity) {
    asm volatile(
        "{\n"
        ".reg .pred done;\n"
        "WAIT_%=:\n"
        "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
        "@!done bra WAIT_%=;\n"
        "}\n" ::"r"(smem_addr(bar)),
        "r"(parity)
        : "memory");
}

// Thread-block clusters (sm_90): this CTA's rank in its cluster.
__device__ __forceinline__ int cluster_rank() {
    ky_u32 r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return (int)r;
}

// Every thread of the cluster's CTAs meets here (release / acquire: what each CTA did before,
// barrier initialisation included, is visible to the other after).
__device__ __forceinline__ void cluster_sync() {
    asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;"
                 ::: "memory");
}

// Arrives on the mbarrier at `bar`'s offset in CTA `rank` of the cluster (this CTA's included).
// The default (CTA-scope) release, for an arrival that publishes only that shared memory was
// read (the FP8 GEMM's freed stages), not a write of its own: a cluster-scope release fences
// every prior memory operation of the thread (measured: that kernel ran 2.5x slower, stalled
// on MEMBAR).
__device__ __forceinline__ void mbar_arrive_cluster(ky_u64* bar, int rank) {
    asm volatile(
        "{\n.reg .b32 remote;\n"
        "mapa.shared::cluster.u32 remote, %0, %1;\n"
        "mbarrier.arrive.shared::cluster.b64 _, [remote];\n}\n"
        ::"r"(smem_addr(bar)), "r"(rank)
        : "memory");
}

// A wgmma shared-memory descriptor, 128-byte swizzle (PTX ISA "Matrix Descriptor Format"):
// start address, leading and stride byte offsets, all >> 4. K-major operands: LBO 16 (unused),
// SBO 1024 (8 rows of 128 bytes), +32 bytes per k16 step inside a swizzle row. N/M-major
// operands (transpose flag 1): LBO = bytes to the next 64-wide block, SBO 1024 (8 k rows),
// +2048 bytes per k16 step.
__device__ __forceinline__ ky_u64 desc(const void* p, ky_u32 lbo, ky_u32 sbo) {
    ky_u64 d = 0;
    d |= (ky_u64)((smem_addr(p) & 0x3FFFF) >> 4);
    d |= (ky_u64)((lbo & 0x3FFFF) >> 4) << 16;
    d |= (ky_u64)((sbo & 0x3FFFF) >> 4) << 32;
    d |= 1ull << 62;
    return d;
}

__device__ __forceinline__ void wgmma_fence() {
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}
__device__ __forceinline__ void wgmma_wait0() {
    asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
}
__device__ __forceinline__ void wgmma_wait1() {
    asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory");
}

// Keeps accumulators in registers across an asynchronous wgmma (the compiler must not move
// reads or writes of them across the wait).
template <int N>
__device__ __forceinline__ void keep(float (&d)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

}  // namespace ky_hopper
