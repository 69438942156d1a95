//! Launching an entry point of a kernel source on a stream.
//!
//! Responsibility: core has validated the arguments (devices, bounds, aliasing) and the plan
//! has checked the kernel can run the problem on the stream's device; the op file chooses the
//! entry point and the launch shape and passes parameters matching the entry point's
//! signature; this module binds the device's context, gets the function (compiling and
//! loading its module on first use), raises its dynamic shared-memory limit when needed, and
//! turns launch failures into errors. The shape ([`Dims`]) and the parameter list
//! ([`kernelyard_kernels::params!`]) come from `kernelyard-kernels`, shared with the ROCm
//! backend, whose launch sequences (rms_norm, softmax, log_softmax, token_logprobs, rope) call
//! [`launch`] through [`CudaLauncher`].

use std::ffi::c_void;

use cudarc::driver::sys;
use kernelyard_core::{Error, Stream};

use crate::device::bind;
use crate::error::{driver_code, CudaError};
use crate::source::KernelSource;

pub use kernelyard_kernels::launch::Dims;
use kernelyard_kernels::launch::Launch;

/// `symbol` of `source` on the stream's device, its context made current (compiling and
/// loading the module on first use, with `dims`' dynamic shared memory allowed).
fn function(
    stream: &Stream,
    source: &'static KernelSource,
    symbol: &'static str,
    dims: Dims,
) -> Result<sys::CUfunction, Error> {
    bind(stream.device())?
        .modules
        .function(source, symbol, dims.shared_bytes, Some(stream))
}

/// Launches `symbol` of `source` on `stream` with `dims`; `params` is usually
/// [`kernelyard_kernels::params!`]`[...]`.
///
/// # Safety
/// `params` must point at values whose number and types match the entry point's parameters,
/// and every device pointer among them must be valid for what the kernel reads and writes for
/// these parameters, on the stream's device, until the work completes.
pub unsafe fn launch(
    stream: &Stream,
    source: &'static KernelSource,
    symbol: &'static str,
    dims: Dims,
    params: &mut [*mut c_void],
) -> Result<(), Error> {
    let f = function(stream, source, symbol, dims)?;
    tracing::trace!(symbol, ?dims, "kernelyard: cuLaunchKernel");
    // SAFETY: `f` is a live function in the current context; `params` match its signature
    // (the caller's contract); the stream is a live stream of this device (the plan checked
    // its device; `Stream::from_raw`'s contract covers borrowed handles).
    unsafe {
        sys::cuLaunchKernel(
            f,
            dims.grid.0,
            dims.grid.1,
            dims.grid.2,
            dims.block.0,
            dims.block.1,
            dims.block.2,
            dims.shared_bytes,
            stream.raw() as sys::CUstream,
            params.as_mut_ptr(),
            std::ptr::null_mut(),
        )
    }
    .result()
    .map_err(|e| {
        CudaError::Driver {
            call: "cuLaunchKernel",
            code: format!("{symbol} with {dims:?}: {}", driver_code(e)),
        }
        .into()
    })
}

