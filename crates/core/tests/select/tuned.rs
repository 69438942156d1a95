//! Tuned selection (`Policy::tuned`): the tuning cache's verified fastest choice is preferred
//! among runnable kernels, reported as such, never applied when stale or unusable, and, under
//! determinism or batch invariance, the same for every batch size.

use kernelyard_core::tune::{
    Candidate, Measurement, TuningCache, TuningEntry, TuningEnv, TuningKey,
};
use kernelyard_core::{
    Capabilities, ChoiceSource, DType, DeviceKind, KernelMeta, OpKind, Policy, Problem, Registry,
    Runtime, TuningNote,
};

use crate::fakes::{cuda, fake, meta, problem, registry, GPU0};

fn softmax(name: &'static str, priority: i32, invariant: bool) -> KernelMeta {
    KernelMeta {
        priority,
        deterministic: invariant,
        batch_invariant: invariant,
        ..meta(name, OpKind::Softmax, DeviceKind::Cuda)
    }
}

fn measured(kernel: &str, ms: f64) -> Measurement {
    Measurement {
        candidate: Candidate {
            kernel: kernel.into(),
            tactic: None,
        },
        kernel_version: 1,
        ms: Some(ms),
        verified: true,
        rejected: None,
    }
}

/// A cache whose entry for `p` (under `constrained`) measured `fast` faster than `slow`.
fn cache_for(
    caps: &Capabilities,
    p: &Problem,
    constrained: bool,
    fast: &str,
    slow: &str,
) -> TuningCache {
    let key = TuningKey::new(p, caps, constrained).unwrap();
    let entry = TuningEntry::from_measurements(
        key,
        TuningEnv::of(caps),
        vec![measured(slow, 0.2), measured(fast, 0.1)],
    )
    .unwrap();
    let mut c = TuningCache::in_memory();
    c.insert(entry);
    c
}

/// A runtime over `r` with one simulated device `caps`, the pins `pins` and, if given, a
/// tuning cache.
fn simulated(
    r: &'static Registry,
    caps: Capabilities,
    pins: &str,
    cache: Option<TuningCache>,
) -> Runtime {
    let b = Runtime::builder()
        .registry(r)
        .pins(pins)
        .no_probe()
        .simulated_device(caps);
    match cache {
        Some(c) => b.tuning_cache(c),
        None => b,
    }
    .build()
    .unwrap()
}

/// The two softmax kernels `a` (priority 10) and `b` (5), both invariant.
fn two_softmaxes() -> &'static Registry {
    registry(&[
        fake(softmax("cuda.softmax.a", 10, true)),
        fake(softmax("cuda.softmax.b", 5, true)),
    ])
}

fn runtime(cache: TuningCache) -> Runtime {
    simulated(two_softmaxes(), cuda(0, 9, 0), "", Some(cache))
}

fn sm(rows: usize) -> Problem {
    problem(
        OpKind::Softmax,
        &format!("rows={rows},cols=4096"),
        DType::BF16,
    )
}

#[test]
fn a_tuned_policy_prefers_the_measured_choice_and_says_so() {
    let caps = cuda(0, 9, 0);
    let rt = runtime(cache_for(
        &caps,
        &sm(32),
        false,
        "cuda.softmax.b",
        "cuda.softmax.a",
    ));
    let plain = rt.select(GPU0, &sm(32), &Policy::auto()).unwrap();
    assert_eq!(plain.kernel_name(), "cuda.softmax.a");
    assert_eq!(plain.report().source, Some(ChoiceSource::Priority));
    assert_eq!(plain.report().tuning, None);
    let tuned = rt.select(GPU0, &sm(32), &Policy::auto().tuned()).unwrap();
    assert_eq!(tuned.kernel_name(), "cuda.softmax.b");
    let r = tuned.report();
    assert_eq!(r.source, Some(ChoiceSource::Tuned));
    match &r.tuning {
        Some(TuningNote::Applied { measured, .. }) => assert_eq!(
            measured,
            &vec![
                ("cuda.softmax.a".to_string(), Some(0.2), true),
                ("cuda.softmax.b".to_string(), Some(0.1), true)
            ]
        ),
        other => panic!("{other:?}"),
    }
    let text = r.to_string();
    assert!(text.contains("chosen by: tuning"), "{text}");
    assert!(
        text.contains("cuda.softmax.b: 0.1000 ms (verified)"),
        "{text}"
    );
    // 40 rows fall in another bucket (2^5 < 40 <= 2^6): a miss.
    let miss = rt.select(GPU0, &sm(40), &Policy::auto().tuned()).unwrap();
    assert_eq!(miss.kernel_name(), "cuda.softmax.a");
    assert!(matches!(
        miss.report().tuning,
        Some(TuningNote::Miss { .. })
    ));
    // 17..=32 rows share the bucket.
    let same = rt.select(GPU0, &sm(17), &Policy::auto().tuned()).unwrap();
    assert_eq!(same.kernel_name(), "cuda.softmax.b");
    // A named kernel is never replaced by tuning.
    let named = rt
        .select(GPU0, &sm(32), &Policy::kernel("cuda.softmax.a").tuned())
        .unwrap();
    assert_eq!(named.kernel_name(), "cuda.softmax.a");
    assert_eq!(named.report().source, Some(ChoiceSource::Named));
}

