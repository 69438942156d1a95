//! Simulated devices: named presets of real GPUs and bare architectures, as [`Capabilities`]
//! data, and the per-architecture feature rules that the backends' probes share with them.
//!
//! `kernelyard explain --simulate NAME` and `kernelyard doctor --simulate NAME` select against
//! a device this machine does not have: [`simulate`] turns `NAME` into the capabilities a probe
//! of that device would return, and
//! [`RuntimeBuilder::simulated_device`](crate::RuntimeBuilder::simulated_device) adds them to a
//! runtime (selection only: nothing is allocated or launched on a simulated device).
//!
//! # Who is responsible for what
//! - **This module** holds the numbers (one [`Preset`] per named GPU, the per-architecture
//!   limits of bare architectures) and the rules for the optional features of an architecture
//!   ([`cuda_features`], [`rocm_features`], [`has_mfma`]). The CUDA and ROCm backends' probes
//!   call the same rules (`kernelyard_cuda::device::features_of`,
//!   `kernelyard_rocm::device::features_of` delegate here), so a simulated device has exactly
//!   the features a probed one of the same architecture would have.
//! - **Kernels** decide whether they can run, from these capabilities, exactly as on a probed
//!   device. A simulation answers for this build: a backend that is not compiled in stays not
//!   compiled in.
//!
//! # Names
//! - Presets ([`PRESETS`]): `a100`, `l40s`, `rtx4090`, `h100`, `h200`, `b200`, `gb200`,
//!   `mi250x`, `mi300x`, `rx7900xtx`. Their numbers are the products' public specifications
//!   (docs/SIMULATE.md lists them with sources). Memory is the nominal capacity in GiB; a real
//!   driver reports a little less.
//! - Bare CUDA architectures: `sm_XY` for any compute capability NVIDIA has released
//!   ([`KNOWN_SM`]), and `sm_XYa` where an arch-specific variant exists (`sm_90a`, `sm_100a`,
//!   ...). The suffix names the same device: a device of compute capability 9.0 runs `sm_90a`
//!   code, and capabilities do not distinguish them. Limits: the architecture's own shared
//!   memory per block ([`cuda_shared_mem_optin`], 48 KiB without opt-in), and the generic
//!   [`GENERIC_MULTIPROCESSORS`] SMs and [`GENERIC_MEMORY`] bytes.
//! - Bare AMD architectures: `gfxNNN` for the architectures of [`KNOWN_GFX`] (gfx900 or
//!   newer, the oldest the ROCm backend uses; target features such as `:sramecc+` are
//!   dropped). Wave64 on gfx9 (GCN5, CDNA), wave32 on gfx10 and newer (RDNA, HIP's default
//!   there); 64 KiB of LDS per block (160 KiB on gfx950); [`GENERIC_MULTIPROCESSORS`] CUs and
//!   [`GENERIC_MEMORY`] bytes.
//!
//! Versions: a simulated NVIDIA device has driver and NVRTC 13.0 ([`SIMULATED_CUDA`], what the
//! CUDA backend is built for); a simulated AMD device has HIP runtime and hiprtc 6.4
//! ([`SIMULATED_ROCM`], a ROCm 6 release). The simulated device is `cuda:0` or `rocm:0`.
//!
//! # Example
//! ```
//! use kernelyard_core::presets::simulate;
//! use kernelyard_core::{Arch, DeviceId, Sm};
//!
//! let h100 = simulate("h100").unwrap();
//! assert_eq!(h100.device, DeviceId::cuda(0));
//! assert_eq!(h100.arch, Arch::Cuda { sm: Sm::new(9, 0) });
//! assert_eq!(h100.shared_mem_per_block_optin, 227 << 10);
//! assert!(h100.name.starts_with("simulated h100 ("));
//!
//! let err = simulate("h800").unwrap_err();
//! assert!(err.to_string().contains("a100, l40s, rtx4090, h100"));
//! ```

use std::collections::BTreeSet;
use std::fmt;

use crate::caps::{Arch, Capabilities, Feature, Gfx, Sm, Version};
use crate::device::DeviceId;

