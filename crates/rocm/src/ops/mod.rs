//! The ROCm kernels: one [`KernelDef`](kernelyard_core::KernelDef) static per kernel,
//! registered with [`kernelyard_core::register!`], holding its metadata (from `rocm_meta`),
//! its problem check and its launch. The sources, plans, checks and launch sequences live in
//! `kernelyard_kernels` and are the CUDA backend's; what is ROCm's own here is the metadata
//! (gfx ranges, wavefront assumptions, priorities), the launcher (`launch::HipLauncher`, given
//! the launch context's capabilities), and the checked-mode slot of `token_logprobs`.
//!
//! | kernel | source | arch range | wavefront |
//! |---|---|---|---|
//! | `rocm.rms_norm`, `rocm.softmax`, `rocm.log_softmax`, `rocm.token_logprobs`, `rocm.rope`, `rocm.silu_mul`, `rocm.selective_state_update` | the CUDA backend's | gfx900 or newer | 32 or 64 |
//! | `rocm.gemm.batch_invariant` | `gemm_bi_simt.cu` (portable) | gfx900 or newer | 32 or 64 |
//! | `rocm.gemm.batch_invariant.mfma` | `gemm_bi_mfma.cu` (MFMA) | gfx908..=gfx90a | 64 |
//!
//! **Wavefronts.** The shared sources reduce over a logical warp of 32 lanes (shuffles of
//! width 32, `kernels/port.cuh`), so a wave64 device runs two independent groups per wavefront
//! and gets the same reduction tree, and bits, as a wave32 device: those kernels declare no
//! wavefront. The MFMA kernel's operand layouts are those of a 64-lane wavefront, so it
//! declares wave64.
//!
//! **Without the `hip` feature** every check reports
//! [`Reason::NotCompiledIn`] (backend `rocm`, feature `rocm`), before anything else, and every
//! launch fails with the same advice. The two builds differ only in `with_gpu` (and
//! `token_logprobs`' device slot), never inside a kernel's body.

use kernelyard_core::{
    ArchReq, Capabilities, DeviceKind, Error, Feature, Gfx, Kernel, KernelMeta, LaunchCtx, Listed,
    Reason,
};
use kernelyard_kernels::launch::Launch;
use kernelyard_kernels::source::SourceEntry;

mod gemm;
mod rows;
mod selective_state_update;
mod silu_mul;
mod token_logprobs;

pub use gemm::{GEMM_BATCH_INVARIANT, GEMM_BATCH_INVARIANT_MFMA};
pub use rows::{LOG_SOFTMAX, RMS_NORM, ROPE, SOFTMAX};
pub use selective_state_update::SELECTIVE_STATE_UPDATE;
pub use silu_mul::SILU_MUL;
pub use token_logprobs::TOKEN_LOGPROBS;

/// Runs the shared problem check `check`, after [`Reason::NotCompiledIn`] in a build without
/// the `hip` feature (which then says nothing else: the rebuild comes first).
fn checked<P>(
    caps: &Capabilities,
    p: &P,
    reasons: &mut Vec<Reason>,
    check: fn(&Capabilities, &P, &mut Vec<Reason>),
) {
    if !crate::COMPILED_IN {
        reasons.push(Reason::NotCompiledIn {
            backend: crate::BACKEND,
            feature: crate::FEATURE,
        });
        return;
    }
    check(caps, p, reasons);
}

/// Runs `launch` with the HIP launcher for the device whose capabilities `ctx` holds.
#[cfg(feature = "hip")]
fn with_gpu(
    ctx: &LaunchCtx<'_>,
    launch: impl FnOnce(&dyn Launch) -> Result<(), Error>,
) -> Result<(), Error> {
    launch(&crate::launch::HipLauncher::new(ctx.caps))
}

