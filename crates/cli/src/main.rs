//! `kernelyard`: the command line of the kernel registry.
//!
//! Each subcommand lives in its own module and returns the process's exit code or an error
//! of a class ([`error::Class`]): 0 when all is well, 1 when `verify` found a failing case or a
//! `bench` run failed (a launch, an allocation), 2 for usage and selection errors (unknown op,
//! dtype, device, kernel or problem key; a bad problem; no kernel can be selected; a bad
//! `KERNELYARD_KERNELS`; a bench beyond its bounds). Errors are printed with everything the
//! library says about them, never replaced by a shorter message: on stderr, and with `--json`
//! also as one JSON object on stdout (`{"error": {"class", "message", "exit_code"}}`).

mod bench;
mod doctor;
mod error;
mod explain;
mod list;
mod output;
mod simulate;
mod target;
mod tune;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kernelyard::Runtime;

use error::{Class, CliError, ErrorJson};

/// kernelyard: a registry of GPU operator kernels that never falls back silently.
///
/// Every kernel that could run a problem, and every reason one cannot, is shown; nothing is
/// replaced by another kernel, backend or device behind your back.
///
/// Exit codes: 0 ok, 1 `verify` found failures or a `bench` run failed, 2 usage or selection
/// error (also a bad problem, a bad KERNELYARD_KERNELS, a bench beyond its bounds). With
/// --json, an error is also printed on stdout as {"error": {"class", "message", "exit_code"}}.
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
    ///
    /// Bounds, checked before anything is generated or allocated (beyond them: exit 2 with the
    /// reason): at most 1,000,000 timed runs and 1,000,000 warm-up runs; every size must fit
    /// in the address space; one set of inputs and outputs must fit in the device's memory;
    /// the inputs generated on the host (as f64 values and in their dtypes, plus one set on
    /// the CPU) must fit in the host's available memory (MemAvailable in /proc/meminfo on
    /// Linux; not checked where it cannot be read).
    #[command(
        after_help = "Example: kernelyard bench rms_norm --device cuda:0 --problem rows=16384,hidden=4096 --dtype bf16 --all --json\n\
                      Run `kernelyard explain --help` for every operator's problem keys."
    )]
    Bench(bench::BenchArgs),
    /// Tune a problem: verify every kernel that can run it against the reference, time the
    /// verified ones, and record the fastest in the tuning cache.
    ///
    /// A candidate that fails verification is reported with the failure and never chosen.
    /// The cache (--out, else KERNELYARD_TUNING_CACHE, else tuning.json beside the kernel
    /// cache) is written atomically after each problem; applications use it with
    /// KERNELYARD_TUNE=1 or `Policy::auto().tuned()`, and only where it was measured. Progress
    /// goes to stderr, a table per problem (or JSON lines with --json) to stdout. Exits 1 if a
    /// problem had no verified candidate.
    #[command(
        after_help = "Example: kernelyard tune softmax --device cuda:0 --problem rows=16384,cols=4096 --dtype bf16 --all-buckets
                      Run `kernelyard explain --help` for every operator's problem keys."
    )]
    Tune(tune::TuneArgs),
}

/// Logs through `tracing` to stderr, filtered by `RUST_LOG` (e.g. `RUST_LOG=kernelyard=debug`
/// for selection, `trace` for every launch); without it, warnings only (a kernel cache that is
/// not used, a refused capture). The libraries print nothing themselves.
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .try_init();
}

fn main() -> ExitCode {
    init_tracing();
    kernelyard::link_backends();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // The arguments did not parse, so `--json` is looked for among them as given.
            let json = std::env::args_os().skip(1).any(|a| a == "--json");
            return usage_error(&err, json);
        }
    };
    let (result, json) = match &cli.command {
        Command::Doctor(args) => (doctor::run(args), args.json),
        Command::List(args) => (list::run(args), args.json),
        Command::Explain(args) => (explain::run(args), args.json),
        Command::Verify(args) => (verify::run(args), args.json),
        Command::Bench(args) => (bench::run(args), args.json),
        Command::Tune(args) => (tune::run(args), args.json),
    };
    match result {
        Ok(code) => code,
        Err(err) if output::is_broken_pipe(&err.error) => ExitCode::SUCCESS,
        Err(err) => fail(&err, json),
    }
}

/// Prints `err` (stderr; with `json` also stdout) and returns its exit code.
fn fail(err: &CliError, json: bool) -> ExitCode {
    let report = err.json();
    if json {
        error::print_json_line(&report);
    }
    output::error(&format!("error: {}", report.message));
    ExitCode::from(report.exit_code)
}

/// A command line clap could not parse (exit 2, with `--json` also as JSON), or a request for
/// help or the version (printed, exit 0).
fn usage_error(err: &clap::Error, json: bool) -> ExitCode {
    if !err.use_stderr() {
        // `--help`, `--version`: not errors.
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    if json {
        let message = err.render().to_string();
        let message = message.trim_end();
        let message = message.strip_prefix("error: ").unwrap_or(message);
        error::print_json_line(&ErrorJson::new(Class::Usage, message.to_string()));
    }
    // clap's own text, colored as clap colors it.
    let _ = err.print();
    ExitCode::from(Class::Usage.exit_code())
}

/// Every operator's name (`gemm, rms_norm, ...`), for the help of arguments that take one, so
/// it lists what the catalog has.
fn op_names() -> String {
    kernelyard::OpKind::names().join(", ")
}

/// Probes the backends, reading `KERNELYARD_KERNELS` (a bad value is a [`Class::Pins`] error).
fn runtime() -> error::Result<Runtime> {
    Runtime::new().map_err(error::runtime)
}
