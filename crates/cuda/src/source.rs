//! The kernel sources this backend compiles, with their entry points: the shared ones of
//! `crates/kernels/kernels/` and its own of `crates/cuda/kernels/`.
//!
//! The types, the shared headers and the splicing live in [`kernelyard_kernels::source`]
//! (shared with the ROCm backend) and are re-exported here; this module adds the backend's
//! list of sources ([`all`]). The GPU test `every_listed_entry_point_exists_in_its_loaded_module`
//! and CI's compile matrix check that every listed entry point is in the compiled module for
//! every architecture a source's kernels support.

pub use kernelyard_kernels::source::{KernelSource, SourceEntry, HEADERS};

/// Every kernel source of the backend, with its kernels.
pub fn all() -> &'static [SourceEntry] {
    crate::ops::SOURCES
}