/// Without the `hip` feature nothing launches (the checks said so first).
#[cfg(not(feature = "hip"))]
fn with_gpu(
    ctx: &LaunchCtx<'_>,
    launch: impl FnOnce(&dyn Launch) -> Result<(), Error>,
) -> Result<(), Error> {
    let _ = launch;
    Err(not_compiled_in(ctx))
}

/// The error of a launch in a build without the `hip` feature.
#[cfg(not(feature = "hip"))]
fn not_compiled_in(ctx: &LaunchCtx<'_>) -> Error {
    crate::RocmError::Misuse {
        what: format!(
            "cannot launch on {}: the ROCm backend is not compiled in (rebuild with `--features \
             {}`)",
            ctx.stream.device(),
            crate::FEATURE
        ),
    }
    .into()
}

/// The architectures every kernel runs on unless it says otherwise.
pub const ANY_GFX: ArchReq = ArchReq::Rocm {
    min: crate::device::MIN_GFX,
    max: None,
    wavefront: None,
};

/// The architectures and wavefront of the MFMA kernels: CDNA1 and CDNA2, wave64.
pub const MFMA_GFX: ArchReq = ArchReq::Rocm {
    min: Gfx::new(9, 0, 8),
    max: Some(Gfx::new(9, 0, 0xa)),
    wavefront: Some(64),
};

/// The metadata of a ROCm kernel for `O` with its name, its gfx range and wavefront (most
/// kernels: [`ANY_GFX`]), its declaration site and summary, and core's defaults (f32/f16/bf16,
/// deterministic and batch-invariant, no features, element alignment, priority 10); kernels
/// adjust it with `KernelMeta`'s builders.
pub(crate) const fn rocm_meta<O: Listed>(
    name: &'static str,
    arch: ArchReq,
    source: &'static str,
    summary: &'static str,
) -> KernelMeta {
    KernelMeta::new::<O>(
        name,
        crate::BACKEND,
        DeviceKind::Rocm,
        arch,
        source,
        summary,
    )
}

/// The features the MFMA kernels need.
pub(crate) const MFMA_FEATURES: &[Feature] = &[Feature::TensorCores];

/// Every kernel source of the backend, with the kernels that launch it (whose ranges say
/// which architectures it must compile for).
pub fn sources() -> &'static [SourceEntry] {
    static SOURCES: &[SourceEntry] = &[
        SourceEntry {
            source: &kernelyard_kernels::rms_norm::SOURCE,
            kernels: &[&RMS_NORM],
        },
        SourceEntry {
            source: &kernelyard_kernels::softmax::SOURCE,
            kernels: &[&SOFTMAX],
        },
        SourceEntry {
            source: &kernelyard_kernels::log_softmax::SOURCE,
            kernels: &[&LOG_SOFTMAX],
        },
        SourceEntry {
            source: &kernelyard_kernels::token_logprobs::SOURCE,
            kernels: &[&TOKEN_LOGPROBS],
        },
        SourceEntry {
            source: &kernelyard_kernels::rope::SOURCE,
            kernels: &[&ROPE],
        },
        SourceEntry {
            source: &kernelyard_kernels::silu_mul::SOURCE,
            kernels: &[&SILU_MUL],
        },
        SourceEntry {
            source: &kernelyard_kernels::selective_state_update::SOURCE,
            kernels: &[&SELECTIVE_STATE_UPDATE],
        },
        SourceEntry {
            source: &kernelyard_kernels::gemm_bi_simt::SOURCE,
            kernels: &[&GEMM_BATCH_INVARIANT],
        },
        SourceEntry {
            source: &kernelyard_kernels::gemm_bi_mfma::SOURCE,
            kernels: &[&GEMM_BATCH_INVARIANT_MFMA],
        },
    ];
    SOURCES
}

/// Every kernel the backend registers.
pub fn kernels() -> Vec<&'static dyn Kernel> {
    sources()
        .iter()
        .flat_map(|s| s.kernels.iter().copied())
        .collect()
}
