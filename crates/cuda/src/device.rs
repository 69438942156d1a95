//! Probing the driver and the devices, once per process, and binding a device's context.
//!
//! cudarc loads libcuda, libnvrtc and libcublasLt on first use and panics when one is
//! missing (with dynamic loading; with `dynamic-linking` they are linked in), so the probe
//! checks each library with [`CudaLib::is_present`] (the same file names as cudarc's loader,
//! in either mode) before any call into it. Every way the backend can be unusable (no driver,
//! a driver older than the CUDA version the backend is built for, a failing `cuInit`, no
//! device, no NVRTC, a failing query) is an [`Unavailable`], which the backend's `probe`
//! returns as a [`ProbeError`](kernelyard_core::ProbeError) and core reports as
//! `BackendUnavailable` in `doctor` and in selection reports. cuBLASLt is optional: without it only the GEMM kernel is
//! unavailable, with its reason.
//!
//! Each device's primary context is retained once and kept for the life of the process (as the
//! runtime API does); `bind` makes it current on the calling thread before any call that
//! needs a context. Each device owns its module cache (`ModuleCache`, built with the
//! device's target and the probed driver and NVRTC versions); [`load_report`] and
//! [`load_symbols`] reach it through a bound device. Launches get the device's capabilities
//! from their plan (`LaunchCtx::caps`), never from here.

use std::collections::BTreeSet;
use std::ffi::c_int;
use std::sync::OnceLock;

use cudarc::driver::{result, sys};
use kernelyard_core::{Arch, Capabilities, DeviceId, DeviceKind, Error, Feature, Sm, Version};

use crate::error::{drv, CudaError};
use crate::libs::{CudaLib, BINDINGS, CUBLASLT_LIB, CUBLAS_PIP, NVRTC_LIB, NVRTC_PIP};
use crate::module::{nvrtc_version, LoadReport, ModuleCache};
use crate::source::KernelSource;

/// The oldest driver the backend runs on: the first release of the major version of cudarc's
/// bindings ([`BINDINGS`], chosen by the final build), so 13.0 for any CUDA 13.x bindings.
/// CUDA's minor-version compatibility makes that enough: a CUDA 13.y driver runs code built
/// with any 13.x toolkit (the driver API keeps its ABI within a major version, and the cubins
/// NVRTC 13.x compiles for the device's exact architecture load on a 13.y driver; PTX, which a
/// newer NVRTC's output would need a newer driver to JIT, is never loaded). NVRTC is the major
/// version's library (`libnvrtc.so.13`), whatever its minor version.
pub const MIN_DRIVER: Version = Version::new(BINDINGS.major, 0, 0);

/// Why the CUDA backend cannot be used on this machine (the backend's probe error; `doctor`
/// prints its text after `cuda: unavailable: `).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unavailable {
    /// `libcuda.so.1` cannot be opened: no NVIDIA driver is installed.
    #[error("libcuda.so.1 not found: no NVIDIA driver is installed on this machine")]
    NoDriver,
    /// The driver supports an older CUDA than the backend is built for.
    #[error(
        "the NVIDIA driver supports CUDA {have}, older than the CUDA {need} this backend is \
         built for: update the driver"
    )]
    DriverTooOld {
        /// The driver's CUDA version.
        have: Version,
        /// The oldest the backend runs on ([`MIN_DRIVER`]).
        need: Version,
    },
    /// `cuInit` failed for another reason than having no device.
    #[error(transparent)]
    Init(CudaError),
    /// The driver found no CUDA device.
    #[error(
        "{}",
        if *.at_init {
            "the NVIDIA driver found no CUDA device (cuInit: CUDA_ERROR_NO_DEVICE)"
        } else {
            "the NVIDIA driver reports no CUDA device"
        }
    )]
    NoDevice {
        /// `cuInit` said so (`CUDA_ERROR_NO_DEVICE`); otherwise it succeeded and
        /// `cuDeviceGetCount` counted none.
        at_init: bool,
    },
    /// NVRTC ([`NVRTC_LIB`]) cannot be opened.
    #[error(
        "{} not found: install the CUDA {} toolkit or `pip install {}`, and put its lib \
         directory on LD_LIBRARY_PATH",
        NVRTC_LIB,
        BINDINGS.major,
        NVRTC_PIP
    )]
    NoNvrtc,
    /// A driver or NVRTC query failed while probing (versions, the device count, a device's
    /// attributes or its primary context).
    #[error(transparent)]
    Query(#[from] CudaError),
}

