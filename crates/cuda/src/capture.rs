//! CUDA graphs: stream identity, the capture guard, and a small captured-graph type.
//!
//! A launch in a stream capture must not compile, load, allocate or synchronise: the driver
//! either refuses those calls (invalidating the capture) or, worse, runs them once at capture
//! time so a replay uses memory that is gone. kernelyard's rule:
//!
//! - [`Plan::prepare`](kernelyard_core::Plan::prepare) does all of it ahead of time for one
//!   stream: modules compiled (or read from the disk cache) and loaded, every entry point looked
//!   up, cuBLASLt's handle, descriptors and the stream's workspace made.
//! - Every place that would do such work on first use asks a guard first (`capture::guard`). On a stream that is
//!   capturing (`cuStreamIsCapturing`) it returns
//!   `Error::CaptureForbidden` and the launch queues
//!   nothing, so the capture stays valid and the caller learns to prepare. The check costs one
//!   driver call, and only on a miss.
//! - A launch that synchronises by design (the checked mode of `token_logprobs`) is refused in
//!   a capture the same way.
//!
//! **Stream identity.** Per-stream state (the workspace of cuBLASLt and split token_logprobs) is
//! keyed by [`stream_id`] (`cuStreamGetId`), not by the handle: the handle of the per-thread
//! default stream (`CU_STREAM_PER_THREAD`, the value candle's default device uses on every thread)
//! is the same on every thread, while its id differs per thread; and a handle value can be reused
//! by a new stream after its owner destroys the old one, while ids are never reused. The driver
//! gives no id while a stream captures, so the id seen last outside a capture for that handle (and
//! thread) is used then: prepare before capturing (a stream never seen is refused). A framework
//! that destroys a stream without [`release_stream`](crate::release_stream) and gets its handle
//! back for a new stream that it then captures on without preparing would reuse the old stream's
//! workspace: prepare, or release.
//!
//! [`CapturedGraph`] captures work queued on a stream into an executable graph and replays it
//! (what the GPU tests use; frameworks usually have their own, e.g. cudarc's `CudaGraph`).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use cudarc::driver::sys;
use kernelyard_core::{Error, Stream};

use crate::device::bind;
use crate::error::drv;

/// What [`Error::CaptureForbidden`] tells a caller to
/// do.
pub const PREPARE_FIX: &str = "prepare the plan for this stream before capturing \
    (`Plan::prepare(&stream)` or `Runtime::prepare`); prepared launches never compile, load, \
    allocate or synchronise";

fn raw(stream: &Stream) -> sys::CUstream {
    stream.raw() as sys::CUstream
}

/// Whether `stream` is capturing a graph now (`cuStreamIsCapturing`). Binds the stream's
/// device.
pub fn is_capturing(stream: &Stream) -> Result<bool, Error> {
    bind(stream.device())?;
    let mut status = sys::CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_NONE;
    // SAFETY: the device's context is current; the stream is the null stream, the per-thread
    // stream or a live stream of the device (`Stream::from_raw`'s contract); `status` is a
    // valid out-pointer.
    drv("cuStreamIsCapturing", unsafe {
        sys::cuStreamIsCapturing(raw(stream), &mut status).result()
    })?;
    Ok(status != sys::CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_NONE)
}

/// Returns [`Error::CaptureForbidden`](kernelyard_core::Error::CaptureForbidden) for `what`
/// (called only when it is needed: on a cache miss) if `stream` is capturing.
pub(crate) fn guard(stream: &Stream, what: impl FnOnce() -> String) -> Result<(), Error> {
    if is_capturing(stream)? {
        tracing::warn!(
            device = %stream.device(),
            "kernelyard: refused work that would break a graph capture"
        );
        return Err(Error::CaptureForbidden {
            what: what(),
            stream: stream.device(),
            fix: PREPARE_FIX,
        });
    }
    Ok(())
}

/// The unique id of `stream` in its device's primary context (`cuStreamGetId`): distinct for
/// every stream ever created, and, for the legacy and per-thread default streams, distinct per
/// context and per calling thread. Binds the stream's device. The driver does not answer while
/// the stream is capturing (`CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED`).
pub fn stream_id(stream: &Stream) -> Result<u64, Error> {
    bind(stream.device())?;
    let mut id: std::ffi::c_ulonglong = 0;
    // SAFETY: as in `is_capturing`; `id` is a valid out-pointer.
    drv("cuStreamGetId", unsafe {
        sys::cuStreamGetId(raw(stream), &mut id).result()
    })?;
    Ok(id)
}

/// `CU_STREAM_PER_THREAD`: one handle value, a different stream on every thread.
const PER_THREAD: usize = 0x2;

/// Where a handle was last seen: (device, handle, the thread for the per-thread stream).
type Seen = (u32, usize, Option<std::thread::ThreadId>);

/// The ids of the streams seen outside a capture, by where they were seen.
fn seen() -> &'static Mutex<HashMap<Seen, u64>> {
    static SEEN: OnceLock<Mutex<HashMap<Seen, u64>>> = OnceLock::new();
    SEEN.get_or_init(Default::default)
}

