//! Pieces the fuzz targets share: the simulated devices every selection runs against, a runtime
//! holding them, and the checks a successful selection must pass.
//!
//! The targets are in `fuzz_targets/`; `docs/BAD_INPUT.md` says what each one covers.

use std::sync::OnceLock;

use kernelyard::{
    Capabilities, Choice, DeviceId, Gfx, Plan, Policy, Problem, Registry, Runtime, Sm,
};

/// The devices selection is fuzzed on: the host CPU, CUDA sm_75, sm_80, sm_90 and sm_100
/// (H100-like, 227 KiB of opt-in shared memory) and a gfx90a (MI200-like, wavefront 64). Each has
/// its own device id, so one runtime holds them all. Made once per process.
pub fn devices() -> &'static [Capabilities] {
    static DEVICES: OnceLock<Vec<Capabilities>> = OnceLock::new();
    DEVICES.get_or_init(make_devices)
}

fn make_devices() -> Vec<Capabilities> {
    let mut out = vec![Capabilities::host()];
    for (i, (major, minor)) in [(7, 5), (8, 0), (9, 0), (10, 0)].into_iter().enumerate() {
        let mut caps = kernelyard::cuda::device::simulated_caps(Sm::new(major, minor), 227 << 10);
        caps.device = DeviceId::cuda(i as u32);
        out.push(caps);
    }
    out.push(kernelyard::rocm::device::simulated_caps(
        Gfx::new(9, 0, 0xa),
        64,
    ));
    out
}

/// A runtime over [`devices`] (simulated: selection only, nothing is probed), with every
/// backend's kernels registered and no pins, built once per process.
pub fn selection_runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        kernelyard::link_backends();
        let mut b = Runtime::builder().no_probe().pins("");
        for caps in devices() {
            b = b.simulated_device(caps.clone());
        }
        b.build().expect("the simulated runtime builds")
    })
}

/// The global registry (every backend linked).
pub fn registry() -> &'static Registry {
    kernelyard::link_backends();
    Registry::global().expect("the registry builds")
}

/// The policies every problem is selected under: auto, deterministic, batch-invariant, both.
pub fn policies() -> [Policy; 4] {
    [
        Policy::auto(),
        Policy::auto().deterministic(),
        Policy::auto().batch_invariant(),
        Policy::auto().deterministic().batch_invariant(),
    ]
}

/// Panics unless `plan`, selected for `problem` on `caps` under `policy`, is one that selection
/// may return: a kernel of the problem's op and the device's kind that passes its own check,
/// has the properties the policy asks for, and is the one the policy named. Also renders the
/// report (explain's output), which must not fail.
pub fn check_plan(plan: &Plan, caps: &Capabilities, problem: &Problem, policy: &Policy) {
    let meta = plan.kernel().meta();
    assert_eq!(meta.op, problem.op(), "{}", meta.name);
    assert_eq!(meta.device, caps.device.kind, "{}", meta.name);
    assert_eq!(plan.device(), caps.device);
    assert_eq!(plan.problem(), problem);
    if let Err(reasons) = plan.kernel().check(caps, problem) {
        panic!(
            "{} was selected for {problem} on {} but its check says {reasons:?}",
            meta.name, caps.name
        );
    }
    assert!(!policy.deterministic || meta.deterministic, "{}", meta.name);
    assert!(
        !policy.batch_invariant || meta.batch_invariant,
        "{}",
        meta.name
    );
    match &policy.choice {
        Choice::Kernel(name) => assert_eq!(meta.name, name),
        Choice::Backend(name) => assert_eq!(meta.backend, name),
        Choice::Auto => {}
    }
    let _ = plan.report().to_string();
}
