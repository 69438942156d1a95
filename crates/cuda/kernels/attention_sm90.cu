// kernels/attention_sm90.cu: fused attention forward for Hopper (sm_90a), FlashAttention-3
// style but simple: TMA loads, wgmma on tensor cores, mbarrier handshakes between one producer
// warpgroup and two consumer warpgroups. `cuda.attention.sm90`
// (crates/cuda/src/ops/attention_sm90.rs) launches it; `cuda.attention` (attention.cu, mma.sync)
// defines the contract, which this kernel keeps:
//
//   out[b, i, h, :] = sum_j softmax_j(scale * q[b, i, h, :] . k[b, j, hk, :] + mask) v[b, j, hk, :]
//   lse[b, h, i]    = ln sum_j exp(scale * q . k_j + mask)               (natural log, f32)
//
// q [B, Sq, Hq, D], k and v [B, Skv, Hkv, D], out [B, Sq, Hq, D], contiguous, f16 or bf16;
// hk = h / (Hq / Hkv); D = 64, 96, 128 or 256. Causal masking is bottom-right aligned: query
// i sees keys j <= i + Skv - Sq. A query that sees no key gets out = 0 and lse = -inf.
//
// One configuration per head dim (never per Sq, Skv, B or H):
// - one block of THREADS = 384 (3 warpgroups) per (query block of BM = 128 rows, q head,
//   batch entry). Warpgroup 0 is the producer (one thread issues every TMA copy; the group
//   gives registers back with setmaxnreg), warpgroups 1 and 2 consume: consumer c owns query
//   rows 64 c .. 64 c + 63 of the block, whole rows, so a row's softmax stays in one warp
//   (warp w of the warpgroup: rows 16 w + lane / 4 and + 8; each row in one quad of lanes).
// - TMA tensor maps are 4-D over the [B, S, H, D] memory: dims (D, H, S, B), so a box is
//   (BW d, 1 head, rows, 1 batch entry) and rows past S are zero-filled per batch entry (never
//   the next entry's data). A box row is BW = 64 elements (128 bytes, 128-byte swizzle, as in
//   gemm_bi_sm90.cu) when 64 divides D, else 32 (64 bytes, 64-byte swizzle: D = 96); RB =
//   2 BW bytes per box row; buffers 1024-byte aligned.
// - Q: D / BW boxes of BW d x 128 rows, loaded once. K: per stage D / BW boxes of BW d x KN
//   keys. V: per stage (KN / VR) x D / BW boxes of BW d x VR keys (layout [key group][d block]
//   [VR keys][BW d]) so the N-major V descriptor is the GEMM's (LBO = one V box = the next d
//   block, SBO = 8 RB = the next 8 keys, k16 step +16 RB bytes).
// - key tiles of KN keys (ATTN90_KN<D>: 128 at D = 64, 96 and 128, 64 at D = 256, where O
//   holds 128 registers per thread and the 64 KiB Q tile leaves room for two 64 KiB stages:
//   193 KiB in all) in increasing order, in a ring of ST stages (ATTN90_STAGES at D < 256, 2
//   at 256; full barriers for K and for V with expected transaction bytes; empty barriers of
//   256 consumer arrivals, one for K, released once S = Q K^T is done, and one for V).
// - S = Q K^T: 64 x KN per consumer, wgmma m64nKNk16, A = Q (K-major over d, descriptor SBO =
//   8 RB, k16 step +32 bytes inside a box row, the next BW d in the next box), B = K tile
//   (K-major over d, likewise). Then, in the accumulator registers: scale * log2(e), mask
//   (-inf) per element by key position (causal and the key tail past Skv), online softmax in
//   base 2 with a guarded max (a row that has seen no key uses 0, so exp2(-inf - 0) = 0, never
//   (-inf) - (-inf); alpha = 1 exactly when the max did not move: a tile a row sees nothing of
//   leaves it exactly unchanged), P rounded to the dtype in registers.
// - O += P V: wgmma m64nPNk16 (PN = min(D, 128): two column chunks at D = 256) with A = P
//   from registers and B = V from shared memory (N-major: transpose flag 1), KN / 16 k16 steps
//   per tile.
// - The schedule (ATTN90_OVERLAP, ATTN90_PINGPONG, both on): FlashAttention-3's
//   intra-warpgroup overlap (S of tile t + 1 is issued with O += P_t V_t and its softmax runs
//   while P_t V_t is on the tensor cores) and ping-pong (the consumers take turns issuing their
//   GEMMs). Every value is computed by the same operations in the same order as one tile at a
//   time (both off): the same bits. ATTN90_FFMA (on) folds the softmax scale into the exp2's
//   argument (one FFMA per score): different rounding from the multiply-and-subtract it
//   replaced, the same in every run; 4-12 % faster on an H100 (docs/BENCHMARKS.md, sixteenth
//   session).
// - out = O / l (stores predicated on Sq), lse = m ln 2 + ln l.
//
// Every output element (and lse value) is computed by one thread (with its quad for the row
// max and the final row sum, in a fixed xor-butterfly order) in an order fixed by (Sq, Skv, D)
// and the row's position: key tiles from 0 in increasing order, fixed wgmma k16 order, fixed
// trees. No split over keys, no atomics, no choice of configuration by size: deterministic
// and batch-invariant.
#include "common.cuh"
#include "hopper.cuh"