#[test]
fn a_stale_entry_is_reported_and_not_applied() {
    let mut other = cuda(0, 9, 0);
    other.driver_version = Some(kernelyard_core::Version {
        major: 99,
        minor: 0,
        patch: 0,
    });
    let rt = runtime(cache_for(
        &other,
        &sm(32),
        false,
        "cuda.softmax.b",
        "cuda.softmax.a",
    ));
    let plan = rt.select(GPU0, &sm(32), &Policy::auto().tuned()).unwrap();
    assert_eq!(plan.kernel_name(), "cuda.softmax.a");
    match &plan.report().tuning {
        Some(TuningNote::Stale { mismatches, .. }) => {
            assert_eq!(mismatches.len(), 1);
            assert_eq!(mismatches[0].field, "driver");
        }
        other => panic!("{other:?}"),
    }
    assert!(plan.report().to_string().contains("not applied"));
}

#[test]
fn an_unusable_choice_falls_back_with_the_reason() {
    let caps = cuda(0, 9, 0);
    // The cached choice is a kernel this registry does not have.
    let rt = runtime(cache_for(
        &caps,
        &sm(32),
        false,
        "cuda.softmax.gone",
        "cuda.softmax.a",
    ));
    let plan = rt.select(GPU0, &sm(32), &Policy::auto().tuned()).unwrap();
    assert_eq!(plan.kernel_name(), "cuda.softmax.a");
    // The gone kernel has no version: the entry is stale, not applied.
    assert!(matches!(
        plan.report().tuning,
        Some(TuningNote::Stale { .. })
    ));
    // A choice that cannot run under the policy: not applied, with the policy's reason.
    let r = registry(&[
        fake(softmax("cuda.softmax.a", 10, true)),
        fake(softmax("cuda.softmax.fast", 5, false)),
    ]);
    let key_problem = sm(32);
    let cache = cache_for(
        &caps,
        &key_problem,
        true,
        "cuda.softmax.fast",
        "cuda.softmax.a",
    );
    let rt = simulated(r, caps, "", Some(cache));
    let plan = rt
        .select(GPU0, &key_problem, &Policy::auto().deterministic().tuned())
        .unwrap();
    assert_eq!(plan.kernel_name(), "cuda.softmax.a");
    match &plan.report().tuning {
        Some(TuningNote::Unusable { choice, why, .. }) => {
            assert_eq!(choice, "cuda.softmax.fast");
            assert!(why.contains("determinis"), "{why}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn under_batch_invariance_the_tuned_choice_does_not_depend_on_the_batch() {
    let caps = cuda(0, 9, 0);
    // Tuned at 32 rows; the constrained key has no rows, so every batch size gets its choice.
    let rt = runtime(cache_for(
        &caps,
        &sm(32),
        true,
        "cuda.softmax.b",
        "cuda.softmax.a",
    ));
    let policy = Policy::auto().batch_invariant().tuned();
    for rows in [1, 2, 17, 32, 1000, 65536] {
        let plan = rt.select(GPU0, &sm(rows), &policy).unwrap();
        assert_eq!(plan.kernel_name(), "cuda.softmax.b", "rows = {rows}");
        assert_eq!(plan.report().source, Some(ChoiceSource::Tuned));
    }
    // Without the constraint, the unconstrained key (with rows) has no entry: a miss.
    let plan = rt.select(GPU0, &sm(1000), &Policy::auto().tuned()).unwrap();
    assert!(matches!(
        plan.report().tuning,
        Some(TuningNote::Miss { .. })
    ));
}

#[test]
fn a_tuned_policy_without_a_cache_behaves_as_today() {
    let r = two_softmaxes();
    let rt = simulated(r, cuda(0, 9, 0), "", None);
    let plan = rt.select(GPU0, &sm(32), &Policy::auto().tuned()).unwrap();
    assert_eq!(plan.kernel_name(), "cuda.softmax.a");
    assert_eq!(plan.report().tuning, Some(TuningNote::NoCache));
    assert!(Policy::auto().tuned().to_string().ends_with("+tuned"));
}

// ---------------------------------------------------------------------------------------------
// Tactics: `kernel@tactic`.

fn tactical() -> Runtime {
    let r = registry(&[fake(KernelMeta {
        tactics: &["t128", "t256"],
        ..softmax("cuda.softmax.t", 10, true)
    })]);
    simulated(r, cuda(0, 9, 0), "", None)
}

#[test]
fn a_tactic_is_selected_by_name_and_an_unknown_one_is_an_error() {
    let rt = tactical();
    let plan = rt
        .select(GPU0, &sm(8), &Policy::kernel("cuda.softmax.t@t256"))
        .unwrap();
    assert_eq!(plan.kernel_name(), "cuda.softmax.t");
    assert_eq!(plan.tactic(), Some("t256"));
    assert_eq!(plan.label(), "cuda.softmax.t@t256");
    assert_eq!(plan.report().tactic, Some("t256"));
    assert!(plan.report().to_string().contains("tactic: t256"));
    let default = rt
        .select(GPU0, &sm(8), &Policy::kernel("cuda.softmax.t"))
        .unwrap();
    assert_eq!(default.tactic(), None);
    assert_eq!(default.label(), "cuda.softmax.t");
    match rt.select(GPU0, &sm(8), &Policy::kernel("cuda.softmax.t@t999")) {
        Err(kernelyard_core::SelectError::UnknownTactic {
            kernel,
            tactic,
            known,
        }) => {
            assert_eq!(kernel, "cuda.softmax.t");
            assert_eq!(tactic, "t999");
            assert_eq!(known, ["t128", "t256"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_tuned_tactic_is_applied_with_its_kernel() {
    let caps = cuda(0, 9, 0);
    let key = TuningKey::new(&sm(8), &caps, false).unwrap();
    let t = |tactic: Option<&str>, ms| Measurement {
        candidate: Candidate {
            kernel: "cuda.softmax.t".into(),
            tactic: tactic.map(str::to_string),
        },
        ..measured("cuda.softmax.t", ms)
    };
    let mut cache = TuningCache::in_memory();
    cache.insert(
        TuningEntry::from_measurements(
            key,
            TuningEnv::of(&caps),
            vec![t(None, 0.3), t(Some("t128"), 0.1), t(Some("t256"), 0.2)],
        )
        .unwrap(),
    );
    let r = registry(&[fake(KernelMeta {
        tactics: &["t128", "t256"],
        ..softmax("cuda.softmax.t", 10, true)
    })]);
    let rt = simulated(r, caps, "", Some(cache));
    let plan = rt.select(GPU0, &sm(8), &Policy::auto().tuned()).unwrap();
    assert_eq!(plan.label(), "cuda.softmax.t@t128");
    assert_eq!(plan.report().source, Some(ChoiceSource::Tuned));
    // Untuned: the default configuration.
    let plan = rt.select(GPU0, &sm(8), &Policy::auto()).unwrap();
    assert_eq!(plan.label(), "cuda.softmax.t");
}

#[test]
fn the_launch_gets_the_plans_tactic() {
    let k = fake(KernelMeta {
        tactics: &["fast"],
        ..crate::fakes::cuda_gemm("cuda.gemm.t")
    });
    let rt = simulated(registry(&[k]), cuda(0, 9, 0), "", None);
    let stream = kernelyard_core::Stream::default_for(GPU0);
    let mut args = crate::fakes::gemm_args(8, 32, 16, GPU0);
    rt.run(&Policy::kernel("cuda.gemm.t@fast"), &stream, &mut args)
        .unwrap();
    assert_eq!(*k.last_tactic.lock().unwrap(), Some("fast"));
    rt.run(&Policy::kernel("cuda.gemm.t"), &stream, &mut args)
        .unwrap();
    assert_eq!(*k.last_tactic.lock().unwrap(), None);
}

#[test]
fn a_pin_is_never_replaced_by_tuning() {
    let caps = cuda(0, 9, 0);
    let r = two_softmaxes();
    let rt = simulated(
        r,
        caps.clone(),
        "softmax=cuda.softmax.a",
        Some(cache_for(
            &caps,
            &sm(32),
            false,
            "cuda.softmax.b",
            "cuda.softmax.a",
        )),
    );
    let plan = rt.select(GPU0, &sm(32), &Policy::auto().tuned()).unwrap();
    assert_eq!(plan.kernel_name(), "cuda.softmax.a");
    assert_eq!(plan.report().source, Some(ChoiceSource::Pinned));
    assert_eq!(plan.report().tuning, None);
}
