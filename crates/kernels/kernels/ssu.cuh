// kernels/ssu.cuh: what the selective_state_update kernels share (the portable row and tiled
// kernels of selective_state_update.cu and the CUDA backend's sm_90 kernel, ssu_sm90.cu): the
// `flags` bits, the row kinds, the slice loads, the per-chunk update and the row's end. A row
// computed through these gives the same bits in every kernel that uses them with the same
// lanes. Spliced after common.cuh.
#pragma once

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
