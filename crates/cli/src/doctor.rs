//! `kernelyard doctor`: what this build and this machine can do, and why not.
//!
//! Doctor reports; it does not decide. Devices and backend states come from the runtime's
//! probe, kernel suitability from each kernel's own `check` against a representative problem
//! per operator (its descriptor's example, `OpKind::example`). It never panics on a machine
//! without GPU libraries: a backend that cannot be used is reported with the reason its probe
//! gave.
//!
//! With `--simulate NAME` ([`crate::simulate`]) nothing is probed: the one device is the
//! simulated one, labelled as such (a `SIMULATED device ...` first line, `(simulated)` after
//! its id in every check, a `"simulated"` object in the JSON), and each kernel of its kind is
//! checked against it as against a probed device.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Args;
use kernelyard::ops::Example;
use kernelyard::tune::{Lookup, TuningCache, TuningEnv};
use kernelyard::{
    BackendState, BackendStatus, Capabilities, DType, DeviceId, DeviceKind, Error, Kernel, OpKind,
    Params, Problem, Reason, Runtime, PIN_ENV,
};
use serde::Serialize;
use serde_json::Value;

use crate::error::{self, Class, CliError, ErrorJson};
use crate::simulate::{Simulated, SimulatedJson};

/// Arguments of `kernelyard doctor`.
#[derive(Args)]
pub struct DoctorArgs {
    /// Print one JSON object (version, devices, backends, pins, ops) instead of text; with a
    /// bad KERNELYARD_KERNELS it also has `"error": {"class": "pins", "message", "exit_code"}`,
    /// with --simulate `"simulated": {"name", "device", "description", "capabilities"}`.
    #[arg(long)]
    pub json: bool,
    // A simulated device instead of the probed ones; the help lists the presets.
    #[arg(
        long,
        value_name = "NAME",
        value_parser = crate::simulate::parse,
        help = crate::simulate::help()
    )]
    simulate: Option<Simulated>,
}

#[derive(Serialize)]
struct DoctorJson<'a> {
    version: &'static str,
    devices: Vec<&'a Capabilities>,
    backends: Vec<BackendJson<'a>>,
    pins: PinsJson,
    tuning: TuningJson,
    ops: Vec<OpJson>,
    /// Present when doctor exits non-zero (a bad `KERNELYARD_KERNELS`).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorJson>,
    /// Present with `--simulate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    simulated: Option<SimulatedJson<'a>>,
}

#[derive(Serialize)]
struct BackendJson<'a> {
    #[serde(flatten)]
    status: &'a BackendStatus,
    message: String,
}

/// The tuning cache at its default path, judged against the present devices.
#[derive(Serialize)]
struct TuningJson {
    /// `KERNELYARD_TUNE` turns tuned selection on.
    enabled: bool,
    /// The cache file, if a path is configured.
    path: Option<String>,
    /// Why the file cannot be used, if it cannot.
    error: Option<String>,
    /// Entries in the file.
    entries: usize,
    /// Entries usable on a present device (same environment and kernel versions).
    usable: usize,
    /// Entries not usable on any present device, each with why (for the device of its arch).
    stale: Vec<String>,
}