namespace attn90 {

constexpr int BM = 128;       // query rows per block (two consumer warpgroups of 64)
constexpr int THREADS = 384;  // warpgroup 0 produces, 1 and 2 consume

// Keys per tile of each head dim, one line each (crates/cuda/src/ops/attention_sm90.rs reads
// them from this text, so the launch follows the build; scripts/attn90_variants.sh builds
// others). A multiple of 16 with a wgmma S = Q K^T instruction below (64, 80, 128, 176).
#define ATTN90_KN64 128
#define ATTN90_KN96 128
#define ATTN90_KN128 128
#define ATTN90_KN256 64
// K/V stages at head dims 64 and 128 (D = 256 always has 2: a third 64 KiB stage would not fit
// beside its 64 KiB Q tile).
#define ATTN90_STAGES 2

// The tiling of head dim D (nothing else chooses it):
// - KN keys per tile: 128 by default, 64 at D = 256, where O takes 128 registers per consumer
//   thread and a 128-key stage would not fit twice beside the 64 KiB Q tile;
// - V boxes of VR keys: 64 when KN is a multiple of 64, else 16 (the N-major V descriptor
//   steps LBO = VR * 128 bytes per 64-wide d block);
// - O += P V runs in D / PN column chunks of PN = min(D, 128) (m64nPNk16: at most 64
//   accumulator registers per instruction).
template <int D>
struct Cfg {
    static constexpr int KN = D == 64    ? ATTN90_KN64
                              : D == 96  ? ATTN90_KN96
                              : D == 128 ? ATTN90_KN128
                                         : ATTN90_KN256;
    // Box width in elements: 64 (128-byte rows, 128-byte swizzle), or 32 at D = 96 (64-byte
    // rows, 64-byte swizzle: 96 is not a multiple of 64). RB bytes per box row.
    static constexpr int BW = D % 64 == 0 ? 64 : 32;
    static constexpr int RB = BW * 2;
    static constexpr int VR = KN % 64 == 0 ? 64 : 16;
    static constexpr int PN = D < 128 ? D : 128;  // 64, 96, 128
    static constexpr int NC = D / PN;  // O chunks
    static constexpr int ST = D == 256 ? 2 : ATTN90_STAGES;  // K/V stages
    static_assert(KN % 16 == 0 && KN >= 16 && KN <= 256, "keys per tile: a multiple of 16");
};

// Dynamic shared memory (after aligning the base to 1024 bytes): Q, then ST stages of
// (K tile, V tile), then the barriers. A K box is KN rows x 128 bytes, a V box VR rows.
template <int D>
struct Smem {
    static constexpr int DB = D / Cfg<D>::BW;  // boxes across d
    static constexpr int QBOX = BM * Cfg<D>::RB;
    static constexpr int KBOX = Cfg<D>::KN * Cfg<D>::RB;
    static constexpr int VBOX = Cfg<D>::VR * Cfg<D>::RB;
    static constexpr int Q_BYTES = DB * QBOX;
    static constexpr int K_BYTES = DB * KBOX;
    static constexpr int V_BYTES = (Cfg<D>::KN / Cfg<D>::VR) * DB * VBOX;
    static constexpr int STAGE_BYTES = K_BYTES + V_BYTES;
    static constexpr int BAR_OFFSET = Q_BYTES + Cfg<D>::ST * STAGE_BYTES;
    // q_full, k_full[ST], v_full[ST], k_empty[ST], v_empty[ST]
    static constexpr int BARS = 1 + 4 * Cfg<D>::ST;
    // With 1 KiB of slack for the alignment.
    static constexpr int BYTES = BAR_OFFSET + BARS * 8 + 1024;
};
// The Rust side (`shared_bytes` in attention_sm90.rs) launches with these.
// The opt-in limit of an H100 / H200 block (227 KiB): every head dim fits (flashinfer#3276 was
// a head-dim-256 configuration that did not, and deadlocked). `shared_bytes` in
// attention_sm90.rs computes the same sizes (its tests check the formula).
static_assert(Smem<64>::BYTES <= 227 * 1024, "D = 64 must fit sm_90's 227 KiB");
static_assert(Smem<96>::BYTES <= 227 * 1024, "D = 96 must fit sm_90's 227 KiB");
static_assert(Smem<128>::BYTES <= 227 * 1024, "D = 128 must fit sm_90's 227 KiB");
static_assert(Smem<256>::BYTES <= 227 * 1024, "D = 256 must fit sm_90's 227 KiB");

// ---- PTX -----------------------------------------------------------------------------------

using namespace ky_hopper;

// 1: FlashAttention-3's intra-warpgroup overlap (the softmax of key tile t + 1 runs while
// O += P_t V_t is on the tensor cores); 0: one tile at a time. The same bits either way.
#ifndef ATTN90_OVERLAP
#define ATTN90_OVERLAP 1
#endif
// 1 (with ATTN90_OVERLAP 1): FlashAttention-3's ping-pong, the two consumer warpgroups take
// turns issuing their tile's two GEMMs (named barriers 1 and 2), so one's softmax runs under
// the other's GEMMs. Scheduling only: the same bits.
#ifndef ATTN90_PINGPONG
#define ATTN90_PINGPONG 1
#endif
// 1: the softmax scales with one FFMA per score when the scale is positive (below); 0: a
// multiply and a subtraction (a timing variant; the fifteenth session's default).
#ifndef ATTN90_FFMA
#define ATTN90_FFMA 1
#endif
// Registers per thread of the producer and the consumer warpgroups (setmaxnreg; 128 x
// producer + 256 x consumer <= 65,536). The overlap keeps the next tile's S beside O and P.
#if ATTN90_OVERLAP
#define ATTN90_PRODUCER_REGS "setmaxnreg.dec.sync.aligned.u32 24;"
#define ATTN90_CONSUMER_REGS "setmaxnreg.inc.sync.aligned.u32 240;"
#else
#define ATTN90_PRODUCER_REGS "setmaxnreg.dec.sync.aligned.u32 40;"
#define ATTN90_CONSUMER_REGS "setmaxnreg.inc.sync.aligned.u32 232;"
#endif

// A wgmma shared-memory descriptor with swizzle layout SW (1: 128-byte, hopper.cuh's `desc`;
// 2: 64-byte): the same fields, another layout type in bits 62-63.
template <int SW>
__device__ __forceinline__ ky_u64 desc_sw(const void* p, ky_u32 lbo, ky_u32 sbo) {
    return (desc(p, lbo, sbo) & ~(3ull << 62)) | ((ky_u64)SW << 62);
}

// One 4-D TMA box (d, head, position, batch coordinates) into shared memory, completing on
// `bar`.
__device__ __forceinline__ void tma_load4(void* dst, const KyTensorMap* map, int c0, int c1,
                                          int c2, int c3, ky_u64* bar) {
    asm volatile(
        "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes"
        " [%0], [%1, {%2, %3, %4, %5}], [%6];" ::"r"(smem_addr(dst)),
        "l"((ky_u64)map), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(smem_addr(bar))
        : "memory");
}

// S += Q K^T for one k16 step: m64n128k16, A and B from shared memory, both K-major
// (transpose flags 0, 0).
// S += Q K^T for one k16 step: m64n128k16, A and B from shared memory, both K-major
// (transpose flags 0, 0).
// Other key-tile sizes below.
template <typename T, int N> struct WgQK;
// One definition per instruction shape for both 16-bit types: TY (bf16 or f16) is pasted
// into the storage type and the instruction (the PTX is what the two spelled-out copies gave).
#define ATTN90_WGQK(TY) \
template <> struct WgQK<ky_##TY, 128> {                                                                                                                                                                                                                                                                                                  \
  static __device__ __forceinline__ void run(float (&d)[64], ky_u64 da, ky_u64 db) {                                                                                                                                                                                                                                                \
    asm volatile(                                                                                                                                                                                                                                                                                                                   \
        "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"                                                                                                                                                                                                                                                                                  \
        "wgmma.mma_async.sync.aligned.m64n128k16.f32." #TY "." #TY " "                                                                                                                                                                                                                                                              \
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "  \
        "%64, %65, p, 1, 1, 0, 0;\n}\n"                                                                                                                                                                                                                                                                                             \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),                                                                                                                                                                                                                           \
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),                                                                                                                                                                                                                       \
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),                                                                                                                                                                                                                     \
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),                                                                                                                                                                                                                     \
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),                                                                                                                                                                                                                     \
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),                                                                                                                                                                                                                     \
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),                                                                                                                                                                                                                     \
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])                                                                                                                                                                                                                      \
        : "l"(da), "l"(db));                                                                                                                                                                                                                                                                                                        \
  }                                                                                                                                                                                                                                                                                                                                 \
};
ATTN90_WGQK(bf16)
ATTN90_WGQK(f16)
// m64nNk16 for the other key-tile sizes (N = KN; 64 is D = 256's default).
#define ATTN90_WGQK64(TY) \
template <> struct WgQK<ky_##TY, 64> { \
  static __device__ __forceinline__ void run(float (&d)[32], ky_u64 da, ky_u64 db) { \
    asm volatile( \
        "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n" \
        "wgmma.mma_async.sync.aligned.m64n64k16.f32." #TY "." #TY " " \
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, " \
        "%32, %33, p, 1, 1, 0, 0;\n}\n" \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]) \
        : "l"(da), "l"(db)); \
  } \
};
ATTN90_WGQK64(bf16)
ATTN90_WGQK64(f16)
#define ATTN90_WGQK80(TY) \
template <> struct WgQK<ky_##TY, 80> { \
  static __device__ __forceinline__ void run(float (&d)[40], ky_u64 da, ky_u64 db) { \
    asm volatile( \
        "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n" \
        "wgmma.mma_async.sync.aligned.m64n80k16.f32." #TY "." #TY " " \
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39}, " \
        "%40, %41, p, 1, 1, 0, 0;\n}\n" \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]) \
        : "l"(da), "l"(db)); \
  } \
};
ATTN90_WGQK80(bf16)
ATTN90_WGQK80(f16)
#define ATTN90_WGQK176(TY) \
template <> struct WgQK<ky_##TY, 176> { \
  static __device__ __forceinline__ void run(float (&d)[88], ky_u64 da, ky_u64 db) { \
    asm volatile( \
        "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n" \
        "wgmma.mma_async.sync.aligned.m64n176k16.f32." #TY "." #TY " " \
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87}, " \
        "%88, %89, p, 1, 1, 0, 0;\n}\n" \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), \
        "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), \
        "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), \
        "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]) \
        : "l"(da), "l"(db)); \
  } \
};
ATTN90_WGQK176(bf16)
ATTN90_WGQK176(f16)

