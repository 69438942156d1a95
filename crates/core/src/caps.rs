//! Device capabilities as data, and architecture requirements that compare against them.
//!
//! A backend probes each device once into a [`Capabilities`]; a kernel declares an [`ArchReq`];
//! checking is comparing, and the comparison returns [`Reason`]s that say what is missing.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::device::{DeviceId, DeviceKind};
use crate::error::Error;
use crate::reason::Reason;

/// A CUDA compute capability (`sm_90` is `Sm { major: 9, minor: 0 }`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Sm {
    /// Major version (9 on Hopper).
    pub major: u8,
    /// Minor version.
    pub minor: u8,
}

impl Sm {
    /// A compute capability from its parts.
    pub const fn new(major: u8, minor: u8) -> Self {
        Sm { major, minor }
    }
}

impl fmt::Display for Sm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sm_{}{}", self.major, self.minor)
    }
}

/// An AMD GPU architecture (`gfx90a` is `Gfx { major: 9, minor: 0, stepping: 0xa }`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Gfx {
    /// Major version (the digits before the last two characters).
    pub major: u8,
    /// Minor version (the second-to-last character).
    pub minor: u8,
    /// Stepping (the last character, hexadecimal).
    pub stepping: u8,
}

impl Gfx {
    /// A gfx architecture from its parts.
    pub const fn new(major: u8, minor: u8, stepping: u8) -> Self {
        Gfx {
            major,
            minor,
            stepping,
        }
    }
}

impl fmt::Display for Gfx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gfx{}{:x}{:x}", self.major, self.minor, self.stepping)
    }
}

impl FromStr for Gfx {
    type Err = Error;

    /// Parses `gfx908`, `gfx90a`, `gfx1030`, also with target features (`gfx90a:sramecc+:xnack-`).
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidArch {
            input: s.to_string(),
            expected: "a gfx name such as gfx908, gfx90a or gfx1030",
        };
        let name = s.split(':').next().unwrap_or_default();
        let digits = name.strip_prefix("gfx").ok_or_else(bad)?;
        if digits.len() < 3 || !digits.is_ascii() {
            return Err(bad());
        }
        let (major, rest) = digits.split_at(digits.len() - 2);
        let major = major.parse::<u8>().map_err(|_| bad())?;
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8).ok_or_else(bad);
        let rest = rest.as_bytes();
        Ok(Gfx::new(major, hex(rest[0])?, hex(rest[1])?))
    }
}

/// A device's architecture.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Arch {
    /// An NVIDIA GPU. Code compiled for `sm_XYa` (arch-specific features such as wgmma and TMA
    /// on `sm_90a`) runs only on a device whose capability is exactly `XY`.
    Cuda {
        /// The device's compute capability.
        sm: Sm,
    },
    /// An AMD GPU.
    Rocm {
        /// The gfx architecture.
        gfx: Gfx,
        /// Threads per wavefront (64 on CDNA, 32 on RDNA).
        wavefront: u32,
    },
    /// The host CPU.
    Cpu {
        /// The instruction set (`x86_64`, `aarch64`, ...).
        isa: String,
    },
}

impl Arch {
    /// The kind of device this architecture belongs to.
    pub fn kind(&self) -> DeviceKind {
        match self {
            Arch::Cuda { .. } => DeviceKind::Cuda,
            Arch::Rocm { .. } => DeviceKind::Rocm,
            Arch::Cpu { .. } => DeviceKind::Cpu,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arch::Cuda { sm } => write!(f, "{sm}"),
            Arch::Rocm { gfx, wavefront } => write!(f, "{gfx} (wave{wavefront})"),
            Arch::Cpu { isa } => f.write_str(isa),
        }
    }
}

/// One architecture version of a GPU family, as arch ranges compare them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchVersion {
    /// An NVIDIA compute capability.
    Sm(Sm),
    /// An AMD gfx architecture.
    Gfx(Gfx),
}

impl fmt::Display for ArchVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchVersion::Sm(sm) => sm.fmt(f),
            ArchVersion::Gfx(gfx) => gfx.fmt(f),
        }
    }
}

impl From<Sm> for ArchVersion {
    fn from(sm: Sm) -> Self {
        ArchVersion::Sm(sm)
    }
}

impl From<Gfx> for ArchVersion {
    fn from(gfx: Gfx) -> Self {
        ArchVersion::Gfx(gfx)
    }
}

