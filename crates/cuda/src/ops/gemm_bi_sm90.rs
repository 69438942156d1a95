//! `cuda.gemm.batch_invariant.sm90`: the batch-invariant, deterministic GEMM for Hopper
//! (`sm_90a`): TMA copies into a four-stage shared-memory ring, `wgmma` into f32 accumulators.
//!
//! - **What it computes.** `C = alpha * op(A) @ op(B) + beta * C` for f16/bf16 A and B, C in
//!   A's dtype or f32, every layout (A and B each transposed or not: the forward `x @ W` and
//!   `x @ W^T`, and both backward products `dC @ W` / `dC @ W^T` and `A^T @ dC`), a batch
//!   (broadcast operands included), any alignment.
//! - **Why it is batch-invariant.** Every element of C is reduced over K in one order that
//!   depends only on N, K and the device: K is cut into `splits` splits (a function of N, K and
//!   the multiprocessor count: `Split`); each split's partial sum runs over its k-tiles of 64
//!   in increasing order, four k16 `wgmma` steps each, into an f32 accumulator started at
//!   zero; C's element is `alpha * ((p_0 + p_1) + ...)` (`+ beta * C`). The block tile
//!   (128 x 256), the stage count and the entry point depend only on the dtypes and
//!   transposes; there is no atomic. Tails are zero-filled (exact zeros in the sum) and stores
//!   are predicated, so a row's bits do not depend on which rows ride with it
//!   (`kernels/gemm_bi_sm90.cu` has the layout details).
//! - **Small M (split-K).** With few row blocks (decode, M = 1..128), splits give the device
//!   more blocks: each block takes one (tile, split), writes its partial sums to the stream's
//!   workspace and a second kernel adds them in split order (`Schedule::Spread`). With many
//!   row blocks a block takes a whole tile and keeps its running sum in a workspace slot of
//!   its own (`Schedule::Serial`). Which schedule runs depends on M; the bits do not (the
//!   same additions in the same order), which `tests/gemm_batch_invariance.rs` checks bitwise.
//! - **Alignment never changes the kernel.** TMA needs 16-byte addresses and strides. With A
//!   transposed (`dB = A^T dC`), A's row stride is M, so that rule would make the kernel, and
//!   with it the bits, depend on M. Instead the launch looks at each operand: one TMA can take
//!   is copied by TMA, any other is loaded by the producer warpgroup into the same swizzled
//!   shared-memory layout (zero-filled the same way), and C's pairs are stored as words only
//!   where aligned. The shared memory the tensor cores read, and every bit of C, are the same
//!   either way; only the speed differs (the manual loads are slower). So the kernel declares
//!   the least alignment (2 bytes) and takes every problem its dtypes allow.
//! - **What it needs.** Compute capability 9.0 exactly (`wgmma` and TMA are `sm_90a`
//!   instructions), sizes TMA's 32-bit coordinates hold and 193 KiB of shared memory per
//!   block. Anything else is rejected with a typed reason, never launched; selection then falls
//!   to the `mma.sync` kernel (`cuda.gemm.batch_invariant`). None of these facts depends on M
//!   in a way that changes the kernel for a problem that differs only in M (the size limits
//!   are far above any M that fits a device).
//! - **Tensor maps** are encoded on the host for each launch (`cuTensorMapEncodeTiled`, a few
//!   microseconds of CPU) and passed by value as `__grid_constant__` parameters.

use std::ffi::c_void;

use cudarc::driver::sys;
use kernelyard_core::ops::gemm::{Gemm, GemmArgs, GemmProblem};
use kernelyard_core::{Capabilities, DType, Error, KernelDef, KernelMeta, LaunchCtx, Reason};

use crate::device::bind;
use crate::error::CudaError;
use crate::launch::{self, Dims};
use crate::ops::gemm::WORKSPACE_BYTES;
use crate::ops::{tensor_core_meta, TensorCores};
use crate::source::{KernelSource, SourceEntry};

/// One module of the kernel: `kernels/gemm_bi_sm90.cu` compiled with `KY_SM90_ONLY` naming
/// the entry points it defines (the file's list, in order).
macro_rules! module {
    ($index:literal, $part:literal, $($symbol:literal),+) => {
        KernelSource {
            file: concat!("gemm_bi_sm90.", $part, ".cu"),
            code: concat!(
                "#define KY_SM90_ONLY ",
                $index,
                "\n",
                include_str!("../../kernels/gemm_bi_sm90.cu")
            ),
            symbols: &[$($symbol),+],
        }
    };
}

/// The kernel's modules, one per GEMM entry point and one for the three reductions, each
/// compiled from `kernels/gemm_bi_sm90.cu` alone: a first use compiles the one kernel it
/// launches (a few seconds of NVRTC), not all nineteen (about a minute on an H100 host's CPU,
/// measured 2026-12-06). Index `8 * split + 4 * f16 + 2 * trans_a + trans_b`; [`REDUCE`] is
/// the last.
pub(crate) static MODULES: [KernelSource; 17] = [
    module!(0, "bf16_nn", "gemm_bi_sm90_bf16_nn"),
    module!(1, "bf16_nt", "gemm_bi_sm90_bf16_nt"),
    module!(2, "bf16_tn", "gemm_bi_sm90_bf16_tn"),
    module!(3, "bf16_tt", "gemm_bi_sm90_bf16_tt"),
    module!(4, "f16_nn", "gemm_bi_sm90_f16_nn"),
    module!(5, "f16_nt", "gemm_bi_sm90_f16_nt"),
    module!(6, "f16_tn", "gemm_bi_sm90_f16_tn"),
    module!(7, "f16_tt", "gemm_bi_sm90_f16_tt"),
    module!(8, "bf16_nn_split", "gemm_bi_sm90_bf16_nn_split"),
    module!(9, "bf16_nt_split", "gemm_bi_sm90_bf16_nt_split"),
    module!(10, "bf16_tn_split", "gemm_bi_sm90_bf16_tn_split"),
    module!(11, "bf16_tt_split", "gemm_bi_sm90_bf16_tt_split"),
    module!(12, "f16_nn_split", "gemm_bi_sm90_f16_nn_split"),
    module!(13, "f16_nt_split", "gemm_bi_sm90_f16_nt_split"),
    module!(14, "f16_tn_split", "gemm_bi_sm90_f16_tn_split"),
    module!(15, "f16_tt_split", "gemm_bi_sm90_f16_tt_split"),
    module!(
        16,
        "reduce",
        "gemm_bi_sm90_reduce_bf16",
        "gemm_bi_sm90_reduce_f16",
        "gemm_bi_sm90_reduce_f32"
    ),
];

