//! `rocm.silu_mul`: `out = silu(gate) * up` over rows, fused or split input, from the source,
//! check and launch sequence shared with the CUDA backend (`kernelyard_kernels::silu_mul`),
//! launched through HIP.

use kernelyard_core::ops::silu_mul::{SiluMul, SiluMulArgs, SiluMulProblem};
use kernelyard_core::{Capabilities, Error, KernelDef, LaunchCtx, Reason};
use kernelyard_kernels::silu_mul;

use super::{checked, rocm_meta, with_gpu, ANY_GFX};

/// The `rocm.silu_mul` kernel.
pub static SILU_MUL: KernelDef<SiluMul> = KernelDef::<SiluMul>::new(
    rocm_meta::<SiluMul>(
        "rocm.silu_mul",
        ANY_GFX,
        module_path!(),
        "SwiGLU activation silu(gate) * up, fused or split input, f32 math (kernels/silu_mul.cu \
         via hiprtc)",
    ),
    launch,
)
.with_check(check);
kernelyard_core::register!(SILU_MUL);

fn check(caps: &Capabilities, p: &SiluMulProblem, reasons: &mut Vec<Reason>) {
    checked(caps, p, reasons, silu_mul::check);
}

fn launch(ctx: &LaunchCtx<'_>, a: &mut SiluMulArgs<'_>, p: &SiluMulProblem) -> Result<(), Error> {
    with_gpu(ctx, |gpu| silu_mul::launch(gpu, ctx.stream, ctx.caps, a, p))
}
