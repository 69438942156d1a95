//! Selection never panics, on any problem, with every kernel this build registers (the
//! reference backend, CUDA and the ROCm stub, whose kernels still run their shared checks) on
//! simulated devices: the CPU, sm_75, sm_80, sm_90, sm_100 and gfx90a.
//!
//! Problems come from random `--problem` parameters (those `from_params` accepts) or are built
//! field by field with random values, valid or not (core's test support,
//! `crates/core/tests/support/problems.rs`). A problem that fails its check is refused with
//! `SelectError::InvalidProblem` (that very error) before any kernel sees it; one that passes
//! gets a plan for itself or another typed error. The kernels' own checks and scores are also
//! called on every problem directly, invalid ones included: they must not panic either.

#[path = "../../core/tests/support/problems.rs"]
mod problems;

use std::sync::OnceLock;

use kernelyard::{
    Capabilities, DeviceId, Gfx, OpKind, Policy, Problem, Reason, Registry, Runtime, SelectError,
    Sm, Verdict,
};
use proptest::prelude::*;

/// The simulated devices, each with its own id.
fn devices() -> &'static [Capabilities] {
    static DEVICES: OnceLock<Vec<Capabilities>> = OnceLock::new();
    DEVICES.get_or_init(|| {
        let cuda = |index, sm, optin| Capabilities {
            device: DeviceId::cuda(index),
            ..kernelyard::cuda::device::simulated_caps(sm, optin)
        };
        vec![
            Capabilities::host(),
            cuda(0, Sm::new(7, 5), 64 << 10),
            cuda(1, Sm::new(8, 0), 163 << 10),
            cuda(2, Sm::new(9, 0), 227 << 10),
            cuda(3, Sm::new(10, 0), 227 << 10),
            kernelyard::rocm::device::simulated_caps(Gfx::new(9, 0, 0xa), 64),
        ]
    })
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        kernelyard::link_backends();
        devices()
            .iter()
            .fold(Runtime::builder().no_probe().pins(""), |b, caps| {
                b.simulated_device(caps.clone())
            })
            .build()
            .expect("a runtime of simulated devices")
    })
}

fn registry() -> &'static Registry {
    kernelyard::link_backends();
    Registry::global().expect("the registry")
}

/// Every policy worth trying for `op`: auto, the constraints, each backend, each kernel.
fn policies(op: OpKind) -> Vec<Policy> {
    let mut p = vec![
        Policy::auto(),
        Policy::auto().deterministic(),
        Policy::auto().batch_invariant(),
    ];
    p.extend(["reference", "cuda", "rocm"].map(Policy::backend));
    p.extend(registry().names_for(op).into_iter().map(Policy::kernel));
    p
}

#[test]
fn every_backend_and_device_is_there() {
    let names: Vec<&str> = registry().all().iter().map(|k| k.meta().backend).collect();
    for backend in ["reference", "cuda", "rocm"] {
        assert!(names.contains(&backend), "no {backend} kernel is linked");
    }
    let rt = runtime();
    for caps in devices() {
        let p = Problem::from_params(
            OpKind::Softmax,
            &kernelyard::Params::parse(OpKind::Softmax, "rows=4,cols=64").unwrap(),
            kernelyard::DType::F32,
        )
        .unwrap();
        // Every device is there (so each one is really tried below) and its kernels are
        // considered: softmax is selected, or (the ROCm stub) refused as not compiled in.
        assert_eq!(rt.capabilities(caps.device).unwrap().name, caps.name);
        match rt.select(caps.device, &p, &Policy::auto()) {
            Ok(_) => {}
            Err(SelectError::AllRejected { report }) => {
                assert!(
                    report.candidates.iter().all(|c| matches!(
                        &c.verdict,
                        Verdict::Rejected { reasons }
                            if matches!(reasons.as_slice(), [Reason::NotCompiledIn { .. }])
                    )),
                    "{report}"
                );
            }
            Err(e) => panic!("{}: {e}", caps.device),
        }
    }
}

fn selects_without_panicking(p: &Problem) -> Result<(), TestCaseError> {
    let rt = runtime();
    let valid = p.check();
    for caps in devices() {
        for policy in policies(p.op()) {
            match rt.select(caps.device, p, &policy) {
                Ok(plan) => {
                    prop_assert!(valid.is_ok(), "{p} selected {}", plan.kernel_name());
                    prop_assert_eq!(plan.problem(), p);
                }
                Err(SelectError::InvalidProblem { op, error }) => {
                    prop_assert_eq!(op, p.op());
                    prop_assert_eq!(Err(error), valid.clone());
                }
                Err(other) => prop_assert!(valid.is_ok(), "{p}: {other}"),
            }
        }
        // The kernels' checks and scores on the problem as it is (no problem check first).
        for k in registry().all() {
            let _ = k.check(caps, p);
            let _ = k.score(caps, p);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn select_never_panics_on_any_problem(
        p in prop::sample::select(OpKind::ALL.to_vec()).prop_flat_map(problems::problem)
    ) {
        selects_without_panicking(&p)?;
    }
}
