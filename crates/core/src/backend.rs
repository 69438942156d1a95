//! Backends: what a backend crate registers so core can find its devices and move memory.
//!
//! A backend crate submits one [`BackendEntry`] with `inventory::submit!`. Core calls
//! [`Backend::probe`] once per runtime; a probe that fails is reported (in `doctor` and in
//! selection errors) with its reason and never panics. Backends that are part of kernelyard but
//! not compiled into this build are listed in [`KNOWN_BACKENDS`] so they can be reported as
//! "not compiled in" with the feature that enables them.

use std::alloc::Layout;
use std::fmt;

use crate::caps::Capabilities;
use crate::device::{DeviceId, DeviceKind};
use crate::dtype::{DType, Storage};
use crate::error::{Error, ProbeError, ValidationError};
use crate::stream::Stream;
use crate::tensor::{checked_numel, TensorView, TensorViewMut};

/// A backend: a device platform (probing, memory, streams) that kernels of the same backend
/// name run on.
pub trait Backend: Send + Sync + 'static {
    /// The backend's name, the first part of its kernels' names (`reference`, `cuda`).
    fn name(&self) -> &'static str;
    /// The kind of device it drives.
    fn device_kind(&self) -> DeviceKind;
    /// Finds the devices and their capabilities, or says why the backend cannot be used here
    /// (e.g. "libcuda.so not found"). Must not panic.
    fn probe(&self) -> Result<Vec<Capabilities>, ProbeError>;
    /// The versions of the libraries this backend's kernels depend on that can change which
    /// kernel or tactic is fastest (`cublaslt` -> 13.0.2), for the tuning environment
    /// ([`TuningEnv::of`](crate::tune::TuningEnv::of)): process-wide, reported for every
    /// device of the backend's kind; a library that is absent is not listed. The driver's and
    /// the run-time compiler's versions are in [`Capabilities`], not here. Must not panic. The
    /// default lists none.
    fn library_versions(&self) -> Vec<(&'static str, crate::caps::Version)> {
        Vec::new()
    }

    /// Allocates `bytes` of device memory on `device`.
    fn alloc(&'static self, device: DeviceId, bytes: usize) -> Result<DeviceBuffer, Error>;
    /// Frees memory from [`Backend::alloc`].
    ///
    /// # Safety
    /// `ptr` and `bytes` must come from one earlier `alloc` of this backend on `device`, not
    /// yet freed, with no work still using the memory.
    unsafe fn free(&self, device: DeviceId, ptr: *mut u8, bytes: usize);
    /// Copies host bytes into the start of a buffer (synchronously).
    fn upload(&self, dst: &mut DeviceBuffer, src: &[u8]) -> Result<(), Error>;
    /// Copies the start of a buffer into host bytes (synchronously).
    fn download(&self, src: &DeviceBuffer, dst: &mut [u8]) -> Result<(), Error>;
    /// Waits for all work queued on `stream`.
    fn synchronize(&self, stream: &Stream) -> Result<(), Error>;

    /// Queues a copy of `bytes` bytes from the start of `src` to the start of `dst` on
    /// `stream` (both buffers of this backend, on the stream's device).
    fn copy(
        &self,
        stream: &Stream,
        dst: &mut DeviceBuffer,
        src: &DeviceBuffer,
        bytes: usize,
    ) -> Result<(), Error>;

    /// Creates a stream on `device`, owned by the caller, who destroys it with
    /// [`Backend::destroy_stream`] (see [`OwnedStream`](crate::stream::OwnedStream)). CPU
    /// backends return the host stream.
    fn create_stream(&self, device: DeviceId) -> Result<Stream, Error> {
        let _ = device;
        Ok(Stream::host())
    }

    /// Destroys a stream from [`Backend::create_stream`]; work already queued on it still
    /// runs.
    ///
    /// # Safety
    /// `stream` must come from this backend's `create_stream`, not yet destroyed, and must not
    /// be used afterwards.
    unsafe fn destroy_stream(&self, stream: Stream) {
        let _ = stream;
    }

    /// Runs `f`, which queues work on `stream`, and returns the device time it took in
    /// milliseconds: between events recorded on the stream just before and just after `f` on
    /// GPUs. The default synchronizes and reads the host clock (right for CPU backends, whose
    /// work runs inside `f`).
    fn time(
        &self,
        stream: &Stream,
        f: &mut dyn FnMut() -> Result<(), Error>,
    ) -> Result<f64, Error> {
        self.synchronize(stream)?;
        let start = std::time::Instant::now();
        f()?;
        self.synchronize(stream)?;
        Ok(start.elapsed().as_secs_f64() * 1e3)
    }
}

