//! CUDA graphs: stream identity, the capture guard, and a small captured-graph type.
//!
//! A launch in a stream capture must not compile, load, allocate or synchronise: the driver
//! either refuses those calls (invalidating the capture) or, worse, runs them once at capture
//! time so a replay uses memory that is gone. kernelyard's rule:
//!
//! - [`Plan::prepare`](kernelyard_core::Plan::prepare) does all of it ahead of time for one
//!   stream: modules compiled (or read from the disk cache) and loaded, every entry point looked
//!   up, cuBLASLt's handle, descriptors and the stream's workspace made.
//! - Every place that would do such work on first use asks [`guard`] first. On a stream that is
//!   capturing (`cuStreamIsCapturing`) it returns
//!   [`Error::CaptureForbidden`](kernelyard_core::Error::CaptureForbidden) and the launch queues
//!   nothing, so the capture stays valid and the caller learns to prepare. The check costs one
//!   driver call, and only on a miss.
//! - A launch that synchronises by design (the checked mode of `token_logprobs`) is refused in
//!   a capture the same way.
//!
//! **Stream identity.** Per-stream state (cuBLASLt workspaces) is keyed by [`stream_id`]
//! (`cuStreamGetId`), not by the handle: the handles of the legacy default stream (null) and
//! of the per-thread default stream (`CU_STREAM_PER_THREAD`, the value candle's default device
//! uses on every thread) are the same on every thread, while their ids differ per context and
//! per thread; and a handle value can be reused by a new stream after its owner destroys the
//! old one, while ids are never reused.
//!
//! [`CapturedGraph`] captures work queued on a stream into an executable graph and replays it
//! (what the GPU tests use; frameworks usually have their own, e.g. cudarc's `CudaGraph`).

use cudarc::driver::sys;
use kernelyard_core::{Error, Stream};

use crate::device::bind;
use crate::error::drv;

/// What [`Error::CaptureForbidden`](kernelyard_core::Error::CaptureForbidden) tells a caller to
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
/// context and per calling thread. Binds the stream's device.
pub fn stream_id(stream: &Stream) -> Result<u64, Error> {
    bind(stream.device())?;
    let mut id: std::ffi::c_ulonglong = 0;
    // SAFETY: as in `is_capturing`; `id` is a valid out-pointer.
    drv("cuStreamGetId", unsafe {
        sys::cuStreamGetId(raw(stream), &mut id).result()
    })?;
    Ok(id)
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
        queued?;
        ended?;
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
