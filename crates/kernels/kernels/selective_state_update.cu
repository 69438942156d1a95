// kernels/selective_state_update.cu: one Mamba decode step (mamba_ssm's
// selective_state_update), f32 math, the state updated in place.
//
// For batch b, head h, channel p (P = head_dim), state index n (N = state_dim), group
// g = h / heads_per_group, and slot = state_indices ? state_indices[b] : b:
//   slot == -1 (the pad slot):        no state access, out[b,h,p] = 0
//   slot < -1 or slot >= cache_slots: no state access, out[b,h,p] = NaN
//   otherwise:
//     d  = dt[b,h,p] (+ dt_bias[h,p]);  softplus: d = d > 20 ? d : log1p(exp(d))
//     dA = exp(A[h,p,n] * d)            (A[h] when A is per head)
//     s  = state[slot,h,p,n] * dA + (Bm[b,g,n] * d) * x[b,h,p]
//     state[slot,h,p,n] = s rounded to the state dtype
//     y  = sum_n s * Cm[b,g,n]          (the unrounded f32 s, as mamba_ssm)
//          (+ D[h,p] * x[b,h,p]);  z: y *= z / (1 + exp(-z))
//     out[b,h,p] = y rounded to the dtype
// x, dt, z, out, Bm, Cm share the dtype T (float, ky_f16, ky_bf16); the state has its own
// dtype S (float, ky_f16, ky_bf16); A, D, dt_bias are f32; state_indices i32 or i64. Every
// tensor is contiguous: state [cache_slots, H, P, N], x/dt/z/out [B, H, P], Bm/Cm [B, G, N],
// dt_bias/D [H, P], A [H, P, N] or [H]. Core validated the views (shapes, dtypes, one device,
// out and the state disjoint from every input and from each other), so the inputs are
// read-only for the kernel's lifetime (`__restrict__`); it cannot read device-resident
// indices, so the kernel guards them (the NaN rows above). Two live entries naming one slot
// are the caller's contract (as in mamba_ssm): the slot then holds one of their updates.
//
// Work split (crates/kernels/src/selective_state_update.rs chooses the launch from N, the
// dtypes and the alignment alone). A "row" is (b, h, p), `rows = B * H * P` of them, and its
// state row is N elements cut into 16-byte chunks (ES = 16 / sizeof(S) elements: 4 f32 or 8
// halves; the last one partial on the `_s` path when N * sizeof(S) % 16 != 0). A group of L
// lanes (`lanes`, a power of two 1..32, the fewest with at most KY_SSU_CHUNKS chunks each)
// takes one row: lane l of the group takes chunks l, l + L, l + 2L, ... A warp holds 32 / L
// groups, a 128-thread block 128 / L rows; block x starts at row x * (128 / L) and steps by
// gridDim.x * (128 / L) (the host caps the grid at 65535 blocks: larger batches loop). The
// loop is warp-uniform (every lane of a warp runs every iteration, rows past the end idle
// through it), so every lane calls each shuffle.
//
// Per row, a live lane first issues the loads of all its state chunks (16-byte loads on `_v`,
// elements on `_s`), then per chunk loads the matching Bm, Cm (and A) slices (16-byte loads on
// `_v`, or one 8-byte load for 4 halves; elements on `_s`) and updates the chunk in registers;
// the stores (one 16-byte store a chunk on `_v`) come after the last chunk, so no load of the
// row is ordered behind a store. `_v` needs every pointer 16-byte aligned and
// N * sizeof(S) % 16 == 0 (then every row and chunk of Bm, Cm and A is aligned for its loads
// too: the host's rule). Registers (PyPI ptxas 13.0, sm_75 .. sm_120): at most 64 on `_v`
// (72-78 with f32 inputs and a half state), up to the 128 of the bound on `_s`; see
// KY_SSU_MIN_BLOCKS below for why and for the spills (crates/kernels/src/
// selective_state_update.rs lists them).
//
// Reduction over n: each lane sums s * Cm over its own elements in increasing n (one fmaf
// each), then the L lanes combine by a butterfly of `ky_shfl_xor` (offsets L/2 .. 1, adds that
// commute, so every lane of the group gets the same bits); lane 0 of the group adds D * x,
// applies the gate and writes y. Both paths do the same arithmetic in the same order, only the
// loads differ, so they give the same bits; the order depends on N and the dtypes alone, not on
// the batch, the row's position or the grid: deterministic and batch-invariant. Every product
// and sum is explicit (`fmaf`, `ky_fmul_rn`, `ky_fadd_rn`), so no compiler contraction can
// differ between paths or vendors. exp(A * d), per element, is the fast `__expf` (NVIDIA:
// ex2.approx of (A * d) log2(e), relative error about 2^-22 + |A * d| 2^-24, so a few ulp for
// the decays of a decode step, |A * d| < 20); softplus and the gate, once per row, use the
// accurate `expf` and `log1pf`. The vendors' versions of the three differ by a few ulp.
//
// Indices: rows, b and the state, Bm and out offsets are 64-bit; h * P + p (< 2^31, checked by
// the host) and the row counters within a grid step are 32-bit (the grid's rows per step,
// 65535 * 128, fit 2^23); the only divisions are 32-bit, per row: (h, p) from h * P + p and g
// from h (b advances by the step's quotient, computed once).
#include "common.cuh"

