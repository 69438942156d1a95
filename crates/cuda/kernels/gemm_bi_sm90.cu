// kernels/gemm_bi_sm90.cu: the batch-invariant GEMM for Hopper (sm_90a): TMA loads into a
// four-stage shared-memory ring, wgmma (m64n256k16, f32 accumulators) by two consumer
// warpgroups, one producer warpgroup, mbarrier handshakes. `cuda.gemm.batch_invariant.sm90`
// (crates/cuda/src/ops/gemm_bi_sm90.rs) launches it.
//
// C = alpha * op(A) @ op(B) + beta * C, A/B f16 or bf16, C in A's dtype or f32, every layout.
//
// Batch invariance (the reason this kernel exists): every output element is reduced over K in
// one order that depends on nothing but N, K and the device: K's k-tiles of 64 are cut into
// splits (see "Split-K" below), each split summed in increasing order, four k16 wgmma steps
// per k-tile, into an f32 accumulator started from zero, and the splits' sums added in split
// order. The block tile (128 x 256) and the stage count are fixed; nothing depends on M or the
// batch, and there is no atomic. Rows past M, columns past N and k past K are zero-filled and
// contribute exact zeros; stores are predicated. The epilogue computes every element with the
// same explicit arithmetic (`alpha * acc`, then `fma(beta, c, .)`), whatever path stores it.
//
// Layouts (row-major storage; see crates/cuda/src/ops/gemm.rs for the problem's conventions):
// - A not transposed ([m, k], K-major): one box of 64 k x 128 rows per stage, 128-byte
//   swizzle; wgmma reads it K-major (descriptor SBO = 1024 bytes, k16 step = +32 bytes).
// - A transposed ([k, m], M-major: the backward's dB = A^T dC): two boxes of 64 m x 64 k rows
//   (8 KiB each, one per consumer warpgroup), read with wgmma's transpose flag for A: SBO =
//   1024 bytes (the next 8 k rows), k16 step = +2048 bytes (16 rows of 128 bytes).
// - B transposed ([n, k], K-major): one box of 64 k x 256 rows, read like A.
// - B not transposed ([k, n], N-major): four boxes of 64 n x 64 k rows (8 KiB each), read with
//   wgmma's transpose flag; descriptor LBO = 8192 bytes (the next 64-wide N block), SBO = 1024
//   bytes (the next 8 k rows), k16 step = +2048 bytes (16 rows of 128 bytes).
// Every box is 128 bytes wide (64 elements) so the 128-byte swizzle atom is the whole row;
// stage buffers are 1024-byte aligned, as the swizzle needs.
//
// FP8 (`cuda.scaled_gemm.batch_invariant.sm90`, crates/cuda/src/ops/scaled_gemm_sm90.rs):
// `sm90::scaled_gemm`, the same pipeline with one-byte K-major operands (`scaled_gemm`'s A
// [m, k] and B [n, k]), a 128 x 192 tile (128 x 176 in the modules compiled for n <= 4096,
// `KY_SM90_FP8_BN` defined before this file), 128 k per stage read by four k32 FP8 wgmma steps,
// each stage's sum promoted to f32 (see its section), and a scaled epilogue.
//
// Loads: TMA copies an operand whose address and strides are multiples of 16 bytes. Any other
// (A^T's row stride is M, so an odd M makes it one) is loaded by the producer warpgroup into
// the same swizzled layout with the same zero fill (`manual_box`): the shared memory wgmma
// reads, and so every bit of C, is the same either way, and the host picks per launch.
#include "common.cuh"
#include "hopper.cuh"

namespace sm90 {

constexpr int BM = 128;            // rows of C per block (two consumer warpgroups of 64)
constexpr int BN = 256;            // columns of C per block (one m64n256 wgmma per k16)
constexpr int BK = 64;             // k per stage: one 128-byte swizzle row of 16-bit elements
constexpr int STAGES = 4;
constexpr int A_BYTES = BM * BK * 2;    // 16 KiB
constexpr int B_BYTES = BN * BK * 2;    // 32 KiB
constexpr int STAGE_BYTES = A_BYTES + B_BYTES;
constexpr int THREADS = 384;       // warpgroup 0 produces, 1 and 2 consume
constexpr int GROUP_M = 8;         // tile rasterization: 8 row-blocks share a band of B in L2

using namespace ky_hopper;

// FP8 operand types (one byte each): tags for the wgmma instruction and the k-tile length.
struct e4m3 {};
struct e5m2 {};

// One 3-D TMA box (inner, outer, batch coordinates) into shared memory, completing on `bar`.
__device__ __forceinline__ void tma_load(void* dst, const KyTensorMap* map, int c0, int c1, int c2,
                                         ky_u64* bar) {
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes"
        " [%0], [%1, {%2, %3, %4}], [%5];" ::"r"(smem_addr(dst)),
        "l"((ky_u64)map), "r"(c0), "r"(c1), "r"(c2), "r"(smem_addr(bar))
        : "memory");
}

template <typename T, int TA, int TB> struct KyWgmma;

// The 64 f32 accumulator operands of an n128 wgmma (d[0] .. d[63]), read and written.
#define KY_WGMMA_D64 \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
    "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
    "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
    "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
    "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
    "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
    "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])

// wgmma's 128 f32 accumulator operands (d[0] .. d[127]), read and written.
#define KY_WGMMA_D128 \
    KY_WGMMA_D64, \
    "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), \
    "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), \
    "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), \
    "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), \
    "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), \
    "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), \
    "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), \
    "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])

// One definition per instruction shape for both 16-bit types: TY (bf16 or f16) is pasted
// into the storage type and the instruction (the PTX is what the two spelled-out copies gave).
#define SM90_KYWGMMA(TY) \
template <int TA, int TB> struct KyWgmma<ky_##TY, TA, TB> { \
  static __device__ __forceinline__ void run(float (&d)[128], ky_u64 da, ky_u64 db) { \
    asm volatile( \
      "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n" \
      "wgmma.mma_async.sync.aligned.m64n256k16.f32." #TY "." #TY " " \
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, " \
      "%128, %129, p, 1, 1, %130, %131;\n}\n" \
      : KY_WGMMA_D128 \
      : "l"(da), "l"(db), "n"(TA), "n"(TB)); \
  } \
};
SM90_KYWGMMA(bf16)
SM90_KYWGMMA(f16)



// `scaled_gemm`'s instructions: m64nNk32 FP8 with N = 128, 160, 176 or 192 (both operands
// K-major from shared memory: FP8 wgmma has no transpose flags) for each pair of FP8 types;
// `accumulate` 0 starts d from the products alone (the first step of a group, whose sum is
// then promoted), 1 adds to it. N / 2 f32 accumulators per thread.
#define KY_WGMMA_D80 \
    KY_WGMMA_D64, \
    "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), \
    "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79])
#define KY_WGMMA_D88 \
    KY_WGMMA_D80, \
    "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87])
#define KY_WGMMA_D96 \
    KY_WGMMA_D88, \
    "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95])

