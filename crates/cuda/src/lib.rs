//! kernelyard-cuda: the NVIDIA GPU backend.
//!
//! - **Runtime** ([`device`], [`libs`]): cudarc in whatever mode the final build gives it:
//!   dynamic loading by default, so a build needs no toolkit; `dynamic-linking` when a crate
//!   such as candle asks for it. The bindings' CUDA version is the final build's choice
//!   (docs/EMBEDDING.md); [`libs`] derives the library names, install hints and oldest driver
//!   from it, and checks each library with cudarc's own file names, whatever the mode. The
//!   probe checks each library before calling into it (cudarc panics on a missing one) and
//!   turns every way the backend can be unusable into a typed reason,
//!   [`device::Unavailable`] (`doctor` shows its text). Each
//!   device's capabilities come from the driver: compute capability, SMs, shared memory per
//!   block (default and opt-in), memory, driver and NVRTC versions, name.
//! - **Pipeline** ([`module`], [`source`]): the kernel sources (shared ones in
//!   `crates/kernels/kernels/`, CUDA-only ones in this crate's `kernels/`) are embedded,
//!   compiled by NVRTC for the device's exact architecture on first use, cached on disk (cubin)
//!   and in memory (loaded module).
//! - **Execution**: launches go to the caller's stream: the default stream, one made with
//!   [`Runtime::create_stream`](kernelyard_core::Runtime::create_stream) (owned, destroyed on
//!   drop), or a framework's `CUstream` borrowed with
//!   [`Stream::from_raw`](kernelyard_core::Stream::from_raw) (never destroyed by us). Tensors
//!   may be views of memory kernelyard does not own
//!   ([`TensorView::from_raw_parts`](kernelyard_core::TensorView::from_raw_parts)); it is never
//!   freed by us. Core checks every argument and the stream are on the plan's device; each
//!   launch makes that device's primary context current first.
//! - **CUDA graphs** ([`capture`]): [`Plan::prepare`](kernelyard_core::Plan::prepare) compiles,
//!   loads and allocates ahead of time for a stream; a launch on a capturing stream that would
//!   still need any of it is refused with `CaptureForbidden` (nothing queued). Per-stream state
//!   is keyed by the stream's unique id (`cuStreamGetId`), so per-thread default streams and
//!   reused handles never share a workspace.
//! - **Kernels** ([`ops`]): one file per operator, each kernel a static
//!   [`KernelDef`](kernelyard_core::KernelDef) with its metadata, typed checks and launch,
//!   registered with [`kernelyard_core::register!`]. A launch gets the stream and the device's
//!   capabilities from its [`LaunchCtx`](kernelyard_core::LaunchCtx).
//!
//! Responsibility: core validates arguments before dispatch; kernels here assume valid inputs
//! and report device faults and data-dependent errors as [`kernelyard_core::Error`].

#![deny(missing_docs)]

pub mod capture;
pub(crate) mod counters;
pub mod device;
pub mod error;
pub mod launch;
pub mod libs;
pub(crate) mod lt_ext;
pub mod module;
pub mod ops;
pub mod source;

use std::ffi::c_void;

use cudarc::driver::{result, sys};
use kernelyard_core::{
    Backend, Capabilities, DeviceBuffer, DeviceId, DeviceKind, Error, ProbeError, Stream, Version,
};

pub use error::CudaError;

/// The backend's name: kernels are called `cuda.<op>[.variant]`.
pub const BACKEND: &str = "cuda";

/// The CUDA backend.
pub struct CudaBackend;

/// The one instance, registered with `inventory`.
pub static CUDA: CudaBackend = CudaBackend;

kernelyard_core::inventory::submit! { kernelyard_core::BackendEntry(&CUDA) }

/// Ensures this crate is linked (so its `inventory` registrations are present).
pub fn link() {}

