//! `cuda.attention`: fused attention forward (FlashAttention-2 style) on tensor cores
//! (`mma.sync.m16n8k16`, sm_80 and newer), from `kernels/attention.cu`.
//!
//! - **What it computes.** `out = softmax(scale * q k^T + mask) v` for f16 or bf16 `q [B, Sq,
//!   Hq, D]`, `k, v [B, Skv, Hkv, D]`, `out [B, Sq, Hq, D]` (contiguous), head dims 64, 128 and
//!   256, GQA/MQA (query head `h` reads key/value head `h / (Hq / Hkv)`), any `Sq` and `Skv`
//!   (equal or not), bottom-right aligned causal masking (query `i` sees keys `j <= i + Skv -
//!   Sq`), and the optional natural-log `lse [B, Hq, Sq]` (f32). A query that sees no key gets
//!   `out = 0` and `lse = -inf`.
//! - **Design.** One configuration per head dim ([`tiling`], `attn::Cfg<D>` in the kernel),
//!   never per problem size: a block of `threads` (4 warps; 8 in two of the head-dim-256
//!   tilings) per (query block of `block_m` rows, query head, batch entry), grid `(ceil(Sq /
//!   block_m), Hq, B)`. Warp `w` owns query rows `w * warp_m .. (w + 1) * warp_m - 1` of the
//!   block (`warp_m / 16` m16 tiles): whole rows, so a row's softmax stays in its warp (each
//!   row in one quad of lanes). D = 64 and 128: 4 warps, `block_m` = 128 (two m16 tiles per
//!   warp), key tiles of `block_n` = 64; D = 256: one m16 tile per warp, and the build's
//!   [`D256_TILING`] of [`D256_TILINGS`] (by default 4 warps, `block_m` = 64, `block_n` = 32;
//!   below). The Q tile is
//!   copied once to shared memory; key tiles are visited in increasing order, K and V
//!   double-buffered with `cp.async` (tile `j + 1` lands while tile `j` is used; one barrier
//!   per tile). Per tile and warp: `S = Q K^T` by `mma.sync` (Q and K fragments by `ldmatrix`
//!   from `[row][d]` shared rows), scaling by `scale * log2(e)` and masking (`-inf`) in f32,
//!   the online softmax in base 2 (the row max over the quad by shuffles, `alpha =
//!   exp2(m_old - m_new)`, exactly 1 when the max did not move, and a guarded max so a row
//!   that has seen no key computes `exp2(-inf - 0) = 0`, never `(-inf) - (-inf)`), then `P`
//!   rounded to the dtype straight from the S accumulator registers as the A fragment of `O +=
//!   P V` (V fragments by `ldmatrix.trans`). At the end `out = O / l` in the dtype and `lse = m
//!   ln 2 + ln l`. Shared rows hold `D` elements with their 16-byte chunks XOR-swizzled by `row
//!   % 8`, so every `ldmatrix` phase and every `cp.async` store touches 8 distinct bank groups
//!   without padding (this needs `D / 8` to be a multiple of 8 chunks: head dim 96, 12 chunks,
//!   would need another layout, so it has no entry point).
//! - **Registers and shared memory.** Each thread holds `warp_m / 16 * D / 2` f32 of O and
//!   `warp_m / 16 * block_n / 2` of S: 128 + 64 at D = 128, 64 + 64 at D = 64. At D = 256 two
//!   m16 tiles per warp would need 256 registers for O alone, so a warp owns one (128 + 16,
//!   or 128 + 32 with 64-key tiles). No spills, nvcc 13.0, sm_80 .. sm_90: 255 / 218 registers
//!   at D = 128 / 64; at D = 256, 235 in tilings 0 and 1, 233 (sm_80) / 235 (sm_90) in 2 and
//!   3. With 4 warps and at most 255 registers two blocks share an SM where shared memory
//!   allows (H100); the head-dim-256 tilings past 0 are budgeted for one block per SM (8
//!   warps in 1 and 3). The per-thread partial row sums live in shared memory (the
//!   accumulators fill the registers). [`shared_bytes`]: Q tile + 2 stages of (K, V) tiles +
//!   row sums = 98 KiB for `D = 128` (two blocks per H100 SM; one on sm_86 / sm_89 / sm_120,
//!   whose 99 KiB per block still hold it), 50 KiB for `D = 64`; for `D = 256`, 97 KiB in
//!   tiling 0 (Q 32 KiB + 2 x (16 + 16) KiB with 32-key tiles + 1 KiB), 130 KiB in 1 (Q 64
//!   KiB), 161 KiB in 2 (64-key tiles), 194 KiB in 3. A device whose opt-in limit is smaller
//!   gets `Reason::SharedMemory { need, have }`, not a launch or another tiling: in a build
//!   with tiling 1, 2 or 3, sm_86 / sm_89 / sm_120 (99 KiB) refuse head dim 256, and A100 (163
//!   KiB) refuses tiling 3 (flashinfer#3276: a head-dim-256 configuration with deeper buffers
//!   exceeded H100's 228 KB and deadlocked).
//! - **Causal.** Key tiles past the last key any row of the query block sees are not visited
//!   (for causal square problems about half of them); tiles past the first row's last key are
//!   masked element by element. A key tile a row sees nothing of changes no bit of that row:
//!   its max stays (`alpha = 1` exactly), its `p` are `exp2(-inf) = 0`, and adding exact zeros
//!   leaves the sums as they were. Query blocks are launched heaviest first (scheduling only).
//! - **Tails.** Query rows past `Sq` and keys past `Skv` are zero-filled in shared memory
//!   (`cp.async` with source size 0: nothing is read) and the keys are masked; rows past `Sq`
//!   are not stored.
//! - **Why it is deterministic and batch-invariant.** Every output element (and every `lse`
//!   value) is computed by one thread (with its quad for the row max and the final row sum, in
//!   a fixed xor-butterfly order) in an order fixed by `(Sq, Skv, D)` and the row's position:
//!   key tiles in increasing order, each tile's `mma.sync` steps in a fixed order, the row sum
//!   in a fixed tree. The tiling depends on the head dim and the build only (one [`tiling`]
//!   per head dim; at D = 256 the `ATTN_D256` the module was built with), never on `B`, `Sq`,
//!   `Skv`, the heads or the device (a device that lacks the shared memory is refused, never
//!   given another tiling); there is no split over keys, no atomic and no choice among
//!   configurations; a block reads only its own batch entry and heads. A batch entry
//!   therefore gets the same bits whatever batch it rides in, and every run the same bits.
//!   Across builds: head-dim-256 tilings 0 and 1 give the same bits, as do 2 and 3
//!   ([`D256_TILINGS`]).
//!
//! Responsibility: core validated the views into the [`AttentionProblem`] (shapes, one dtype,
//! contiguous, `Hq % Hkv == 0`, outputs disjoint from inputs, a finite scale) and the static
//! requirements (sm_80+, f16/bf16, 16-byte alignment for `cp.async`); its `check`
//! rejects what the launch cannot do (another head dim, more than 65535 heads or batch entries
//! for the grid, sequences past 2^30, a device with too little shared memory per block); the
//! kernel assumes valid inputs.

