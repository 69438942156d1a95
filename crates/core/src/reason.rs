//! Why a kernel cannot run a problem on a device: typed, serializable, and printable with a fix.

use std::fmt;

use serde::Serialize;

use crate::caps::{Arch, ArchReq, ArchVersion, Feature};
use crate::device::DeviceKind;
use crate::dtype::DType;

/// One reason a kernel cannot run a problem on a device.
///
/// Reasons are data: selection collects every one of them for every candidate, reports carry
/// them, and the CLI prints them. None is a catch-all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// The kernel is for another kind of device.
    WrongDeviceKind {
        /// The device's kind.
        have: DeviceKind,
        /// The kernel's kind.
        need: DeviceKind,
    },
    /// The device architecture is older than the kernel's range.
    ArchTooOld {
        /// The device's architecture.
        #[serde(serialize_with = "as_text")]
        have: ArchVersion,
        /// The kernel's range.
        #[serde(serialize_with = "as_text")]
        need: ArchReq,
    },
    /// The device architecture is newer than the kernel's range.
    ArchTooNew {
        /// The device's architecture.
        #[serde(serialize_with = "as_text")]
        have: ArchVersion,
        /// The newest architecture the kernel supports.
        #[serde(serialize_with = "as_text")]
        max: ArchVersion,
    },
    /// The device architecture is of another family than the kernel's requirement.
    ArchFamily {
        /// The device's architecture.
        #[serde(serialize_with = "as_text")]
        have: Arch,
        /// The kernel's requirement.
        #[serde(serialize_with = "as_text")]
        need: ArchReq,
    },
    /// The device's wavefront size is not the one the kernel assumes.
    Wavefront {
        /// The device's wavefront size.
        have: u32,
        /// The kernel's.
        need: u32,
    },
    /// An argument's dtype is not one the kernel supports.
    DtypeUnsupported {
        /// The argument.
        arg: &'static str,
        /// Its dtype.
        dtype: DType,
        /// What the kernel supports for it.
        supported: Vec<DType>,
    },
    /// The problem's shape or flags are outside what the kernel handles.
    ShapeUnsupported {
        /// What is unsupported, in words with the numbers.
        what: String,
    },
    /// The tensors are not aligned as the kernel needs.
    Alignment {
        /// The argument (or `every tensor`).
        arg: &'static str,
        /// The alignment needed, bytes.
        need: usize,
        /// The alignment the problem has, bytes.
        have: usize,
    },
    /// The kernel's shared memory need exceeds the device's per-block limit.
    SharedMemory {
        /// Bytes needed per block.
        need: u64,
        /// Bytes available per block (opt-in limit).
        have: u64,
    },
    /// The device lacks a feature the kernel needs.
    MissingFeature {
        /// The feature.
        feature: Feature,
    },
    /// Determinism was required and the kernel does not declare it.
    NotDeterministic,
    /// Batch invariance was required and the kernel does not declare it.
    NotBatchInvariant,
    /// The policy restricts selection to another backend.
    ExcludedByPolicy {
        /// The kernel's backend.
        backend: &'static str,
        /// The backend the policy allows.
        allowed: String,
    },
    /// The backend is compiled in but cannot be used on this machine.
    BackendUnavailable {
        /// The backend.
        backend: &'static str,
        /// Why, e.g. "libcuda.so not found".
        why: String,
    },
    /// The backend is not compiled into this build.
    NotCompiledIn {
        /// The backend.
        backend: &'static str,
        /// The cargo feature that enables it.
        feature: &'static str,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::WrongDeviceKind { have, need } => {
                write!(f, "kernel runs on {need} devices, the device is {have}")
            }
            Reason::ArchTooOld { have, need } => {
                write!(f, "architecture {have} is too old (kernel supports {need})")
            }
            Reason::ArchTooNew { have, max } => write!(
                f,
                "architecture {have} is newer than the kernel's newest supported {max}"
            ),
            Reason::ArchFamily { have, need } => {
                write!(f, "architecture {have} is not in the kernel's family ({need})")
            }
            Reason::Wavefront { have, need } => write!(
                f,
                "device wavefront is {have} threads, the kernel assumes {need}"
            ),
            Reason::DtypeUnsupported {
                arg,
                dtype,
                supported,
            } => {
                write!(f, "`{arg}` dtype {dtype} is unsupported (supported: ")?;
                write_list(f, supported)?;
                f.write_str(")")
            }
            Reason::ShapeUnsupported { what } => write!(f, "shape unsupported: {what}"),
            Reason::Alignment { arg, need, have } => write!(
                f,
                "{arg} must be {need}-byte aligned (pointers and row strides), the problem is {have}-byte aligned"
            ),
            Reason::SharedMemory { need, have } => write!(
                f,
                "needs {need} bytes of shared memory per block, the device allows {have}"
            ),
            Reason::MissingFeature { feature } => {
                write!(f, "the device lacks the `{feature}` feature")
            }
            Reason::NotDeterministic => f.write_str(
                "determinism was required and the kernel is not deterministic",
            ),
            Reason::NotBatchInvariant => f.write_str(
                "batch invariance was required and the kernel is not batch-invariant",
            ),
            Reason::ExcludedByPolicy { backend, allowed } => write!(
                f,
                "backend `{backend}` is excluded by the policy (only `{allowed}` is allowed)"
            ),
            Reason::BackendUnavailable { backend, why } => {
                write!(f, "backend `{backend}` is unavailable: {why}")
            }
            Reason::NotCompiledIn { backend, feature } => write!(
                f,
                "backend `{backend}` is not compiled in: rebuild with `--features {feature}`"
            ),
        }
    }
}

fn write_list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

/// Serializes a typed field as its display text (the JSON form of reasons stays a string).
fn as_text<T: fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}
