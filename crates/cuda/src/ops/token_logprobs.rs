//! `cuda.token_logprobs`: `log_softmax(logits / T)[target]` per row, and optionally the row's
//! entropy, in one read of the logits (`kernels/token_logprobs.cu`).
//!
//! - **Design.** One CTA per row (per split of 32 KiB for longer rows, in the same launch: the
//!   row's last CTA to finish merges the splits in split order,
//!   [`kernelyard_kernels::token_logprobs::splits`]); an online log-sum-exp in base 2
//!   (`y = x log2(e) / T`, with
//!   `ex2.approx`) that also carries `sum 2^(y - m) (y - m)`, rescaled when the running max
//!   grows, so the entropy comes out of the same pass: `H = (log2 s - w / s) ln 2`. The row is
//!   read as 16-byte chunks, [`UNROLL`](kernelyard_kernels::token_logprobs::UNROLL) loads in
//!   flight per thread; the block size depends on the vocabulary size and dtype only
//!   ([`block_threads`](kernelyard_kernels::token_logprobs::block_threads)). The source, its
//!   entry points, the launch shapes, the checks and the launch sequence are in
//!   [`kernelyard_kernels::token_logprobs`], shared with the ROCm backend; this file owns the
//!   checked mode's slot and runs the sequence through [`CudaLauncher`].
//! - **Bytes.** Reads `tokens * vocab * dtype.size()` bytes of logits once (plus the targets and
//!   one target logit per row) and writes 4 bytes per row (8 with the entropy): the logits are
//!   the whole cost, so the kernel is judged against the device's read bandwidth. Measured on
//!   an H100 (bf16, entropy on): 2.89 TB/s at [4096, 151936] and 2.92 TB/s at [16384, 32000],
//!   about the device's read ceiling, 1.97x and 2.2x `torch.compile` in the same run.
//! - **Alignment.** The `_v16` entry points (16-byte loads) run when the problem is 16-byte
//!   aligned; the others load element by element. Both fold the same chunks in the same order,
//!   so a row gives the same bits whichever one its batch selects: deterministic and
//!   batch-invariant.
//! - **Targets.** `ignore_index` gives 0 (the entropy is still written); an out-of-range target
//!   gives NaN. In the checked mode the launch allocates 8 bytes of device memory, runs
//!   `token_logprobs_check` (the least bad row, by `atomicMin`) before the main kernel (which
//!   then writes nothing if a row is bad), **synchronizes the stream**, and returns
//!   [`Error::TargetOutOfRange`] for the first bad row. The checked mode therefore cannot be
//!   captured in a CUDA graph: on a capturing stream it returns `CaptureForbidden` and queues
//!   nothing. The unchecked mode is asynchronous and capturable.
//! - **Scratch and counters.** Split rows write their partial states to the stream's workspace
//!   (`workspace` in `ops/gemm.rs`, shared with cuBLASLt: work on one stream runs in order,
//!   and nothing needs the states after the launch) and count their CTAs in on the stream's
//!   arrival counters (`crate::counters`: zeroed once, written by no other kernel, left at
//!   zero by each launch, so no memset per launch). Both are made by `prepare` (or the first
//!   launch outside a capture) and freed by [`crate::release_stream`]; 32 MiB hold about 280k
//!   rows of a 151936-entry bf16 vocabulary, the counters 65536 rows, and more rows run in
//!   passes.
//!
//! Responsibility: core validated the views (shapes, dtypes, devices, no aliasing, a finite
//! positive temperature); [`kernelyard_kernels::token_logprobs::check`] rejects what the launch
//! cannot do.

use std::ffi::c_void;

use cudarc::driver::{result, sys};
use kernelyard_core::ops::token_logprobs::{
    TokenLogprobs, TokenLogprobsArgs, TokenLogprobsProblem,
};
use kernelyard_core::{DType, DeviceId, Error, KernelDef, KernelMeta, LaunchCtx, Stream};