use std::ffi::c_void;

use kernelyard_core::ops::attention::{Attention, AttentionArgs, AttentionProblem};
use kernelyard_core::{Capabilities, DType, Error, KernelDef, KernelMeta, LaunchCtx, Reason};

use crate::error::CudaError;
use crate::launch::{self, Dims};
use crate::ops::{tensor_core_meta, TensorCores};
use crate::source::KernelSource;

/// The kernel's text (a `const`, so [`D256_TILING`] can read it at compile time).
const CODE: &str = include_str!("../../kernels/attention.cu");

/// The kernel source and its entry points, `attention_<dtype>_d<head dim>`, in the order
/// [`symbol`] indexes.
pub(crate) static SOURCE: KernelSource = KernelSource {
    file: "attention.cu",
    code: CODE,
    symbols: &[
        "attention_f16_d64",
        "attention_f16_d128",
        "attention_f16_d256",
        "attention_bf16_d64",
        "attention_bf16_d128",
        "attention_bf16_d256",
    ],
};

/// The tiling of one head dim (`attn::Cfg<D>` in the kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiling {
    /// Threads per block (`THREADS`): `threads / 32` warps of `warp_m` rows.
    pub threads: u32,
    /// Query rows per block (`BM` = `threads / 32 * warp_m`).
    pub block_m: usize,
    /// Query rows per warp (`WM`): one or two m16 tiles.
    pub warp_m: usize,
    /// Keys per tile (`BN`).
    pub block_n: usize,
}

impl Tiling {
    /// Dynamic shared memory per block at head dim `head_dim`, bytes (`attn::Smem<D>::BYTES`):
    /// the Q tile (`block_m` rows), two stages of a K and a V tile (`block_n` rows each), rows
    /// of `head_dim` 16-bit elements, then each thread's partial row sums (2 f32 per m16 tile
    /// of its warp).
    pub const fn shared_bytes(&self, head_dim: usize) -> u64 {
        let tiles = (self.block_m + 2 * 2 * self.block_n) * head_dim * 2;
        let row_sums = self.threads as usize * (self.warp_m / 16) * 2 * 4;
        (tiles + row_sums) as u64
    }
}