/// One device the driver reported.
pub(crate) struct Device {
    /// Its primary context (retained for the life of the process).
    ctx: sys::CUcontext,
    /// What it can do.
    pub(crate) caps: Capabilities,
    /// Its compiled modules.
    pub(crate) modules: ModuleCache,
}

// SAFETY: `CUcontext` is a handle the driver allows to be used from
// any thread (made current with `cuCtxSetCurrent`); the module cache synchronises itself.
unsafe impl Send for Device {}
// SAFETY: as above; nothing in `Device` is mutated without the cache's lock.
unsafe impl Sync for Device {}

/// The devices and cuBLASLt, as probed (the driver's and NVRTC's versions are in each
/// device's capabilities and module cache).
pub(crate) struct Platform {
    /// cuBLASLt's version, or why it cannot be used ([`cublaslt_version`]).
    pub(crate) cublaslt: Result<Version, String>,
    /// The devices, by ordinal.
    pub(crate) devices: Vec<Device>,
}

static PLATFORM: OnceLock<Result<Platform, Unavailable>> = OnceLock::new();

/// The probed platform, or why the backend cannot be used on this machine. Probes once.
pub(crate) fn platform() -> Result<&'static Platform, &'static Unavailable> {
    PLATFORM.get_or_init(probe).as_ref()
}

/// The capabilities of every device, or why there are none (the backend's `probe`).
pub(crate) fn capabilities() -> Result<Vec<Capabilities>, Unavailable> {
    platform()
        .map(|p| p.devices.iter().map(|d| d.caps.clone()).collect())
        .map_err(Clone::clone)
}

/// The device behind `id`, if the probe found it.
pub(crate) fn device(id: DeviceId) -> Result<&'static Device, Error> {
    if id.kind != DeviceKind::Cuda {
        return Err(CudaError::Misuse {
            what: format!("{id} is not a CUDA device"),
        }
        .into());
    }
    let p = platform().map_err(|why| Error::NoBackendForDevice {
        device: id,
        why: why.to_string(),
    })?;
    p.devices.get(id.index as usize).ok_or_else(|| {
        CudaError::NoSuchDevice {
            ordinal: id.index as usize,
            count: p.devices.len(),
        }
        .into()
    })
}

/// Makes `id`'s primary context current on this thread and returns the device.
pub(crate) fn bind(id: DeviceId) -> Result<&'static Device, Error> {
    let d = device(id)?;
    let mut current: sys::CUcontext = std::ptr::null_mut();
    // SAFETY: the driver is loaded and initialised (the probe succeeded); `current` is a valid
    // out-pointer.
    unsafe { sys::cuCtxGetCurrent(&mut current) }
        .result()
        .map_err(|e| CudaError::Driver {
            call: "cuCtxGetCurrent",
            code: crate::error::driver_code(e),
        })?;
    if current != d.ctx {
        // SAFETY: `d.ctx` is a primary context retained for the life of the process.
        drv("cuCtxSetCurrent", unsafe {
            result::ctx::set_current(d.ctx)
        })?;
    }
    Ok(d)
}

/// Loads `source` on `device` bypassing the memory cache (disk cache, else NVRTC), and
/// unloads it again: how long a first launch in a fresh process waits for this source.
pub fn load_report(device: DeviceId, source: &'static KernelSource) -> Result<LoadReport, Error> {
    bind(device)?.modules.load_report(source)
}

/// Loads `source` on `device` (through the caches, as a launch would) and looks up every entry
/// point it lists: an error names the first one missing.
pub fn load_symbols(device: DeviceId, source: &'static KernelSource) -> Result<(), Error> {
    bind(device)?.modules.load_symbols(source)
}

fn probe() -> Result<Platform, Unavailable> {
    if !CudaLib::Driver.is_present() {
        return Err(Unavailable::NoDriver);
    }
    drv("cuInit", result::init()).map_err(|e| match &e {
        CudaError::Driver { code, .. } if code.contains("NO_DEVICE") => {
            Unavailable::NoDevice { at_init: true }
        }
        _ => Unavailable::Init(e),
    })?;
    let driver = driver_version()?;
    if driver < MIN_DRIVER {
        return Err(Unavailable::DriverTooOld {
            have: driver,
            need: MIN_DRIVER,
        });
    }
    if !CudaLib::Nvrtc.is_present() {
        return Err(Unavailable::NoNvrtc);
    }
    let nvrtc = nvrtc_version()?;
    let cublaslt = cublaslt_version().clone();
    let count = drv("cuDeviceGetCount", result::device::get_count())?;
    if count <= 0 {
        return Err(Unavailable::NoDevice { at_init: false });
    }
    let mut devices = Vec::new();
    for ordinal in 0..count {
        devices.push(probe_device(ordinal, driver, nvrtc)?);
    }
    Ok(Platform { cublaslt, devices })
}

