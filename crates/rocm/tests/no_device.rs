//! The no-device path on a machine with the HIP runtime and no AMD GPU (what CI has: Debian's
//! libamdhip64 and no GPU): a typed reason from the probe, the backend reported unavailable with
//! it by the runtime (what `doctor` prints), and selection on `rocm:0` failing with it. Nothing
//! panics.
//!
//! Ignored by default because it asserts facts about the machine; `.ci/run` installs
//! `libamdhip64-dev` and runs it with `--include-ignored`. On a machine with an AMD GPU it fails
//! by design.
#![cfg(feature = "hip")]

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

    kernelyard_rocm::link();
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
    assert!(
        rocm.to_string().starts_with("rocm: unavailable: "),
        "{rocm}"
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