/// One FP8 module at the narrow tile width (`KY_SM90_FP8_BN 176` defined before the file, whose
/// own line is a default under `#ifndef`): the same entry point as the wide module of that
/// index, in a module (and cache entry) of its own.
macro_rules! narrow {
    ($index:literal, $part:literal, $symbol:literal) => {
        KernelSource {
            file: concat!("gemm_bi_sm90.", $part, ".n176.cu"),
            code: concat!(
                "#define KY_SM90_ONLY ",
                $index,
                "\n#define KY_SM90_FP8_BN 176\n",
                include_str!("../../kernels/gemm_bi_sm90.cu")
            ),
            symbols: &[$symbol],
        }
    };
}

/// `cuda.scaled_gemm.batch_invariant.sm90`'s modules: the same file's FP8 entry points, one per
/// (A type, B type, out type), index `3 * (2 * a + b) + out` here (e4m3 0, e5m2 1; bf16 0,
/// f16 1, f32 2) and `17 + ` that in the file; then the same twelve at the narrow tile width
/// (`12 + ` that here: `scaled_gemm_sm90::tile_n` says which width a problem takes).
pub(crate) static SCALED_MODULES: [KernelSource; 24] = [
    module!(17, "e4m3_e4m3_bf16", "scaled_gemm_sm90_e4m3_e4m3_bf16"),
    module!(18, "e4m3_e4m3_f16", "scaled_gemm_sm90_e4m3_e4m3_f16"),
    module!(19, "e4m3_e4m3_f32", "scaled_gemm_sm90_e4m3_e4m3_f32"),
    module!(20, "e4m3_e5m2_bf16", "scaled_gemm_sm90_e4m3_e5m2_bf16"),
    module!(21, "e4m3_e5m2_f16", "scaled_gemm_sm90_e4m3_e5m2_f16"),
    module!(22, "e4m3_e5m2_f32", "scaled_gemm_sm90_e4m3_e5m2_f32"),
    module!(23, "e5m2_e4m3_bf16", "scaled_gemm_sm90_e5m2_e4m3_bf16"),
    module!(24, "e5m2_e4m3_f16", "scaled_gemm_sm90_e5m2_e4m3_f16"),
    module!(25, "e5m2_e4m3_f32", "scaled_gemm_sm90_e5m2_e4m3_f32"),
    module!(26, "e5m2_e5m2_bf16", "scaled_gemm_sm90_e5m2_e5m2_bf16"),
    module!(27, "e5m2_e5m2_f16", "scaled_gemm_sm90_e5m2_e5m2_f16"),
    module!(28, "e5m2_e5m2_f32", "scaled_gemm_sm90_e5m2_e5m2_f32"),
    narrow!(17, "e4m3_e4m3_bf16", "scaled_gemm_sm90_e4m3_e4m3_bf16"),
    narrow!(18, "e4m3_e4m3_f16", "scaled_gemm_sm90_e4m3_e4m3_f16"),
    narrow!(19, "e4m3_e4m3_f32", "scaled_gemm_sm90_e4m3_e4m3_f32"),
    narrow!(20, "e4m3_e5m2_bf16", "scaled_gemm_sm90_e4m3_e5m2_bf16"),
    narrow!(21, "e4m3_e5m2_f16", "scaled_gemm_sm90_e4m3_e5m2_f16"),
    narrow!(22, "e4m3_e5m2_f32", "scaled_gemm_sm90_e4m3_e5m2_f32"),
    narrow!(23, "e5m2_e4m3_bf16", "scaled_gemm_sm90_e5m2_e4m3_bf16"),
    narrow!(24, "e5m2_e4m3_f16", "scaled_gemm_sm90_e5m2_e4m3_f16"),
    narrow!(25, "e5m2_e4m3_f32", "scaled_gemm_sm90_e5m2_e4m3_f32"),
    narrow!(26, "e5m2_e5m2_bf16", "scaled_gemm_sm90_e5m2_e5m2_bf16"),
    narrow!(27, "e5m2_e5m2_f16", "scaled_gemm_sm90_e5m2_e5m2_f16"),
    narrow!(28, "e5m2_e5m2_f32", "scaled_gemm_sm90_e5m2_e5m2_f32"),
];

/// The module of the split-K schedule's reductions.
const REDUCE: usize = 16;

const UNSPLIT: &[&dyn kernelyard_core::Kernel] = &[&GEMM_BATCH_INVARIANT_SM90];
const SPLIT_K: &[&dyn kernelyard_core::Kernel] = &[&GEMM_BATCH_INVARIANT_SM90_SPLITK];

/// The backend's source entry for module `i` of [`MODULES`], with the kernel that launches it.
pub(crate) const fn source_entry(i: usize) -> SourceEntry {
    SourceEntry {
        source: &MODULES[i],
        kernels: if i < 8 { UNSPLIT } else { SPLIT_K },
    }
}

