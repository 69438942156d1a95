//! `cuda.attention.decode.mma`: attention for few query rows per key/value head against long
//! keys (decode, short-query prefill) on tensor cores (`mma.sync.m16n8k16`, sm_80 and newer,
//! f16 and bf16), split over the keys with a fixed-order combine, from
//! `kernels/attention_decode_mma.cu` (issue 18).
//!
//! - **Design.** One CTA per (batch entry, split of [`chunk`] keys, key/value head: in this
//!   order, so CTAs launched together read whole rows of K and V across the heads) for the
//!   `R = (Hq / Hkv) * Sq <= 16` query rows of the GQA group, which are the 16 M rows of every
//!   `mma.sync` (rows past `R` are zero and never stored), so K and V are read once per group
//!   and each key costs a few tensor-core instructions instead of SIMT dot products and
//!   shuffles (`cuda.attention.decode`, v1, was bound by that work). The split's keys stream
//!   through [`Tiling::stages`] shared-memory stages of [`Tiling::block_n`] keys (a K and a V
//!   tile of 32 KiB together) by `cp.async`, one barrier per tile; warp `w` owns keys `w *
//!   block_n / warps ..` of every tile with its own online softmax (attention.cu's arithmetic:
//!   `S = Q K^T` with the q fragments in registers for the whole split, base-2 scaling and
//!   masking in f32, `P` rounded to the dtype as the A fragment of `O += P V`). At the end the
//!   warps merge in warp order through shared memory and write `(m, l, O)` to the split's
//!   scratch slot (`D + 2` floats, the SIMT kernel's layout). Then the combine, one CTA of
//!   [`COMBINE_THREADS`] per (query row, 32 columns), merges the row's splits in a fixed order
//!   (weights `2^(m_s - M)`; the sum over splits by 8 warps in split order, then the warps in
//!   order) into `out` and `lse`.
//! - **The split rule.** [`chunk`]`(Skv)` = [`CHUNK`] keys up to [`MAX_SPLITS`] splits, longer
//!   chunks (multiples of 128) past that; [`splits`] = `ceil(Skv / chunk)`. Functions of `Skv`
//!   alone: never of the batch, the heads or the device.
//! - **Tilings** ([`tiling`], one per head dim, `adm::Cfg<D>` in the kernel): 4 warps and
//!   128-key tiles at D = 64, 4 warps and 64-key tiles at D = 128, 2 warps and 32-key tiles at
//!   D = 256; 3 stages: 96 KiB of shared memory at every head dim, which fits the 99 KiB per
//!   block of sm_86 / sm_89 / sm_120, and two CTAs per A100 / H100 SM. nvcc 13.0, sm_90: 141 /
//!   185 / 255 registers at D = 64 / 128 / 256, no spills.
//! - **Bytes and FLOPs.** K and V are read once (`2 B Skv Hkv D` elements); q, `out` and the
//!   scratch (`B Hq Sq splits (D + 2)` floats written and read once: 1.6 % of K and V at
//!   torch_ops.py's decode shapes) are small beside them. Per key and CTA the tensor cores do
//!   `2 * 16 * D * 2` FLOPs (16 rows whatever `R`): 4x the useful work at G = 4, Sq = 1, and
//!   still far below what memory allows.
//! - **Why it is deterministic and batch-invariant.** The tiling depends on the head dim, the
//!   split count on `Skv`; every sum (the quad butterflies, a warp's keys in tile order, the
//!   warps in order, the splits in order) runs in an order they fix; no atomics. A row's bits
//!   do not depend on the batch, the other rows, the pass it runs in or the device.
//! - **Selection.** Priority 31, above `cuda.attention.decode` (30, SIMT, which keeps sm_75,
//!   f32, other head dims and ROCm) and the prefill kernels (10, 11): on sm_80+ a problem it
//!   takes (f16/bf16, head dim 64/128/256, at most 16 query rows per key/value head) is a
//!   decode step, which it runs with the fewest instructions per key.
//! - **Scratch.** The partial results go to the stream's workspace (`workspace` in
//!   `ops/gemm.rs`, shared with cuBLASLt, token_logprobs and `cuda.attention.decode`; work on a
//!   stream runs in order), made by `prepare`; batches larger than it holds run in passes.
//!
//! Responsibility: core validated the views into the [`AttentionProblem`] (shapes, one dtype,
//! contiguous, `Hq % Hkv == 0`, outputs disjoint from inputs) and the static requirements
//! (sm_80+, f16/bf16, 16-byte alignment for `cp.async`); [`check`] rejects what the launch
//! cannot run (another head dim, more than 16 query rows per key/value head, a device whose
//! opt-in shared memory is below [`Tiling::shared_bytes`], sizes past the kernel's indices);
//! the kernels assume valid inputs.