fn tuning(rt: &Runtime) -> TuningJson {
    let enabled = std::env::var(kernelyard::TUNE_ENV)
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "on" | "true"));
    let mut j = TuningJson {
        enabled,
        path: None,
        error: None,
        entries: 0,
        usable: 0,
        stale: Vec::new(),
    };
    let Some(path) = TuningCache::default_path() else {
        j.error = Some("no path: KERNELYARD_TUNING_CACHE, KERNELYARD_CACHE_DIR, XDG_CACHE_HOME and HOME are unset".into());
        return j;
    };
    j.path = Some(path.display().to_string());
    let cache = match TuningCache::open(&path) {
        Ok(c) => c,
        Err(e) => {
            j.error = Some(e.to_string());
            return j;
        }
    };
    let version = |name: &str| rt.registry().get(name).map(|k| k.meta().version);
    for entry in cache.entries() {
        j.entries += 1;
        let mut why = None;
        let mut usable = false;
        for caps in rt.devices() {
            if caps.arch.to_string() != entry.key.arch {
                continue;
            }
            match cache.lookup(&entry.key, &TuningEnv::of(caps), version) {
                Lookup::Hit(_) => usable = true,
                Lookup::Stale { mismatches, .. } => {
                    let m: Vec<String> = mismatches.iter().map(|m| m.to_string()).collect();
                    why = Some(format!("{}: {}", entry.key.label(), m.join("; ")));
                }
                Lookup::Miss => {}
            }
        }
        if usable {
            j.usable += 1;
        } else {
            j.stale.push(why.unwrap_or_else(|| {
                format!("{}: no present device of its arch", entry.key.label())
            }));
        }
    }
    j
}

#[derive(Serialize)]
struct PinsJson {
    variable: &'static str,
    value: Option<String>,
    error: Option<String>,
}

#[derive(Serialize)]
struct OpJson {
    op: OpKind,
    params: &'static str,
    dtype: DType,
    problem: Option<Problem>,
    problem_error: Option<String>,
    kernels: Vec<KernelJson>,
}

#[derive(Serialize)]
struct KernelJson {
    name: &'static str,
    backend: &'static str,
    device: DeviceKind,
    /// One entry per present device of the kernel's kind (none if no such device is present).
    checks: Vec<CheckJson>,
}

#[derive(Serialize)]
struct CheckJson {
    device: DeviceId,
    runnable: bool,
    /// Each reason as typed data plus its `message`.
    reasons: Vec<Value>,
}

/// Runs `kernelyard doctor`.
pub fn run(args: &DoctorArgs) -> error::Result<ExitCode> {
    let sim = args.simulate.as_ref();
    let (rt, pins) = runtime(sim)?;
    let ops: Vec<OpJson> = OpKind::ALL
        .into_iter()
        .map(|op| check_op(&rt, op))
        .collect();
    // A bad pin is reported in the findings and as the command's error.
    let error = pins
        .error
        .as_ref()
        .map(|e| ErrorJson::new(Class::Pins, e.clone()));
    let code = error
        .as_ref()
        .map_or(ExitCode::SUCCESS, |e| ExitCode::from(e.exit_code));
    let report = DoctorJson {
        version: env!("CARGO_PKG_VERSION"),
        devices: rt.devices().collect(),
        backends: rt
            .backends()
            .iter()
            .map(|status| BackendJson {
                status,
                message: status.to_string(),
            })
            .collect(),
        pins,
        tuning: tuning(&rt),
        ops,
        error,
        simulated: sim.map(SimulatedJson::new),
    };
    if args.json {
        crate::output::print_json(&report)?;
    } else {
        crate::output::print(&text(&report).map_err(anyhow::Error::from)?)?;
    }
    if let Some(e) = &report.error {
        crate::output::error(&format!("error: {}", e.message));
    }
    Ok(code)
}

/// The runtime (probed, or with `sim` as its only device), and the state of
/// `KERNELYARD_KERNELS`. A bad pin is a finding of doctor, not a reason to stop: it is
/// reported, and the rest is checked without pins.
fn runtime(sim: Option<&Simulated>) -> error::Result<(Runtime, PinsJson)> {
    let value = std::env::var_os(PIN_ENV).map(|v| v.to_string_lossy().into_owned());
    let builder = |pins: Option<&str>| match (sim, pins) {
        (Some(sim), pins) => crate::simulate::builder(sim, pins),
        (None, Some(pins)) => Runtime::builder().pins(pins),
        (None, None) => Runtime::builder(),
    };
    match builder(None).build() {
        Ok(rt) => Ok((
            rt,
            PinsJson {
                variable: PIN_ENV,
                value,
                error: None,
            },
        )),
        Err(err @ Error::EnvOverride { .. }) => {
            let rt = builder(Some(""))
                .build()
                .map_err(|e| CliError::new(Class::Runtime, e))?;
            Ok((
                rt,
                PinsJson {
                    variable: PIN_ENV,
                    value,
                    error: Some(err.to_string()),
                },
            ))
        }
        Err(err) => Err(error::runtime(err)),
    }
}

