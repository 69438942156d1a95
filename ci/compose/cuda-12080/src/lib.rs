//! Next to a crate that chooses CUDA 12.8 bindings (cudarc's default features plus `cuda-12080`):
//! the final build's explicit feature wins, and kernelyard builds against those bindings.

/// The bindings cudarc was built with, as kernelyard-cuda reads them.
pub const BINDINGS: kernelyard::Version = kernelyard::cuda::libs::BINDINGS;

const _: () = assert!(cudarc::driver::sys::CUDA_VERSION == 12080);
const _: () = assert!(BINDINGS.major == 12 && BINDINGS.minor == 8);
const _: () = assert!(kernelyard::cuda::device::MIN_DRIVER.major == 12);
