//! `rocm.gemm.batch_invariant.mfma` and `rocm.gemm.batch_invariant`: `C = alpha * op(A) @
//! op(B) + beta * C` in one fixed reduction order (no split-K, no atomics, one configuration
//! for every M), from `kernels/gemm_bi_mfma.cu` (matrix cores) and `kernels/gemm_bi_simt.cu`
//! (portable). Plans, checks and launch sequences are in `kernelyard_kernels`; both modules'
//! docs say why the results are batch-invariant.
//!
//! Selection between the two depends on the architecture and the dtype only (never on M): on
//! gfx908 and gfx90a f16/bf16 run on the MFMA kernel (priority 10); f32, and every other
//! architecture, on the portable one (priority 5). The two are not promised to give each
//! other's bits.

use kernelyard_core::ops::gemm::{Gemm, GemmArgs, GemmProblem};
use kernelyard_core::{Capabilities, DType, Error, KernelDef, LaunchCtx, Reason};
use kernelyard_kernels::{gemm_bi_mfma, gemm_bi_simt};

use super::{checked, rocm_meta, with_gpu, ANY_GFX, MFMA_FEATURES, MFMA_GFX};

/// The `rocm.gemm.batch_invariant.mfma` kernel: matrix cores, gfx908 and gfx90a, wave64.
pub static GEMM_BATCH_INVARIANT_MFMA: KernelDef<Gemm> = KernelDef::<Gemm>::new(
    rocm_meta::<Gemm>(
        "rocm.gemm.batch_invariant.mfma",
        MFMA_GFX,
        module_path!(),
        "batch-invariant deterministic GEMM on MFMA matrix cores, f32 accumulation, fixed k \
         order (not yet run on AMD hardware)",
    )
    .dtypes(&[DType::F16, DType::BF16])
    .features(MFMA_FEATURES),
    launch_mfma,
)
.with_check(check_mfma);
kernelyard_core::register!(GEMM_BATCH_INVARIANT_MFMA);

fn check_mfma(caps: &Capabilities, p: &GemmProblem, reasons: &mut Vec<Reason>) {
    checked(caps, p, reasons, |_, p, reasons| {
        gemm_bi_mfma::check_shape(p, reasons)
    });
}

fn launch_mfma(ctx: &LaunchCtx<'_>, a: &mut GemmArgs<'_>, p: &GemmProblem) -> Result<(), Error> {
    with_gpu(ctx, |gpu| {
        gemm_bi_mfma::launch(gpu, ctx.stream, ctx.caps, a, p)
    })
}

/// The `rocm.gemm.batch_invariant` kernel: the portable path, every architecture.
pub static GEMM_BATCH_INVARIANT: KernelDef<Gemm> = KernelDef::<Gemm>::new(
    rocm_meta::<Gemm>(
        "rocm.gemm.batch_invariant",
        ANY_GFX,
        module_path!(),
        "batch-invariant deterministic GEMM without matrix cores (LDS tiles, f32 FMA in k \
         order); the same source runs on NVIDIA in the tests",
    )
    .priority(5),
    launch_simt,
)
.with_check(check_simt);
kernelyard_core::register!(GEMM_BATCH_INVARIANT);

fn check_simt(caps: &Capabilities, p: &GemmProblem, reasons: &mut Vec<Reason>) {
    checked(caps, p, reasons, |_, p, reasons| {
        gemm_bi_simt::check_shape(p, reasons)
    });
}

fn launch_simt(ctx: &LaunchCtx<'_>, a: &mut GemmArgs<'_>, p: &GemmProblem) -> Result<(), Error> {
    with_gpu(ctx, |gpu| {
        gemm_bi_simt::launch(gpu, ctx.stream, ctx.caps, a, p)
    })
}
