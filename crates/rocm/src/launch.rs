//! Launching an entry point of a kernel source on a stream.
//!
//! Responsibility, as in the CUDA backend: core has validated the arguments, the kernel's
//! checks passed for the stream's device, the op file chose the entry point, the launch shape
//! and parameters matching the entry point's signature; this module binds the device, gets the
//! function (compiling and loading its module on first use, for the architecture of the
//! capabilities the launch context holds) and turns failures into errors.

use std::ffi::c_void;

use hip_sys::hiprt::hipStream_t;
use kernelyard_core::{Capabilities, Error, Stream};
use kernelyard_kernels::launch::Dims;
use kernelyard_kernels::source::KernelSource;

use crate::device::bind;
use crate::error::{check, RocmError};

/// Launches `symbol` of `source` on `stream` with `dims`; `caps` are the capabilities of the
/// stream's device (the launch context's), whose architecture the module is compiled for.
///
/// # Safety
/// `params` must point at values whose number and types match the entry point's parameters,
/// and every device pointer among them must be valid for what the kernel reads and writes for
/// these parameters, on the stream's device, until the work completes.
pub unsafe fn launch(
    stream: &Stream,
    caps: &Capabilities,
    source: &'static KernelSource,
    symbol: &'static str,
    dims: Dims,
    params: &mut [*mut c_void],
) -> Result<(), Error> {
    if caps.device != stream.device() {
        return Err(RocmError::Misuse {
            what: format!(
                "a launch on {} with the capabilities of {}",
                stream.device(),
                caps.device
            ),
        }
        .into());
    }
    let device = bind(stream.device())?;
    let f = device.modules.function(caps, source, symbol)?;
    let hip = crate::device::hip_api()?;
    // SAFETY: `f` is a live function of a module loaded on the bound device; `params` match
    // its signature (the caller's contract); the stream is the null stream or a live stream of
    // this device (`Stream::from_raw`'s contract covers borrowed handles).
    let s = unsafe {
        (hip.api.hipModuleLaunchKernel)(
            f,
            dims.grid.0,
            dims.grid.1,
            dims.grid.2,
            dims.block.0,
            dims.block.1,
            dims.block.2,
            dims.shared_bytes,
            stream.raw() as hipStream_t,
            params.as_mut_ptr(),
            std::ptr::null_mut(),
        )
    };
    check(hip, "hipModuleLaunchKernel", s).map_err(|e| match e {
        RocmError::Hip { call, status } => RocmError::Hip {
            call,
            status: format!("{symbol} with {dims:?}: {status}"),
        },
        e => e,
    })?;
    Ok(())
}

/// The HIP launcher for the launch sequences shared with the CUDA backend
/// (`kernelyard_kernels`), for the device whose capabilities it holds (a launch context's).
pub struct HipLauncher<'a> {
    caps: &'a Capabilities,
}

impl<'a> HipLauncher<'a> {
    /// The launcher for the device whose capabilities are `caps`.
    pub fn new(caps: &'a Capabilities) -> Self {
        HipLauncher { caps }
    }
}

impl kernelyard_kernels::launch::Launch for HipLauncher<'_> {
    unsafe fn launch(
        &self,
        stream: &Stream,
        source: &'static KernelSource,
        symbol: &'static str,
        dims: Dims,
        params: &mut [*mut c_void],
    ) -> Result<(), Error> {
        // SAFETY: the trait's contract is `launch`'s.
        unsafe { launch(stream, self.caps, source, symbol, dims, params) }
    }
}
