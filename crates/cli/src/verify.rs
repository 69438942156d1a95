//! `kernelyard verify`: the equivalence suite of `kernelyard-suite`, every registered kernel
//! against the reference backend on the cases in its data files.
//!
//! The suite decides pass, fail and skip; this module only names the scope, prints progress
//! and the summary, and turns failures into exit code 1. A case a kernel cannot run is a skip
//! with its reasons and is counted as one, never as a pass.

use std::process::ExitCode;

use clap::Args;
use kernelyard::{DeviceId, OpKind};
use kernelyard_suite::{
    seed_from_env, CaseResult, Outcome, SuiteOptions, SuiteReport, DEFAULT_SEED,
};
use serde::Serialize;

use crate::EXIT_FAILURES;

/// Arguments of `kernelyard verify`.
#[derive(Args)]
pub struct VerifyArgs {
    // Only cases of this operator; the help lists the catalog's.
    #[arg(long, value_name = "OP",
          help = format!(
              "Only cases of this operator ({}). Default: every operator.",
              crate::op_names()
          ))]
    op: Option<OpKind>,
    /// Only kernels on this device (`cpu`, `cuda:N`, `rocm:N`); it must be present. Default:
    /// every device present.
    #[arg(long, value_name = "DEV")]
    device: Option<DeviceId>,
    /// Seed of the generated inputs (decimal or 0x hex); the same seed gives the same inputs
    /// on every device. Default: $KERNELYARD_SEED if set, else the suite's fixed default seed.
    #[arg(long, value_name = "S", value_parser = parse_seed)]
    seed: Option<u64>,
    /// Print the summary as one JSON object (counts and every result) instead of a table.
    /// Progress still goes to stderr.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct VerifyJson<'a> {
    passed: usize,
    failed: usize,
    skipped: usize,
    #[serde(flatten)]
    report: &'a SuiteReport,
}

/// Runs `kernelyard verify`.
pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let rt = crate::runtime()?;
    if let Some(device) = args.device {
        // A device that is not present is an error naming why, not an empty (passing) run.
        rt.capabilities(device)?;
    }
    let opts = SuiteOptions {
        op: args.op,
        device: args.device,
        seed: seed(args)?,
    };
    let mut done = 0usize;
    let report = kernelyard_suite::run_suite(&rt, &opts, &mut |case: &CaseResult| {
        done += 1;
        crate::output::error(&progress_line(done, case));
    });
    if args.json {
        crate::output::print_json(&VerifyJson {
            passed: report.passed(),
            failed: report.failed(),
            skipped: report.skipped(),
            report: &report,
        })?;
    } else {
        crate::output::print(&report.to_string())?;
    }
    Ok(if report.failed() > 0 {
        ExitCode::from(EXIT_FAILURES)
    } else {
        ExitCode::SUCCESS
    })
}

/// `[12] reference.gemm bf16 square_17 on cpu ... pass (rel_l2 3.1e-4, max_abs 2.0e-3)`.
fn progress_line(n: usize, case: &CaseResult) -> String {
    let outcome = match &case.outcome {
        Outcome::Pass {
            rel_l2, max_abs, ..
        } => format!("pass (rel_l2 {rel_l2:.1e}, max_abs {max_abs:.1e})"),
        Outcome::Fail { why } => format!("FAIL: {why}"),
        Outcome::Skip { reasons } => format!("skip ({})", reasons.join("; ")),
    };
    format!(
        "[{n}] {} {} {} on {} ... {outcome}",
        case.kernel, case.dtype, case.case, case.device
    )
}

fn parse_seed(s: &str) -> Result<u64, String> {
    let t = s.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse(),
    }
    .map_err(|_| format!("`{s}` is not a decimal or 0x-hex u64"))
}

/// `--seed`, else `KERNELYARD_SEED`, else the suite's default.
fn seed(args: &VerifyArgs) -> anyhow::Result<u64> {
    if let Some(seed) = args.seed {
        return Ok(seed);
    }
    let from_env = seed_from_env().map_err(anyhow::Error::msg)?;
    Ok(from_env.unwrap_or(DEFAULT_SEED))
}