// O += P V for one k16 step: m64nDk16, A = P from registers, B = V from shared memory,
// N-major (imm-trans-b = 1; the register-A form takes no imm-trans-a).
template <typename T, int N> struct WgPV;
#define ATTN90_WGPV64(TY) \
template <> struct WgPV<ky_##TY, 64> {                                                                                                                              \
  static __device__ __forceinline__ void run(float (&d)[32], const ky_u32 (&a)[4], ky_u64 db) {                                                                     \
    asm volatile(                                                                                                                                                   \
        "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"                                                                                                                  \
        "wgmma.mma_async.sync.aligned.m64n64k16.f32." #TY "." #TY " "                                                                                               \
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "  \
        "{%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"                                                                                                               \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),                                                           \
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),                                                       \
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),                                                     \
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])                                                      \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));                                                                                                     \
  }                                                                                                                                                                 \
};
ATTN90_WGPV64(bf16)
ATTN90_WGPV64(f16)
#define ATTN90_WGPV128(TY) \
template <> struct WgPV<ky_##TY, 128> {                                                                                                                                                                                                                                                                                             \
  static __device__ __forceinline__ void run(float (&d)[64], const ky_u32 (&a)[4], ky_u64 db) {                                                                                                                                                                                                                                     \
    asm volatile(                                                                                                                                                                                                                                                                                                                   \
        "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"                                                                                                                                                                                                                                                                                  \
        "wgmma.mma_async.sync.aligned.m64n128k16.f32." #TY "." #TY " "                                                                                                                                                                                                                                                              \
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "  \
        "{%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"                                                                                                                                                                                                                                                                               \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),                                                                                                                                                                                                                           \
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),                                                                                                                                                                                                                       \
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),                                                                                                                                                                                                                     \
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),                                                                                                                                                                                                                     \
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),                                                                                                                                                                                                                     \
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),                                                                                                                                                                                                                     \
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),                                                                                                                                                                                                                     \
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])                                                                                                                                                                                                                      \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));                                                                                                                                                                                                                                                                     \
  }                                                                                                                                                                                                                                                                                                                                 \
};
ATTN90_WGPV128(bf16)
ATTN90_WGPV128(f16)
// m64n96k16 likewise for D = 96.
#define ATTN90_WGPV96(TY) \
template <> struct WgPV<ky_##TY, 96> { \
  static __device__ __forceinline__ void run(float (&d)[48], const ky_u32 (&a)[4], ky_u64 db) { \
    asm volatile( \
        "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n" \
        "wgmma.mma_async.sync.aligned.m64n96k16.f32." #TY "." #TY " " \
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47}, " \
        "{%48, %49, %50, %51}, %52, p, 1, 1, 1;\n}\n" \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]) \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db)); \
  } \
};
ATTN90_WGPV96(bf16)
ATTN90_WGPV96(f16)

// The P fragments likewise: they are wgmma's inputs until the wait.
template <int N>
__device__ __forceinline__ void keep_u(ky_u32 (&a)[N][4]) {
#pragma unroll
    for (int i = 0; i < N; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) asm volatile("" : "+r"(a[i][j])::"memory");
}

// 2^x (MUFU.EX2): exp2(-inf) = +0, exp2(0) = 1.
__device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// Two f32 rounded to the dtype (nearest even) in one register, `lo` in the low half.
template <typename T> struct Pack;
template <> struct Pack<ky_bf16> {
    static __device__ __forceinline__ ky_u32 run(float lo, float hi) {
        ky_u32 r;
        asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
        return r;
    }
};
template <> struct Pack<ky_f16> {
    static __device__ __forceinline__ ky_u32 run(float lo, float hi) {
        ky_u32 r;
        asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
        return r;
    }
};

// ---- end of PTX ----------------------------------------------------------------------

#define ATTN90_NEG_INF (-__int_as_float(0x7f800000))
constexpr float LOG2E = 1.4426950408889634f;
constexpr float LN2 = 0.6931471805599453f;

template <typename T, int D>
__device__ __forceinline__ void attention(const KyTensorMap* map_q,
                                          const KyTensorMap* map_k,
                                          const KyTensorMap* map_v, ky_u16* __restrict__ out,
                                          float* __restrict__ lse, ky_i64 seq_q, ky_i64 seq_kv,
                                          ky_i64 heads_q, ky_i64 heads_kv, float scale,
                                          int flags) {
    typedef Smem<D> S;
    constexpr int KN = Cfg<D>::KN;  // keys per tile
    constexpr int PN = Cfg<D>::PN;  // O columns per PV instruction
    constexpr int NC = Cfg<D>::NC;  // O chunks of PN columns
    constexpr int VR = Cfg<D>::VR;  // keys per V box
    constexpr int BW = Cfg<D>::BW;  // d per box
    constexpr int RB = Cfg<D>::RB;  // bytes per box row
    constexpr int DB = S::DB;       // boxes across d
    constexpr int SW = BW == 64 ? 1 : 2;  // descriptor layout: 128- or 64-byte swizzle
    constexpr int NB = KN / 8;      // n8 blocks of the S accumulator (16, or 8 at D = 256)
    constexpr int OR = PN / 2;      // O accumulator registers per thread and chunk

    extern __shared__ unsigned char ky_attn90_smem_raw[];
    // 1024-byte alignment for the 128-byte swizzle (the launch adds 1 KiB of slack).
    unsigned char* smem =
        (unsigned char*)(((ky_u64)ky_attn90_smem_raw + 1023) & ~(ky_u64)1023);
    unsigned char* s_q = smem;
    ky_u64* q_full = (ky_u64*)(smem + S::BAR_OFFSET);
    constexpr int ST = Cfg<D>::ST;
    ky_u64* k_full = q_full + 1;
    ky_u64* v_full = q_full + 1 + ST;
    // A stage's K and V are released separately: K as soon as S = Q K^T is done, so the
    // producer can refill it while P V still reads the stage's V.
    ky_u64* k_empty = q_full + 1 + 2 * ST;
    ky_u64* v_empty = q_full + 1 + 3 * ST;
    // Key tile t lives in stage t % ST; its barriers' phase is (t / ST) & 1.
    // (t >= 0: unsigned arithmetic, a mask and a shift for 2 stages.)
    auto stage = [](int t) { return (int)((ky_u32)t % ST); };
    auto phase = [](int t) { return ((ky_u32)t / ST) & 1; };

    const bool causal = (flags & 1) != 0;
    const bool want_lse = (flags & 2) != 0;
    const int Sq = (int)seq_q, Skv = (int)seq_kv;

    const int nqb = (Sq + BM - 1) / BM;
    // Causal: the heaviest query blocks first (scheduling only; no effect on any bits).
    const int qb = causal ? nqb - 1 - (int)blockIdx.x : (int)blockIdx.x;
    const int q0 = qb * BM;
    const int h = blockIdx.y;
    const int b = blockIdx.z;
    const int hk = (int)(h / (heads_q / heads_kv));  // the key/value head (GQA)

    // Keys seen by query row `row` (bottom-right causal): min(Skv, max(0, row + Skv - Sq + 1)).
    // The Rust side keeps Sq and Skv below 2^30, so these sums fit an int.
    const int shift = Skv - Sq + 1;
    auto seen = [&](int row) -> int { return causal ? min(max(row + shift, 0), Skv) : Skv; };
    const int seen_lo = seen(q0);                      // the block's first row: the fewest
    const int seen_hi = seen(min(q0 + BM, Sq) - 1);    // its last real row: the most
    // Key tiles past seen_hi are masked for every row of the block: not visited.
    const int ntiles = (seen_hi + KN - 1) / KN;

    const int wg = threadIdx.x / 128;
    if (threadIdx.x == 0) {
        mbar_init(q_full, 1);
        for (int s = 0; s < ST; ++s) {
            mbar_init(&k_full[s], 1);
            mbar_init(&v_full[s], 1);
            mbar_init(&k_empty[s], 256);
            mbar_init(&v_empty[s], 256);
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();

    if (wg == 0) {
        // Producer: one thread issues every copy; its warpgroup gives registers back.
        asm volatile(ATTN90_PRODUCER_REGS);
        if (threadIdx.x == 0 && ntiles > 0) {
            mbar_expect_tx(q_full, S::Q_BYTES);
#pragma unroll
            for (int j = 0; j < DB; ++j)
                tma_load4(s_q + j * S::QBOX, map_q, j * BW, h, q0, b, q_full);
            for (int t = 0; t < ntiles; ++t) {
                const int s = stage(t);
                if (t >= ST) mbar_wait(&k_empty[s], phase(t - ST));
                unsigned char* sk = smem + S::Q_BYTES + s * S::STAGE_BYTES;
                unsigned char* sv = sk + S::K_BYTES;
                const int kv0 = t * KN;
                mbar_expect_tx(&k_full[s], S::K_BYTES);
#pragma unroll
                for (int j = 0; j < DB; ++j)
                    tma_load4(sk + j * S::KBOX, map_k, j * BW, hk, kv0, b, &k_full[s]);
                if (t >= ST) mbar_wait(&v_empty[s], phase(t - ST));
                mbar_expect_tx(&v_full[s], S::V_BYTES);
#pragma unroll
                for (int g = 0; g < KN / VR; ++g)
#pragma unroll
                    for (int j = 0; j < DB; ++j)
                        tma_load4(sv + (g * DB + j) * S::VBOX, map_v, j * BW, hk, kv0 + g * VR,
                                  b, &v_full[s]);
            }
        }
    } else {
        asm volatile(ATTN90_CONSUMER_REGS);
        const int cw = wg - 1;  // consumer warpgroup: rows cw * 64 .. + 63 of the block
        const int lane = threadIdx.x & 31;
        const int warp = (threadIdx.x >> 5) & 3;
        const int t4 = lane & 3;
        // This thread's rows: row0 and row0 + 8.
        const int row0 = q0 + cw * 64 + warp * 16 + (lane >> 2);
        const int seen_row[2] = {seen(row0), seen(row0 + 8)};

        // O in NC chunks of PN columns: o[c][4 i + 2 hh + e] is row row0 + 8 hh, column
        // PN c + 8 i + 2 t4 + e.
        float o[NC][OR];
#pragma unroll
        for (int c = 0; c < NC; ++c)
#pragma unroll
            for (int i = 0; i < OR; ++i) o[c][i] = 0.0f;
        // Running max of row row0 + 8 hh (base-2 units of scaled scores) and this thread's
        // part of its sum.
        float m[2] = {ATTN90_NEG_INF, ATTN90_NEG_INF};
        float l[2] = {0.0f, 0.0f};
        const float scale_log2 = scale * LOG2E;

        // The four steps of a key tile t (stage(t), phase(t)), as lambdas so the
        // two schedules below share them. Every step does the same arithmetic in either
        // schedule, and O sees alpha_t, then P_t V_t, for t = 0, 1, ...: the schedules give
        // the same bits.
        //
        // (1) Issue S = Q K^T for tile t (asynchronous; the caller waits). k16 step kk reads d
        // 16 kk .. + 15: box kk / 4, +32 bytes per step inside its 128-byte swizzled rows; this
        // warpgroup's Q rows start 64 rows (8 KiB) into each Q box.
        float sc[NB * 4];
        auto issue_s = [&](int t) {
            const int s = stage(t);
            const unsigned char* sk = smem + S::Q_BYTES + s * S::STAGE_BYTES;
#pragma unroll
            for (int i = 0; i < NB * 4; ++i) sc[i] = 0.0f;
            mbar_wait(&k_full[s], phase(t));
            // Pin the register writes before the fence (wgmma reads its registers only after
            // wgmma.fence orders them).
            keep(sc);
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                WgQK<T, KN>::run(
                    sc,
                    desc_sw<SW>(s_q + (kk / (BW / 16)) * S::QBOX + cw * 64 * RB +
                                    (kk % (BW / 16)) * 32,
                                16, 8 * RB),
                    desc_sw<SW>(sk + (kk / (BW / 16)) * S::KBOX + (kk % (BW / 16)) * 32, 16,
                                8 * RB));
            }
            wgmma_commit();
        };

        // (2) The online softmax of tile t on the finished S (in sc): P (f32) back into sc, the
        // rescale factors into `alpha` (O is not touched: (3) rescales it); `pack` then rounds
        // P into wgmma's A fragments.
        //
        // Scale to base 2, mask, and each row's max over this thread's elements (a fixed
        // tree), then over the quad. Element sc[4 i + 2 hh + e] is row row0 + 8 hh, key
        // kv0 + 8 i + 2 t4 + e (wgmma's f32 accumulator layout). Only tiles past the
        // block's first row's last key need the mask.
        //
        // FAST (ATTN90_FFMA with a positive scale): the max is taken over the raw scores and
        // scaled once (rounding is monotonic, so it is the max of the scaled scores), and
        // P = exp2(fma(s, scale log2(e), -m)): one FFMA per score instead of a multiply and a
        // subtraction. (Different rounding from the other path, the same in every run.)
        //
        // (`FAST` is a plain bool, constant at each call site once inlined: NVRTC 13.0 refuses
        // a generic lambda in device code as a host function.)
        auto softmax_with = [&](int t, float (&alpha)[2], const bool FAST) {
            const int kv0 = t * KN;
            const bool mask = kv0 + KN > seen_lo;
            // (A max is exact in any order: a running max needs no tree of temporaries.)
            float mx[2];
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
                const int rel = seen_row[hh] - kv0 - 2 * t4;
                float x_max = ATTN90_NEG_INF;
#pragma unroll
                for (int i = 0; i < NB; ++i) {
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        float x = sc[4 * i + 2 * hh + e];
                        if (!FAST) x *= scale_log2;
                        if (mask && 8 * i + e >= rel) x = ATTN90_NEG_INF;
                        sc[4 * i + 2 * hh + e] = x;
                        x_max = fmaxf(x_max, x);
                    }
                }
                mx[hh] = FAST ? x_max * scale_log2 : x_max;
            }
            float m_use[2];
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
                float x = mx[hh];
                x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
                x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
                const float m_old = m[hh];
                const float m_new = fmaxf(m_old, x);
                // Guarded max: a row that has seen no key yet uses 0, so exp2(-inf - 0) = 0.
                m_use[hh] = m_new == ATTN90_NEG_INF ? 0.0f : m_new;
                const float a = ex2(m_old - m_use[hh]);
                // Exactly 1 when the max did not move (a fully masked tile changes nothing).
                alpha[hh] = m_old == m_new ? 1.0f : a;
                m[hh] = m_new;
            }
            // P = exp2(x - m), this thread's row sums (a fixed pairwise tree), P in the dtype.
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
                float part[NB];
#pragma unroll
                for (int i = 0; i < NB; ++i) {
                    const float x0 = sc[4 * i + 2 * hh], x1 = sc[4 * i + 2 * hh + 1];
                    const float p0 =
                        ex2(FAST ? fmaf(x0, scale_log2, -m_use[hh]) : x0 - m_use[hh]);
                    const float p1 =
                        ex2(FAST ? fmaf(x1, scale_log2, -m_use[hh]) : x1 - m_use[hh]);
                    sc[4 * i + 2 * hh] = p0;
                    sc[4 * i + 2 * hh + 1] = p1;
                    part[i] = p0 + p1;
                }
#pragma unroll
                for (int w = 1; w < NB; w *= 2)
#pragma unroll
                    for (int i = 0; i + w < NB; i += 2 * w) part[i] += part[i + w];
                l[hh] = l[hh] * alpha[hh] + part[0];
            }
        };
        auto softmax = [&](int t, float (&alpha)[2]) {
#if ATTN90_FFMA
            if (scale_log2 > 0.0f) {
                softmax_with(t, alpha, true);
                return;
            }
#endif
            softmax_with(t, alpha, false);
        };
        auto pack = [&](ky_u32 (&pf)[KN / 16][4]) {
            // The A fragment of k16 step j (keys 16 j .. 16 j + 15 of the tile), PTX ISA
            // "Register Fragments: matrix A" of wgmma .m64nNk16 with 16-bit A (the same as
            // mma.sync m16n8k16's A): a[0] = (row r, k 2 t4, +1), a[1] = (row r + 8, same k),
            // a[2] = (row r, k 8 + 2 t4, +1), a[3] = (row r + 8, same k), r = 16 warp + lane / 4.
            // The accumulator's n8 block i holds (row r, cols 8 i + 2 t4, +1) in sc[4 i + 0, 1]
            // and (row r + 8, same cols) in sc[4 i + 2, 3]: so a[0], a[1] come from block 2 j
            // and a[2], a[3] from block 2 j + 1.
#pragma unroll
            for (int j = 0; j < KN / 16; ++j) {
                pf[j][0] = Pack<T>::run(sc[8 * j + 0], sc[8 * j + 1]);
                pf[j][1] = Pack<T>::run(sc[8 * j + 2], sc[8 * j + 3]);
                pf[j][2] = Pack<T>::run(sc[8 * j + 4], sc[8 * j + 5]);
                pf[j][3] = Pack<T>::run(sc[8 * j + 6], sc[8 * j + 7]);
            }
        };

        // (3) O *= alpha, only when some row's max moved (multiplying by 1 changes no bit).
        auto rescale = [&](const float (&alpha)[2]) {
            if (__any_sync(0xffffffffu, alpha[0] != 1.0f || alpha[1] != 1.0f)) {
#pragma unroll
                for (int c = 0; c < NC; ++c)
#pragma unroll
                    for (int i = 0; i < OR; ++i) o[c][i] *= alpha[(i >> 1) & 1];
            }
        };

        // (4) Issue O += P V for tile t (asynchronous; the caller waits, then releases the
        // stage). V's k16 step j: keys 16 j .. + 15 = V box group j / (VR / 16), +2048 bytes
        // (16 rows of 128 bytes) per step inside it; N-major descriptor: LBO = one V box (the
        // next 64-wide d block), SBO 1024 (the next 8 keys). Chunk c starts PN / 64 d blocks
        // further. Each chunk takes the k16 steps in increasing order.
        auto issue_pv = [&](int t, ky_u32 (&pf)[KN / 16][4]) {
            const int s = stage(t);
            const unsigned char* sv = smem + S::Q_BYTES + s * S::STAGE_BYTES + S::K_BYTES;
            mbar_wait(&v_full[s], phase(t));
#pragma unroll
            for (int c = 0; c < NC; ++c) keep(o[c]);
            keep_u(pf);
            wgmma_fence();
#pragma unroll
            for (int j = 0; j < KN / 16; ++j) {
#pragma unroll
                for (int c = 0; c < NC; ++c) {
                    WgPV<T, PN>::run(o[c], pf[j],
                                     desc_sw<SW>(sv + ((j / (VR / 16)) * DB + c * (PN / BW)) *
                                                          S::VBOX +
                                                      (j % (VR / 16)) * 16 * RB,
                                                  S::VBOX, 8 * RB));
                }
            }
            wgmma_commit();
        };
        auto pv_done = [&](ky_u32 (&pf)[KN / 16][4]) {
#pragma unroll
            for (int c = 0; c < NC; ++c) keep(o[c]);
            keep_u(pf);
        };

        if (ntiles > 0) mbar_wait(q_full, 0);
#if ATTN90_OVERLAP
        // FlashAttention-3's intra-warpgroup overlap: S of tile t + 1 and O += P_t V_t are
        // issued together, and the softmax of tile t + 1 runs while P_t V_t is on the tensor
        // cores.
        if (ntiles > 0) {
            // One set of P fragments: the softmax leaves P in sc (f32) and it is rounded into
            // `pf` only after P_t V_t, the fragments' reader, is done.
            ky_u32 pf[KN / 16][4];
            float alpha[2];
            issue_s(0);
            wgmma_wait0();
            keep(sc);
            mbar_arrive(&k_empty[0]);
            softmax(0, alpha);
            pack(pf);
            rescale(alpha);
#if ATTN90_PINGPONG
            // Consumer cw waits on barrier 1 + cw for its turn and hands the turn to the other
            // (barrier 2 - cw) after issuing; both see ntiles - 1 turns, consumer 0 goes first,
            // and consumer 1 skips its last hand-over, which nobody would take.
            if (cw == 1 && ntiles > 1)
                asm volatile("bar.arrive 1, 256;" ::: "memory");
#endif
            for (int t = 0; t + 1 < ntiles; ++t) {
#if ATTN90_PINGPONG
                asm volatile("bar.sync %0, 256;" ::"r"(1 + cw) : "memory");
#endif
                issue_s(t + 1);
                issue_pv(t, pf);
#if ATTN90_PINGPONG
                if (cw == 0 || t + 2 < ntiles)
                    asm volatile("bar.arrive %0, 256;" ::"r"(2 - cw) : "memory");
#endif
                // S of tile t + 1 is the older group: done when at most one is pending.
                wgmma_wait1();
                keep(sc);
                mbar_arrive(&k_empty[stage(t + 1)]);
                softmax(t + 1, alpha);
                wgmma_wait0();
                pv_done(pf);
                // This warpgroup is done with stage(t)'s V.
                mbar_arrive(&v_empty[stage(t)]);
                pack(pf);
                rescale(alpha);
            }
            issue_pv(ntiles - 1, pf);
            wgmma_wait0();
            pv_done(pf);
            mbar_arrive(&v_empty[stage(ntiles - 1)]);
        }
#else
        for (int t = 0; t < ntiles; ++t) {
            ky_u32 pf[KN / 16][4];
            float alpha[2];
            issue_s(t);
            wgmma_wait0();
            keep(sc);
            // This warpgroup is done with the stage's K.
            mbar_arrive(&k_empty[stage(t)]);
            softmax(t, alpha);
            pack(pf);
            rescale(alpha);
            issue_pv(t, pf);
            wgmma_wait0();
            pv_done(pf);
            // And with its V.
            mbar_arrive(&v_empty[stage(t)]);
        }
#endif

        // Epilogue: the row sum over the quad (xor butterfly: the four lanes get the same
        // bits), O / l in the dtype (o[4 i + 2 hh + e] is row row0 + 8 hh, column
        // 8 i + 2 t4 + e), lse = ln(2^m l) = m ln 2 + ln l.
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
            float sum = l[hh];
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            const int row = row0 + 8 * hh;
            if (row >= Sq) continue;
            // A row that saw no key: sum = 0, O = 0, out = 0.
            const float inv = sum > 0.0f ? __frcp_rn(sum) : 0.0f;
            ky_u16* o_row = out + (((ky_i64)b * seq_q + row) * heads_q + h) * D + 2 * t4;
#pragma unroll
            for (int i = 0; i < D / 8; ++i) {
                const float* oc = o[i / (PN / 8)];
                const int ii = i % (PN / 8);
                *(ky_u32*)(o_row + 8 * i) =
                    Pack<T>::run(oc[4 * ii + 2 * hh] * inv, oc[4 * ii + 2 * hh + 1] * inv);
            }
            if (want_lse && t4 == 0) {
                lse[((ky_i64)b * heads_q + h) * seq_q + row] =
                    sum > 0.0f ? m[hh] * LN2 + logf(sum) : ATTN90_NEG_INF;
            }
        }
    }
}

}  // namespace attn90

// Entry points: attention_sm90_<dtype>_d<head dim>. flags: bit 0 causal, bit 1 write lse.
// Grid (ceil(Sq / 128), Hq, B), 384 threads, attn90::Smem<D>::BYTES of dynamic shared memory.
#define ATTN90_ENTRY(NAME, T, D)                                                               \
    extern "C" __global__ void __launch_bounds__(attn90::THREADS, 1)                            \
        NAME(const __grid_constant__ KyTensorMap map_q,                                    \
             const __grid_constant__ KyTensorMap map_k,                                    \
             const __grid_constant__ KyTensorMap map_v, void* out, void* lse,              \
             long long seq_q, long long seq_kv, long long heads_q, long long heads_kv,         \
             float scale, int flags) {                                                         \
        attn90::attention<T, D>(&map_q, &map_k, &map_v, (ky_u16*)out, (float*)lse, seq_q,      \
                                seq_kv, heads_q, heads_kv, scale, flags);                      \
    }

#define ATTN90_DTYPE(D, T)                                \
    ATTN90_ENTRY(attention_sm90_##D##_d64, T, 64)         \
    ATTN90_ENTRY(attention_sm90_##D##_d96, T, 96)         \
    ATTN90_ENTRY(attention_sm90_##D##_d128, T, 128)       \
    ATTN90_ENTRY(attention_sm90_##D##_d256, T, 256)

ATTN90_DTYPE(bf16, ky_bf16)
ATTN90_DTYPE(f16, ky_f16)
