//! `cuda.selective_state_update`: one Mamba decode step (`mamba_ssm`'s
//! `selective_state_update`), the state updated in place, from
//! `crates/kernels/kernels/selective_state_update.cu`.
//!
//! # Who does what
//! Core validated the views (`state [cache_slots, H, P, N]` in any float dtype, `x`, `dt`, `z`,
//! `out [B, H, P]` and `Bm`, `Cm [B, G, N]` in one float dtype, f32 `A`, `D`, `dt_bias`,
//! optional i32/i64 `state_indices [B]`, contiguous, one device, `out` and the state disjoint
//! from every input; host-readable indices in range and distinct) into the
//! [`SelectiveStateUpdateProblem`]; the checks, the entry point, the launch shape and the
//! launch sequence are [`kernelyard_kernels::selective_state_update`]'s (shared with the ROCm
//! backend), which this file runs through [`CudaLauncher`]. The kernel assumes valid inputs but
//! guards device-resident indices: the pad slot -1 gives a zero output row, any other index
//! outside the cache a NaN row, neither touching the state. Math is f32 for every dtype.
//!
//! # Launch configuration
//! [`plan_tactic`](kernelyard_kernels::selective_state_update::plan_tactic) from `N`, the
//! dtypes, the alignment and the tactic (the grid's size from the rows). The tactics `tile4`,
//! `tile8`, `tile16`, `tile32` run the **tiled kernel** on the 16-byte path with `N` up to 256
//! (f32 state) / 512 (half state): a block keeps `128 / L` rows `(h, p)` for tiles of that many
//! batch entries, A in registers once per tile. By default (and where the tiled kernel does not
//! apply) the **row kernel**: `L` lanes of a warp per `(b, h, p)` row (1 to
//! 32, at most 4 chunks of 16 bytes of state each), 128-thread blocks, 16-byte accesses (`_v`)
//! when every pointer and row stride is 16-byte aligned and `N * state size` is a multiple of
//! 16, element accesses (`_s`) otherwise, with the same bits. Each lane sums its elements in
//! increasing `n` and the `L` lanes combine by a fixed butterfly: deterministic and
//! batch-invariant. `N` up to 512 (f32 state) or 1024 (f16/bf16 state); any batch, any
//! `head_dim`.
//!
//! # Bytes moved
//! `2 * B * H * P * N * state size` (the state rows read and written), plus the `[B, H, P]`
//! tensors and, mostly from cache, Bm, Cm, A, `D` and `dt_bias`. Measured speeds:
//! docs/BENCHMARKS.md.
//!
//! A Hopper variant (`cuda.selective_state_update.sm90`) is not registered: see the shared
//! module's docs for why.

use kernelyard_core::ops::selective_state_update::{
    SelectiveStateUpdate, SelectiveStateUpdateArgs, SelectiveStateUpdateProblem,
};
use kernelyard_core::{Error, KernelDef, KernelMeta, LaunchCtx};
use kernelyard_kernels::selective_state_update;

use crate::launch::CudaLauncher;
use crate::ops::nvrtc_meta;

/// The `cuda.selective_state_update` kernel: [`selective_state_update::check`] and
/// [`selective_state_update::launch`] (shared with the ROCm backend) through [`CudaLauncher`].
pub static SELECTIVE_STATE_UPDATE: KernelDef<SelectiveStateUpdate> =
    KernelDef::<SelectiveStateUpdate>::new(META, launch)
        .with_check(selective_state_update::check)
        .with_prepare(crate::ops::prepare_nvrtc::<SelectiveStateUpdate>);
kernelyard_core::register!(SELECTIVE_STATE_UPDATE);

const META: KernelMeta = nvrtc_meta::<SelectiveStateUpdate>(
    "cuda.selective_state_update",
    module_path!(),
    "Mamba decode step (mamba_ssm selective_state_update), state in place, f32 math; lanes of \
     a warp per (b, h, p) row, 16-byte accesses; batch-tiled tactics",
)
.tactics(selective_state_update::TACTICS);

fn launch(
    ctx: &LaunchCtx<'_>,
    a: &mut SelectiveStateUpdateArgs<'_>,
    p: &SelectiveStateUpdateProblem,
) -> Result<(), Error> {
    selective_state_update::launch(&CudaLauncher, ctx.stream, ctx.caps, a, p, ctx.tactic)
}