// Threads per block (the host's `THREADS`).
#define KY_SSU_THREADS 128
// Most 16-byte state chunks per lane (the host's `CHUNKS_PER_LANE`).
#define KY_SSU_CHUNKS 4
// Blocks per SM the register budget is sized for (`__launch_bounds__`). The `_s` entry points
// (the host's `MIN_BLOCKS`): 4 x 128 threads leaves 128 registers a thread (their element-wise
// state arrays spill at 64). The `_v` entry points (`V_MIN_BLOCKS`): 8, 64 registers, which an
// H100 measured 13-15 % faster than 4 (80 registers, 37.5 % occupancy) with a bf16 state and
// 2-4 % with an f32 state (docs/BENCHMARKS.md, "third session"); f32 inputs with a half state
// (`V_MIN_BLOCKS_WIDE`) take 6, 72-78 registers, where 64 would spill. PyPI ptxas 13.0 reports
// no spills for any of them on sm_75 .. sm_120 except 4 bytes in `ssu_f16_f16_v` on sm_86 and
// sm_89. On HIP (where the bound counts wavefronts per SIMD, unmeasured on AMD hardware) the
// `_v` entry points keep 4.
#define KY_SSU_MIN_BLOCKS 4
#if KY_HIP
#define KY_SSU_V_MIN_BLOCKS 4
#define KY_SSU_V_MIN_BLOCKS_WIDE 4
#else
#define KY_SSU_V_MIN_BLOCKS 8
#define KY_SSU_V_MIN_BLOCKS_WIDE 6
#endif

// `flags` (the host's `FLAG_*`).
#define KY_SSU_A_PER_HEAD 1
#define KY_SSU_DT_BIAS 2
#define KY_SSU_D 4
#define KY_SSU_Z 8
#define KY_SSU_SOFTPLUS 16

// What a row does: past the end of the batch (idles through the shuffles), live, padded
// (output 0), or an index outside the cache (output NaN).
#define KY_SSU_IDLE 0
#define KY_SSU_LIVE 1
#define KY_SSU_PAD 2
#define KY_SSU_BAD 3

// 8 bytes: 4 halves.
struct __align__(8) ky_vec8 { ky_u32 w[2]; };

// E consecutive elements of T at p as floats, with the widest aligned loads: 16-byte vectors
// when they cover 16 bytes or more, else (4 halves) one 8-byte load. `p` is aligned to
// min(16, E * sizeof(T)) bytes (the `_v` path's rule).
template <typename T, int E>
__device__ __forceinline__ void ky_ssu_slice(const typename Elem<T>::storage* __restrict__ p,
                                             float (&out)[E]) {
    if constexpr (E * Elem<T>::size >= 16) {
        constexpr int V = Vec16<T>::n;
        #pragma unroll
        for (int i = 0; i < E / V; ++i) Vec16<T>::unpack(ky_load16(p + i * V), out + i * V);
    } else {
        static_assert(E == 4 && Elem<T>::size == 2, "an 8-byte slice holds 4 halves");
        const ky_vec8 v = *reinterpret_cast<const ky_vec8*>(p);
        #pragma unroll
        for (int i = 0; i < 2; ++i) {
            out[2 * i] = Elem<T>::to_f32((ky_u16)(v.w[i] & 0xffffu));
            out[2 * i + 1] = Elem<T>::to_f32((ky_u16)(v.w[i] >> 16));
        }
    }
}

