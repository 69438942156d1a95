//! `kernelyard`: the command line of the kernel registry.
//!
//! Each subcommand lives in its own module and returns the process's exit code:
//! 0 when all is well, 1 when `verify` found a failing case or a `bench` run failed (a launch,
//! an allocation), 2 for usage and selection errors
//! (unknown op, dtype, device or problem key; no kernel can be selected; a bad
//! `KERNELYARD_KERNELS`). Errors are printed with everything the library says about them,
//! never replaced by a shorter message.

mod bench;
mod doctor;
mod explain;
mod list;
mod output;
mod verify;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kernelyard::Runtime;

/// Exit code: a usage or selection error.
const EXIT_USAGE: u8 = 2;
/// Exit code: `verify` found at least one failing case, or a `bench` run failed.
const EXIT_FAILURES: u8 = 1;

/// kernelyard: a registry of GPU operator kernels that never falls back silently.
///
/// Every kernel that could run a problem, and every reason one cannot, is shown; nothing is
/// replaced by another kernel, backend or device behind your back.
///
/// Exit codes: 0 ok, 1 `verify` found failures or a `bench` run failed, 2 usage or selection
/// error.
#[derive(Parser)]
#[command(name = "kernelyard", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Report devices, backends (compiled in, available) and which kernels can run where.
    ///
    /// Lists every device found with its capabilities, every backend kernelyard knows with its
    /// state (not compiled in, unavailable with the reason, or available), the
    /// KERNELYARD_KERNELS pins, and per operator every registered kernel with, per present
    /// device of its kind, "yes" or every reason it cannot run a representative problem.
    Doctor(doctor::DoctorArgs),
    /// List the registered kernels and their metadata.
    List(list::ListArgs),
    /// Explain which kernel would be selected for a problem on a device, and why.
    ///
    /// Prints the selection report: every candidate kernel with its verdict (selected,
    /// runnable but ranked lower, not considered, or rejected with every reason). Exits 0 if
    /// a kernel is selected and 2 if none can be.
    #[command(
        after_help = "Run `kernelyard explain --help` for every operator's problem keys.",
        after_long_help = explain::keys_help()
    )]
    Explain(explain::ExplainArgs),
    /// Run the equivalence suite: every registered kernel against the reference backend.
    ///
    /// Progress (one line per case) goes to stderr, the summary to stdout. A case a kernel
    /// cannot run is counted as a skip, with its reasons. Exits 1 if any case fails.
    Verify(verify::VerifyArgs),
    /// Time a problem on a device: per kernel the median ms, TFLOP/s or TB/s, and the fraction
    /// of the device's measured copy bandwidth.
    ///
    /// Inputs are generated once and uploaded in enough copies to exceed four 50 MiB L2
    /// caches, rotated from run to run; each kernel gets warm-up runs, then every timed run is
    /// measured on its own (CUDA events on GPUs, the host clock on the CPU). Progress goes to
    /// stderr; the table, or with --json the JSON lines of `peers/torch_ops.py`'s shape, to
    /// stdout. Exits 2 if the kernel asked for cannot run the problem (with its reasons), 1
    /// if a run fails.
    #[command(
        after_help = "Example: kernelyard bench rms_norm --device cuda:0 --problem rows=16384,hidden=4096 --dtype bf16 --all --json\n\
                      Run `kernelyard explain --help` for every operator's problem keys."
    )]
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    kernelyard::link_backends();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Doctor(args) => doctor::run(args),
        Command::List(args) => list::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) if output::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            output::error(format!("error: {err:#}").trim_end());
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Every operator's name (`gemm, rms_norm, ...`), for the help of arguments that take one, so
/// it lists what the catalog has.
fn op_names() -> String {
    kernelyard::OpKind::names().join(", ")
}

/// Probes the backends, reading `KERNELYARD_KERNELS`.
fn runtime() -> anyhow::Result<Runtime> {
    Runtime::new().context("cannot start the kernelyard runtime")
}
