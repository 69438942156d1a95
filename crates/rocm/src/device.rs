//! Probing the HIP runtime and the devices, once per process, and binding a device.
//!
//! Every way the backend can be unusable is an [`Unavailable`]: no HIP runtime library
//! ([`Unavailable::NoRuntime`]), `hipInit` failing ([`Unavailable::Init`]), the runtime finding
//! no GPU (`hipErrorNoDevice`, [`Unavailable::NoDevice`]), only GPUs of architectures this
//! backend does not compile for ([`Unavailable::UnsupportedArch`]), or no hiprtc
//! ([`Unavailable::NoCompiler`]). Core reports its text as the backend's `BackendUnavailable`
//! reason in `doctor` and in selection errors. Nothing here panics.
//!
//! Each device's capabilities: the gfx architecture (from `gcnArchName`, target features such
//! as `:sramecc+:xnack-` dropped), the wavefront size, compute units, LDS per block (AMD has no
//! opt-in beyond it, so both shared-memory fields hold it), memory, the runtime and hiprtc
//! versions, and matrix cores (MFMA) on CDNA (gfx908, gfx90a, gfx94x).
//!
//! The classification ([`classify`], [`features_of`]) and [`simulated_caps`] are pure and built
//! without the `hip` feature too, so selection can be tested against AMD devices anywhere.

use std::collections::BTreeSet;

use kernelyard_core::{Arch, Capabilities, DeviceId, Feature, Gfx, Version};

/// The oldest architecture the backend runs on: GCN5 (Vega, gfx900), the oldest hiprtc of
/// ROCm 5 and 6 compiles for.
pub const MIN_GFX: Gfx = Gfx::new(9, 0, 0);

/// A device the runtime reported that the backend cannot use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedDevice {
    /// Its ordinal.
    pub ordinal: u32,
    /// Its marketing name.
    pub name: String,
    /// Its `gcnArchName` as reported.
    pub arch: String,
    /// Why it is not supported.
    pub why: String,
}

/// Why the ROCm backend cannot be used on this machine.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// The HIP runtime library could not be opened, or lacks a function.
    #[error("no HIP runtime: {why} (install ROCm, or Debian's libamdhip64-5)")]
    NoRuntime {
        /// The loader's message.
        why: String,
    },
    /// `hipInit` failed for another reason than having no device.
    #[error("hipInit failed: {status}")]
    Init {
        /// The HIP status name.
        status: String,
    },
    /// The runtime loaded but found no GPU (`hipErrorNoDevice`, or a count of 0).
    #[error("the HIP runtime found no AMD GPU ({status})")]
    NoDevice {
        /// The HIP status name (`hipErrorNoDevice`), or `0 devices`.
        status: String,
    },
    /// Every GPU found is of an architecture the backend does not support.
    #[error("no supported AMD GPU: {}", describe(.devices))]
    UnsupportedArch {
        /// The devices and why each is unsupported.
        devices: Vec<UnsupportedDevice>,
    },
    /// hiprtc (the run-time compiler) could not be opened.
    #[error("no hiprtc: {why} (ROCm 5 has it in libamdhip64, ROCm 6+ in libhiprtc.so)")]
    NoCompiler {
        /// The loader's message.
        why: String,
    },
    /// A runtime call failed while probing a device.
    #[error("{call} failed for device {ordinal}: {status}")]
    Query {
        /// The call.
        call: &'static str,
        /// The device's ordinal.
        ordinal: u32,
        /// The HIP status name.
        status: String,
    },
}

