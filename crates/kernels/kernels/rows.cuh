// kernels/rows.cuh: row-wise helpers shared by softmax.cu, log_softmax.cu and rms_norm.cu.
//
// Spliced after common.cuh by the pipeline (crates/kernels/src/source.rs, HEADERS): chunk loads
// and stores with the fixed element-to-thread mapping (16-byte or scalar, same bits), group
// and block reductions in a fixed butterfly order, and a commutative online log-sum-exp merge.
// Every function here reduces in an order that depends only on (cols, threads per row, chunks
// per thread), which the launchers pick from cols alone.
#pragma once

#define KY_LOG2E 1.4426950408889634f
#define KY_NEG_INF (-__int_as_float(0x7f800000))
// Chunks per thread in flight per step of the two-pass paths.
#define KY_U 4

// L2 prefetch of a later row (issue 17, the row kernels at an H200's bandwidth): with
// KY_ROWS_L2_AHEAD_KB > 0, on sm_90, the first thread of a row asks L2 for the row that many
// KiB of rows ahead (at least one row; one `cp.async.bulk.prefetch.L2`), so that row's loads
// find it in L2 when its block starts: more bytes in flight per SM without registers. Each
// row is prefetched once (no extra DRAM bytes while the distance fits L2) and nothing read
// changes, so no bit changes. Only whole 16-byte rows of a 16-byte aligned base are
// prefetched, and only rows of the launch (r < rows). Measured on an H100 (seventeenth
// session, docs/BENCHMARKS.md): 4 MiB ahead was 0.4-5 % faster than none at every suite shape;
// 2 and 8 MiB each slower than none at one of them; 16 MiB and more (as a row count) 15-30 %
// slower: the prefetched rows leave L2 before their blocks read them. 0: off.
#define KY_ROWS_L2_AHEAD_KB 4096

__device__ __forceinline__ void ky_l2_prefetch_ahead(const void* base, ky_i64 row, ky_i64 rows,
                                                     ky_i64 row_bytes) {
#if KY_ROWS_L2_AHEAD_KB > 0 && !KY_HIP && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if ((row_bytes & 15) != 0 || row_bytes <= 0 || row_bytes > 0x7ffffff0 ||
        (reinterpret_cast<unsigned long long>(base) & 15) != 0) {
        return;
    }
    const ky_i64 ahead = (ky_i64)KY_ROWS_L2_AHEAD_KB * 1024 / row_bytes;
    const ky_i64 r = row + (ahead > 0 ? ahead : 1);
    if (r < rows) {
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;"
                     :
                     : "l"(static_cast<const char*>(base) + r * row_bytes), "r"((unsigned)row_bytes)
                     : "memory");
    }
#else
    (void)base; (void)row; (void)rows; (void)row_bytes;
#endif
}

// ---- row helpers (the same in softmax.cu, log_softmax.cu and rms_norm.cu) ------------------

// Sum over the `tpr` threads that share a row. tpr <= 32: a xor butterfly inside the group's
// aligned lanes (every lane of the warp must call it). tpr > 32 (== blockDim.x): then across
// the warps through `scratch` (32 floats, used once per kernel run; one __syncthreads, so every
// thread of the block must call it).
__device__ __forceinline__ float ky_group_sum(float v, int tpr, float* scratch) {
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        if (o < tpr) v += ky_shfl_xor(v, o);
    }
    if (tpr <= 32) return v;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    return ky_warp_sum(lane < (int)(blockDim.x >> 5) ? scratch[lane] : 0.0f);
}

// C chunks of a row held as raw storage: chunk i is elements [(first + i * stride) * V, +V),
// V = 16 / sizeof(T). `load` issues every access before anything uses one (several loads in
// flight); `unpack` converts to f32. VEC: one 16-byte access per chunk, for whole chunks only
// (cols % V == 0, 16-byte aligned row); else one access per element, any cols and alignment.
// Elements at or past `cols`, and all of them when `!active`, are not read and unpack as
// `fill`. NC: read-only path without L1 allocation (data the kernel never writes).
template <typename T, int C, bool VEC>
struct KyChunks {
    typedef typename Elem<T>::storage S;
    static constexpr int V = Vec16<T>::n;
    ky_vec16 vec[VEC ? C : 1];
    S sc[VEC ? 1 : C][V];

