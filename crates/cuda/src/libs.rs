//! Which CUDA libraries this process can open, and which CUDA version the backend is built for,
//! whatever way cudarc reaches the libraries.
//!
//! **Versions.** The bindings' CUDA version is cudarc's choice, made by the final build (an
//! explicit `cuda-XXXXX` feature anywhere in the dependency graph, `CUDARC_CUDA_VERSION`, else
//! nvcc's version, else the latest cudarc knows; docs/EMBEDDING.md). [`BINDINGS`] reads it back
//! (`cudarc::driver::sys::CUDA_VERSION`); every version the backend states is derived from it:
//! the library names ([`NVRTC_LIB`], [`CUBLASLT_LIB`], `.so.{major}`), the install hints and the
//! oldest driver ([`MIN_DRIVER`](crate::device::MIN_DRIVER)). Bindings older than CUDA 12.0 do
//! not compile (a const assertion): the backend calls `cuStreamGetId` (12.0+).
//!
//! **Presence.** cudarc opens each library on first use and panics when it finds none (with
//! dynamic loading), or the library is linked in and the process could not have started
//! without it (with `dynamic-linking`, which candle turns on). cudarc's own check,
//! `is_culib_present`, exists only in the first mode, so [`CudaLib::is_present`] is a copy of
//! it that works in both: it tries exactly cudarc's file names ([`candidates`], a copy of
//! cudarc's `get_lib_name_candidates` for the bindings' version) with the same loader
//! (`libloading`), so "present" here means cudarc's loader finds the library and will not
//! panic. When the library is linked in, it is already loaded under its soname (one of the
//! candidates: `libcuda.so.1`, `libnvrtc.so.{major}`, `libcublasLt.so.{major}`), and opening
//! it again succeeds: present, as it must be.

use std::env::consts::{DLL_PREFIX, DLL_SUFFIX};

use cudarc::driver::sys::CUDA_VERSION;
use kernelyard_core::Version;

const _: () = assert!(
    CUDA_VERSION >= 12000,
    "kernelyard-cuda needs cudarc's bindings for CUDA 12.0 or newer (it calls cuStreamGetId): \
     choose a cuda-12000 or newer feature of cudarc, or set CUDARC_CUDA_VERSION (12000 or more)"
);

/// The CUDA version of cudarc's bindings (`cudarc::driver::sys::CUDA_VERSION`, e.g. 13.0.0 for
/// 13000).
pub const BINDINGS: Version = Version::new(CUDA_VERSION / 1000, (CUDA_VERSION % 1000) / 10, 0);

/// The NVRTC library cudarc opens for these bindings (`libnvrtc.so.13` on Linux with CUDA 13
/// bindings: the toolkit's, or PyPI's [`NVRTC_PIP`]).
pub const NVRTC_LIB: &str = NVRTC_LIB_BUF.as_str();
const NVRTC_LIB_BUF: ConstStr = soname("nvrtc");

/// The cuBLASLt library cudarc opens for these bindings (`libcublasLt.so.13` on Linux with
/// CUDA 13 bindings: the toolkit's, or PyPI's [`CUBLAS_PIP`]).
pub const CUBLASLT_LIB: &str = CUBLASLT_LIB_BUF.as_str();
const CUBLASLT_LIB_BUF: ConstStr = soname("cublasLt");

/// The PyPI requirement that installs an NVRTC for the bindings' major version (what CI tests
/// with for CUDA 13).
pub const NVRTC_PIP: &str = match BINDINGS.major {
    12 => "nvidia-cuda-nvrtc-cu12",
    13 => "nvidia-cuda-nvrtc==13.0.88",
    _ => "nvidia-cuda-nvrtc",
};

/// What to install when NVRTC is missing (the hint of
/// [`CudaError::LibraryMissing`](crate::CudaError::LibraryMissing) for [`NVRTC_LIB`]).
pub const NVRTC_HINT: &str = NVRTC_HINT_BUF.as_str();
const NVRTC_HINT_BUF: ConstStr = ConstStr::EMPTY
    .push("install the CUDA ")
    .push_u32(BINDINGS.major)
    .push(" toolkit or `pip install ")
    .push(NVRTC_PIP)
    .push("` and put its lib directory on LD_LIBRARY_PATH");

/// The PyPI package that installs cuBLASLt for the bindings' major version.
pub const CUBLAS_PIP: &str = match BINDINGS.major {
    12 => "nvidia-cublas-cu12",
    _ => "nvidia-cublas",
};