/// Rows of C per block.
const BM: usize = 128;
/// Columns of C per block.
const BN: usize = 256;
/// K per pipeline stage (one 128-byte swizzle row of 16-bit elements).
const BK: usize = 64;
/// Pipeline stages.
const STAGES: usize = 4;
/// Threads per block: one producer and two consumer warpgroups.
const THREADS: u32 = 384;
/// The most splits of K (see [`Split`]). 8 was slower at M = 128 and 256 (shorter splits, more
/// partial sums; docs/BENCHMARKS.md, ninth session), faster by 3 % only at M = 1.
const MAX_SPLITS: usize = 4;
/// The fewest k-tiles in a split.
const MIN_CHUNK: usize = 8;
/// Bytes of one block's running-sum slot in the serial schedule (a 128 x 256 f32 tile).
const SLOT_BYTES: usize = BM * BN * 4;
/// Threads per block of the spread schedule's reduction.
const REDUCE_THREADS: u32 = 256;
/// Dynamic shared memory: the stages, 1 KiB of slack for the 1024-byte alignment the swizzle
/// needs, and the full/empty barriers.
pub const SHARED_BYTES: u64 = (STAGES * (BM + BN) * BK * 2 + 1024 + STAGES * 2 * 8) as u64;

/// The `cuda.gemm.batch_invariant.sm90` kernel.
pub static GEMM_BATCH_INVARIANT_SM90: KernelDef<Gemm> = KernelDef::<Gemm>::new(META, launch)
    .with_check(check)
    .with_prepare(prepare);
kernelyard_core::register!(GEMM_BATCH_INVARIANT_SM90);

/// The `cuda.gemm.batch_invariant.sm90.splitk` kernel: the same kernel with K cut into splits
/// by N, K and the device (`Split::of`), for small M. Its bits differ from the unsplit
/// kernel's, so it is a kernel of its own (never a tactic) with a lower priority: constrained
/// selection takes it only when it is named, pinned, or chosen by tuning, whose key has no
/// M under `batch_invariant`, so one choice holds for every M of an (N, K).
pub static GEMM_BATCH_INVARIANT_SM90_SPLITK: KernelDef<Gemm> =
    KernelDef::<Gemm>::new(META_SPLITK, launch_split_k)
        .with_check(check)
        .with_prepare(prepare_split_k);
kernelyard_core::register!(GEMM_BATCH_INVARIANT_SM90_SPLITK);

const META: KernelMeta = tensor_core_meta::<Gemm>(
    "cuda.gemm.batch_invariant.sm90",
    module_path!(),
    "TMA + wgmma tensor-core GEMM (sm_90a); batch-invariant, deterministic",
    TensorCores::Hopper,
    2,
    6,
);

const META_SPLITK: KernelMeta = tensor_core_meta::<Gemm>(
    "cuda.gemm.batch_invariant.sm90.splitk",
    module_path!(),
    "the sm90 invariant GEMM with split-K for small M (splits from N, K and the device, added \
     in a fixed order); batch-invariant, deterministic",
    TensorCores::Hopper,
    2,
    4,
);

/// C in A's dtype or f32, sizes TMA's 32-bit coordinates hold, strides an i64 holds, and
/// [`SHARED_BYTES`] of opt-in shared memory per block. Every layout and alignment is taken
/// (see the module docs).
fn check(caps: &Capabilities, p: &GemmProblem, reasons: &mut Vec<Reason>) {
    if p.c_dtype != p.dtype && p.c_dtype != DType::F32 {
        reasons.push(Reason::ShapeUnsupported {
            what: format!("C of dtype {} with A/B of {}", p.c_dtype, p.dtype),
        });
    }
    // TMA coordinates and the tile index are i32 (a tile count that overflows is above too).
    if [p.m, p.n, p.k, tiles(p).unwrap_or(usize::MAX)]
        .iter()
        .any(|&d| d > i32::MAX as usize)
    {
        reasons.push(Reason::ShapeUnsupported {
            what: "m, n, k or the tile count above 2^31 - 1".to_owned(),
        });
    }
    // Strides are i64 in the kernel (and in the manual loads' address arithmetic).
    if [
        p.lda,
        p.ldb,
        p.ldc,
        p.batch_stride_a,
        p.batch_stride_b,
        p.batch_stride_c,
    ]
    .iter()
    .any(|&s| s > i64::MAX as usize)
    {
        reasons.push(Reason::ShapeUnsupported {
            what: "a row or batch stride above 2^63 - 1".to_owned(),
        });
    }
    if SHARED_BYTES > caps.shared_mem_per_block_optin {
        reasons.push(Reason::SharedMemory {
            need: SHARED_BYTES,
            have: caps.shared_mem_per_block_optin,
        });
    }
}

/// Loads the problem's module (compiling it on first use), so no launch compiles.
fn prepare(_: &KernelMeta, ctx: &LaunchCtx<'_>, p: &GemmProblem) -> Result<(), Error> {
    crate::device::load_symbols(ctx.stream.device(), entry(p, false)?.0)
}

/// Loads the problem's module and the reductions' and makes the stream's workspace (the
/// split-K partial sums), so a launch inside a graph capture makes nothing.
fn prepare_split_k(_: &KernelMeta, ctx: &LaunchCtx<'_>, p: &GemmProblem) -> Result<(), Error> {
    let device = ctx.stream.device();
    crate::device::load_symbols(device, entry(p, true)?.0)?;
    crate::device::load_symbols(device, &MODULES[REDUCE])?;
    bind(device)?;
    crate::ops::gemm::workspace(ctx.stream)?;
    Ok(())
}

/// `cuda.gemm.batch_invariant.sm90`: K in one piece.
fn launch(ctx: &LaunchCtx<'_>, a: &mut GemmArgs<'_>, p: &GemmProblem) -> Result<(), Error> {
    run(ctx, a, p, Split::whole(p))
}

