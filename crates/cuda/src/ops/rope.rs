//! `cuda.rope`: rotary position embedding, NeoX or GPT-J pairs, partial rotary, in place or out
//! of place (`kernels/rope.cu`).
//!
//! - **Design.** Each thread owns a unit of one token and a group of heads, and computes the
//!   cos/sin of its pairs once for every head of the group (or, out of place, copies 16 bytes
//!   of the pass-through tail for each). The plan
//!   ([`plan`](kernelyard_kernels::rope::plan), in [`kernelyard_kernels::rope`] with the
//!   source, the unit layout and the launch sequence, shared with the ROCm backend) makes head
//!   groups as large as still gives every SM
//!   [`THREADS_PER_SM`](kernelyard_kernels::rope::THREADS_PER_SM) threads.
//! - **Angles.** `inv_freq[i] = r^i`, `r = theta^(-2 / rotary_dim)` computed on the host in f64;
//!   `angle = position * inv_freq[i]` and its reduction to `[-pi/4, pi/4]` in f64 in the
//!   kernel; sin/cos by f32 polynomials. The angle is exact to f32 precision even for large
//!   positions (1e5 and beyond), unlike an f32 `position * inv_freq`.
//! - **Bytes.** Out of place: reads and writes `tokens * heads * head_dim * dtype.size()`
//!   bytes each (the tail is copied). In place: reads and writes only the rotated features,
//!   `tokens * heads * rotary_dim * dtype.size()` bytes each; the tail is not touched.
//!   Measured on an H100 at [16384, 32, 128] bf16: 2.49 TB/s NeoX, 2.52 TB/s GPT-J (copy:
//!   2.84 TB/s), 3.5x `torch.compile` in the same run.
//! - **Alignment.** The `_v16` entry points (16-byte loads and stores) run when the problem is
//!   16-byte aligned and the pairs fill whole 16-byte chunks (`rotary_dim / 2` a multiple of 8
//!   halves or 4 floats for NeoX; `rotary_dim` a multiple of 8 halves or 4 floats for GPT-J);
//!   others take one pair per thread. Every element's arithmetic is the same in both, so the
//!   kernel is deterministic and batch-invariant.
//!
//! Responsibility: core validated the views (shapes, dtypes, one device, in place one view,
//! out of place `out` disjoint from `x`, an even `rotary_dim <= head_dim`, a finite positive
//! theta); the checks (what the launch cannot do) and the launch sequence are
//! [`kernelyard_kernels::rope`]'s, shared with the ROCm backend, which this file runs through
//! [`CudaLauncher`] with the device's SM count.

use kernelyard_core::ops::rope::{Rope, RopeArgs, RopeProblem};
use kernelyard_core::{Error, KernelDef, KernelMeta, LaunchCtx};
use kernelyard_kernels::rope;

use crate::launch::CudaLauncher;
use crate::ops::nvrtc_meta;

/// The `cuda.rope` kernel: [`rope::check`] and [`rope::launch`] (shared with the ROCm backend)
/// through [`CudaLauncher`].
pub static ROPE: KernelDef<Rope> = KernelDef::<Rope>::new(META, launch)
    .with_check(rope::check)
    .with_prepare(crate::ops::prepare_nvrtc::<Rope>);
kernelyard_core::register!(ROPE);

const META: KernelMeta = nvrtc_meta::<Rope>(
    "cuda.rope",
    module_path!(),
    "rotary embedding with f64-reduced angles, cos/sin shared across heads, 16-byte I/O",
);

fn launch(ctx: &LaunchCtx<'_>, a: &mut RopeArgs<'_>, p: &RopeProblem) -> Result<(), Error> {
    rope::launch(&CudaLauncher, ctx.stream, ctx.caps, a, p)
}
