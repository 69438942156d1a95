//! `cuda.gemm.batch_invariant`: `C = alpha * op(A) @ op(B) + beta * C` on tensor cores
//! (`mma.sync.m16n8k16`, sm_80 and newer) with one fixed reduction order, from
//! `kernels/gemm_bi.cu`.
//!
//! - **What it computes.** f16 or bf16 A and B (the same dtype), f32 accumulation, C in A's
//!   dtype or f32; all four transpose combinations; a batch (an operand with batch stride 0 is
//!   broadcast); any `M, N, K >= 1` (tails are predicated: out-of-range loads are zero-filled,
//!   out-of-range stores skipped); with `accumulate` false C is never read (it may hold NaN).
//! - **Design.** One configuration for every problem: block tile `BM x BN x BK` = 128 x 128 x
//!   32, [`THREADS`] = 256 threads as 2 x 4 warps of 64 x 32 outputs, a [`STAGES`]-stage
//!   shared-memory pipeline ([`SHARED_BYTES`] = 80 KiB of dynamic shared memory, so sm_86,
//!   sm_89 and sm_120, with 99 KiB per block, run it too), fragments by `ldmatrix` (`.trans`
//!   for the operand stored MN-major: A when transposed, B when not), and at most 128
//!   registers per thread, so two blocks share an SM where its shared memory allows (sm_80,
//!   sm_90, sm_100). One block per (batch entry, 128 x 128 tile of C), in a 1-D grid
//!   ([`GemmBiPlan`]).
//! - **Why it is batch-invariant.** Every element of C is computed by one thread, in one f32
//!   accumulator that starts at zero and takes, for the k-tiles of 32 in increasing order, two
//!   m16n8k16 steps each (k = 32 t + 0..15, then 32 t + 16..31); elements past K are exact
//!   zeros. That sequence depends on K alone: not on M or the batch (no configuration choice, no
//!   split-K, no atomics), not on which block or warp or fragment row holds the element. The
//!   epilogue is `v = alpha * acc`, then `v = fma(beta, c, v)` when accumulating, written with
//!   explicit round-to-nearest intrinsics, so every store path computes the same bits. A row of
//!   C therefore has the same bits whatever batch it rides in, and every run the same bits.
//! - **Alignment.** When `problem.align == 16` (every pointer, row stride and batch stride a
//!   multiple of 16 bytes) the `_v` entry points copy whole 16-byte chunks with `cp.async`;
//!   otherwise the `_s` ones read element by element. Both fill shared memory with the same
//!   values and run the same `mma` sequence and epilogue arithmetic, so the choice, which can
//!   depend on M through a row or batch stride (`lda = M` when A is transposed), never changes
//!   a bit of C.
//!
//! Responsibility: core validated the views into the [`GemmProblem`] (shapes, strides, one
//! device, C not overlapping A or B, finite alpha and beta); the kernel's check rejects
//! what the launch cannot do (C in another dtype, a grid beyond 2^31 - 1 blocks, a device with
//! less shared memory per block than [`SHARED_BYTES`]); the kernel assumes valid inputs.

use kernelyard_core::ops::gemm::{Gemm, GemmArgs, GemmProblem};
use kernelyard_core::{Capabilities, DType, Error, KernelDef, KernelMeta, LaunchCtx, Reason};

use crate::error::CudaError;
use crate::launch::{CudaLauncher, Dims};
use crate::ops::{tensor_core_meta, TensorCores};
use crate::source::KernelSource;

/// The kernel source and its entry points, `gemm_bi_<dtype>_<op(A)><op(B)>_<path>`: `n` for an
/// operand used as stored, `t` transposed; path `v` (16-byte `cp.async`) or `s` (element
/// loads). The order is the one [`plan`] indexes.
pub(crate) static SOURCE: KernelSource = KernelSource {
    file: "gemm_bi.cu",
    code: include_str!("../../kernels/gemm_bi.cu"),
    symbols: &[
        "gemm_bi_f16_nn_v",
        "gemm_bi_f16_nt_v",
        "gemm_bi_f16_tn_v",
        "gemm_bi_f16_tt_v",
        "gemm_bi_f16_nn_s",
        "gemm_bi_f16_nt_s",
        "gemm_bi_f16_tn_s",
        "gemm_bi_f16_tt_s",
        "gemm_bi_bf16_nn_v",
        "gemm_bi_bf16_nt_v",
        "gemm_bi_bf16_tn_v",
        "gemm_bi_bf16_tt_v",
        "gemm_bi_bf16_nn_s",
        "gemm_bi_bf16_nt_s",
        "gemm_bi_bf16_tn_s",
        "gemm_bi_bf16_tt_s",
    ],
};

