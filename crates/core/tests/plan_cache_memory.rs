//! Memory per cached plan, measured with a counting allocator (its own test binary, so no
//! other test allocates meanwhile). The number is quoted at `select::PLAN_CACHE_CAPACITY` and
//! in docs/BENCHMARKS.md: a full default cache must stay within the bound asserted here.
//!
//! Setup: the selection benchmark's simulated H100 and four fake attention kernels (so a
//! report of four candidates), 20,000 distinct attention problems through a default selector,
//! which leaves its cache full (`PLAN_CACHE_CAPACITY` plans; the evicted ones are freed). Counted: everything the cache holds per plan (its slot with the key, the shard map's share,
//! the `Arc<Plan>` with its capabilities and report).

#[path = "select/fakes.rs"]
#[allow(dead_code)] // this test uses a few of the fakes
mod fakes;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use kernelyard_core::select::PLAN_CACHE_CAPACITY;
use kernelyard_core::{DType, OpKind, Pins, Policy, Selector};

use fakes::{attention_set, cuda, problem, registry};

/// Net bytes allocated through the global allocator.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator; the counter has no effect
// on the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes through
        // `alloc` or `realloc` above).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as for `dealloc`; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The most bytes one cached plan may take (documented at `PLAN_CACHE_CAPACITY`).
const BOUND_PER_PLAN: isize = 2048;

#[test]
fn a_cached_plan_takes_under_two_kib() {
    let r = registry(&attention_set());
    const PROBLEMS: usize = 20_000;
    let h100 = cuda(0, 9, 0);
    let auto = Policy::auto();
    let problems: Vec<_> = (1..=PROBLEMS)
        .map(|seq_q| {
            problem(
                OpKind::Attention,
                &format!("batch=4,seq_q={seq_q},heads_q=32,heads_kv=8,head_dim=128,causal=1"),
                DType::BF16,
            )
        })
        .collect();
    let selector = Selector::new(r, Pins::default());

    let before = LIVE.load(Ordering::Relaxed);
    for p in &problems {
        let plan = selector.select(&h100, p, &auto).unwrap();
        assert_eq!(plan.report().candidates.len(), 4);
    }
    let after = LIVE.load(Ordering::Relaxed);
    assert_eq!(selector.cached_plans(), PLAN_CACHE_CAPACITY, "full");

    let per_plan = (after - before) / PLAN_CACHE_CAPACITY as isize;
    println!(
        "{per_plan} bytes per cached plan; a full default cache of {PLAN_CACHE_CAPACITY} plans: \
         {:.1} MiB",
        (after - before) as f64 / (1 << 20) as f64
    );
    assert!(
        per_plan > 0 && per_plan <= BOUND_PER_PLAN,
        "{per_plan} bytes per plan"
    );
    drop(selector);
    // Dropping the selector frees what the cache held.
    assert!(LIVE.load(Ordering::Relaxed) <= before);
}
