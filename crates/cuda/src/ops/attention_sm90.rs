//! `cuda.attention.sm90`: fused attention forward for Hopper (`sm_90a`), FlashAttention-3
//! style: TMA copies, `wgmma` tensor-core multiplies and mbarrier handshakes between a producer
//! warpgroup and two consumer warpgroups, from `kernels/attention_sm90.cu`.
//!
//! - **What it computes.** Exactly the contract of `cuda.attention`
//!   ([`crate::ops::attention`]): `out = softmax(scale * q k^T + mask) v` for f16 or bf16
//!   `q [B, Sq, Hq, D]`, `k, v [B, Skv, Hkv, D]`, `out [B, Sq, Hq, D]` (contiguous), head dims
//!   64, 96, 128 and 256 (96 verified on an H100 in the sixteenth session), GQA/MQA (query
//!   head `h` reads key/value head `h / (Hq / Hkv)`),
//!   bottom-right aligned causal masking (query `i` sees keys `j <= i + Skv - Sq`), the optional
//!   natural-log `lse [B, Hq, Sq]` (f32, written one value at a time). A query that sees no key
//!   gets `out = 0` and `lse = -inf`.
//! - **Design.** One configuration per head dim: a block of [`THREADS`] = 384 threads (three
//!   warpgroups) per (query block of [`BLOCK_M`] = 128 rows, query head, batch entry), grid
//!   `(ceil(Sq / 128), Hq, B)`. Warpgroup 0 produces: one thread issues every TMA copy (the Q
//!   tile once, then K and V tiles of [`block_n`] keys (128, or 64 at head dim 256: the build's
//!   [`KEYS_PER_TILE`]) into a ring of [`stages`] (2 as committed) with full/empty mbarriers). Warpgroups 1 and 2 consume 64
//!   query rows each: `S = Q K^T` by `wgmma.m64n128k16` (`m64n64k16` at head dim 256; both
//!   operands from shared memory, K-major), the online softmax in the
//!   accumulator registers (scale `* log2(e)`, `-inf` masking per element for causality and the
//!   key tail, a guarded max, `alpha` exactly 1 when the max did not move), `P` rounded to the
//!   dtype in registers and used as the register A operand of `O += P V` (`wgmma.m64nDk16`, V
//!   N-major from shared memory; at head dim 256 two `m64n128k16` per k16 step, one per half
//!   of O's columns, 128 f32 accumulators per thread), then `out = O / l` and
//!   `lse = m ln 2 + ln l`. The two consumers take turns issuing their GEMMs (FA3's ping-pong)
//!   and each issues `S` of the next tile with `P V` of this one (FA3's intra-warpgroup
//!   overlap): scheduling only, the same bits as one tile at a time. The tensor maps
//!   are 4-D over the `[B, S, H, D]` memory, dims `(D, H, S, B)`, boxes 64 elements wide with
//!   the 128-byte swizzle ([`box_width`]: 32 with the 64-byte swizzle at head dim 96, which 64
//!   does not divide), so positions past `S` are zero-filled within each batch entry; they are
//!   encoded on the host for each launch (`cuTensorMapEncodeTiled`) and passed by value as
//!   `__grid_constant__` parameters. Key tiles past the last key any row of the block sees are
//!   not loaded.
//! - **Why it is deterministic and batch-invariant.** Every output element (and `lse` value) is
//!   computed by one thread (with its quad for the row max and the final row sum, in a fixed
//!   xor-butterfly order) in an order fixed by `(Sq, Skv, D)` and the row's position: key tiles
//!   from 0 in increasing order, the `wgmma` k16 steps in a fixed order, fixed reduction trees.
//!   The tiling depends on the head dim only, never on `B`, `Sq`, `Skv` or the heads; there is
//!   no split over keys, no atomic, no choice among configurations; a block reads only its own
//!   batch entry and heads (the 4-D maps never reach into another batch entry). A masked key
//!   contributes an exact zero and a tile a row sees nothing of changes no bit of that row.
//! - **What it needs.** Compute capability 9.0 exactly (`wgmma`, TMA and `setmaxnreg` are
//!   `sm_90a` instructions), 16-byte aligned pointers (TMA; row strides are `H * D` elements,
//!   multiples of 16 bytes for `D` = 64, 96, 128 or 256), and [`shared_bytes`] of shared memory
//!   per block (81 KiB at `D = 64`, 121 KiB at 96, 161 KiB at 128, 193 KiB at 256). A device whose opt-in limit is
//!   smaller gets `SharedMemory { need, have }` (the head-dim-256 case of flashinfer#3276 was a
//!   configuration that outgrew an H100's 227 KiB and deadlocked; here the need is computed
//!   per head dim, checked against the device, and `static_assert`ed within 227 KiB in the
//!   kernel). Anything else is a typed reason, never a launch, and selection falls to
//!   `cuda.attention`.
//!
//! Responsibility: core validated the views into the [`AttentionProblem`]; `check`
//! rejects what this launch cannot do (another head dim, grids past their limits, sequences
//! past 2^30, too little shared memory); the kernel assumes valid inputs.

