//! The ROCm kernels: one [`RocmKernel`] static per registered kernel, with its metadata, its
//! checks and its launch. The sources, plans, checks and launch sequences live in
//! `kernelyard_kernels` and are the CUDA backend's; what is ROCm's own here is the metadata
//! (gfx ranges, wavefront assumptions, priorities), the launcher (`launch::HipLauncher`), and the
//! checked-mode slot of `token_logprobs`.
//!
//! | kernel | source | arch range | wavefront |
//! |---|---|---|---|
//! | `rocm.rms_norm`, `rocm.softmax`, `rocm.log_softmax`, `rocm.token_logprobs`, `rocm.rope` | the CUDA backend's | gfx900 or newer | 32 or 64 |
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
//! [`Reason::NotCompiledIn`] (backend `rocm`, feature `rocm`), before anything else.

use kernelyard_core::{
    ArchReq, Args, Capabilities, DType, DeviceKind, Error, Feature, Gfx, Kernel, KernelMeta,
    OpKind, Problem, Reason, Stream,
};
use kernelyard_kernels::source::SourceEntry;

mod gemm;
mod rows;
mod token_logprobs;

pub use gemm::{GEMM_BATCH_INVARIANT, GEMM_BATCH_INVARIANT_MFMA};
pub use rows::{LOG_SOFTMAX, RMS_NORM, ROPE, SOFTMAX};
pub use token_logprobs::TOKEN_LOGPROBS;

/// Checks a problem the kernel's metadata cannot (shapes, dtypes of index arguments).
type Check = fn(&Capabilities, &Problem, &mut Vec<Reason>);

/// Launches the kernel for a problem that passed its checks.
type Launch = fn(&Stream, &Capabilities, &mut Args<'_>, &Problem) -> Result<(), Error>;

/// A ROCm kernel: metadata, problem checks and launch.
pub struct RocmKernel {
    meta: KernelMeta,
    check: Check,
    launch: Launch,
}

impl Kernel for RocmKernel {
    fn meta(&self) -> &KernelMeta {
        &self.meta
    }

    fn check_problem(&self, caps: &Capabilities, problem: &Problem, reasons: &mut Vec<Reason>) {
        if !crate::COMPILED_IN {
            reasons.push(Reason::NotCompiledIn {
                backend: crate::BACKEND,
                feature: crate::FEATURE,
            });
            return;
        }
        (self.check)(caps, problem, reasons);
    }

    fn launch(&self, stream: &Stream, args: &mut Args<'_>, problem: &Problem) -> Result<(), Error> {
        if problem.op() != self.meta.op {
            return Err(Error::WrongOp {
                kernel: self.meta.name,
                op: self.meta.op,
                got: problem.op(),
            });
        }
        let caps = caps(stream)?;
        (self.launch)(stream, caps, args, problem)
    }
}

/// The capabilities of the stream's device, or why the backend cannot launch.
#[cfg(feature = "hip")]
fn caps(stream: &Stream) -> Result<&'static Capabilities, Error> {
    crate::device::caps(stream.device())
}

/// Without the `hip` feature nothing can launch (the checks said so first).
#[cfg(not(feature = "hip"))]
fn caps(stream: &Stream) -> Result<&'static Capabilities, Error> {
    Err(not_compiled_in(stream))
}

/// The error of a launch in a build without the `hip` feature.
#[cfg(not(feature = "hip"))]
pub(crate) fn not_compiled_in(stream: &Stream) -> Error {
    crate::RocmError::Misuse {
        what: format!(
            "cannot launch on {}: the ROCm backend is not compiled in (rebuild with `--features \
             {}`)",
            stream.device(),
            crate::FEATURE
        ),
    }
    .into()
}

/// The launcher the shared launch sequences call.
#[cfg(feature = "hip")]
pub(crate) fn gpu() -> &'static dyn kernelyard_kernels::launch::Launch {
    &crate::launch::HipLauncher
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

/// The metadata every ROCm kernel shares (f32/f16/bf16, [`ANY_GFX`], deterministic and
/// batch-invariant, priority 10), with its name, op, declaration site and summary.
pub(crate) const fn rocm_meta(
    name: &'static str,
    op: OpKind,
    source: &'static str,
    summary: &'static str,
) -> KernelMeta {
    KernelMeta {
        name,
        op,
        backend: crate::BACKEND,
        device: DeviceKind::Rocm,
        version: 1,
        deterministic: true,
        batch_invariant: true,
        dtypes: DType::FLOATS,
        arch: ANY_GFX,
        features: &[],
        align: 1,
        priority: 10,
        source,
        summary,
    }
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
