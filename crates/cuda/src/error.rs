//! The CUDA backend's errors. Each says what failed, with the versions and the log involved,
//! and is carried to callers as [`kernelyard_core::Error::Device`].

use kernelyard_core::{Error, Version};

/// Everything that can go wrong in the CUDA backend.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CudaError {
    /// A CUDA library could not be loaded.
    #[error("{lib} could not be loaded ({hint})")]
    LibraryMissing {
        /// The library (`libcuda.so.1`, `libnvrtc.so.13`, `libcublasLt.so.13`).
        lib: &'static str,
        /// What to install or set.
        hint: &'static str,
    },
    /// A driver call failed.
    #[error("{call} failed: {code}")]
    Driver {
        /// The call (`cuMemAlloc`, ...).
        call: &'static str,
        /// The driver's error name and description.
        code: String,
    },
    /// The device is not one the backend found.
    #[error("cuda:{ordinal} does not exist ({count} CUDA device(s) found)")]
    NoSuchDevice {
        /// The ordinal asked for.
        ordinal: usize,
        /// How many devices the driver reported.
        count: usize,
    },
    /// NVRTC rejected a kernel source.
    #[error("NVRTC {nvrtc} failed to compile kernels/{file} for {arch}:\n{log}")]
    Compile {
        /// The source file under the `kernels/` folder of the crate that embeds it.
        file: &'static str,
        /// The target (`sm_90a`).
        arch: String,
        /// NVRTC's version.
        nvrtc: Version,
        /// The compiler log.
        log: String,
    },
    /// Another NVRTC call failed.
    #[error("NVRTC {call} failed: {code}")]
    Nvrtc {
        /// The call.
        call: &'static str,
        /// NVRTC's result code.
        code: String,
    },
    /// The driver could not load a compiled module.
    #[error(
        "the driver (CUDA {driver}) could not load kernels/{file} compiled by NVRTC {nvrtc} for \
         {arch}: {code}. A driver older than NVRTC cannot load its output: update the driver \
         or use an NVRTC no newer than the driver"
    )]
    ModuleLoad {
        /// The source file under the `kernels/` folder of the crate that embeds it.
        file: &'static str,
        /// The target.
        arch: String,
        /// The driver's CUDA version.
        driver: Version,
        /// NVRTC's version.
        nvrtc: Version,
        /// The driver's error.
        code: String,
    },
    /// A compiled module lacks an entry point the Rust side names.
    #[error("kernels/{file} compiled for {arch} has no entry point `{symbol}`")]
    MissingSymbol {
        /// The source file.
        file: &'static str,
        /// The target.
        arch: String,
        /// The entry point.
        symbol: &'static str,
    },
    /// A kernel asked for an entry point its source does not list.
    #[error("`{symbol}` is not listed in the symbols of kernels/{file}")]
    UnlistedSymbol {
        /// The source file.
        file: &'static str,
        /// The entry point.
        symbol: &'static str,
    },
    /// A cuBLASLt call failed.
    #[error("cuBLASLt {call} failed: {code}")]
    Cublas {
        /// The call.
        call: &'static str,
        /// cuBLAS's status.
        code: String,
    },
    /// cuBLASLt found no algorithm for a problem.
    #[error("cuBLASLt has no algorithm for {what}")]
    NoAlgorithm {
        /// The problem.
        what: String,
    },
    /// A tactic of `cuda.gemm.cublaslt` (`algoK`) names an index beyond the algorithms
    /// cuBLASLt's heuristic offers for the problem (the list depends on the problem, the
    /// device and cuBLASLt's version). Nothing else is run instead.
    #[error(
        "cuBLASLt's heuristic offers {offered} algorithm{} for this problem; tactic {tactic} \
         does not exist (this problem has algo0{})",
        if *.offered == 1 { "" } else { "s" },
        if *.offered > 1 { format!(" to algo{}", .offered - 1) } else { " only".to_owned() }
    )]
    AlgorithmIndex {
        /// The tactic asked for (`algo5`).
        tactic: &'static str,
        /// How many algorithms the heuristic offers for the problem.
        offered: usize,
    },
    /// A buffer of another backend or device was given to this one.
    #[error("{what}")]
    Misuse {
        /// What was wrong.
        what: String,
    },
}

impl From<CudaError> for Error {
    fn from(e: CudaError) -> Error {
        match e {
            // Only `cuda.gemm.cublaslt` has algorithm tactics.
            CudaError::AlgorithmIndex { tactic, .. } => Error::TacticUnavailable {
                kernel: "cuda.gemm.cublaslt",
                tactic,
                source: Box::new(e),
            },
            e => Error::Device {
                backend: crate::BACKEND,
                source: Box::new(e),
            },
        }
    }
}

/// A driver error as text: its name and description.
pub(crate) fn driver_code(e: cudarc::driver::DriverError) -> String {
    let name = e
        .error_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| format!("{:?}", e.0));
    let desc = e
        .error_string()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if desc.is_empty() {
        name
    } else {
        format!("{name} ({desc})")
    }
}

/// Wraps a driver result with the call's name.
pub(crate) fn drv<T>(
    call: &'static str,
    r: Result<T, cudarc::driver::DriverError>,
) -> Result<T, CudaError> {
    r.map_err(|e| CudaError::Driver {
        call,
        code: driver_code(e),
    })
}