use std::ffi::c_void;

use cudarc::driver::sys;
use kernelyard_core::ops::attention::{Attention, AttentionArgs, AttentionProblem};
use kernelyard_core::{Capabilities, DType, Error, KernelDef, KernelMeta, LaunchCtx, Reason};

use crate::error::CudaError;
use crate::launch::{self, Dims};
use crate::ops::attention::{check_shape, MAX_GRID_YZ};
use crate::ops::{tensor_core_meta, TensorCores};
use crate::source::KernelSource;

/// The kernel's text (a `const`, so [`block_n`] can read its tile lines at compile time).
const CODE: &str = include_str!("../../kernels/attention_sm90.cu");

/// The kernel source and its entry points, `attention_sm90_<dtype>_d<head dim>`, in the order
/// [`symbol`] indexes.
pub(crate) static SOURCE: KernelSource = KernelSource {
    file: "attention_sm90.cu",
    code: CODE,
    symbols: &[
        "attention_sm90_f16_d64",
        "attention_sm90_f16_d96",
        "attention_sm90_f16_d128",
        "attention_sm90_f16_d256",
        "attention_sm90_bf16_d64",
        "attention_sm90_bf16_d96",
        "attention_sm90_bf16_d128",
        "attention_sm90_bf16_d256",
    ],
};

/// The head dims with an entry point.
pub const HEAD_DIMS: [usize; 4] = [64, 96, 128, 256];
/// Query rows per block (`attn90::BM`): two consumer warpgroups of 64 rows.
pub const BLOCK_M: usize = 128;
/// Keys per tile of head dims 64, 96, 128 and 256 in this build: the lines `#define
/// ATTN90_KN<D> <keys>` of attention_sm90.cu, read from the source when this crate is compiled,
/// so kernel and launch cannot disagree (128, 128, 128 and 64 as committed: at 256, O takes 128 f32 registers
/// per consumer thread, and two stages of 128 keys would not fit beside the 64 KiB Q tile;
/// `scripts/attn90_variants.sh` builds others).
pub const KEYS_PER_TILE: [usize; 4] = [
    tile_define(b"#define ATTN90_KN64 "),
    tile_define(b"#define ATTN90_KN96 "),
    tile_define(b"#define ATTN90_KN128 "),
    tile_define(b"#define ATTN90_KN256 "),
];

/// K/V stages at head dims 64 and 128 in this build (the line `#define ATTN90_STAGES <n>`;
/// 2 as committed). Head dim 256 always has 2.
pub const STAGES: usize =
    match kernelyard_kernels::source::define_value(CODE, b"#define ATTN90_STAGES ") {
        Some(n) if n >= 2 && n <= 4 => n,
        _ => panic!("attention_sm90.cu: `#define ATTN90_STAGES <2..4>` is missing or out of range"),
    };