template <typename A, typename B, int N> struct KyWgmma8;
#define SM90_KYWGMMA8(TA_, TB_, N_, REGS_, D_, IA_, IB_, IP_) \
template <> struct KyWgmma8<TA_, TB_, N_> { \
  static __device__ __forceinline__ void run(float (&d)[N_ / 2], ky_u64 da, ky_u64 db, int accumulate) { \
    asm volatile( \
      "{\n.reg .pred p;\nsetp.ne.b32 p, " IP_ ", 0;\n" \
      "wgmma.mma_async.sync.aligned.m64n" #N_ "k32.f32." #TA_ "." #TB_ " " \
      "{" REGS_ "}, " IA_ ", " IB_ ", p, 1, 1;\n}\n" \
      : D_ \
      : "l"(da), "l"(db), "r"(accumulate)); \
  } \
};
#define KY_WGMMA8_REGS64 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define KY_WGMMA8_REGS80 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79"
#define KY_WGMMA8_REGS88 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87"
#define KY_WGMMA8_REGS96 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95"
#define SM90_KYWGMMA8_PAIR(TA_, TB_) \
    SM90_KYWGMMA8(TA_, TB_, 128, KY_WGMMA8_REGS64, KY_WGMMA_D64, "%64", "%65", "%66") \
    SM90_KYWGMMA8(TA_, TB_, 160, KY_WGMMA8_REGS80, KY_WGMMA_D80, "%80", "%81", "%82") \
    SM90_KYWGMMA8(TA_, TB_, 176, KY_WGMMA8_REGS88, KY_WGMMA_D88, "%88", "%89", "%90") \
    SM90_KYWGMMA8(TA_, TB_, 192, KY_WGMMA8_REGS96, KY_WGMMA_D96, "%96", "%97", "%98")
SM90_KYWGMMA8_PAIR(e4m3, e4m3)
SM90_KYWGMMA8_PAIR(e4m3, e5m2)
SM90_KYWGMMA8_PAIR(e5m2, e4m3)
SM90_KYWGMMA8_PAIR(e5m2, e5m2)


template <typename T> struct Out;
template <> struct Out<ky_bf16> {
    static __device__ __forceinline__ float load(const void* p) {
        return ky_bf16_to_f32(*(const ky_u16*)p);
    }
    static __device__ __forceinline__ void store(void* p, float v) {
        *(ky_u16*)p = ky_f32_to_bf16(v);
    }
    static __device__ __forceinline__ void store2(void* p, float v0, float v1) {
        *(ky_u32*)p = (ky_u32)ky_f32_to_bf16(v0) | ((ky_u32)ky_f32_to_bf16(v1) << 16);
    }
};
template <> struct Out<ky_f16> {
    static __device__ __forceinline__ float load(const void* p) {
        return ky_f16_to_f32(*(const ky_u16*)p);
    }
    static __device__ __forceinline__ void store(void* p, float v) {
        *(ky_u16*)p = ky_f32_to_f16(v);
    }
    static __device__ __forceinline__ void store2(void* p, float v0, float v1) {
        *(ky_u32*)p = (ky_u32)ky_f32_to_f16(v0) | ((ky_u32)ky_f32_to_f16(v1) << 16);
    }
};
template <> struct Out<float> {
    static __device__ __forceinline__ float load(const void* p) { return *(const float*)p; }
    static __device__ __forceinline__ void store(void* p, float v) { *(float*)p = v; }
    static __device__ __forceinline__ void store2(void* p, float v0, float v1) {
        *(float2*)p = make_float2(v0, v1);
    }
};

// The value of one element of C: the same arithmetic for every element, whichever store
// writes it.
template <typename C>
__device__ __forceinline__ float value(const C* c, float acc, float alpha, float beta,
                                       int accumulate) {
    float v = __fmul_rn(alpha, acc);
    if (accumulate) v = __fmaf_rn(beta, Out<C>::load(c), v);
    return v;
}

// Calls f(row, col, x0, x1, pair) for each pair of a consumer thread's fragment inside
// [m, n]: wgmma's m64nN f32 layout (R = N / 2 registers) gives warp w rows 16w + lane/4 (+8)
// and, per 8-column block i, columns 8i + 2 (lane % 4) (+1); x0, x1 are the pair's values and
// `pair` whether column col + 1 is inside too.
template <int R, typename F>
__device__ __forceinline__ void for_fragment(const float (&d)[R], ky_i64 m, ky_i64 n,
                                             ky_i64 row0, ky_i64 col0, F f) {
    const int lane = threadIdx.x & 31;
    const ky_i64 r = row0 + (lane >> 2);
#pragma unroll
    for (int i = 0; i < R / 4; ++i) {
        const ky_i64 col = col0 + i * 8 + (lane & 3) * 2;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const ky_i64 row = r + h * 8;
            if (row < m && col < n) f(row, col, d[i * 4 + h * 2], d[i * 4 + h * 2 + 1], col + 1 < n);
        }
    }
}

// Stores one consumer thread's fragment of C element by element: the path for a C whose
// pairs are not word-aligned (C's address, ldc or batch stride odd), with the same values as
// `epilogue`. It is a loop over a local copy of the fragment, not unrolled: a second unrolled
// store sequence beside the paired one made the whole kernel 4-27 % slower (docs/BENCHMARKS.md,
// "v4"), and this path is rare.
template <typename C>
__device__ __forceinline__ void epilogue_unpaired(const float (&d)[128], C* c, ky_i64 ldc,
                                                  ky_i64 m, ky_i64 n, ky_i64 row0, ky_i64 col0,
                                                  float alpha, float beta, int accumulate) {
    float t[128];
#pragma unroll
    for (int i = 0; i < 128; ++i) t[i] = d[i];
    const int lane = threadIdx.x & 31;
    const ky_i64 r = row0 + (lane >> 2);
#pragma unroll 1
    for (int i = 0; i < 32; ++i) {
        const ky_i64 col = col0 + i * 8 + (lane & 3) * 2;
#pragma unroll 1
        for (int e = 0; e < 4; ++e) {
            // e = 2 h + j: row r + 8 h, column col + j (wgmma's fragment order, as in
            // for_fragment).
            const ky_i64 row = r + (e >> 1) * 8;
            if (row < m && col + (e & 1) < n) {
                C* p = c + row * ldc + col + (e & 1);
                Out<C>::store(p, value(p, t[i * 4 + e], alpha, beta, accumulate));
            }
        }
    }
}

// Stores one consumer thread's fragment of C. With `pairs` (C's address, ldc and batch stride
// keep every even column's pair aligned) a pair is stored as one 4- or 8-byte word; otherwise
// through `epilogue_unpaired`, element by element, with the same values.
template <typename C>
__device__ __forceinline__ void epilogue(const float (&d)[128], void* c_ptr, ky_i64 ldc,
                                         ky_i64 m, ky_i64 n, ky_i64 row0, ky_i64 col0,
                                         float alpha, float beta, int accumulate, int pairs) {
    C* c = (C*)c_ptr;
    if (!pairs) {
        epilogue_unpaired(d, c, ldc, m, n, row0, col0, alpha, beta, accumulate);
        return;
    }
    for_fragment(d, m, n, row0, col0, [&](ky_i64 row, ky_i64 col, float x0, float x1, bool pair) {
        C* p = c + row * ldc + col;
        const float v0 = value(p, x0, alpha, beta, accumulate);
        if (!pair) {
            Out<C>::store(p, v0);
            return;
        }
        Out<C>::store2(p, v0, value(p + 1, x1, alpha, beta, accumulate));
    });
}