/// The architectures a kernel runs on: data read without running anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum ArchReq {
    /// Any architecture of the kernel's device kind.
    Any,
    /// An inclusive range of CUDA compute capabilities.
    Cuda {
        /// The oldest supported capability.
        min: Sm,
        /// The newest supported capability, if bounded.
        max: Option<Sm>,
        /// The kernel is compiled for `sm_XYa` (arch-specific instructions), so it runs only on
        /// exactly the capabilities of the range.
        arch_specific: bool,
    },
    /// An inclusive range of AMD gfx architectures.
    Rocm {
        /// The oldest supported architecture.
        min: Gfx,
        /// The newest supported architecture, if bounded.
        max: Option<Gfx>,
        /// The wavefront size the kernel assumes, if any.
        wavefront: Option<u32>,
    },
}

impl ArchReq {
    /// Compares a device architecture with this requirement, pushing a reason for each miss.
    pub fn check(&self, arch: &Arch, reasons: &mut Vec<Reason>) {
        match (self, arch) {
            (ArchReq::Any, _) => {}
            (ArchReq::Cuda { min, max, .. }, Arch::Cuda { sm }) => {
                if sm < min {
                    reasons.push(Reason::ArchTooOld {
                        have: (*sm).into(),
                        need: *self,
                    });
                }
                if let Some(max) = max.filter(|max| sm > max) {
                    reasons.push(Reason::ArchTooNew {
                        have: (*sm).into(),
                        max: max.into(),
                    });
                }
            }
            (
                ArchReq::Rocm {
                    min,
                    max,
                    wavefront,
                },
                Arch::Rocm {
                    gfx,
                    wavefront: have_wave,
                },
            ) => {
                if gfx < min {
                    reasons.push(Reason::ArchTooOld {
                        have: (*gfx).into(),
                        need: *self,
                    });
                }
                if let Some(max) = max.filter(|max| gfx > max) {
                    reasons.push(Reason::ArchTooNew {
                        have: (*gfx).into(),
                        max: max.into(),
                    });
                }
                if let Some(need) = wavefront.filter(|w| w != have_wave) {
                    reasons.push(Reason::Wavefront {
                        have: *have_wave,
                        need,
                    });
                }
            }
            (req, arch) => reasons.push(Reason::ArchFamily {
                have: arch.clone(),
                need: *req,
            }),
        }
    }
}

impl fmt::Display for ArchReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchReq::Any => f.write_str("any"),
            ArchReq::Cuda {
                min,
                max,
                arch_specific,
            } => {
                let a = if *arch_specific { "a" } else { "" };
                match max {
                    Some(max) if max == min => write!(f, "{min}{a} only"),
                    Some(max) => write!(f, "{min}{a}..={max}{a}"),
                    None => write!(f, "{min}{a} or newer"),
                }
            }
            ArchReq::Rocm {
                min,
                max,
                wavefront,
            } => {
                match max {
                    Some(max) => write!(f, "{min}..={max}")?,
                    None => write!(f, "{min} or newer")?,
                }
                if let Some(w) = wavefront {
                    write!(f, " (wave{w})")?;
                }
                Ok(())
            }
        }
    }
}

/// An optional hardware feature a kernel may need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Feature {
    /// Tensor-core / matrix-core instructions (mma.sync, MFMA).
    TensorCores,
    /// Native bf16 arithmetic.
    Bf16,
    /// FP8 tensor-core instructions.
    Fp8,
    /// Hopper warpgroup MMA (needs `sm_90a`).
    Wgmma,
    /// Hopper tensor memory accelerator (needs `sm_90a`).
    Tma,
    /// x86 AVX2.
    Avx2,
    /// x86 FMA3.
    Fma,
    /// x86 AVX-512 foundation.
    Avx512f,
    /// AArch64 Advanced SIMD.
    Neon,
}