/// Rows of C per block (`gbi::BM` in the kernel).
pub const BM: usize = 128;
/// Columns of C per block (`gbi::BN`).
pub const BN: usize = 128;
/// K per pipeline stage (`gbi::BK`).
pub const BK: usize = 32;
/// Pipeline stages (`gbi::STAGES`).
pub const STAGES: usize = 4;
/// Threads per block (`gbi::THREADS`): 8 warps.
pub const THREADS: u32 = 256;
/// Elements of padding per shared-memory row (`gbi::PAD`).
const PAD: usize = 8;

/// Dynamic shared memory per block, bytes (`gbi::SMEM_BYTES`): per stage, an A tile and a B
/// tile of 16-bit elements, each in the larger of its two layouts (`BM` rows of `BK + PAD`
/// when K-major, `BK` rows of `BM + PAD` when MN-major).
pub const SHARED_BYTES: u32 = {
    let k_major = BM * (BK + PAD);
    let mn_major = BK * (BM + PAD);
    let operand = if k_major > mn_major {
        k_major
    } else {
        mn_major
    };
    (STAGES * 2 * operand * 2) as u32
};

/// The `cuda.gemm.batch_invariant` kernel.
pub static GEMM_BATCH_INVARIANT: KernelDef<Gemm> = KernelDef::<Gemm>::new(META, launch)
    .with_check(check)
    .with_prepare(crate::ops::prepare_nvrtc::<Gemm>);
kernelyard_core::register!(GEMM_BATCH_INVARIANT);

const META: KernelMeta = tensor_core_meta::<Gemm>(
    "cuda.gemm.batch_invariant",
    module_path!(),
    "mma.sync tensor-core GEMM (sm_80+), one fixed K order; batch-invariant, deterministic",
    TensorCores::MmaSync,
    1,
    5,
);

/// How [`GEMM_BATCH_INVARIANT`] launches one problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmBiPlan {
    /// The entry point.
    pub symbol: &'static str,
    /// Whether it is a 16-byte (`_v`) entry point.
    pub vec: bool,
    /// Blocks: `batch * ceil(m / BM) * ceil(n / BN)`, one per (batch entry, tile of C).
    pub blocks: usize,
}

impl GemmBiPlan {
    /// The launch shape (the caller has checked `blocks` fits a grid: [`check_shape`]).
    pub fn dims(&self) -> Dims {
        Dims {
            grid: (self.blocks.min(i32::MAX as usize) as u32, 1, 1),
            block: (THREADS, 1, 1),
            shared_bytes: SHARED_BYTES,
        }
    }
}

/// Blocks the problem needs, if that count fits a `usize`.
fn blocks(p: &GemmProblem) -> Option<usize> {
    p.m.div_ceil(BM)
        .checked_mul(p.n.div_ceil(BN))?
        .checked_mul(p.batch)
}

/// The launch plan of `p`, or `None` for an A/B dtype the kernel does not handle. The entry
/// point depends on the dtype, the transposes and the alignment; the shape on nothing else
/// but the block count.
pub fn plan(p: &GemmProblem) -> Option<GemmBiPlan> {
    let dtype = match p.dtype {
        DType::F16 => 0,
        DType::BF16 => 1,
        _ => return None,
    };
    let vec = p.align >= 16;
    let index = dtype * 8
        + if vec { 0 } else { 4 }
        + if p.trans_a { 2 } else { 0 }
        + usize::from(p.trans_b);
    Some(GemmBiPlan {
        symbol: SOURCE.symbols[index],
        vec,
        blocks: blocks(p).unwrap_or(usize::MAX),
    })
}

