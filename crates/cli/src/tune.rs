//! `kernelyard tune`: measure every kernel that can run a problem, admit only the verified
//! ones, and record the fastest in the tuning cache (`kernelyard_suite::tune`).
//!
//! The cache is `--out FILE`, else `KERNELYARD_TUNING_CACHE`, else `tuning.json` in the kernel
//! cache's directory; it is written atomically after each problem, so an interrupted run keeps
//! what it finished. A cache tuned here can be shipped: applications read it with
//! `KERNELYARD_TUNE=1` and `KERNELYARD_TUNING_CACHE=FILE`, and use an entry only where it was
//! measured (device, driver, compiler, kernel versions).

use std::process::ExitCode;

use clap::Args;
use kernelyard::tune::{TuningCache, TuningEntry};
use kernelyard::Problem;
use kernelyard_suite::bench::{DEFAULT_ITERS, DEFAULT_WARMUP};
use kernelyard_suite::tune::{tune, TuneFailure, TuneOptions, TuneReport};
use serde_json::{json, Value};

use crate::error::{self, Class, CliError};

/// Arguments of `kernelyard tune`.
#[derive(Args)]
pub struct TuneArgs {
    #[command(flatten)]
    target: crate::target::Target,
    /// Tune for deterministic policies: only kernels that declare determinism are candidates,
    /// and the key leaves out the batch sizes.
    #[arg(long)]
    deterministic: bool,
    /// Tune for batch-invariant policies: only batch-invariant kernels are candidates, and the
    /// key leaves out the batch sizes (the choice cannot depend on them).
    #[arg(long)]
    batch_invariant: bool,
    /// Also tune every power-of-two batch size below the problem's (1, 2, 4, ...): one entry
    /// per bucket of the batch fields (m, rows, tokens, batch). Ignored under
    /// --deterministic / --batch-invariant, whose keys have no batch fields.
    #[arg(long)]
    all_buckets: bool,
    /// The cache file to update (default: KERNELYARD_TUNING_CACHE, else tuning.json in the
    /// kernel cache's directory).
    #[arg(long, value_name = "FILE")]
    out: Option<std::path::PathBuf>,
    /// Timed runs per candidate (the median is kept).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_ITERS)]
    iters: usize,
    /// Untimed warm-up runs per candidate.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WARMUP)]
    warmup: usize,
    /// Print one JSON object per problem tuned (key, measurements, choice, seconds) instead of
    /// tables. Progress still goes to stderr.
    #[arg(long)]
    pub json: bool,
}

/// Runs `kernelyard tune`.
pub fn run(args: &TuneArgs) -> error::Result<ExitCode> {
    let problem = args.target.problem()?;
    if args.iters == 0 {
        return Err(CliError::new(
            Class::Usage,
            anyhow::anyhow!("--iters must be at least 1"),
        ));
    }
    let path = match args.out.clone().or_else(TuningCache::default_path) {
        Some(p) => p,
        None => {
            return Err(CliError::new(
                Class::Usage,
                anyhow::anyhow!(
                    "no tuning cache path: pass --out FILE or set KERNELYARD_TUNING_CACHE"
                ),
            ))
        }
    };
    let mut cache = TuningCache::open(&path).map_err(|e| CliError::new(Class::Usage, e))?;
    let constrained = args.deterministic || args.batch_invariant;
    let problems = if args.all_buckets && !constrained {
        batch_buckets(&problem)
    } else {
        vec![problem]
    };
    let rt = crate::runtime()?;
    let mut out = String::new();
    let mut without_choice = 0;
    for (i, p) in problems.iter().enumerate() {
        crate::output::error(&format!("== problem {}/{}: {p}", i + 1, problems.len()));
        let opts = TuneOptions {
            deterministic: args.deterministic,
            batch_invariant: args.batch_invariant,
            warmup: args.warmup,
            iters: args.iters,
            ..TuneOptions::new(args.target.device, p.clone())
        };
        let report = tune(&rt, &opts, &mut |line| crate::output::error(line)).map_err(failure)?;
        match &report.entry {
            Some(entry) => {
                cache.insert(entry.clone());
                cache
                    .save_to(&path)
                    .map_err(|e| CliError::new(Class::Output, e))?;
            }
            None => without_choice += 1,
        }
        if args.json {
            out.push_str(&json_line(&report).to_string());
            out.push('\n');
        } else {
            out.push_str(&table(&report));
        }
    }
    if !args.json {
        out.push_str(&format!(
            "tuning cache: {} ({} entries)\n",
            path.display(),
            cache.entries().count()
        ));
    }
    crate::output::print(&out)?;
    if without_choice > 0 {
        crate::output::error(&format!(
            "error: {without_choice} problem(s) had no verified candidate: nothing recorded for them"
        ));
        return Ok(ExitCode::from(Class::Run.exit_code()));
    }
    Ok(ExitCode::SUCCESS)
}

