//! kernelyard[cuda] alone: cudarc's bindings follow nvcc's version, else (no toolkit) the latest
//! version cudarc knows.

/// The bindings cudarc was built with, as kernelyard-cuda reads them.
pub const BINDINGS: kernelyard::Version = kernelyard::cuda::libs::BINDINGS;

const _: () = assert!(BINDINGS.major >= 12);