use std::ffi::c_void;

use kernelyard_core::ops::attention::{Attention, AttentionArgs, AttentionProblem};
use kernelyard_core::{
    Capabilities, DType, Error, KernelDef, KernelMeta, LaunchCtx, Reason, Stream,
};
use kernelyard_kernels::attention_decode::{self, PassPointers};
use kernelyard_kernels::launch::{Dims, Launch, Scratch};

use crate::device::bind;
use crate::launch::CudaLauncher;
use crate::ops::gemm::Workspace;
use crate::ops::{tensor_core_meta, TensorCores};
use crate::source::KernelSource;

/// The kernel source and its entry points: the split kernels per dtype and head dim (the order
/// [`HEAD_DIMS`] and [`symbols`] index), then the combines.
pub static SOURCE: KernelSource = KernelSource {
    file: "attention_decode_mma.cu",
    code: include_str!("../../kernels/attention_decode_mma.cu"),
    symbols: &[
        "attention_decode_mma_f16_d64",
        "attention_decode_mma_f16_d128",
        "attention_decode_mma_f16_d256",
        "attention_decode_mma_bf16_d64",
        "attention_decode_mma_bf16_d128",
        "attention_decode_mma_bf16_d256",
        "attention_decode_mma_f16_combine",
        "attention_decode_mma_bf16_combine",
    ],
};

/// The head dims with an entry point.
pub const HEAD_DIMS: [usize; 3] = [64, 128, 256];
/// Most query rows per key/value head, `(Hq / Hkv) * Sq`: the 16 M rows of an mma
/// (`ADM_MAX_ROWS`).
pub const MAX_ROWS: usize = 16;
/// Keys per split while the split count stays within [`MAX_SPLITS`].
pub const CHUNK: usize = 512;
/// Most splits per key/value head (the combine keeps a weight per split in shared memory).
pub const MAX_SPLITS: usize = 1024;
/// Longer chunks are multiples of this (the largest tile, D = 64's 128 keys).
pub const CHUNK_STEP: usize = 128;
/// Threads per CTA of the combine (`ADM_COMBINE_THREADS`: 8 warps of 32 columns).
pub const COMBINE_THREADS: u32 = 256;
/// Floats of a scratch slot besides the `D` accumulators: the row's max and sum.
pub const SLOT_EXTRA: usize = 2;

/// The tiling of one head dim (`adm::Cfg<D>` / `adm::Shape<D>` in the kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiling {
    /// Threads per CTA (`THREADS`, 32 per warp).
    pub threads: u32,
    /// Keys per tile (`BN`): each warp owns `block_n / warps` of them.
    pub block_n: usize,
    /// Tiles in flight (`STAGES`).
    pub stages: usize,
}

impl Tiling {
    /// Dynamic shared memory of the split kernel at head dim `head_dim`, bytes
    /// (`adm::Shape<D>::BYTES`): `stages` stages of a K and a V tile of 16-bit rows.
    pub const fn shared_bytes(&self, head_dim: usize) -> u64 {
        (self.stages * 2 * self.block_n * head_dim * 2) as u64
    }
}

/// The tiling of head dim `head_dim`, if it has an entry point: the same 32 KiB stages at every
/// head dim (4 warps of 32 keys at 64, 4 warps of 16 keys at 128, 2 warps of 16 keys at 256).
pub const fn tiling(head_dim: usize) -> Option<Tiling> {
    match head_dim {
        64 => Some(Tiling {
            threads: 128,
            block_n: 128,
            stages: 3,
        }),
        128 => Some(Tiling {
            threads: 128,
            block_n: 64,
            stages: 3,
        }),
        256 => Some(Tiling {
            threads: 64,
            block_n: 32,
            stages: 3,
        }),
        _ => None,
    }
}

/// Keys per split for a key length of `seq_kv`: [`CHUNK`], or the multiple of [`CHUNK_STEP`]
/// that keeps the split count within [`MAX_SPLITS`].
pub fn chunk(seq_kv: usize) -> usize {
    let spread = seq_kv
        .div_ceil(MAX_SPLITS)
        .div_ceil(CHUNK_STEP)
        .saturating_mul(CHUNK_STEP);
    spread.max(CHUNK)
}

/// How many splits a key length of `seq_kv` has: `ceil(Skv / chunk(Skv))`, at least 1.
pub fn splits(seq_kv: usize) -> usize {
    seq_kv.div_ceil(chunk(seq_kv)).max(1)
}

/// Query rows per key/value head.
pub fn rows(p: &AttentionProblem) -> usize {
    (p.heads_q / p.heads_kv.max(1)).saturating_mul(p.seq_q)
}

