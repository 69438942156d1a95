//! The plan cache's bound and eviction, through `Selector` and `Runtime` (issue 13: the cache
//! was cleared whole at 4,096 plans, so a 5,000-problem cycle missed on every select).

use std::sync::Arc;

use kernelyard_core::select::PLAN_CACHE_CAPACITY;
use kernelyard_core::{DType, KernelMeta, OpKind, Pins, Plan, Policy, Problem, Selector};

use crate::fakes::{cuda, cuda_gemm, fake, problem, registry, runtime, GPU0};

fn gemm_selector(capacity: usize) -> Selector {
    let r = registry(&[
        fake(KernelMeta {
            priority: 10,
            ..cuda_gemm("cuda.gemm.fast")
        }),
        fake(KernelMeta {
            deterministic: true,
            ..cuda_gemm("cuda.gemm.det")
        }),
    ]);
    Selector::with_cache_capacity(r, Pins::default(), capacity)
}

/// Distinct gemm problems, `m = 1..=n`.
fn gemm_problems(n: usize) -> Vec<Problem> {
    (1..=n)
        .map(|m| problem(OpKind::Gemm, &format!("m={m},n=64,k=32"), DType::BF16))
        .collect()
}

#[test]
fn the_cache_never_exceeds_its_bound() {
    let h100 = cuda(0, 9, 0);
    let s = gemm_selector(64);
    assert_eq!(s.cache_capacity(), 64);
    assert_eq!(s.cached_plans(), 0);
    for (i, p) in gemm_problems(1_000).iter().enumerate() {
        for policy in [Policy::auto(), Policy::auto().deterministic()] {
            let plan = s.select(&h100, p, &policy).unwrap();
            assert_eq!(plan.problem(), p);
            assert!(
                s.cached_plans() <= 64,
                "{} plans after {i} problems",
                s.cached_plans()
            );
        }
    }
    assert_eq!(s.cached_plans(), 64, "full, not cleared");
    // The default bound, on the selector every runtime makes.
    let big = Selector::new(registry(&[fake(cuda_gemm("cuda.gemm.x"))]), Pins::default());
    assert_eq!(big.cache_capacity(), PLAN_CACHE_CAPACITY);
}

#[test]
fn a_hit_returns_the_same_plan_and_recently_used_plans_survive_eviction() {
    let h100 = cuda(0, 9, 0);
    let s = gemm_selector(256);
    let problems = gemm_problems(5_000);
    let (hot, cold) = problems.split_at(8);
    let auto = Policy::auto();
    let hot_plans: Vec<Arc<Plan>> = hot
        .iter()
        .map(|p| s.select(&h100, p, &auto).unwrap())
        .collect();
    // Thousands of one-off problems pass through the 256-plan cache; the hot ones, used in
    // between, keep their plans (the very same `Arc`s).
    let mut first_cold = None;
    for (i, p) in cold.iter().enumerate() {
        let plan = s.select(&h100, p, &auto).unwrap();
        assert_eq!(plan.problem(), p);
        first_cold.get_or_insert(plan);
        for (p, plan) in hot.iter().zip(&hot_plans) {
            let again = s.select(&h100, p, &auto).unwrap();
            assert!(Arc::ptr_eq(&again, plan), "hot plan {p} evicted after {i}");
        }
    }
    assert_eq!(s.cached_plans(), 256);
    // The first one-off problem's plan was evicted: selecting it again makes a new plan (for
    // the same kernel), which is then the cached one.
    let first_cold = first_cold.unwrap();
    let again = s.select(&h100, &cold[0], &auto).unwrap();
    assert!(!Arc::ptr_eq(&first_cold, &again));
    assert_eq!(again.kernel_name(), first_cold.kernel_name());
    assert!(Arc::ptr_eq(
        &again,
        &s.select(&h100, &cold[0], &auto).unwrap()
    ));
}

#[test]
fn a_five_thousand_problem_cycle_stays_cached() {
    // The workload of issue 13: 5,000 problems in turn through `Runtime::select`. After one
    // pass every select is a hit (the same plan as in the first pass).
    let r = registry(&[fake(cuda_gemm("cuda.gemm.only"))]);
    let rt = runtime(r, vec![cuda(0, 9, 0)]);
    let problems = gemm_problems(5_000);
    let auto = Policy::auto();
    let first: Vec<Arc<Plan>> = problems
        .iter()
        .map(|p| rt.select(GPU0, p, &auto).unwrap())
        .collect();
    for _ in 0..2 {
        for (p, plan) in problems.iter().zip(&first) {
            assert!(
                Arc::ptr_eq(&rt.select(GPU0, p, &auto).unwrap(), plan),
                "{p}"
            );
        }
    }
}

#[test]
fn concurrent_selects_on_overlapping_keys_stay_correct() {
    const THREADS: usize = 4;
    let h100 = cuda(0, 9, 0);
    let problems = gemm_problems(700);
    let policies = [Policy::auto(), Policy::auto().deterministic()];
    let want = |policy: &Policy| {
        if policy.deterministic {
            "cuda.gemm.det"
        } else {
            "cuda.gemm.fast"
        }
    };
    // 48 plans: every thread evicts under the others' feet. 4,096: no eviction, so threads
    // must share one plan per key.
    for capacity in [48, 4096] {
        let s = gemm_selector(capacity);
        let last: Vec<Vec<Arc<Plan>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (s, problems, policies, h100) = (&s, &problems, &policies, &h100);
                    scope.spawn(move || {
                        // Thread t selects problems t*100 .. t*100+400: each range overlaps
                        // the next thread's by 300.
                        let mine = &problems[t * 100..t * 100 + 400];
                        let mut last = Vec::new();
                        for round in 0..5 {
                            for p in mine {
                                for policy in policies {
                                    let plan = s.select(h100, p, policy).unwrap();
                                    assert_eq!(plan.problem(), p, "thread {t} round {round}");
                                    assert_eq!(plan.report().policy, *policy);
                                    assert_eq!(plan.kernel_name(), want(policy));
                                    if round == 4 && !policy.deterministic {
                                        last.push(plan);
                                    }
                                }
                            }
                            assert!(s.cached_plans() <= capacity);
                        }
                        last
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(s.cached_plans() <= capacity);
        if capacity == 4096 {
            assert_eq!(s.cached_plans(), 2 * 700);
            for t in 0..THREADS - 1 {
                for i in 0..300 {
                    assert!(
                        Arc::ptr_eq(&last[t][100 + i], &last[t + 1][i]),
                        "threads {t} and {} hold two plans for one key",
                        t + 1
                    );
                }
            }
        }
    }
}