    template <bool NC>
    __device__ __forceinline__ void load(const S* p, int first, int stride, int cols,
                                         bool active) {
        #pragma unroll
        for (int i = 0; i < C; ++i) {
            const int e0 = (first + i * stride) * V;
            if constexpr (VEC) {
                if (active && e0 < cols) {
                    vec[i] = NC ? ky_load16_stream(p + e0) : ky_load16(p + e0);
                }
            } else {
                #pragma unroll
                for (int k = 0; k < V; ++k) {
                    if (active && e0 + k < cols) sc[i][k] = p[e0 + k];
                }
            }
        }
    }

    __device__ __forceinline__ void unpack(int first, int stride, int cols, bool active,
                                           float fill, float (&v)[C][V]) const {
        #pragma unroll
        for (int i = 0; i < C; ++i) {
            unpack_chunk(i, (first + i * stride) * V, cols, active, fill, v[i]);
        }
    }

    // Converts chunk i (whose first element is e0) to f32; see `unpack`.
    __device__ __forceinline__ void unpack_chunk(int i, int e0, int cols, bool active,
                                                 float fill, float (&v)[V]) const {
        if constexpr (VEC) {
            if (active && e0 < cols) {
                Vec16<T>::unpack(vec[i], v);
            } else {
                #pragma unroll
                for (int k = 0; k < V; ++k) v[k] = fill;
            }
        } else {
            #pragma unroll
            for (int k = 0; k < V; ++k) {
                v[k] = (active && e0 + k < cols) ? Elem<T>::to_f32(sc[i][k]) : fill;
            }
        }
    }

    // Rounds chunk i from f32 into the raw registers (elements inside the row only).
    __device__ __forceinline__ void pack_chunk(int i, int e0, int cols, bool active,
                                               const float (&v)[V]) {
        if constexpr (VEC) {
            if (active && e0 < cols) vec[i] = Vec16<T>::pack(v);
        } else {
            #pragma unroll
            for (int k = 0; k < V; ++k) {
                if (active && e0 + k < cols) sc[i][k] = Elem<T>::from_f32(v[k]);
            }
        }
    }

    // Rounds the chunks inside the row from f32 into the raw registers.
    __device__ __forceinline__ void pack(int first, int stride, int cols, bool active,
                                         const float (&v)[C][V]) {
        #pragma unroll
        for (int i = 0; i < C; ++i) {
            pack_chunk(i, (first + i * stride) * V, cols, active, v[i]);
        }
    }

    // Stores the chunks inside the row (the mirror of `load`).
    __device__ __forceinline__ void store(S* p, int first, int stride, int cols,
                                          bool active) const {
        #pragma unroll
        for (int i = 0; i < C; ++i) {
            const int e0 = (first + i * stride) * V;
            if constexpr (VEC) {
                if (active && e0 < cols) ky_store16(p + e0, vec[i]);
            } else {
                #pragma unroll
                for (int k = 0; k < V; ++k) {
                    if (active && e0 + k < cols) p[e0 + k] = sc[i][k];
                }
            }
        }
    }
};

// Loads and converts in one call (see KyChunks).
template <typename T, int C, bool VEC, bool NC>
__device__ __forceinline__ void ky_load_chunks(const typename Elem<T>::storage* p, int first,
                                               int stride, int cols, bool active, float fill,
                                               float (&v)[C][Vec16<T>::n]) {
    KyChunks<T, C, VEC> raw;
    raw.template load<NC>(p, first, stride, cols, active);
    raw.unpack(first, stride, cols, active, fill, v);
}

// Rounds and stores the chunks that lie inside the row.
template <typename T, int C, bool VEC>
__device__ __forceinline__ void ky_store_chunks(typename Elem<T>::storage* p, int first,
                                                int stride, int cols, bool active,
                                                const float (&v)[C][Vec16<T>::n]) {
    KyChunks<T, C, VEC> raw;
    raw.pack(first, stride, cols, active, v);
    raw.store(p, first, stride, cols, active);
}