// The first `count` elements of a chunk: s = s * dA + (b * d) * x, then acc += s * c, in
// increasing n. Both paths call it, so the arithmetic (and its bits) is the same.
template <int E>
__device__ __forceinline__ float ky_ssu_update(float (&s)[E], const float (&b)[E],
                                               const float (&c)[E], const float (&da)[E],
                                               float d, float x, int count, float acc) {
    #pragma unroll
    for (int e = 0; e < E; ++e) {
        if (e < count) {
            const float u = fmaf(s[e], da[e], ky_fmul_rn(ky_fmul_rn(b[e], d), x));
            acc = fmaf(u, c[e], acc);
            s[e] = u;
        }
    }
    return acc;
}

// The end of a row in both kernels: the L lanes' butterfly over `acc` (every lane of the warp
// calls it), then lane 0 of a non-idle group writes y (D * x and the gate on live rows, 0 on
// the pad slot, NaN on an index outside the cache) to out[row].
template <typename T>
__device__ __forceinline__ void ky_ssu_finish(float acc, int lanes, int li, int kind, int flags,
                                              float dv, float xv, float zv,
                                              typename Elem<T>::storage* __restrict__ out,
                                              ky_i64 row) {
    for (int o = lanes >> 1; o > 0; o >>= 1) acc = ky_fadd_rn(acc, ky_shfl_xor(acc, o));
    if (li == 0 && kind != KY_SSU_IDLE) {
        float y;
        if (kind == KY_SSU_LIVE) {
            y = acc;
            if (flags & KY_SSU_D) y = fmaf(dv, xv, y);
            if (flags & KY_SSU_Z) y = ky_fmul_rn(y, zv / ky_fadd_rn(1.0f, expf(-zv)));
        } else {
            y = kind == KY_SSU_PAD ? 0.0f : __int_as_float(0x7fc00000);
        }
        Elem<T>::store(out, row, y);
    }
}

