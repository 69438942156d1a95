//! `cuda.log_softmax`: `y = x - max - log(sum(exp(x - max)))` over each row, from
//! `kernels/log_softmax.cu`.
//!
//! # Who does what
//! Core validated the views (contiguous `[rows, cols]`, one dtype, one device, no overlap) into
//! the [`RowsProblem`](kernelyard_core::ops::softmax::RowsProblem); the checks, the entry
//! point, the launch shape and the launch sequence are [`kernelyard_kernels::log_softmax`]'s
//! (shared with the ROCm backend), which this file runs through [`CudaLauncher`]; the kernel
//! assumes valid inputs. Math is f32 for every dtype; the output is `(x - max) - ln(s)` with
//! an accurate `logf`.
//!
//! # Launch configuration
//! The same plan, entry-point families and reasons as [`softmax`](crate::ops::softmax) (see
//! [`kernelyard_kernels::rows`] for the table): [`RowPlan`](kernelyard_kernels::rows::RowPlan)
//! from `cols` and the element size alone (register path up to 16384 columns, several rows per
//! block up to 1024; two passes beyond, with the row kept in shared memory when it fits), so
//! the results are deterministic and batch-invariant.
//!
//! # Bytes moved
//! `2 * rows * cols * size` on the register and shared-memory paths (x read once, y written
//! once); the L2 path for rows too long for shared memory reads x twice, the second time from
//! L2 while the rows in flight fit in it.

use kernelyard_core::ops::log_softmax::{LogSoftmax, LogSoftmaxArgs, LogSoftmaxProblem};
use kernelyard_core::{Error, KernelDef, KernelMeta, LaunchCtx};
use kernelyard_kernels::log_softmax;

use crate::launch::CudaLauncher;
use crate::ops::nvrtc_meta;

/// The `cuda.log_softmax` kernel: [`log_softmax::check`] and [`log_softmax::launch`] (shared
/// with the ROCm backend) through [`CudaLauncher`].
pub static LOG_SOFTMAX: KernelDef<LogSoftmax> = KernelDef::<LogSoftmax>::new(META, launch)
    .with_check(log_softmax::check)
    .with_prepare(crate::ops::prepare_nvrtc::<LogSoftmax>);
kernelyard_core::register!(LOG_SOFTMAX);

const META: KernelMeta = nvrtc_meta::<LogSoftmax>(
    "cuda.log_softmax",
    module_path!(),
    "log-softmax over rows, f32 math; row in registers (or shared memory for long rows), 16-byte accesses",

)
.tactics(kernelyard_kernels::rows::TACTICS);

fn launch(
    ctx: &LaunchCtx<'_>,
    a: &mut LogSoftmaxArgs<'_>,
    p: &LogSoftmaxProblem,
) -> Result<(), Error> {
    log_softmax::launch_tactic(&CudaLauncher, ctx.stream, ctx.caps, a, p, ctx.tactic)
}