/// Pushes a reason for each part of `p` the launch cannot pass: C in a dtype other than A's
/// or f32, a size or stride beyond `i64` (the kernel's `long long`), more than 2^31 - 1 blocks.
pub fn check_shape(p: &GemmProblem, reasons: &mut Vec<Reason>) {
    if p.c_dtype != p.dtype && p.c_dtype != DType::F32 {
        reasons.push(Reason::ShapeUnsupported {
            what: format!("C of dtype {} with A/B of {}", p.c_dtype, p.dtype),
        });
    }
    let sizes = [
        p.m,
        p.n,
        p.k,
        p.lda,
        p.ldb,
        p.ldc,
        p.batch_stride_a,
        p.batch_stride_b,
        p.batch_stride_c,
    ];
    if sizes.iter().any(|&s| s > i64::MAX as usize / 4) {
        reasons.push(Reason::ShapeUnsupported {
            what: "a dimension or stride beyond 2^61 elements (64-bit byte offsets)".to_owned(),
        });
    }
    match blocks(p) {
        Some(b) if b <= i32::MAX as usize => {}
        b => reasons.push(Reason::ShapeUnsupported {
            what: format!(
                "{} blocks of {BM} x {BN} outputs for batch {} of {} x {} (at most 2^31 - 1)",
                b.map_or_else(|| "more than 2^64".to_owned(), |b| b.to_string()),
                p.batch,
                p.m,
                p.n
            ),
        }),
    }
}

/// [`check_shape`], and the device's opt-in shared memory per block holds [`SHARED_BYTES`].
fn check(caps: &Capabilities, p: &GemmProblem, reasons: &mut Vec<Reason>) {
    check_shape(p, reasons);
    if u64::from(SHARED_BYTES) > caps.shared_mem_per_block_optin {
        reasons.push(Reason::SharedMemory {
            need: u64::from(SHARED_BYTES),
            have: caps.shared_mem_per_block_optin,
        });
    }
}