// The tile `t` of a persistent block: (batch, row block, column block), rasterized in groups
// of GROUP_M row blocks so that blocks running together share a band of B in L2.
struct Tile {
    int batch, m0, n0;
};
template <int TILE_N = BN>
__device__ __forceinline__ Tile tile_of(int t, int tiles_m, int tiles_n) {
    const int per_batch = tiles_m * tiles_n;
    const int batch = t / per_batch;
    const int pid = t % per_batch;
    const int per_group = GROUP_M * tiles_n;
    const int first_m = (pid / per_group) * GROUP_M;
    const int group_rows = min(tiles_m - first_m, GROUP_M);
    const int tile_m = first_m + (pid % per_group) % group_rows;
    const int tile_n = (pid % per_group) / group_rows;
    return Tile{batch, tile_m * BM, tile_n * TILE_N};
}

// An operand as the manual loads see it: its first element (batch entry 0), its row stride
// and batch stride in elements (batch stride 0: broadcast), and its contiguous (`inner`) and
// strided (`outer`) extents.
struct Operand {
    const ky_u16* ptr;
    ky_i64 ld, batch_stride, inner, outer;
};

// Writes the box of `rows` x 64 elements at (inner0, outer0) of batch entry `batch` of `op`
// into `dst` exactly as a TMA copy with the 128-byte swizzle and zero fill writes it: element
// (o, i) of the box at byte o * 128 + ((i / 8) ^ (o % 8)) * 16 + (i % 8) * 2 (`dst` is
// 1024-byte aligned). Used for an operand whose address or strides TMA cannot take (16 bytes):
// the shared memory, and so every bit of the result, is the same either way. Each of the
// producer warpgroup's 128 threads writes 16-byte chunks; a chunk is one 16-byte load when it
// is aligned and whole, else element by element.
__device__ __forceinline__ void manual_box(unsigned char* dst, const Operand& op, int batch,
                                           ky_i64 inner0, ky_i64 outer0, int rows) {
    const ky_u16* base = op.ptr + (ky_i64)batch * op.batch_stride;
    for (int c = threadIdx.x; c < rows * 8; c += 128) {
        const int o = c >> 3, ch = c & 7;
        const ky_i64 go = outer0 + o, gi = inner0 + ch * 8;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (go < op.outer && gi < op.inner) {
            const ky_u16* src = base + go * op.ld + gi;
            if (gi + 8 <= op.inner && ((ky_u64)src & 15) == 0) {
                v = *(const uint4*)src;
            } else {
                ky_u32 w[4] = {0, 0, 0, 0};
#pragma unroll
                for (int j = 0; j < 8; ++j)
                    if (gi + j < op.inner) w[j >> 1] |= (ky_u32)src[j] << ((j & 1) * 16);
                v = make_uint4(w[0], w[1], w[2], w[3]);
            }
        }
        *(uint4*)(dst + o * 128 + ((ch ^ (o & 7)) << 4)) = v;
    }
}

// Announces `bytes` of TMA copies to `bar` without arriving on it.
__device__ __forceinline__ void mbar_expect_tx_only(ky_u64* bar, ky_u32 bytes) {
    asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)),
                 "r"(bytes)
                 : "memory");
}