impl Feature {
    /// The snake_case name, as in JSON (`tensor_cores`, `wgmma`, `avx2`).
    pub const fn name(self) -> &'static str {
        match self {
            Feature::TensorCores => "tensor_cores",
            Feature::Bf16 => "bf16",
            Feature::Fp8 => "fp8",
            Feature::Wgmma => "wgmma",
            Feature::Tma => "tma",
            Feature::Avx2 => "avx2",
            Feature::Fma => "fma",
            Feature::Avx512f => "avx512f",
            Feature::Neon => "neon",
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A version number (driver, compiler, runtime).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl Version {
    /// A version from its parts.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What one device is and can do, probed once by its backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// The device.
    pub device: DeviceId,
    /// Human-readable name (`NVIDIA H100 80GB HBM3`).
    pub name: String,
    /// Architecture.
    pub arch: Arch,
    /// Streaming multiprocessors / compute units / CPU threads.
    pub multiprocessors: u32,
    /// Shared memory (LDS) per block without opt-in, bytes.
    pub shared_mem_per_block: u64,
    /// Shared memory (LDS) per block with opt-in, bytes (228 KiB minus 1 KiB on H100).
    pub shared_mem_per_block_optin: u64,
    /// Device memory, bytes (0 if unknown).
    pub memory_bytes: u64,
    /// Driver / runtime version, if the backend has one.
    pub driver_version: Option<Version>,
    /// Run-time kernel compiler version (NVRTC, hiprtc), if the backend has one.
    pub compiler_version: Option<Version>,
    /// Optional features present.
    pub features: BTreeSet<Feature>,
}

impl Capabilities {
    /// The host CPU's capabilities, read from the standard library and the OS.
    pub fn host() -> Self {
        Capabilities {
            device: DeviceId::CPU,
            name: host::cpu_name(),
            arch: Arch::Cpu {
                isa: std::env::consts::ARCH.to_string(),
            },
            multiprocessors: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            shared_mem_per_block: 0,
            shared_mem_per_block_optin: 0,
            memory_bytes: host::memory_bytes(),
            driver_version: None,
            compiler_version: None,
            features: host::features(),
        }
    }

    /// True if the device has `feature`.
    pub fn has(&self, feature: Feature) -> bool {
        self.features.contains(&feature)
    }
}

/// Host probing: the one place with per-target code.
mod host {
    use std::collections::BTreeSet;

    use super::Feature;

    pub fn cpu_name() -> String {
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| format!("{} host CPU", std::env::consts::ARCH))
    }

    pub fn memory_bytes() -> u64 {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib = line.split_whitespace().nth(1)?.parse::<u64>().ok()?;
                Some(kib * 1024)
            })
            .unwrap_or(0)
    }

    #[cfg(target_arch = "x86_64")]
    pub fn features() -> BTreeSet<Feature> {
        let mut f = BTreeSet::new();
        if std::arch::is_x86_feature_detected!("avx2") {
            f.insert(Feature::Avx2);
        }
        if std::arch::is_x86_feature_detected!("fma") {
            f.insert(Feature::Fma);
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            f.insert(Feature::Avx512f);
        }
        f
    }

    #[cfg(target_arch = "aarch64")]
    pub fn features() -> BTreeSet<Feature> {
        let mut f = BTreeSet::new();
        if std::arch::is_aarch64_feature_detected!("neon") {
            f.insert(Feature::Neon);
        }
        f
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub fn features() -> BTreeSet<Feature> {
        BTreeSet::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cuda(major: u8, minor: u8) -> Arch {
        Arch::Cuda {
            sm: Sm::new(major, minor),
        }
    }

    #[test]
    fn cuda_ranges() {
        let req = ArchReq::Cuda {
            min: Sm::new(8, 0),
            max: Some(Sm::new(9, 0)),
            arch_specific: false,
        };
        let mut r = Vec::new();
        req.check(&cuda(9, 0), &mut r);
        assert!(r.is_empty());
        req.check(&cuda(7, 5), &mut r);
        assert_eq!(
            r,
            vec![Reason::ArchTooOld {
                have: ArchVersion::Sm(Sm::new(7, 5)),
                need: req,
            }]
        );
        r.clear();
        req.check(&cuda(12, 0), &mut r);
        assert_eq!(
            r,
            vec![Reason::ArchTooNew {
                have: Sm::new(12, 0).into(),
                max: Sm::new(9, 0).into(),
            }]
        );
        r.clear();
        req.check(
            &Arch::Cpu {
                isa: "x86_64".into(),
            },
            &mut r,
        );
        assert!(matches!(&r[..], [Reason::ArchFamily { .. }]));
    }

    #[test]
    fn gfx_parse() {
        assert_eq!("gfx90a".parse::<Gfx>().unwrap(), Gfx::new(9, 0, 10));
        assert_eq!("gfx1030".parse::<Gfx>().unwrap(), Gfx::new(10, 3, 0));
        assert_eq!("gfx908:sramecc+".parse::<Gfx>().unwrap(), Gfx::new(9, 0, 8));
        assert_eq!(Gfx::new(9, 0, 10).to_string(), "gfx90a");
        assert!("sm_90".parse::<Gfx>().is_err());
        assert!("gfx9".parse::<Gfx>().is_err());
        assert!(Gfx::new(9, 0, 8) < Gfx::new(9, 0, 10));
        assert!(Gfx::new(9, 4, 2) < Gfx::new(10, 3, 0));
    }
}
