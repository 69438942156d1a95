// kernels/rope.cu: rotary position embedding of x [tokens, heads, head_dim] over the first
// rotary_dim features of each head; the rest is copied (out of place) or left alone (in place).
//
// Work split: for each token, heads are cut into groups of `heads_per_thread` (chosen by the
// host from the problem size) and each (token, head group) into units:
//   - rotary units: a fixed set of pairs, whose cos/sin are computed once and reused for every
//     head of the group;
//     NeoX `_v16`: 16 bytes of the first half (features [u n, u n + n)) and the 16 bytes of the
//       second half they pair with, n = 4 (f32) or 8 (f16/bf16) pairs;
//     GPT-J `_v16`: 16 contiguous bytes, n / 2 interleaved pairs;
//     any alignment: one pair;
//   - copy units (out of place only, rotary_dim < head_dim): n features of the tail
//     [rotary_dim, head_dim) of every head of the group, 16 bytes at a time when aligned.
// Each thread loads the units of KY_ROPE_HEADS heads before it computes and stores any of them
// (so several 16-byte loads are in flight even in place, where x and out alias); a thread reads
// and writes only its own elements, so the in-place update is race-free.
//
// Angles: inv_freq[i] = r^i with r = theta^(-2 / rotary_dim) computed in f64 by the host and
// the power by binary exponentiation (a fixed function of i, so every path gives the same
// bits), angle = position * inv_freq[i] in f64, reduced to [-pi/4, pi/4] in f64 (two-part
// pi/2), then sin/cos by f32 minimax polynomials (Cephes sinf/cosf, about 1 ulp). The angle is
// thus exact to f32 precision even for positions of 1e5 and more, with no slow-path range
// reduction (and no local memory). Each rotated element is
// (a, b) -> (fma(a, c, -(b s)), fma(b, c, a s)) in f32, one rounding to the storage type.
//
// Deterministic and batch-invariant: every element's arithmetic depends only on its own
// inputs, the same in the 16-byte and the any-alignment paths.
#include "common.cuh"

#define KY_ROPE_HEADS 4

// One 16-byte global store. (A plain struct store is sometimes split into four 4-byte stores
// after the compiler scalarizes the register arrays; port.cuh keeps it one instruction, and
// ordered with the loads, which in place read the same buffer.)
__device__ __forceinline__ void ky_rope_store16(void* p, const ky_vec16& v) {
    ky_port_store16_global(p, v.w);
}

// sin and cos of `angle` (radians, f64).
__device__ __forceinline__ void ky_rope_sincos(double angle, float* sn, float* cs) {
    const double q = rint(angle * 0.63661977236758134308);  // 2 / pi
    double r = fma(-q, 1.5707963267948965580e+00, angle);   // pi/2, high part
    r = fma(-q, 6.1232339957367658e-17, r);                 // pi/2, low part
    const float x = (float)r;
    const float z = ky_fmul_rn(x, x);
    const float sp = fmaf(fmaf(fmaf(-1.9515295891e-4f, z, 8.3321608736e-3f), z,
                               -1.6666654611e-1f),
                          ky_fmul_rn(z, x), x);
    const float cp = fmaf(fmaf(fmaf(2.443315711809948e-5f, z, -1.388731625493765e-3f), z,
                               4.166664568298827e-2f),
                          ky_fmul_rn(z, z), fmaf(-0.5f, z, 1.0f));
    const int quad = (int)((long long)q & 3);
    const float s0 = (quad & 1) ? cp : sp;
    const float c0 = (quad & 1) ? sp : cp;
    *sn = (quad & 2) ? -s0 : s0;
    *cs = ((quad + 1) & 2) ? -c0 : c0;
}

// r^i by binary exponentiation (a fixed sequence of f64 products for each i).
__device__ __forceinline__ double ky_rope_pow(double r, int i) {
    double acc = 1.0;
    double p = r;
    while (i != 0) {
        if (i & 1) acc *= p;
        p *= p;
        i >>= 1;
    }
    return acc;
}

__device__ __forceinline__ void ky_rope_rotate(float& a, float& b, float c, float s) {
    const float ra = fmaf(a, c, -ky_fmul_rn(b, s));
    const float rb = fmaf(b, c, ky_fmul_rn(a, s));
    a = ra;
    b = rb;
}

