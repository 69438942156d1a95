//! Kernels: a static that holds its metadata and its code together.
//!
//! Every backend declares each kernel the same way: a `static` [`KernelDef<O>`] for its operator
//! `O` (metadata, problem check, optional score, launch), registered with
//! [`register!`](crate::register). Its [`KernelMeta`] is plain data, read without running
//! anything; its requirements (device kind, arch range, dtypes, features, alignment) are
//! compared with a device's [`Capabilities`] by [`KernelMeta::check_static`], and anything
//! problem-specific (shapes, shared memory) by the definition's `check`.
//!
//! The check, score and launch functions are typed: they receive `O`'s own problem and
//! arguments (`&O::Problem`, `&mut O::Args`), and a launch receives a [`LaunchCtx`] with the
//! stream and the device's capabilities. The match from the catalog's [`Problem`] and [`Args`]
//! to `O`'s types happens once, here; a kernel never downcasts and never looks capabilities up
//! from a process-wide table.

use serde::Serialize;

use crate::caps::{ArchReq, Capabilities, Feature};
use crate::device::DeviceKind;
use crate::dtype::DType;
use crate::error::Error;
use crate::ops::{Args, Listed, OpKind, Problem};
use crate::reason::Reason;
use crate::stream::Stream;

/// A kernel's static metadata.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct KernelMeta {
    /// `backend.op[.variant]`, unique in the registry.
    pub name: &'static str,
    /// The operator it implements.
    pub op: OpKind,
    /// The backend that provides it.
    pub backend: &'static str,
    /// The kind of device it runs on.
    pub device: DeviceKind,
    /// Implementation version (bump when numerics change).
    pub version: u32,
    /// Repeated runs on the same inputs give bitwise-identical outputs.
    pub deterministic: bool,
    /// A row's output is bitwise identical whatever batch it rides in.
    pub batch_invariant: bool,
    /// Supported primary dtypes (see [`Problem::dtype`]).
    pub dtypes: &'static [DType],
    /// Supported architectures.
    pub arch: ArchReq,
    /// Device features required.
    pub features: &'static [Feature],
    /// Alignment in bytes every tensor pointer and row stride needs (1 = element alignment).
    pub align: usize,
    /// Preference among runnable kernels: higher is tried first.
    pub priority: i32,
    /// Where it is declared (`module_path!()`), for registration errors.
    pub source: &'static str,
    /// One line on what it is.
    pub summary: &'static str,
    /// Named configurations besides the default one (block sizes, tiles, library algorithm
    /// indices, thread counts), addressable as `name@tactic` ([`Policy::kernel`](crate::Policy::kernel)),
    /// run by the equivalence suite and measured by the tuner. Every tactic must compute what the
    /// default computes, within the op's tolerance, and keep the kernel's determinism and batch
    /// invariance declarations.
    pub tactics: &'static [&'static str],
}

/// `name@tactic` for a kernel and one of its tactics (`name` alone for the default), interned:
/// the same `&'static str` for the same pair, allocated once per pair a process uses.
pub fn tactic_label(name: &'static str, tactic: Option<&'static str>) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Labels = HashMap<(&'static str, &'static str), &'static str>;
    let Some(t) = tactic else {
        return name;
    };
    static LABELS: OnceLock<Mutex<Labels>> = OnceLock::new();
    let mut labels = LABELS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    labels
        .entry((name, t))
        .or_insert_with(|| Box::leak(format!("{name}@{t}").into_boxed_str()))
}

/// Splits `name@tactic` into the kernel's name and the tactic, if any.
pub fn split_tactic(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once('@') {
        Some((k, t)) => (k, Some(t)),
        None => (spec, None),
    }
}