/// The K/V stages of head dim `head_dim` (`attn90::Cfg<D>::ST`).
pub const fn stages(head_dim: usize) -> usize {
    if head_dim == 256 {
        2
    } else {
        STAGES
    }
}

/// One `ATTN90_KN<D>` line's value (a compile-time error when it is missing or not a
/// multiple of 16 from 16 to 256, as the kernel's `static_assert` also says).
const fn tile_define(line: &[u8]) -> usize {
    match kernelyard_kernels::source::define_value(CODE, line) {
        Some(v) if v.is_multiple_of(16) && v >= 16 && v <= 256 => v,
        Some(_) => panic!("attention_sm90.cu: keys per tile must be a multiple of 16 up to 256"),
        None => panic!("attention_sm90.cu: an `#define ATTN90_KN<D> <keys>` line is missing"),
    }
}
/// Threads per block (`attn90::THREADS`): one producer and two consumer warpgroups.
pub const THREADS: u32 = 384;
/// Rows of a V box (`attn90::Cfg<D>::VR`): 64 keys when the tile is a multiple of 64 (the
/// N-major descriptor of `O += P V` then steps 8 KiB per 64-wide d block, as in the sm90 GEMM),
/// else 16.
pub const fn v_box_rows(head_dim: usize) -> usize {
    v_box_rows_of(block_n(head_dim))
}

/// V box rows for tiles of `keys` keys.
const fn v_box_rows_of(keys: usize) -> usize {
    if keys.is_multiple_of(64) {
        64
    } else {
        16
    }
}
/// Elements of one TMA box row (`attn90::Cfg<D>::BW`): 64 (128 bytes, the 128-byte swizzle
/// span) when 64 divides the head dim, else 32 (64 bytes, the 64-byte swizzle: head dim 96).
pub const fn box_width(head_dim: usize) -> usize {
    if head_dim.is_multiple_of(64) {
        64
    } else {
        32
    }
}
/// The mbarriers after the tiles of head dim `head_dim`: Q full, then K full, V full, K empty
/// and V empty for each stage.
const fn barriers(head_dim: usize) -> usize {
    1 + 4 * stages(head_dim)
}

/// Keys per tile for head dim `head_dim` (`attn90::Cfg<D>::KN`, from [`KEYS_PER_TILE`]; a
/// head dim without an entry point gets 256's): the tiling depends on the head dim alone.
pub const fn block_n(head_dim: usize) -> usize {
    match head_dim {
        64 => KEYS_PER_TILE[0],
        96 => KEYS_PER_TILE[1],
        128 => KEYS_PER_TILE[2],
        _ => KEYS_PER_TILE[3],
    }
}

/// Dynamic shared memory per block for head dim `head_dim`, bytes (`attn90::Smem<D>::BYTES`):
/// the Q tile, [`stages`] stages of a K and a V tile, the barriers, and 1 KiB of slack for the
/// 1024-byte alignment the 128-byte swizzle needs. 81 KiB at `D = 64`, 121 KiB at 96, 161 KiB
/// at 128 and 193 KiB (197,704 bytes) at 256: within sm_90's 227 KiB opt-in limit, which `check`
/// compares with the device's.
pub const fn shared_bytes(head_dim: usize) -> u64 {
    // Saturating: a head dim without an entry point (checks never ask for its size) must
    // not overflow either.
    // Rows of `head_dim` 16-bit elements, whatever the box width.
    let row = (head_dim as u64).saturating_mul(2);
    let q = row.saturating_mul(BLOCK_M as u64);
    let kv = row.saturating_mul((2 * block_n(head_dim)) as u64);
    q.saturating_add(kv.saturating_mul(stages(head_dim) as u64))
        .saturating_add((barriers(head_dim) * 8 + 1024) as u64)
}