/// The head-dim-256 tilings the kernel can be built with, indexed by `ATTN_D256` in
/// attention.cu (`#define ATTN_D256 <index>`): every one gives a warp one m16 tile (16 rows).
/// - 0: 4 warps (64 rows), 32-key tiles, 97 KiB: every sm_80+ device (two blocks per H100 SM);
/// - 1: 8 warps (128 rows), 32-key tiles, 130 KiB: sm_80 / sm_90 (not sm_86 / sm_89 / sm_120,
///   whose 99 KiB per block refuse it with [`Reason::SharedMemory`]);
/// - 2: 4 warps, 64-key tiles, 161 KiB: sm_80 / sm_90;
/// - 3: 8 warps, 64-key tiles, 194 KiB: sm_90 only (A100 has 163 KiB per block).
///
/// Tilings 0 and 1 give every row the same bits, and so do 2 and 3 (a row's warp, its key
/// tiles and its arithmetic are the same; the larger block only visits more key tiles that are
/// wholly masked for its first rows, which change no bit); 2 and 3 round differently from 0
/// and 1 (the online softmax steps by 64 keys instead of 32).
pub const D256_TILINGS: [Tiling; 4] = [
    Tiling {
        threads: 128,
        block_m: 64,
        warp_m: 16,
        block_n: 32,
    },
    Tiling {
        threads: 256,
        block_m: 128,
        warp_m: 16,
        block_n: 32,
    },
    Tiling {
        threads: 128,
        block_m: 64,
        warp_m: 16,
        block_n: 64,
    },
    Tiling {
        threads: 256,
        block_m: 128,
        warp_m: 16,
        block_n: 64,
    },
];

/// This build's head-dim-256 tiling (an index into [`D256_TILINGS`]): the value of the line
/// `#define ATTN_D256 <index>` in attention.cu, read from the source when this crate is
/// compiled, so the kernel and its launch cannot disagree. Build another one by editing that
/// line (docs/NOTES.md, issue 18).
pub const D256_TILING: usize = define_value(CODE, b"#define ATTN_D256 ");

/// The value of `line`'s define in `code` (a compile-time error when there is none, it is not a
/// number alone, or it is out of [`D256_TILINGS`]).
const fn define_value(code: &str, line: &[u8]) -> usize {
    match kernelyard_kernels::source::define_value(code, line) {
        Some(v) if v < D256_TILINGS.len() => v,
        Some(_) => panic!("attention.cu: ATTN_D256 past D256_TILINGS"),
        None => panic!("attention.cu has no `#define ATTN_D256 <number>` line"),
    }
}

/// The head dims with an entry point.
pub const HEAD_DIMS: [usize; 3] = [64, 128, 256];
/// Longest `Sq` and `Skv`: the kernel's in-sequence indices (and `Sq + Skv`) are 32-bit.
pub const MAX_SEQ: usize = 1 << 30;
/// Most heads (grid y) and batch entries (grid z) a launch holds.
pub const MAX_GRID_YZ: usize = 65535;

/// The tiling of head dim `head_dim` in this build, if it has an entry point: 128 query rows
/// (4 warps of 32) and 64-key tiles at 64 and 128; at 256, [`D256_TILINGS`]`[`[`D256_TILING`]`]`
/// (by default 64 rows, 4 warps of 16: two m16 tiles of 256 columns of O would not fit the
/// registers, and 32-key tiles, so the block fits 99 KiB).
pub const fn tiling(head_dim: usize) -> Option<Tiling> {
    tiling_with(D256_TILING, head_dim)
}

/// [`tiling`] in a build whose `ATTN_D256` is `d256` (an index into [`D256_TILINGS`]; `None`
/// past it): for tests that run another build of the source, such as the CPU emulator's.
pub const fn tiling_with(d256: usize, head_dim: usize) -> Option<Tiling> {
    match head_dim {
        64 | 128 => Some(Tiling {
            threads: 128,
            block_m: 128,
            warp_m: 32,
            block_n: 64,
        }),
        256 if d256 < D256_TILINGS.len() => Some(D256_TILINGS[d256]),
        _ => None,
    }
}

/// Dynamic shared memory per block for head dim `head_dim` in this build, bytes
/// ([`Tiling::shared_bytes`] of its [`tiling`]), if it has an entry point.
pub const fn shared_bytes(head_dim: usize) -> Option<u64> {
    match tiling(head_dim) {
        Some(t) => Some(t.shared_bytes(head_dim)),
        None => None,
    }
}

/// The `cuda.attention` kernel.
pub static ATTENTION: KernelDef<Attention> = KernelDef::<Attention>::new(META, launch)
    .with_check(check)
    .with_prepare(crate::ops::prepare_nvrtc::<Attention>);
kernelyard_core::register!(ATTENTION);

// Align 16: 16-byte cp.async of every row (rows are 128, 256 or 512 bytes, so aligned base
// pointers suffice).
const META: KernelMeta = tensor_core_meta::<Attention>(
    "cuda.attention",
    module_path!(),
    "fused attention forward (FlashAttention-2 style, mma.sync, sm_80+), head dims 64, 128 and \
     256, causal, GQA, lse; one fixed tiling per head dim: batch-invariant, deterministic",
    TensorCores::MmaSync,
    16,
    10,
);