/// Frees what kernelyard keeps for `stream` (its workspace: cuBLASLt and split token_logprobs
/// use it; its arrival counters: split token_logprobs), after waiting for the work queued on
/// it. Streams made by
/// [`Runtime::create_stream`](kernelyard_core::Runtime::create_stream) do this when they are
/// destroyed; a framework that lends its own streams calls it before destroying one that
/// kernelyard launched on (otherwise the 32 MiB stay allocated until the process ends: a
/// stream's state is keyed by its unique id, which a new stream never reuses).
///
/// # Safety
/// `stream` must still be live, and no launch on it may race with this call (launches on it
/// after the call are fine: they allocate again).
pub unsafe fn release_stream(stream: &Stream) -> Result<(), Error> {
    if stream.device().kind != DeviceKind::Cuda {
        return Err(CudaError::Misuse {
            what: format!("release_stream on {}, not a CUDA device", stream.device()),
        }
        .into());
    }
    device::bind(stream.device())?;
    let workspace = ops::gemm::release_workspace(stream);
    counters::release(stream)?;
    workspace
}

fn check_buffer(buf: &DeviceBuffer, what: &str) -> Result<(), Error> {
    if buf.device().kind != DeviceKind::Cuda {
        return Err(CudaError::Misuse {
            what: format!("{what} is on {}, not a CUDA device", buf.device()),
        }
        .into());
    }
    Ok(())
}