fn failure(e: TuneFailure) -> CliError {
    let class = match &e {
        TuneFailure::Select(s) => Class::of_select(s),
        TuneFailure::Bench(b) => Class::of_bench(b),
        TuneFailure::Key(_) => Class::Problem,
    };
    CliError::new(class, e)
}

/// `problem` with its batch fields set to each power of two below their value, then the value
/// itself; problems that do not pass the operator's checks are left out.
fn batch_buckets(problem: &Problem) -> Vec<Problem> {
    let fields = problem.op().batch_fields();
    let Ok(Value::Object(map)) = serde_json::to_value(problem) else {
        return vec![problem.clone()];
    };
    let top = fields
        .iter()
        .filter_map(|f| map.get(*f).and_then(Value::as_u64))
        .max()
        .unwrap_or(1);
    let mut sizes: Vec<u64> = (0..64)
        .map(|b| 1u64 << b)
        .take_while(|&v| v < top)
        .collect();
    sizes.push(top);
    let mut out = Vec::new();
    for v in sizes {
        let mut m = map.clone();
        for f in fields {
            if m.get(*f).is_some_and(Value::is_u64) {
                m.insert((*f).to_string(), Value::from(v));
            }
        }
        if let Ok(p) = serde_json::from_value::<Problem>(Value::Object(m)) {
            if p.check().is_ok() {
                out.push(p);
            }
        }
    }
    out
}

fn table(r: &TuneReport) -> String {
    let mut t = format!(
        "{}{} ({:.1} s)\n",
        r.key.label(),
        if r.memoised { ", tuned earlier" } else { "" },
        r.seconds
    );
    let chosen = r.entry.as_ref().map(|e| e.choice.clone());
    let width = r
        .measurements
        .iter()
        .map(|m| m.candidate.to_string().len())
        .max()
        .unwrap_or(9)
        .max(9);
    t.push_str(&format!(
        "  {:width$}  {:>10}  {:8}  chosen\n",
        "candidate", "ms", "verified"
    ));
    for m in &r.measurements {
        let ms = m.ms.map_or("-".to_string(), |ms| format!("{ms:.4}"));
        let verified = if m.verified { "yes" } else { "no" };
        let mark = if chosen.as_ref() == Some(&m.candidate) {
            "*"
        } else {
            ""
        };
        t.push_str(&format!(
            "  {:width$}  {ms:>10}  {verified:8}  {mark}\n",
            m.candidate.to_string()
        ));
        if let Some(why) = &m.rejected {
            t.push_str(&format!("      rejected: {why}\n"));
        }
    }
    if chosen.is_none() {
        t.push_str("  no candidate was verified: nothing recorded\n");
    }
    if let Some(line) = gain(r) {
        t.push_str(&format!("  {line}\n"));
    }
    t
}

/// The tuned choice against what selection picks without tuning: `untuned X (ms) -> tuned Y
/// (ms): 1.23x`.
fn gain(r: &TuneReport) -> Option<String> {
    let untuned = r.untuned.as_ref()?;
    let tuned = r.entry.as_ref()?.choice.to_string();
    let ms = |label: &str| {
        r.measurements
            .iter()
            .find(|m| m.candidate.to_string() == label)
            .and_then(|m| m.ms)
    };
    let (u, t) = (ms(untuned)?, ms(&tuned)?);
    Some(format!(
        "untuned {untuned} ({u:.4} ms) -> tuned {tuned} ({t:.4} ms): {:.2}x",
        u / t
    ))
}

fn json_line(r: &TuneReport) -> Value {
    json!({
        "key": r.key.label(),
        "seconds": r.seconds,
        "memoised": r.memoised,
        "choice": r.entry.as_ref().map(|e: &TuningEntry| e.choice.to_string()),
        "untuned": r.untuned,
        "measurements": r.measurements,
    })
}