use kernelyard_kernels::token_logprobs;

use crate::device::bind;
use crate::error::drv;
use crate::launch::CudaLauncher;
use crate::ops::gemm::Workspace;
use crate::ops::nvrtc_meta;

/// The `cuda.token_logprobs` kernel: [`token_logprobs::check`], and the checked mode around
/// [`token_logprobs::launch`] (shared with the ROCm backend) through [`CudaLauncher`].
pub static TOKEN_LOGPROBS: KernelDef<TokenLogprobs> =
    KernelDef::<TokenLogprobs>::new(META, launch_checked)
        .with_check(token_logprobs::check)
        .with_prepare(prepare);
kernelyard_core::register!(TOKEN_LOGPROBS);

const META: KernelMeta = nvrtc_meta::<TokenLogprobs>(
    "cuda.token_logprobs",
    module_path!(),
    "one-pass online log-sum-exp with entropy, one CTA per row, 16-byte streaming loads",
);

/// Eight bytes of device memory for the checked mode's first bad row, freed on drop after the
/// stream has finished with it.
struct BadRow {
    device: DeviceId,
    stream: sys::CUstream,
    ptr: sys::CUdeviceptr,
}

impl BadRow {
    /// Allocates the slot and queues its initialisation to `u64::MAX` ("no bad row").
    fn new(stream: &Stream) -> Result<Self, Error> {
        let device = stream.device();
        bind(device)?;
        // SAFETY: the device's context is current.
        let ptr = drv("cuMemAlloc", unsafe { result::malloc_sync(8) })?;
        let slot = BadRow {
            device,
            stream: stream.raw() as sys::CUstream,
            ptr,
        };
        // SAFETY: `ptr` holds 8 bytes; the stream is a live stream of the device.
        drv("cuMemsetD8Async", unsafe {
            result::memset_d8_async(slot.ptr, 0xff, 8, slot.stream)
        })?;
        Ok(slot)
    }

    /// Waits for the stream and reads the slot: the first bad row, if any.
    fn read(&self) -> Result<Option<usize>, Error> {
        bind(self.device)?;
        // SAFETY: the stream is a live stream of the bound device.
        drv("cuStreamSynchronize", unsafe {
            result::stream::synchronize(self.stream)
        })?;
        let mut row = [0u64; 1];
        // SAFETY: the slot holds 8 bytes and no queued work writes it any more.
        drv("cuMemcpyDtoH", unsafe {
            result::memcpy_dtoh_sync(&mut row, self.ptr)
        })?;
        Ok((row[0] != u64::MAX).then_some(row[0] as usize))
    }
}

impl Drop for BadRow {
    fn drop(&mut self) {
        if bind(self.device).is_ok() {
            // SAFETY: the stream is live; once it has drained no kernel uses the slot, which
            // was allocated by `new` and is freed once. On failure the 8 bytes leak.
            unsafe {
                let _ = result::stream::synchronize(self.stream);
                let _ = result::free_sync(self.ptr);
            }
        }
    }
}

/// Loads the module and, for split rows, makes the stream's workspace (the partial states'
/// scratch) and arrival counters, so that a launch inside a graph capture makes nothing.
fn prepare(meta: &KernelMeta, ctx: &LaunchCtx<'_>, p: &TokenLogprobsProblem) -> Result<(), Error> {
    crate::ops::prepare_nvrtc::<TokenLogprobs>(meta, ctx, p)?;
    if token_logprobs::scratch_bytes(p) > 0 {
        bind(ctx.stream.device())?;
        crate::counters::counters(ctx.stream)?;
        crate::ops::gemm::workspace(ctx.stream)?;
    }
    Ok(())
}