fn cu_stream(stream: &Stream) -> sys::CUstream {
    stream.raw() as sys::CUstream
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn device_kind(&self) -> DeviceKind {
        DeviceKind::Cuda
    }

    fn probe(&self) -> Result<Vec<Capabilities>, ProbeError> {
        device::capabilities().map_err(ProbeError::new)
    }

    /// cuBLASLt's version (`cublaslt`), when the library is present: the indices of
    /// `cuda.gemm.cublaslt`'s tactics change with it. NVRTC's is the devices'
    /// `compiler_version`.
    fn library_versions(&self) -> Vec<(&'static str, Version)> {
        device::cublaslt_version()
            .iter()
            .map(|&v| ("cublaslt", v))
            .collect()
    }

    fn alloc(&'static self, device: DeviceId, bytes: usize) -> Result<DeviceBuffer, Error> {
        device::bind(device)?;
        // SAFETY: the device's context is current; a zero-byte request is rounded up so every
        // buffer has a distinct, valid address.
        let ptr = error::drv("cuMemAlloc", unsafe { result::malloc_sync(bytes.max(1)) })?;
        // SAFETY: `ptr` is a fresh allocation of at least `bytes` bytes on `device`, freed by
        // `free` below when the buffer drops.
        Ok(unsafe { DeviceBuffer::from_raw(self, device, ptr as *mut u8, bytes) })
    }

    unsafe fn free(&self, device: DeviceId, ptr: *mut u8, _bytes: usize) {
        if device::bind(device).is_ok() {
            // SAFETY: the caller's contract: `ptr` came from `alloc` on `device`, unused now.
            // A failure here cannot be reported from `Drop`; the memory is then leaked.
            let _ = unsafe { result::free_sync(ptr as sys::CUdeviceptr) };
        }
    }

    fn upload(&self, dst: &mut DeviceBuffer, src: &[u8]) -> Result<(), Error> {
        check_buffer(dst, "the upload's destination")?;
        device::bind(dst.device())?;
        let n = src.len().min(dst.len());
        // SAFETY: `dst` owns at least `n` bytes of device memory; `src` is a host slice; the
        // copy is synchronous.
        error::drv("cuMemcpyHtoD", unsafe {
            result::memcpy_htod_sync(dst.as_mut_ptr() as sys::CUdeviceptr, &src[..n])
        })?;
        Ok(())
    }

    fn download(&self, src: &DeviceBuffer, dst: &mut [u8]) -> Result<(), Error> {
        check_buffer(src, "the download's source")?;
        device::bind(src.device())?;
        let n = dst.len().min(src.len());
        // SAFETY: `src` owns at least `n` bytes of device memory; the copy is synchronous.
        error::drv("cuMemcpyDtoH", unsafe {
            result::memcpy_dtoh_sync(&mut dst[..n], src.as_ptr() as sys::CUdeviceptr)
        })?;
        Ok(())
    }

    fn synchronize(&self, stream: &Stream) -> Result<(), Error> {
        device::bind(stream.device())?;
        // SAFETY: the stream is the null stream or a live stream of this device.
        error::drv("cuStreamSynchronize", unsafe {
            result::stream::synchronize(cu_stream(stream))
        })?;
        Ok(())
    }

    fn copy(
        &self,
        stream: &Stream,
        dst: &mut DeviceBuffer,
        src: &DeviceBuffer,
        bytes: usize,
    ) -> Result<(), Error> {
        check_buffer(dst, "the copy's destination")?;
        check_buffer(src, "the copy's source")?;
        if bytes > dst.len() || bytes > src.len() {
            return Err(CudaError::Misuse {
                what: format!(
                    "a copy of {bytes} bytes between buffers of {} and {} bytes",
                    src.len(),
                    dst.len()
                ),
            }
            .into());
        }
        device::bind(stream.device())?;
        // SAFETY: both buffers own at least `bytes` bytes of device memory (checked) and live
        // until the caller synchronizes (they borrow the buffers for the call; the caller must
        // not drop them while the copy is queued, as with any launch).
        error::drv("cuMemcpyDtoDAsync", unsafe {
            result::memcpy_dtod_async(
                dst.as_mut_ptr() as sys::CUdeviceptr,
                src.as_ptr() as sys::CUdeviceptr,
                bytes,
                cu_stream(stream),
            )
        })?;
        Ok(())
    }

    fn create_stream(&self, device: DeviceId) -> Result<Stream, Error> {
        device::bind(device)?;
        let s = error::drv(
            "cuStreamCreate",
            result::stream::create(result::stream::StreamKind::NonBlocking),
        )?;
        // SAFETY: `s` is a live stream just created in `device`'s primary context; it is
        // destroyed by `destroy_stream` only.
        Ok(unsafe { Stream::from_raw(device, s as *mut c_void) })
    }

    unsafe fn destroy_stream(&self, stream: Stream) {
        if !stream.raw().is_null() && device::bind(stream.device()).is_ok() {
            // SAFETY: the caller's contract: the stream came from `create_stream` and is live
            // until the `destroy` below. A failure to release leaks the workspace, no more.
            let _ = unsafe { release_stream(&stream) };
            // SAFETY: the caller's contract: the stream came from `create_stream`.
            let _ = unsafe { result::stream::destroy(cu_stream(&stream)) };
        }
    }

    fn time(
        &self,
        stream: &Stream,
        f: &mut dyn FnMut() -> Result<(), Error>,
    ) -> Result<f64, Error> {
        device::bind(stream.device())?;
        let flags = sys::CUevent_flags::CU_EVENT_DEFAULT;
        let start = error::drv("cuEventCreate", result::event::create(flags))?;
        let end = match error::drv("cuEventCreate", result::event::create(flags)) {
            Ok(e) => e,
            Err(e) => {
                // SAFETY: `start` was just created and is unused.
                let _ = unsafe { result::event::destroy(start) };
                return Err(e.into());
            }
        };
        let timed = (|| -> Result<f64, Error> {
            // SAFETY: both events are live; the stream is a live stream of the bound device.
            unsafe {
                error::drv(
                    "cuEventRecord",
                    result::event::record(start, cu_stream(stream)),
                )?;
                f()?;
                device::bind(stream.device())?;
                error::drv(
                    "cuEventRecord",
                    result::event::record(end, cu_stream(stream)),
                )?;
                error::drv("cuEventSynchronize", result::event::synchronize(end))?;
                Ok(f64::from(error::drv(
                    "cuEventElapsedTime",
                    result::event::elapsed(start, end),
                )?))
            }
        })();
        // SAFETY: both events are complete or unused, and destroyed once.
        unsafe {
            let _ = result::event::destroy(start);
            let _ = result::event::destroy(end);
        }
        timed
    }
}