/// The entry point for `dtype` and `head_dim`, if the source has one.
pub fn symbol(dtype: DType, head_dim: usize) -> Option<&'static str> {
    let d = match dtype {
        DType::F16 => 0,
        DType::BF16 => 1,
        _ => return None,
    };
    let h = HEAD_DIMS.iter().position(|&x| x == head_dim)?;
    Some(SOURCE.symbols[d * HEAD_DIMS.len() + h])
}

/// The launch shape of `p`, if its head dim has an entry point: [`dims_with`] the head dim's
/// [`tiling`].
pub fn dims(p: &AttentionProblem) -> Option<Dims> {
    Some(dims_with(tiling(p.head_dim)?, p))
}

/// The launch shape of `p` with tiling `t`: grid `(ceil(Sq / block_m), Hq, B)`, `threads`
/// threads, [`Tiling::shared_bytes`] of dynamic shared memory (the caller has checked the grid
/// fits: [`check_shape`]).
pub fn dims_with(t: Tiling, p: &AttentionProblem) -> Dims {
    let clamp = |x: usize, max: usize| x.min(max) as u32;
    Dims {
        grid: (
            clamp(p.seq_q.div_ceil(t.block_m), i32::MAX as usize),
            clamp(p.heads_q, MAX_GRID_YZ),
            clamp(p.batch, MAX_GRID_YZ),
        ),
        block: (t.threads, 1, 1),
        shared_bytes: t.shared_bytes(p.head_dim) as u32,
    }
}

/// Pushes a reason for each part of `p` a launch of an attention kernel whose entry points
/// have `head_dims` cannot pass, whatever the device: another head dim, a sequence past
/// [`MAX_SEQ`], more heads or batch entries than a grid holds (`cuda.attention.sm90` shares
/// these limits, with its own head dims).
pub fn check_shape(p: &AttentionProblem, head_dims: &[usize], reasons: &mut Vec<Reason>) {
    if !head_dims.contains(&p.head_dim) {
        reasons.push(Reason::ShapeUnsupported {
            what: format!(
                "head_dim {} (this kernel has head dims {head_dims:?})",
                p.head_dim
            ),
        });
    }
    for (name, len) in [("seq_q", p.seq_q), ("seq_kv", p.seq_kv)] {
        if len > MAX_SEQ {
            reasons.push(Reason::ShapeUnsupported {
                what: format!("{name} = {len} (at most 2^30: 32-bit positions in the kernel)"),
            });
        }
    }
    for (name, n, axis) in [("heads_q", p.heads_q, 'y'), ("batch", p.batch, 'z')] {
        if n > MAX_GRID_YZ {
            reasons.push(Reason::ShapeUnsupported {
                what: format!("{name} = {n} (one grid {axis} block each: at most {MAX_GRID_YZ})"),
            });
        }
    }
}

/// [`check_shape`], and the device's opt-in shared memory per block holds
/// [`shared_bytes`] for the head dim.
fn check(caps: &Capabilities, p: &AttentionProblem, reasons: &mut Vec<Reason>) {
    check_with(D256_TILING, caps, p, reasons);
}

/// [`check`] in a build whose `ATTN_D256` is `d256` (the unit tests check every build's).
fn check_with(d256: usize, caps: &Capabilities, p: &AttentionProblem, reasons: &mut Vec<Reason>) {
    check_shape(p, &HEAD_DIMS, reasons);
    // The need depends on the head dim (and the build) alone, not the dtype, which the static
    // check owns; a head dim without an entry point has its reason already. A device short of
    // it is refused: it never gets another tiling.
    if let Some(need) = tiling_with(d256, p.head_dim).map(|t| t.shared_bytes(p.head_dim)) {
        if need > caps.shared_mem_per_block_optin {
            reasons.push(Reason::SharedMemory {
                need,
                have: caps.shared_mem_per_block_optin,
            });
        }
    }
}