/// The split path's memory when `p`'s rows are split, else none: the stream's workspace
/// ([`crate::ops::gemm::workspace`], held while the launches are enqueued) for the partial
/// states, and the stream's arrival counters ([`crate::counters::counters`]).
fn split_mem(
    stream: &Stream,
    p: &TokenLogprobsProblem,
) -> Result<(Option<Workspace>, token_logprobs::SplitMem), Error> {
    if token_logprobs::scratch_bytes(p) == 0 {
        return Ok((None, token_logprobs::SplitMem::NONE));
    }
    bind(stream.device())?;
    // The counters first: a first use zeroes them and waits, not holding the workspace.
    let counters = crate::counters::counters(stream)?;
    let ws = crate::ops::gemm::workspace(stream)?;
    let mem = token_logprobs::SplitMem {
        scratch: token_logprobs::Scratch {
            ptr: ws.ptr as *mut c_void,
            bytes: crate::ops::gemm::WORKSPACE_BYTES,
        },
        counters: token_logprobs::Counters {
            ptr: counters as *mut c_void,
            len: crate::counters::COUNTERS,
        },
    };
    Ok((Some(ws), mem))
}

/// Reads target `row` from device memory (the value the error reports).
fn read_target(targets: *const c_void, dtype: DType, row: usize) -> Result<i64, Error> {
    let at = targets as sys::CUdeviceptr + (row * dtype.size()) as sys::CUdeviceptr;
    // SAFETY: `row < tokens` (the kernel only records rows it read) and core validated the
    // targets view: `[tokens]` contiguous elements of `dtype` on the bound device.
    unsafe {
        if dtype == DType::I32 {
            let mut t = [0i32; 1];
            drv("cuMemcpyDtoH", result::memcpy_dtoh_sync(&mut t, at))?;
            Ok(i64::from(t[0]))
        } else {
            let mut t = [0i64; 1];
            drv("cuMemcpyDtoH", result::memcpy_dtoh_sync(&mut t, at))?;
            Ok(t[0])
        }
    }
}

/// Runs the shared launch sequence with, in the checked mode, a slot for the first bad row,
/// then waits for it and reports that row's target.
fn launch_checked(
    ctx: &LaunchCtx<'_>,
    a: &mut TokenLogprobsArgs<'_>,
    p: &TokenLogprobsProblem,
) -> Result<(), Error> {
    let stream = ctx.stream;
    if a.checked {
        crate::capture::guard(stream, || {
            "token_logprobs in the checked mode (it allocates and synchronises)".to_owned()
        })
        .map_err(|e| match e {
            Error::CaptureForbidden { what, stream, .. } => Error::CaptureForbidden {
                what,
                stream,
                fix: "use the unchecked mode inside graphs (an out-of-range target gives NaN),                       or check the targets before capture",
            },
            e => e,
        })?;
    }
    let bad_row = if a.checked {
        Some(BadRow::new(stream)?)
    } else {
        None
    };
    let bad = bad_row
        .as_ref()
        .map_or(std::ptr::null_mut(), |b| b.ptr as *mut c_void);
    let targets = a.targets.as_ptr();
    let (held, mem) = split_mem(stream, p)?;
    // SAFETY: `bad` is null or the slot's 8 bytes of device memory on the stream's device,
    // which `BadRow`'s drop frees only after the stream has drained; `mem` is none or the
    // stream's own workspace and arrival counters, which live until `release_stream` and are
    // used only by work on this stream, in order (`held` keeps other users' launches out of
    // the sequence); the counters are written by no kernel but the split path's, were zeroed
    // when allocated, and every split launch leaves them at zero (`crate::counters`), so they
    // are zero when this launch's kernels start.
    unsafe { token_logprobs::launch(&CudaLauncher, stream, ctx.caps, a, p, bad, mem)? };
    drop(held);
    if let Some(slot) = bad_row {
        if let Some(row) = slot.read()? {
            let target = read_target(targets, p.target_dtype, row)?;
            return Err(Error::TargetOutOfRange {
                row,
                target,
                vocab: p.vocab,
            });
        }
    }
    Ok(())
}
