//! `KERNELYARD_TUNE` and `KERNELYARD_TUNING_CACHE` read by `Runtime::builder().build()`.
//!
//! This binary holds exactly one test, because it sets process-wide environment variables: no
//! other test may run beside it.

#[path = "select/fakes.rs"]
#[allow(dead_code)] // this test uses a few of the shared fakes
mod fakes;

use kernelyard_core::tune::{
    Candidate, Measurement, TuningCache, TuningEntry, TuningEnv, TuningKey,
};
use kernelyard_core::{ChoiceSource, KernelMeta, OpKind, Policy, Runtime, TuningNote, TUNE_ENV};

use fakes::{cuda, fake, meta, registry, softmax_problem, GPU0};

#[test]
fn tune_env_turns_tuning_on_and_a_bad_cache_is_reported_not_applied() {
    let dir = std::env::temp_dir().join(format!("kernelyard-env-tune-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tuning.json");
    let caps = cuda(0, 9, 0);
    let key = TuningKey::new(&softmax_problem(), &caps, false).unwrap();
    let m = |k: &str, ms| Measurement {
        candidate: Candidate {
            kernel: k.into(),
            tactic: None,
        },
        kernel_version: 1,
        ms: Some(ms),
        verified: true,
        rejected: None,
    };
    let mut cache = TuningCache::open(&path).unwrap();
    cache.insert(
        TuningEntry::from_measurements(
            key,
            TuningEnv::of(&caps),
            vec![m("cuda.softmax.a", 0.3), m("cuda.softmax.b", 0.1)],
        )
        .unwrap(),
    );
    cache.save().unwrap();
    let r = registry(&[
        fake(KernelMeta {
            priority: 10,
            ..meta(
                "cuda.softmax.a",
                OpKind::Softmax,
                kernelyard_core::DeviceKind::Cuda,
            )
        }),
        fake(meta(
            "cuda.softmax.b",
            OpKind::Softmax,
            kernelyard_core::DeviceKind::Cuda,
        )),
    ]);
    let build = || {
        Runtime::builder()
            .registry(r)
            .pins("")
            .no_probe()
            .simulated_device(cuda(0, 9, 0))
            .build()
            .unwrap()
    };
    std::env::set_var("KERNELYARD_TUNING_CACHE", &path);
    // Off: the cache is not even read.
    std::env::remove_var(TUNE_ENV);
    let rt = build();
    assert!(rt.tuning_cache().is_none());
    let p = rt
        .select(GPU0, &softmax_problem(), &Policy::auto())
        .unwrap();
    assert_eq!(p.kernel_name(), "cuda.softmax.a");
    // On: every policy that names no kernel is tuned.
    std::env::set_var(TUNE_ENV, "1");
    let rt = build();
    assert_eq!(rt.tuning_cache().unwrap().entries().count(), 1);
    let p = rt
        .select(GPU0, &softmax_problem(), &Policy::auto())
        .unwrap();
    assert_eq!(p.kernel_name(), "cuda.softmax.b");
    assert_eq!(p.report().source, Some(ChoiceSource::Tuned));
    // A torn file: the runtime still builds, says why, and selects as without tuning.
    std::fs::write(&path, "{\"format\": 1, \"entr").unwrap();
    let rt = build();
    assert!(rt.tuning_cache().is_none());
    assert!(
        rt.tuning_error().unwrap().contains("does not parse"),
        "{:?}",
        rt.tuning_error()
    );
    let p = rt
        .select(GPU0, &softmax_problem(), &Policy::auto())
        .unwrap();
    assert_eq!(p.kernel_name(), "cuda.softmax.a");
    assert_eq!(p.report().tuning, Some(TuningNote::NoCache));
    std::env::remove_var(TUNE_ENV);
    std::env::remove_var("KERNELYARD_TUNING_CACHE");
    let _ = std::fs::remove_dir_all(&dir);
}