/// `cuda.gemm.batch_invariant.sm90.splitk`: K in `Split::of` splits.
fn launch_split_k(ctx: &LaunchCtx<'_>, a: &mut GemmArgs<'_>, p: &GemmProblem) -> Result<(), Error> {
    run(ctx, a, p, Split::of(p, ctx.caps.multiprocessors))
}

fn run(
    ctx: &LaunchCtx<'_>,
    a: &mut GemmArgs<'_>,
    p: &GemmProblem,
    split: Split,
) -> Result<(), Error> {
    let (module, symbol) = entry(p, split.splits > 1)?;
    let sms = ctx.caps.multiprocessors;
    let schedule = split.schedule(p, sms, WORKSPACE_BYTES);
    // With splits: the stream's workspace, held until both kernels are enqueued, so no other
    // user of it may launch between the partial sums and their reduction.
    let held = if split.splits > 1 {
        bind(ctx.stream.device())?;
        Some(crate::ops::gemm::workspace(ctx.stream)?)
    } else {
        None
    };
    let ws = held
        .as_ref()
        .map_or(std::ptr::null_mut(), |w| w.ptr as *mut c_void);
    let (a_ptr, b_ptr) = (a.a.as_ptr(), a.b.as_ptr());
    let (op_a, op_b) = (operand_a(p), operand_b(p));
    // Each operand by TMA where its address and strides allow, else by manual loads (bit 0:
    // A, bit 1: B); the bits of C are the same either way.
    let mut manual = 0i32;
    let map_a = if tma_takes(a_ptr, &op_a) {
        tensor_map(p.dtype, a_ptr, op_a)?
    } else {
        manual |= 1;
        unused_map()
    };
    let map_b = if tma_takes(b_ptr, &op_b) {
        tensor_map(p.dtype, b_ptr, op_b)?
    } else {
        manual |= 2;
        unused_map()
    };
    let c = a.c.as_mut_ptr();
    let c_pairs = i32::from(pairs_aligned(c as usize, p));
    let (m, n, k) = (p.m as i64, p.n as i64, p.k as i64);
    let (lda, ldb) = (p.lda as i64, p.ldb as i64);
    let (batch_stride_a, batch_stride_b) = (p.batch_stride_a as i64, p.batch_stride_b as i64);
    let (ldc, batch_stride_c) = (p.ldc as i64, p.batch_stride_c as i64);
    let batches = p.batch as i32;
    let a_bcast = i32::from(p.batch == 1 || p.batch_stride_a == 0);
    let b_bcast = i32::from(p.batch == 1 || p.batch_stride_b == 0);
    let (alpha, beta) = (a.alpha, if p.accumulate { a.beta } else { 0.0 });
    let accumulate = i32::from(p.accumulate);
    let c_f32 = i32::from(p.c_dtype == DType::F32);
    let (splits, chunk) = (split.splits as i32, split.chunk as i32);
    let spread = i32::from(schedule == Schedule::Spread);
    let dims = Dims {
        grid: (schedule.grid(p, &split, sms), 1, 1),
        block: (THREADS, 1, 1),
        shared_bytes: SHARED_BYTES as u32,
    };
    // SAFETY: the parameters match `gemm_bi_sm90_*(KyTensorMap x2, const void*, long long x2,
    // const void*, long long x2, int, void*, long long x5, int x3, float x2, int x6, float*)`:
    // `ws` is null with one split (never read then) or the stream's own workspace (used by
    // work on this stream only, in order), and
    // `Split::schedule` keeps what the schedule writes there within WORKSPACE_BYTES: the spread
    // partial sums ([splits][batch][m][n] f32) or one SLOT_BYTES slot per block; the
    // maps are 128-byte values copied into the parameter space, describing A and B exactly as
    // core validated them (shape, strides, dtype, device), or zeros for an operand in
    // `manual`, whose map the kernel never reads; the manual loads read A and B only inside
    // their validated extents (`lda`, `ldb` and the batch strides are the validated ones);
    // C is written only inside [m, n] of each batch, within bounds core checked, and read
    // only when `accumulate`; pairs are stored as one word only when `pairs_aligned` says
    // every such word is aligned.
    unsafe {
        launch::launch(
            ctx.stream,
            module,
            symbol,
            dims,
            &mut kernelyard_kernels::params![
                map_a,
                map_b,
                a_ptr,
                lda,
                batch_stride_a,
                b_ptr,
                ldb,
                batch_stride_b,
                manual,
                c,
                m,
                n,
                k,
                ldc,
                batch_stride_c,
                batches,
                a_bcast,
                b_bcast,
                alpha,
                beta,
                accumulate,
                c_f32,
                c_pairs,
                splits,
                chunk,
                spread,
                ws
            ],
        )?;
    }
    if schedule == Schedule::Spread {
        reduce(ctx, a, p, &split, ws)?;
    }
    drop(held);
    Ok(())
}