/// The split kernel and the combine for `dtype` and `head_dim`, if the source has them.
pub fn symbols(dtype: DType, head_dim: usize) -> Option<(&'static str, &'static str)> {
    let d = match dtype {
        DType::F16 => 0,
        DType::BF16 => 1,
        _ => return None,
    };
    let h = HEAD_DIMS.iter().position(|&x| x == head_dim)?;
    let s = SOURCE.symbols;
    Some((s[d * HEAD_DIMS.len() + h], s[2 * HEAD_DIMS.len() + d]))
}

/// Bytes of one batch entry's scratch slots.
fn entry_scratch(p: &AttentionProblem) -> usize {
    p.heads_q
        .saturating_mul(p.seq_q)
        .saturating_mul(splits(p.seq_kv))
        .saturating_mul(p.head_dim.saturating_add(SLOT_EXTRA))
        .saturating_mul(4)
}

/// Scratch bytes for all of `p`'s batch entries in one pass. A launch given less runs the batch
/// in passes of as many entries as fit.
pub fn scratch_bytes(p: &AttentionProblem) -> usize {
    entry_scratch(p).saturating_mul(p.batch)
}

/// Pushes the reasons the kernels cannot run `p`: a head dim without an entry point, more than
/// [`MAX_ROWS`] query rows per key/value head, opt-in shared memory per block below the head
/// dim's [`Tiling::shared_bytes`], sizes past the kernels' 32-bit indices. None depends on the
/// batch. (The dtype, arch and alignment are the static check's.)
pub fn check(caps: &Capabilities, p: &AttentionProblem, reasons: &mut Vec<Reason>) {
    match tiling(p.head_dim) {
        None => reasons.push(Reason::ShapeUnsupported {
            what: format!(
                "head_dim {} (the tensor-core decode kernel has head dims {HEAD_DIMS:?})",
                p.head_dim
            ),
        }),
        Some(t) => {
            let need = t.shared_bytes(p.head_dim);
            if need > caps.shared_mem_per_block_optin {
                reasons.push(Reason::SharedMemory {
                    need,
                    have: caps.shared_mem_per_block_optin,
                });
            }
        }
    }
    let r = rows(p);
    if r > MAX_ROWS {
        reasons.push(Reason::ShapeUnsupported {
            what: format!(
                "(heads_q / heads_kv) * seq_q = {r} query rows per key/value head (the \
                 tensor-core decode kernel takes at most {MAX_ROWS}, the M rows of an mma; \
                 longer queries are prefill)"
            ),
        });
    }
    attention_decode::check_grid(p, splits(p.seq_kv), reasons);
    let limit = i32::MAX as usize;
    if p.heads_q
        .saturating_mul(p.seq_q)
        .saturating_mul(p.head_dim / 32)
        > limit
    {
        reasons.push(Reason::ShapeUnsupported {
            what: format!(
                "{} query rows x {} column slices: one batch entry's combine needs more than \
                 2^31 - 1 CTAs",
                p.heads_q.saturating_mul(p.seq_q),
                p.head_dim / 32
            ),
        });
    }
}

