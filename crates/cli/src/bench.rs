//! `kernelyard bench`: time one problem on one device, for the auto-selected kernel, a named
//! one, or every kernel registered for the device.
//!
//! The benchmark is `kernelyard_suite::bench` (inputs from the equivalence suite's drivers,
//! rotated across enough copies to defeat the L2 cache, per-run device timings, the medians
//! and the device's copy bandwidth); this module parses the arguments, prints progress to
//! stderr and the table or the JSON lines to stdout, and picks the exit code.

use std::process::ExitCode;

use clap::Args;
use kernelyard_suite::bench::{DEFAULT_ITERS, DEFAULT_WARMUP, MAX_LAUNCHES, MAX_RUNS};
use kernelyard_suite::{bench, BenchOptions, BenchScalars, KernelChoice};

use crate::error::{self, Class, CliError};

/// Arguments of `kernelyard bench`.
#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    target: crate::target::Target,
    /// Time exactly this kernel; if it cannot run the problem, exit 2 with its reasons.
    /// Default: the kernel `explain` would select.
    #[arg(long, value_name = "NAME", conflicts_with = "all")]
    kernel: Option<String>,
    /// Time every kernel registered for the device's kind; one that cannot run the problem
    /// is listed as skipped with its reasons.
    #[arg(long)]
    all: bool,
    // Timed runs per kernel (1 to MAX_RUNS); the help states the bound.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_ITERS,
          value_parser = at_least_one,
          help = format!("Timed runs per kernel, 1 to {MAX_RUNS}; the median is reported, with \
                          the fastest and slowest"))]
    iters: usize,
    // Untimed warm-up runs per kernel (0 to MAX_RUNS).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WARMUP,
          help = format!("Untimed warm-up runs per kernel, 0 to {MAX_RUNS}"))]
    warmup: usize,
    // Launches per timed run (1 to MAX_LAUNCHES); the help states the bound.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = at_least_one,
          help = format!("Launches per timed run, 1 to {MAX_LAUNCHES}: each run times N \
                          back-to-back launches (each on the next input set) and reports the \
                          time per launch. 1 (the default, as torch_ops.py times) includes the \
                          launch latency in every run; more hide it, as a stream of kernels or \
                          a CUDA graph does"))]
    launches: usize,
    // The op's scalars; the help lists every operator's (`OpKind::scalars`).
    #[arg(long, value_name = "K=V,...", help = scalars_help())]
    scalars: Option<String>,
    /// Print JSON lines instead of a table: first `{"peer": "kernelyard", "version",
    /// "device", "copy_tbps"}`, then one row per kernel in the shape of
    /// `peers/torch_ops.py`'s (`op`, `shape`, `dtype`, `impl`, `ms`, `tflops` or `tbps` and
    /// `copy_fraction`, ...). Progress still goes to stderr. An error is one line
    /// `{"error": {"class", "message", "exit_code"}}`.
    #[arg(long)]
    pub json: bool,
}

/// Runs `kernelyard bench`.
pub fn run(args: &BenchArgs) -> error::Result<ExitCode> {
    let problem = args.target.problem()?;
    let scalars = BenchScalars::parse(args.scalars.as_deref().unwrap_or(""))
        .map_err(|e| CliError::new(Class::Problem, anyhow::anyhow!("bad --scalars: {e}")))?;
    let rt = crate::runtime()?;
    let opts = BenchOptions {
        kernels: match (&args.kernel, args.all) {
            (Some(name), _) => KernelChoice::Named(name.clone()),
            (None, true) => KernelChoice::All,
            (None, false) => KernelChoice::Auto,
        },
        warmup: args.warmup,
        iters: args.iters,
        launches: args.launches,
        scalars,
        ..BenchOptions::new(args.target.device, problem)
    };
    let report = bench(&rt, &opts, &mut |line| crate::output::error(line))
        .map_err(|err| CliError::new(Class::of_bench(&err), err))?;
    if args.json {
        let mut text = String::new();
        for line in report.json_lines() {
            text.push_str(&line);
            text.push('\n');
        }
        crate::output::print(&text)?;
    } else {
        crate::output::print(&report.to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The help of `--scalars`: every scalar name of the catalog, as `BenchScalars::parse` takes
/// them.
fn scalars_help() -> String {
    format!(
        "The op's scalars as `key=value,...` ({}); defaults as in the equivalence suite",
        BenchScalars::names().join(", ")
    )
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}` is not a whole number of at least 1")),
    }
}