fn launch(ctx: &LaunchCtx<'_>, a: &mut GemmArgs<'_>, p: &GemmProblem) -> Result<(), Error> {
    let plan = plan(p).ok_or_else(|| CudaError::Misuse {
        what: format!("{} launched for {} A/B", META.name, p.dtype),
    })?;
    // SAFETY: the plan's entry point `gemm_bi_<dtype>_<ta><tb>_<path>` has the family
    // signature; the `_v` one is chosen only when every pointer, row stride and batch
    // stride is 16-byte aligned (`p.align`); `check` checked C's dtype, the sizes fit
    // `long long`, the grid fits, and the device's opt-in shared memory holds
    // `SHARED_BYTES` (`launch` raises the function's limit).
    unsafe {
        kernelyard_kernels::gemm_bi_simt::launch_tiled(
            &CudaLauncher,
            ctx.stream,
            (&SOURCE, plan.symbol),
            plan.dims(),
            a,
            p,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelyard_core::Sm;
    use kernelyard_core::{Arch, DeviceId, Kernel, Problem, Version};

    fn problem(m: usize, n: usize, k: usize, ta: bool, tb: bool, dtype: DType) -> GemmProblem {
        GemmProblem {
            batch: 1,
            m,
            n,
            k,
            trans_a: ta,
            trans_b: tb,
            dtype,
            c_dtype: dtype,
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

    fn caps(sm: Sm, optin: u64) -> Capabilities {
        Capabilities {
            device: DeviceId::cuda(0),
            name: format!("simulated {sm}"),
            arch: Arch::Cuda { sm },
            multiprocessors: 108,
            shared_mem_per_block: 48 << 10,
            shared_mem_per_block_optin: optin,
            memory_bytes: 80 << 30,
            driver_version: Some(Version::new(13, 0, 0)),
            compiler_version: Some(Version::new(13, 0, 0)),
            features: crate::device::features_of(sm),
        }
    }

    fn reasons(caps: &Capabilities, p: GemmProblem) -> Vec<Reason> {
        let mut r = Vec::new();
        GEMM_BATCH_INVARIANT.check_problem(caps, &Problem::Gemm(p), &mut r);
        r
    }

    #[test]
    fn the_entry_point_follows_dtype_transposes_and_alignment() {
        for dtype in [DType::F16, DType::BF16] {
            for ta in [false, true] {
                for tb in [false, true] {
                    for align in [2, 4, 8, 16] {
                        let mut p = problem(100, 200, 300, ta, tb, dtype);
                        p.align = align;
                        let plan = plan(&p).unwrap();
                        let t = |x: bool| if x { 't' } else { 'n' };
                        let path = if align == 16 { 'v' } else { 's' };
                        let want = format!("gemm_bi_{}_{}{}_{path}", dtype.name(), t(ta), t(tb));
                        assert_eq!(plan.symbol, want);
                        assert_eq!(plan.vec, align == 16);
                        assert!(SOURCE.lists(plan.symbol));
                    }
                }
            }
        }
        assert_eq!(plan(&problem(8, 8, 8, false, false, DType::F32)), None);
    }

    #[test]
    fn one_block_per_batch_entry_and_tile_with_the_same_shape_for_every_m() {
        let mut p = problem(1, 1, 1, false, false, DType::BF16);
        let one = plan(&p).unwrap();
        assert_eq!(one.blocks, 1);
        assert_eq!(
            one.dims(),
            Dims {
                grid: (1, 1, 1),
                block: (256, 1, 1),
                shared_bytes: 81920,
            }
        );
        p.m = 129;
        p.n = 257;
        p.batch = 3;
        assert_eq!(plan(&p).unwrap().blocks, 2 * 3 * 3);
        for m in [1, 2, 127, 128, 129, 1000, 4096, 100_001] {
            p.m = m;
            let d = plan(&p).unwrap().dims();
            assert_eq!((d.block, d.shared_bytes), ((THREADS, 1, 1), SHARED_BYTES));
            assert_eq!(d.grid, ((m.div_ceil(BM) * 3 * 3) as u32, 1, 1));
        }
    }

    #[test]
    fn the_constants_are_the_kernels() {
        assert_eq!(SHARED_BYTES, 81920);
        for (name, value) in [
            ("BM", BM),
            ("BN", BN),
            ("BK", BK),
            ("STAGES", STAGES),
            ("THREADS", THREADS as usize),
            ("PAD", PAD),
        ] {
            let line = format!("constexpr int {name} = {value};\n");
            assert!(
                SOURCE.code.contains(&line),
                "`{line}` not in {}",
                SOURCE.file
            );
        }
        assert!(SOURCE
            .code
            .contains(&format!("static_assert(SMEM_BYTES == {SHARED_BYTES},")));
    }

    #[test]
    fn every_listed_entry_point_is_in_the_source() {
        for s in SOURCE.symbols {
            let per_dtype = s
                .strip_prefix("gemm_bi_")
                .and_then(|r| r.split_once('_'))
                .map(|(_, rest)| format!("GBI_ENTRY(gemm_bi_##D##_{rest},"))
                .unwrap();
            assert!(SOURCE.code.contains(&per_dtype), "{s}");
        }
        assert!(SOURCE.code.contains("GBI_DTYPE(bf16, ky_bf16)"));
        assert!(SOURCE.code.contains("GBI_DTYPE(f16, ky_f16)"));
    }

    #[test]
    fn devices_with_80_kib_of_shared_memory_per_block_run_it() {
        let p = || problem(4096, 4096, 4096, false, true, DType::BF16);
        // H100 (227 KiB), A100 (163 KiB), sm_86 / sm_89 / sm_120 (99 KiB).
        for (sm, optin) in [
            (Sm::new(9, 0), 227 << 10),
            (Sm::new(8, 0), 163 << 10),
            (Sm::new(8, 6), 99 << 10),
            (Sm::new(12, 0), 99 << 10),
        ] {
            assert_eq!(reasons(&caps(sm, optin), p()), vec![], "{sm}");
        }
        assert_eq!(
            reasons(&caps(Sm::new(8, 0), 64 << 10), p()),
            vec![Reason::SharedMemory {
                need: 81920,
                have: 64 << 10
            }]
        );
    }

    #[test]
    fn what_the_launch_cannot_pass_is_a_reason() {
        let h100 = caps(Sm::new(9, 0), 227 << 10);
        let mut p = problem(64, 64, 64, false, false, DType::F16);
        p.c_dtype = DType::BF16;
        assert!(matches!(
            reasons(&h100, p)[..],
            [Reason::ShapeUnsupported { .. }]
        ));
        // 2^31 blocks: 2^16 x 2^8 tiles x 2^7 batch entries.
        let mut p = problem(1 << 23, 1 << 15, 64, false, false, DType::BF16);
        p.batch = 128;
        assert!(matches!(
            reasons(&h100, p.clone())[..],
            [Reason::ShapeUnsupported { .. }]
        ));
        p.batch = 127;
        assert_eq!(reasons(&h100, p), vec![]);
        let mut p = problem(usize::MAX / 2, usize::MAX / 2, 1, false, false, DType::BF16);
        p.batch = usize::MAX;
        assert_eq!(reasons(&h100, p).len(), 2);
        // C in f32 is fine; a dtype the kernel lacks is the static check's reason, not a panic.
        let mut p = problem(3, 5, 7, true, true, DType::BF16);
        p.c_dtype = DType::F32;
        assert_eq!(reasons(&h100, p), vec![]);
        let p = problem(3, 5, 7, false, false, DType::F32);
        assert_eq!(reasons(&h100, p), vec![]);
    }
}