/// Queues `p` on `stream` through `gpu`: per pass of batch entries, the split kernel then the
/// combine. Core validated `a` into `p`, and [`check`] accepted it. (The CUDA kernel launches
/// through [`CudaLauncher`]; the suite's CPU emulator through its own [`Launch`].)
///
/// # Safety
/// `scratch.ptr` must point at `scratch.bytes` bytes of device memory on the stream's device
/// that nothing else uses until the work queued here completes.
pub unsafe fn launch_with(
    gpu: &dyn Launch,
    stream: &Stream,
    a: &mut AttentionArgs<'_>,
    p: &AttentionProblem,
    scratch: Scratch,
) -> Result<(), Error> {
    let misuse = |what: String| Error::NoEntryPoint {
        file: SOURCE.file,
        what,
    };
    let (split, combine) = symbols(p.dtype, p.head_dim)
        .ok_or_else(|| misuse(format!("{} with head_dim {}", p.dtype, p.head_dim)))?;
    let t = tiling(p.head_dim)
        .ok_or_else(|| misuse(format!("a tiling for head_dim {}", p.head_dim)))?;
    let per_entry = entry_scratch(p);
    let nsplits = splits(p.seq_kv);
    let ctas_per_entry = nsplits * p.heads_kv;
    let combine_per_entry = p.heads_q * p.seq_q * (p.head_dim / 32);
    // Entries per pass: what the scratch holds, and grids of at most 2^31 - 1 CTAs (`check`
    // keeps one entry's within them).
    let pass = (scratch.bytes / per_entry.max(1))
        .min(i32::MAX as usize / ctas_per_entry.max(1))
        .min(i32::MAX as usize / combine_per_entry.max(1));
    if scratch.ptr.is_null() || pass == 0 {
        return Err(misuse(format!(
            "a batch entry without scratch memory for its {per_entry} bytes (a bug in the \
             backend)"
        )));
    }
    let (seq_q, seq_kv) = (p.seq_q as i64, p.seq_kv as i64);
    let (heads_q, heads_kv, head_dim) = (p.heads_q as i64, p.heads_kv as i64, p.head_dim as i64);
    let (splits_arg, chunk_arg) = (nsplits as i64, chunk(p.seq_kv) as i64);
    let scale_log2 = (f64::from(a.effective_scale()) * std::f64::consts::LOG2_E) as f32;
    let causal = i64::from(p.causal);
    let part = scratch.ptr;
    let mut b0 = 0;
    while b0 < p.batch {
        let entries = pass.min(p.batch - b0);
        let PassPointers { q, k, v, out, lse } = attention_decode::pass_pointers(a, p, b0);
        let dims = Dims {
            grid: ((entries * ctas_per_entry) as u32, 1, 1),
            block: (t.threads, 1, 1),
            shared_bytes: t.shared_bytes(p.head_dim) as u32,
        };
        // SAFETY: the parameters match `attention_decode_mma_<dtype>_d<D>(const void* q, const
        // void* k, const void* v, void* part, long long seq_q, long long seq_kv, long long
        // heads_q, long long heads_kv, long long splits, long long chunk, float scale_log2,
        // long long causal)`; the pass's entries lie in the validated views (16-byte aligned
        // rows, the static check); `part` holds their slots (`pass` is what the scratch holds,
        // the contract); the grid fits (`pass`) and the device's opt-in shared memory holds the
        // tiling's (`check`; the launcher raises the function's limit).
        unsafe {
            gpu.launch(
                stream,
                &SOURCE,
                split,
                dims,
                &mut kernelyard_kernels::params![
                    q, k, v, part, seq_q, seq_kv, heads_q, heads_kv, splits_arg, chunk_arg,
                    scale_log2, causal
                ],
            )?
        };
        let dims = Dims {
            grid: ((entries * combine_per_entry) as u32, 1, 1),
            block: (COMBINE_THREADS, 1, 1),
            shared_bytes: (nsplits * 4) as u32,
        };
        let part_in = part as *const c_void;
        // SAFETY: the parameters match `attention_decode_mma_<dtype>_combine(const void* part,
        // void* out, void* lse, long long seq_q, long long heads_q, long long head_dim, long
        // long splits)`; `part` holds the slots the split kernel wrote just before on this
        // stream; out and lse (null or its view) cover the pass's entries; `splits` floats of
        // shared memory (at most MAX_SPLITS: 4 KiB) fit every device.
        unsafe {
            gpu.launch(
                stream,
                &SOURCE,
                combine,
                dims,
                &mut kernelyard_kernels::params![
                    part_in, out, lse, seq_q, heads_q, head_dim, splits_arg
                ],
            )?
        };
        b0 += entries;
    }
    Ok(())
}

/// The `cuda.attention.decode.mma` kernel.
pub static ATTENTION_DECODE_MMA: KernelDef<Attention> = KernelDef::<Attention>::new(META, launch)
    .with_check(check)
    .with_prepare(prepare);
kernelyard_core::register!(ATTENTION_DECODE_MMA);

// Align 16: 16-byte cp.async of every K and V row (rows of 128, 256 or 512 bytes) and 4-byte
// loads of q.
const META: KernelMeta = tensor_core_meta::<Attention>(
    "cuda.attention.decode.mma",
    module_path!(),
    "attention for up to 16 query rows per key/value head against long keys (decode) on tensor \
     cores (mma.sync, sm_80+), head dims 64/128/256: split over the keys (a count fixed by \
     seq_kv), GQA heads read K/V once, fixed-order combine; batch-invariant, deterministic",
    TensorCores::MmaSync,
    16,
    31,
);

/// Loads the module and makes the stream's workspace, so a launch inside a graph capture makes
/// nothing.
fn prepare(meta: &KernelMeta, ctx: &LaunchCtx<'_>, p: &AttentionProblem) -> Result<(), Error> {
    crate::ops::prepare_nvrtc::<Attention>(meta, ctx, p)?;
    bind(ctx.stream.device())?;
    crate::ops::gemm::workspace(ctx.stream)?;
    Ok(())
}

/// The stream's workspace, held while the launches are enqueued, as the kernels' scratch.
fn scratch(stream: &Stream) -> Result<(Workspace, Scratch), Error> {
    bind(stream.device())?;
    let ws = crate::ops::gemm::workspace(stream)?;
    let scratch = Scratch {
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
    unsafe { launch_with(&CudaLauncher, ctx.stream, a, p, scratch) }
}

#[cfg(test)]
mod tests;