template <typename T, typename S, bool VEC>
__device__ __forceinline__ void ssu_rows(
    typename Elem<S>::storage* __restrict__ state, const typename Elem<T>::storage* __restrict__ x,
    const typename Elem<T>::storage* __restrict__ dt, const float* __restrict__ dt_bias,
    const float* __restrict__ a, const typename Elem<T>::storage* __restrict__ bm,
    const typename Elem<T>::storage* __restrict__ cm, const float* __restrict__ dd,
    const typename Elem<T>::storage* __restrict__ z, typename Elem<T>::storage* __restrict__ out,
    const void* __restrict__ indices, ky_i64 rows, int heads, int head_dim, int state_dim,
    int groups, int heads_per_group, ky_i64 cache_slots, int index_bytes, int flags, int lanes) {
    typedef typename Elem<T>::storage TS;
    typedef typename Elem<S>::storage SS;
    constexpr int ES = 16 / Elem<S>::size;  // state elements per chunk
    constexpr int CH = KY_SSU_CHUNKS;
    const int n_dim = state_dim;
    const int chunks = (n_dim + ES - 1) / ES;
    const int lane = (int)threadIdx.x & 31;
    const int li = lane & (lanes - 1);  // lane within the row's group
    const int gw = lane / lanes;        // group within the warp
    const unsigned rpw = 32u / (unsigned)lanes;
    const unsigned rpb = (KY_SSU_THREADS / 32) * rpw;
    const unsigned hp_n = (unsigned)heads * (unsigned)head_dim;
    // This lane's first row (b, hp = h * P + p) and the grid's step, in 32 bits (see the top).
    const unsigned r0 = blockIdx.x * rpb + (threadIdx.x >> 5) * rpw + (unsigned)gw;
    const unsigned step = gridDim.x * rpb;
    const unsigned step_b = step / hp_n, step_hp = step % hp_n;
    ky_i64 b = r0 / hp_n;
    unsigned hp = r0 % hp_n;
    for (ky_i64 first = (ky_i64)r0 - gw; first < rows; first += step) {
        const ky_i64 row = first + gw;
        int kind = KY_SSU_IDLE;
        float acc = 0.0f, xv = 0.0f, zv = 0.0f, dv = 0.0f;
        if (row < rows) {
            ky_i64 slot = b;
            if (index_bytes == 8) {
                slot = static_cast<const long long*>(indices)[b];
            } else if (index_bytes == 4) {
                slot = static_cast<const int*>(indices)[b];
            }
            kind = (slot >= 0 && slot < cache_slots) ? KY_SSU_LIVE
                   : slot == -1                      ? KY_SSU_PAD
                                                     : KY_SSU_BAD;
            if (kind == KY_SSU_LIVE) {
                SS* st = state + ((ky_i64)slot * hp_n + hp) * n_dim;
                // The state chunks first, all in flight.
                ky_vec16 sv[CH];
                float sf[CH][ES];
                #pragma unroll
                for (int k = 0; k < CH; ++k) {
                    const int c = li + k * lanes;
                    if constexpr (VEC) {
                        if (c < chunks) sv[k] = ky_load16(st + c * ES);
                    } else {
                        #pragma unroll
                        for (int e = 0; e < ES; ++e) {
                            const int n = c * ES + e;
                            sf[k][e] = (c < chunks && n < n_dim) ? Elem<S>::load(st, n) : 0.0f;
                        }
                    }
                }
                const unsigned h = hp / (unsigned)head_dim;
                const unsigned g = h / (unsigned)heads_per_group;
                xv = Elem<T>::load(x, row);
                float d = Elem<T>::load(dt, row);
                if (flags & KY_SSU_DT_BIAS) d = ky_fadd_rn(d, dt_bias[hp]);
                if (flags & KY_SSU_SOFTPLUS) d = d > 20.0f ? d : log1pf(expf(d));
                if (flags & KY_SSU_Z) zv = Elem<T>::load(z, row);
                if (flags & KY_SSU_D) dv = dd[hp];
                const bool per_head = (flags & KY_SSU_A_PER_HEAD) != 0;
                const float da_head = per_head ? __expf(ky_fmul_rn(a[h], d)) : 0.0f;
                const ky_i64 proj = (b * groups + g) * n_dim;
                const TS* bp = bm + proj;
                const TS* cp = cm + proj;
                const float* ap = a + (ky_i64)hp * n_dim;
                #pragma unroll
                for (int k = 0; k < CH; ++k) {
                    const int c = li + k * lanes;
                    if (c < chunks) {
                        const int n0 = c * ES;
                        float s[ES], bv[ES], cv[ES], da[ES];
                        int count = ES;
                        if constexpr (VEC) {
                            Vec16<S>::unpack(sv[k], s);
                            ky_ssu_slice<T, ES>(bp + n0, bv);
                            ky_ssu_slice<T, ES>(cp + n0, cv);
                            if (!per_head) ky_ssu_slice<float, ES>(ap + n0, da);
                        } else {
                            count = min(ES, n_dim - n0);
                            #pragma unroll
                            for (int e = 0; e < ES; ++e) {
                                const bool in = e < count;
                                s[e] = sf[k][e];
                                bv[e] = in ? Elem<T>::load(bp, n0 + e) : 0.0f;
                                cv[e] = in ? Elem<T>::load(cp, n0 + e) : 0.0f;
                                da[e] = (in && !per_head) ? ap[n0 + e] : 0.0f;
                            }
                        }
                        #pragma unroll
                        for (int e = 0; e < ES; ++e) {
                            da[e] = per_head ? da_head : __expf(ky_fmul_rn(da[e], d));
                        }
                        acc = ky_ssu_update<ES>(s, bv, cv, da, d, xv, count, acc);
                        if constexpr (VEC) {
                            sv[k] = Vec16<S>::pack(s);
                        } else {
                            #pragma unroll
                            for (int e = 0; e < ES; ++e) sf[k][e] = s[e];
                        }
                    }
                }
                // The stores last: no load of the row waits behind one.
                #pragma unroll
                for (int k = 0; k < CH; ++k) {
                    const int c = li + k * lanes;
                    if constexpr (VEC) {
                        if (c < chunks) ky_port_store16_global(st + c * ES, sv[k].w);
                    } else {
                        #pragma unroll
                        for (int e = 0; e < ES; ++e) {
                            const int n = c * ES + e;
                            if (c < chunks && n < n_dim) Elem<S>::store(st, n, sf[k][e]);
                        }
                    }
                }
            }
        }
        // Every lane of the warp gets here each iteration (idle and non-live rows with 0).
        ky_ssu_finish<T>(acc, lanes, li, kind, flags, dv, xv, zv, out, row);
        b += step_b;
        hp += step_hp;
        if (hp >= hp_n) {
            hp -= hp_n;
            ++b;
        }
    }
}