__device__ __forceinline__ float ky_group_max(float v, int tpr, float* scratch) {
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        if (o < tpr) v = fmaxf(v, ky_shfl_xor(v, o));
    }
    if (tpr <= 32) return v;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    return ky_warp_max(lane < (int)(blockDim.x >> 5) ? scratch[lane] : KY_NEG_INF);
}

// Online softmax state (max m, sum s of exp(x - m)) merge. The products are rounded separately
// (no FMA contraction), so merge(a, b) and merge(b, a) give the same bits: every lane of a
// butterfly ends with the same state.
__device__ __forceinline__ void ky_lse_combine(float& m, float& s, float m2, float s2) {
    const float mn = fmaxf(m, m2);
    if (mn == KY_NEG_INF) return;  // both empty
    s = ky_fadd_rn(ky_fmul_rn(s, exp2f((m - mn) * KY_LOG2E)),
                   ky_fmul_rn(s2, exp2f((m2 - mn) * KY_LOG2E)));
    m = mn;
}

// Merges the online states of the whole block (every thread gets the result). Two scratch
// arrays of 32 floats, used once; one __syncthreads.
__device__ __forceinline__ void ky_block_lse(float& m, float& s, float* sm, float* ss) {
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        ky_lse_combine(m, s, ky_shfl_xor(m, o), ky_shfl_xor(s, o));
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { sm[warp] = m; ss[warp] = s; }
    __syncthreads();
    const bool have = lane < (int)(blockDim.x >> 5);
    m = have ? sm[lane] : KY_NEG_INF;
    s = have ? ss[lane] : 0.0f;
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        ky_lse_combine(m, s, ky_shfl_xor(m, o), ky_shfl_xor(s, o));
    }
}

// ---- persistent register path -----------------------------------------------------------------
// The `_p` entry points: a grid of about as many blocks as the SMs keep resident walks the row
// sets (a set = the rows of one block: blockDim.x / tpr rows), set blockIdx.x, then + gridDim.x,
// ..., with the next set's loads issued before the current set is reduced and stored, so a
// block always has a row's loads in flight (the one-shot entry points drain between rows:
// their loads, reduction and stores do not overlap inside a block). Each row is computed
// exactly as by the one-shot entry point of the same (C, tpr): the grid changes no bits.
//
// Every persistent entry point is bounded to KY_P_TPSM(C, RES) / MAXT blocks of MAXT threads
// per SM: 1024 threads (at most 64 registers a thread) for up to 2 chunks a thread and no
// second input, else 512 (128 registers: 64 spill there), so the host's grid of
// multiprocessors * KY_P_TPSM / blockDim.x blocks (crates/kernels/src/rows.rs,
// `persistent_threads_per_sm`, the same rule) is resident at once on CUDA. HIP's bound is in
// waves per EU: the grid is the same and correct, only perhaps not all resident at once.
#define KY_P_TPSM(C, RES) (((C) <= 2 && !(RES)) ? 1024 : 512)

// Walks the sets as above with two buffers of type Buf: `load(buf, set)` issues a set's loads
// (a set at or past `sets` loads nothing), `body(buf, set, parity)` reduces and stores it;
// parity alternates 0, 1 so the body can use two scratch areas (a block-wide reduction of set
// s + 2g reuses set s's scratch only after the barrier of set s + g). The trip count is the
// same for every thread of a block.
template <typename Buf, typename Load, typename Body>
__device__ __forceinline__ void ky_rows_pipelined(ky_i64 sets, Load load, Body body) {
    const ky_i64 g = gridDim.x;
    Buf a, b;
    ky_i64 s = blockIdx.x;
    load(a, s);
    for (; s < sets; s += 2 * g) {
        load(b, s + g);
        body(a, s, 0);
        if (s + g >= sets) break;
        load(a, s + 2 * g);
        body(b, s + g, 1);
    }
}
