//! `KERNELYARD_KERNELS` read from the environment by `Runtime::builder().build()`.
//!
//! This binary holds exactly one test, because it sets a process-wide environment variable:
//! no other test may run beside it.

#[path = "select/fakes.rs"]
#[allow(dead_code)] // this test uses a few of the shared fakes
mod fakes;

use kernelyard_core::{Error, KernelMeta, OpKind, Policy, Runtime, PIN_ENV};

use fakes::{cuda, cuda_gemm, fake, gemm_problem, registry, GPU0};

#[test]
fn env_pins_are_read_at_build_and_bad_ones_fail_it() {
    let r = registry(&[
        fake(KernelMeta {
            priority: 10,
            ..cuda_gemm("cuda.gemm.high")
        }),
        fake(cuda_gemm("cuda.gemm.low")),
    ]);
    let build = || {
        Runtime::builder()
            .registry(r)
            .no_probe()
            .simulated_device(cuda(0, 9, 0))
            .build()
    };

    // An unknown op: the runtime is not built, rather than built without the pin.
    std::env::set_var(PIN_ENV, "gemmm=cuda.gemm.low");
    match build() {
        Err(Error::EnvOverride { entry, why }) => {
            assert_eq!(entry, "gemmm=cuda.gemm.low");
            assert!(why.contains("unknown op `gemmm`"), "{why}");
        }
        Err(other) => panic!("expected EnvOverride, got {other:?}"),
        Ok(_) => panic!("a runtime was built with a bad {PIN_ENV}"),
    }
    // An unknown kernel likewise.
    std::env::set_var(PIN_ENV, "gemm=cuda.gemm.nope");
    assert!(matches!(build(), Err(Error::EnvOverride { .. })));
    // Explicit pins replace the environment's.
    let rt = Runtime::builder()
        .registry(r)
        .pins("")
        .no_probe()
        .simulated_device(cuda(0, 9, 0))
        .build()
        .expect("explicit pins ignore the environment");
    let plan = rt.select(GPU0, &gemm_problem(), &Policy::auto()).unwrap();
    assert_eq!(plan.kernel_name(), "cuda.gemm.high");

    // A valid pin applies and is reported.
    std::env::set_var(PIN_ENV, "gemm=cuda.gemm.low");
    let rt = build().expect("a valid pin builds");
    let plan = rt.select(GPU0, &gemm_problem(), &Policy::auto()).unwrap();
    assert_eq!(plan.kernel_name(), "cuda.gemm.low");
    assert_eq!(plan.report().pinned_by_env, Some("cuda.gemm.low"));
    assert_eq!(plan.report().op, OpKind::Gemm);

    // Unset and empty mean no pins.
    std::env::set_var(PIN_ENV, "");
    let rt = build().expect("an empty value is no pins");
    let plan = rt.select(GPU0, &gemm_problem(), &Policy::auto()).unwrap();
    assert_eq!(plan.report().pinned_by_env, None);
    std::env::remove_var(PIN_ENV);
    assert!(build().is_ok());
}