fn describe(devices: &[UnsupportedDevice]) -> String {
    devices
        .iter()
        .map(|d| format!("rocm:{} ({}, {}): {}", d.ordinal, d.name, d.arch, d.why))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The architecture and wavefront size of a device from its `gcnArchName` and `warpSize`, or
/// why the backend cannot use it.
pub fn classify(gcn_arch_name: &str, warp_size: i32) -> Result<(Gfx, u32), String> {
    let gfx: Gfx = gcn_arch_name
        .parse()
        .map_err(|_| format!("unrecognised architecture name `{gcn_arch_name}`"))?;
    if gfx < MIN_GFX {
        return Err(format!(
            "{gfx} is older than {MIN_GFX}, the oldest architecture this backend compiles for"
        ));
    }
    match warp_size {
        32 | 64 => Ok((gfx, warp_size as u32)),
        w => Err(format!("wavefront size {w} (expected 32 or 64)")),
    }
}

/// Whether `gfx` has MFMA matrix cores (CDNA: gfx908, gfx90a, gfx94x).
pub fn has_mfma(gfx: Gfx) -> bool {
    // The rule lives in core, shared with simulated devices (`kernelyard_core::presets`).
    kernelyard_core::presets::has_mfma(gfx)
}

/// The optional features an architecture has.
pub fn features_of(gfx: Gfx) -> BTreeSet<Feature> {
    kernelyard_core::presets::rocm_features(gfx)
}

/// A HIP version number (`major * 10_000_000 + minor * 100_000 + patch`) as a [`Version`].
pub fn hip_version(v: i32) -> Version {
    let v = v.max(0) as u32;
    Version::new(v / 10_000_000, (v / 100_000) % 100, v % 100_000)
}

/// The capabilities of an MI-class (or, with wavefront 32, an RDNA) device of architecture
/// `gfx` for [`RuntimeBuilder::simulated_device`](kernelyard_core::RuntimeBuilder::simulated_device):
/// selection against a device this machine does not have (110 CUs, 64 KiB of LDS per block,
/// 64 GiB, ROCm 5.2; the features follow `gfx`).
pub fn simulated_caps(gfx: Gfx, wavefront: u32) -> Capabilities {
    Capabilities {
        device: DeviceId::rocm(0),
        name: format!("simulated {gfx}"),
        arch: Arch::Rocm { gfx, wavefront },
        multiprocessors: 110,
        shared_mem_per_block: 64 << 10,
        shared_mem_per_block_optin: 64 << 10,
        memory_bytes: 64 << 30,
        driver_version: Some(Version::new(5, 2, 21153)),
        compiler_version: Some(Version::new(5, 2, 0)),
        features: features_of(gfx),
    }
}

#[cfg(feature = "hip")]
pub use probing::*;

#[cfg(feature = "hip")]
mod probing {
    use std::ffi::c_int;
    use std::sync::OnceLock;

    use kernelyard_core::{Arch, Capabilities, DeviceId, Error, Version};

    use super::{classify, features_of, hip_version, Unavailable, UnsupportedDevice};
    use crate::error::RocmError;
    use crate::hip::{self, Hip, PropsBuffer};
    use crate::module::ModuleCache;

    /// One device the runtime reported.
    pub(crate) struct Device {
        /// Its HIP ordinal.
        pub(crate) ordinal: c_int,
        /// What it can do.
        pub(crate) caps: Capabilities,
        /// Its compiled modules.
        pub(crate) modules: ModuleCache,
    }

    /// The runtime, hiprtc and the usable devices, as probed.
    pub(crate) struct Platform {
        /// The runtime's function table.
        pub(crate) hip: &'static Hip,
        /// The HIP runtime version.
        pub(crate) runtime: Version,
        /// hiprtc's version.
        pub(crate) hiprtc: Version,
        /// The usable devices (an unsupported one is left out; if none is usable, the probe
        /// fails with [`Unavailable::UnsupportedArch`]).
        pub(crate) devices: Vec<Device>,
    }

    /// The platform, probed on first use.
    pub fn platform_status() -> Result<(), Unavailable> {
        platform().map(|_| ())
    }

    pub(crate) fn platform() -> Result<&'static Platform, Unavailable> {
        static PLATFORM: OnceLock<Result<Platform, Unavailable>> = OnceLock::new();
        PLATFORM
            .get_or_init(probe_platform)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Every usable device's capabilities (probed once per process), or why there are none.
    pub(crate) fn capabilities() -> Result<Vec<Capabilities>, Unavailable> {
        let p = platform()?;
        Ok(p.devices.iter().map(|d| d.caps.clone()).collect())
    }

    /// hiprtc's version (needs no GPU).
    pub fn hiprtc_version() -> Result<Version, Unavailable> {
        let rtc = hip::hiprtc().map_err(|e| Unavailable::NoCompiler { why: e.to_string() })?;
        let (mut major, mut minor): (c_int, c_int) = (0, 0);
        // SAFETY: both are valid out-pointers.
        let s = unsafe { (rtc.api.hiprtcVersion)(&mut major, &mut minor) };
        if s != 0 {
            return Err(Unavailable::NoCompiler {
                why: format!("hiprtcVersion: {}", hip::rtc_status_name(rtc, s)),
            });
        }
        Ok(Version::new(major.max(0) as u32, minor.max(0) as u32, 0))
    }

    /// Probes the runtime and its devices afresh (the backend probes once per process, when
    /// `doctor` or the first selection asks): the usable devices' capabilities, or why there
    /// are none.
    pub fn probe() -> Result<Vec<Capabilities>, Unavailable> {
        probe_platform().map(|p| p.devices.into_iter().map(|d| d.caps).collect())
    }

    fn probe_platform() -> Result<Platform, Unavailable> {
        let h = hip::runtime().map_err(|e| Unavailable::NoRuntime { why: e.to_string() })?;
        // SAFETY: hipInit takes flags 0 and may be called more than once.
        let init = unsafe { (h.api.hipInit)(0) };
        let mut count: c_int = 0;
        // SAFETY: `count` is a valid out-pointer. Asked even when hipInit failed: ROCm 5.2's
        // hipInit says hipErrorInvalidDevice on a machine without a GPU, and the count call
        // then says hipErrorNoDevice, which is the reason to report.
        let s = unsafe { (h.api.hipGetDeviceCount)(&mut count) };
        if init != hip::SUCCESS && s != hip::ERROR_NO_DEVICE {
            return Err(Unavailable::Init {
                status: hip::status_name(h, init),
            });
        }
        if s == hip::ERROR_NO_DEVICE || (s == hip::SUCCESS && count <= 0) {
            return Err(Unavailable::NoDevice {
                status: if s == hip::SUCCESS {
                    "0 devices".to_owned()
                } else {
                    hip::status_name(h, s)
                },
            });
        }
        if s != hip::SUCCESS {
            return Err(Unavailable::Init {
                status: format!("hipGetDeviceCount: {}", hip::status_name(h, s)),
            });
        }
        let mut v: c_int = 0;
        // SAFETY: `v` is a valid out-pointer.
        let runtime = match unsafe { (h.api.hipRuntimeGetVersion)(&mut v) } {
            hip::SUCCESS => hip_version(v),
            s => {
                return Err(Unavailable::Init {
                    status: format!("hipRuntimeGetVersion: {}", hip::status_name(h, s)),
                })
            }
        };
        let hiprtc = hiprtc_version()?;
        let mut devices = Vec::new();
        let mut unsupported = Vec::new();
        for ordinal in 0..count {
            match probe_device(h, ordinal, runtime, hiprtc)? {
                Ok(d) => devices.push(d),
                Err(u) => unsupported.push(u),
            }
        }
        if devices.is_empty() {
            return Err(Unavailable::UnsupportedArch {
                devices: unsupported,
            });
        }
        Ok(Platform {
            hip: h,
            runtime,
            hiprtc,
            devices,
        })
    }

    fn probe_device(
        h: &Hip,
        ordinal: c_int,
        runtime: Version,
        hiprtc: Version,
    ) -> Result<Result<Device, UnsupportedDevice>, Unavailable> {
        let mut buf = PropsBuffer::zeroed();
        // SAFETY: `buf.props` is a writable `hipDeviceProp_t` (ROCm 5 layout, what the
        // `hipGetDeviceProperties` symbol writes) with 4 KiB of slack after it.
        let s = unsafe { (h.api.hipGetDeviceProperties)(&mut buf.props, ordinal) };
        if s != hip::SUCCESS {
            return Err(Unavailable::Query {
                call: "hipGetDeviceProperties",
                ordinal: ordinal as u32,
                status: hip::status_name(h, s),
            });
        }
        let p = &buf.props;
        let name = hip::c_chars(&p.name);
        let arch_name = hip::c_chars(&p.gcnArchName);
        let (gfx, wavefront) = match classify(&arch_name, p.warpSize) {
            Ok(a) => a,
            Err(why) => {
                return Ok(Err(UnsupportedDevice {
                    ordinal: ordinal as u32,
                    name,
                    arch: arch_name,
                    why,
                }))
            }
        };
        let lds = p.sharedMemPerBlock as u64;
        let caps = Capabilities {
            device: DeviceId::rocm(ordinal as u32),
            name,
            arch: Arch::Rocm { gfx, wavefront },
            multiprocessors: p.multiProcessorCount.max(0) as u32,
            shared_mem_per_block: lds,
            shared_mem_per_block_optin: lds,
            memory_bytes: p.totalGlobalMem as u64,
            driver_version: Some(runtime),
            compiler_version: Some(hiprtc),
            features: features_of(gfx),
        };
        Ok(Ok(Device {
            ordinal,
            caps,
            modules: ModuleCache::default(),
        }))
    }

    /// The probed device `id`, or why it cannot be used.
    pub(crate) fn device(id: DeviceId) -> Result<&'static Device, Error> {
        let p = platform().map_err(|e| Error::NoBackendForDevice {
            device: id,
            why: e.to_string(),
        })?;
        p.devices
            .iter()
            .find(|d| d.caps.device == id)
            .ok_or_else(|| Error::NoBackendForDevice {
                device: id,
                why: format!("the ROCm backend found no usable device {id}"),
            })
    }

    /// Makes `id` the calling thread's current HIP device (HIP's device is per thread) and
    /// returns it.
    pub(crate) fn bind(id: DeviceId) -> Result<&'static Device, Error> {
        let d = device(id)?;
        let h = platform().map_err(|e| Error::NoBackendForDevice {
            device: id,
            why: e.to_string(),
        })?;
        // SAFETY: the ordinal is one the runtime reported.
        crate::error::check(h.hip, "hipSetDevice", unsafe {
            (h.hip.api.hipSetDevice)(d.ordinal)
        })?;
        Ok(d)
    }

    /// The runtime's function table, once the platform probed successfully.
    pub(crate) fn hip_api() -> Result<&'static Hip, RocmError> {
        platform().map(|p| p.hip).map_err(|e| RocmError::Misuse {
            what: format!("the ROCm backend is unavailable: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_architectures_and_wavefronts() {
        assert_eq!(
            classify("gfx90a:sramecc+:xnack-", 64),
            Ok((Gfx::new(9, 0, 0xa), 64))
        );
        assert_eq!(classify("gfx1030", 32), Ok((Gfx::new(10, 3, 0), 32)));
        assert_eq!(classify("gfx908", 64), Ok((Gfx::new(9, 0, 8), 64)));
    }

    #[test]
    fn unsupported_architectures_say_why() {
        let e = classify("gfx803", 64).unwrap_err();
        assert!(
            e.contains("gfx803") && e.contains("older than gfx900"),
            "{e}"
        );
        let e = classify("sm_90", 32).unwrap_err();
        assert!(e.contains("unrecognised"), "{e}");
        let e = classify("gfx90a", 16).unwrap_err();
        assert!(e.contains("wavefront size 16"), "{e}");
    }

    #[test]
    fn matrix_cores_on_cdna_only() {
        assert!(has_mfma(Gfx::new(9, 0, 8)));
        assert!(has_mfma(Gfx::new(9, 0, 0xa)));
        assert!(has_mfma(Gfx::new(9, 4, 2)));
        assert!(!has_mfma(Gfx::new(9, 0, 6)));
        assert!(!has_mfma(Gfx::new(10, 3, 0)));
        assert!(!has_mfma(Gfx::new(11, 0, 0)));
    }

    #[test]
    fn hip_versions_decode() {
        assert_eq!(hip_version(50_221_153), Version::new(5, 2, 21153));
        assert_eq!(hip_version(60_140_091), Version::new(6, 1, 40091));
    }

    #[test]
    fn no_supported_device_lists_each_device() {
        let e = Unavailable::UnsupportedArch {
            devices: vec![UnsupportedDevice {
                ordinal: 0,
                name: "Radeon RX 580".into(),
                arch: "gfx803".into(),
                why: "gfx803 is older than gfx900".into(),
            }],
        };
        let s = e.to_string();
        assert!(s.contains("rocm:0 (Radeon RX 580, gfx803)"), "{s}");
    }
}
