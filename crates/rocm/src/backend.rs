//! The [`Backend`] implementation: device memory, copies, streams and timing through the HIP
//! runtime (built with the `hip` feature only).

use std::ffi::c_void;

use hip_sys::hiprt::{hipEvent_t, hipStream_t};
use kernelyard_core::{
    Backend, Capabilities, DeviceBuffer, DeviceId, DeviceKind, Error, ProbeError, Stream,
};

use crate::device::{bind, hip_api};
use crate::error::{check, RocmError};
use crate::hip;

/// The ROCm backend.
pub struct RocmBackend;

/// The backend's registration.
pub static ROCM: RocmBackend = RocmBackend;

kernelyard_core::inventory::submit! { kernelyard_core::BackendEntry(&ROCM) }

fn check_buffer(buf: &DeviceBuffer, what: &str) -> Result<(), Error> {
    if buf.device().kind != DeviceKind::Rocm {
        return Err(RocmError::Misuse {
            what: format!("{what} is on {}, not a ROCm device", buf.device()),
        }
        .into());
    }
    Ok(())
}

fn hip_stream(stream: &Stream) -> hipStream_t {
    stream.raw() as hipStream_t
}

impl Backend for RocmBackend {
    fn name(&self) -> &'static str {
        crate::BACKEND
    }

    fn device_kind(&self) -> DeviceKind {
        DeviceKind::Rocm
    }

    /// The devices probed once per process, or why there are none: a
    /// [`device::Unavailable`](crate::device::Unavailable) (`ProbeError::downcast_ref` gets it
    /// back; its text is what `doctor` prints).
    fn probe(&self) -> Result<Vec<Capabilities>, ProbeError> {
        crate::device::capabilities().map_err(ProbeError::new)
    }

    fn alloc(&'static self, device: DeviceId, bytes: usize) -> Result<DeviceBuffer, Error> {
        bind(device)?;
        let h = hip_api()?;
        let mut ptr: *mut c_void = std::ptr::null_mut();
        // SAFETY: the device is current; a zero-byte request is rounded up so every buffer has
        // a distinct, valid address.
        check(h, "hipMalloc", unsafe {
            (h.api.hipMalloc)(&mut ptr, bytes.max(1))
        })?;
        // SAFETY: `ptr` is a fresh allocation of at least `bytes` bytes on `device`, freed by
        // `free` below when the buffer drops.
        Ok(unsafe { DeviceBuffer::from_raw(self, device, ptr.cast(), bytes) })
    }

    unsafe fn free(&self, device: DeviceId, ptr: *mut u8, _bytes: usize) {
        if let (Ok(_), Ok(h)) = (bind(device), hip_api()) {
            // SAFETY: the caller's contract: `ptr` came from `alloc` on `device`, unused now.
            // A failure cannot be reported from `Drop`; the memory is then leaked.
            let _ = unsafe { (h.api.hipFree)(ptr.cast()) };
        }
    }

    fn upload(&self, dst: &mut DeviceBuffer, src: &[u8]) -> Result<(), Error> {
        check_buffer(dst, "the upload's destination")?;
        bind(dst.device())?;
        let h = hip_api()?;
        let n = src.len().min(dst.len());
        // SAFETY: `dst` owns at least `n` bytes of device memory; `src` is a host slice of at
        // least `n` bytes; the copy is synchronous.
        check(h, "hipMemcpy(HtoD)", unsafe {
            (h.api.hipMemcpy)(
                dst.as_mut_ptr().cast(),
                src.as_ptr().cast(),
                n,
                hip::MEMCPY_HTOD,
            )
        })?;
        Ok(())
    }

    fn download(&self, src: &DeviceBuffer, dst: &mut [u8]) -> Result<(), Error> {
        check_buffer(src, "the download's source")?;
        bind(src.device())?;
        let h = hip_api()?;
        let n = dst.len().min(src.len());
        // SAFETY: `src` owns at least `n` bytes of device memory; `dst` is a host slice of at
        // least `n` bytes; the copy is synchronous.
        check(h, "hipMemcpy(DtoH)", unsafe {
            (h.api.hipMemcpy)(
                dst.as_mut_ptr().cast(),
                src.as_ptr().cast(),
                n,
                hip::MEMCPY_DTOH,
            )
        })?;
        Ok(())
    }

    fn synchronize(&self, stream: &Stream) -> Result<(), Error> {
        bind(stream.device())?;
        let h = hip_api()?;
        // SAFETY: the stream is the null stream or a live stream of this device.
        check(h, "hipStreamSynchronize", unsafe {
            (h.api.hipStreamSynchronize)(hip_stream(stream))
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
            return Err(RocmError::Misuse {
                what: format!(
                    "a copy of {bytes} bytes between buffers of {} and {} bytes",
                    src.len(),
                    dst.len()
                ),
            }
            .into());
        }
        bind(stream.device())?;
        let h = hip_api()?;
        // SAFETY: both buffers own at least `bytes` bytes of device memory (checked) and live
        // until the caller synchronizes (as with any launch).
        check(h, "hipMemcpyAsync(DtoD)", unsafe {
            (h.api.hipMemcpyAsync)(
                dst.as_mut_ptr().cast(),
                src.as_ptr().cast(),
                bytes,
                hip::MEMCPY_DTOD,
                hip_stream(stream),
            )
        })?;
        Ok(())
    }

    fn create_stream(&self, device: DeviceId) -> Result<Stream, Error> {
        bind(device)?;
        let h = hip_api()?;
        let mut s: hipStream_t = std::ptr::null_mut();
        // SAFETY: `s` is a valid out-pointer; the device is current.
        check(h, "hipStreamCreateWithFlags", unsafe {
            (h.api.hipStreamCreateWithFlags)(&mut s, hip::STREAM_NON_BLOCKING)
        })?;
        // SAFETY: `s` is a live stream just created on `device`; it is destroyed by
        // `destroy_stream` only.
        Ok(unsafe { Stream::from_raw(device, s.cast()) })
    }

    unsafe fn destroy_stream(&self, stream: Stream) {
        if stream.raw().is_null() {
            return;
        }
        if let (Ok(_), Ok(h)) = (bind(stream.device()), hip_api()) {
            // SAFETY: the caller's contract: the stream came from `create_stream`.
            let _ = unsafe { (h.api.hipStreamDestroy)(hip_stream(&stream)) };
        }
    }

    fn time(
        &self,
        stream: &Stream,
        f: &mut dyn FnMut() -> Result<(), Error>,
    ) -> Result<f64, Error> {
        bind(stream.device())?;
        let h = hip_api()?;
        let mut start: hipEvent_t = std::ptr::null_mut();
        let mut end: hipEvent_t = std::ptr::null_mut();
        // SAFETY: valid out-pointers; the device is current.
        check(h, "hipEventCreate", unsafe {
            (h.api.hipEventCreate)(&mut start)
        })?;
        // SAFETY: as above.
        if let Err(e) = check(h, "hipEventCreate", unsafe {
            (h.api.hipEventCreate)(&mut end)
        }) {
            // SAFETY: `start` was just created and is unused.
            let _ = unsafe { (h.api.hipEventDestroy)(start) };
            return Err(e.into());
        }
        let timed = (|| -> Result<f64, Error> {
            // SAFETY: both events are live; the stream is a live stream of the bound device.
            unsafe {
                check(
                    h,
                    "hipEventRecord",
                    (h.api.hipEventRecord)(start, hip_stream(stream)),
                )?;
                f()?;
                bind(stream.device())?;
                check(
                    h,
                    "hipEventRecord",
                    (h.api.hipEventRecord)(end, hip_stream(stream)),
                )?;
                check(h, "hipEventSynchronize", (h.api.hipEventSynchronize)(end))?;
                let mut ms = 0f32;
                check(
                    h,
                    "hipEventElapsedTime",
                    (h.api.hipEventElapsedTime)(&mut ms, start, end),
                )?;
                Ok(f64::from(ms))
            }
        })();
        // SAFETY: both events are complete or unused, and destroyed once.
        unsafe {
            let _ = (h.api.hipEventDestroy)(start);
            let _ = (h.api.hipEventDestroy)(end);
        }
        timed
    }
}
