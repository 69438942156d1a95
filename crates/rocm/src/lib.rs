//! kernelyard-rocm: the AMD GPU backend.
//!
//! **Status: built and tested without AMD hardware.** Everything that can be checked without an
//! AMD GPU is checked in CI (the no-device path, every kernel source compiled by hiprtc for
//! gfx908, gfx90a and gfx1030, selection against simulated devices), and the portable kernels'
//! logic runs on NVIDIA GPUs through the same sources; nothing here has run on an AMD GPU yet.
//! `docs/ROCM.md` says what that leaves open and how to run the suite on a ROCm machine.
//!
//! Two builds:
//! - **With the `hip` feature** (the `kernelyard` facade's `rocm` feature): the working
//!   backend. Building needs ROCm's headers for [hip-sys](https://docs.rs/hip-sys) (Debian's
//!   `libamdhip64-dev` with `HIP_PATH=/usr`, or ROCm in `/opt/rocm`); running needs nothing,
//!   because the runtime and hiprtc are opened at run time (module `hip`) and their absence is a
//!   typed reason ([`device::Unavailable`]).
//!   - **Runtime** ([`device`]): probing, capabilities (gfx architecture, wavefront size,
//!     compute units, LDS per block, memory, runtime and hiprtc versions), device binding.
//!   - **Pipeline** ([`module`]): the shared sources of `crates/kernels/kernels/` compiled by
//!     hiprtc for the device's gfx architecture on first use, cached on disk (code object) and
//!     in memory.
//!   - **Execution**: launches go to the caller's stream (the null stream, one made with
//!     [`Runtime::create_stream`](kernelyard_core::Runtime::create_stream), or a framework's
//!     `hipStream_t` borrowed with [`Stream::from_raw`](kernelyard_core::Stream::from_raw)).
//! - **Without it**: a stub with no dependency on ROCm. Its kernels are registered with their
//!   metadata (so `kernelyard list` shows them), and their checks report
//!   [`Reason::NotCompiledIn`](kernelyard_core::Reason::NotCompiledIn) with the feature to
//!   rebuild with; the backend itself is not registered, so `doctor` says "rocm: not compiled
//!   in (rebuild with `--features rocm`)".
//!
//! Kernels ([`ops`]): `rocm.rms_norm`, `rocm.softmax`, `rocm.log_softmax`,
//! `rocm.token_logprobs`, `rocm.rope` from the same sources as the CUDA backend,
//! `rocm.silu_mul` and `rocm.selective_state_update` from the sources shared with it, and the
//! batch-invariant GEMM as `rocm.gemm.batch_invariant.mfma` (matrix cores, gfx908 and gfx90a)
//! and `rocm.gemm.batch_invariant` (portable, every architecture). Each declares its gfx range
//! and wavefront assumption.
//!
//! Responsibility: core validates arguments before dispatch; kernels here assume valid inputs
//! and report device faults as [`kernelyard_core::Error`].

#![deny(missing_docs)]

pub mod device;
pub mod error;
#[cfg(feature = "hip")]
pub mod hip;
#[cfg(feature = "hip")]
pub mod launch;
pub mod module;
pub mod ops;

#[cfg(feature = "hip")]
mod backend;

pub use error::RocmError;

/// The backend's name (kernel names start with `rocm.`).
pub const BACKEND: &str = "rocm";

/// The `kernelyard` facade feature that compiles the working backend in.
pub const FEATURE: &str = "rocm";

/// Whether this build has the working backend (the `hip` feature) rather than the stub.
pub const COMPILED_IN: bool = cfg!(feature = "hip");

/// Call from a binary that uses the backend only through the registry, so the linker keeps
/// this crate (and its `inventory` registrations).
pub fn link() {}