/// [`launch`] with the grid's x blocks grouped into thread-block clusters of `cluster` blocks
/// (`cuLaunchKernelEx` with `CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION`: sm_90 and newer; at most
/// 8 blocks, the portable size). `dims.grid.0` must be a multiple of `cluster`: that, and a
/// cluster size the device cannot co-schedule, are errors, not launches.
///
/// `persistent`: the kernel loops over its work by cluster index, so any whole number of
/// clusters computes the same result; the grid is then trimmed to the clusters the device can
/// hold at once (`cuOccupancyMaxActiveClusters`: a GPC's multiprocessors may not pair up, so
/// that can be fewer than multiprocessors / `cluster`), so that no cluster waits for another
/// to finish before it starts. The query runs at every launch (its only user, the FP8 kernel's
/// cluster variant, is off by default); cache it per function before a default path uses it.
///
/// # Safety
/// As [`launch`]; the kernel must also be written for clusters of this size (the driver
/// checks nothing of what it does with its peers' shared memory), and with `persistent`, for
/// any grid of whole clusters.
pub unsafe fn launch_cluster(
    stream: &Stream,
    source: &'static KernelSource,
    symbol: &'static str,
    mut dims: Dims,
    cluster: u32,
    persistent: bool,
    params: &mut [*mut c_void],
) -> Result<(), Error> {
    if cluster == 0 || cluster > 8 || !dims.grid.0.is_multiple_of(cluster) {
        return Err(CudaError::Misuse {
            what: format!("{symbol}: a cluster of {cluster} blocks over a grid of {dims:?}"),
        }
        .into());
    }
    let f = function(stream, source, symbol, dims)?;
    tracing::trace!(symbol, ?dims, cluster, "kernelyard: cuLaunchKernelEx");
    // SAFETY: an all-zero attribute is a valid value of this plain C struct (id 0 = ignore);
    // the id and the cluster shape are then written as whole fields.
    let mut attr: sys::CUlaunchAttribute = unsafe { std::mem::zeroed() };
    attr.id = sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
    attr.value.clusterDim = sys::CUlaunchAttributeValue_union__bindgen_ty_1 {
        x: cluster,
        y: 1,
        z: 1,
    };
    let mut config = sys::CUlaunchConfig {
        gridDimX: dims.grid.0,
        gridDimY: dims.grid.1,
        gridDimZ: dims.grid.2,
        blockDimX: dims.block.0,
        blockDimY: dims.block.1,
        blockDimZ: dims.block.2,
        sharedMemBytes: dims.shared_bytes,
        hStream: stream.raw() as sys::CUstream,
        attrs: &mut attr,
        numAttrs: 1,
    };
    let requested = dims;
    let driver_error = |call: &'static str, what: String| -> Error {
        CudaError::Driver {
            call,
            code: format!("{symbol} with {requested:?} in clusters of {cluster}: {what}"),
        }
        .into()
    };
    if persistent {
        let mut most: std::ffi::c_int = 0;
        // SAFETY: `f` is live in the current context; `config` describes the launch (the
        // query reads its block, shared memory and cluster attribute).
        unsafe { sys::cuOccupancyMaxActiveClusters(&mut most, f, &config) }
            .result()
            .map_err(|e| driver_error("cuOccupancyMaxActiveClusters", driver_code(e)))?;
        if most <= 0 {
            return Err(driver_error(
                "cuOccupancyMaxActiveClusters",
                "no cluster of this shape fits the device".to_owned(),
            ));
        }
        let most = (most as u32).saturating_mul(cluster);
        dims.grid.0 = dims.grid.0.min(most);
        config.gridDimX = dims.grid.0;
    }
    // SAFETY: as in `launch`: `f` is live in the current context, `params` match its
    // signature (the caller's contract), the stream is a live stream of this device; `config`
    // and the attribute it points at outlive the call.
    unsafe { sys::cuLaunchKernelEx(&config, f, params.as_mut_ptr(), std::ptr::null_mut()) }
        .result()
        .map_err(|e| driver_error("cuLaunchKernelEx", driver_code(e)))
}

/// The CUDA launcher of the launch sequences shared with the ROCm backend
/// (`kernelyard_kernels`): [`launch`].
pub struct CudaLauncher;

impl Launch for CudaLauncher {
    unsafe fn launch(
        &self,
        stream: &Stream,
        source: &'static KernelSource,
        symbol: &'static str,
        dims: Dims,
        params: &mut [*mut c_void],
    ) -> Result<(), Error> {
        // SAFETY: the trait's contract is `launch`'s.
        unsafe { launch(stream, source, symbol, dims, params) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelyard_core::DeviceId;

    /// A cluster shape that cannot tile the grid is refused before any driver call (so this
    /// runs without a GPU: the device is never bound).
    #[test]
    fn a_cluster_that_does_not_tile_the_grid_is_misuse() {
        let stream = Stream::default_for(DeviceId::cuda(0));
        let source = &crate::ops::gemm_bi_sm90::SCALED_MODULES[0];
        let symbol = source.symbols[0];
        let dims = |x| Dims {
            grid: (x, 1, 1),
            block: (384, 1, 1),
            shared_bytes: 0,
        };
        for (grid, cluster) in [(4, 0), (9, 9), (16, 16), (3, 2), (1, 2)] {
            // SAFETY: refused before any launch (the assertion below checks it).
            let err = unsafe {
                launch_cluster(&stream, source, symbol, dims(grid), cluster, true, &mut [])
            }
            .expect_err("refused");
            let text = err.to_string();
            assert!(
                text.contains(&format!("a cluster of {cluster} blocks")),
                "grid {grid}, cluster {cluster}: {text}"
            );
        }
    }
}