fn check_op(rt: &Runtime, op: OpKind) -> OpJson {
    let Example { params, dtype } = op.example();
    let problem = Params::parse(op, params).and_then(|p| Problem::from_params(op, &p, dtype));
    let (problem, problem_error) = match problem {
        Ok(p) => (Some(p), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let kernels = rt
        .registry()
        .all()
        .iter()
        .filter(|k| k.meta().op == op)
        .map(|&k| KernelJson {
            name: k.meta().name,
            backend: k.meta().backend,
            device: k.meta().device,
            checks: match &problem {
                Some(problem) => rt
                    .devices()
                    .filter(|caps| caps.device.kind == k.meta().device)
                    .map(|caps| check(k, caps, problem))
                    .collect(),
                None => Vec::new(),
            },
        })
        .collect();
    OpJson {
        op,
        params,
        dtype,
        problem,
        problem_error,
        kernels,
    }
}

fn check(kernel: &dyn Kernel, caps: &Capabilities, problem: &Problem) -> CheckJson {
    let reasons = kernel.check(caps, problem).err().unwrap_or_default();
    CheckJson {
        device: caps.device,
        runnable: reasons.is_empty(),
        reasons: reasons.iter().map(reason_json).collect(),
    }
}

fn reason_json(reason: &Reason) -> Value {
    let mut value = serde_json::to_value(reason).unwrap_or(Value::Null);
    match &mut value {
        Value::Object(map) => {
            map.insert("message".into(), Value::String(reason.to_string()));
            value
        }
        _ => serde_json::json!({ "message": reason.to_string() }),
    }
}

fn text(r: &DoctorJson<'_>) -> Result<String, std::fmt::Error> {
    let mut t = String::new();
    if let Some(sim) = &r.simulated {
        t.push_str(&crate::simulate::banner(sim.simulated));
    }
    writeln!(t, "kernelyard {}", r.version)?;

    writeln!(t, "\ndevices:")?;
    if r.devices.is_empty() {
        writeln!(t, "  none found (see backends below)")?;
    }
    for caps in &r.devices {
        device(&mut t, caps)?;
    }

    if r.simulated.is_some() {
        writeln!(t, "\nbackends (not probed: the device is simulated):")?;
    } else {
        writeln!(t, "\nbackends:")?;
    }
    for b in &r.backends {
        writeln!(t, "  {}", b.message)?;
    }

    writeln!(t, "\npins ({}):", r.pins.variable)?;
    match (&r.pins.value, &r.pins.error) {
        (_, Some(err)) => {
            writeln!(t, "  error: {err}")?;
            writeln!(t, "  (kernels below are checked without pins; every other command fails until this is fixed)")?;
        }
        (Some(v), None) if !v.trim().is_empty() => writeln!(t, "  {v}")?,
        _ => writeln!(t, "  none")?,
    }

    let tu = &r.tuning;
    writeln!(
        t,
        "\ntuning ({}={}):",
        kernelyard::TUNE_ENV,
        if tu.enabled { "on" } else { "off" }
    )?;
    match (&tu.path, &tu.error) {
        (_, Some(err)) => writeln!(t, "  cache not usable: {err}")?,
        (Some(p), None) => writeln!(
            t,
            "  cache {p}: {} entries, {} usable on a present device, {} not",
            tu.entries,
            tu.usable,
            tu.stale.len()
        )?,
        (None, None) => writeln!(t, "  no cache")?,
    }
    for s in tu.stale.iter().take(10) {
        writeln!(t, "    not applied: {s}")?;
    }
    if tu.stale.len() > 10 {
        writeln!(t, "    ... and {} more", tu.stale.len() - 10)?;
    }

    match &r.simulated {
        Some(sim) => writeln!(
            t,
            "\nkernels (each of its kind checked on the SIMULATED device {} against the problem \
             shown):",
            sim.simulated.caps.device
        )?,
        None => writeln!(
            t,
            "\nkernels (each checked on every present device of its kind against the problem \
             shown):"
        )?,
    }
    // A simulated device's id is labelled in every check.
    let label = if r.simulated.is_some() {
        " (simulated)"
    } else {
        ""
    };
    for op in &r.ops {
        writeln!(t, "  {} [{} {}]", op.op, op.params, op.dtype)?;
        if let Some(err) = &op.problem_error {
            writeln!(t, "    cannot build the representative problem: {err}")?;
        }
        if op.kernels.is_empty() {
            writeln!(t, "    no kernel registered in this build")?;
        }
        for k in &op.kernels {
            writeln!(t, "    {} ({}, {})", k.name, k.backend, k.device)?;
            if let (Some(sim), true) = (&r.simulated, k.checks.is_empty()) {
                writeln!(
                    t,
                    "      not checked: the only device is the simulated {}",
                    sim.simulated.caps.device
                )?;
            } else if k.checks.is_empty() && op.problem.is_some() {
                // Say why there is none when the kernel's backend says (not compiled in,
                // unavailable with its reason).
                let why = r
                    .backends
                    .iter()
                    .find(|b| b.status.name == k.backend)
                    .filter(|b| !matches!(b.status.state, BackendState::Available { .. }));
                match why {
                    Some(b) => writeln!(t, "      no {} device present ({})", k.device, b.message)?,
                    None => writeln!(t, "      no {} device present", k.device)?,
                }
            }
            for c in &k.checks {
                if c.runnable {
                    writeln!(t, "      {}{label}: yes", c.device)?;
                    continue;
                }
                writeln!(t, "      {}{label}: no", c.device)?;
                for reason in &c.reasons {
                    let msg = reason.get("message").and_then(Value::as_str).unwrap_or("?");
                    writeln!(t, "        {msg}")?;
                }
            }
        }
    }
    Ok(t)
}

fn device(t: &mut String, caps: &Capabilities) -> std::fmt::Result {
    let units = match caps.device.kind {
        DeviceKind::Cpu => "threads",
        DeviceKind::Cuda => "SMs",
        DeviceKind::Rocm => "CUs",
    };
    writeln!(t, "  {}: {}", caps.device, caps.name)?;
    write!(
        t,
        "    arch {}, {} {}, memory {}",
        caps.arch,
        caps.multiprocessors,
        units,
        bytes(caps.memory_bytes)
    )?;
    if caps.shared_mem_per_block > 0 {
        write!(
            t,
            ", shared memory per block {} (opt-in {})",
            bytes(caps.shared_mem_per_block),
            bytes(caps.shared_mem_per_block_optin)
        )?;
    } else {
        write!(t, ", no shared memory")?;
    }
    writeln!(t)?;
    if let Some(v) = caps.driver_version {
        writeln!(t, "    driver {v}")?;
    }
    if let Some(v) = caps.compiler_version {
        writeln!(t, "    run-time compiler {v}")?;
    }
    let features: Vec<String> = caps.features.iter().map(|f| f.to_string()).collect();
    writeln!(
        t,
        "    features: {}",
        if features.is_empty() {
            "none".to_string()
        } else {
            features.join(", ")
        }
    )
}

fn bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    match n {
        0 => "unknown".to_string(),
        n if n >= KIB * KIB * KIB => format!("{:.1} GiB", n as f64 / (KIB * KIB * KIB) as f64),
        n if n >= KIB * KIB => format!("{:.1} MiB", n as f64 / (KIB * KIB) as f64),
        n if n >= KIB => format!("{:.1} KiB", n as f64 / KIB as f64),
        n => format!("{n} B"),
    }
}
