//! Execution streams: kernelyard-owned or borrowed from a framework.

use std::ffi::c_void;

use crate::backend::Backend;
use crate::device::DeviceId;
use crate::error::Error;

/// A queue of work on one device.
///
/// For CPU devices work runs synchronously on the calling thread. For GPU devices the handle is
/// a `CUstream` / `hipStream_t`; a null handle is the device's default (legacy) stream. A stream
/// made with [`Stream::from_raw`] is borrowed: kernelyard launches on it and never destroys it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stream {
    device: DeviceId,
    handle: usize,
}

impl Stream {
    /// The host "stream": work runs synchronously on the calling thread.
    pub const fn host() -> Self {
        Stream {
            device: DeviceId::CPU,
            handle: 0,
        }
    }

    /// The default stream of `device` (the null handle).
    pub const fn default_for(device: DeviceId) -> Self {
        Stream { device, handle: 0 }
    }

    /// Borrows a framework's stream.
    ///
    /// # Safety
    /// `handle` must be a live stream of `device` (a `CUstream` created in the device's primary
    /// context, or a `hipStream_t`) for as long as kernelyard launches on this value; kernelyard
    /// never destroys it.
    pub unsafe fn from_raw(device: DeviceId, handle: *mut c_void) -> Self {
        Stream {
            device,
            handle: handle as usize,
        }
    }

    /// The device the stream belongs to.
    pub const fn device(&self) -> DeviceId {
        self.device
    }

    /// The raw handle (null for the default stream and for the host).
    pub fn raw(&self) -> *mut c_void {
        self.handle as *mut c_void
    }
}

/// A stream kernelyard created (see [`Runtime::create_stream`](crate::Runtime::create_stream))
/// and destroys on drop. Dereferences to the [`Stream`] handle that launches take.
pub struct OwnedStream {
    stream: Stream,
    backend: &'static dyn Backend,
}

impl OwnedStream {
    /// Creates a stream on `device` through `backend`.
    pub fn new(backend: &'static dyn Backend, device: DeviceId) -> Result<Self, Error> {
        let stream = backend.create_stream(device)?;
        Ok(OwnedStream { stream, backend })
    }

    /// The stream handle.
    pub fn stream(&self) -> Stream {
        self.stream
    }
}

impl std::ops::Deref for OwnedStream {
    type Target = Stream;
    fn deref(&self) -> &Stream {
        &self.stream
    }
}

impl Drop for OwnedStream {
    fn drop(&mut self) {
        // SAFETY: the handle came from this backend's `create_stream` and is destroyed once,
        // here; the `Stream` copies handed out must not outlive `self` (documented on
        // `Runtime::create_stream`).
        unsafe { self.backend.destroy_stream(self.stream) }
    }
}

impl std::fmt::Debug for OwnedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OwnedStream({:?} via {})",
            self.stream,
            self.backend.name()
        )
    }
}
