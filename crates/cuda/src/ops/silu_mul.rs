//! `cuda.silu_mul`: the SwiGLU activation, `out[r, j] = silu(gate[r, j]) * up[r, j]` with
//! `silu(g) = g / (1 + exp(-g))`, from `crates/kernels/kernels/silu_mul.cu`.
//!
//! # Who does what
//! Core validated the views (fused `x [rows, 2d]` or split `gate`/`up [rows, d]`, `out
//! [rows, d]`, contiguous rows, one float dtype, one device, `out` disjoint from the inputs)
//! into the [`SiluMulProblem`]; the checks, the entry point, the launch shape and the launch
//! sequence are [`kernelyard_kernels::silu_mul`]'s (shared with the ROCm backend), which this
//! file runs through [`CudaLauncher`]; the kernel assumes valid inputs. Math is f32 for every
//! dtype, rounded once to the dtype.
//!
//! # Launch configuration
//! [`plan`](kernelyard_kernels::silu_mul::plan) from `d`, the element size and the alignment
//! alone: 16-byte accesses (`_v` entry points) when every pointer, row stride and the fused
//! `up` offset are 16-byte aligned, element accesses (`_s`) otherwise; blocks of up to 256
//! threads over the columns of one or more rows. Each output depends only on its two inputs,
//! by the same arithmetic on both paths and every launch shape: deterministic and
//! batch-invariant.
//!
//! # Bytes moved
//! `3 * rows * d * size`: gate and up read once, out written once.

use kernelyard_core::ops::silu_mul::{SiluMul, SiluMulArgs, SiluMulProblem};
use kernelyard_core::{Error, KernelDef, KernelMeta, LaunchCtx};
use kernelyard_kernels::silu_mul;

use crate::launch::CudaLauncher;
use crate::ops::nvrtc_meta;

/// The `cuda.silu_mul` kernel: [`silu_mul::check`] and [`silu_mul::launch`] (shared with the
/// ROCm backend) through [`CudaLauncher`].
pub static SILU_MUL: KernelDef<SiluMul> = KernelDef::<SiluMul>::new(META, launch)
    .with_check(silu_mul::check)
    .with_prepare(crate::ops::prepare_nvrtc::<SiluMul>);
kernelyard_core::register!(SILU_MUL);

const META: KernelMeta = nvrtc_meta::<SiluMul>(
    "cuda.silu_mul",
    module_path!(),
    "SwiGLU silu(gate) * up, fused or split input, f32 math; 16-byte accesses",
);

fn launch(ctx: &LaunchCtx<'_>, a: &mut SiluMulArgs<'_>, p: &SiluMulProblem) -> Result<(), Error> {
    silu_mul::launch(&CudaLauncher, ctx.stream, ctx.caps, a, p)
}