/// A CUDA library the backend uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CudaLib {
    /// The driver API (`libcuda.so.1`, installed with the NVIDIA driver).
    Driver,
    /// NVRTC, the runtime compiler.
    Nvrtc,
    /// cuBLASLt (GEMM).
    CublasLt,
}

impl CudaLib {
    /// The library's names as cudarc's loader lists them (each expanded by [`candidates`]).
    pub const fn names(self) -> &'static [&'static str] {
        match self {
            CudaLib::Driver => &["cuda", "nvcuda"],
            CudaLib::Nvrtc => &["nvrtc"],
            CudaLib::CublasLt => &["cublasLt"],
        }
    }

    /// Every file name cudarc's loader tries for this library, in its order.
    pub fn candidates(self) -> Vec<String> {
        self.names().iter().flat_map(|n| candidates(n)).collect()
    }

    /// Whether one of [`candidates`](Self::candidates) opens: then cudarc finds the library
    /// (no panic on first use). Opens and closes it; loads nothing for good.
    pub fn is_present(self) -> bool {
        self.candidates().iter().any(|name| {
            // SAFETY: these are NVIDIA's CUDA libraries under the names cudarc itself opens
            // them by on first use; their initialisers have no preconditions on the caller.
            unsafe { opens(name) }
        })
    }
}

/// The file names cudarc's loader tries for `lib_name` (`"nvrtc"`), in its order: a copy of
/// cudarc's `get_lib_name_candidates` with the bindings' major and minor version ([`BINDINGS`]).
pub fn candidates(lib_name: &str) -> Vec<String> {
    candidates_for(lib_name, BINDINGS.major, BINDINGS.minor)
}

/// cudarc's `get_lib_name_candidates` for bindings of CUDA `major.minor`.
fn candidates_for(lib_name: &str, major: u32, minor: u32) -> Vec<String> {
    let (p, s) = (DLL_PREFIX, DLL_SUFFIX);
    let width = usize::BITS;
    vec![
        format!("{p}{lib_name}{s}"),
        format!("{p}{lib_name}{width}{s}"),
        format!("{p}{lib_name}{width}_{major}{s}"),
        format!("{p}{lib_name}{width}_{major}{minor}{s}"),
        format!("{p}{lib_name}{width}_{major}{minor}_0{s}"),
        format!("{p}{lib_name}{width}_{major}0_{minor}{s}"),
        format!("{p}{lib_name}{width}_10{s}"),
        format!("{p}{lib_name}{width}_11{s}"),
        format!("{p}{lib_name}{width}_12{s}"),
        format!("{p}{lib_name}{width}_{major}0_0{s}"),
        format!("{p}{lib_name}{width}_9{s}"),
        format!("{p}{lib_name}{s}.{major}"),
        format!("{p}{lib_name}{s}.12"),
        format!("{p}{lib_name}{s}.11"),
        format!("{p}{lib_name}{s}.10"),
        format!("{p}{lib_name}{s}.9"),
        format!("{p}{lib_name}{s}.1"),
    ]
}

/// Whether the dynamic loader opens `name` (closing it again).
///
/// # Safety
/// Opening a library runs its initialisers: `name` must be a library whose initialisers are
/// sound to run in this process.
unsafe fn opens(name: &str) -> bool {
    // SAFETY: the caller vouches for the library's initialisers.
    unsafe { libloading::Library::new(name) }.is_ok()
}

/// A text built at compile time (a library's file name, a hint): const fns cannot allocate,
/// so the bytes live in a fixed buffer. Too long a text fails the build.
struct ConstStr {
    buf: [u8; 128],
    len: usize,
}

impl ConstStr {
    const EMPTY: ConstStr = ConstStr {
        buf: [0; 128],
        len: 0,
    };

    const fn push(mut self, s: &str) -> Self {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            assert!(self.len < self.buf.len(), "text too long for ConstStr");
            self.buf[self.len] = b[i];
            self.len += 1;
            i += 1;
        }
        self
    }

    const fn push_u32(mut self, n: u32) -> Self {
        let mut digits = [0u8; 10];
        let (mut n, mut k) = (n, 0);
        loop {
            digits[k] = b'0' + (n % 10) as u8;
            k += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        while k > 0 {
            k -= 1;
            assert!(self.len < self.buf.len(), "text too long for ConstStr");
            self.buf[self.len] = digits[k];
            self.len += 1;
        }
        self
    }

    const fn as_str(&self) -> &str {
        match std::str::from_utf8(self.buf.split_at(self.len).0) {
            Ok(s) => s,
            Err(_) => panic!("text is not UTF-8"),
        }
    }
}

