//! `rocm.rms_norm`, `rocm.softmax`, `rocm.log_softmax` and `rocm.rope`: the CUDA backend's
//! sources, plans, checks and launch sequences (`kernelyard_kernels`), launched through HIP.

use kernelyard_core::ops::log_softmax::{LogSoftmax, LogSoftmaxArgs, LogSoftmaxProblem};
use kernelyard_core::ops::rms_norm::{RmsNorm, RmsNormArgs, RmsNormProblem};
use kernelyard_core::ops::rope::{Rope, RopeArgs, RopeProblem};
use kernelyard_core::ops::softmax::{Softmax, SoftmaxArgs, SoftmaxProblem};
use kernelyard_core::{Capabilities, Error, KernelDef, LaunchCtx, Reason};
use kernelyard_kernels::{log_softmax, rms_norm, rope, softmax};

use super::{checked, rocm_meta, with_gpu, ANY_GFX};

/// The `rocm.rms_norm` kernel.
pub static RMS_NORM: KernelDef<RmsNorm> = KernelDef::<RmsNorm>::new(
    rocm_meta::<RmsNorm>(
        "rocm.rms_norm",
        ANY_GFX,
        module_path!(),
        "RMSNorm over rows with the fused residual add, f32 math (kernels/rms_norm.cu via hiprtc)",
    ),
    launch_rms_norm,
)
.with_check(check_rms_norm);
kernelyard_core::register!(RMS_NORM);

fn check_rms_norm(caps: &Capabilities, p: &RmsNormProblem, reasons: &mut Vec<Reason>) {
    checked(caps, p, reasons, rms_norm::check);
}

fn launch_rms_norm(
    ctx: &LaunchCtx<'_>,
    a: &mut RmsNormArgs<'_>,
    p: &RmsNormProblem,
) -> Result<(), Error> {
    with_gpu(ctx, |gpu| rms_norm::launch(gpu, ctx.stream, ctx.caps, a, p))
}

/// The `rocm.softmax` kernel.
pub static SOFTMAX: KernelDef<Softmax> = KernelDef::<Softmax>::new(
    rocm_meta::<Softmax>(
        "rocm.softmax",
        ANY_GFX,
        module_path!(),
        "softmax over rows, f32 math, online max/sum (kernels/softmax.cu via hiprtc)",
    ),
    launch_softmax,
)
.with_check(check_softmax);
kernelyard_core::register!(SOFTMAX);

fn check_softmax(caps: &Capabilities, p: &SoftmaxProblem, reasons: &mut Vec<Reason>) {
    checked(caps, p, reasons, softmax::check);
}

fn launch_softmax(
    ctx: &LaunchCtx<'_>,
    a: &mut SoftmaxArgs<'_>,
    p: &SoftmaxProblem,
) -> Result<(), Error> {
    with_gpu(ctx, |gpu| softmax::launch(gpu, ctx.stream, ctx.caps, a, p))
}

/// The `rocm.log_softmax` kernel.
pub static LOG_SOFTMAX: KernelDef<LogSoftmax> = KernelDef::<LogSoftmax>::new(
    rocm_meta::<LogSoftmax>(
        "rocm.log_softmax",
        ANY_GFX,
        module_path!(),
        "log-softmax over rows, f32 math (kernels/log_softmax.cu via hiprtc)",
    ),
    launch_log_softmax,
)
.with_check(check_log_softmax);
kernelyard_core::register!(LOG_SOFTMAX);

fn check_log_softmax(caps: &Capabilities, p: &LogSoftmaxProblem, reasons: &mut Vec<Reason>) {
    checked(caps, p, reasons, log_softmax::check);
}

fn launch_log_softmax(
    ctx: &LaunchCtx<'_>,
    a: &mut LogSoftmaxArgs<'_>,
    p: &LogSoftmaxProblem,
) -> Result<(), Error> {
    with_gpu(ctx, |gpu| {
        log_softmax::launch(gpu, ctx.stream, ctx.caps, a, p)
    })
}

/// The `rocm.rope` kernel.
pub static ROPE: KernelDef<Rope> = KernelDef::<Rope>::new(
    rocm_meta::<Rope>(
        "rocm.rope",
        ANY_GFX,
        module_path!(),
        "rotary embedding, NeoX and GPT-J pairs, f64 angles (kernels/rope.cu via hiprtc)",
    ),
    launch_rope,
)
.with_check(check_rope);
kernelyard_core::register!(ROPE);

fn check_rope(caps: &Capabilities, p: &RopeProblem, reasons: &mut Vec<Reason>) {
    checked(caps, p, reasons, rope::check);
}

fn launch_rope(ctx: &LaunchCtx<'_>, a: &mut RopeArgs<'_>, p: &RopeProblem) -> Result<(), Error> {
    with_gpu(ctx, |gpu| rope::launch(gpu, ctx.stream, ctx.caps, a, p))
}