/// The spread schedule's second kernel: C from the partial sums in `ws`, added in split order.
fn reduce(
    ctx: &LaunchCtx<'_>,
    a: &mut GemmArgs<'_>,
    p: &GemmProblem,
    split: &Split,
    ws: *mut c_void,
) -> Result<(), Error> {
    let symbol = MODULES[REDUCE].symbols[match p.c_dtype {
        DType::BF16 => 0,
        DType::F16 => 1,
        _ => 2,
    }];
    let total = p.batch.saturating_mul(p.m).saturating_mul(p.n);
    let blocks = total
        .div_ceil(REDUCE_THREADS as usize)
        .clamp(1, ctx.caps.multiprocessors.max(1) as usize * 8) as u32;
    let c = a.c.as_mut_ptr();
    let (m, n) = (p.m as i64, p.n as i64);
    let (ldc, batch_stride_c) = (p.ldc as i64, p.batch_stride_c as i64);
    let (batches, splits) = (p.batch as i32, split.splits as i32);
    let (alpha, beta) = (a.alpha, if p.accumulate { a.beta } else { 0.0 });
    let accumulate = i32::from(p.accumulate);
    let dims = Dims {
        grid: (blocks, 1, 1),
        block: (REDUCE_THREADS, 1, 1),
        shared_bytes: 0,
    };
    // SAFETY: the parameters match `gemm_bi_sm90_reduce_*(const float*, void*, long long x4,
    // int x2, float x2, int)`; `ws` holds the [splits][batch][m][n] partial sums the GEMM
    // kernel just wrote on this stream (within the workspace: `Split::schedule`); C is written
    // inside [m, n] of each batch, within bounds core checked, and read only when
    // `accumulate`.
    unsafe {
        launch::launch(
            ctx.stream,
            &MODULES[REDUCE],
            symbol,
            dims,
            &mut kernelyard_kernels::params![
                ws as *const c_void,
                c,
                m,
                n,
                ldc,
                batch_stride_c,
                batches,
                splits,
                alpha,
                beta,
                accumulate
            ],
        )
    }
}

/// How K is cut: `splits` splits of `chunk` k-tiles (the last may be shorter), a function of
/// N, K and the device's multiprocessor count alone, never of M or the batch, so every row of
/// C is summed in the same order whatever rides with it. Splits are there for small M: with
/// few row blocks, `multiprocessors / column blocks` splits (at most [`MAX_SPLITS`], each of
/// [`MIN_CHUNK`] k-tiles or more) give the device more blocks. C's element is
/// `value(((p_0 + p_1) + ...))` of the splits' partial sums, whichever [`Schedule`] runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Split {
    splits: usize,
    chunk: usize,
}

impl Split {
    /// K in one piece.
    fn whole(p: &GemmProblem) -> Split {
        let ktiles = p.k.div_ceil(BK).max(1);
        Split {
            splits: 1,
            chunk: ktiles,
        }
    }

    fn of(p: &GemmProblem, multiprocessors: u32) -> Split {
        let ktiles = p.k.div_ceil(BK).max(1);
        let tiles_n = p.n.div_ceil(BN).max(1);
        let want = (multiprocessors as usize / tiles_n)
            .min(MAX_SPLITS)
            .min(ktiles / MIN_CHUNK)
            .max(1);
        let chunk = ktiles.div_ceil(want);
        Split {
            splits: ktiles.div_ceil(chunk),
            chunk,
        }
    }

    /// The schedule for `p`: spread when there are splits, the tiles alone would leave
    /// multiprocessors idle and the partial sums fit `workspace` bytes; serial otherwise. The
    /// choice depends on M, the bits do not (the kernel's comment says why).
    fn schedule(&self, p: &GemmProblem, multiprocessors: u32, workspace: usize) -> Schedule {
        let partials = self
            .splits
            .checked_mul(p.batch)
            .and_then(|x| x.checked_mul(p.m))
            .and_then(|x| x.checked_mul(p.n))
            .and_then(|x| x.checked_mul(4));
        let few_tiles = tiles(p).is_some_and(|t| t < multiprocessors as usize);
        match partials {
            Some(bytes) if self.splits > 1 && few_tiles && bytes <= workspace => Schedule::Spread,
            _ => Schedule::Serial,
        }
    }
}

/// Who computes a tile's splits (see the kernel's "Split-K" comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Schedule {
    /// A block takes a whole tile, keeping its running sum in its own workspace slot.
    Serial,
    /// A block takes one (tile, split); a second kernel adds the splits.
    Spread,
}

impl Schedule {
    /// The persistent grid: at most one block per SM (the shared memory allows no more), per
    /// work unit, and (serial, with splits) per workspace slot. Which block computes a unit
    /// does not change its arithmetic.
    fn grid(self, p: &GemmProblem, split: &Split, multiprocessors: u32) -> u32 {
        let sms = multiprocessors.max(1) as usize;
        let units = match self {
            Schedule::Serial => tiles(p),
            Schedule::Spread => tiles(p).and_then(|t| t.checked_mul(split.splits)),
        };
        let slots = WORKSPACE_BYTES / SLOT_BYTES;
        units.map_or(sms, |u| u.min(sms)).min(slots).max(1) as u32
    }
}

/// The module and entry point for the problem's dtype and layout, with the split-K code or
/// without it (K in one piece: the code is compiled out).
fn entry(p: &GemmProblem, split: bool) -> Result<(&'static KernelSource, &'static str), Error> {
    let dtype = match p.dtype {
        DType::BF16 => 0,
        DType::F16 => 4,
        other => {
            return Err(CudaError::Misuse {
                what: format!("{} on {other}", META.name),
            }
            .into())
        }
    };
    let layout = 2 * usize::from(p.trans_a) + usize::from(p.trans_b);
    let module = &MODULES[8 * usize::from(split) + dtype + layout];
    Ok((module, module.symbols[0]))
}

/// A tensor map for an operand the kernel loads itself: never read.
fn unused_map() -> sys::CUtensorMap {
    sys::CUtensorMap { opaque: [0; 16] }
}

/// Whether TMA can copy an operand at `ptr`: a 16-byte aligned address, and row and batch
/// strides that are multiples of 16 bytes where they are stepped over (the strides of unit
/// dimensions are replaced, see [`stride_bytes`]).
fn tma_takes(ptr: *const c_void, o: &Operand) -> bool {
    let stepped = |stride: usize, extent: usize| extent == 1 || stride.is_multiple_of(8);
    (ptr as usize).is_multiple_of(16)
        && stepped(o.row_stride, o.dims[1])
        && stepped(o.batch_stride, o.dims[2])
}