// ---- The tiled kernel (`ssut_<dtype>_<state dtype>`: the tactics tile4 .. tile32) -----------
//
// Written for the full A [H, P, N] of the torch peer's benchmark, which the row kernel reads
// again from L2/L1 for every batch entry (N * 4 bytes a row, more than a bf16 state row). The
// tiled kernel keeps a block on the same TG = 128 / L rows (h, p) for a tile of up to
// KY_SSU_TILE_MAX batch entries (the host's `tile`): dt_bias, D and A (its slices, in
// registers) are read once per row of the tile, the tile's state indices once into shared
// memory; then KY_SSU_TILE_GROUP entries at a time (2 where the Bm/Cm slices are 32 bytes) have
// all their state loads in flight together (L2-only loads, `ld.global.cg`, so L1 keeps Bm/Cm),
// and are computed in turn with the next entry's Bm/Cm slices, x, dt and z in flight. Lanes: L
// is the fewest (a power of two) that leaves each lane at most KY_SSU_TILE_CHUNKS = 2 chunks
// (N <= 256 for an f32 state, 512 for a half one; larger rows and the element path take the
// row kernel). Grid: x over ceil(H * P / TG) row blocks, y over batch tiles (at most 65535;
// blocks loop over the tiles beyond). Every loop is block-uniform (idle rows past H * P run it
// with nothing to do), so the barriers and shuffles are reached by every thread. Measured
// (docs/BENCHMARKS.md): an earlier pipelined form of it was not faster than the row kernel, so
// the row kernel is the default; this form has passed the suite on the CPU emulator only.
//
// Arithmetic per row is the row kernel's, in the same order for the same lanes: each lane sums
// s * Cm over its chunks (k = 0, 1) and elements in increasing n, then the L lanes combine by
// the butterfly. The order depends on N and the dtypes alone (L), never on the tile, the grid
// or the row's place in the batch: deterministic and batch-invariant, and every tile size gives
// the same bits. Its L differs from the row kernel's (2 chunks a lane instead of 4), so the two
// kernels' bits may differ in the last place.

// Most 16-byte state chunks per lane of the tiled kernel (the host's `TILE_CHUNKS_PER_LANE`).
#define KY_SSU_TILE_CHUNKS 2
// Blocks per SM the tiled kernel's register budget is sized for (the host's
// `TILE_MIN_BLOCKS`).
#ifndef KY_SSU_TILE_MIN_BLOCKS
#define KY_SSU_TILE_MIN_BLOCKS 4
#endif
// Batch entries whose state loads the tiled kernel keeps in flight together (the host's
// `TILE_GROUP`).
#define KY_SSU_TILE_GROUP 4
// Most batch entries per tile (the host's `MAX_TILE`).
#define KY_SSU_TILE_MAX 32

// E consecutive elements of T, as loaded (16-byte vectors, or one 8-byte load for 4 halves),
// unpacked when used: the raw words keep a prefetched slice in as few registers as possible.
template <typename T, int E>
struct KySsuSlice {
    static constexpr int W = E * Elem<T>::size / 4;
    ky_u32 w[W];
    __device__ __forceinline__ void load(const typename Elem<T>::storage* __restrict__ p) {
        if constexpr (W >= 4) {
            #pragma unroll
            for (int i = 0; i < W / 4; ++i) {
                const ky_vec16 v = ky_load16(p + i * (16 / Elem<T>::size));
                #pragma unroll
                for (int j = 0; j < 4; ++j) w[4 * i + j] = v.w[j];
            }
        } else {
            static_assert(W == 2, "an 8-byte slice holds 4 halves");
            const ky_vec8 v = *reinterpret_cast<const ky_vec8*>(p);
            w[0] = v.w[0];
            w[1] = v.w[1];
        }
    }
    __device__ __forceinline__ void unpack(float (&out)[E]) const {
        if constexpr (Elem<T>::size == 4) {
            #pragma unroll
            for (int i = 0; i < E; ++i) out[i] = __uint_as_float(w[i]);
        } else {
            #pragma unroll
            for (int i = 0; i < W; ++i) {
                out[2 * i] = Elem<T>::to_f32((ky_u16)(w[i] & 0xffffu));
                out[2 * i + 1] = Elem<T>::to_f32((ky_u16)(w[i] >> 16));
            }
        }
    }
};

