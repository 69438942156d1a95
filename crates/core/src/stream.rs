//! Execution streams: kernelyard-owned or borrowed from a framework.

use std::ffi::c_void;

use crate::device::DeviceId;

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