fn launch(
    ctx: &LaunchCtx<'_>,
    a: &mut AttentionArgs<'_>,
    p: &AttentionProblem,
) -> Result<(), Error> {
    let (symbol, dims) =
        symbol(p.dtype, p.head_dim)
            .zip(dims(p))
            .ok_or_else(|| CudaError::Misuse {
                what: format!(
                    "{} launched for {} with head_dim {}",
                    META.name, p.dtype, p.head_dim
                ),
            })?;
    let scale = a.effective_scale();
    let q = a.q.as_ptr();
    let k = a.k.as_ptr();
    let v = a.v.as_ptr();
    let out = a.out.as_mut_ptr();
    let lse: *mut c_void = match a.lse.as_mut() {
        Some(l) => l.as_mut_ptr(),
        None => std::ptr::null_mut(),
    };
    let flags = i32::from(a.causal) | (i32::from(!lse.is_null()) << 1);
    let (seq_q, seq_kv) = (p.seq_q as i64, p.seq_kv as i64);
    let (heads_q, heads_kv) = (p.heads_q as i64, p.heads_kv as i64);
    // SAFETY: the parameters match `attention_<dtype>_d<D>(const void* q, const void* k,
    // const void* v, void* out, void* lse, long long seq_q, long long seq_kv, long long
    // heads_q, long long heads_kv, float scale, int flags)`; core validated the views into
    // `p` (q and out `[B, Sq, Hq, D]`, k and v `[B, Skv, Hkv, D]`, contiguous, one dtype and
    // device, 16-byte aligned, `Hq % Hkv == 0`, lse `[B, Hq, Sq]` f32 when present, outputs
    // disjoint from the inputs and each other), and the kernel touches only elements inside
    // them (lse only when flag bit 1 is set, i.e. the pointer is not null); `check`
    // checked the grid fits and the device's opt-in shared memory holds `shared_bytes`
    // (`launch` raises the function's limit).
    unsafe {
        launch::launch(
            ctx.stream,
            &SOURCE,
            symbol,
            dims,
            &mut kernelyard_kernels::params![
                q, k, v, out, lse, seq_q, seq_kv, heads_q, heads_kv, scale, flags
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelyard_core::Sm;
    use kernelyard_core::{Kernel, Problem};

    #[allow(clippy::too_many_arguments)]
    fn problem(
        batch: usize,
        seq_q: usize,
        seq_kv: usize,
        heads_q: usize,
        heads_kv: usize,
        head_dim: usize,
        causal: bool,
        dtype: DType,
    ) -> AttentionProblem {
        AttentionProblem {
            batch,
            seq_q,
            seq_kv,
            heads_q,
            heads_kv,
            head_dim,
            dtype,
            causal,
            lse: true,
            align: 16,
        }
    }

    fn caps(sm: Sm, optin: u64) -> Capabilities {
        crate::device::simulated_caps(sm, optin)
    }

    fn h100() -> Capabilities {
        caps(Sm::new(9, 0), 227 << 10)
    }

    fn reasons(caps: &Capabilities, p: AttentionProblem) -> Vec<Reason> {
        let mut r = Vec::new();
        ATTENTION.check_problem(caps, &Problem::Attention(p), &mut r);
        r
    }

    #[test]
    fn the_entry_point_follows_dtype_and_head_dim() {
        for dtype in [DType::F16, DType::BF16] {
            for d in HEAD_DIMS {
                let s = symbol(dtype, d).unwrap();
                assert_eq!(s, format!("attention_{}_d{d}", dtype.name()));
                assert!(SOURCE.lists(s));
            }
            for d in [1, 16, 32, 80, 96, 127, 192, 512] {
                assert_eq!(symbol(dtype, d), None, "{d}");
            }
        }
        assert_eq!(symbol(DType::F32, 64), None);
        assert_eq!(symbol(DType::F32, 128), None);
    }

    /// attention.cu with every run of whitespace made one space (its lines are wrapped).
    fn code_words() -> String {
        SOURCE.code.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// `(build, head dim)` for every build's entry points: 64 and 128 (the same in every build)
    /// and each head-dim-256 tiling.
    fn every_build() -> Vec<(usize, usize)> {
        let mut all = vec![(0, 64), (0, 128)];
        all.extend((0..D256_TILINGS.len()).map(|v| (v, 256)));
        all
    }

    /// What attention.cu asserts for head dim `d` in build `v` (head dim 256: the line that
    /// holds when `ATTN_D256 == v`).
    fn guard(v: usize, d: usize) -> String {
        if d == 256 {
            format!("ATTN_D256 != {v} || ")
        } else {
            String::new()
        }
    }

    #[test]
    fn shared_memory_per_head_dim_is_the_kernels() {
        // D = 128: Q 32 KiB + 2 x (K 16 KiB + V 16 KiB) + 2 KiB of row sums; half the tiles
        // at D = 64. D = 256 (rows of 512 B, one m16 tile per warp, 2 f32 of row sums per
        // thread): 0: Q 64 rows = 32 KiB + 2 x (K 16 KiB + V 16 KiB) (32 keys) + 1 KiB = 97
        // KiB; 1: Q 128 rows = 64 KiB + 64 KiB + 2 KiB (256 threads) = 130 KiB; 2: 32 KiB + 2 x
        // (32 + 32) KiB (64 keys) + 1 KiB = 161 KiB; 3: 64 + 128 + 2 = 194 KiB.
        let bytes = |v: usize, d: usize| tiling_with(v, d).unwrap().shared_bytes(d);
        assert_eq!(bytes(0, 64), 51_200);
        assert_eq!(bytes(0, 128), 100_352);
        assert_eq!(
            (0..4).map(|v| bytes(v, 256)).collect::<Vec<_>>(),
            [99_328, 133_120, 164_864, 198_656]
        );
        let code = code_words();
        for (v, d) in every_build() {
            let need = bytes(v, d);
            let line = format!("static_assert({}Smem<{d}>::BYTES == {need},", guard(v, d));
            assert!(code.contains(&line), "`{line}` not in attention.cu");
        }
        // The default build fits the 99 KiB per block of sm_86 / sm_89 / sm_120 at every head
        // dim; tiling 1 and 2 fit A100's 163 KiB, 3 only H100's 227 KiB.
        for d in HEAD_DIMS {
            assert!(bytes(0, d) <= 99 << 10, "d{d}");
        }
        for (v, fits_a100) in [(1, true), (2, true), (3, false)] {
            assert!(bytes(v, 256) > 99 << 10, "{v}");
            assert_eq!(bytes(v, 256) <= 163 << 10, fits_a100, "{v}");
            assert!(bytes(v, 256) <= 227 << 10, "{v}");
        }
        // This build's.
        for d in HEAD_DIMS {
            assert_eq!(shared_bytes(d), Some(bytes(D256_TILING, d)), "d{d}");
        }
        for d in [0, 1, 32, 96, 192, 512, usize::MAX] {
            assert_eq!(shared_bytes(d), None, "{d}");
            assert_eq!(tiling(d), None, "{d}");
        }
        assert_eq!(tiling_with(D256_TILINGS.len(), 256), None);
    }

    #[test]
    fn the_tilings_are_the_kernels() {
        let code = code_words();
        for (v, d) in every_build() {
            let t = tiling_with(v, d).unwrap();
            // 4 or 8 warps of whole m16 tiles.
            assert!(t.threads == 128 || t.threads == 256, "{v} d{d}");
            assert_eq!(t.block_m, t.threads as usize / 32 * t.warp_m, "{v} d{d}");
            assert!(
                t.warp_m.is_multiple_of(16) && t.block_n.is_multiple_of(16),
                "{v} d{d}"
            );
            let cfg = format!(
                "Cfg<{d}>::THREADS == {} && Cfg<{d}>::BM == {} && Cfg<{d}>::WM == {} && \
                 Cfg<{d}>::BN == {}",
                t.threads, t.block_m, t.warp_m, t.block_n
            );
            let line = if d == 256 {
                format!("static_assert({}({cfg}),", guard(v, d))
            } else {
                format!("static_assert({cfg},")
            };
            assert!(code.contains(&line), "`{line}` not in attention.cu");
        }
    }

    #[test]
    fn the_head_dim_256_tiling_is_the_sources_define() {
        // Read from attention.cu's one `#define ATTN_D256` line (in its `#ifndef` guard).
        let lines: Vec<&str> = SOURCE
            .code
            .lines()
            .filter(|l| l.trim_start().starts_with("#define ATTN_D256"))
            .collect();
        assert_eq!(lines, [format!("#define ATTN_D256 {D256_TILING}")]);
        assert_eq!(tiling(256), Some(D256_TILINGS[D256_TILING]));
        assert_eq!(
            define_value("x\n#define ATTN_D256 3\n", b"#define ATTN_D256 "),
            3
        );
        // Only at a line's start.
        assert_eq!(
            define_value(
                "// #define ATTN_D256 2\n#define ATTN_D256 1\n",
                b"#define ATTN_D256 "
            ),
            1
        );
    }

    #[test]
    fn every_listed_entry_point_is_in_the_source() {
        for s in SOURCE.symbols {
            let (dtype, variant) = s
                .strip_prefix("attention_")
                .and_then(|r| r.split_once('_'))
                .unwrap();
            let d: usize = variant.strip_prefix('d').unwrap().parse().unwrap();
            assert!(
                SOURCE
                    .code
                    .contains(&format!("ATTN_ENTRY(attention_##D##_{variant}, T, {d})")),
                "{s}"
            );
            let t = if dtype == "bf16" { "ky_bf16" } else { "ky_f16" };
            assert!(
                SOURCE.code.contains(&format!("ATTN_DTYPE({dtype}, {t})")),
                "{s}"
            );
        }
    }

    #[test]
    fn one_block_per_query_block_head_and_batch_entry() {
        // The benchmark shapes.
        let d = dims(&problem(4, 4096, 4096, 32, 32, 128, true, DType::BF16)).unwrap();
        assert_eq!(
            d,
            Dims {
                grid: (32, 32, 4),
                block: (128, 1, 1),
                shared_bytes: 100_352,
            }
        );
        let d = dims(&problem(1, 16384, 16384, 32, 8, 128, true, DType::BF16)).unwrap();
        assert_eq!(d.grid, (128, 32, 1));
        let d = dims(&problem(8, 2048, 2048, 16, 16, 64, true, DType::BF16)).unwrap();
        assert_eq!((d.grid, d.shared_bytes), ((16, 16, 8), 51_200));
        // torch_ops.py's attention_hd256 shape at D = 256: 64 query rows per block by
        // default (tilings 0 and 2), 128 with 8 warps (1 and 3).
        let p = problem(2, 4096, 4096, 16, 16, 256, true, DType::BF16);
        for (v, grid_x, threads, bytes) in [
            (0, 64, 128, 99_328),
            (1, 32, 256, 133_120),
            (2, 64, 128, 164_864),
            (3, 32, 256, 198_656),
        ] {
            assert_eq!(
                dims_with(D256_TILINGS[v], &p),
                Dims {
                    grid: (grid_x, 16, 2),
                    block: (threads, 1, 1),
                    shared_bytes: bytes,
                },
                "{v}"
            );
        }
        assert_eq!(dims(&p), Some(dims_with(D256_TILINGS[D256_TILING], &p)));
        // Tails: one block for 1 .. 128 queries, two for 129 (1 .. 64 and 65 at D = 256 with
        // 64-row blocks); the key length never matters.
        for (sq, blocks, blocks_64) in [
            (1, 1, 1),
            (17, 1, 1),
            (64, 1, 1),
            (65, 1, 2),
            (128, 1, 2),
            (129, 2, 3),
            (200, 2, 4),
            (257, 3, 5),
        ] {
            for skv in [1, 9, 64, 65, 1025] {
                let d = dims(&problem(2, sq, skv, 3, 1, 64, false, DType::F16)).unwrap();
                assert_eq!(d.grid, (blocks, 3, 2), "{sq} {skv}");
                let p = problem(2, sq, skv, 3, 1, 256, false, DType::F16);
                for (v, t) in D256_TILINGS.iter().enumerate() {
                    let want = if t.block_m == 64 { blocks_64 } else { blocks };
                    assert_eq!(dims_with(*t, &p).grid, (want, 3, 2), "{sq} {skv} d256 {v}");
                }
            }
        }
        // No entry point, no launch shape.
        assert_eq!(dims(&problem(1, 64, 64, 1, 1, 96, false, DType::F16)), None);
    }

    #[test]
    fn the_tiling_depends_on_the_head_dim_alone() {
        // Block shape and shared memory are the same for every batch, length, head count,
        // causality and dtype: a row's arithmetic never depends on the batch it rides in.
        for d in HEAD_DIMS {
            let want = dims(&problem(1, 1, 1, 1, 1, d, false, DType::F16)).unwrap();
            for (b, sq, skv, hq, hkv, causal) in [
                (7, 1000, 3, 8, 8, true),
                (1, 3, 1000, 32, 4, false),
                (65535, 64, 64, 1, 1, true),
            ] {
                for dtype in [DType::F16, DType::BF16] {
                    let got = dims(&problem(b, sq, skv, hq, hkv, d, causal, dtype)).unwrap();
                    assert_eq!(
                        (got.block, got.shared_bytes),
                        (want.block, want.shared_bytes)
                    );
                }
            }
        }
    }

    #[test]
    fn devices_with_enough_shared_memory_per_block_run_it() {
        // H100 (227 KiB), A100 (163 KiB), sm_86 / sm_89 / sm_120 (99 KiB): every head dim in
        // the default build; in the others, head dim 256 only where its tiling fits, and a
        // typed reason elsewhere (never another tiling).
        let devices = [
            (Sm::new(9, 0), 227 << 10),
            (Sm::new(8, 0), 163 << 10),
            (Sm::new(8, 6), 99 << 10),
            (Sm::new(8, 9), 99 << 10),
            (Sm::new(12, 0), 99 << 10),
        ];
        for (sm, optin) in devices {
            for d in HEAD_DIMS {
                let p = problem(2, 300, 500, 8, 2, d, true, DType::BF16);
                let mut r = Vec::new();
                check_with(0, &caps(sm, optin), &p, &mut r);
                assert_eq!(r, vec![], "{sm} d{d}");
            }
        }
        // Which devices run head dim 256 in builds 1, 2 and 3.
        for (v, runs) in [
            (1, [true, true, false, false, false]),
            (2, [true, true, false, false, false]),
            (3, [true, false, false, false, false]),
        ] {
            let need = D256_TILINGS[v].shared_bytes(256);
            for ((sm, optin), runs) in devices.into_iter().zip(runs) {
                for d in HEAD_DIMS {
                    let p = problem(2, 300, 500, 8, 2, d, true, DType::BF16);
                    let mut r = Vec::new();
                    check_with(v, &caps(sm, optin), &p, &mut r);
                    let want = if d == 256 && !runs {
                        vec![Reason::SharedMemory { need, have: optin }]
                    } else {
                        vec![]
                    };
                    assert_eq!(r, want, "build {v} {sm} d{d}");
                }
            }
        }
        // This build's check is check_with(D256_TILING).
        for (sm, optin) in devices {
            let p = problem(2, 300, 500, 8, 2, 256, false, DType::F16);
            let mut want = Vec::new();
            check_with(D256_TILING, &caps(sm, optin), &p, &mut want);
            assert_eq!(reasons(&caps(sm, optin), p), want, "{sm}");
        }
        // 64 KiB per block: D = 64 (50 KiB) fits, D = 128 (98 KiB) and D = 256 (97 KiB) do
        // not.
        let small = caps(Sm::new(8, 0), 64 << 10);
        assert_eq!(
            reasons(&small, problem(1, 64, 64, 1, 1, 64, false, DType::F16)),
            vec![]
        );
        assert_eq!(
            reasons(&small, problem(1, 64, 64, 1, 1, 128, false, DType::F16)),
            vec![Reason::SharedMemory {
                need: 100_352,
                have: 64 << 10
            }]
        );
        // D = 256 needs 99_328 bytes by default: exactly 97 KiB runs, a byte less does not;
        // the same at each build's need.
        for (v, t) in D256_TILINGS.iter().enumerate() {
            let need = t.shared_bytes(256);
            for (optin, want) in [
                (need, vec![]),
                (
                    need - 1,
                    vec![Reason::SharedMemory {
                        need,
                        have: need - 1,
                    }],
                ),
            ] {
                let p = problem(2, 300, 500, 8, 2, 256, true, DType::BF16);
                let mut r = Vec::new();
                check_with(v, &caps(Sm::new(9, 0), optin), &p, &mut r);
                assert_eq!(r, want, "{v} {optin}");
            }
        }
        assert_eq!(D256_TILINGS[0].shared_bytes(256), 99_328);
    }

    #[test]
    fn what_the_launch_cannot_pass_is_a_reason() {
        let h100 = h100();
        for d in [1, 32, 80, 96, 192, 512] {
            let r = reasons(&h100, problem(1, 16, 16, 2, 2, d, false, DType::BF16));
            assert!(
                matches!(&r[..], [Reason::ShapeUnsupported { what }] if what.contains("head_dim")),
                "{d}: {r:?}"
            );
        }
        // Grid y and z: one block per query head and per batch entry.
        assert_eq!(
            reasons(&h100, problem(1, 1, 1, 65535, 1, 64, false, DType::F16)),
            vec![]
        );
        assert_eq!(
            reasons(&h100, problem(65535, 1, 1, 1, 1, 64, false, DType::F16)),
            vec![]
        );
        let r = reasons(&h100, problem(1, 1, 1, 65536, 1, 64, false, DType::F16));
        assert!(matches!(&r[..], [Reason::ShapeUnsupported { what }] if what.contains("heads_q")));
        let r = reasons(&h100, problem(65536, 1, 1, 1, 1, 64, false, DType::F16));
        assert!(matches!(&r[..], [Reason::ShapeUnsupported { what }] if what.contains("batch")));
        // 32-bit positions.
        assert_eq!(
            reasons(
                &h100,
                problem(1, MAX_SEQ, MAX_SEQ, 1, 1, 64, true, DType::F16)
            ),
            vec![]
        );
        let r = reasons(
            &h100,
            problem(1, MAX_SEQ + 1, MAX_SEQ + 1, 1, 1, 64, true, DType::F16),
        );
        assert_eq!(r.len(), 2, "{r:?}");
        // Everything at once: each is reported.
        let r = reasons(
            &caps(Sm::new(8, 6), 48 << 10),
            problem(1 << 20, 1, MAX_SEQ + 1, 1 << 20, 1, 128, false, DType::BF16),
        );
        assert_eq!(r.len(), 4, "{r:?}");
    }

    #[test]
    fn dtypes_and_archs_without_an_entry_point_are_static_reasons() {
        // f32 is the static check's reason, and check_problem neither panics nor adds one.
        let p = problem(1, 16, 16, 2, 2, 64, false, DType::F32);
        assert_eq!(reasons(&h100(), p.clone()), vec![]);
        let all = Kernel::check(&ATTENTION, &h100(), &Problem::Attention(p)).unwrap_err();
        assert!(
            matches!(&all[..], [Reason::DtypeUnsupported { .. }]),
            "{all:?}"
        );
        // sm_75 has no bf16 mma.sync nor cp.async.
        let p = problem(1, 16, 16, 2, 2, 64, false, DType::F16);
        let all = Kernel::check(
            &ATTENTION,
            &caps(Sm::new(7, 5), 64 << 10),
            &Problem::Attention(p.clone()),
        )
        .unwrap_err();
        assert!(
            all.iter().any(|r| matches!(r, Reason::ArchTooOld { .. })),
            "{all:?}"
        );
        // A pointer alignment below 16 bytes is refused (16-byte cp.async).
        let mut q = p;
        q.align = 8;
        let all = Kernel::check(&ATTENTION, &h100(), &Problem::Attention(q)).unwrap_err();
        assert!(
            matches!(
                &all[..],
                [Reason::Alignment {
                    need: 16,
                    have: 8,
                    ..
                }]
            ),
            "{all:?}"
        );
        let ok = problem(1, 16, 16, 2, 2, 128, true, DType::BF16);
        assert_eq!(
            Kernel::check(&ATTENTION, &h100(), &Problem::Attention(ok)),
            Ok(())
        );
    }
}
