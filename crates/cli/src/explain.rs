//! `kernelyard explain`: which kernel is selected for a problem on a device, and why.
//!
//! The problem is built from `--problem k=v,...` by core (`Params::parse`,
//! `Problem::from_params`), which rejects unknown and malformed keys with the operator's key
//! list; selection is `Runtime::select`, the same call applications make, so the report is
//! the one they would get. With `--simulate NAME` the device is a simulated one instead
//! ([`crate::simulate`]): the text starts with a `SIMULATED device ...` line and the JSON has
//! a `"simulated"` object.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{ArgGroup, Args};
use kernelyard::ops::params::ParamKey;
use kernelyard::{
    DType, DeviceId, OpKind, Params, Policy, Problem, SelectError, SelectionReport, PIN_ENV,
};
use serde::Serialize;

use crate::error::{self, Class, CliError, ErrorJson};
use crate::simulate::{Simulated, SimulatedJson};

/// Arguments of `kernelyard explain`.
#[derive(Args)]
// Exactly one device: a probed one (--device) or a simulated one (--simulate).
#[command(group(ArgGroup::new("target").required(true).args(["device", "simulate"])))]
pub struct ExplainArgs {
    // The operator; the help lists the catalog's.
    #[arg(value_name = "OP", help = format!("The operator ({})", crate::op_names()))]
    op: OpKind,
    /// The device to select for: `cpu`, `cuda:N` or `rocm:N`. There is no default device
    /// (give --device or --simulate).
    #[arg(long, value_name = "DEV")]
    device: Option<DeviceId>,
    // A simulated device instead of --device; the help lists the presets.
    #[arg(
        long,
        value_name = "NAME",
        value_parser = crate::simulate::parse,
        help = crate::simulate::help()
    )]
    simulate: Option<Simulated>,
    /// The problem's shape and flags as `key=value,...`; the keys per operator are listed
    /// below (`--help`). Keys with a default may be left out.
    #[arg(long, value_name = "K=V,...")]
    problem: String,
    /// The primary dtype (of the main input): f32, f16, bf16, i32, i64, f8e4m3, f8e5m2 or
    /// f4e2m1x2 (FP4 pairs; scaled_gemm with scale_a=nvfp4 or mxfp4).
    #[arg(long, value_name = "T")]
    dtype: DType,
    /// Select exactly this kernel (e.g. `reference.gemm`); if it cannot run, the answer is an
    /// error with its reasons, never another kernel.
    #[arg(long, value_name = "NAME", conflicts_with = "backend")]
    kernel: Option<String>,
    /// Consider only kernels of this backend (reference, cuda, rocm).
    #[arg(long, value_name = "NAME")]
    backend: Option<String>,
    /// Require a kernel that declares bitwise run-to-run determinism.
    #[arg(long)]
    deterministic: bool,
    /// Require a kernel that declares batch invariance (a row's result does not depend on the
    /// batch it rides in); implies --deterministic.
    #[arg(long)]
    batch_invariant: bool,
    /// Prefer the tuning cache's measured choice (KERNELYARD_TUNING_CACHE, else tuning.json
    /// beside the kernel cache), as `Policy::auto().tuned()` does; the report says what the
    /// cache held (no entry, an entry measured elsewhere and why, or the measured times).
    #[arg(long)]
    tuned: bool,
    /// Print one JSON object `{"selected", "error", "report"}` instead of text; `error` is
    /// null, or `{"class", "message", "exit_code"}` (also for errors before selection). With
    /// --simulate it also has `"simulated": {"name", "device", "description", "capabilities"}`.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct ExplainJson<'a> {
    selected: Option<&'static str>,
    error: Option<ErrorJson>,
    report: Option<&'a SelectionReport>,
    /// Present with `--simulate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    simulated: Option<SimulatedJson<'a>>,
}

