// kernels/ssu_sm90.cu: `cuda.selective_state_update.sm90`, the Mamba decode step of
// selective_state_update.cu (the same math, the same lanes, the same bits: both run each row
// through kernels/ssu.cuh) with the state moved by bulk asynchronous copies (sm_90 and newer).
//
// Why: the portable row kernel holds each lane's state chunks in registers while they are in
// flight, so its bytes in flight per SM are bounded by its registers (64 a thread, 8 blocks of
// 128 threads), and ncu shows it latency-bound (DRAM at about half of peak, the scheduler idle
// 40 % of the time). Here a block's state bytes travel between global and shared memory by
// `cp.async.bulk` (no register holds them), so the bytes in flight per SM are bounded by
// shared memory instead (KY_SSU90_TILE_BYTES per block, 8 blocks).
//
// Work split. An item is (b, h, a block of R consecutive channels p0 .. p0 + R - 1) with
// R = rows_per_item = min(P, KY_SSU90_TILE_BYTES / (N * state size)) (the host's rule), whose
// state rows state[slot, h, p0 .. p0 + R - 1, :] are one contiguous range of R * N * size
// bytes. Items are numbered (b, h, p-block) with the p-block fastest; block x takes items x,
// x + gridDim.x, ... For each live item, thread 0 copies the range into shared memory (one
// bulk copy, completing on an mbarrier); the block's lane groups then update its rows exactly
// as the row kernel does (`lanes` lanes a row, lane l taking chunks l, l + L, ..., each chunk
// updated in increasing n through `ky_ssu_update`, the lanes combined by `ky_ssu_finish`),
// reading and writing the chunks in shared memory; then every writer fences its shared-memory
// writes for the async proxy, the block syncs, and thread 0 copies the range back with one bulk
// store and waits until it has been read out of shared memory before the next item's copy
// lands there. Pad and out-of-cache items touch no state (out 0 / NaN rows, as the row kernel).
//
// Needs the row kernel's 16-byte path (every pointer and row stride 16-byte aligned and
// N * state size a multiple of 16: the chunks and the bulk copies' addresses and sizes are
// multiples of 16 bytes) and at most KY_SSU90_CHUNKS chunks per lane (the host checks both).
#include "common.cuh"
#include "ssu.cuh"

// Threads per block (the host's `THREADS`).
#define KY_SSU90_THREADS 128
// Most state bytes per item (the host's `TILE_BYTES`): the block's shared-memory buffer.
#define KY_SSU90_TILE_BYTES 16384
// Most 16-byte state chunks per lane (the row kernel's KY_SSU_CHUNKS; the host's
// `CHUNKS_PER_LANE`, the lanes the same as the row kernel's).
#define KY_SSU90_CHUNKS 4
// Blocks per SM the register budget is sized for: 8 (64 registers a thread; shared memory
// allows 8 x 16 KiB too), 6 for f32 inputs with a half state (64 spilled 20 bytes there).
#define KY_SSU90_MIN_BLOCKS 8
#define KY_SSU90_MIN_BLOCKS_WIDE 6

