//! The per-architecture rules that simulated devices (core's `presets`) and the backends'
//! probes share agree: the features of every known compute capability and gfx architecture,
//! MFMA on AMD, and that every architecture a bare `gfxNNN` may name is one the ROCm backend
//! would use. The backends delegate to core today; these tests keep them from drifting apart
//! if one of them grows its own rule again.

use kernelyard::presets::{
    cuda_features, has_mfma, rocm_features, rocm_wavefront, simulate, KNOWN_GFX, KNOWN_SM, PRESETS,
};
use kernelyard::{Arch, Gfx, Sm};

#[test]
fn cuda_features_agree_with_the_cuda_backend() {
    let mut sms: Vec<Sm> = KNOWN_SM.iter().map(|(sm, _)| *sm).collect();
    // Capabilities no GPU has: the rules still answer the same.
    sms.extend([Sm::new(3, 5), Sm::new(9, 1), Sm::new(10, 1), Sm::new(13, 0)]);
    for sm in sms {
        assert_eq!(
            kernelyard::cuda::device::features_of(sm),
            cuda_features(sm),
            "{sm}"
        );
    }
}

#[test]
fn rocm_features_agree_with_the_rocm_backend() {
    let mut archs = KNOWN_GFX.to_vec();
    archs.extend([Gfx::new(8, 0, 3), Gfx::new(9, 4, 3), Gfx::new(9, 0, 7)]);
    for gfx in archs {
        assert_eq!(
            kernelyard::rocm::device::has_mfma(gfx),
            has_mfma(gfx),
            "{gfx}"
        );
        assert_eq!(
            kernelyard::rocm::device::features_of(gfx),
            rocm_features(gfx),
            "{gfx}"
        );
    }
}

#[test]
fn every_bare_gfx_is_one_the_rocm_backend_would_use() {
    for gfx in KNOWN_GFX {
        assert!(gfx >= kernelyard::rocm::device::MIN_GFX, "{gfx}");
        assert_eq!(
            kernelyard::rocm::device::classify(&gfx.to_string(), rocm_wavefront(gfx) as i32),
            Ok((gfx, rocm_wavefront(gfx))),
            "{gfx}"
        );
    }
}

#[test]
fn presets_have_the_features_a_probe_would_find() {
    for p in &PRESETS {
        let caps = simulate(p.name).expect("a preset simulates");
        let probed = match caps.arch {
            Arch::Cuda { sm } => kernelyard::cuda::device::features_of(sm),
            Arch::Rocm { gfx, .. } => kernelyard::rocm::device::features_of(gfx),
            Arch::Cpu { .. } => panic!("{} is a CPU", p.name),
        };
        assert_eq!(caps.features, probed, "{}", p.name);
    }
}