const KIB: u64 = 1 << 10;
const GIB: u64 = 1 << 30;

/// The driver and NVRTC version of a simulated NVIDIA device: CUDA 13.0, the version the CUDA
/// backend is built for.
pub const SIMULATED_CUDA: Version = Version::new(13, 0, 0);

/// The HIP runtime and hiprtc version of a simulated AMD device: ROCm 6.4.
pub const SIMULATED_ROCM: Version = Version::new(6, 4, 0);

/// Shared memory per block without opt-in on every NVIDIA architecture: 48 KiB.
pub const CUDA_DEFAULT_SHARED_MEM: u64 = 48 * KIB;

/// SMs (NVIDIA) or CUs (AMD) of a bare architecture's simulated device: a placeholder (it only
/// sizes launch plans such as rope's grid); use a preset for a real part's count.
pub const GENERIC_MULTIPROCESSORS: u32 = 128;

/// Device memory of a bare architecture's simulated device: 16 GiB, a placeholder (it only
/// bounds `bench`, which cannot run on a simulated device anyway).
pub const GENERIC_MEMORY: u64 = 16 * GIB;

/// A named GPU to simulate, with its public specifications.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preset {
    /// The name `--simulate` takes (`h100`).
    pub name: &'static str,
    /// The product it stands for (`NVIDIA H100 SXM5 80GB`).
    pub product: &'static str,
    /// Its architecture.
    pub arch: Arch,
    /// SMs (NVIDIA) or CUs (AMD; per GCD on a multi-die part, which shows as one device per
    /// GCD).
    pub multiprocessors: u32,
    /// Shared memory (LDS) per block without opt-in, bytes.
    pub shared_mem_per_block: u64,
    /// Shared memory (LDS) per block with opt-in, bytes.
    pub shared_mem_per_block_optin: u64,
    /// Nominal device memory, bytes (per GCD on a multi-die part).
    pub memory_bytes: u64,
}

const fn cuda(
    name: &'static str,
    product: &'static str,
    sm: Sm,
    sms: u32,
    optin: u64,
    memory_gib: u64,
) -> Preset {
    Preset {
        name,
        product,
        arch: Arch::Cuda { sm },
        multiprocessors: sms,
        shared_mem_per_block: CUDA_DEFAULT_SHARED_MEM,
        shared_mem_per_block_optin: optin,
        memory_bytes: memory_gib * GIB,
    }
}

const fn rocm(
    name: &'static str,
    product: &'static str,
    gfx: Gfx,
    wavefront: u32,
    cus: u32,
    memory_gib: u64,
) -> Preset {
    Preset {
        name,
        product,
        arch: Arch::Rocm { gfx, wavefront },
        multiprocessors: cus,
        // AMD has no opt-in beyond the LDS a block may use: both fields hold it.
        shared_mem_per_block: 64 * KIB,
        shared_mem_per_block_optin: 64 * KIB,
        memory_bytes: memory_gib * GIB,
    }
}

/// Every named preset, in the order help texts list them. Sources: docs/SIMULATE.md.
#[rustfmt::skip]
pub static PRESETS: [Preset; 10] = [
    cuda("a100", "NVIDIA A100 SXM4 80GB", Sm::new(8, 0), 108, 163 * KIB, 80),
    cuda("l40s", "NVIDIA L40S", Sm::new(8, 9), 142, 99 * KIB, 48),
    cuda("rtx4090", "NVIDIA GeForce RTX 4090", Sm::new(8, 9), 128, 99 * KIB, 24),
    cuda("h100", "NVIDIA H100 SXM5 80GB", Sm::new(9, 0), 132, 227 * KIB, 80),
    cuda("h200", "NVIDIA H200 SXM 141GB", Sm::new(9, 0), 132, 227 * KIB, 141),
    cuda("b200", "NVIDIA B200", Sm::new(10, 0), 148, 227 * KIB, 180),
    // NVIDIA publishes no SM count for GB200's GPUs that we could confirm; it is the B200's
    // die, so 148 SMs as on B200 (the real count may differ).
    cuda("gb200", "NVIDIA GB200 (one Blackwell GPU)", Sm::new(10, 0), 148, 227 * KIB, 186),
    rocm("mi250x", "AMD Instinct MI250X (one GCD)", Gfx::new(9, 0, 0xa), 64, 110, 64),
    rocm("mi300x", "AMD Instinct MI300X", Gfx::new(9, 4, 2), 64, 304, 192),
    rocm("rx7900xtx", "AMD Radeon RX 7900 XTX", Gfx::new(11, 0, 0), 32, 96, 24),
];

