//! One file per operator, mirroring `kernelyard_core::ops`: each holds the oracle (a plain
//! `f64` function over dense logical-order arrays) and the registered `reference.<op>` kernel,
//! a `static` [`KernelDef`](kernelyard_core::KernelDef) whose launch gathers the arguments, calls
//! the oracle and scatters the results once.
//!
//! The statics are written `KernelDef::<Op>::new(..)`: naming the operator fixes `O` before the
//! launch function is coerced to its pointer type (inferred from the static's type alone, rustc
//! cannot normalize `O::Args<'a>` under the pointer's binder and reports a type mismatch).

pub mod attention;
pub mod gemm;
pub mod log_softmax;
pub mod rms_norm;
pub mod rope;
pub mod selective_state_update;
pub mod silu_mul;
pub mod softmax;
pub mod token_logprobs;

use kernelyard_core::{ArchReq, DeviceKind, KernelMeta, Listed};

use crate::BACKEND;

/// The reference backend's defaults over [`KernelMeta::new`]: CPU, any arch, lowest priority
/// (a GPU kernel is for another device kind anyway; on the CPU this is the only kernel).
/// Everything else is core's default: version 1, deterministic and batch-invariant (rows are
/// independent and each reduction's order is fixed), f32/f16/bf16, element alignment.
pub(crate) const fn meta<O: Listed>(
    name: &'static str,
    source: &'static str,
    summary: &'static str,
) -> KernelMeta {
    KernelMeta::new::<O>(
        name,
        BACKEND,
        DeviceKind::Cpu,
        ArchReq::Any,
        source,
        summary,
    )
    .priority(0)
}
