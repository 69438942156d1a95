//! kernelyard-reference: every operator of the catalog in pure Rust, on the host CPU.
//!
//! This backend is the oracle for every other backend, so it is written to be obviously
//! right rather than fast:
//! - each operator's math is a plain function over dense, logical-order `f64` arrays in
//!   [`ops`]`::<op>` (the *oracle*), accumulating in `f64`;
//! - each registered kernel (`reference.<op>`) gathers its inputs into `f64`, calls the oracle,
//!   and rounds the results to the output dtype once;
//! - rows are processed independently (in parallel with rayon where it helps) and each row's
//!   reduction order is fixed, so every kernel is deterministic and batch-invariant, and
//!   declares so.
//!
//! Cargo feature `register` (default): registers the backend and its kernels with `inventory`.
//! The equivalence suite depends on this crate without it, for the oracles alone, so that a
//! `kernelyard` build without its `reference` feature really has no reference backend.
//!
//! Responsibility: core has validated every argument before a kernel runs; the kernels here
//! report only data-dependent errors (checked out-of-range targets).

#![deny(missing_docs)]

pub mod host;
pub mod ops;

use kernelyard_core::backend::host_memory;
use kernelyard_core::{
    Backend, Capabilities, DeviceBuffer, DeviceId, DeviceKind, Error, ProbeError, Stream,
};

/// The backend's name: kernels are called `reference.<op>`.
pub const BACKEND: &str = "reference";

/// The reference backend: the host CPU and host memory.
pub struct ReferenceBackend;

/// The one instance, registered with `inventory`.
pub static REFERENCE: ReferenceBackend = ReferenceBackend;

#[cfg(feature = "register")]
kernelyard_core::inventory::submit! { kernelyard_core::BackendEntry(&REFERENCE) }

/// Registers a kernel static with core's registry (`kernelyard_core::register!`) when the
/// `register` feature is on (the default); without it the crate is only the oracle library,
/// and nothing is registered.
#[cfg(feature = "register")]
macro_rules! register_kernel {
    ($kernel:ident) => {
        kernelyard_core::register!($kernel);
    };
}

/// Without the `register` feature, kernels are not registered.
#[cfg(not(feature = "register"))]
macro_rules! register_kernel {
    ($kernel:ident) => {};
}

pub(crate) use register_kernel;

impl Backend for ReferenceBackend {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn device_kind(&self) -> DeviceKind {
        DeviceKind::Cpu
    }

    fn probe(&self) -> Result<Vec<Capabilities>, ProbeError> {
        Ok(vec![Capabilities::host()])
    }

    fn alloc(&'static self, device: DeviceId, bytes: usize) -> Result<DeviceBuffer, Error> {
        if device != DeviceId::CPU {
            return Err(Error::NoBackendForDevice {
                device,
                why: "the reference backend allocates host memory for `cpu` only".into(),
            });
        }
        host_memory::alloc(self, bytes)
    }

    unsafe fn free(&self, _device: DeviceId, ptr: *mut u8, bytes: usize) {
        // SAFETY: forwarded contract: `ptr`/`bytes` come from `host_memory::alloc`.
        unsafe { host_memory::free(ptr, bytes) }
    }

    fn upload(&self, dst: &mut DeviceBuffer, src: &[u8]) -> Result<(), Error> {
        host_memory::upload(dst, src)
    }

    fn download(&self, src: &DeviceBuffer, dst: &mut [u8]) -> Result<(), Error> {
        host_memory::download(src, dst)
    }

    fn synchronize(&self, _stream: &Stream) -> Result<(), Error> {
        Ok(())
    }

    fn copy(
        &self,
        _stream: &Stream,
        dst: &mut DeviceBuffer,
        src: &DeviceBuffer,
        bytes: usize,
    ) -> Result<(), Error> {
        host_memory::copy(dst, src, bytes)
    }
}

/// Ensures this crate is linked (so its `inventory` registrations are present). Call it from
/// a facade or binary that otherwise names nothing in the crate.
pub fn link() {}
