//! The CUDA kernels, one file per operator (mirroring `kernelyard_core::ops`), each with its
//! kernel static(s) and, for NVRTC kernels, its source of `kernels/`.

use kernelyard_core::{ArchReq, DType, DeviceKind, Error, Feature, KernelMeta, OpKind, Sm};

use crate::source::SourceEntry;

pub mod attention;
pub mod attention_sm90;
pub mod gemm;
pub mod gemm_bi;
pub mod gemm_bi_sm90;
pub mod log_softmax;
pub mod rms_norm;
pub mod rope;
pub mod softmax;
pub mod token_logprobs;

/// Every NVRTC kernel source, with the kernels that launch it: the backend's own, and those
/// shared with the ROCm backend (in `kernelyard_kernels`).
pub(crate) static SOURCES: &[SourceEntry] = &[
    SourceEntry {
        source: &attention::SOURCE,
        kernels: &[&attention::ATTENTION],
    },
    SourceEntry {
        source: &attention_sm90::SOURCE,
        kernels: &[&attention_sm90::ATTENTION_SM90],
    },
    SourceEntry {
        source: &kernelyard_kernels::rms_norm::SOURCE,
        kernels: &[&rms_norm::RMS_NORM],
    },
    SourceEntry {
        source: &kernelyard_kernels::softmax::SOURCE,
        kernels: &[&softmax::SOFTMAX],
    },
    SourceEntry {
        source: &kernelyard_kernels::log_softmax::SOURCE,
        kernels: &[&log_softmax::LOG_SOFTMAX],
    },
    SourceEntry {
        source: &kernelyard_kernels::token_logprobs::SOURCE,
        kernels: &[&token_logprobs::TOKEN_LOGPROBS],
    },
    SourceEntry {
        source: &kernelyard_kernels::rope::SOURCE,
        kernels: &[&rope::ROPE],
    },
    SourceEntry {
        source: &gemm_bi::SOURCE,
        kernels: &[&gemm_bi::GEMM_BATCH_INVARIANT],
    },
    SourceEntry {
        source: &gemm_bi_sm90::SOURCE,
        kernels: &[&gemm_bi_sm90::GEMM_BATCH_INVARIANT_SM90],
    },
];

/// The error for a launch given another op's arguments or problem (a core bug).
pub(crate) fn wrong_op(kernel: &'static str, op: OpKind, got: OpKind) -> Error {
    Error::WrongOp { kernel, op, got }
}

/// The metadata every NVRTC kernel of this backend shares (f32/f16/bf16, sm_75 and newer,
/// deterministic and batch-invariant), with its name, op, declaration site and summary.
pub(crate) const fn nvrtc_meta(
    name: &'static str,
    op: OpKind,
    source: &'static str,
    summary: &'static str,
) -> KernelMeta {
    KernelMeta {
        name,
        op,
        backend: crate::BACKEND,
        device: DeviceKind::Cuda,
        version: 1,
        deterministic: true,
        batch_invariant: true,
        dtypes: DType::FLOATS,
        arch: ArchReq::Cuda {
            min: Sm::new(7, 5),
            max: None,
            arch_specific: false,
        },
        features: &[],
        align: 1,
        priority: 10,
        source,
        summary,
    }
}

/// Which tensor-core instructions a kernel uses, and so its arch range and features.
#[derive(Clone, Copy)]
pub(crate) enum TensorCores {
    /// `mma.sync`: sm_80 and newer.
    MmaSync,
    /// TMA + `wgmma`: sm_90a only (arch-specific).
    Hopper,
}

/// The metadata of a tensor-core kernel: [`nvrtc_meta`]'s (deterministic, batch-invariant)
/// with f16/bf16 only, the arch range and features of `cores`, `align` and `priority`.
pub(crate) const fn tensor_core_meta(
    name: &'static str,
    op: OpKind,
    source: &'static str,
    summary: &'static str,
    cores: TensorCores,
    align: usize,
    priority: i32,
) -> KernelMeta {
    let (arch, features): (ArchReq, &'static [Feature]) = match cores {
        TensorCores::MmaSync => (
            ArchReq::Cuda {
                min: Sm::new(8, 0),
                max: None,
                arch_specific: false,
            },
            &[Feature::TensorCores],
        ),
        TensorCores::Hopper => (
            ArchReq::Cuda {
                min: Sm::new(9, 0),
                max: Some(Sm::new(9, 0)),
                arch_specific: true,
            },
            &[Feature::Wgmma, Feature::Tma],
        ),
    };
    KernelMeta {
        dtypes: &[DType::F16, DType::BF16],
        arch,
        features,
        align,
        priority,
        ..nvrtc_meta(name, op, source, summary)
    }
}
