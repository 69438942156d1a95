//! Arrival counters per stream: zero-initialised `u32`s for kernels whose CTAs count themselves
//! in, the last to arrive finishing the work (the split path of `cuda.token_logprobs`: the
//! row's last CTA merges the row).
//!
//! - **Not the stream workspace.** Other kernels write the workspace (cuBLASLt, the split GEMM,
//!   the attention decode kernels) and leave whatever they wrote; counters must be zero when a
//!   kernel starts. This memory is written only by kernels that keep the rule of
//!   [`Counters`](kernelyard_kernels::launch::Counters): each leaves every counter it touched at
//!   zero when it ends. So it is zeroed once, when allocated, never per launch (no memset per
//!   call, none in a captured graph).
//! - **Per (device, stream id)**, like the workspace: work on one stream runs in order, so two
//!   such kernels never count on the same counters at once, and two streams never share them.
//!   [`COUNTERS`] of them (256 KiB): a launch with more rows runs in passes.
//! - **Made outside graph capture.** Allocated and zeroed on first use (the stream is waited
//!   for once, so the zeros are in place whatever stream runs a graph made later) or by a
//!   kernel's `prepare`; on a capturing stream that has none yet, `CaptureForbidden` (nothing
//!   queued), as for the workspace. Freed by [`crate::release_stream`].
//! - **Graphs.** A captured graph keeps the capture stream's counters (and workspace): it must
//!   not run while other work that uses them runs (replayed on another stream during such work
//!   on the capture stream, or two replays at once), the rule the workspace already sets.
//! - **Faults.** A kernel that faults midway may leave counters set; a device fault is sticky
//!   (the context is lost, and this memory with it).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use cudarc::driver::{result as drv, sys};
use kernelyard_core::{Error, Stream};

use crate::capture::{guard, stream_key};
use crate::error::drv as check;

/// Counters (`u32`) per (device, stream).
pub(crate) const COUNTERS: usize = 1 << 16;

/// Counters by (device, stream id).
type Map = Mutex<HashMap<(u32, u64), sys::CUdeviceptr>>;

fn map() -> &'static Map {
    static MAP: OnceLock<Map> = OnceLock::new();
    MAP.get_or_init(Default::default)
}

/// `stream`'s [`COUNTERS`] arrival counters, all zero whenever no kernel that uses them runs;
/// allocated and zeroed on first use (refused on a capturing stream). The caller bound the
/// device.
pub(crate) fn counters(stream: &Stream) -> Result<sys::CUdeviceptr, Error> {
    let key = stream_key(stream)?;
    let mut map = map().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&c) = map.get(&key) {
        return Ok(c);
    }
    guard(stream, || {
        format!(
            "allocating and zeroing the stream's {COUNTERS} arrival counters (split \
             token_logprobs)"
        )
    })?;
    let bytes = COUNTERS * 4;
    // SAFETY: the device's context is current (bound by the caller).
    let c = check("cuMemAlloc", unsafe { drv::malloc_sync(bytes) })?;
    let raw = stream.raw() as sys::CUstream;
    // SAFETY: `c` holds `bytes` bytes; the stream is a live stream of the bound device. Waiting
    // for it puts the zeros in place before any kernel, on any stream, can use them.
    let zeroed = unsafe {
        check("cuMemsetD8Async", drv::memset_d8_async(c, 0, bytes, raw))
            .and_then(|()| check("cuStreamSynchronize", drv::stream::synchronize(raw)))
    };
    if let Err(e) = zeroed {
        // SAFETY: allocated above, used by nothing yet (the memset is done or never ran).
        let _ = unsafe { drv::free_sync(c) };
        return Err(e.into());
    }
    tracing::debug!(
        device = %stream.device(),
        stream_id = key.1,
        bytes,
        "kernelyard: stream arrival counters allocated"
    );
    map.insert(key, c);
    Ok(c)
}

/// Frees `stream`'s counters, if it has any, after the stream has finished the work queued on
/// it (see [`crate::release_stream`]). The caller bound the device.
pub(crate) fn release(stream: &Stream) -> Result<(), Error> {
    let key = stream_key(stream)?;
    let Some(c) = map().lock().unwrap_or_else(|e| e.into_inner()).remove(&key) else {
        return Ok(());
    };
    // SAFETY: the stream is live (the caller's contract); after it drains no queued work uses
    // the counters, which were allocated by `counters` and are freed once (they left the map).
    unsafe {
        check(
            "cuStreamSynchronize",
            drv::stream::synchronize(stream.raw() as sys::CUstream),
        )?;
        check("cuMemFree", drv::free_sync(c))?;
    }
    Ok(())
}