/// The registration a backend crate submits with `inventory::submit!`.
pub struct BackendEntry(pub &'static dyn Backend);

inventory::collect!(BackendEntry);

/// Every backend registered in this binary.
pub fn registered_backends() -> impl Iterator<Item = &'static dyn Backend> {
    inventory::iter::<BackendEntry>.into_iter().map(|e| e.0)
}

/// A backend that is part of kernelyard, and the cargo feature of the `kernelyard` crate that
/// links it in.
#[derive(Clone, Copy, Debug)]
pub struct KnownBackend {
    /// The backend's name.
    pub name: &'static str,
    /// Its device kind.
    pub kind: DeviceKind,
    /// The `kernelyard` cargo feature that compiles it in.
    pub feature: &'static str,
}

/// The backends kernelyard has, compiled in or not.
pub const KNOWN_BACKENDS: &[KnownBackend] = &[
    KnownBackend {
        name: "reference",
        kind: DeviceKind::Cpu,
        feature: "reference",
    },
    KnownBackend {
        name: "cuda",
        kind: DeviceKind::Cuda,
        feature: "cuda",
    },
    KnownBackend {
        name: "rocm",
        kind: DeviceKind::Rocm,
        feature: "rocm",
    },
];

/// Device memory owned by kernelyard, freed on drop through its backend.
pub struct DeviceBuffer {
    backend: &'static dyn Backend,
    device: DeviceId,
    ptr: *mut u8,
    bytes: usize,
}

// SAFETY: a `DeviceBuffer` uniquely owns its allocation, like `Box<[u8]>`; backends' `free` and
// copies are callable from any thread (the `Backend` trait is `Send + Sync`).
unsafe impl Send for DeviceBuffer {}
// SAFETY: `&DeviceBuffer` only yields read-only views and downloads.
unsafe impl Sync for DeviceBuffer {}

impl DeviceBuffer {
    /// Wraps an allocation a backend just made.
    ///
    /// # Safety
    /// `ptr` must be a live allocation of `bytes` bytes made by `backend.alloc` on `device`;
    /// the buffer takes ownership and frees it with `backend.free` on drop.
    pub unsafe fn from_raw(
        backend: &'static dyn Backend,
        device: DeviceId,
        ptr: *mut u8,
        bytes: usize,
    ) -> Self {
        DeviceBuffer {
            backend,
            device,
            ptr,
            bytes,
        }
    }

    /// The device the memory is on.
    pub fn device(&self) -> DeviceId {
        self.device
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// True if the buffer has no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// The base pointer.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr
    }

    /// The base pointer, writable.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }

    fn check_fits(&self, dtype: DType, shape: &[usize]) -> Result<(), ValidationError> {
        let need = checked_numel(shape)
            .and_then(|n| n.checked_mul(dtype.size()))
            .ok_or_else(|| ValidationError::Overflow {
                arg: "buffer view",
                what: format!("the byte size of shape {shape:?}"),
            })?;
        if need > self.bytes {
            return Err(ValidationError::Length {
                len: self.bytes / dtype.size(),
                shape: shape.to_vec(),
                expected: need / dtype.size(),
            });
        }
        Ok(())
    }