/// The `cuda.attention.sm90` kernel.
pub static ATTENTION_SM90: KernelDef<Attention> = KernelDef::<Attention>::new(META, launch)
    .with_check(check)
    .with_prepare(crate::ops::prepare_nvrtc::<Attention>);
kernelyard_core::register!(ATTENTION_SM90);

// Align 16: TMA needs 16-byte aligned global addresses (row strides are multiples of 16 bytes).
const META: KernelMeta = tensor_core_meta::<Attention>(
    "cuda.attention.sm90",
    module_path!(),
    "fused attention forward (FlashAttention-3 style: TMA, wgmma, ping-pong consumers, sm_90a), \
     head dims 64, 96, 128 and 256, causal, GQA, lse; one fixed tiling per \
     head dim: batch-invariant, deterministic",
    TensorCores::Hopper,
    16,
    11,
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

/// The launch shape of `p`: grid `(ceil(Sq / BLOCK_M), Hq, B)`, [`THREADS`] threads,
/// [`shared_bytes`] of dynamic shared memory (the caller has checked the grid fits).
pub fn dims(p: &AttentionProblem) -> Dims {
    let clamp = |x: usize, max: usize| x.min(max) as u32;
    Dims {
        grid: (
            clamp(p.seq_q.div_ceil(BLOCK_M), i32::MAX as usize),
            clamp(p.heads_q, MAX_GRID_YZ),
            clamp(p.batch, MAX_GRID_YZ),
        ),
        block: (THREADS, 1, 1),
        shared_bytes: shared_bytes(p.head_dim) as u32,
    }
}

/// One tensor as TMA sees it: `[B, S, H, D]` memory as dims `(D, H, S, B)` (innermost
/// first), byte strides of dims 1 to 3, and the box `(64, 1, rows, 1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Operand {
    dims: [u64; 4],
    strides: [u64; 3],
    box_dims: [u32; 4],
}

/// The operand of a `[batch, seq, heads, head_dim]` 16-bit tensor with boxes of `rows`
/// positions. An empty dimension (`Skv = 0`: no block loads a key) is encoded with extent 1,
/// as a tensor map needs; its strides stay the contiguous ones.
fn operand(batch: usize, seq: usize, heads: usize, head_dim: usize, rows: u32) -> Operand {
    // Core checked these tensors' bytes fit in `isize`; saturating for any other problem.
    let d = (head_dim as u64).saturating_mul(2);
    let row = (heads as u64).saturating_mul(d);
    Operand {
        dims: [head_dim, heads, seq, batch].map(|d| d.max(1) as u64),
        strides: [d, row, (seq.max(1) as u64).saturating_mul(row)],
        box_dims: [box_width(head_dim) as u32, 1, rows, 1],
    }
}

/// Q (boxes of 128 rows), K (boxes of [`block_n`] keys) and V (boxes of [`v_box_rows`] keys).
fn operands(p: &AttentionProblem) -> [Operand; 3] {
    let kv = |rows| operand(p.batch, p.seq_kv, p.heads_kv, p.head_dim, rows);
    [
        operand(p.batch, p.seq_q, p.heads_q, p.head_dim, BLOCK_M as u32),
        kv(block_n(p.head_dim) as u32),
        kv(v_box_rows(p.head_dim) as u32),
    ]
}

