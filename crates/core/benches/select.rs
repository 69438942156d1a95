//! Cost of choosing a kernel. Target: a cached select through `Runtime::select` costs under
//! 100 ns, so selecting on every call (instead of holding a plan) is cheap next to a kernel
//! launch (~2-6 us eager, ~1 us in a CUDA graph).
//!
//! Setup: a simulated H100 (and two other devices), four fake attention kernels shaped like a
//! real set (an sm_90a kernel, an sm_80+ kernel with a shared-memory need, a split-KV kernel
//! with a heuristic score, a deterministic fallback) and two gemm kernels. Benchmarks:
//! - `select/cached/*`: `Runtime::select` on a key already in the cache, with `Policy::auto()`
//!   and with a named kernel (a policy holding a `String`);
//! - `select/uncached/*`: `Selector::select_uncached`, the full evaluation with its report;
//! - `select/cycle/{4000,5000}`: `Runtime::select` cycling through 4,000 or 5,000 distinct
//!   attention problems (one select per iteration, the next key each time), as a process with
//!   many shapes would; the throughput line is selects per second. Until issue 13 the cache was
//!   cleared whole at 4,096 plans, so the 5,000-key cycle missed on every select.
//!
//! Run: `cargo bench -p kernelyard-core --bench select -- --warm-up-time 1 --measurement-time 3`.
// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use kernelyard_core::{
    DType, KernelMeta, OpKind, Pins, Policy, Problem, Registry, Runtime, Selector,
};

#[path = "../tests/select/fakes.rs"]
#[allow(dead_code)] // the benchmark uses a few of the tests' fakes
mod fakes;

use fakes::{attention_set, cpu, cuda, cuda_gemm, fake, problem, registry, GPU0};

fn kernels() -> &'static Registry {
    let mut kernels = attention_set();
    kernels.extend([
        fake(KernelMeta {
            priority: 10,
            ..cuda_gemm("cuda.gemm.tiled")
        }),
        fake(KernelMeta {
            deterministic: true,
            batch_invariant: true,
            ..cuda_gemm("cuda.gemm.invariant")
        }),
    ]);
    registry(&kernels)
}

fn attention_problem() -> Problem {
    problem(
        OpKind::Attention,
        "batch=4,seq_q=4096,heads_q=32,heads_kv=8,head_dim=128,causal=1",
        DType::BF16,
    )
}

fn bench_select(c: &mut Criterion) {
    let r = kernels();
    let rt = Runtime::builder()
        .registry(r)
        .pins("")
        .no_probe()
        .simulated_device(cpu())
        .simulated_device(cuda(0, 9, 0))
        .simulated_device(cuda(1, 12, 0))
        .build()
        .expect("runtime builds");
    let attention = attention_problem();
    let gemm = problem(OpKind::Gemm, "m=4096,n=4096,k=4096", DType::BF16);
    let auto = Policy::auto();
    let named = Policy::kernel("cuda.gemm.invariant").batch_invariant();
    // Fill the cache with these keys and a few others, as a process would.
    for device in [GPU0, kernelyard_core::DeviceId::cuda(1)] {
        for p in [&attention, &gemm] {
            for policy in [&auto, &Policy::auto().deterministic(), &named] {
                let _ = rt.select(device, p, policy);
            }
        }
    }
    assert_eq!(
        rt.select(GPU0, &attention, &auto).unwrap().kernel_name(),
        "cuda.attention.sm90a"
    );

    c.bench_function("select/cached/attention_auto", |b| {
        b.iter(|| rt.select(black_box(GPU0), black_box(&attention), black_box(&auto)))
    });
    c.bench_function("select/cached/gemm_named_kernel", |b| {
        b.iter(|| rt.select(black_box(GPU0), black_box(&gemm), black_box(&named)))
    });

    let selector = Selector::new(r, Pins::default());
    let h100 = cuda(0, 9, 0);
    c.bench_function("select/uncached/attention_auto", |b| {
        b.iter(|| {
            selector.select_uncached(black_box(&h100), black_box(&attention), black_box(&auto))
        })
    });
    c.bench_function("select/uncached/gemm_named_kernel", |b| {
        b.iter(|| selector.select_uncached(black_box(&h100), black_box(&gemm), black_box(&named)))
    });

    let mut cycle = c.benchmark_group("select/cycle");
    cycle.throughput(Throughput::Elements(1));
    for keys in [4000, 5000] {
        // Distinct attention problems (seq_q = 1..=keys), each selected once before timing.
        let problems: Vec<Problem> = (1..=keys)
            .map(|seq_q| {
                problem(
                    OpKind::Attention,
                    &format!("batch=4,seq_q={seq_q},heads_q=32,heads_kv=8,head_dim=128,causal=1"),
                    DType::BF16,
                )
            })
            .collect();
        for p in &problems {
            rt.select(GPU0, p, &auto).expect("selects");
        }
        let mut next = 0;
        cycle.bench_function(keys.to_string(), |b| {
            b.iter(|| {
                let p = &problems[next];
                next = if next + 1 == problems.len() {
                    0
                } else {
                    next + 1
                };
                rt.select(black_box(GPU0), black_box(p), black_box(&auto))
            })
        });
    }
    cycle.finish();
}

criterion_group!(benches, bench_select);
criterion_main!(benches);