/// Every compute capability NVIDIA has released, as CUDA 13 names them (Thor's 10.1 became
/// 11.0), with whether it has an arch-specific `a` variant (`sm_90a`).
pub const KNOWN_SM: [(Sm, bool); 19] = [
    (Sm::new(5, 0), false),
    (Sm::new(5, 2), false),
    (Sm::new(5, 3), false),
    (Sm::new(6, 0), false),
    (Sm::new(6, 1), false),
    (Sm::new(6, 2), false),
    (Sm::new(7, 0), false),
    (Sm::new(7, 2), false),
    (Sm::new(7, 5), false),
    (Sm::new(8, 0), false),
    (Sm::new(8, 6), false),
    (Sm::new(8, 7), false),
    (Sm::new(8, 9), false),
    (Sm::new(9, 0), true),
    (Sm::new(10, 0), true),
    (Sm::new(10, 3), true),
    (Sm::new(11, 0), true),
    (Sm::new(12, 0), true),
    (Sm::new(12, 1), true),
];

/// The AMD architectures a bare `gfxNNN` may name: LLVM's AMDGPU processors from gfx900 (the
/// oldest the ROCm backend uses) on.
pub const KNOWN_GFX: [Gfx; 33] = [
    Gfx::new(9, 0, 0),
    Gfx::new(9, 0, 2),
    Gfx::new(9, 0, 4),
    Gfx::new(9, 0, 6),
    Gfx::new(9, 0, 8),
    Gfx::new(9, 0, 9),
    Gfx::new(9, 0, 0xa),
    Gfx::new(9, 0, 0xc),
    Gfx::new(9, 4, 0),
    Gfx::new(9, 4, 1),
    Gfx::new(9, 4, 2),
    Gfx::new(9, 5, 0),
    Gfx::new(10, 1, 0),
    Gfx::new(10, 1, 1),
    Gfx::new(10, 1, 2),
    Gfx::new(10, 1, 3),
    Gfx::new(10, 3, 0),
    Gfx::new(10, 3, 1),
    Gfx::new(10, 3, 2),
    Gfx::new(10, 3, 3),
    Gfx::new(10, 3, 4),
    Gfx::new(10, 3, 5),
    Gfx::new(10, 3, 6),
    Gfx::new(11, 0, 0),
    Gfx::new(11, 0, 1),
    Gfx::new(11, 0, 2),
    Gfx::new(11, 0, 3),
    Gfx::new(11, 5, 0),
    Gfx::new(11, 5, 1),
    Gfx::new(11, 5, 2),
    Gfx::new(11, 5, 3),
    Gfx::new(12, 0, 0),
    Gfx::new(12, 0, 1),
];

/// The optional features of an NVIDIA device of compute capability `sm`: tensor cores from
/// 7.0, native bf16 from 8.0, FP8 from 8.9, `wgmma` and TMA on 9.x (Hopper's `sm_90a`
/// instructions; Blackwell has neither in this sense).
pub fn cuda_features(sm: Sm) -> BTreeSet<Feature> {
    let mut f = BTreeSet::new();
    if sm >= Sm::new(7, 0) {
        f.insert(Feature::TensorCores);
    }
    if sm >= Sm::new(8, 0) {
        f.insert(Feature::Bf16);
    }
    if sm >= Sm::new(8, 9) {
        f.insert(Feature::Fp8);
    }
    if sm.major == 9 {
        f.insert(Feature::Wgmma);
        f.insert(Feature::Tma);
    }
    f
}

