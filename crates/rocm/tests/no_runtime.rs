//! A machine without the HIP runtime: the probe gives [`Unavailable::NoRuntime`] naming the
//! library, the runtime reports the backend unavailable with it, and nothing panics. Simulated
//! with `KERNELYARD_HIP_LIB` pointing at a file that does not exist (this file has one test: the
//! library is opened once per process).
#![cfg(feature = "hip")]

use kernelyard_core::backend::registered_backends;
use kernelyard_core::{BackendState, Runtime};
use kernelyard_rocm::device::{self, Unavailable};

#[test]
fn no_runtime_library_is_a_typed_reason() {
    std::env::set_var("KERNELYARD_HIP_LIB", "/nonexistent/libamdhip64.so");
    let e = device::probe().expect_err("no runtime can be opened");
    assert!(matches!(e, Unavailable::NoRuntime { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("no HIP runtime") && text.contains("/nonexistent/libamdhip64.so"),
        "{text}"
    );
    let c = device::hiprtc_version().unwrap_err();
    assert!(matches!(c, Unavailable::NoCompiler { .. }), "{c:?}");

    kernelyard_rocm::link();
    let backend = registered_backends()
        .find(|b| b.name() == "rocm")
        .expect("the rocm backend is registered");
    let p = backend.probe().expect_err("no runtime");
    assert!(
        matches!(
            p.downcast_ref::<Unavailable>(),
            Some(Unavailable::NoRuntime { .. })
        ),
        "{p:?}"
    );
    assert_eq!(p.to_string(), text);

    let rt = Runtime::builder().pins("").build().expect("runtime");
    let rocm = rt
        .backends()
        .iter()
        .find(|b| b.name == "rocm")
        .expect("rocm");
    match &rocm.state {
        BackendState::Unavailable { why } => assert!(why.contains("no HIP runtime"), "{why}"),
        other => panic!("expected unavailable, got {other:?}"),
    }
}