template <typename T, typename S>
__device__ __forceinline__ void ssu_tiles(
    typename Elem<S>::storage* __restrict__ state, const typename Elem<T>::storage* __restrict__ x,
    const typename Elem<T>::storage* __restrict__ dt, const float* __restrict__ dt_bias,
    const float* __restrict__ a, const typename Elem<T>::storage* __restrict__ bm,
    const typename Elem<T>::storage* __restrict__ cm, const float* __restrict__ dd,
    const typename Elem<T>::storage* __restrict__ z, typename Elem<T>::storage* __restrict__ out,
    const void* __restrict__ indices, ky_i64 batch, int heads, int head_dim, int state_dim,
    int groups, int heads_per_group, ky_i64 cache_slots, int index_bytes, int flags, int lanes,
    int tile) {
    typedef typename Elem<T>::storage TS;
    typedef typename Elem<S>::storage SS;
    constexpr int ES = 16 / Elem<S>::size;  // state elements per chunk
    constexpr int CH = KY_SSU_TILE_CHUNKS;
    // Entries in flight together: KY_SSU_TILE_GROUP, or 2 where the Bm/Cm slices are 32 bytes
    // (f32 inputs with a half state), so that everything stays in registers.
    constexpr int U = ES * Elem<T>::size > 16 ? 2 : KY_SSU_TILE_GROUP;
    typedef KySsuSlice<T, ES> Slice;
    __shared__ ky_i64 slots[KY_SSU_TILE_MAX];

    const int n_dim = state_dim;
    const int chunks = n_dim / ES;  // exact: N * sizeof(S) % 16 == 0 on this path
    const unsigned hp_n = (unsigned)heads * (unsigned)head_dim;
    const int li = (int)threadIdx.x & (lanes - 1);
    const unsigned per_block = KY_SSU_THREADS / (unsigned)lanes;
    const unsigned hp = blockIdx.x * per_block + threadIdx.x / (unsigned)lanes;
    const bool on = hp < hp_n;
    const unsigned h = on ? hp / (unsigned)head_dim : 0u;
    const unsigned g = h / (unsigned)heads_per_group;
    const bool per_head = (flags & KY_SSU_A_PER_HEAD) != 0;

    // The row's constants, once per block: dt_bias, D, and A (its slices, or the head's value).
    float bias = 0.0f, dv = 0.0f, a_head = 0.0f;
    float av[CH][ES];
    #pragma unroll
    for (int k = 0; k < CH; ++k) {
        #pragma unroll
        for (int i = 0; i < ES; ++i) av[k][i] = 0.0f;
    }
    if (on) {
        if (flags & KY_SSU_DT_BIAS) bias = dt_bias[hp];
        if (flags & KY_SSU_D) dv = dd[hp];
        if (per_head) {
            a_head = a[h];
        } else {
            #pragma unroll
            for (int k = 0; k < CH; ++k) {
                const int c = li + k * lanes;
                if (c < chunks) ky_ssu_slice<float, ES>(a + (ky_i64)hp * n_dim + c * ES, av[k]);
            }
        }
    }

    for (ky_i64 b0 = (ky_i64)blockIdx.y * tile; b0 < batch; b0 += (ky_i64)gridDim.y * tile) {
        const int count = (int)min((ky_i64)tile, batch - b0);
        __syncthreads();  // the previous tile's slots are read
        if ((int)threadIdx.x < count) {
            const ky_i64 b = b0 + threadIdx.x;
            slots[threadIdx.x] = index_bytes == 8   ? static_cast<const long long*>(indices)[b]
                                 : index_bytes == 4 ? (ky_i64) static_cast<const int*>(indices)[b]
                                                    : b;
        }
        __syncthreads();

        // Issues the loads of entry e's state chunks (live rows only; L2 only).
        auto load_state = [&](ky_vec16 (&dst)[CH], int e) {
            const ky_i64 slot = slots[e];
            if (on && slot >= 0 && slot < cache_slots) {
                const SS* st = state + ((ky_i64)slot * hp_n + hp) * n_dim;
                #pragma unroll
                for (int k = 0; k < CH; ++k) {
                    const int c = li + k * lanes;
                    if (c < chunks) dst[k] = ky_load16_cg(st + c * ES);
                }
            }
        };
        // Issues the loads of entry e's Bm/Cm slices, x, dt and z.
        auto load_side = [&](Slice (&bd)[CH], Slice (&cd)[CH], float& xd, float& dtd, float& zd,
                             int e) {
            if (on) {
                const ky_i64 b = b0 + e;
                const ky_i64 proj = (b * groups + g) * n_dim;
                #pragma unroll
                for (int k = 0; k < CH; ++k) {
                    const int c = li + k * lanes;
                    if (c < chunks) {
                        bd[k].load(bm + proj + c * ES);
                        cd[k].load(cm + proj + c * ES);
                    }
                }
                const ky_i64 row = b * hp_n + hp;
                xd = Elem<T>::load(x, row);
                dtd = Elem<T>::load(dt, row);
                zd = (flags & KY_SSU_Z) ? Elem<T>::load(z, row) : 0.0f;
            }
        };
        // Entry e: update its state chunks, store them, reduce, write y.
        auto compute = [&](ky_vec16 (&sd)[CH], const Slice (&bd)[CH], const Slice (&cd)[CH],
                           float xv, float dtv, float zv, int e) {
            const ky_i64 b = b0 + e;
            const ky_i64 slot = slots[e];
            const int kind = !on                                ? KY_SSU_IDLE
                             : (slot >= 0 && slot < cache_slots) ? KY_SSU_LIVE
                             : slot == -1                        ? KY_SSU_PAD
                                                                 : KY_SSU_BAD;
            float acc = 0.0f;
            if (kind == KY_SSU_LIVE) {
                float d = dtv;
                if (flags & KY_SSU_DT_BIAS) d = ky_fadd_rn(d, bias);
                if (flags & KY_SSU_SOFTPLUS) d = d > 20.0f ? d : log1pf(expf(d));
                const float da_head = per_head ? __expf(ky_fmul_rn(a_head, d)) : 0.0f;
                SS* st = state + ((ky_i64)slot * hp_n + hp) * n_dim;
                #pragma unroll
                for (int k = 0; k < CH; ++k) {
                    const int c = li + k * lanes;
                    if (c < chunks) {
                        float s[ES], bf[ES], cf[ES], da[ES];
                        Vec16<S>::unpack(sd[k], s);
                        bd[k].unpack(bf);
                        cd[k].unpack(cf);
                        #pragma unroll
                        for (int i = 0; i < ES; ++i) {
                            da[i] = per_head ? da_head : __expf(ky_fmul_rn(av[k][i], d));
                        }
                        acc = ky_ssu_update<ES>(s, bf, cf, da, d, xv, ES, acc);
                        const ky_vec16 o = Vec16<S>::pack(s);
                        ky_port_store16_global(st + c * ES, o.w);
                    }
                }
            }
            // Every lane of the warp gets here for every entry (idle and non-live rows with 0).
            ky_ssu_finish<T>(acc, lanes, li, kind, flags, dv, xv, zv, out, b * hp_n + hp);
        };

        // U entries at a time: all their state loads in flight together, then each computed in
        // turn with the next one's side data (Bm/Cm, x, dt, z) in flight.
        for (int e0 = 0; e0 < count; e0 += U) {
            ky_vec16 sv[U][CH];
            #pragma unroll
            for (int u = 0; u < U; ++u) {
                if (e0 + u < count) load_state(sv[u], e0 + u);
            }
            Slice bv[2][CH], cv[2][CH];
            float xr[2], dr[2], zr[2];
            load_side(bv[0], cv[0], xr[0], dr[0], zr[0], e0);
            #pragma unroll
            for (int u = 0; u < U; ++u) {
                if (e0 + u < count) {
                    const int nx = (u + 1) & 1;
                    if (u + 1 < U && e0 + u + 1 < count) {
                        load_side(bv[nx], cv[nx], xr[nx], dr[nx], zr[nx], e0 + u + 1);
                    }
                    compute(sv[u], bv[u & 1], cv[u & 1], xr[u & 1], dr[u & 1], zr[u & 1], e0 + u);
                }
            }
        }
    }
}