/// Encodes a 4-D tiled tensor map with zero fill out of bounds and the swizzle that spans the
/// box's row: 128 bytes for 64-element rows, 64 for 32.
fn tensor_map(dtype: DType, ptr: *const c_void, o: Operand) -> Result<sys::CUtensorMap, Error> {
    let swizzle = if o.box_dims[0] == 64 {
        sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B
    } else {
        sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_64B
    };
    let ty = match dtype {
        DType::BF16 => sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
        _ => sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
    };
    let element_strides = [1u32; 4];
    let mut map = std::mem::MaybeUninit::<sys::CUtensorMap>::uninit();
    // SAFETY: every array has the rank's length (4 dims, 4 box extents and element strides,
    // 3 strides); `ptr` is the tensor's device address, 16-byte aligned (the kernel declares
    // `align: 16`); the call only writes `map`, which is used only if it succeeded.
    let rc = unsafe {
        sys::cuTensorMapEncodeTiled(
            map.as_mut_ptr(),
            ty,
            4,
            ptr as *mut c_void,
            o.dims.as_ptr(),
            o.strides.as_ptr(),
            o.box_dims.as_ptr(),
            element_strides.as_ptr(),
            sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            swizzle,
            sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    };
    crate::error::drv("cuTensorMapEncodeTiled", rc.result())?;
    // SAFETY: the call succeeded, so it initialized the map.
    Ok(unsafe { map.assume_init() })
}

/// The limits of `cuda.attention` ([`check_shape`]), and the device's opt-in shared memory
/// per block holds [`shared_bytes`] for the head dim.
fn check(caps: &Capabilities, p: &AttentionProblem, reasons: &mut Vec<Reason>) {
    // Head dims (its own), 2^30 positions, grid y and z: the same limits as cuda.attention.
    check_shape(p, &HEAD_DIMS, reasons);
    // The need depends on the head dim alone (not the dtype, which the static check owns).
    if HEAD_DIMS.contains(&p.head_dim) {
        let need = shared_bytes(p.head_dim);
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
    let symbol = symbol(p.dtype, p.head_dim).ok_or_else(|| CudaError::Misuse {
        what: format!(
            "{} launched for {} with head_dim {}",
            META.name, p.dtype, p.head_dim
        ),
    })?;
    let dims = dims(p);
    if dims.grid.0 == 0 || dims.grid.1 == 0 || dims.grid.2 == 0 {
        // No query row: nothing to write.
        return Ok(());
    }
    let [oq, ok, ov] = operands(p);
    let map_q = tensor_map(p.dtype, a.q.as_ptr(), oq)?;
    // With no key (Skv = 0) the kernel loads nothing from k or v, whose (empty) views
    // may have any address: their maps are encoded over q's, never read.
    let (k_ptr, v_ptr) = if p.seq_kv == 0 {
        (a.q.as_ptr(), a.q.as_ptr())
    } else {
        (a.k.as_ptr(), a.v.as_ptr())
    };
    let map_k = tensor_map(p.dtype, k_ptr, ok)?;
    let map_v = tensor_map(p.dtype, v_ptr, ov)?;
    let scale = a.effective_scale();
    let out = a.out.as_mut_ptr();
    let lse: *mut c_void = match a.lse.as_mut() {
        Some(l) => l.as_mut_ptr(),
        None => std::ptr::null_mut(),
    };
    let flags = i32::from(a.causal) | (i32::from(!lse.is_null()) << 1);
    let (seq_q, seq_kv) = (p.seq_q as i64, p.seq_kv as i64);
    let (heads_q, heads_kv) = (p.heads_q as i64, p.heads_kv as i64);
    // SAFETY: the parameters match `attention_sm90_<dtype>_d<D>(KyTensorMap x3, void*
    // out, void* lse, long long seq_q, long long seq_kv, long long heads_q, long long
    // heads_kv, float scale, int flags)`: the maps are 128-byte values copied into the
    // parameter space, describing q, k and v exactly as core validated them (`[B, S, H, D]`,
    // contiguous, one dtype and device, 16-byte aligned); the kernel reads k and v only
    // inside the maps' bounds, writes out only for rows below Sq and lse only when flag bit
    // 1 is set (the pointer is not null); `check` checked the grid fits and the
    // device's opt-in shared memory holds `shared_bytes` (`launch` raises the limit).
    unsafe {
        launch::launch(
            ctx.stream,
            &SOURCE,
            symbol,
            dims,
            &mut kernelyard_kernels::params![
                map_q, map_k, map_v, out, lse, seq_q, seq_kv, heads_q, heads_kv, scale, flags
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelyard_core::Sm;
    use kernelyard_core::{Kernel, Problem};

    fn problem(
        batch: usize,
        seq_q: usize,
        seq_kv: usize,
        heads: (usize, usize),
        head_dim: usize,
        dtype: DType,
    ) -> AttentionProblem {
        AttentionProblem {
            batch,
            seq_q,
            seq_kv,
            heads_q: heads.0,
            heads_kv: heads.1,
            head_dim,
            dtype,
            causal: true,
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
        ATTENTION_SM90.check_problem(caps, &Problem::Attention(p), &mut r);
        r
    }

    #[test]
    fn the_entry_point_follows_dtype_and_head_dim() {
        for dtype in [DType::F16, DType::BF16] {
            for d in HEAD_DIMS {
                let s = symbol(dtype, d).unwrap();
                assert_eq!(s, format!("attention_sm90_{}_d{d}", dtype.name()));
                assert!(SOURCE.lists(s));
                let variant = format!("ATTN90_ENTRY(attention_sm90_##D##_d{d}, T, {d})");
                assert!(SOURCE.code.contains(&variant), "{variant}");
            }
            for d in [1, 16, 32, 80, 112, 192, 512] {
                assert_eq!(symbol(dtype, d), None, "{d}");
            }
        }
        assert_eq!(symbol(DType::F32, 64), None);
        assert!(SOURCE.code.contains("ATTN90_DTYPE(bf16, ky_bf16)"));
        assert!(SOURCE.code.contains("ATTN90_DTYPE(f16, ky_f16)"));
    }

    #[test]
    fn shared_memory_and_constants_are_the_kernels() {
        // Q 32 KiB + 2 x (K 32 KiB + V 32 KiB) + barriers + alignment slack; half at D = 64.
        assert_eq!(shared_bytes(128), 164_936);
        assert_eq!(shared_bytes(64), 83_016);
        // D = 256: Q 64 KiB + 2 x (K 32 KiB + V 32 KiB) with 64-key tiles, within 227 KiB.
        assert_eq!(shared_bytes(256), 197_704);
        assert!(shared_bytes(256) <= 227 << 10);
        assert_eq!(block_n(256), 64);
        assert_eq!((block_n(64), block_n(128)), (128, 128));
        assert_eq!(KEYS_PER_TILE, [128, 128, 128, 64]);
        // D = 96: Q 24 KiB + 2 x (K 24 KiB + V 24 KiB), boxes 32 elements wide.
        assert_eq!(
            shared_bytes(96),
            3 * 24 * 1024 + 2 * 24 * 1024 + 9 * 8 + 1024
        );
        assert_eq!(
            (box_width(64), box_width(96), box_width(128), box_width(256)),
            (64, 32, 64, 64)
        );
        assert_eq!((STAGES, stages(256)), (2, 2));
        assert_eq!(v_box_rows(256), 64);
        for d in HEAD_DIMS {
            // The kernel's Smem<D>: Q, the stages of K and V, the barriers, 1 KiB of slack.
            let row = d as u64 * 2;
            let st = stages(d) as u64;
            let want = 128 * row + st * 2 * block_n(d) as u64 * row + (1 + 4 * st) * 8 + 1024;
            assert_eq!(shared_bytes(d), want, "{d}");
            assert!(shared_bytes(d) <= 227 << 10, "{d}");
            let line = format!("#define ATTN90_KN{d} {}", block_n(d));
            assert!(
                SOURCE.code.lines().any(|l| l == line),
                "`{line}` not in attention_sm90.cu"
            );
        }
        // Tiles that are not a multiple of 64 keys copy V in 16-key boxes.
        assert_eq!(v_box_rows_of(80), 16);
        assert_eq!(v_box_rows_of(176), 16);
        assert_eq!(v_box_rows_of(128), 64);
        for (name, value) in [("BM", BLOCK_M), ("THREADS", THREADS as usize)] {
            let line = format!("constexpr int {name} = {value};");
            assert!(
                SOURCE.code.contains(&line),
                "`{line}` not in attention_sm90.cu"
            );
        }
    }

    #[test]
    fn the_schedule_switches_are_single_lines() {
        // scripts/attn90_variants.sh flips these lines with sed; the schedules give the same
        // bits (docs/NOTES.md, issue 18), so which one is built changes no result.
        for name in ["ATTN90_OVERLAP", "ATTN90_PINGPONG", "ATTN90_FFMA"] {
            let lines: Vec<&str> = SOURCE
                .code
                .lines()
                .filter(|l| l.starts_with(&format!("#define {name} ")))
                .collect();
            assert_eq!(lines.len(), 1, "{name}: {lines:?}");
            assert!(
                lines[0].ends_with(" 0") || lines[0].ends_with(" 1"),
                "{}",
                lines[0]
            );
        }
    }

    #[test]
    fn the_tiling_depends_on_the_head_dim_alone() {
        let d = dims(&problem(4, 4096, 4096, (32, 32), 128, DType::BF16));
        assert_eq!(
            d,
            Dims {
                grid: (32, 32, 4),
                block: (384, 1, 1),
                shared_bytes: 164_936,
            }
        );
        for hd in HEAD_DIMS {
            let want = dims(&problem(1, 1, 1, (1, 1), hd, DType::F16));
            for (b, sq, skv, h) in [
                (7, 1000, 3, (8, 8)),
                (1, 3, 1000, (32, 4)),
                (9, 129, 1, (2, 1)),
            ] {
                for dtype in [DType::F16, DType::BF16] {
                    let got = dims(&problem(b, sq, skv, h, hd, dtype));
                    assert_eq!(
                        (got.block, got.shared_bytes),
                        (want.block, want.shared_bytes)
                    );
                    assert_eq!(got.grid, (sq.div_ceil(128) as u32, h.0 as u32, b as u32));
                }
            }
        }
    }

    #[test]
    fn tensor_maps_are_four_dimensional_per_batch_entry() {
        let p = problem(3, 200, 77, (8, 2), 128, DType::BF16);
        let [q, k, v] = operands(&p);
        assert_eq!(
            q,
            Operand {
                dims: [128, 8, 200, 3],
                strides: [256, 8 * 256, 200 * 8 * 256],
                box_dims: [64, 1, 128, 1],
            }
        );
        assert_eq!(k.dims, [128, 2, 77, 3]);
        assert_eq!(k.strides, [256, 512, 77 * 512]);
        assert_eq!(k.box_dims, [64, 1, 128, 1]);
        assert_eq!(v.box_dims, [64, 1, 64, 1]);
        // D = 256: 64-key K boxes, four 64-wide d blocks.
        let [q, k, v] = operands(&problem(2, 300, 500, (16, 16), 256, DType::F16));
        assert_eq!(q.box_dims, [64, 1, 128, 1]);
        assert_eq!(k.box_dims, [64, 1, 64, 1]);
        assert_eq!(v.box_dims, [64, 1, 64, 1]);
        assert_eq!(k.dims, [256, 16, 500, 2]);
        assert_eq!(k.strides, [512, 16 * 512, 500 * 16 * 512]);
        // Every stride is a multiple of 16 bytes (TMA), and every box 128 bytes wide (the
        // 128-byte swizzle span).
        for o in [q, k, v] {
            assert!(o.strides.iter().all(|s| s % 16 == 0), "{o:?}");
            assert_eq!(o.box_dims[0], 64);
        }
        // D = 96: boxes 32 elements (64 bytes, the 64-byte swizzle span) wide, rows of 192
        // bytes.
        let [q, k, v] = operands(&problem(2, 300, 500, (8, 2), 96, DType::BF16));
        for o in [q, k, v] {
            assert!(o.strides.iter().all(|s| s % 16 == 0), "{o:?}");
            assert_eq!(o.box_dims[0], 32);
        }
        assert_eq!(k.strides, [192, 2 * 192, 500 * 2 * 192]);
        assert_eq!(
            (q.box_dims[2], k.box_dims[2], v.box_dims[2]),
            (128, 128, 64)
        );
        // No key at all: extents of 1 (nothing is loaded), valid strides.
        let e = operands(&problem(2, 5, 0, (4, 4), 64, DType::F16))[1];
        assert_eq!(e.dims, [64, 4, 1, 2]);
        assert_eq!(e.strides, [128, 512, 512]);
    }

    #[test]
    fn an_h100_runs_it_and_the_limits_are_reasons() {
        let h100 = h100();
        for d in HEAD_DIMS {
            let r = reasons(&h100, problem(2, 300, 500, (8, 2), d, DType::BF16));
            assert_eq!(r, vec![], "{d}");
        }
        for d in [32, 80, 112, 512] {
            let r = reasons(&h100, problem(1, 16, 16, (2, 2), d, DType::BF16));
            assert!(
                matches!(&r[..], [Reason::ShapeUnsupported { what }] if what.contains("head_dim")),
                "{d}: {r:?}"
            );
        }
        let r = reasons(&h100, problem(65536, 1, 1, (1, 1), 64, DType::F16));
        assert!(matches!(&r[..], [Reason::ShapeUnsupported { what }] if what.contains("batch")));
        // 99 KiB per block: D = 64 (81 KiB) fits, D = 128 (161 KiB) and 256 (193 KiB) do
        // not.
        let small = caps(Sm::new(9, 0), 99 << 10);
        assert_eq!(
            reasons(&small, problem(1, 64, 64, (1, 1), 64, DType::F16)),
            vec![]
        );
        for (d, need) in [(128, 164_936), (256, 197_704)] {
            assert_eq!(
                reasons(&small, problem(1, 64, 64, (1, 1), d, DType::F16)),
                vec![Reason::SharedMemory {
                    need,
                    have: 99 << 10
                }]
            );
        }
        // A device one byte short of D = 256's need refuses it and still runs D = 128.
        let short = caps(Sm::new(9, 0), 197_703);
        assert_eq!(
            reasons(&short, problem(1, 64, 64, (1, 1), 256, DType::BF16)),
            vec![Reason::SharedMemory {
                need: 197_704,
                have: 197_703
            }]
        );
        assert_eq!(
            reasons(&short, problem(1, 64, 64, (1, 1), 128, DType::BF16)),
            vec![]
        );
    }

    #[test]
    fn dtypes_and_archs_without_an_entry_point_are_static_reasons() {
        // f32: the static check's reason; check_problem neither panics nor adds one.
        let p = problem(1, 16, 16, (2, 2), 64, DType::F32);
        assert_eq!(reasons(&h100(), p.clone()), vec![]);
        let all = Kernel::check(&ATTENTION_SM90, &h100(), &Problem::Attention(p)).unwrap_err();
        assert!(
            matches!(&all[..], [Reason::DtypeUnsupported { .. }]),
            "{all:?}"
        );
        // Only sm_90 (sm_90a instructions): an A100 and a Blackwell are refused.
        let p = problem(1, 16, 16, (2, 2), 128, DType::BF16);
        for sm in [Sm::new(8, 0), Sm::new(10, 0), Sm::new(12, 0)] {
            assert!(
                Kernel::check(
                    &ATTENTION_SM90,
                    &caps(sm, 227 << 10),
                    &Problem::Attention(p.clone())
                )
                .is_err(),
                "{sm}"
            );
        }
        assert_eq!(
            Kernel::check(&ATTENTION_SM90, &h100(), &Problem::Attention(p)),
            Ok(())
        );
    }
}