/// The key of `stream`'s per-stream state: (device index, [`stream_id`]). Binds the device.
///
/// Outside a capture it asks the driver and remembers the answer for the handle (and, for the
/// per-thread default stream, the calling thread). In a capture, where the driver does not give
/// ids, it uses what was remembered (a prepared stream was seen by
/// [`Plan::prepare`](kernelyard_core::Plan::prepare)); a stream never seen before is refused
/// with `CaptureForbidden`, queueing nothing.
pub(crate) fn stream_key(stream: &Stream) -> Result<(u32, u64), Error> {
    let device = stream.device().index;
    let handle = stream.raw() as usize;
    let thread = (handle == PER_THREAD).then(|| std::thread::current().id());
    let at = (device, handle, thread);
    if is_capturing(stream)? {
        let known = seen()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&at)
            .copied();
        return match known {
            Some(id) => Ok((device, id)),
            None => Err(Error::CaptureForbidden {
                what: "a first launch on this stream (its per-stream state is found by the \
                       stream's id, which the driver does not give during a capture)"
                    .to_owned(),
                stream: stream.device(),
                fix: PREPARE_FIX,
            }),
        };
    }
    let id = stream_id(stream)?;
    seen()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(at, id);
    Ok((device, id))
}

/// An executable graph captured from the work queued on one stream.
pub struct CapturedGraph {
    stream: Stream,
    graph: sys::CUgraph,
    exec: sys::CUgraphExec,
}

// SAFETY: graph and executable-graph handles may be used from any thread once their context is
// current (every method binds the device first); `CapturedGraph` has no interior mutability.
unsafe impl Send for CapturedGraph {}
// SAFETY: as above; `replay` takes `&self` and the driver serialises launches of one graph.
unsafe impl Sync for CapturedGraph {}

impl CapturedGraph {
    /// Captures everything `queue` launches on `stream` (global capture mode: a call from any
    /// thread that is not allowed during a capture fails instead of running) and instantiates
    /// it. The capture is always ended, also when `queue` fails; then its error is returned.
    ///
    /// `stream` must not be the legacy default stream (the driver refuses to capture it).
    pub fn capture(
        stream: &Stream,
        queue: impl FnOnce() -> Result<(), Error>,
    ) -> Result<CapturedGraph, Error> {
        bind(stream.device())?;
        // SAFETY: the context is current and the stream is live (`Stream::from_raw`).
        drv("cuStreamBeginCapture", unsafe {
            sys::cuStreamBeginCapture_v2(
                raw(stream),
                sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_GLOBAL,
            )
            .result()
        })?;
        let queued = queue();
        bind(stream.device())?;
        let mut graph: sys::CUgraph = std::ptr::null_mut();
        // SAFETY: the stream is capturing (begun above); `graph` is a valid out-pointer.
        let ended = drv("cuStreamEndCapture", unsafe {
            sys::cuStreamEndCapture(raw(stream), &mut graph).result()
        });
        match (queued, ended) {
            (Ok(()), Ok(())) => {}
            (Ok(()), Err(e)) => return Err(e.into()),
            // The queueing error says more than an invalidated capture would.
            (Err(e), ended) => {
                if ended.is_ok() {
                    // SAFETY: `graph` is the live graph the capture ended with, destroyed once.
                    let _ = unsafe { sys::cuGraphDestroy(graph) };
                }
                return Err(e);
            }
        }
        let mut exec: sys::CUgraphExec = std::ptr::null_mut();
        // SAFETY: `graph` is the complete graph just captured; `exec` is a valid out-pointer.
        let inst = drv("cuGraphInstantiateWithFlags", unsafe {
            sys::cuGraphInstantiateWithFlags(&mut exec, graph, 0).result()
        });
        if let Err(e) = inst {
            // SAFETY: `graph` is live and destroyed once, here.
            let _ = unsafe { sys::cuGraphDestroy(graph) };
            return Err(e.into());
        }
        Ok(CapturedGraph {
            stream: *stream,
            graph,
            exec,
        })
    }

    /// Launches the graph on the stream it was captured from (asynchronously).
    pub fn replay(&self) -> Result<(), Error> {
        bind(self.stream.device())?;
        // SAFETY: `exec` is a live executable graph of this device; the stream is live.
        drv("cuGraphLaunch", unsafe {
            sys::cuGraphLaunch(self.exec, raw(&self.stream)).result()
        })?;
        Ok(())
    }
}

impl Drop for CapturedGraph {
    fn drop(&mut self) {
        if bind(self.stream.device()).is_ok() {
            // SAFETY: both handles are live and destroyed once, here; a graph still running is
            // kept alive by the driver until it completes.
            unsafe {
                let _ = sys::cuGraphExecDestroy(self.exec);
                let _ = sys::cuGraphDestroy(self.graph);
            }
        }
    }
}

impl std::fmt::Debug for CapturedGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CapturedGraph(on {:?})", self.stream)
    }
}
