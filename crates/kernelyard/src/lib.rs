//! kernelyard: a registry of GPU operator kernels that fails fast instead of falling back
//! silently.
//!
//! This is the facade crate: it re-exports [`kernelyard_core`] (the operator catalog, devices
//! and capabilities, the kernel registry and selection) and links in the backends chosen with
//! cargo features. Applications depend on this crate; backend crates depend on
//! `kernelyard-core` only.
//!
//! # Who is responsible for what
//! - **This crate** decides which backends are compiled into a binary, and nothing else. It
//!   adds no behaviour of its own.
//! - **Core** validates arguments, describes devices as data and selects kernels; see
//!   [`kernelyard_core`].
//! - **Backends** probe their devices and register kernels. A backend that is not compiled in
//!   is still known to the [`Runtime`]: [`Runtime::backends`] reports it as "not compiled in"
//!   with the feature that enables it, and selecting on its devices is an error that says so.
//!
//! # Cargo features
//! - `reference` (default): the pure-Rust reference backend, every operator on the host CPU,
//!   and the oracle the equivalence suite compares every other backend with. Available as
//!   `kernelyard::reference`; call [`link_backends`] once so its registrations are linked in.
//! - `cuda`: the NVIDIA GPU backend (`kernelyard::cuda`): cudarc, loading the libraries at run
//!   time unless another crate links them (candle's `dynamic-linking`), so a build needs no
//!   CUDA toolkit; the final binary chooses the bindings' CUDA version (docs/EMBEDDING.md); at
//!   run time it needs the driver (libcuda), NVRTC (`libnvrtc.so.{major}`) and cuBLASLt, and
//!   reports what is missing instead of panicking.
//! - `rocm`: the AMD GPU backend (`kernelyard::rocm`): HIP runtime and hiprtc, opened at run
//!   time (a machine without ROCm gets a typed reason, not a failure to start). Building needs
//!   ROCm's headers for hip-sys (Debian's `libamdhip64-dev` with `HIP_PATH=/usr`, or ROCm in
//!   `/opt/rocm`). Without the feature `kernelyard::rocm` is a stub: its kernels are listed and
//!   their checks say "not compiled in" with this feature; `kernelyard doctor` reports the
//!   backend as "not compiled in". It has not yet run on AMD hardware (`docs/ROCM.md`).
//! - `dlpack`: `kernelyard::dlpack`, DLPack 1.x import/export of tensor views (zero-copy
//!   hand-over with PyTorch, JAX, CuPy, candle or a C caller), through the `dlpark` crate.
//!
//! # Example
//! ```
//! use kernelyard::{DType, DeviceId, OpKind, Params, Policy, Problem, Runtime};
//!
//! # #[cfg(feature = "reference")]
//! # {
//! kernelyard::link_backends();
//! let rt = Runtime::new().unwrap();
//! let problem = Problem::from_params(
//!     OpKind::Softmax,
//!     &Params::parse(OpKind::Softmax, "rows=4,cols=64").unwrap(),
//!     DType::F32,
//! )
//! .unwrap();
//! let plan = rt.select(DeviceId::CPU, &problem, &Policy::auto()).unwrap();
//! assert_eq!(plan.kernel_name(), "reference.softmax");
//! # }
//! ```
#![deny(missing_docs)]

pub use kernelyard_core::{
    backend, caps, device, dtype, error, float8, half, inventory, kernel, ops, presets, reason,
    registry, runtime, select, stream, tensor, tune,
};

pub use kernelyard_core::{
    Arch, ArchReq, ArchVersion, Args, Backend, BackendEntry, BackendState, BackendStatus,
    Candidate, Capabilities, CheckFn, Choice, ChoiceSource, DType, DeviceBuffer, DeviceId,
    DeviceKind, Element, Error, Example, F4E2M1x2, Feature, Gfx, Kernel, KernelDef, KernelEntry,
    KernelMeta, KnownBackend, LaunchCtx, LaunchFn, Listed, Op, OpKind, OwnedStream, Params, Pins,
    Plan, Policy, PrepareFn, ProbeError, Problem, Reason, Registry, Runtime, RuntimeBuilder,
    ScalarKey, ScoreFn, SelectError, SelectionReport, Selector, Sm, Storage, Stream, TensorView,
    TensorViewMut, TuningNote, ValidationError, Verdict, Version, Work, F8E8M0, KNOWN_BACKENDS,
    MAX_RANK, PIN_ENV, TUNE_ENV,
};

/// DLPack import/export of tensor views (feature `dlpack`): see [`kernelyard_core::dlpack`].
#[cfg(feature = "dlpack")]
pub use kernelyard_core::dlpack;

/// The reference backend (pure Rust, host CPU, every operator): the oracle for all others.
#[cfg(feature = "reference")]
pub use kernelyard_reference as reference;

/// The CUDA backend (NVIDIA GPUs): kernels compiled at run time by NVRTC, cuBLASLt GEMM.
#[cfg(feature = "cuda")]
pub use kernelyard_cuda as cuda;

/// The ROCm backend (AMD GPUs): kernels compiled at run time by hiprtc. Without the `rocm`
/// feature, a stub whose kernels report "not compiled in".
pub use kernelyard_rocm as rocm;

/// Makes sure every compiled-in backend is linked into the final binary, so its
/// `inventory` registrations (backends and kernels) are present when a [`Runtime`] is built.
///
/// A binary that names nothing else from a backend crate may otherwise drop it at link time;
/// call this once (e.g. at the start of `main`) before [`Runtime::new`]. It does nothing else
/// and is cheap to call more than once.
pub fn link_backends() {
    #[cfg(feature = "reference")]
    kernelyard_reference::link();
    #[cfg(feature = "cuda")]
    kernelyard_cuda::link();
    kernelyard_rocm::link();
}