/// `{DLL_PREFIX}{lib}{DLL_SUFFIX}.{major}`: the candidate cudarc finds a toolkit's library by
/// on Linux (`libnvrtc.so.13`).
const fn soname(lib: &str) -> ConstStr {
    ConstStr::EMPTY
        .push(DLL_PREFIX)
        .push(lib)
        .push(DLL_SUFFIX)
        .push(".")
        .push_u32(BINDINGS.major)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_follow_the_bindings_major() {
        let major = CUDA_VERSION / 1000;
        assert_eq!(BINDINGS.major, major);
        assert_eq!(BINDINGS.minor, (CUDA_VERSION % 1000) / 10);
        assert_eq!(NVRTC_LIB, format!("{DLL_PREFIX}nvrtc{DLL_SUFFIX}.{major}"));
        assert_eq!(
            CUBLASLT_LIB,
            format!("{DLL_PREFIX}cublasLt{DLL_SUFFIX}.{major}")
        );
        // What cudarc's loader tries: the sonames above are among them.
        assert!(CudaLib::Nvrtc.candidates().iter().any(|c| c == NVRTC_LIB));
        assert!(CudaLib::CublasLt
            .candidates()
            .iter()
            .any(|c| c == CUBLASLT_LIB));
        assert!(CudaLib::Driver
            .candidates()
            .iter()
            .any(|c| c == &format!("{DLL_PREFIX}cuda{DLL_SUFFIX}.1")));
    }

    /// Exactly the names cudarc 0.19.10 tries for NVRTC with CUDA 13.0 bindings (its
    /// `get_lib_name_candidates` on Linux x86_64), and for 12.8 the ones that differ.
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    #[test]
    fn cuda_13_0_bindings_look_for_libnvrtc_so_13() {
        assert_eq!(
            candidates_for("nvrtc", 13, 0),
            [
                "libnvrtc.so",
                "libnvrtc64.so",
                "libnvrtc64_13.so",
                "libnvrtc64_130.so",
                "libnvrtc64_130_0.so",
                "libnvrtc64_130_0.so",
                "libnvrtc64_10.so",
                "libnvrtc64_11.so",
                "libnvrtc64_12.so",
                "libnvrtc64_130_0.so",
                "libnvrtc64_9.so",
                "libnvrtc.so.13",
                "libnvrtc.so.12",
                "libnvrtc.so.11",
                "libnvrtc.so.10",
                "libnvrtc.so.9",
                "libnvrtc.so.1",
            ]
        );
        let cu12 = candidates_for("cublasLt", 12, 8);
        assert_eq!(cu12[3], "libcublasLt64_128.so");
        assert_eq!(cu12[5], "libcublasLt64_120_8.so");
        assert_eq!(cu12[11], "libcublasLt.so.12");
        // The driver under both of cudarc's names, 17 candidates each, libcuda.so.1 among them.
        let driver = CudaLib::Driver.candidates();
        assert_eq!(driver.len(), 2 * 17);
        assert_eq!(driver[0], "libcuda.so");
        assert_eq!(driver[16], "libcuda.so.1");
        assert_eq!(driver[17], "libnvcuda.so");
    }

    /// The crate's tests build with CUDA 13.0 bindings (its dev-dependency on cudarc's
    /// `cuda-13000`), as CI's compile matrix and the CLI do.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_tests_run_with_cuda_13_0_bindings() {
        assert_eq!(BINDINGS, Version::new(13, 0, 0));
        assert_eq!(NVRTC_LIB, "libnvrtc.so.13");
        assert_eq!(CUBLASLT_LIB, "libcublasLt.so.13");
        assert_eq!(NVRTC_PIP, "nvidia-cuda-nvrtc==13.0.88");
        assert_eq!(
            NVRTC_HINT,
            "install the CUDA 13 toolkit or `pip install nvidia-cuda-nvrtc==13.0.88` and put \
             its lib directory on LD_LIBRARY_PATH"
        );
        assert!(CudaLib::Nvrtc
            .candidates()
            .contains(&"libnvrtc.so.13".to_owned()));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_loaded_library_opens_and_a_missing_one_does_not() {
        // SAFETY: the C library is already loaded in this process; opening it again runs no
        // initialiser.
        assert!(unsafe { opens("libc.so.6") });
        // SAFETY: no such file exists, so nothing is loaded.
        assert!(!unsafe { opens("libkernelyard-no-such-library.so.0") });
        for name in candidates("kernelyard-no-such-library") {
            // SAFETY: as above.
            assert!(!unsafe { opens(&name) }, "{name}");
        }
    }
}