__device__ __forceinline__ ky_i64 ky_rope_position(const void* positions, ky_i64 pos_size,
                                                   ky_i64 t) {
    return pos_size == 8 ? static_cast<const ky_i64*>(positions)[t]
                         : (ky_i64) static_cast<const int*>(positions)[t];
}

// NEOX: 1 for NeoX pairs (j, j + rotary_dim/2), 0 for GPT-J pairs (2i, 2i + 1).
// VEC: 16-byte units (the host checked alignment and divisibility).
template <typename T, int NEOX, bool VEC>
__device__ __forceinline__ void rope_impl(const void* x_, void* out_, const void* positions,
                                          ky_i64 pos_size, ky_i64 tokens, ky_i64 heads,
                                          ky_i64 head_dim, ky_i64 rotary_dim,
                                          ky_i64 heads_per_thread, ky_i64 copy_tail, double r) {
    typedef typename Elem<T>::storage S;
    const int n = Vec16<T>::n;
    // Pairs per rotary unit.
    const int pairs = VEC ? (NEOX ? n : n / 2) : 1;
    const ky_i64 half = rotary_dim / 2;
    const ky_i64 n_rot = half / pairs;
    const ky_i64 n_copy = copy_tail ? (head_dim - rotary_dim + n - 1) / n : 0;
    const ky_i64 n_units = n_rot + n_copy;
    const ky_i64 n_groups = (heads + heads_per_thread - 1) / heads_per_thread;

    const ky_i64 g = (ky_i64)blockIdx.x * blockDim.x + threadIdx.x;
    const ky_i64 unit = g % n_units;
    const ky_i64 rest = g / n_units;
    const ky_i64 group = rest % n_groups;
    const ky_i64 token = rest / n_groups;
    if (token >= tokens) return;
    const ky_i64 h0 = group * heads_per_thread;
    const ky_i64 h1 = h0 + heads_per_thread < heads ? h0 + heads_per_thread : heads;

    const S* x = static_cast<const S*>(x_) + token * heads * head_dim;
    S* out = static_cast<S*>(out_) + token * heads * head_dim;

    if (unit < n_rot) {
        float cs[VEC ? (NEOX ? 8 : 4) : 1], sn[VEC ? (NEOX ? 8 : 4) : 1];
        const double pos = (double)ky_rope_position(positions, pos_size, token);
        const ky_i64 i0 = unit * pairs;
        #pragma unroll
        for (int p = 0; p < pairs; ++p) {
            ky_rope_sincos(pos * ky_rope_pow(r, (int)(i0 + p)), &sn[p], &cs[p]);
        }
        if (VEC) {
            // Element offsets of the unit's one or two 16-byte pieces within a head.
            const ky_i64 oa = NEOX ? i0 : 2 * i0;
            const ky_i64 ob = oa + half;
            ky_i64 h = h0;
            for (; h < h1; h += KY_ROPE_HEADS) {
                const int nh = h1 - h < KY_ROPE_HEADS ? (int)(h1 - h) : KY_ROPE_HEADS;
                ky_vec16 va[KY_ROPE_HEADS], vb[KY_ROPE_HEADS];
                #pragma unroll
                for (int j = 0; j < KY_ROPE_HEADS; ++j) {
                    if (j < nh) {
                        va[j] = ky_load16(x + (h + j) * head_dim + oa);
                        if (NEOX) vb[j] = ky_load16(x + (h + j) * head_dim + ob);
                    }
                }
                #pragma unroll
                for (int j = 0; j < KY_ROPE_HEADS; ++j) {
                    if (j < nh) {
                        float fa[8], fb[8];
                        Vec16<T>::unpack(va[j], fa);
                        if (NEOX) {
                            Vec16<T>::unpack(vb[j], fb);
                            #pragma unroll
                            for (int p = 0; p < n; ++p) ky_rope_rotate(fa[p], fb[p], cs[p], sn[p]);
                            ky_rope_store16(out + (h + j) * head_dim + ob, Vec16<T>::pack(fb));
                        } else {
                            #pragma unroll
                            for (int p = 0; p < n / 2; ++p) {
                                ky_rope_rotate(fa[2 * p], fa[2 * p + 1], cs[p], sn[p]);
                            }
                        }
                        ky_rope_store16(out + (h + j) * head_dim + oa, Vec16<T>::pack(fa));
                    }
                }
            }
        } else {
            const ky_i64 ia = NEOX ? i0 : 2 * i0;
            const ky_i64 ib = NEOX ? i0 + half : 2 * i0 + 1;
            for (ky_i64 h = h0; h < h1; h += KY_ROPE_HEADS) {
                const int nh = h1 - h < KY_ROPE_HEADS ? (int)(h1 - h) : KY_ROPE_HEADS;
                float a[KY_ROPE_HEADS], b[KY_ROPE_HEADS];
                #pragma unroll
                for (int j = 0; j < KY_ROPE_HEADS; ++j) {
                    if (j < nh) {
                        a[j] = Elem<T>::load(x, (h + j) * head_dim + ia);
                        b[j] = Elem<T>::load(x, (h + j) * head_dim + ib);
                    }
                }
                #pragma unroll
                for (int j = 0; j < KY_ROPE_HEADS; ++j) {
                    if (j < nh) {
                        ky_rope_rotate(a[j], b[j], cs[0], sn[0]);
                        Elem<T>::store(out, (h + j) * head_dim + ia, a[j]);
                        Elem<T>::store(out, (h + j) * head_dim + ib, b[j]);
                    }
                }
            }
        }
    } else {
        // Copy unit: features [f0, f1) of the tail of every head of the group.
        const ky_i64 f0 = rotary_dim + (unit - n_rot) * n;
        const ky_i64 f1 = f0 + n < head_dim ? f0 + n : head_dim;
        if (VEC && f1 - f0 == n) {
            for (ky_i64 h = h0; h < h1; h += KY_ROPE_HEADS) {
                const int nh = h1 - h < KY_ROPE_HEADS ? (int)(h1 - h) : KY_ROPE_HEADS;
                ky_vec16 v[KY_ROPE_HEADS];
                #pragma unroll
                for (int j = 0; j < KY_ROPE_HEADS; ++j) {
                    if (j < nh) v[j] = ky_load16(x + (h + j) * head_dim + f0);
                }
                #pragma unroll
                for (int j = 0; j < KY_ROPE_HEADS; ++j) {
                    if (j < nh) ky_rope_store16(out + (h + j) * head_dim + f0, v[j]);
                }
            }
        } else {
            for (ky_i64 h = h0; h < h1; ++h) {
                for (ky_i64 f = f0; f < f1; ++f) out[h * head_dim + f] = x[h * head_dim + f];
            }
        }
    }
}