// Entry points `ssu_<dtype>_<state dtype>_<v|s>`: block 128 threads, grid
// min(ceil(rows / (128 / lanes)), 65535); `flags` of KY_SSU_A_PER_HEAD .. KY_SSU_SOFTPLUS;
// dt_bias, d, z and state_indices may be null when their flag (or index_bytes) says so.
#define KY_SSU_ARGS                                                                               \
    void *state, const void *x, const void *dt, const void *dt_bias, const void *a,              \
        const void *bm, const void *cm, const void *d, const void *z, void *out,                  \
        const void *state_indices, long long rows, int heads, int head_dim, int state_dim,        \
        int groups, int heads_per_group, long long cache_slots, int index_bytes, int flags,       \
        int lanes

#define KY_SSU_CALL(T, S, VEC)                                                                    \
    ssu_rows<T, S, VEC>(                                                                          \
        static_cast<Elem<S>::storage*>(state), static_cast<const Elem<T>::storage*>(x),           \
        static_cast<const Elem<T>::storage*>(dt), static_cast<const float*>(dt_bias),             \
        static_cast<const float*>(a), static_cast<const Elem<T>::storage*>(bm),                   \
        static_cast<const Elem<T>::storage*>(cm), static_cast<const float*>(d),                   \
        static_cast<const Elem<T>::storage*>(z), static_cast<Elem<T>::storage*>(out),             \
        state_indices, rows, heads, head_dim, state_dim, groups, heads_per_group, cache_slots,    \
        index_bytes, flags, lanes)

