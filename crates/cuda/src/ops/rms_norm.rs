//! `cuda.rms_norm`: `y = x / sqrt(mean(x^2) + eps) * weight` over each row, with the fused
//! residual add, from `kernels/rms_norm.cu`.
//!
//! # Who does what
//! Core validated the views (contiguous `[rows, hidden]` x, out, residual and residual_out,
//! `[hidden]` weight, one dtype, one device, no overlap, finite `eps >= 0`) into the
//! [`RmsNormProblem`](kernelyard_core::ops::rms_norm::RmsNormProblem); the checks, the entry
//! point, the launch shape and the launch sequence are [`kernelyard_kernels::rms_norm`]'s
//! (shared with the ROCm backend), which this file runs through [`CudaLauncher`]; the kernel
//! assumes valid inputs. Math is f32 for every dtype. With a residual, `x' = x + residual` is
//! rounded to the dtype and written to `residual_out`, and `y` is the norm of that stored `x'`
//! (`_res` entry points; the plain ones hold no residual registers).
//!
//! # Launch configuration
//! [`RowPlan`](kernelyard_kernels::rows::RowPlan) from `hidden` and the element size alone,
//! as for [`softmax`](crate::ops::softmax) (see [`kernelyard_kernels::rows`] for the table),
//! without the shared-memory path:
//! - `hidden <= 1024`: a group of up to 32 threads per row, several rows per 128-thread block;
//! - `hidden <= 16384`: one row per block of up to 512 threads (256 for 8192 bf16: 4 chunks of
//!   8 per thread), the row and the weight chunks a thread needs in registers as raw storage
//!   (half the registers of f32 for 16-bit types: four or more blocks per SM), every load
//!   issued before the first use;
//! - longer rows: one row per 512-thread block, two passes: x (and the residual) streamed once
//!   while residual_out is written and the squares summed, then x' read again (from L2 while
//!   the rows in flight fit in it), last part first.
//!
//! The reduction order depends on `hidden` only: deterministic and batch-invariant.
//!
//! # Bytes moved
//! Plain: `2 * rows * hidden * size` plus the weight once (every row re-reads it, from L1/L2).
//! Fused: `4 * rows * hidden * size` plus the weight (x and residual read, y and residual_out
//! written). Rows past 16384 elements add a second read of x' from L2 (from device memory when
//! the rows in flight do not fit in L2).

use kernelyard_core::{
    Args, Capabilities, Error, Kernel, KernelMeta, OpKind, Problem, Reason, Stream,
};
use kernelyard_kernels::rms_norm;

use crate::device::caps;
use crate::launch::CudaLauncher;
use crate::ops::{nvrtc_meta, wrong_op};

/// The `cuda.rms_norm` kernel.
pub struct CudaRmsNorm;

/// Its registration.
pub static RMS_NORM: CudaRmsNorm = CudaRmsNorm;
crate::register!(RMS_NORM);

const META: KernelMeta = nvrtc_meta(
    "cuda.rms_norm",
    OpKind::RmsNorm,
    module_path!(),
    "RMSNorm over rows with the fused residual add, f32 math; row in registers, 16-byte accesses",
);

impl Kernel for CudaRmsNorm {
    fn meta(&self) -> &KernelMeta {
        &META
    }

    fn check_problem(&self, caps: &Capabilities, problem: &Problem, reasons: &mut Vec<Reason>) {
        if let Problem::RmsNorm(p) = problem {
            rms_norm::check(caps, p, reasons);
        }
    }

    fn launch(&self, stream: &Stream, args: &mut Args<'_>, problem: &Problem) -> Result<(), Error> {
        let (Args::RmsNorm(a), Problem::RmsNorm(p)) = (args, problem) else {
            return Err(wrong_op(META.name, META.op, problem.op()));
        };
        rms_norm::launch(&CudaLauncher, stream, caps(stream.device())?, a, p)
    }
}
