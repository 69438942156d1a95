//! `cuda.attention.decode`: attention for few queries against long keys (decode, short-query
//! prefill), split over the keys with a fixed-order combine, from
//! `crates/kernels/kernels/attention_decode.cu` (no tensor cores: sm_75 and newer, f32, f16 and
//! bf16).
//!
//! - **Design.** One CTA per (batch entry, key/value head, split of
//!   [`CHUNK`](kernelyard_kernels::attention_decode::CHUNK) keys) for all the query rows of the
//!   GQA group (`(Hq / Hkv) * Sq`, at most
//!   [`MAX_ROWS`](kernelyard_kernels::attention_decode::MAX_ROWS)), so K and V are read once per
//!   group, then one warp per query row merges the splits in order. The split count depends on
//!   `seq_kv` alone: deterministic and batch-invariant. The plan, checks and launch sequence are
//!   [`kernelyard_kernels::attention_decode`]'s.
//! - **Selection.** Priority 30, above the tensor-core prefill kernels (10, 11): a problem it
//!   can run (few query rows per key/value head) is a decode step, which the prefill kernels
//!   run through a 128-query tile and no key split.
//! - **Bytes.** K and V are read once (`2 B Skv Hkv D` elements); q, the outputs and the
//!   scratch (`B Hq Sq splits (D + 2)` floats, written and read once) are small beside them.
//! - **Scratch.** The partial results go to the stream's workspace
//!   (`workspace` in `ops/gemm.rs`, shared with cuBLASLt and token_logprobs; work on a stream
//!   runs in order), made by `prepare`; batches larger than it holds run in passes.
//!
//! Responsibility: core validated the views; [`attention_decode::check`] rejects what the
//! kernels cannot run (head dim, query rows, shared memory).

use std::ffi::c_void;

use kernelyard_core::ops::attention::{Attention, AttentionArgs, AttentionProblem};
use kernelyard_core::{Error, KernelDef, KernelMeta, LaunchCtx, Stream};
use kernelyard_kernels::attention_decode;

use crate::device::bind;
use crate::launch::CudaLauncher;
use crate::ops::gemm::Workspace;
use crate::ops::nvrtc_meta;

/// The `cuda.attention.decode` kernel.
pub static ATTENTION_DECODE: KernelDef<Attention> = KernelDef::<Attention>::new(META, launch)
    .with_check(attention_decode::check)
    .with_prepare(prepare);
kernelyard_core::register!(ATTENTION_DECODE);

const META: KernelMeta = nvrtc_meta::<Attention>(
    "cuda.attention.decode",
    module_path!(),
    "attention for up to 8 query rows per key/value head against long keys (decode): split \
     over the keys (a count fixed by seq_kv), GQA heads read K/V once, fixed-order combine; \
     batch-invariant, deterministic",
)
.align(16)
.priority(30);

/// Loads the module and makes the stream's workspace, so a launch inside a graph capture makes
/// nothing.
fn prepare(meta: &KernelMeta, ctx: &LaunchCtx<'_>, p: &AttentionProblem) -> Result<(), Error> {
    crate::ops::prepare_nvrtc::<Attention>(meta, ctx, p)?;
    bind(ctx.stream.device())?;
    crate::ops::gemm::workspace(ctx.stream)?;
    Ok(())
}

/// The stream's workspace, held while the launches are enqueued, as the kernels' scratch.
fn scratch(stream: &Stream) -> Result<(Workspace, attention_decode::Scratch), Error> {
    bind(stream.device())?;
    let ws = crate::ops::gemm::workspace(stream)?;
    let scratch = attention_decode::Scratch {
        ptr: ws.ptr as *mut c_void,
        bytes: crate::ops::gemm::WORKSPACE_BYTES,
    };
    Ok((ws, scratch))
}

fn launch(
    ctx: &LaunchCtx<'_>,
    a: &mut AttentionArgs<'_>,
    p: &AttentionProblem,
) -> Result<(), Error> {
    // `_held` keeps other users of the stream's workspace out of the launch sequence.
    let (_held, scratch) = scratch(ctx.stream)?;
    // SAFETY: `scratch` is the stream's own workspace, which lives until `release_stream` and
    // is used only by work on this stream, in order.
    unsafe { attention_decode::launch(&CudaLauncher, ctx.stream, a, p, scratch) }
}