// `ssu_<D>_<SD>_v` and `ssu_<D>_<SD>_s` for dtype D (storage T) and state dtype SD (S); VB is
// the `_v` entry point's blocks per SM (KY_SSU_V_MIN_BLOCKS or KY_SSU_V_MIN_BLOCKS_WIDE).
#define KY_SSU_ENTRY(D, SD, T, S, VB)                                                             \
    extern "C" __global__ void __launch_bounds__(KY_SSU_THREADS, VB)                             \
        ssu_##D##_##SD##_v(KY_SSU_ARGS) {                                                         \
        KY_SSU_CALL(T, S, true);                                                                  \
    }                                                                                             \
    extern "C" __global__ void __launch_bounds__(KY_SSU_THREADS, KY_SSU_MIN_BLOCKS)              \
        ssu_##D##_##SD##_s(KY_SSU_ARGS) {                                                         \
        KY_SSU_CALL(T, S, false);                                                                 \
    }

// Tiled entry points `ssut_<dtype>_<state dtype>` (16-byte path only): block 128 threads,
// grid (ceil(H * P / (128 / lanes)), min(ceil(B / tile), 65535)); `batch` in place of `rows`,
// `tile` the batch entries per tile (1 .. KY_SSU_TILE_MAX).
#define KY_SSU_TILE_ENTRY(D, SD, T, S)                                                            \
    extern "C" __global__ void __launch_bounds__(KY_SSU_THREADS, KY_SSU_TILE_MIN_BLOCKS)         \
        ssut_##D##_##SD(KY_SSU_ARGS, int tile) {                                                  \
        ssu_tiles<T, S>(                                                                          \
            static_cast<Elem<S>::storage*>(state), static_cast<const Elem<T>::storage*>(x),       \
            static_cast<const Elem<T>::storage*>(dt), static_cast<const float*>(dt_bias),         \
            static_cast<const float*>(a), static_cast<const Elem<T>::storage*>(bm),               \
            static_cast<const Elem<T>::storage*>(cm), static_cast<const float*>(d),               \
            static_cast<const Elem<T>::storage*>(z), static_cast<Elem<T>::storage*>(out),         \
            state_indices, rows, heads, head_dim, state_dim, groups, heads_per_group,             \
            cache_slots, index_bytes, flags, lanes, tile);                                        \
    }

KY_SSU_TILE_ENTRY(f32, f32, float, float)
KY_SSU_TILE_ENTRY(f32, f16, float, ky_f16)
KY_SSU_TILE_ENTRY(f32, bf16, float, ky_bf16)
KY_SSU_TILE_ENTRY(f16, f32, ky_f16, float)
KY_SSU_TILE_ENTRY(f16, f16, ky_f16, ky_f16)
KY_SSU_TILE_ENTRY(f16, bf16, ky_f16, ky_bf16)
KY_SSU_TILE_ENTRY(bf16, f32, ky_bf16, float)
KY_SSU_TILE_ENTRY(bf16, f16, ky_bf16, ky_f16)
KY_SSU_TILE_ENTRY(bf16, bf16, ky_bf16, ky_bf16)

KY_SSU_ENTRY(f32, f32, float, float, KY_SSU_V_MIN_BLOCKS)
KY_SSU_ENTRY(f32, f16, float, ky_f16, KY_SSU_V_MIN_BLOCKS_WIDE)
KY_SSU_ENTRY(f32, bf16, float, ky_bf16, KY_SSU_V_MIN_BLOCKS_WIDE)
KY_SSU_ENTRY(f16, f32, ky_f16, float, KY_SSU_V_MIN_BLOCKS)
KY_SSU_ENTRY(f16, f16, ky_f16, ky_f16, KY_SSU_V_MIN_BLOCKS)
KY_SSU_ENTRY(f16, bf16, ky_f16, ky_bf16, KY_SSU_V_MIN_BLOCKS)
KY_SSU_ENTRY(bf16, f32, ky_bf16, float, KY_SSU_V_MIN_BLOCKS)
KY_SSU_ENTRY(bf16, f16, ky_bf16, ky_f16, KY_SSU_V_MIN_BLOCKS)
KY_SSU_ENTRY(bf16, bf16, ky_bf16, ky_bf16, KY_SSU_V_MIN_BLOCKS)
