//! kernelyard-candle's errors, and how they travel inside a `candle_core::Error`.
//!
//! Every refusal is typed: a layout kernelyard cannot take zero-copy ([`Error::NotContiguous`]),
//! a dtype it does not have ([`Error::DType`]), a shape the operator does not describe
//! ([`Error::Shape`]), a CUDA tensor in a build without the `cuda` feature
//! ([`Error::CudaNotCompiledIn`]), the process-wide runtime that could not be built
//! ([`Error::Runtime`]), and anything kernelyard itself reports ([`Error::Kernelyard`]: bad
//! arguments, or a selection error whose text is the full selection report, every candidate
//! kernel with its reasons).
//!
//! # In a candle error
//! Candle ops return `candle_core::Error`. candle 0.11's `Error::wrap` keeps only the
//! `Display` of what it wraps (its `Wrapped` variant holds a `Box<dyn Display>`, which cannot
//! be downcast), so this crate uses candle's `WrappedContext` variant instead, the one that
//! holds a `Box<dyn std::error::Error>`: [`Error::into_candle`]. The context is the operator's
//! name. candle prints that variant with `{:?}`, so [`Error`]'s `Debug` writes the same text
//! as its `Display` (the full message and kernelyard's report, line breaks intact), not a
//! struct dump. [`Error::from_candle`] finds the typed error again, through candle's
//! backtrace and context layers.

use std::fmt;
use std::sync::Arc;

/// What kernelyard-candle refuses or reports. See the module docs for how it travels inside a
/// `candle_core::Error`.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor's layout is not one the operator takes without a copy.
    #[error("{op}: `{arg}` with shape {shape:?} has strides {stride:?}; {need}; call `.contiguous()` on it first (kernelyard-candle never copies behind your back)")]
    NotContiguous {
        /// The operator (`ky_rms_norm`, ...).
        op: &'static str,
        /// The argument.
        arg: &'static str,
        /// Its shape.
        shape: Vec<usize>,
        /// Its strides, in elements.
        stride: Vec<usize>,
        /// The layouts the operator takes.
        need: &'static str,
    },
    /// A tensor's dtype is not one the operator takes.
    #[error(
        "{op}: `{arg}` is {dtype:?}; it must be {allowed}; convert it with `.to_dtype(..)` first"
    )]
    DType {
        /// The operator.
        op: &'static str,
        /// The argument.
        arg: &'static str,
        /// Its dtype.
        dtype: candle_core::DType,
        /// The dtypes taken, in words.
        allowed: &'static str,
    },
    /// A tensor's shape is not one the operator describes.
    #[error("{op}: `{arg}` has shape {shape:?}; {need}")]
    Shape {
        /// The operator.
        op: &'static str,
        /// The argument.
        arg: &'static str,
        /// Its shape.
        shape: Vec<usize>,
        /// The rule, in words.
        need: String,
    },
    /// A CUDA tensor reached an operator in a build without kernelyard-candle's `cuda` feature.
    /// It is not copied to the CPU.
    #[error("{op}: the tensor is on a CUDA device but kernelyard-candle was built without its `cuda` feature; rebuild with `--features kernelyard-candle/cuda` (the tensor is never moved to the CPU instead)")]
    CudaNotCompiledIn {
        /// The operator.
        op: &'static str,
    },
    /// A tensor is on a device kernelyard-candle has no path for (Metal).
    #[error("{op}: tensors on {device} are not supported by kernelyard-candle (CPU and CUDA are)")]
    UnsupportedDevice {
        /// The operator.
        op: &'static str,
        /// The device, in words.
        device: &'static str,
    },
    /// The process-wide runtime ([`crate::runtime`]) could not be built (e.g. a malformed
    /// `KERNELYARD_KERNELS`). Every later call reports the same error.
    #[error("the kernelyard runtime could not be built: {source}")]
    Runtime {
        /// kernelyard's error.
        #[source]
        source: Arc<kernelyard::Error>,
    },
    /// kernelyard refused the call or failed to run it: invalid arguments, no kernel (the text
    /// holds the selection report: every candidate with its reasons), or a device error.
    #[error("{op}: {source}")]
    Kernelyard {
        /// The operator.
        op: &'static str,
        /// kernelyard's error.
        #[source]
        source: kernelyard::Error,
    },
}

impl fmt::Debug for Error {
    /// The `Display` text: candle's `WrappedContext` prints the wrapped error with `{:?}`, and
    /// the report must read as a report there.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Error {
    /// The operator the error is about, if it names one.
    pub fn op(&self) -> Option<&'static str> {
        match self {
            Error::NotContiguous { op, .. }
            | Error::DType { op, .. }
            | Error::Shape { op, .. }
            | Error::CudaNotCompiledIn { op }
            | Error::UnsupportedDevice { op, .. }
            | Error::Kernelyard { op, .. } => Some(op),
            Error::Runtime { .. } => None,
        }
    }

    /// The kernelyard error inside, if this is one ([`Error::Kernelyard`] or
    /// [`Error::Runtime`]).
    pub fn kernelyard(&self) -> Option<&kernelyard::Error> {
        match self {
            Error::Kernelyard { source, .. } => Some(source),
            Error::Runtime { source } => Some(source),
            _ => None,
        }
    }

    /// This error as a `candle_core::Error` (its `WrappedContext` variant, context: the
    /// operator's name), from which [`Error::from_candle`] recovers it.
    pub fn into_candle(self) -> candle_core::Error {
        let context = match self.op() {
            Some(op) => format!("kernelyard-candle {op}"),
            None => "kernelyard-candle".to_owned(),
        };
        candle_core::Error::WrappedContext {
            wrapped: Box::new(self),
            context,
        }
        .bt()
    }

    /// The kernelyard-candle error inside a candle error, looking through candle's backtrace,
    /// context and path layers; `None` if the error did not come from this crate.
    pub fn from_candle(e: &candle_core::Error) -> Option<&Error> {
        use candle_core::Error as C;
        match e {
            C::WrappedContext { wrapped, .. } | C::Cuda(wrapped) => wrapped.downcast_ref::<Error>(),
            C::WithBacktrace { inner, .. }
            | C::Context { inner, .. }
            | C::WithPath { inner, .. } => Error::from_candle(inner),
            _ => None,
        }
    }
}

impl From<Error> for candle_core::Error {
    fn from(e: Error) -> Self {
        e.into_candle()
    }
}

/// A kernelyard error about `op`, as a candle error.
pub(crate) fn ky(op: &'static str) -> impl Fn(kernelyard::Error) -> candle_core::Error {
    move |source| Error::Kernelyard { op, source }.into_candle()
}
