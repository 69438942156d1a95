//! One file per operator, mirroring `kernelyard_core::ops`: each holds the oracle (a plain
//! `f64` function over dense logical-order arrays) and the registered `reference.<op>` kernel.

pub mod attention;
pub mod gemm;
pub mod log_softmax;
pub mod rms_norm;
pub mod rope;
pub mod selective_state_update;
pub mod softmax;
pub mod token_logprobs;

use kernelyard_core::{ArchReq, DType, DeviceKind, KernelMeta, OpKind};

use crate::BACKEND;

/// Metadata shared by every reference kernel: CPU, any arch, deterministic, batch-invariant,
/// lowest priority (any GPU kernel on a GPU device is a different device anyway; on the CPU it
/// is the only kernel).
pub(crate) const fn meta(
    name: &'static str,
    op: OpKind,
    dtypes: &'static [DType],
    source: &'static str,
    summary: &'static str,
) -> KernelMeta {
    KernelMeta {
        name,
        op,
        backend: BACKEND,
        device: DeviceKind::Cpu,
        version: 1,
        deterministic: true,
        batch_invariant: true,
        dtypes,
        arch: ArchReq::Any,
        features: &[],
        align: 1,
        priority: 0,
        source,
        summary,
    }
}

/// Returns `Error::WrongOp` for arguments of another op (a dispatch bug, never user input).
pub(crate) fn wrong_op(kernel: &'static str, op: OpKind, got: OpKind) -> kernelyard_core::Error {
    kernelyard_core::Error::WrongOp { kernel, op, got }
}
