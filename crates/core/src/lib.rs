//! kernelyard-core: operators, devices, capabilities, the kernel registry and selection.
//!
//! # Who is responsible for what
//! - **Core** (this crate) knows the operator catalog ([`ops`]), validates arguments into
//!   problems before any backend sees a call, describes devices as data ([`Capabilities`]),
//!   holds the registry of kernels and chooses among them ([`Selector`], [`Runtime`]). It has no
//!   GPU dependency.
//! - **Backends** (`kernelyard-reference`, `kernelyard-cuda`, `kernelyard-rocm`) probe
//!   their devices, move memory, and register each kernel as a [`KernelDef`] static with
//!   [`register!`]. Kernels may
//!   assume valid arguments and report only device faults and data-dependent errors.
//! - **Callers** name a device and a [`Policy`] on every call; nothing falls back silently to
//!   another kernel, backend or device. A kernel that cannot run says why ([`Reason`]).
//!
//! # Example
//! ```
//! use kernelyard_core::{DeviceId, DType, OpKind, Params, Policy, Problem, Runtime};
//!
//! let rt = Runtime::builder().no_probe().build().unwrap();
//! let problem = Problem::from_params(
//!     OpKind::RmsNorm,
//!     &Params::parse(OpKind::RmsNorm, "rows=4,hidden=64").unwrap(),
//!     DType::BF16,
//! )
//! .unwrap();
//! // No device was probed, so selection says why instead of guessing.
//! let err = rt.select(DeviceId::cuda(0), &problem, &Policy::auto()).unwrap_err();
//! assert!(err.to_string().contains("cuda"));
//! ```
#![deny(missing_docs)]

pub mod backend;
pub mod caps;
pub mod device;
#[cfg(feature = "dlpack")]
pub mod dlpack;
pub mod dtype;
pub mod error;
pub mod kernel;
pub mod ops;
pub mod presets;
pub mod reason;
pub mod registry;
pub mod runtime;
pub mod select;
pub mod stream;
pub mod tensor;
pub mod tune;

pub use backend::{Backend, BackendEntry, DeviceBuffer, KnownBackend, KNOWN_BACKENDS};
pub use caps::{Arch, ArchReq, ArchVersion, Capabilities, Feature, Gfx, Sm, Version};
pub use device::{DeviceId, DeviceKind};
pub use dtype::{DType, Element, F4E2M1x2, Storage, F8E8M0};
pub use error::{Error, ProbeError, SelectError, ValidationError};
pub use kernel::{
    CheckFn, Kernel, KernelDef, KernelEntry, KernelMeta, LaunchCtx, LaunchFn, PrepareFn, ScoreFn,
};
pub use ops::params::Params;
pub use ops::{Args, Example, Listed, Op, OpKind, Problem, ScalarKey, Work};
pub use presets::{Preset, PresetError, PRESETS};
pub use reason::Reason;
pub use registry::Registry;
pub use runtime::{BackendState, BackendStatus, Runtime, RuntimeBuilder, TUNE_ENV};
pub use select::{
    Candidate, Choice, ChoiceSource, Pins, Plan, Policy, SelectionReport, Selector, TuningNote,
    Verdict, PIN_ENV,
};
pub use stream::{OwnedStream, Stream};
pub use tensor::{TensorView, TensorViewMut, MAX_RANK};

/// Re-exported so backends and callers use the same `float8` version (the FP8 element types).
pub use float8;
/// Re-exported so backends and callers use the same `half` version.
pub use half;
/// Re-exported so backends can register with the same `inventory` version.
pub use inventory;