/// Whether an AMD architecture has MFMA matrix cores, as the ROCm backend decides it: gfx908,
/// gfx90a and gfx94x (CDNA 1 to 3). gfx950 (CDNA 4) has them too but is not in the backend's
/// rule yet, so it is not here either.
pub fn has_mfma(gfx: Gfx) -> bool {
    gfx == Gfx::new(9, 0, 8) || gfx == Gfx::new(9, 0, 0xa) || (gfx.major == 9 && gfx.minor == 4)
}

/// The optional features of an AMD device of architecture `gfx`: tensor cores where it has
/// MFMA ([`has_mfma`]).
pub fn rocm_features(gfx: Gfx) -> BTreeSet<Feature> {
    let mut f = BTreeSet::new();
    if has_mfma(gfx) {
        f.insert(Feature::TensorCores);
    }
    f
}

/// Shared memory per block with opt-in on compute capability `sm`, bytes: the CUDA C++
/// Programming Guide's table of technical specifications per compute capability (48 KiB
/// before Volta, 96 KiB on 7.0 and 7.2, 64 KiB on 7.5, 163 KiB on 8.0 and 8.7, 99 KiB on 8.6,
/// 8.9 and 12.x, 227 KiB on 9.0, 10.x and 11.0).
pub fn cuda_shared_mem_optin(sm: Sm) -> u64 {
    match (sm.major, sm.minor) {
        (7, 0) | (7, 2) => 96 * KIB,
        (7, 5) => 64 * KIB,
        (8, 0) | (8, 7) => 163 * KIB,
        (8, _) | (12, _) => 99 * KIB,
        (9, _) | (10, _) | (11, _) => 227 * KIB,
        _ => CUDA_DEFAULT_SHARED_MEM,
    }
}

/// LDS per block on an AMD architecture, bytes: 160 KiB on gfx950, 64 KiB elsewhere.
pub fn rocm_lds(gfx: Gfx) -> u64 {
    if gfx == Gfx::new(9, 5, 0) {
        160 * KIB
    } else {
        64 * KIB
    }
}

/// The wavefront size of an AMD architecture as HIP reports it: 64 on gfx9 (GCN5, CDNA), 32
/// on gfx10 and newer (RDNA).
pub fn rocm_wavefront(gfx: Gfx) -> u32 {
    if gfx.major <= 9 {
        64
    } else {
        32
    }
}

/// Why a name given to `--simulate` names no device. Every message ends with the valid names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PresetError {
    /// Neither a preset nor an architecture name.
    #[error(
        "cannot simulate `{input}`: it is neither a preset nor an architecture; {}",
        Valid
    )]
    Unknown {
        /// The name given.
        input: String,
    },
    /// Starts like an architecture name but does not parse.
    #[error("cannot simulate `{input}`: expected {expected}; {}", Valid)]
    Malformed {
        /// The name given.
        input: String,
        /// What the name should look like.
        expected: &'static str,
    },
    /// A compute capability no NVIDIA GPU has.
    #[error(
        "cannot simulate `{input}`: {sm} is not the compute capability of any NVIDIA GPU \
         (known: {}); {}",
        known_sm(),
        Valid
    )]
    UnknownSm {
        /// The name given.
        input: String,
        /// The compute capability it names.
        sm: Sm,
    },
    /// `sm_XYa` for a capability without arch-specific instructions.
    #[error(
        "cannot simulate `{input}`: {sm} has no arch-specific `a` variant (sm_90a, sm_100a, \
         sm_103a, sm_110a, sm_120a, sm_121a do): write {sm}; {}",
        Valid
    )]
    NoArchSpecific {
        /// The name given.
        input: String,
        /// The compute capability it names.
        sm: Sm,
    },
    /// A gfx architecture that does not exist, or one older than the ROCm backend uses.
    #[error(
        "cannot simulate `{input}`: {gfx} is not an AMD architecture the ROCm backend uses \
         (gfx900 or newer; known: {}); {}",
        known_gfx(),
        Valid
    )]
    UnknownGfx {
        /// The name given.
        input: String,
        /// The architecture it names.
        gfx: Gfx,
    },
}