/// Whether every pair of C the epilogue writes (row `r`, even column `j`) starts on a multiple
/// of twice the element size: C's address, `ldc` and (batched) its batch stride keep it so.
fn pairs_aligned(c: usize, p: &GemmProblem) -> bool {
    let elem = p.c_dtype.size().max(1);
    c.is_multiple_of(2 * elem)
        && p.ldc.is_multiple_of(2)
        && (p.batch == 1 || p.batch_stride_c.is_multiple_of(2))
}

/// Tiles of C over every batch, if that count fits a `usize`.
fn tiles(p: &GemmProblem) -> Option<usize> {
    p.m.div_ceil(BM)
        .checked_mul(p.n.div_ceil(BN))?
        .checked_mul(p.batch)
}

/// One operand as TMA sees it: `[inner, outer, batch]` extents, the row and batch strides in
/// elements, and the box (inner, outer) a copy moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Operand {
    pub(crate) dims: [usize; 3],
    pub(crate) row_stride: usize,
    pub(crate) batch_stride: usize,
    pub(crate) box_dims: [u32; 2],
}

/// A: stored `[m, k]` (K-major, one box of 64 k by 128 rows) or, transposed, `[k, m]`
/// (M-major, two boxes of 64 m by 64 k rows).
fn operand_a(p: &GemmProblem) -> Operand {
    let (dims, box_dims) = if p.trans_a {
        ([p.m, p.k], [64, BK as u32])
    } else {
        ([p.k, p.m], [BK as u32, BM as u32])
    };
    operand(p, dims, p.lda, p.batch_stride_a, box_dims)
}

/// B: stored `[n, k]` when transposed (K-major, one box of 64 k by 256 rows) or `[k, n]`
/// (N-major, boxes of 64 n by 64 k rows).
fn operand_b(p: &GemmProblem) -> Operand {
    let [rows, cols] = p.b_dims();
    let box_dims = if p.trans_b {
        [BK as u32, BN as u32]
    } else {
        [64, BK as u32]
    };
    operand(p, [cols, rows], p.ldb, p.batch_stride_b, box_dims)
}

fn operand(
    p: &GemmProblem,
    [inner, outer]: [usize; 2],
    row_stride: usize,
    batch_stride: usize,
    box_dims: [u32; 2],
) -> Operand {
    // A broadcast (or unbatched) operand is one matrix; the kernel reads batch coordinate 0.
    let (batches, batch_stride) = if p.batch > 1 && batch_stride != 0 {
        (p.batch, batch_stride)
    } else {
        // The matrix's span (core checked it fits; saturating for any other problem).
        (1, outer.saturating_mul(row_stride))
    };
    Operand {
        dims: [inner, outer, batches],
        row_stride,
        batch_stride,
        box_dims,
    }
}

/// The byte stride of a dimension for the tensor map. A dimension of extent 1 is never
/// stepped over, so its stride (which core's alignment ignores, and which may be anything, even
/// smaller than the row) is replaced by the smallest valid one: a multiple of 16 bytes that
/// covers the elements before it.
fn stride_bytes(stride: usize, extent: usize, inner: usize, elem: u64) -> u64 {
    // Saturating: core bounds every stride's bytes by `isize::MAX`; any other value gives a
    // stride the driver refuses rather than a panic.
    let bytes = (stride as u64).saturating_mul(elem);
    if extent == 1 {
        let bytes = (stride.max(inner) as u64).saturating_mul(elem);
        bytes.checked_next_multiple_of(16).unwrap_or(bytes)
    } else {
        bytes
    }
}