namespace ky_ssu90 {

__device__ __forceinline__ unsigned smem(const void* p) {
    return (unsigned)__cvta_generic_to_shared(p);
}

template <typename T, typename S>
__device__ __forceinline__ void items(
    typename Elem<S>::storage* __restrict__ state, const typename Elem<T>::storage* __restrict__ x,
    const typename Elem<T>::storage* __restrict__ dt, const float* __restrict__ dt_bias,
    const float* __restrict__ a, const typename Elem<T>::storage* __restrict__ bm,
    const typename Elem<T>::storage* __restrict__ cm, const float* __restrict__ dd,
    const typename Elem<T>::storage* __restrict__ z, typename Elem<T>::storage* __restrict__ out,
    const void* __restrict__ indices, ky_i64 batch, int heads, int head_dim, int state_dim,
    int groups, int heads_per_group, ky_i64 cache_slots, int index_bytes, int flags, int lanes,
    int rows_per_item) {
    typedef typename Elem<T>::storage TS;
    typedef typename Elem<S>::storage SS;
    __shared__ __align__(128) ky_vec16 buf[KY_SSU90_TILE_BYTES / 16];
    __shared__ __align__(8) unsigned long long bar;
    constexpr int ES = 16 / Elem<S>::size;  // state elements per chunk
    constexpr int CH = KY_SSU90_CHUNKS;
    const int tid = (int)threadIdx.x;
    const int n_dim = state_dim;
    const int chunks = n_dim / ES;  // whole: N * size % 16 == 0
    const int lane = tid & 31;
    const int li = lane & (lanes - 1);
    const int gw = lane / lanes;
    const int rpw = 32 / lanes;
    const int rpb = (KY_SSU90_THREADS / 32) * rpw;  // rows per pass of the block
    const int my = (tid >> 5) * rpw + gw;           // this group's row within a pass
    const ky_i64 hp_n = (ky_i64)heads * head_dim;
    const int pblocks = (head_dim + rows_per_item - 1) / rows_per_item;
    const ky_i64 per_b = (ky_i64)heads * pblocks;
    const ky_i64 n_items = batch * per_b;
    if (tid == 0) {
        asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smem(&bar)) : "memory");
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
    unsigned phase = 0;
    for (ky_i64 it = blockIdx.x; it < n_items; it += gridDim.x) {
        const ky_i64 b = it / per_b;
        const int rem = (int)(it - b * per_b);
        const int h = rem / pblocks;
        const int p0 = (rem - h * pblocks) * rows_per_item;
        const int nr = head_dim - p0 < rows_per_item ? head_dim - p0 : rows_per_item;
        ky_i64 slot = b;
        if (index_bytes == 8) {
            slot = static_cast<const long long*>(indices)[b];
        } else if (index_bytes == 4) {
            slot = static_cast<const int*>(indices)[b];
        }
        const int kind = (slot >= 0 && slot < cache_slots) ? KY_SSU_LIVE
                         : slot == -1                      ? KY_SSU_PAD
                                                           : KY_SSU_BAD;
        const ky_i64 hp0 = (ky_i64)h * head_dim + p0;
        SS* gst = state + ((kind == KY_SSU_LIVE ? slot : 0) * hp_n + hp0) * n_dim;
        const unsigned bytes = (unsigned)nr * (unsigned)chunks * 16u;
        if (kind == KY_SSU_LIVE) {
            if (tid == 0) {
                asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(
                                 smem(&bar)),
                             "r"(bytes)
                             : "memory");
                asm volatile(
                    "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], "
                    "[%1], %2, [%3];" ::"r"(smem(buf)),
                    "l"(gst), "r"(bytes), "r"(smem(&bar))
                    : "memory");
            }
            asm volatile(
                "{\n"
                ".reg .pred done;\n"
                "KY_SSU90_WAIT_%=:\n"
                "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
                "@!done bra KY_SSU90_WAIT_%=;\n"
                "}\n" ::"r"(smem(&bar)),
                "r"(phase)
                : "memory");
            phase ^= 1u;
        }
        const unsigned g = (unsigned)h / (unsigned)heads_per_group;
        const ky_i64 proj = (b * groups + g) * n_dim;
        const TS* bp = bm + proj;
        const TS* cp = cm + proj;
        const bool per_head = (flags & KY_SSU_A_PER_HEAD) != 0;
        for (int r0 = 0; r0 < nr; r0 += rpb) {
            const int r = r0 + my;
            const int row_kind = r < nr ? kind : KY_SSU_IDLE;
            const ky_i64 row = b * hp_n + hp0 + r;  // (b, h, p0 + r)
            float acc = 0.0f, xv = 0.0f, zv = 0.0f, dv = 0.0f;
            if (row_kind == KY_SSU_LIVE) {
                const ky_i64 hp = hp0 + r;
                xv = Elem<T>::load(x, row);
                float d = Elem<T>::load(dt, row);
                if (flags & KY_SSU_DT_BIAS) d = ky_fadd_rn(d, dt_bias[hp]);
                if (flags & KY_SSU_SOFTPLUS) d = d > 20.0f ? d : log1pf(expf(d));
                if (flags & KY_SSU_Z) zv = Elem<T>::load(z, row);
                if (flags & KY_SSU_D) dv = dd[hp];
                const float da_head = per_head ? __expf(ky_fmul_rn(a[h], d)) : 0.0f;
                const float* ap = a + hp * n_dim;
                ky_vec16* srow = buf + r * chunks;
                #pragma unroll
                for (int k = 0; k < CH; ++k) {
                    const int c = li + k * lanes;
                    if (c < chunks) {
                        const int n0 = c * ES;
                        float s[ES], bv[ES], cv[ES], da[ES];
                        Vec16<S>::unpack(srow[c], s);
                        ky_ssu_slice<T, ES>(bp + n0, bv);
                        ky_ssu_slice<T, ES>(cp + n0, cv);
                        if (!per_head) ky_ssu_slice<float, ES>(ap + n0, da);
                        #pragma unroll
                        for (int e = 0; e < ES; ++e) {
                            da[e] = per_head ? da_head : __expf(ky_fmul_rn(da[e], d));
                        }
                        acc = ky_ssu_update<ES>(s, bv, cv, da, d, xv, ES, acc);
                        srow[c] = Vec16<S>::pack(s);
                    }
                }
            }
            // Every lane of the warp gets here each pass (idle rows with 0).
            ky_ssu_finish<T>(acc, lanes, li, row_kind, flags, dv, xv, zv, out, row);
        }
        if (kind == KY_SSU_LIVE) {
            // The block's shared-memory writes, then one bulk store of the range; the buffer is
            // free again once the store has read it.
            asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
            __syncthreads();
            if (tid == 0) {
                asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;" ::"l"(
                                 gst),
                             "r"(smem(buf)), "r"(bytes)
                             : "memory");
                asm volatile("cp.async.bulk.commit_group;" ::: "memory");
                asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
            }
            __syncthreads();  // no thread reads the next item's rows before they land
        }
    }
    if (tid == 0) asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
}

}  // namespace ky_ssu90

