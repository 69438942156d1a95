//! On a machine with an AMD GPU: every kernel source loads on `rocm:0` through the pipeline
//! (hiprtc for the device's gfx architecture, or the disk cache) and every entry point the Rust
//! side names is a function of the loaded module. The numerical checks are the equivalence
//! suite's (`kernelyard verify --device rocm:0`).
#![cfg(feature = "hip")]

use kernelyard_core::DeviceId;
use kernelyard_rocm::device;
use kernelyard_rocm::module::load_symbols;
use kernelyard_rocm::ops;

#[test]
#[ignore = "requires a ROCm device"]
fn on_a_rocm_device_every_listed_entry_point_loads() {
    let caps = device::probe().expect("a usable AMD GPU");
    let dev = caps.first().expect("at least one device");
    assert_eq!(dev.device, DeviceId::rocm(0));
    let mut loaded = 0;
    for entry in ops::sources() {
        if !entry.targets(&dev.arch) {
            continue;
        }
        load_symbols(dev.device, entry.source)
            .unwrap_or_else(|e| panic!("kernels/{}: {e}", entry.source.file));
        loaded += 1;
    }
    // Every architecture runs the five row sources, silu_mul, selective_state_update and the
    // portable GEMM.
    assert!(loaded >= 8, "{loaded} sources loaded on {}", dev.arch);
}