/// Runs `kernelyard explain`.
pub fn run(args: &ExplainArgs) -> error::Result<ExitCode> {
    let params = Params::parse(args.op, &args.problem).map_err(error::problem)?;
    let problem = Problem::from_params(args.op, &params, args.dtype).map_err(error::problem)?;
    let policy = policy(args);
    let (rt, device) = match (&args.simulate, args.device) {
        (Some(sim), _) => {
            let rt = crate::simulate::builder(sim, None)
                .build()
                .map_err(error::runtime)?;
            if !args.json {
                crate::output::print(&crate::simulate::banner(sim))?;
            }
            (rt, sim.caps.device)
        }
        (None, Some(device)) if args.tuned => (
            kernelyard::Runtime::builder()
                .tuning_from_default_path()
                .build()
                .map_err(error::runtime)?,
            device,
        ),
        (None, Some(device)) => (crate::runtime()?, device),
        // clap requires one of the two.
        (None, None) => {
            return Err(CliError::new(
                Class::Usage,
                anyhow::anyhow!("name the device with --device DEV or --simulate NAME"),
            ))
        }
    };
    let simulated = || args.simulate.as_ref().map(SimulatedJson::new);
    match rt.select(device, &problem, &policy) {
        Ok(plan) => {
            let report = plan.report();
            if args.json {
                crate::output::print_json(&ExplainJson {
                    selected: Some(plan.kernel_name()),
                    error: None,
                    report: Some(report),
                    simulated: simulated(),
                })?;
            } else {
                crate::output::print(&format!("selected {}\n{report}", plan.kernel_name()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) if args.json => {
            let report = report_of(&err);
            let error = CliError::select(err.clone()).json();
            let (code, message) = (error.exit_code, format!("error: {}", error.message));
            crate::output::print_json(&ExplainJson {
                selected: None,
                error: Some(error),
                report,
                simulated: simulated(),
            })?;
            crate::output::error(&message);
            Ok(ExitCode::from(code))
        }
        Err(err) => Err(CliError::select(err)),
    }
}

fn policy(args: &ExplainArgs) -> Policy {
    let mut policy = match (&args.kernel, &args.backend) {
        (Some(kernel), _) => Policy::kernel(kernel.as_str()),
        (None, Some(backend)) => Policy::backend(backend.as_str()),
        (None, None) => Policy::auto(),
    };
    if args.deterministic {
        policy = policy.deterministic();
    }
    if args.batch_invariant {
        policy = policy.batch_invariant();
    }
    if args.tuned {
        policy = policy.tuned();
    }
    policy
}

/// The selection report a [`SelectError`] carries, if any.
fn report_of(err: &SelectError) -> Option<&SelectionReport> {
    match err {
        SelectError::AllRejected { report } | SelectError::KernelRejected { report, .. } => {
            Some(report)
        }
        _ => None,
    }
}

/// The `explain --help` text after the options: every operator's problem keys, generated
/// from the catalog so it cannot drift from what `--problem` accepts.
pub fn keys_help() -> String {
    let mut text = String::from("Problem keys (--problem key=value,...), per operator:\n");
    for op in OpKind::ALL {
        let _ = writeln!(text, "\n  {op}");
        write_keys(&mut text, op.params());
    }
    let _ = write!(
        text,
        "\nExamples:\n  \
         kernelyard explain rms_norm --device cpu --problem rows=4,hidden=4096 --dtype bf16\n  \
         kernelyard explain gemm --device cuda:0 --problem m=128,n=256,k=64 --dtype bf16 --deterministic\n  \
         kernelyard explain softmax --device cpu --problem rows=8,cols=1000 --dtype f32 --kernel reference.softmax --json\n  \
         kernelyard explain attention --simulate a100 --problem seq_q=1024,heads_q=16,head_dim=128 --dtype bf16\n\n\
         {PIN_ENV}=op=kernel,... pins a kernel per operator (and device kind); explain shows the pin.\n"
    );
    text
}

fn write_keys(text: &mut String, keys: &[ParamKey]) {
    let width = keys.iter().map(|k| k.key.len()).max().unwrap_or(0);
    for k in keys {
        let default = match k.default {
            Some(d) => format!("default {d}"),
            None => "required".to_string(),
        };
        // Writing to a String cannot fail.
        let _ = writeln!(text, "    {:width$}  {:16}  {}", k.key, default, k.help);
    }
}