// Entry points `ssu90_<dtype>_<state dtype>`: block 128 threads, grid at most 65535 blocks
// over the B * H * ceil(P / rows_per_item) items; the row kernel's parameters with `batch` in
// place of `rows`, then `rows_per_item`.
#define KY_SSU90_ENTRY(D, SD, T, S, VB)                                                           \
    extern "C" __global__ void __launch_bounds__(KY_SSU90_THREADS, VB)                           \
        ssu90_##D##_##SD(void* state, const void* x, const void* dt, const void* dt_bias,        \
                         const void* a, const void* bm, const void* cm, const void* d,            \
                         const void* z, void* out, const void* state_indices, long long batch,    \
                         int heads, int head_dim, int state_dim, int groups,                      \
                         int heads_per_group, long long cache_slots, int index_bytes, int flags,  \
                         int lanes, int rows_per_item) {                                          \
        ky_ssu90::items<T, S>(                                                                    \
            static_cast<Elem<S>::storage*>(state), static_cast<const Elem<T>::storage*>(x),       \
            static_cast<const Elem<T>::storage*>(dt), static_cast<const float*>(dt_bias),         \
            static_cast<const float*>(a), static_cast<const Elem<T>::storage*>(bm),               \
            static_cast<const Elem<T>::storage*>(cm), static_cast<const float*>(d),               \
            static_cast<const Elem<T>::storage*>(z), static_cast<Elem<T>::storage*>(out),         \
            state_indices, batch, heads, head_dim, state_dim, groups, heads_per_group,            \
            cache_slots, index_bytes, flags, lanes, rows_per_item);                               \
    }

KY_SSU90_ENTRY(f32, f32, float, float, KY_SSU90_MIN_BLOCKS)
KY_SSU90_ENTRY(f32, f16, float, ky_f16, KY_SSU90_MIN_BLOCKS_WIDE)
KY_SSU90_ENTRY(f32, bf16, float, ky_bf16, KY_SSU90_MIN_BLOCKS_WIDE)
KY_SSU90_ENTRY(f16, f32, ky_f16, float, KY_SSU90_MIN_BLOCKS)
KY_SSU90_ENTRY(f16, f16, ky_f16, ky_f16, KY_SSU90_MIN_BLOCKS)
KY_SSU90_ENTRY(f16, bf16, ky_f16, ky_bf16, KY_SSU90_MIN_BLOCKS)
KY_SSU90_ENTRY(bf16, f32, ky_bf16, float, KY_SSU90_MIN_BLOCKS)
KY_SSU90_ENTRY(bf16, f16, ky_bf16, ky_f16, KY_SSU90_MIN_BLOCKS)
KY_SSU90_ENTRY(bf16, bf16, ky_bf16, ky_bf16, KY_SSU90_MIN_BLOCKS)