    /// A contiguous read-only view of the start of the buffer.
    pub fn view(&self, dtype: DType, shape: &[usize]) -> Result<TensorView<'_>, ValidationError> {
        self.check_fits(dtype, shape)?;
        // SAFETY: the buffer owns at least the addressed bytes (checked) on `self.device` for as
        // long as the returned view borrows it.
        unsafe { TensorView::from_raw_parts(self.ptr.cast(), dtype, shape, None, self.device) }
    }

    /// A contiguous writable view of the start of the buffer.
    pub fn view_mut(
        &mut self,
        dtype: DType,
        shape: &[usize],
    ) -> Result<TensorViewMut<'_>, ValidationError> {
        self.check_fits(dtype, shape)?;
        // SAFETY: as in `view`, and `&mut self` makes the returned view the only access.
        unsafe { TensorViewMut::from_raw_parts(self.ptr.cast(), dtype, shape, None, self.device) }
    }

    /// Copies host elements into the start of the buffer.
    pub fn upload<T: Storage>(&mut self, src: &[T]) -> Result<(), Error> {
        let bytes = std::mem::size_of_val(src);
        if bytes > self.bytes {
            return Err(ValidationError::Length {
                len: self.bytes / std::mem::size_of::<T>(),
                shape: vec![src.len()],
                expected: src.len(),
            }
            .into());
        }
        // SAFETY: `Storage` types are plain bytes without padding, so their bytes are
        // initialised and may be viewed as `u8`.
        let raw = unsafe { std::slice::from_raw_parts(src.as_ptr().cast::<u8>(), bytes) };
        self.backend.upload(self, raw)
    }

    /// Copies the first `len` elements of the buffer to the host. A `len` beyond the buffer
    /// is an error before anything is allocated.
    pub fn download<T: Storage + Default>(&self, len: usize) -> Result<Vec<T>, Error> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .filter(|&b| b <= self.bytes)
            .ok_or_else(|| ValidationError::Length {
                len: self.bytes / std::mem::size_of::<T>(),
                shape: vec![len],
                expected: len,
            })?;
        let mut out = vec![T::default(); len];
        // SAFETY: every bit pattern is a valid `Storage` value (plain bytes), so writing bytes into
        // the vector's initialised storage is sound.
        let raw = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), bytes) };
        self.backend.download(self, raw)?;
        Ok(out)
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        // SAFETY: `from_raw`'s contract: this is a live allocation of `backend` not freed yet.
        unsafe { self.backend.free(self.device, self.ptr, self.bytes) }
    }
}

impl fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DeviceBuffer({} bytes on {} via {})",
            self.bytes,
            self.device,
            self.backend.name()
        )
    }
}

/// Host memory for CPU backends: 64-byte aligned allocations.
pub mod host_memory {
    use super::*;

    const ALIGN: usize = 64;

    fn layout(bytes: usize) -> Result<Layout, Error> {
        Layout::from_size_align(bytes.max(1), ALIGN).map_err(|_| {
            ValidationError::Overflow {
                arg: "allocation",
                what: format!("{bytes} bytes"),
            }
            .into()
        })
    }

    /// Allocates `bytes` of host memory for `backend` (contents unspecified but initialised).
    pub fn alloc(backend: &'static dyn Backend, bytes: usize) -> Result<DeviceBuffer, Error> {
        let layout = layout(bytes)?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(Error::Device {
                backend: backend.name(),
                source: format!("host allocation of {bytes} bytes failed").into(),
            });
        }
        // SAFETY: `ptr` is a fresh allocation of `bytes` bytes, freed by `free` below.
        Ok(unsafe { DeviceBuffer::from_raw(backend, DeviceId::CPU, ptr, bytes) })
    }

    /// Frees memory from [`alloc`].
    ///
    /// # Safety
    /// `ptr`/`bytes` must come from one earlier [`alloc`], not yet freed.
    pub unsafe fn free(ptr: *mut u8, bytes: usize) {
        if let Ok(layout) = layout(bytes) {
            // SAFETY: the caller's contract; the layout is the one used to allocate.
            unsafe { std::alloc::dealloc(ptr, layout) }
        }
    }

    /// Copies `src` into the start of `dst`.
    pub fn upload(dst: &mut DeviceBuffer, src: &[u8]) -> Result<(), Error> {
        let n = src.len().min(dst.len());
        // SAFETY: `dst` owns at least `n` bytes; `src` is a distinct host slice.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr(), n) };
        Ok(())
    }

    /// Copies the first `bytes` bytes of `src` to the start of `dst`.
    pub fn copy(dst: &mut DeviceBuffer, src: &DeviceBuffer, bytes: usize) -> Result<(), Error> {
        if bytes > dst.len() || bytes > src.len() {
            return Err(ValidationError::Length {
                len: dst.len().min(src.len()),
                shape: vec![bytes],
                expected: bytes,
            }
            .into());
        }
        // SAFETY: both buffers own at least `bytes` bytes (checked) and are distinct
        // allocations (`dst` is borrowed mutably while `src` is borrowed).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr(), bytes) };
        Ok(())
    }

    /// Copies the start of `src` into `dst`.
    pub fn download(src: &DeviceBuffer, dst: &mut [u8]) -> Result<(), Error> {
        let n = dst.len().min(src.len());
        // SAFETY: `src` owns at least `n` bytes; `dst` is a distinct host slice.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr(), n) };
        Ok(())
    }
}