// Entry points: grid (ceil(tokens * groups * units / blockDim.x), 1, 1), any blockDim.x.
// `pos_size` is 4 (i32 positions) or 8 (i64); `copy_tail` is 0 in place; r = theta^(-2/rotary_dim).
#define KY_ROPE_ENTRY(NAME, T, NEOX, VEC)                                                      \
    extern "C" __global__ void NAME(const void* x, void* out, const void* positions,          \
                                    long long pos_size, long long tokens, long long heads,    \
                                    long long head_dim, long long rotary_dim,                 \
                                    long long heads_per_thread, long long copy_tail,          \
                                    double r) {                                                \
        rope_impl<T, NEOX, VEC>(x, out, positions, pos_size, tokens, heads, head_dim,         \
                                rotary_dim, heads_per_thread, copy_tail, r);                  \
    }

KY_ROPE_ENTRY(rope_f32_neox, float, 1, false)
KY_ROPE_ENTRY(rope_f16_neox, ky_f16, 1, false)
KY_ROPE_ENTRY(rope_bf16_neox, ky_bf16, 1, false)
KY_ROPE_ENTRY(rope_f32_gptj, float, 0, false)
KY_ROPE_ENTRY(rope_f16_gptj, ky_f16, 0, false)
KY_ROPE_ENTRY(rope_bf16_gptj, ky_bf16, 0, false)
KY_ROPE_ENTRY(rope_f32_neox_v16, float, 1, true)
KY_ROPE_ENTRY(rope_f16_neox_v16, ky_f16, 1, true)
KY_ROPE_ENTRY(rope_bf16_neox_v16, ky_bf16, 1, true)
KY_ROPE_ENTRY(rope_f32_gptj_v16, float, 0, true)
KY_ROPE_ENTRY(rope_f16_gptj_v16, ky_f16, 0, true)
KY_ROPE_ENTRY(rope_bf16_gptj_v16, ky_bf16, 0, true)
