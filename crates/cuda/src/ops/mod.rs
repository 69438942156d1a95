//! The CUDA kernels, one file per operator (mirroring `kernelyard_core::ops`), each with its
//! kernel static(s) and, for NVRTC kernels, its source of `kernels/`.

use kernelyard_core::{Error, OpKind};

use crate::source::SourceEntry;

pub mod gemm;
pub mod log_softmax;
pub mod rms_norm;
pub mod rope;
pub mod softmax;
pub mod token_logprobs;

/// Every NVRTC kernel source, with the kernels that launch it.
pub(crate) static SOURCES: &[SourceEntry] = &[
    SourceEntry {
        source: &rms_norm::SOURCE,
        kernels: &[&rms_norm::RMS_NORM],
    },
    SourceEntry {
        source: &softmax::SOURCE,
        kernels: &[&softmax::SOFTMAX],
    },
    SourceEntry {
        source: &log_softmax::SOURCE,
        kernels: &[&log_softmax::LOG_SOFTMAX],
    },
    SourceEntry {
        source: &token_logprobs::SOURCE,
        kernels: &[&token_logprobs::TOKEN_LOGPROBS],
    },
    SourceEntry {
        source: &rope::SOURCE,
        kernels: &[&rope::ROPE],
    },
];

/// The error for a launch given another op's arguments or problem (a core bug).
pub(crate) fn wrong_op(kernel: &'static str, op: OpKind, got: OpKind) -> Error {
    Error::WrongOp { kernel, op, got }
}