/// Encodes a 3-D tiled tensor map with the 128-byte swizzle and zero fill out of bounds (FP8
/// operands as bytes).
pub(crate) fn tensor_map(
    dtype: DType,
    ptr: *const c_void,
    o: Operand,
) -> Result<sys::CUtensorMap, Error> {
    use sys::CUtensorMapDataType as Ty;
    let (ty, elem) = match dtype {
        DType::BF16 => (Ty::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2),
        DType::F8E4M3 | DType::F8E5M2 => (Ty::CU_TENSOR_MAP_DATA_TYPE_UINT8, 1),
        _ => (Ty::CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2),
    };
    let dims = o.dims.map(|d| d as u64);
    // Byte strides of dimensions 1 and 2 (dimension 0 is contiguous).
    let strides = [
        stride_bytes(o.row_stride, o.dims[1], o.dims[0], elem),
        stride_bytes(
            o.batch_stride,
            o.dims[2],
            o.dims[0].saturating_mul(o.dims[1]),
            elem,
        ),
    ];
    let box_dims = [o.box_dims[0], o.box_dims[1], 1];
    let element_strides = [1u32; 3];
    let mut map = std::mem::MaybeUninit::<sys::CUtensorMap>::uninit();
    // SAFETY: every array has the rank's length (3 dims, 3 box extents and element strides,
    // 2 strides); `ptr` is the operand's device address, 16-byte aligned (the kernel declares
    // `align: 16`); the call only writes `map`, which is used only if it succeeded.
    let rc = unsafe {
        sys::cuTensorMapEncodeTiled(
            map.as_mut_ptr(),
            ty,
            3,
            ptr as *mut c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            box_dims.as_ptr(),
            element_strides.as_ptr(),
            sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
            sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    };
    crate::error::drv("cuTensorMapEncodeTiled", rc.result())?;
    // SAFETY: the call succeeded, so it initialized the map.
    Ok(unsafe { map.assume_init() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelyard_core::{Kernel, Problem};

    fn problem(m: usize, n: usize, k: usize, ta: bool, tb: bool) -> GemmProblem {
        GemmProblem {
            batch: 1,
            m,
            n,
            k,
            trans_a: ta,
            trans_b: tb,
            dtype: DType::BF16,
            c_dtype: DType::BF16,
            lda: if ta { m } else { k },
            ldb: if tb { k } else { n },
            ldc: n,
            batch_stride_a: 0,
            batch_stride_b: 0,
            batch_stride_c: 0,
            accumulate: false,
            align: 16,
        }
    }

    #[test]
    fn symbols_follow_dtype_and_transposes() {
        let symbol = |p: &GemmProblem, split: bool| entry(p, split).map(|(_, s)| s);
        let mut p = problem(8, 8, 8, false, true);
        assert_eq!(symbol(&p, false).unwrap(), "gemm_bi_sm90_bf16_nt");
        p.trans_a = true;
        assert_eq!(symbol(&p, false).unwrap(), "gemm_bi_sm90_bf16_tt");
        assert_eq!(symbol(&p, true).unwrap(), "gemm_bi_sm90_bf16_tt_split");
        p.dtype = DType::F16;
        p.trans_b = false;
        assert_eq!(symbol(&p, false).unwrap(), "gemm_bi_sm90_f16_tn");
        p.trans_a = false;
        assert_eq!(symbol(&p, false).unwrap(), "gemm_bi_sm90_f16_nn");
        assert_eq!(symbol(&p, true).unwrap(), "gemm_bi_sm90_f16_nn_split");
        assert_eq!(
            entry(&p, true).unwrap().0.file,
            "gemm_bi_sm90.f16_nn_split.cu"
        );
        p.dtype = DType::F32;
        assert!(symbol(&p, false).is_err());
    }

    /// Each module defines exactly its listed entry points: the `.cu` guards each one with
    /// `#if KY_SM90_WANT(i)`, `i` being the module's index in [`MODULES`].
    #[test]
    fn each_module_index_guards_its_own_entry_points() {
        let code = MODULES[0].code;
        let all: Vec<&KernelSource> = MODULES.iter().chain(SCALED_MODULES.iter()).collect();
        let mut defined: Vec<Vec<&str>> = vec![Vec::new(); all.len()];
        let mut lines = code.lines();
        while let Some(line) = lines.next() {
            let Some(i) = line
                .strip_prefix("#if KY_SM90_WANT(")
                .and_then(|r| r.strip_suffix(')'))
            else {
                continue;
            };
            let i: usize = i.parse().unwrap();
            let def = lines.next().unwrap();
            let name = def.split(['(', ',']).nth(1).unwrap();
            defined[i].push(name);
        }
        for (i, module) in all.iter().enumerate() {
            // The narrow FP8 modules repeat the wide ones' indices.
            let i = if i >= MODULES.len() + 12 { i - 12 } else { i };
            assert_eq!(defined[i], module.symbols, "module {i}");
            assert!(module
                .code
                .starts_with(&format!("#define KY_SM90_ONLY {i}\n")));
        }
    }

    #[test]
    fn strides_of_unit_dimensions_are_made_valid() {
        // m = k = 1: one element per row, row stride 1 (2 bytes): never stepped, so 16.
        assert_eq!(stride_bytes(1, 1, 1, 2), 16);
        // One FP8 byte: 16 too.
        assert_eq!(stride_bytes(1, 1, 1, 1), 16);
        // One row of 521 elements with any stride: the row's bytes rounded up to 16.
        assert_eq!(stride_bytes(3, 1, 521, 2), 1056);
        // Real strides are kept (the kernel's alignment rule made them multiples of 16).
        assert_eq!(stride_bytes(72, 5, 72, 2), 144);
        assert_eq!(stride_bytes(4096, 7, 4096, 1), 4096);
    }

    #[test]
    fn operands_put_the_contiguous_dimension_first() {
        let p = problem(100, 300, 72, false, false);
        // A [100, 72] K-major: one box of 64 k x 128 rows.
        assert_eq!(
            operand_a(&p),
            Operand {
                dims: [72, 100, 1],
                row_stride: 72,
                batch_stride: 7200,
                box_dims: [64, 128]
            }
        );
        // B [72, 300] N-major: boxes of 64 n x 64 k.
        assert_eq!(operand_b(&p).dims, [300, 72, 1]);
        assert_eq!(operand_b(&p).box_dims, [64, 64]);
        let t = problem(100, 300, 72, false, true);
        assert_eq!(operand_b(&t).dims, [72, 300, 1]);
        assert_eq!(operand_b(&t).box_dims, [64, 256]);
    }

    #[test]
    fn grid_and_shared_memory_do_not_depend_on_anything_but_the_work() {
        let grid = |p: &GemmProblem| {
            let split = Split::of(p, 132);
            split.schedule(p, 132, WORKSPACE_BYTES).grid(p, &split, 132)
        };
        // One row, N = 4096, K = 4096: 16 tiles, 4 splits each, spread.
        assert_eq!(grid(&problem(1, 4096, 4096, false, false)), 64);
        // K = 64: one k-tile, no split: one block per tile.
        assert_eq!(grid(&problem(129, 257, 64, false, false)), 4);
        assert_eq!(grid(&problem(4096, 4096, 4096, false, false)), 132);
        // 4 stages of (128 + 256) x 64 bf16, alignment slack and 8 barriers: fits an H100's
        // 227 KiB opt-in, not an sm_86's 99 KiB.
        assert_eq!(SHARED_BYTES, 197_696);
    }

    #[test]
    fn splits_depend_on_n_k_and_the_device_never_on_m_or_the_batch() {
        for (n, k, sms, want) in [
            // 16 column blocks on 132 SMs: 8 would fit, at most 4 (8 measured slower at
            // M = 128 and 256: docs/BENCHMARKS.md); 64 k-tiles in 4 of 16.
            (
                4096,
                4096,
                132,
                Split {
                    splits: 4,
                    chunk: 16,
                },
            ),
            // 56 column blocks: 2 splits of 32 k-tiles.
            (
                14336,
                4096,
                132,
                Split {
                    splits: 2,
                    chunk: 32,
                },
            ),
            // As many column blocks as SMs: no split.
            (
                33792,
                4096,
                132,
                Split {
                    splits: 1,
                    chunk: 64,
                },
            ),
            // K of 15 k-tiles: a split needs 8, so one.
            (
                4096,
                960,
                132,
                Split {
                    splits: 1,
                    chunk: 15,
                },
            ),
            // 17 k-tiles, 2 wanted: chunks of 9 and 8.
            (
                4096,
                1088,
                132,
                Split {
                    splits: 2,
                    chunk: 9,
                },
            ),
            // A smaller device: 78 / 16 = 4.
            (
                4096,
                4096,
                78,
                Split {
                    splits: 4,
                    chunk: 16,
                },
            ),
            (
                4096,
                4096,
                40,
                Split {
                    splits: 2,
                    chunk: 32,
                },
            ),
        ] {
            for m in [1, 17, 128, 1000, 4096] {
                for batch in [1, 3] {
                    let mut p = problem(m, n, k, false, true);
                    p.batch = batch;
                    assert_eq!(Split::of(&p, sms), want, "n={n} k={k} sms={sms} m={m}");
                }
            }
        }
        // Never an empty split: (splits - 1) * chunk < k-tiles <= splits * chunk.
        for k in (64..=8192).step_by(64) {
            let s = Split::of(&problem(1, 4096, k, false, false), 132);
            let ktiles = k / 64;
            assert!(
                (s.splits - 1) * s.chunk < ktiles && ktiles <= s.splits * s.chunk,
                "{k}"
            );
        }
    }

    #[test]
    fn the_schedule_spreads_few_tiles_whose_partials_fit() {
        let sched = |m: usize, ws: usize| {
            let p = problem(m, 4096, 4096, false, true);
            Split::of(&p, 132).schedule(&p, 132, ws)
        };
        assert_eq!(sched(1, WORKSPACE_BYTES), Schedule::Spread);
        assert_eq!(sched(128, WORKSPACE_BYTES), Schedule::Spread);
        // 4 splits x 512 x 4096 f32 = 32 MiB: fits exactly; 513 rows do not.
        assert_eq!(sched(512, WORKSPACE_BYTES), Schedule::Spread);
        assert_eq!(sched(513, WORKSPACE_BYTES), Schedule::Serial);
        // 9 row blocks x 16 = 144 tiles: enough for the device alone.
        assert_eq!(sched(1025, 1 << 40), Schedule::Serial);
        assert_eq!(sched(1, 1024), Schedule::Serial);
        // No split: serial, whatever M.
        let p = problem(1, 4096, 448, false, true);
        assert_eq!(
            Split::of(&p, 132).schedule(&p, 132, WORKSPACE_BYTES),
            Schedule::Serial
        );
        // Serial grids never exceed the workspace's slots.
        const { assert!(WORKSPACE_BYTES / SLOT_BYTES >= 132) };
    }

    #[test]
    fn checks_give_typed_reasons() {
        let mut caps = Capabilities::host();
        caps.shared_mem_per_block_optin = 101_376;
        let mut p = problem(64, 64, 64, true, false);
        p.c_dtype = DType::F16;
        let mut reasons = Vec::new();
        GEMM_BATCH_INVARIANT_SM90.check_problem(&caps, &Problem::Gemm(p), &mut reasons);
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons
            .iter()
            .any(|r| matches!(r, Reason::SharedMemory { need: 197_696, .. })));
        assert!(reasons
            .iter()
            .any(|r| matches!(r, Reason::ShapeUnsupported { .. })));
    }

    #[test]
    fn every_layout_and_alignment_is_taken() {
        let caps = kernelyard_core::presets::simulate("h100").unwrap();
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            for (m, k) in [(1, 9), (17, 65), (4096, 4096)] {
                let mut p = problem(m, 72, k, ta, tb);
                p.align = 2;
                let mut reasons = Vec::new();
                GEMM_BATCH_INVARIANT_SM90.check_problem(&caps, &Problem::Gemm(p), &mut reasons);
                assert!(reasons.is_empty(), "{ta} {tb} {m} {k}: {reasons:?}");
            }
        }
    }

    #[test]
    fn operands_tma_cannot_copy_are_loaded_by_hand() {
        let aligned = 0x1000 as *const c_void;
        // dB = A^T dC with A's row stride M: TMA for M a multiple of 8 only.
        let p = problem(136, 72, 200, true, false);
        assert_eq!(operand_a(&p).dims, [136, 200, 1]);
        assert_eq!(operand_a(&p).box_dims, [64, 64]);
        assert!(tma_takes(aligned, &operand_a(&p)));
        let odd = problem(17, 72, 200, true, false);
        assert!(!tma_takes(aligned, &operand_a(&odd)));
        // One row of A (m = 1, not transposed): its stride is never stepped.
        let one = problem(1, 72, 9, false, false);
        assert!(tma_takes(aligned, &operand_a(&one)));
        // A misaligned address.
        assert!(!tma_takes(0x1002 as *const c_void, &operand_a(&p)));
        // C's pairs: an odd ldc or an address off a pair's size stores element by element.
        let mut c = problem(8, 72, 8, false, false);
        assert!(pairs_aligned(0x1000, &c));
        assert!(!pairs_aligned(0x1002, &c));
        c.ldc = 73;
        assert!(!pairs_aligned(0x1000, &c));
        c.ldc = 72;
        c.c_dtype = DType::F32;
        assert!(!pairs_aligned(0x1004, &c));
        assert!(pairs_aligned(0x1008, &c));
    }
}