impl KernelMeta {
    /// The metadata of a kernel for `O`, with the defaults most kernels share: version 1,
    /// deterministic and batch-invariant, f32/f16/bf16, no features, element alignment,
    /// priority 10. Adjust with the `const` builder methods ([`KernelMeta::dtypes`], ...).
    pub const fn new<O: Listed>(
        name: &'static str,
        backend: &'static str,
        device: DeviceKind,
        arch: ArchReq,
        source: &'static str,
        summary: &'static str,
    ) -> KernelMeta {
        KernelMeta {
            name,
            op: O::KIND,
            backend,
            device,
            version: 1,
            deterministic: true,
            batch_invariant: true,
            dtypes: DType::FLOATS,
            arch,
            features: &[],
            align: 1,
            priority: 10,
            source,
            summary,
            tactics: &[],
        }
    }

    /// With these named configurations (see [`KernelMeta::tactics`](KernelMeta#structfield.tactics)).
    pub const fn tactics(mut self, tactics: &'static [&'static str]) -> Self {
        self.tactics = tactics;
        self
    }

    /// With these supported primary dtypes.
    pub const fn dtypes(mut self, dtypes: &'static [DType]) -> Self {
        self.dtypes = dtypes;
        self
    }

    /// With these required features.
    pub const fn features(mut self, features: &'static [Feature]) -> Self {
        self.features = features;
        self
    }

    /// With this pointer and row-stride alignment, bytes.
    pub const fn align(mut self, align: usize) -> Self {
        self.align = align;
        self
    }

    /// With this priority.
    pub const fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// With this implementation version.
    pub const fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Declaring neither determinism nor batch invariance.
    pub const fn nondeterministic(mut self) -> Self {
        self.deterministic = false;
        self.batch_invariant = false;
        self
    }

    /// Compares the metadata's requirements with a device and a problem, pushing a reason for
    /// each one not met.
    pub fn check_static(&self, caps: &Capabilities, problem: &Problem, reasons: &mut Vec<Reason>) {
        let kind = caps.arch.kind();
        if kind != self.device {
            reasons.push(Reason::WrongDeviceKind {
                have: kind,
                need: self.device,
            });
            return;
        }
        self.arch.check(&caps.arch, reasons);
        if !self.dtypes.contains(&problem.dtype()) {
            reasons.push(Reason::DtypeUnsupported {
                arg: "input",
                dtype: problem.dtype(),
                supported: self.dtypes.to_vec(),
            });
        }
        for &feature in self.features {
            if !caps.has(feature) {
                reasons.push(Reason::MissingFeature { feature });
            }
        }
        if problem.align() < self.align {
            reasons.push(Reason::Alignment {
                arg: "every tensor",
                need: self.align,
                have: problem.align(),
            });
        }
    }
}

/// A kernel: metadata, problem-specific checks, an optional heuristic score, and the launch.
pub trait Kernel: Send + Sync + 'static {
    /// The static metadata.
    fn meta(&self) -> &KernelMeta;

    /// Problem-specific requirements beyond the metadata (shapes, shared memory per problem):
    /// push a reason for each one not met. The default has none.
    ///
    /// Called whenever the device is of the kernel's kind, even if a static requirement (arch,
    /// dtype, alignment) already failed, so that every reason is reported: it must not assume
    /// the problem's dtype is one the kernel supports.
    fn check_problem(&self, caps: &Capabilities, problem: &Problem, reasons: &mut Vec<Reason>) {
        let _ = (caps, problem, reasons);
    }

    /// Every reason this kernel cannot run `problem` on the device, or `Ok`.
    fn check(&self, caps: &Capabilities, problem: &Problem) -> Result<(), Vec<Reason>> {
        let mut reasons = Vec::new();
        self.meta().check_static(caps, problem, &mut reasons);
        if caps.arch.kind() == self.meta().device {
            self.check_problem(caps, problem, &mut reasons);
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }

    /// A heuristic preference for this problem on this device among kernels of equal
    /// priority (higher first). The default is 0.
    fn score(&self, caps: &Capabilities, problem: &Problem) -> i32 {
        let _ = (caps, problem);
        0
    }

    /// Runs the kernel on `ctx.stream`. Core has validated `args` into `problem` and checked
    /// the kernel can run it on the stream's device (whose capabilities `ctx` holds); the
    /// kernel reports only device faults and data-dependent errors (e.g. checked out-of-range
    /// targets).
    fn launch(
        &self,
        ctx: &LaunchCtx<'_>,
        args: &mut Args<'_>,
        problem: &Problem,
    ) -> Result<(), Error>;

    /// Does ahead of time what a launch of `problem` on `ctx.stream` would do on first use
    /// (compile and load modules, look up entry points, create handles, allocate the stream's
    /// workspaces), so that launches afterwards never compile, load, allocate or synchronise
    /// (see [`Plan::prepare`](crate::Plan::prepare)). The default does nothing: right for
    /// kernels that need nothing ahead (the CPU's).
    fn prepare(&self, ctx: &LaunchCtx<'_>, problem: &Problem) -> Result<(), Error> {
        let _ = (ctx, problem);
        Ok(())
    }
}

