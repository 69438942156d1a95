//! The ROCm backend's errors. Each says what failed, with the versions and the log involved,
//! and is carried to callers as [`kernelyard_core::Error::Device`].

use kernelyard_core::{Error, Version};

/// An error of the ROCm backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RocmError {
    /// The backend cannot be used on this machine (see [`crate::device::Unavailable`]).
    #[error(transparent)]
    Unavailable(#[from] crate::device::Unavailable),
    /// A HIP runtime call failed.
    #[error("{call} failed: {status}")]
    Hip {
        /// The call.
        call: &'static str,
        /// The HIP status name, with context.
        status: String,
    },
    /// hiprtc rejected a source.
    #[error("hiprtc {hiprtc} failed to compile kernels/{file} for {arch}:\n{log}")]
    Compile {
        /// The source.
        file: &'static str,
        /// The target (`gfx90a`).
        arch: String,
        /// hiprtc's version.
        hiprtc: Version,
        /// The compiler log.
        log: String,
    },
    /// A hiprtc call other than the compile failed.
    #[error("hiprtc {call} failed: {status}")]
    Hiprtc {
        /// The call.
        call: &'static str,
        /// The status message.
        status: String,
    },
    /// The runtime could not load a compiled code object.
    #[error(
        "the HIP runtime {runtime} could not load kernels/{file} compiled by hiprtc {hiprtc} for \
         {arch}: {status}"
    )]
    ModuleLoad {
        /// The source.
        file: &'static str,
        /// The target.
        arch: String,
        /// The runtime's version.
        runtime: Version,
        /// hiprtc's version.
        hiprtc: Version,
        /// The HIP status name.
        status: String,
    },
    /// A compiled module lacks an entry point the Rust side names.
    #[error("kernels/{file} compiled for {arch} has no entry point `{symbol}`")]
    MissingSymbol {
        /// The source.
        file: &'static str,
        /// The target.
        arch: String,
        /// The entry point.
        symbol: &'static str,
    },
    /// An entry point not in the source's list was asked for (a backend bug).
    #[error("`{symbol}` is not listed in the symbols of kernels/{file}")]
    UnlistedSymbol {
        /// The source.
        file: &'static str,
        /// The entry point.
        symbol: &'static str,
    },
    /// The backend was used in a way it does not support (a bug in the caller or backend).
    #[error("{what}")]
    Misuse {
        /// What happened.
        what: String,
    },
}

impl From<RocmError> for Error {
    fn from(e: RocmError) -> Error {
        Error::Device {
            backend: crate::BACKEND,
            source: Box::new(e),
        }
    }
}

/// `Ok` for `hipSuccess`, else a [`RocmError::Hip`] naming the call and the status.
#[cfg(feature = "hip")]
pub(crate) fn check(
    hip: &crate::hip::Hip,
    call: &'static str,
    status: crate::hip::HipStatus,
) -> Result<(), RocmError> {
    if status == crate::hip::SUCCESS {
        Ok(())
    } else {
        Err(RocmError::Hip {
            call,
            status: crate::hip::status_name(hip, status),
        })
    }
}
