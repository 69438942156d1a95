//! The no-device path on a machine with the HIP runtime and no AMD GPU (what CI has: Debian's
//! libamdhip64 and no GPU): a typed reason from the probe, the backend reported unavailable with
//! it by the runtime (what `doctor` prints), and selection on `rocm:0` failing with it. Nothing
//! panics.
//!
//! Ignored by default because it asserts facts about the machine; `.ci/run` installs
//! `libamdhip64-dev` and runs it with `--include-ignored`. On a machine with an AMD GPU it fails
//! by design.
#![cfg(feature = "hip")]

use kernelyard_core::backend::registered_backends;
use kernelyard_core::{BackendState, DType, DeviceId, OpKind, Params, Policy, Problem, Runtime};
use kernelyard_rocm::device::{self, Unavailable};

#[test]
#[ignore = "asserts the HIP runtime is installed and no AMD GPU is present (CI: --include-ignored)"]
fn no_device_is_a_typed_reason_everywhere() {
    let e = device::probe().expect_err("this machine must have no AMD GPU");
    assert!(
        matches!(&e, Unavailable::NoDevice { status } if status == "hipErrorNoDevice"),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains("found no AMD GPU"), "{text}");

    // hiprtc works without a GPU (ROCm 5.2: inside libamdhip64).
    let v = device::hiprtc_version().expect("hiprtc");
    assert!(v.major >= 5, "{v}");

    // The backend's probe wraps the same typed reason; its text is what doctor prints (and CI
    // greps for).
    kernelyard_rocm::link();
    let backend = registered_backends()
        .find(|b| b.name() == "rocm")
        .expect("the rocm backend is registered");
    let e = backend.probe().expect_err("no AMD GPU");
    assert_eq!(
        e.downcast_ref::<Unavailable>(),
        Some(&Unavailable::NoDevice {
            status: "hipErrorNoDevice".into()
        })
    );
    assert_eq!(
        e.to_string(),
        "the HIP runtime found no AMD GPU (hipErrorNoDevice)"
    );

    let rt = Runtime::builder().pins("").build().expect("runtime");
    let rocm = rt
        .backends()
        .iter()
        .find(|b| b.name == "rocm")
        .expect("the rocm backend is registered");
    match &rocm.state {
        BackendState::Unavailable { why } => assert!(why.contains("found no AMD GPU"), "{why}"),
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert_eq!(
        rocm.to_string(),
        "rocm: unavailable: the HIP runtime found no AMD GPU (hipErrorNoDevice)"
    );

    let params = Params::parse(OpKind::Softmax, "rows=2,cols=8").expect("params");
    let p = Problem::from_params(OpKind::Softmax, &params, DType::F32).expect("problem");
    let err = rt
        .select(DeviceId::rocm(0), &p, &Policy::auto())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rocm:0") && err.contains("found no AMD GPU"),
        "{err}"
    );
}