/// What a launch needs besides its arguments: the caller's stream and the capabilities of its
/// device (probed once by the runtime; a kernel never looks them up again).
#[derive(Clone, Copy, Debug)]
pub struct LaunchCtx<'a> {
    /// The stream to launch on (the caller's; nothing is synchronised).
    pub stream: &'a Stream,
    /// The capabilities of the stream's device.
    pub caps: &'a Capabilities,
    /// The tactic selected (one of the kernel's [`KernelMeta::tactics`]), or `None` for the
    /// default configuration.
    pub tactic: Option<&'static str>,
}

/// A problem check: push a reason for every requirement `O`'s problem does not meet.
pub type CheckFn<O> = fn(&Capabilities, &<O as crate::ops::Op>::Problem, &mut Vec<Reason>);

/// A heuristic preference among kernels of equal priority (higher first).
pub type ScoreFn<O> = fn(&Capabilities, &<O as crate::ops::Op>::Problem) -> i32;

/// A typed launch: `O`'s arguments, validated into `O`'s problem.
pub type LaunchFn<O> = for<'c, 'a, 'b> fn(
    &LaunchCtx<'c>,
    &'b mut <O as crate::ops::Op>::Args<'a>,
    &<O as crate::ops::Op>::Problem,
) -> Result<(), Error>;

