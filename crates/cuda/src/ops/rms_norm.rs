//! `cuda.rms_norm`: `y = x / sqrt(mean(x^2) + eps) * weight` over each row, with the fused
//! residual add, from `kernels/rms_norm.cu`.
//!
//! # Who does what
//! Core validated the views (contiguous `[rows, hidden]` x, out, residual and residual_out,
//! `[hidden]` weight, one dtype, one device, no overlap, finite `eps >= 0`) into the
//! [`RmsNormProblem`]; the checks, the entry point, the launch shape and the launch sequence
//! are [`kernelyard_kernels::rms_norm`]'s (shared with the ROCm backend), which this file runs
//! through [`CudaLauncher`]; the kernel assumes valid inputs. Math is f32 for every dtype.
//! With a residual, `x' = x + residual` is rounded to the dtype and written to
//! `residual_out`, and `y` is the norm of that stored `x'` (`_res` entry points; the plain ones
//! hold no residual registers).
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

use kernelyard_core::ops::rms_norm::{RmsNorm, RmsNormArgs, RmsNormProblem};
use kernelyard_core::{Error, KernelDef, KernelMeta, LaunchCtx};
use kernelyard_kernels::rms_norm;

use crate::launch::CudaLauncher;
use crate::ops::nvrtc_meta;

/// The `cuda.rms_norm` kernel: [`rms_norm::check`] and [`rms_norm::launch`] (shared with the
/// ROCm backend) through [`CudaLauncher`].
pub static RMS_NORM: KernelDef<RmsNorm> = KernelDef::<RmsNorm>::new(META, launch)
    .with_check(rms_norm::check)
    .with_prepare(crate::ops::prepare_nvrtc::<RmsNorm>);
kernelyard_core::register!(RMS_NORM);

const META: KernelMeta = nvrtc_meta::<RmsNorm>(
    "cuda.rms_norm",
    module_path!(),
    "RMSNorm over rows with the fused residual add, f32 math; row in registers, 16-byte accesses",
)
.tactics(kernelyard_kernels::rows::TACTICS);

fn launch(ctx: &LaunchCtx<'_>, a: &mut RmsNormArgs<'_>, p: &RmsNormProblem) -> Result<(), Error> {
    rms_norm::launch_tactic(&CudaLauncher, ctx.stream, ctx.caps, a, p, ctx.tactic)
}