/// cuBLASLt's version (`cublasLtGetVersion`), or why it cannot be used (not found). Probed
/// once, apart from the devices: opening the library and asking its version needs no driver,
/// so the tuning environment can have it without probing the devices
/// ([`Backend::library_versions`](kernelyard_core::Backend::library_versions)).
pub(crate) fn cublaslt_version() -> &'static Result<Version, String> {
    static CUBLASLT: OnceLock<Result<Version, String>> = OnceLock::new();
    CUBLASLT.get_or_init(|| {
        if !CudaLib::CublasLt.is_present() {
            return Err(format!(
                "{CUBLASLT_LIB} not found: install the CUDA {} toolkit (or PyPI's {CUBLAS_PIP}) \
                 and put its lib directory on LD_LIBRARY_PATH",
                BINDINGS.major
            ));
        }
        // SAFETY: the library is present (checked above, with cudarc's own file names, so its
        // loader finds it and does not panic); the call takes no arguments and has no
        // preconditions.
        let v = unsafe { cudarc::cublaslt::sys::cublasLtGetVersion() };
        Ok(cublas_version(v))
    })
}

/// A cuBLAS/cuBLASLt version number (`major * 10000 + minor * 100 + patch`, as
/// `CUBLAS_VERSION` and `cublasLtGetVersion` give it) as a [`Version`].
pub(crate) fn cublas_version(v: usize) -> Version {
    let part = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
    Version::new(part(v / 10_000), part(v / 100 % 100), part(v % 100))
}

fn driver_version() -> Result<Version, CudaError> {
    let mut v: c_int = 0;
    // SAFETY: the driver library is present; `v` is a valid out-pointer.
    drv("cuDriverGetVersion", unsafe {
        sys::cuDriverGetVersion(&mut v).result()
    })?;
    Ok(Version::new((v / 1000) as u32, ((v % 1000) / 10) as u32, 0))
}

fn probe_device(ordinal: c_int, driver: Version, nvrtc: Version) -> Result<Device, CudaError> {
    use sys::CUdevice_attribute as A;
    let cu = drv("cuDeviceGet", result::device::get(ordinal))?;
    let attr = |a: A| -> Result<i64, CudaError> {
        // SAFETY: `cu` is a valid device handle from `cuDeviceGet`.
        drv("cuDeviceGetAttribute", unsafe {
            result::device::get_attribute(cu, a)
        })
        .map(i64::from)
    };
    let major = attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
    let minor = attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
    let sm = Sm::new(major as u8, minor as u8);
    let name = drv("cuDeviceGetName", result::device::get_name(cu))?;
    // SAFETY: as above.
    let memory = drv("cuDeviceTotalMem", unsafe { result::device::total_mem(cu) })?;
    // SAFETY: `cu` is valid; the primary context is retained once and never released.
    let ctx = drv("cuDevicePrimaryCtxRetain", unsafe {
        result::primary_ctx::retain(cu)
    })?;
    let caps = Capabilities {
        device: DeviceId::cuda(ordinal as u32),
        name,
        arch: Arch::Cuda { sm },
        multiprocessors: attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32,
        shared_mem_per_block: attr(A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK)? as u64,
        shared_mem_per_block_optin: attr(A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)?
            as u64,
        memory_bytes: memory as u64,
        driver_version: Some(driver),
        compiler_version: Some(nvrtc),
        features: features_of(sm),
    };
    Ok(Device {
        ctx,
        caps,
        modules: ModuleCache::new(sm, driver, nvrtc),
    })
}

/// The capabilities of an H100-like device of compute capability `sm` with
/// `shared_mem_per_block_optin` bytes of opt-in shared memory per block, for
/// [`RuntimeBuilder::simulated_device`](kernelyard_core::RuntimeBuilder::simulated_device):
/// selection against a device this machine does not have (132 SMs, 80 GiB, CUDA 13.0; the
/// features follow `sm`).
pub fn simulated_caps(sm: Sm, shared_mem_per_block_optin: u64) -> Capabilities {
    Capabilities {
        device: DeviceId::cuda(0),
        name: format!("simulated {sm}"),
        arch: Arch::Cuda { sm },
        multiprocessors: 132,
        shared_mem_per_block: 48 << 10,
        shared_mem_per_block_optin,
        memory_bytes: 80 << 30,
        driver_version: Some(Version::new(13, 0, 0)),
        compiler_version: Some(Version::new(13, 0, 0)),
        features: features_of(sm),
    }
}

