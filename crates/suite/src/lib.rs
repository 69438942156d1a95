//! kernelyard-suite: the cross-backend equivalence suite (every registered kernel, on every
//! present device, against the reference backend's `f64` oracle) and the benchmark harness
//! behind the CLI's `verify` and `bench`.
//!
//! # Who is responsible for what
//! - **The case files** (`crates/suite/cases/<op>.json`, compiled in with `include_str!`) say
//!   what to run: shapes in the CLI's `--problem` format, dtypes and the op's scalars
//!   ([`cases`]).
//! - **The drivers** (one per op, private) generate fresh random inputs from a seed, build the
//!   call's arguments over device buffers, and ask the oracle (`kernelyard_reference::ops`).
//!   One list (`SUITE` in `src/ops/mod.rs`) names each op's driver and case file; a unit test
//!   fails for an op of [`OpKind::ALL`](kernelyard::OpKind::ALL) that it lacks. What an op's
//!   descriptor states (scalars and their defaults, work, shape, example) is read from it,
//!   never repeated here; the suite keeps only its own knowledge (input generation, the
//!   tolerance table, case knobs).
//! - **The runner** ([`run_suite`]) selects each kernel by name, runs it with NaN-poisoned
//!   outputs, compares with the oracle under the [tolerance contract](mod@tolerance) (mirrored in
//!   `docs/TOLERANCES.md`), and checks the determinism and batch invariance the kernel
//!   declares. A kernel that cannot run a case is a skip with its reasons, never a pass; a
//!   listed known difference ([`known`]) is a skip with its comment.
//! - **The report** ([`SuiteReport`]) counts, prints ([`summary_table`]) and serializes.
//! - **The benchmark** ([`bench()`], `kernelyard bench`) reuses the drivers to time one problem
//!   per kernel on one device, in the JSON-lines shape of the torch peer ([`mod@bench`]).
//!
//! The library never panics on a kernel's behalf: launch and allocation errors, and kernels
//! that panic, are failures of their case.
//!
//! # Example
//! ```
//! use kernelyard::{OpKind, Runtime};
//! use kernelyard_suite::{run_suite, SuiteOptions, DEFAULT_SEED};
//!
//! kernelyard_reference::link();
//! let rt = Runtime::builder().pins("").build().unwrap();
//! let opts = SuiteOptions { op: Some(OpKind::SelectiveStateUpdate), device: None, seed: DEFAULT_SEED };
//! let report = run_suite(&rt, &opts, &mut |_| {});
//! assert_eq!(report.failed(), 0, "{report}");
//! assert!(report.passed() > 0);
//! ```
#![deny(missing_docs)]

pub mod bench;
pub mod cases;
mod compare;
mod data;
mod exec;
pub mod known;
mod ops;
pub mod report;
pub mod rng;
pub mod runner;
pub mod tolerance;
pub mod tune;

pub use bench::{
    bench, BenchError, BenchOptions, BenchReport, BenchRow, BenchScalars, KernelChoice, Refused,
    Skipped, Work,
};
pub use cases::{cases_for, Case};
pub use known::{KnownDifference, KNOWN_DIFFERENCES};
pub use report::{summary_table, CaseResult, Outcome, SuiteReport, Tally};
pub use runner::{
    kernels_without_pass, run_suite, seed_from_env, ProblemVerifier, SuiteOptions, DEFAULT_SEED,
    SEED_ENV,
};
pub use tolerance::{markdown_table, tolerance, Tolerance, TOLERANCES};
