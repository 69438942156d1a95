//! Next to a crate that asks cudarc for the build system's CUDA version, built where there is no
//! nvcc (check.sh hides it): kernelyard's `fallback-latest` gives the latest bindings cudarc
//! knows instead of a failed build.

/// The bindings cudarc was built with, as kernelyard-cuda reads them.
pub const BINDINGS: kernelyard::Version = kernelyard::cuda::libs::BINDINGS;

const _: () = assert!(BINDINGS.major >= 13);
