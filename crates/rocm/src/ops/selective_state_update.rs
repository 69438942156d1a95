//! `rocm.selective_state_update`: one Mamba decode step (`mamba_ssm`'s
//! `selective_state_update`), the state updated in place, from the source, check and launch
//! sequence shared with the CUDA backend (`kernelyard_kernels::selective_state_update`),
//! launched through HIP. Its reduction runs over lanes of the logical 32-lane warp of
//! `port.cuh`, so wave32 and wave64 devices give the same bits.

use kernelyard_core::ops::selective_state_update::{
    SelectiveStateUpdate, SelectiveStateUpdateArgs, SelectiveStateUpdateProblem,
};
use kernelyard_core::{Capabilities, Error, KernelDef, LaunchCtx, Reason};
use kernelyard_kernels::selective_state_update;

use super::{checked, rocm_meta, with_gpu, ANY_GFX};

/// The `rocm.selective_state_update` kernel.
pub static SELECTIVE_STATE_UPDATE: KernelDef<SelectiveStateUpdate> =
    KernelDef::<SelectiveStateUpdate>::new(
        rocm_meta::<SelectiveStateUpdate>(
            "rocm.selective_state_update",
            ANY_GFX,
            module_path!(),
            "Mamba decode step (mamba_ssm selective_state_update), state in place, f32 math \
             (kernels/selective_state_update.cu via hiprtc)",
        )
        .tactics(selective_state_update::TACTICS),
        launch,
    )
    .with_check(check);
kernelyard_core::register!(SELECTIVE_STATE_UPDATE);

fn check(caps: &Capabilities, p: &SelectiveStateUpdateProblem, reasons: &mut Vec<Reason>) {
    checked(caps, p, reasons, selective_state_update::check);
}

fn launch(
    ctx: &LaunchCtx<'_>,
    a: &mut SelectiveStateUpdateArgs<'_>,
    p: &SelectiveStateUpdateProblem,
) -> Result<(), Error> {
    with_gpu(ctx, |gpu| {
        selective_state_update::launch(gpu, ctx.stream, ctx.caps, a, p, ctx.tactic)
    })
}