/// Preparation ahead of launches (see [`Kernel::prepare`]); it gets the kernel's metadata, so
/// a backend can share one preparation among its kernels (e.g. by the kernel's name).
pub type PrepareFn<O> =
    fn(&KernelMeta, &LaunchCtx<'_>, &<O as crate::ops::Op>::Problem) -> Result<(), Error>;

/// A kernel for the operator `O`: metadata, problem check, score and launch, typed by `O`.
///
/// Declared as a `static` and registered with [`register!`](crate::register):
///
/// ```
/// use kernelyard_core::ops::rms_norm::{RmsNorm, RmsNormArgs, RmsNormProblem};
/// use kernelyard_core::{
///     ArchReq, Capabilities, DeviceKind, Error, Kernel, KernelDef, KernelMeta, LaunchCtx, Reason,
/// };
///
/// const META: KernelMeta = KernelMeta::new::<RmsNorm>(
///     "example.rms_norm",
///     "example",
///     DeviceKind::Cpu,
///     ArchReq::Any,
///     module_path!(),
///     "an example that launches nothing",
/// );
///
/// fn check(_: &Capabilities, p: &RmsNormProblem, reasons: &mut Vec<Reason>) {
///     if p.hidden > 65536 {
///         reasons.push(Reason::ShapeUnsupported { what: format!("hidden {}", p.hidden) });
///     }
/// }
///
/// fn launch(_: &LaunchCtx<'_>, _: &mut RmsNormArgs<'_>, _: &RmsNormProblem) -> Result<(), Error> {
///     Ok(())
/// }
///
/// // `KernelDef::<O>::new` names the op: rustc cannot infer it through the builder calls.
/// pub static RMS_NORM: KernelDef<RmsNorm> =
///     KernelDef::<RmsNorm>::new(META, launch).with_check(check);
/// kernelyard_core::register!(RMS_NORM);
///
/// assert_eq!(RMS_NORM.meta().name, "example.rms_norm");
/// ```
///
/// It implements [`Kernel`] by matching the catalog's [`Problem`] and [`Args`] to `O`'s once (a
/// mismatch is
/// [`Error::WrongOp`], a core bug, never a panic).
pub struct KernelDef<O: Listed> {
    /// The static metadata (its `op` is `O::KIND`: build it with [`KernelMeta::new`]).
    pub meta: KernelMeta,
    /// Problem-specific requirements beyond the metadata; called whenever the device is of
    /// the kernel's kind, even if a static requirement already failed (so it must not assume
    /// the dtype is supported).
    pub check: CheckFn<O>,
    /// A heuristic preference for a problem among kernels of equal priority.
    pub score: ScoreFn<O>,
    /// The launch.
    pub launch: LaunchFn<O>,
    /// The preparation ahead of launches (none by default).
    pub prepare: PrepareFn<O>,
}

impl<O: Listed> KernelDef<O> {
    /// A kernel with no problem-specific check and score 0.
    pub const fn new(meta: KernelMeta, launch: LaunchFn<O>) -> Self {
        KernelDef {
            meta,
            check: no_check::<O>,
            score: no_score::<O>,
            launch,
            prepare: no_prepare::<O>,
        }
    }

    /// With a preparation ahead of launches.
    pub const fn with_prepare(mut self, prepare: PrepareFn<O>) -> Self {
        self.prepare = prepare;
        self
    }

    /// With a problem check.
    pub const fn with_check(mut self, check: CheckFn<O>) -> Self {
        self.check = check;
        self
    }

    /// With a score.
    pub const fn with_score(mut self, score: ScoreFn<O>) -> Self {
        self.score = score;
        self
    }
}

fn no_check<O: Listed>(_: &Capabilities, _: &O::Problem, _: &mut Vec<Reason>) {}

fn no_score<O: Listed>(_: &Capabilities, _: &O::Problem) -> i32 {
    0
}

fn no_prepare<O: Listed>(_: &KernelMeta, _: &LaunchCtx<'_>, _: &O::Problem) -> Result<(), Error> {
    Ok(())
}

impl<O: Listed> Kernel for KernelDef<O> {
    fn meta(&self) -> &KernelMeta {
        &self.meta
    }

    fn check_problem(&self, caps: &Capabilities, problem: &Problem, reasons: &mut Vec<Reason>) {
        if let Some(p) = O::problem(problem) {
            (self.check)(caps, p, reasons);
        }
    }

    fn score(&self, caps: &Capabilities, problem: &Problem) -> i32 {
        O::problem(problem).map_or(0, |p| (self.score)(caps, p))
    }

    fn launch(
        &self,
        ctx: &LaunchCtx<'_>,
        args: &mut Args<'_>,
        problem: &Problem,
    ) -> Result<(), Error> {
        let got = args.op();
        match (O::args(args), O::problem(problem)) {
            (Some(a), Some(p)) => (self.launch)(ctx, a, p),
            (None, _) => Err(Error::WrongOp {
                kernel: self.meta.name,
                op: O::KIND,
                got,
            }),
            (_, None) => Err(Error::WrongOp {
                kernel: self.meta.name,
                op: O::KIND,
                got: problem.op(),
            }),
        }
    }

    fn prepare(&self, ctx: &LaunchCtx<'_>, problem: &Problem) -> Result<(), Error> {
        match O::problem(problem) {
            Some(p) => (self.prepare)(&self.meta, ctx, p),
            None => Err(Error::WrongOp {
                kernel: self.meta.name,
                op: O::KIND,
                got: problem.op(),
            }),
        }
    }
}

/// Registers a kernel static with the registry (`inventory`): `register!(MY_KERNEL);`.
#[macro_export]
macro_rules! register {
    ($kernel:path) => {
        $crate::inventory::submit! { $crate::KernelEntry(&$kernel) }
    };
}

/// The registration a backend submits for each kernel with `inventory::submit!`.
pub struct KernelEntry(pub &'static dyn Kernel);

inventory::collect!(KernelEntry);