/// The optional features a compute capability has.
pub fn features_of(sm: Sm) -> BTreeSet<Feature> {
    // The rule lives in core, shared with simulated devices (`kernelyard_core::presets`).
    kernelyard_core::presets::cuda_features(sm)
}

#[cfg(test)]
mod tests {
    use kernelyard_core::{Backend, ProbeError};

    use super::*;

    /// `doctor` prints these after `cuda: unavailable: ` (CI greps the prefix; users read the
    /// rest): the texts are the ones the probe has always given.
    #[test]
    fn every_reason_says_what_is_missing_in_the_same_words() {
        let cases = [
            (
                Unavailable::NoDriver,
                "libcuda.so.1 not found: no NVIDIA driver is installed on this machine",
            ),
            (
                Unavailable::DriverTooOld {
                    have: Version::new(12, 4, 0),
                    need: MIN_DRIVER,
                },
                "the NVIDIA driver supports CUDA 12.4.0, older than the CUDA 13.0.0 this \
                 backend is built for: update the driver",
            ),
            (
                Unavailable::NoDevice { at_init: true },
                "the NVIDIA driver found no CUDA device (cuInit: CUDA_ERROR_NO_DEVICE)",
            ),
            (
                Unavailable::NoDevice { at_init: false },
                "the NVIDIA driver reports no CUDA device",
            ),
            (
                Unavailable::NoNvrtc,
                "libnvrtc.so.13 not found: install the CUDA 13 toolkit or `pip install \
                 nvidia-cuda-nvrtc==13.0.88`, and put its lib directory on LD_LIBRARY_PATH",
            ),
            (
                Unavailable::Init(CudaError::Driver {
                    call: "cuInit",
                    code: "CUDA_ERROR_UNKNOWN (unknown error)".to_owned(),
                }),
                "cuInit failed: CUDA_ERROR_UNKNOWN (unknown error)",
            ),
            (
                Unavailable::Query(CudaError::Driver {
                    call: "cuDeviceGetCount",
                    code: "CUDA_ERROR_INVALID_VALUE".to_owned(),
                }),
                "cuDeviceGetCount failed: CUDA_ERROR_INVALID_VALUE",
            ),
        ];
        for (why, text) in cases {
            assert_eq!(why.to_string(), text);
            // Core keeps the typed error: a caller gets it back from the probe error.
            let e = ProbeError::new(why.clone());
            assert_eq!(e.to_string(), text);
            assert_eq!(e.downcast_ref::<Unavailable>(), Some(&why));
        }
    }

    #[test]
    fn the_probe_either_finds_devices_or_says_why_with_a_typed_error() {
        match crate::CUDA.probe() {
            Ok(devices) => assert!(!devices.is_empty()),
            Err(e) => {
                let why = e.downcast_ref::<Unavailable>();
                assert!(why.is_some(), "{e}");
                // Probed once: the same answer again.
                assert_eq!(capabilities().err().as_ref(), why);
            }
        }
    }

    #[test]
    fn cublas_versions_decode_as_the_header_encodes_them() {
        // CUBLAS_VERSION = MAJOR * 10000 + MINOR * 100 + PATCH (cublas_api.h, CUDA 11 to 13).
        assert_eq!(cublas_version(130_002), Version::new(13, 0, 2));
        assert_eq!(cublas_version(120_603), Version::new(12, 6, 3));
        assert_eq!(cublas_version(130_100).to_string(), "13.1.0");
    }

    #[test]
    fn the_cublaslt_version_is_there_exactly_when_the_library_is() {
        match cublaslt_version() {
            Ok(v) => {
                assert!(CudaLib::CublasLt.is_present());
                assert!(v.major >= 11, "{v}");
            }
            Err(why) => {
                assert!(!CudaLib::CublasLt.is_present());
                assert!(why.contains(CUBLASLT_LIB), "{why}");
            }
        }
    }

    #[test]
    fn features_follow_the_capability() {
        assert!(!features_of(Sm::new(7, 5)).contains(&Feature::Bf16));
        assert!(features_of(Sm::new(8, 0)).contains(&Feature::Bf16));
        assert!(features_of(Sm::new(9, 0)).contains(&Feature::Wgmma));
        assert!(!features_of(Sm::new(10, 0)).contains(&Feature::Wgmma));
        assert!(features_of(Sm::new(12, 0)).contains(&Feature::Fp8));
    }
}