// Makes this thread's shared-memory writes visible to the async proxy (wgmma's reads).
__device__ __forceinline__ void fence_proxy_async() {
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

// The stage's A (rows m0.., k0..) and B (columns n0.., k0..) tiles, TMA copies or manual
// loads per operand (`manual` bit 0: A, bit 1: B). Shared layouts, each box 128 bytes wide:
// - A not transposed: one box of 128 rows x 64 k; transposed: two boxes of 64 k x 64 m;
// - B transposed: one box of 256 rows x 64 k; not transposed: four boxes of 64 k x 64 n.
// Called by thread 0 alone for the TMA copies (`tma` true) and by all 128 producer threads
// for the manual loads (`tma` false).
template <int TA, int TB>
__device__ __forceinline__ void load_stage(unsigned char* sa, unsigned char* sb, bool tma,
                                           int manual, const KyTensorMap* map_a,
                                           const KyTensorMap* map_b, const Operand& op_a,
                                           const Operand& op_b, const Tile& tile, int ab, int bb,
                                           int k0, ky_u64* bar) {
    if (tma != ((manual & 1) != 0)) {
        if (TA) {
            for (int j = 0; j < BM / 64; ++j) {
                if (tma) tma_load(sa + j * 8192, map_a, tile.m0 + j * 64, k0, ab, bar);
                else manual_box(sa + j * 8192, op_a, ab, tile.m0 + j * 64, k0, BK);
            }
        } else {
            if (tma) tma_load(sa, map_a, k0, tile.m0, ab, bar);
            else manual_box(sa, op_a, ab, k0, tile.m0, BM);
        }
    }
    if (tma != ((manual & 2) != 0)) {
        if (TB) {
            if (tma) tma_load(sb, map_b, k0, tile.n0, bb, bar);
            else manual_box(sb, op_b, bb, k0, tile.n0, BN);
        } else {
            for (int j = 0; j < BN / 64; ++j) {
                if (tma) tma_load(sb + j * 8192, map_b, tile.n0 + j * 64, k0, bb, bar);
                else manual_box(sb + j * 8192, op_b, bb, tile.n0 + j * 64, k0, BK);
            }
        }
    }
}

// Split-K. K's k-tiles are cut into splits of `chunk` k-tiles (the last may be shorter); the
// split count is a function of N, K and the device alone (crates/cuda/src/ops/gemm_bi_sm90.rs),
// never of M. Each split's partial sum p_s starts from zero, and C's element is
// value((((p_0 + p_1) + p_2) + ...)): one order, whichever of two schedules computes it.
// - Serial (a block takes a whole tile): after split s the block adds its running sum (its own
//   slot of the workspace, written at split s - 1) to p_s and stores that, or, after the last
//   split, stores C. `running_*` below.
// - Spread (few tiles: each block takes one (tile, split) unit): p_s goes to the workspace as
//   [split][batch][m][n] f32, and `gemm_bi_sm90_reduce_*` adds the splits in order and stores C.
// f32 addition is commutative, so p_s + running equals running + p_s bit for bit.
// Only the `*_split` entry points (SPLIT) contain this code: compiled into the others it made
// them 4-25 % slower (2026-12-06), though their main loop was the same.

// This consumer thread's 128 floats of a block's running-sum slot (coalesced: float i of
// thread t at i * 256 + t).
__device__ __forceinline__ void running_add(float (&d)[128], const float* slot) {
    const int t = threadIdx.x - 128;
#pragma unroll
    for (int i = 0; i < 128; ++i) d[i] = __fadd_rn(d[i], slot[i * 256 + t]);
}
__device__ __forceinline__ void running_store(const float (&d)[128], float* slot) {
    const int t = threadIdx.x - 128;
#pragma unroll
    for (int i = 0; i < 128; ++i) slot[i * 256 + t] = d[i];
}

// Stores a fragment's partial sums (no alpha) into `part`, the [m, n] f32 matrix of one split
// and batch entry; pairs as one 8-byte word when n is even.
__device__ __forceinline__ void partial_store(const float (&d)[128], float* part, ky_i64 m,
                                              ky_i64 n, ky_i64 row0, ky_i64 col0) {
    for_fragment(d, m, n, row0, col0, [&](ky_i64 row, ky_i64 col, float x0, float x1, bool pair) {
        float* p = part + row * n + col;
        if (pair && (n & 1) == 0) {
            *(float2*)p = make_float2(x0, x1);
        } else {
            p[0] = x0;
            if (pair) p[1] = x1;
        }
    });
}

// The spread schedule's second kernel: C = value(((p_0 + p_1) + ...)) for every element, the
// partials read from `ws` ([splits][batches][m][n] f32).
template <typename C>
__device__ __forceinline__ void reduce(const float* ws, void* c, ky_i64 m, ky_i64 n, ky_i64 ldc,
                                       ky_i64 batch_stride_c, int batches, int splits,
                                       float alpha, float beta, int accumulate) {
    const ky_i64 total = (ky_i64)batches * m * n;
    for (ky_i64 e = (ky_i64)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (ky_i64)gridDim.x * blockDim.x) {
        float sum = ws[e];
        for (int s = 1; s < splits; ++s) sum = __fadd_rn(sum, ws[s * total + e]);
        const ky_i64 b = e / (m * n), row = (e / n) % m, col = e % n;
        C* p = (C*)c + b * batch_stride_c + row * ldc + col;
        Out<C>::store(p, value(p, sum, alpha, beta, accumulate));
    }
}

// The kernel: a persistent grid (at most one block per SM) walks the tiles of every batch,
// block b taking tiles b, b + gridDim.x, ... The producer runs ahead across tiles through the
// ring (a global k-iteration count `it` gives each stage's barrier phase), so the next tile's
// loads overlap this tile's epilogue. Which block computes a tile changes nothing in its
// arithmetic. Coordinates of the tensor maps are (inner, outer, batch); a broadcast operand
// (`a_bcast`, `b_bcast`) is read at batch coordinate 0. TA: A is transposed (stored [k, m]);
// TB: B is transposed (stored [n, k]). `manual` (bit 0: A, bit 1: B) names the operands the
// producer warpgroup loads itself instead of TMA (its map is then unused); `c_pairs`: C's
// pairs may be stored as one word.
template <typename T, int TA, int TB, bool SPLIT>
__device__ __forceinline__ void gemm(const KyTensorMap* map_a, const KyTensorMap* map_b,
                                     const Operand& op_a, const Operand& op_b, int manual,
                                     void* c, ky_i64 m, ky_i64 n, ky_i64 k, ky_i64 ldc,
                                     ky_i64 batch_stride_c, int batches, int a_bcast,
                                     int b_bcast, float alpha, float beta, int accumulate,
                                     int c_f32, int c_pairs, int splits_in, int chunk_in,
                                     int spread_in, float* ws) {
    // Without SPLIT (the unsplit kernel's entry points) K is one piece, known at compile time,
    // so none of the split-K code is in those entry points.
    const int splits = SPLIT ? splits_in : 1;
    const int spread = SPLIT ? spread_in : 0;
    extern __shared__ unsigned char ky_smem_raw[];
    // 1024-byte alignment for the 128-byte swizzle (the launch adds 1 KiB of slack).
    unsigned char* smem =
        (unsigned char*)(((ky_u64)ky_smem_raw + 1023) & ~(ky_u64)1023);
    ky_u64* full = (ky_u64*)(smem + STAGES * STAGE_BYTES);
    ky_u64* empty = full + STAGES;

    const int tiles_m = (int)((m + BM - 1) / BM);
    const int tiles_n = (int)((n + BN - 1) / BN);
    const int tiles = tiles_m * tiles_n * batches;
    const int ktiles = (int)((k + BK - 1) / BK);
    const int chunk = SPLIT ? chunk_in : ktiles;
    // Work units: tiles (serial) or (tile, split) pairs (spread), with their k-tile ranges.
    const int units = spread ? tiles * splits : tiles;
    // Bytes the TMA copies of one stage bring (what `full` waits for besides its arrivals).
    const ky_u32 tma_bytes = ((manual & 1) ? 0 : A_BYTES) + ((manual & 2) ? 0 : B_BYTES);

    const int wg = threadIdx.x / 128;
    if (threadIdx.x == 0) {
        for (int s = 0; s < STAGES; ++s) {
            // With manual loads every producer thread arrives after its writes (thread 0 also
            // announces the stage's TMA bytes, without arriving); else thread 0 alone, with
            // the bytes.
            mbar_init(&full[s], manual ? 128 : 1);
            mbar_init(&empty[s], 256);
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();

    if (wg == 0) {
        // Producer: thread 0 issues every TMA copy (all 128 threads take part in manual
        // loads); the warpgroup gives registers back.
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;");
        if (manual || threadIdx.x == 0) {
            int it = 0;
            for (int u = blockIdx.x; u < units; u += gridDim.x) {
                const Tile tile = tile_of(spread ? u / splits : u, tiles_m, tiles_n);
                const int ab = a_bcast ? 0 : tile.batch;
                const int bb = b_bcast ? 0 : tile.batch;
                const int k_begin = spread ? (u % splits) * chunk : 0;
                const int k_end = spread ? min(k_begin + chunk, ktiles) : ktiles;
                for (int kt = k_begin; kt < k_end; ++kt, ++it) {
                    const int s = it % STAGES;
                    if (it >= STAGES) mbar_wait(&empty[s], ((it / STAGES) - 1) & 1);
                    unsigned char* sa = smem + s * STAGE_BYTES;
                    unsigned char* sb = sa + A_BYTES;
                    const int k0 = kt * BK;
                    if (!manual) {
                        mbar_expect_tx(&full[s], tma_bytes);
                        load_stage<TA, TB>(sa, sb, true, 0, map_a, map_b, op_a, op_b, tile, ab,
                                           bb, k0, &full[s]);
                        continue;
                    }
                    // Thread 0 starts the TMA copies first (their bytes announced without an
                    // arrival), then every thread loads its share and arrives.
                    if (threadIdx.x == 0) {
                        mbar_expect_tx_only(&full[s], tma_bytes);
                        load_stage<TA, TB>(sa, sb, true, manual, map_a, map_b, op_a, op_b,
                                           tile, ab, bb, k0, &full[s]);
                    }
                    load_stage<TA, TB>(sa, sb, false, manual, map_a, map_b, op_a, op_b, tile,
                                       ab, bb, k0, &full[s]);
                    fence_proxy_async();
                    mbar_arrive(&full[s]);
                }
            }
        }
    } else {
        asm volatile("setmaxnreg.inc.sync.aligned.u32 232;");
        const int cw = wg - 1;  // consumer warpgroup: rows cw * 64 .. + 63 of the tile
        const int warp = (threadIdx.x / 32) & 3;
        // Descriptor offsets (bytes): K-major (transpose flag 0) steps 32 bytes per k16 inside
        // the swizzle row (LBO unused, 16); MN-major (flag 1) steps 16 rows of 128 bytes, LBO
        // the next 64-wide block (B's; A's 64 rows per warpgroup are one block).
        const ky_u32 a_lbo = TA ? 8192 : 16;
        const int a_step = TA ? 2048 : 32;
        const ky_u32 b_lbo = TB ? 16 : 8192;
        const int b_step = TB ? 32 : 2048;
        float d[128];
        float* slot = ws + (ky_i64)blockIdx.x * (BM * BN);  // serial running sum (splits > 1)
        int it = 0;
        for (int u = blockIdx.x; u < units; u += gridDim.x) {
            const Tile tile = tile_of(spread ? u / splits : u, tiles_m, tiles_n);
            const ky_i64 row0 = (ky_i64)tile.m0 + cw * 64 + warp * 16;
            const int sp_begin = spread ? u % splits : 0;
            const int sp_end = spread ? sp_begin + 1 : splits;
            for (int sp = sp_begin; sp < sp_end; ++sp) {
                const int k_end = min((sp + 1) * chunk, ktiles);
#pragma unroll
                for (int i = 0; i < 128; ++i) d[i] = 0.0f;
                // One wgmma group stays in flight: after issuing stage s, wait for the group
                // before it and release that group's stage.
                int prev = -1;
                for (int kt = sp * chunk; kt < k_end; ++kt, ++it) {
                    const int s = it % STAGES;
                    mbar_wait(&full[s], (it / STAGES) & 1);
                    // Rows cw * 64.. of A: byte 8192 * cw in both of A's layouts.
                    const unsigned char* sa = smem + s * STAGE_BYTES + cw * 8192;
                    const unsigned char* sb = smem + s * STAGE_BYTES + A_BYTES;
                    wgmma_fence();
#pragma unroll
                    // Four k16 steps of 32 bytes.
                    for (int kk = 0; kk < BK / 16; ++kk) {
                        KyWgmma<T, TA, TB ? 0 : 1>::run(d, desc(sa + kk * a_step, a_lbo, 1024),
                                                        desc(sb + kk * b_step, b_lbo, 1024));
                    }
                    wgmma_commit();
                    wgmma_wait1();
                    if (prev >= 0) mbar_arrive(&empty[prev]);
                    prev = s;
                }
                wgmma_wait0();
                keep(d);
                if (prev >= 0) mbar_arrive(&empty[prev]);
                // Split sp's partial sum is complete in d.
                if (spread) {
                    partial_store(d, ws + ((ky_i64)sp * batches + tile.batch) * m * n, m, n,
                                  row0, tile.n0);
                    continue;
                }
                if (sp > 0) running_add(d, slot);
                if (sp + 1 < splits) {
                    running_store(d, slot);
                    continue;
                }
                void* cb = c_f32 ? (void*)((float*)c + tile.batch * batch_stride_c)
                                 : (void*)((T*)c + tile.batch * batch_stride_c);
                if (c_f32)
                    epilogue<float>(d, cb, ldc, m, n, row0, tile.n0, alpha, beta, accumulate,
                                    c_pairs);
                else
                    epilogue<T>(d, cb, ldc, m, n, row0, tile.n0, alpha, beta, accumulate,
                                c_pairs);
            }
        }
    }
}

// ---- `scaled_gemm` (FP8) ----------------------------------------------------------------------
// A [m, k] and B [n, k] FP8, both K-major; out [m, n] bf16 / f16 / f32. The 16-bit kernel's
// pipeline (producer warpgroup, TMA ring with full / empty barriers, two consumer warpgroups
// of 64 rows, persistent grid in GROUP_M order) with a tile narrower than its 128 x 256,
// because each k-tile's sum is promoted: the tensor cores add FP8 products in fixed point about 14 bits below the
// largest term (docs/TOLERANCES.md), so each k-tile of 128 is summed alone (its first k32 step
// starts from zero) and then added in f32, in k order, to the running sum. That takes a second
// accumulator per thread: N / 2 + N / 2 registers for a tile N wide (n256 would need 256).
// The tile is 128 x 192 (`KY_SM90_FP8_BN`; 128, 160 and 176 are timing variants): wider
// tiles load fewer bytes per product from L2 and shared memory, and 96 + 96 accumulators still
// fit; narrower ones leave a smaller last wave at some shapes (4096 x 4096: 5.3 waves of
// 128 x 192 tiles, 5.8 of 128 x 176).
//
// Batch invariance: out's element is ((t_0 + t_1) + ...) over its k-tiles t_j (each the
// tensor cores' sum of 128 products), scaled once: nothing depends on M or on which block
// computes the tile; rows past M are zero-filled by TMA and stores are predicated.
#ifndef KY_SM90_FP8_BN
#define KY_SM90_FP8_BN 192
#endif
constexpr int BN8 = KY_SM90_FP8_BN;           // columns of out per block
constexpr int R8 = BN8 / 2;                   // f32 accumulators per thread and sum
constexpr int BK8 = 128;                      // k per stage: one 128-byte swizzle row
static_assert(BN8 == 128 || BN8 == 160 || BN8 == 176 || BN8 == 192,
              "an FP8 wgmma of N = 128, 160, 176 or 192 per warpgroup");
// k32 steps summed in the tensor cores before each promotion to f32: 4 (a whole 128-k stage)
// unless the build says otherwise (a timing variant; docs/BENCHMARKS.md).
#ifndef KY_SM90_FP8_PROMOTE
#define KY_SM90_FP8_PROMOTE 4
#endif
constexpr int PROMOTE8 = KY_SM90_FP8_PROMOTE;
// The consumer warpgroups take turns issuing (see `scaled_gemm`) unless the build turns it
// off (a timing variant).
#ifndef KY_SM90_FP8_ORDERED
#define KY_SM90_FP8_ORDERED 1
#endif

// Named barrier `id` over the 256 consumer threads: `named_sync` waits for the other
// warpgroup's `named_arrive` on it (and arrives itself).
__device__ __forceinline__ void named_sync(int id) {
    asm volatile("bar.sync %0, 256;" ::"r"(id) : "memory");
}
__device__ __forceinline__ void named_arrive(int id) {
    asm volatile("bar.arrive %0, 256;" ::"r"(id) : "memory");
}
static_assert((BK8 / 32) % PROMOTE8 == 0, "promotion groups tile a stage");

// CTAs per cluster (`KY_SM90_FP8_CLUSTER`, 1 or 2; the host launches with the same cluster
// size). With 2, the cluster's two CTAs take vertically adjacent tiles (rows m0 and m0 + 128,
// the same columns) and share B's box: each CTA loads half of B's rows and multicasts it into
// both CTAs' shared memory, so each CTA reads 28 instead of 40 KiB per stage from L2. A
// stage is then refilled only when both CTAs' consumers have freed it (the empty barrier
// counts both). Only who loads which bytes changes, never what a consumer reads.
#ifndef KY_SM90_FP8_CLUSTER
#define KY_SM90_FP8_CLUSTER 1
#endif
constexpr int CLUSTER8 = KY_SM90_FP8_CLUSTER;
static_assert(CLUSTER8 == 1 || CLUSTER8 == 2, "clusters of one or two CTAs");

// One 3-D TMA box written into the same shared-memory offset of every CTA in `mask`, each
// CTA's barrier at `bar`'s offset receiving the bytes.
__device__ __forceinline__ void tma_load_multicast(void* dst, const KyTensorMap* map, int c0,
                                                   int c1, int c2, ky_u64* bar,
                                                   unsigned short mask) {
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes"
        ".multicast::cluster [%0], [%1, {%2, %3, %4}], [%5], %6;" ::"r"(smem_addr(dst)),
        "l"((ky_u64)map), "r"(c0), "r"(c1), "r"(c2), "r"(smem_addr(bar)), "h"(mask)
        : "memory");
}
constexpr int A8_BYTES = BM * BK8;            // 16 KiB
constexpr int B8_BYTES = BN8 * BK8;           // 16 to 24 KiB (a multiple of 1 KiB: the swizzle)
constexpr int STAGE8_BYTES = A8_BYTES + B8_BYTES;
// As many stages as an H100's 227 KiB opt-in holds beside 1 KiB of alignment slack and the
// barriers, at most six: 6 at N = 128 and 160, 5 at 176 and 192 (the host computes the same).
constexpr int STAGES8 = 6 * STAGE8_BYTES + 1024 + 6 * 16 <= 227 * 1024 ? 6 : 5;

// `scaled_gemm`'s epilogue inputs: A's and B's f32 scales (one each, or one per row of A and
// of B with `rows`), and the bias [n] (null: none; f16 with `bias_f16`, else bf16).
struct Scales {
    const float* a;
    const float* b;
    int rows;
    const ky_u16* bias;
    int bias_f16;
};

// One element of `scaled_gemm`'s out: acc * (scale_a * scale_b) per tensor, (acc * sa) * sb
// per row (sa = scale_a[row], sb = scale_b[col]), then + bias (`bias`: its bf16 or f16 bits);
// the same arithmetic for every element.
__device__ __forceinline__ float scaled(float acc, float sa, float sb, ky_u16 bias, float both,
                                        const Scales& s) {
    float v = s.rows ? __fmul_rn(__fmul_rn(acc, sa), sb) : __fmul_rn(both, acc);
    if (s.bias) v = __fadd_rn(v, s.bias_f16 ? ky_f16_to_f32(bias) : ky_bf16_to_f32(bias));
    return v;
}

// 8-column blocks per batch of epilogue loads: half the fragment's (a timing variant may say
// otherwise; the whole fragment's at once spilled at N = 192).
#ifndef KY_SM90_FP8_EPI_CHUNK
#define KY_SM90_FP8_EPI_CHUNK 0
#endif

// Stores one consumer thread's fragment of `scaled_gemm`'s out ([m, n], row-major, 16-byte
// aligned): pairs as one word when n is even (every even column's pair is then aligned),
// else element by element, with the same values. Its inputs (the two rows' scales, then per
// chunk of columns their scales and bias) are loaded before the arithmetic that uses them,
// from indices clamped into out so that no load waits on a branch: each element's loads were
// otherwise issued next to its arithmetic and their latency exposed once per element (per-row
// scales cost 27 %, twelfth session). They land in registers the tile's group sum no longer
// needs.
template <typename C, int R>
__device__ __forceinline__ void scaled_epilogue(const float (&d)[R], void* out, ky_i64 m,
                                                ky_i64 n, ky_i64 row0, ky_i64 col0,
                                                const Scales& s) {
    constexpr int CHUNK = KY_SM90_FP8_EPI_CHUNK ? KY_SM90_FP8_EPI_CHUNK : R / 8;
    static_assert((R / 4) % CHUNK == 0, "chunks tile the fragment");
    C* c = (C*)out;
    const int lane = threadIdx.x & 31;
    const ky_i64 r = row0 + (lane >> 2);
    const ky_i64 c0 = col0 + (lane & 3) * 2;
    float sa[2] = {0.0f, 0.0f};
    const float both = s.rows ? 0.0f : __fmul_rn(__ldg(s.a), __ldg(s.b));
    if (s.rows) {
#pragma unroll
        for (int h = 0; h < 2; ++h) sa[h] = __ldg(s.a + min(r + h * 8, m - 1));
    }
    const bool even = (n & 1) == 0;
#pragma unroll
    for (int i0 = 0; i0 < R / 4; i0 += CHUNK) {
        float sb[2 * CHUNK];
        ky_u32 bias[CHUNK];  // two bf16 / f16 values a word
#pragma unroll
        for (int j = 0; j < CHUNK; ++j) {
            const ky_i64 col = c0 + (i0 + j) * 8;
            const ky_i64 lo = min(col, n - 1), hi = min(col + 1, n - 1);
            sb[2 * j] = s.rows ? __ldg(s.b + lo) : 0.0f;
            sb[2 * j + 1] = s.rows ? __ldg(s.b + hi) : 0.0f;
            bias[j] = s.bias ? (ky_u32)__ldg(s.bias + lo) | ((ky_u32)__ldg(s.bias + hi) << 16) : 0u;
        }
#pragma unroll
        for (int j = 0; j < CHUNK; ++j) {
            const int i = i0 + j;
            const ky_i64 col = c0 + i * 8;
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const ky_i64 row = r + h * 8;
                if (row >= m || col >= n) continue;
                C* p = c + row * n + col;
                const float v0 =
                    scaled(d[i * 4 + h * 2], sa[h], sb[2 * j], (ky_u16)bias[j], both, s);
                if (col + 1 >= n) {
                    Out<C>::store(p, v0);
                    continue;
                }
                const float v1 = scaled(d[i * 4 + h * 2 + 1], sa[h], sb[2 * j + 1],
                                        (ky_u16)(bias[j] >> 16), both, s);
                if (even) {
                    Out<C>::store2(p, v0, v1);
                } else {
                    Out<C>::store(p, v0);
                    Out<C>::store(p + 1, v1);
                }
            }
        }
    }
}

// The kernel (see above). Scales are read on the device.
template <typename AT, typename BT, typename C>
__device__ __forceinline__ void scaled_gemm(const KyTensorMap* map_a, const KyTensorMap* map_b,
                                            void* out, ky_i64 m, ky_i64 n, ky_i64 k,
                                            const Scales& scales) {
    extern __shared__ unsigned char ky_smem_raw[];
    unsigned char* smem =
        (unsigned char*)(((ky_u64)ky_smem_raw + 1023) & ~(ky_u64)1023);
    ky_u64* full = (ky_u64*)(smem + STAGES8 * STAGE8_BYTES);
    ky_u64* empty = full + STAGES8;

    // The schedule's unit is a cluster's tiles: CLUSTER8 vertically adjacent tiles (a CTA
    // past m computes zeros and stores nothing), unit u to cluster u, u + clusters, ...
    const int tiles_m = (int)((m + BM * CLUSTER8 - 1) / (BM * CLUSTER8));
    const int tiles_n = (int)((n + BN8 - 1) / BN8);
    const int tiles = tiles_m * tiles_n;
    const int ktiles = (int)((k + BK8 - 1) / BK8);
    const int rank = CLUSTER8 == 1 ? 0 : cluster_rank();
    const int unit0 = blockIdx.x / CLUSTER8;
    const int units = gridDim.x / CLUSTER8;
    // The tile's first row: the unit's, plus this CTA's share.
    auto row_of = [&](const Tile& t) { return t.m0 * CLUSTER8 + rank * BM; };

    const int wg = threadIdx.x / 128;
    if (threadIdx.x == 0) {
        for (int s = 0; s < STAGES8; ++s) {
            mbar_init(&full[s], 1);
            // One arrival per consumer warp of every CTA of the cluster.
            mbar_init(&empty[s], 8 * CLUSTER8);
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    if (CLUSTER8 == 1)
        __syncthreads();
    else
        cluster_sync();

    if (wg == 0) {
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;");
        if (threadIdx.x == 0) {
            int it = 0;
            for (int u = unit0; u < tiles; u += units) {
                const Tile tile = tile_of<BN8>(u, tiles_m, tiles_n);
                for (int kt = 0; kt < ktiles; ++kt, ++it) {
                    const int s = it % STAGES8;
                    if (it >= STAGES8) mbar_wait(&empty[s], ((it / STAGES8) - 1) & 1);
                    unsigned char* sa = smem + s * STAGE8_BYTES;
                    // The whole stage lands here: A from this CTA's copy, B's halves from
                    // both CTAs' multicasts (a peer's bytes may arrive before this expect:
                    // the phase cannot complete before this arrival).
                    mbar_expect_tx(&full[s], STAGE8_BYTES);
                    tma_load(sa, map_a, kt * BK8, row_of(tile), 0, &full[s]);
                    if (CLUSTER8 == 1) {
                        tma_load(sa + A8_BYTES, map_b, kt * BK8, tile.n0, 0, &full[s]);
                    } else {
                        constexpr int HALF = BN8 / 2;
                        tma_load_multicast(sa + A8_BYTES + rank * HALF * BK8, map_b, kt * BK8,
                                           tile.n0 + rank * HALF, 0, &full[s],
                                           (unsigned short)((1 << CLUSTER8) - 1));
                    }
                }
            }
        }
    } else {
        asm volatile("setmaxnreg.inc.sync.aligned.u32 232;");
        const int cw = wg - 1;  // consumer warpgroup: rows cw * 64 .. + 63 of the tile
        const int warp = (threadIdx.x / 32) & 3;
        float acc[R8];  // the promoted running sum (f32)
        // Rows cw * 64.. of A (8 KiB each), then B's BN8 rows; K-major, 128-byte swizzle:
        // SBO 1024 bytes (8 rows), k32 step +32 bytes. Each group of PROMOTE8 steps starts its
        // sum from zero (`accumulate` 0 on its first step), is waited for, and is added to
        // the running sum; the stage is freed after its last group.
        float t[R8];
        // The two warpgroups take turns to issue their groups (named barriers 1 and 2, 256
        // threads: one warpgroup arrives, the other syncs): warpgroup 0 issues, then 1, then
        // 0 ... So while one waits for its group and promotes, the other's group runs: without
        // the turns both issue at once off the same stage, their groups finish together and
        // the tensor cores idle through both promotions. Only the issue order changes, never
        // the arithmetic. `first` lets warpgroup 0 issue its very first group unprompted.
        bool first = cw == 0;
        auto stage = [&](int it_) {
            const int s = it_ % STAGES8;
            mbar_wait(&full[s], (it_ / STAGES8) & 1);
            const unsigned char* sa = smem + s * STAGE8_BYTES + cw * 8192;
            const unsigned char* sb = smem + s * STAGE8_BYTES + A8_BYTES;
#pragma unroll
            for (int g = 0; g < BK8 / 32; g += PROMOTE8) {
#if KY_SM90_FP8_ORDERED
                if (!first) named_sync(1 + cw);
                first = false;
#endif
                wgmma_fence();
#pragma unroll
                for (int kk = g; kk < g + PROMOTE8; ++kk) {
                    KyWgmma8<AT, BT, BN8>::run(t, desc(sa + kk * 32, 16, 1024),
                                          desc(sb + kk * 32, 16, 1024), kk != g);
                }
                wgmma_commit();
#if KY_SM90_FP8_ORDERED
                named_arrive(2 - cw);
#endif
                wgmma_wait0();
                keep(t);
                if (g + PROMOTE8 == BK8 / 32) {
                    // One arrival per warp on every CTA's empty barrier: this warp's reads
                    // of the stage are done (its wgmmas completed above).
                    __syncwarp();
                    if ((threadIdx.x & 31) == 0) {
                        if (CLUSTER8 == 1) {
                            mbar_arrive(&empty[s]);
                        } else {
#pragma unroll
                            for (int c = 0; c < CLUSTER8; ++c) mbar_arrive_cluster(&empty[s], c);
                        }
                    }
                }
#pragma unroll
                for (int i = 0; i < R8; ++i) acc[i] = __fadd_rn(acc[i], t[i]);
            }
        };
        int it = 0;
        for (int u = unit0; u < tiles; u += units) {
            const Tile tile = tile_of<BN8>(u, tiles_m, tiles_n);
            const ky_i64 row0 = (ky_i64)row_of(tile) + cw * 64 + warp * 16;
#pragma unroll
            for (int i = 0; i < R8; ++i) acc[i] = 0.0f;
            // One group at a time: it is waited for before its sum is promoted. (Alternating
            // two sums to keep the next group in flight made ptxas serialise the wgmmas
            // anyway: C7514, "non wgmma instructions reading accumulator registers"; the other
            // consumer warpgroup's wgmmas fill the gap instead.)
            for (int kt = 0; kt < ktiles; ++kt, ++it) stage(it);
            scaled_epilogue<C>(acc, out, m, n, row0, tile.n0, scales);
        }
#if KY_SM90_FP8_ORDERED
        // Warpgroup 1's last arrival on barrier 1 has no issue of warpgroup 0 left to meet:
        // meet it here, so no barrier is left half-arrived (both issue equally many groups).
        if (cw == 0 && it > 0) named_sync(1);
#endif
    }
    // No CTA of a cluster leaves while the other may still multicast into its shared memory
    // or arrive on its barriers.
    if (CLUSTER8 > 1) cluster_sync();
}

}  // namespace sm90

// Which entry points a compile defines: the host builds one module per GEMM entry point and
// one for the reductions (crates/cuda/src/ops/gemm_bi_sm90.rs, `MODULES`), defining
// KY_SM90_ONLY as the module's index: 0..15, the GEMM entry points below in order; 16, the
// three reductions. A first use then compiles one kernel, not nineteen. Without it (nvcc by
// hand) the file defines them all.
#ifdef KY_SM90_ONLY
#define KY_SM90_WANT(i) (KY_SM90_ONLY == (i))
#else
#define KY_SM90_WANT(i) 1
#endif

#define KY_GEMM_SM90(NAME, T, TA, TB, SPLIT)                                                    \
    extern "C" __global__ void __launch_bounds__(sm90::THREADS, 1) NAME(                        \
        const __grid_constant__ KyTensorMap map_a, const __grid_constant__ KyTensorMap map_b,   \
        const void* a, long long lda, long long batch_stride_a, const void* b, long long ldb,    \
        long long batch_stride_b, int manual, void* c, long long m, long long n, long long k,   \
        long long ldc, long long batch_stride_c, int batches, int a_bcast, int b_bcast,         \
        float alpha, float beta, int accumulate, int c_f32, int c_pairs, int splits, int chunk,  \
        int spread, float* ws) {                                                                 \
        const sm90::Operand op_a{(const ky_u16*)a, lda, a_bcast ? 0 : batch_stride_a,            \
                                 TA ? m : k, TA ? k : m};                                       \
        const sm90::Operand op_b{(const ky_u16*)b, ldb, b_bcast ? 0 : batch_stride_b,            \
                                 TB ? k : n, TB ? n : k};                                       \
        sm90::gemm<T, TA, TB, SPLIT>(&map_a, &map_b, op_a, op_b, manual, c, m, n, k, ldc,       \
                                     batch_stride_c, batches, a_bcast, b_bcast, alpha, beta,    \
                                     accumulate, c_f32, c_pairs, splits, chunk, spread, ws);    \
    }

// K in one piece (`cuda.gemm.batch_invariant.sm90`).
#if KY_SM90_WANT(0)
KY_GEMM_SM90(gemm_bi_sm90_bf16_nn, ky_bf16, 0, 0, false)
#endif
#if KY_SM90_WANT(1)
KY_GEMM_SM90(gemm_bi_sm90_bf16_nt, ky_bf16, 0, 1, false)
#endif
#if KY_SM90_WANT(2)
KY_GEMM_SM90(gemm_bi_sm90_bf16_tn, ky_bf16, 1, 0, false)
#endif
#if KY_SM90_WANT(3)
KY_GEMM_SM90(gemm_bi_sm90_bf16_tt, ky_bf16, 1, 1, false)
#endif
#if KY_SM90_WANT(4)
KY_GEMM_SM90(gemm_bi_sm90_f16_nn, ky_f16, 0, 0, false)
#endif
#if KY_SM90_WANT(5)
KY_GEMM_SM90(gemm_bi_sm90_f16_nt, ky_f16, 0, 1, false)
#endif
#if KY_SM90_WANT(6)
KY_GEMM_SM90(gemm_bi_sm90_f16_tn, ky_f16, 1, 0, false)
#endif
#if KY_SM90_WANT(7)
KY_GEMM_SM90(gemm_bi_sm90_f16_tt, ky_f16, 1, 1, false)
#endif
// K in splits (`cuda.gemm.batch_invariant.sm90.splitk`).
#if KY_SM90_WANT(8)
KY_GEMM_SM90(gemm_bi_sm90_bf16_nn_split, ky_bf16, 0, 0, true)
#endif
#if KY_SM90_WANT(9)
KY_GEMM_SM90(gemm_bi_sm90_bf16_nt_split, ky_bf16, 0, 1, true)
#endif
#if KY_SM90_WANT(10)
KY_GEMM_SM90(gemm_bi_sm90_bf16_tn_split, ky_bf16, 1, 0, true)
#endif
#if KY_SM90_WANT(11)
KY_GEMM_SM90(gemm_bi_sm90_bf16_tt_split, ky_bf16, 1, 1, true)
#endif
#if KY_SM90_WANT(12)
KY_GEMM_SM90(gemm_bi_sm90_f16_nn_split, ky_f16, 0, 0, true)
#endif
#if KY_SM90_WANT(13)
KY_GEMM_SM90(gemm_bi_sm90_f16_nt_split, ky_f16, 0, 1, true)
#endif
#if KY_SM90_WANT(14)
KY_GEMM_SM90(gemm_bi_sm90_f16_tn_split, ky_f16, 1, 0, true)
#endif
#if KY_SM90_WANT(15)
KY_GEMM_SM90(gemm_bi_sm90_f16_tt_split, ky_f16, 1, 1, true)
#endif

#define KY_GEMM_SM90_REDUCE(NAME, C)                                                             \
    extern "C" __global__ void __launch_bounds__(256) NAME(                                     \
        const float* ws, void* c, long long m, long long n, long long ldc,                      \
        long long batch_stride_c, int batches, int splits, float alpha, float beta,             \
        int accumulate) {                                                                        \
        sm90::reduce<C>(ws, c, m, n, ldc, batch_stride_c, batches, splits, alpha, beta,          \
                        accumulate);                                                             \
    }

#if KY_SM90_WANT(16)
KY_GEMM_SM90_REDUCE(gemm_bi_sm90_reduce_bf16, ky_bf16)
#endif
#if KY_SM90_WANT(16)
KY_GEMM_SM90_REDUCE(gemm_bi_sm90_reduce_f16, ky_f16)
#endif
#if KY_SM90_WANT(16)
KY_GEMM_SM90_REDUCE(gemm_bi_sm90_reduce_f32, float)
#endif

// `scaled_gemm` (`cuda.scaled_gemm.batch_invariant.sm90`): A [m, k] and B [n, k] FP8 (K-major,
// both by TMA), out [m, n] bf16, f16 or f32; module 17 + 3 * pair + out (pairs e4m3 x e4m3,
// e4m3 x e5m2, e5m2 x e4m3, e5m2 x e5m2; outs bf16, f16, f32). Each 128-k tile's sum is
// promoted to f32 (`sm90::scaled_gemm`).
#define KY_SCALED_GEMM_SM90(NAME, AT, BT, C)                                                     \
    extern "C" __global__ void __launch_bounds__(sm90::THREADS, 1) NAME(                        \
        const __grid_constant__ KyTensorMap map_a, const __grid_constant__ KyTensorMap map_b,   \
        void* out, long long m, long long n, long long k, const float* scale_a,                 \
        const float* scale_b, int rows, const void* bias, int bias_f16) {                       \
        const sm90::Scales s{scale_a, scale_b, rows, (const ky_u16*)bias, bias_f16};             \
        sm90::scaled_gemm<sm90::AT, sm90::BT, C>(&map_a, &map_b, out, m, n, k, s);               \
    }

#if KY_SM90_WANT(17)
KY_SCALED_GEMM_SM90(scaled_gemm_sm90_e4m3_e4m3_bf16, e4m3, e4m3, ky_bf16)
#endif
#if KY_SM90_WANT(18)
KY_SCALED_GEMM_SM90(scaled_gemm_sm90_e4m3_e4m3_f16, e4m3, e4m3, ky_f16)
#endif
#if KY_SM90_WANT(19)
KY_SCALED_GEMM_SM90(scaled_gemm_sm90_e4m3_e4m3_f32, e4m3, e4m3, float)
#endif
#if KY_SM90_WANT(20)
KY_SCALED_GEMM_SM90(scaled_gemm_sm90_e4m3_e5m2_bf16, e4m3, e5m2, ky_bf16)
#endif
#if KY_SM90_WANT(21)
KY_SCALED_GEMM_SM90(scaled_gemm_sm90_e4m3_e5m2_f16, e4m3, e5m2, ky_f16)
#endif
#if KY_SM90_WANT(22)
KY_SCALED_GEMM_SM90(scaled_gemm_sm90_e4m3_e5m2_f32, e4m3, e5m2, float)
#endif
#if KY_SM90_WANT(23)
KY_SCALED_GEMM_SM90(scaled_gemm_sm90_e5m2_e4m3_bf16, e5m2, e4m3, ky_bf16)
#endif
#if KY_SM90_WANT(24)
KY_SCALED_GEMM_SM90(scaled_gemm_sm90_e5m2_e4m3_f16, e5m2, e4m3, ky_f16)
#endif
#if KY_SM90_WANT(25)
KY_SCALED_GEMM_SM90(scaled_gemm_sm90_e5m2_e4m3_f32, e5m2, e4m3, float)
#endif
#if KY_SM90_WANT(26)
KY_SCALED_GEMM_SM90(scaled_gemm_sm90_e5m2_e5m2_bf16, e5m2, e5m2, ky_bf16)
#endif
#if KY_SM90_WANT(27)
KY_SCALED_GEMM_SM90(scaled_gemm_sm90_e5m2_e5m2_f16, e5m2, e5m2, ky_f16)
#endif
#if KY_SM90_WANT(28)
KY_SCALED_GEMM_SM90(scaled_gemm_sm90_e5m2_e5m2_f32, e5m2, e5m2, float)
#endif