/// The valid names, as every [`PresetError`] message ends.
struct Valid;

impl fmt::Display for Valid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "use a preset ({}) or an architecture: sm_XY or sm_XYa (e.g. sm_80, sm_89, sm_90a, \
             sm_100) or gfxNNN (e.g. gfx90a, gfx942, gfx1100)",
            preset_names().join(", ")
        )
    }
}

fn known_sm() -> String {
    KNOWN_SM
        .iter()
        .map(|(sm, _)| sm.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn known_gfx() -> String {
    KNOWN_GFX
        .iter()
        .map(Gfx::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The presets' names, in [`PRESETS`] order.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

/// The preset named `name` (case-insensitive), if any.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name.trim()))
}

impl Preset {
    /// The capabilities a probe of this GPU would return, as device `cuda:0` or `rocm:0`.
    pub fn capabilities(&self) -> Capabilities {
        capabilities(self, self.name)
    }
}

/// `p`'s capabilities, described as `simulated {name} (...)`.
fn capabilities(p: &Preset, name: &str) -> Capabilities {
    let (features, version) = match &p.arch {
        Arch::Cuda { sm } => (cuda_features(*sm), Some(SIMULATED_CUDA)),
        Arch::Rocm { gfx, .. } => (rocm_features(*gfx), Some(SIMULATED_ROCM)),
        // Neither a preset nor a bare architecture is a CPU.
        Arch::Cpu { .. } => (BTreeSet::new(), None),
    };
    Capabilities {
        device: DeviceId::new(p.arch.kind(), 0),
        name: describe(p, name),
        arch: p.arch.clone(),
        multiprocessors: p.multiprocessors,
        shared_mem_per_block: p.shared_mem_per_block,
        shared_mem_per_block_optin: p.shared_mem_per_block_optin,
        memory_bytes: p.memory_bytes,
        driver_version: version,
        compiler_version: version,
        features,
    }
}

/// `simulated h100 (NVIDIA H100 SXM5 80GB: sm_90, 132 SMs, 227 KiB smem/block, 80 GiB)`.
fn describe(p: &Preset, name: &str) -> String {
    let limits = match &p.arch {
        Arch::Rocm { gfx, wavefront } => format!(
            "{gfx}, wave{wavefront}, {} CUs, {} LDS/block",
            p.multiprocessors,
            size(p.shared_mem_per_block_optin)
        ),
        arch => format!(
            "{arch}, {} SMs, {} smem/block",
            p.multiprocessors,
            size(p.shared_mem_per_block_optin)
        ),
    };
    format!(
        "simulated {name} ({}: {limits}, {})",
        p.product,
        size(p.memory_bytes)
    )
}

/// `227 KiB`, `80 GiB`: every number here is a whole number of KiB.
fn size(bytes: u64) -> String {
    if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{} GiB", bytes / GIB)
    } else if bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} B")
    }
}

/// The capabilities of the device `name` names: a preset ([`PRESETS`]) or a bare architecture
/// (`sm_89`, `sm_90a`, `gfx942`), case-insensitive, as device `cuda:0` or `rocm:0`; or why it
/// names none, with the valid names.
pub fn simulate(name: &str) -> Result<Capabilities, PresetError> {
    if let Some(p) = preset(name) {
        return Ok(p.capabilities());
    }
    let input = name.trim().to_ascii_lowercase();
    let (arch, shared, optin) = if input.starts_with("sm_") {
        let sm = parse_sm(&input)?;
        (
            Arch::Cuda { sm },
            CUDA_DEFAULT_SHARED_MEM,
            cuda_shared_mem_optin(sm),
        )
    } else if input.starts_with("gfx") {
        let gfx = parse_gfx(&input)?;
        let arch = Arch::Rocm {
            gfx,
            wavefront: rocm_wavefront(gfx),
        };
        (arch, rocm_lds(gfx), rocm_lds(gfx))
    } else {
        return Err(PresetError::Unknown { input });
    };
    let generic = Preset {
        name: "",
        product: "generic",
        arch,
        multiprocessors: GENERIC_MULTIPROCESSORS,
        shared_mem_per_block: shared,
        shared_mem_per_block_optin: optin,
        memory_bytes: GENERIC_MEMORY,
    };
    // Described by the architecture alone (`gfx942`, not `gfx942:sramecc+`).
    let name = input.split(':').next().unwrap_or_default();
    Ok(capabilities(&generic, name))
}

