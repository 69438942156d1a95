//! `cuda.softmax`: `y = exp(x - max) / sum(exp(x - max))` over each row, from
//! `kernels/softmax.cu`.
//!
//! # Who does what
//! Core validated the views (contiguous `[rows, cols]`, one dtype, one device, no overlap) into
//! the [`RowsProblem`](kernelyard_core::ops::softmax::RowsProblem); the checks, the entry
//! point, the launch shape and the launch sequence are [`kernelyard_kernels::softmax`]'s
//! (shared with the ROCm backend and with [`log_softmax`](crate::ops::log_softmax)), which this
//! file runs through [`CudaLauncher`] with the device's opt-in shared memory per block; the
//! kernel assumes valid inputs. Math is f32 for every dtype.
//!
//! # Launch configuration
//! [`RowPlan`](kernelyard_kernels::rows::RowPlan) (in [`kernelyard_kernels::rows`]; its docs
//! have the table and the measurements behind it) from `cols` and the element size alone, so a
//! row's reduction order, and its bits, do not depend on the batch it rides in: rows of up to
//! 16384 columns in registers (several rows per 128-thread block up to 1024), two passes
//! beyond, with the row kept in dynamic shared memory when it fits the device's opt-in limit
//! and read again from L2 otherwise.
//!
//! # Bytes moved
//! Register and shared-memory paths: `2 * rows * cols * size` (x read once, y written once).
//! L2 path: the same from device memory while the rows in flight fit in L2, up to
//! `3 * rows * cols * size` when they do not.

use kernelyard_core::ops::softmax::{Softmax, SoftmaxArgs, SoftmaxProblem};
use kernelyard_core::{Error, KernelDef, KernelMeta, LaunchCtx};
use kernelyard_kernels::softmax;

use crate::launch::CudaLauncher;
use crate::ops::nvrtc_meta;

/// The `cuda.softmax` kernel: [`softmax::check`] and [`softmax::launch`] (shared with the
/// ROCm backend) through [`CudaLauncher`].
pub static SOFTMAX: KernelDef<Softmax> = KernelDef::<Softmax>::new(META, launch)
    .with_check(softmax::check)
    .with_prepare(crate::ops::prepare_nvrtc::<Softmax>);
kernelyard_core::register!(SOFTMAX);

const META: KernelMeta = nvrtc_meta::<Softmax>(
    "cuda.softmax",
    module_path!(),
    "softmax over rows, f32 math; row in registers (or two passes for long rows), 16-byte accesses",
)
.tactics(kernelyard_kernels::rows::TACTICS);

fn launch(ctx: &LaunchCtx<'_>, a: &mut SoftmaxArgs<'_>, p: &SoftmaxProblem) -> Result<(), Error> {
    softmax::launch_tactic(&CudaLauncher, ctx.stream, ctx.caps, a, p, ctx.tactic)
}