/// `sm_89`, `sm_90a`, `sm_100`, `sm_121a` (lowercase already).
fn parse_sm(input: &str) -> Result<Sm, PresetError> {
    let malformed = || PresetError::Malformed {
        input: input.to_string(),
        expected: "sm_ followed by the compute capability's major and minor digits, \
                   optionally `a` (sm_89, sm_90a, sm_100)",
    };
    let rest = input.strip_prefix("sm_").ok_or_else(malformed)?;
    let (digits, arch_specific) = match rest.strip_suffix('a') {
        Some(d) => (d, true),
        None => (rest, false),
    };
    if !(2..=3).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    let (major, minor) = digits.split_at(digits.len() - 1);
    let major = major.parse::<u8>().map_err(|_| malformed())?;
    let minor = minor.parse::<u8>().map_err(|_| malformed())?;
    let sm = Sm::new(major, minor);
    match KNOWN_SM.iter().find(|(known, _)| *known == sm) {
        None => Err(PresetError::UnknownSm {
            input: input.to_string(),
            sm,
        }),
        Some((_, false)) if arch_specific => Err(PresetError::NoArchSpecific {
            input: input.to_string(),
            sm,
        }),
        Some(_) => Ok(sm),
    }
}

/// `gfx90a`, `gfx942`, `gfx1100`, also with target features (`gfx90a:sramecc+`).
fn parse_gfx(input: &str) -> Result<Gfx, PresetError> {
    let gfx: Gfx = input.parse().map_err(|_| PresetError::Malformed {
        input: input.to_string(),
        expected: "gfx followed by the architecture's digits (gfx90a, gfx942, gfx1100)",
    })?;
    if !KNOWN_GFX.contains(&gfx) {
        return Err(PresetError::UnknownGfx {
            input: input.to_string(),
            gfx,
        });
    }
    Ok(gfx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_to_its_numbers() {
        let expect: [(&str, &str, u32, u64, u64); 10] = [
            ("a100", "sm_80", 108, 166_912, 80),
            ("l40s", "sm_89", 142, 101_376, 48),
            ("rtx4090", "sm_89", 128, 101_376, 24),
            ("h100", "sm_90", 132, 232_448, 80),
            ("h200", "sm_90", 132, 232_448, 141),
            ("b200", "sm_100", 148, 232_448, 180),
            ("gb200", "sm_100", 148, 232_448, 186),
            ("mi250x", "gfx90a (wave64)", 110, 65_536, 64),
            ("mi300x", "gfx942 (wave64)", 304, 65_536, 192),
            ("rx7900xtx", "gfx1100 (wave32)", 96, 65_536, 24),
        ];
        assert_eq!(preset_names(), expect.map(|e| e.0));
        for (name, arch, units, optin, gib) in expect {
            for spelling in [name.to_string(), name.to_uppercase(), format!(" {name} ")] {
                let caps = simulate(&spelling).unwrap();
                assert_eq!(caps.arch.to_string(), arch, "{name}");
                assert_eq!(caps.multiprocessors, units, "{name}");
                assert_eq!(caps.shared_mem_per_block_optin, optin, "{name}");
                assert_eq!(caps.memory_bytes, gib << 30, "{name}");
                assert!(
                    caps.name.starts_with(&format!("simulated {name} (")),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn presets_carry_the_device_the_versions_and_the_features() {
        let h100 = simulate("h100").unwrap();
        assert_eq!(h100.device, DeviceId::cuda(0));
        assert_eq!(
            h100.name,
            "simulated h100 (NVIDIA H100 SXM5 80GB: sm_90, 132 SMs, 227 KiB smem/block, 80 GiB)"
        );
        assert_eq!(h100.shared_mem_per_block, 48 << 10);
        assert_eq!(h100.driver_version, Some(Version::new(13, 0, 0)));
        assert_eq!(h100.compiler_version, Some(Version::new(13, 0, 0)));
        assert!(h100.has(Feature::Wgmma) && h100.has(Feature::Tma) && h100.has(Feature::Fp8));
        let a100 = simulate("a100").unwrap();
        assert!(a100.has(Feature::Bf16) && !a100.has(Feature::Wgmma) && !a100.has(Feature::Fp8));
        assert!(!simulate("b200").unwrap().has(Feature::Wgmma));

        let mi300x = simulate("mi300x").unwrap();
        assert_eq!(mi300x.device, DeviceId::rocm(0));
        assert_eq!(
            mi300x.name,
            "simulated mi300x (AMD Instinct MI300X: gfx942, wave64, 304 CUs, 64 KiB LDS/block, \
             192 GiB)"
        );
        assert_eq!(
            mi300x.shared_mem_per_block,
            mi300x.shared_mem_per_block_optin
        );
        assert_eq!(mi300x.driver_version, Some(Version::new(6, 4, 0)));
        assert!(mi300x.has(Feature::TensorCores));
        assert!(!simulate("rx7900xtx").unwrap().has(Feature::TensorCores));
    }

    #[test]
    fn bare_architectures_get_their_own_limits_and_generic_counts() {
        let cases: [(&str, &str, u64, u64); 10] = [
            ("sm_75", "sm_75", 48 << 10, 64 << 10),
            ("sm_80", "sm_80", 48 << 10, 163 << 10),
            ("SM_89", "sm_89", 48 << 10, 99 << 10),
            ("sm_90a", "sm_90", 48 << 10, 227 << 10),
            ("sm_100", "sm_100", 48 << 10, 227 << 10),
            ("sm_120a", "sm_120", 48 << 10, 99 << 10),
            ("gfx90a", "gfx90a (wave64)", 64 << 10, 64 << 10),
            (
                "gfx942:sramecc+:xnack-",
                "gfx942 (wave64)",
                64 << 10,
                64 << 10,
            ),
            ("gfx950", "gfx950 (wave64)", 160 << 10, 160 << 10),
            ("gfx1100", "gfx1100 (wave32)", 64 << 10, 64 << 10),
        ];
        for (name, arch, shared, optin) in cases {
            let caps = simulate(name).unwrap();
            assert_eq!(caps.arch.to_string(), arch, "{name}");
            assert_eq!(caps.shared_mem_per_block, shared, "{name}");
            assert_eq!(caps.shared_mem_per_block_optin, optin, "{name}");
            assert_eq!(caps.multiprocessors, GENERIC_MULTIPROCESSORS, "{name}");
            assert_eq!(caps.memory_bytes, GENERIC_MEMORY, "{name}");
        }
        let sm89 = simulate("sm_89").unwrap();
        assert_eq!(
            sm89.name,
            "simulated sm_89 (generic: sm_89, 128 SMs, 99 KiB smem/block, 16 GiB)"
        );
        assert_eq!(sm89.features, cuda_features(Sm::new(8, 9)));
        assert_eq!(sm89.device, DeviceId::cuda(0));
        assert_eq!(simulate("gfx90a").unwrap().device, DeviceId::rocm(0));
        // The `a` suffix names the same device.
        let (plain, specific) = (simulate("sm_90").unwrap(), simulate("sm_90a").unwrap());
        assert_eq!(
            (plain.arch, plain.features),
            (specific.arch, specific.features)
        );
        // Every known capability and architecture parses.
        for (sm, a) in KNOWN_SM {
            assert!(simulate(&sm.to_string()).is_ok(), "{sm}");
            assert_eq!(simulate(&format!("{sm}a")).is_ok(), a, "{sm}a");
        }
        for gfx in KNOWN_GFX {
            let caps = simulate(&gfx.to_string()).unwrap();
            assert_eq!(
                caps.arch,
                Arch::Rocm {
                    gfx,
                    wavefront: rocm_wavefront(gfx)
                }
            );
        }
    }

    #[test]
    fn bad_names_say_why_and_list_the_valid_ones() {
        let unknown = |input: &str| PresetError::Unknown {
            input: input.into(),
        };
        let malformed_sm = |input: &str| PresetError::Malformed {
            input: input.into(),
            expected: "sm_ followed by the compute capability's major and minor digits, \
                       optionally `a` (sm_89, sm_90a, sm_100)",
        };
        let malformed_gfx = |input: &str| PresetError::Malformed {
            input: input.into(),
            expected: "gfx followed by the architecture's digits (gfx90a, gfx942, gfx1100)",
        };
        let cases = [
            ("h800", unknown("h800")),
            ("", unknown("")),
            ("cuda:0", unknown("cuda:0")),
            ("90", unknown("90")),
            ("sm_9", malformed_sm("sm_9")),
            ("sm_1000", malformed_sm("sm_1000")),
            ("sm_9x", malformed_sm("sm_9x")),
            ("sm_", malformed_sm("sm_")),
            ("sm_90aa", malformed_sm("sm_90aa")),
            ("gfx9", malformed_gfx("gfx9")),
            ("gfxzz0", malformed_gfx("gfxzz0")),
            (
                "sm_91",
                PresetError::UnknownSm {
                    input: "sm_91".into(),
                    sm: Sm::new(9, 1),
                },
            ),
            (
                "sm_80a",
                PresetError::NoArchSpecific {
                    input: "sm_80a".into(),
                    sm: Sm::new(8, 0),
                },
            ),
            (
                "gfx803",
                PresetError::UnknownGfx {
                    input: "gfx803".into(),
                    gfx: Gfx::new(8, 0, 3),
                },
            ),
            (
                "gfx9ff",
                PresetError::UnknownGfx {
                    input: "gfx9ff".into(),
                    gfx: Gfx::new(9, 0xf, 0xf),
                },
            ),
        ];
        for (name, want) in cases {
            let err = simulate(name).unwrap_err();
            assert_eq!(err, want, "{name}");
            let text = err.to_string();
            assert!(
                text.contains(
                    "use a preset (a100, l40s, rtx4090, h100, h200, b200, gb200, mi250x, \
                     mi300x, rx7900xtx) or an architecture"
                ),
                "{text}"
            );
        }
        let text = simulate("sm_91").unwrap_err().to_string();
        assert!(
            text.starts_with(
                "cannot simulate `sm_91`: sm_91 is not the compute capability of any NVIDIA \
                 GPU (known: sm_50, sm_52,"
            ),
            "{text}"
        );
        let text = simulate("gfx803").unwrap_err().to_string();
        assert!(
            text.contains("gfx900 or newer; known: gfx900, gfx902"),
            "{text}"
        );
    }

    #[test]
    fn feature_rules() {
        let f = |major, minor| cuda_features(Sm::new(major, minor));
        assert!(f(6, 1).is_empty());
        assert_eq!(f(7, 5), BTreeSet::from([Feature::TensorCores]));
        assert_eq!(
            f(8, 0),
            BTreeSet::from([Feature::TensorCores, Feature::Bf16])
        );
        assert!(f(8, 9).contains(&Feature::Fp8) && !f(8, 9).contains(&Feature::Wgmma));
        assert!(f(9, 0).contains(&Feature::Wgmma) && f(9, 0).contains(&Feature::Tma));
        assert!(!f(10, 0).contains(&Feature::Wgmma) && f(12, 0).contains(&Feature::Fp8));
        for (gfx, mfma) in [
            (Gfx::new(9, 0, 6), false),
            (Gfx::new(9, 0, 8), true),
            (Gfx::new(9, 0, 0xa), true),
            (Gfx::new(9, 4, 0), true),
            (Gfx::new(9, 4, 2), true),
            (Gfx::new(9, 5, 0), false),
            (Gfx::new(10, 3, 0), false),
            (Gfx::new(11, 0, 0), false),
        ] {
            assert_eq!(has_mfma(gfx), mfma, "{gfx}");
            assert_eq!(
                rocm_features(gfx).contains(&Feature::TensorCores),
                mfma,
                "{gfx}"
            );
        }
    }
}
