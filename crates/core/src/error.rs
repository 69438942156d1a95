//! kernelyard-core's errors. Every message names the cause and the fix.
//!
//! [`Error`] is the crate's one error type; [`ValidationError`] (bad arguments, found before any
//! backend sees a call) and [`SelectError`] (no kernel can be chosen) are its two large families,
//! kept as their own enums so callers can match on them.

use std::fmt;

use crate::device::{DeviceId, DeviceKind};
use crate::dtype::DType;
use crate::ops::{OpKind, Problem};
use crate::select::SelectionReport;

/// Everything that can go wrong in kernelyard-core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The arguments of a call are invalid.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// No kernel could be selected.
    #[error(transparent)]
    Select(#[from] SelectError),
    /// An operator name is not in the catalog.
    #[error("unknown operator `{name}`; the catalog has: {}", OpKind::names().join(", "))]
    UnknownOp {
        /// The name given.
        name: String,
    },
    /// A dtype name is not known.
    #[error("unknown dtype `{name}`; use one of f32, f16, bf16, i32, i64 (storage types: f8e4m3, f8e5m2, f4e2m1x2, f8e8m0)")]
    UnknownDType {
        /// The name given.
        name: String,
    },
    /// A device id does not parse.
    #[error("invalid device `{input}`: {why} (examples: `cpu`, `cuda:0`, `rocm:1`)")]
    InvalidDevice {
        /// The text given.
        input: String,
        /// What is wrong.
        why: &'static str,
    },
    /// An architecture name does not parse.
    #[error("invalid architecture `{input}`: expected {expected}")]
    InvalidArch {
        /// The text given.
        input: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A problem parameter (`--problem k=v,...`) is unknown, missing or malformed.
    #[error("{op} problem: {what}; keys for {op}: {keys}")]
    Param {
        /// The operator.
        op: OpKind,
        /// What is wrong.
        what: String,
        /// The keys the operator takes, with their meaning.
        keys: String,
    },
    /// The `KERNELYARD_KERNELS` override names something that does not exist.
    #[error("KERNELYARD_KERNELS entry `{entry}`: {why}; fix or remove it (format: `op=kernel,op=kernel`)")]
    EnvOverride {
        /// The offending entry.
        entry: String,
        /// What is wrong with it.
        why: String,
    },
    /// Two registered kernels share a name.
    #[error("two kernels are registered as `{name}` (from {first} and {second}); kernel names must be unique: rename one")]
    DuplicateKernel {
        /// The shared name.
        name: &'static str,
        /// Where the first one was declared.
        first: &'static str,
        /// Where the second one was declared.
        second: &'static str,
    },
    /// A kernel's metadata is inconsistent (a registration bug in a backend).
    #[error("kernel `{name}` is registered with bad metadata: {why}")]
    BadKernelMeta {
        /// The kernel.
        name: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// A plan was launched with arguments of another problem.
    #[error("the plan was selected for {plan:?} but the arguments describe {args:?}; select a plan for these arguments")]
    ProblemMismatch {
        /// The plan's problem.
        plan: Box<Problem>,
        /// The arguments' problem.
        args: Box<Problem>,
    },
    /// Arguments, stream and plan are not on one device.
    #[error("the {what} is on {have} but the plan is for {need}; launch on a stream of {need} with arguments on {need}")]
    WrongDevice {
        /// What is on the wrong device (`stream`, `arguments`).
        what: &'static str,
        /// Where it is.
        have: DeviceId,
        /// Where the plan runs.
        need: DeviceId,
    },
    /// A backend cannot serve a device (not compiled in, unavailable, or no such device).
    #[error("no backend serves device {device}: {why}")]
    NoBackendForDevice {
        /// The device.
        device: DeviceId,
        /// Why, with the fix.
        why: String,
    },
    /// `token_logprobs` in checked mode found a target outside `[0, vocab)`.
    #[error("token_logprobs: target {target} at row {row} is outside [0, {vocab}) and is not ignore_index; fix the targets or use the unchecked mode, which writes NaN")]
    TargetOutOfRange {
        /// The row.
        row: usize,
        /// The target value.
        target: i64,
        /// The vocabulary size.
        vocab: usize,
    },
    /// `selective_state_update`: an entry of host `state_indices` is neither a slot of the
    /// state cache nor the pad slot (found by the kernel that read it, before any write).
    #[error("`state_indices[{row}]` = {index} is outside the state cache's slots [0, {slots}) and is not the pad slot -1")]
    StateIndexOutOfRange {
        /// The batch row.
        row: usize,
        /// Its index.
        index: i64,
        /// Slots of the state cache.
        slots: usize,
    },
    /// `selective_state_update`: two batch rows of host `state_indices` name the same slot;
    /// both would update it at once (found by the kernel that read them, before any write).
    #[error("`state_indices[{first}]` and `state_indices[{second}]` both name slot {index}: each slot may be updated by one batch row (use the pad slot -1 to skip a row)")]
    DuplicateStateIndex {
        /// The slot.
        index: i64,
        /// The first row naming it.
        first: usize,
        /// The second row naming it.
        second: usize,
    },
    /// A kernel was launched with arguments of an op it does not implement (a dispatch bug).
    #[error("kernel `{kernel}` implements {op} but was launched with {got} arguments")]
    WrongOp {
        /// The kernel.
        kernel: &'static str,
        /// Its op.
        op: OpKind,
        /// The arguments' op.
        got: OpKind,
    },
    /// A kernel's launch found no entry point of its source for the problem: a dtype outside
    /// the kernel's metadata, or a plan naming a variant the source does not list. Selection
    /// never launches such a problem, so this is a bug in the kernel or in its caller.
    #[error("kernels/{file} has no entry point for {what}; launch the kernel only with a plan selected for the problem (its metadata and checks exclude this one), or report the bug")]
    NoEntryPoint {
        /// The source file under `kernels/` (`softmax.cu`).
        file: &'static str,
        /// What was asked for (``variant `v8` of bf16``, `i32 input`).
        what: String,
    },
    /// A kernel was launched with a tactic it does not have (selection never does this: a
    /// bug in the caller of [`Kernel::launch`](crate::Kernel::launch)).
    #[error("kernel `{kernel}` has no tactic `{tactic}`")]
    NoSuchTactic {
        /// The kernel.
        kernel: &'static str,
        /// The tactic.
        tactic: &'static str,
    },
    /// A tactic the kernel declares cannot run this problem here: a library offers fewer
    /// configurations for it than the tactic's index (cuBLASLt's heuristic list), and only the
    /// device knows. Nothing else was run in its place; the equivalence suite counts it as a
    /// skip and the tuner as a rejected candidate, with this reason.
    #[error("kernel `{kernel}` cannot run tactic `{tactic}` on this problem: {source}")]
    TacticUnavailable {
        /// The kernel.
        kernel: &'static str,
        /// The tactic.
        tactic: &'static str,
        /// Why (the backend's typed error).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A launch on a stream that is capturing a graph (CUDA graphs, HIP graphs) needed work
    /// that capture forbids: compiling or loading a module, allocating a workspace, or
    /// synchronising. Nothing was queued; the capture is intact.
    #[error(
        "{what} while stream {stream} is capturing a graph, which would break the capture: {fix}"
    )]
    CaptureForbidden {
        /// What the launch would have done (``compile and load kernels/rms_norm.cu``).
        what: String,
        /// The stream.
        stream: DeviceId,
        /// How to avoid it.
        fix: &'static str,
    },
    /// A DLPack tensor cannot be imported or a view exported (feature `dlpack`).
    #[cfg(feature = "dlpack")]
    #[error(transparent)]
    Dlpack(#[from] crate::dlpack::DlpackError),
    /// A device driver or runtime call failed.
    #[error("{backend} device error: {source}")]
    Device {
        /// The backend.
        backend: &'static str,
        /// The backend's own typed error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// An argument of a call is invalid. Found by core before any backend sees the call.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// An argument has the wrong number of dimensions.
    #[error("`{arg}` must have {expected} dimensions ({layout}), got shape {got:?}")]
    Rank {
        /// The argument.
        arg: &'static str,
        /// Dimensions expected.
        expected: usize,
        /// Its layout in words (`[rows, hidden]`).
        layout: &'static str,
        /// The shape given.
        got: Vec<usize>,
    },
    /// A dimension does not match the one it must equal.
    #[error("`{arg}` dimension `{dim}` is {got} but must be {expected} ({rule})")]
    Dim {
        /// The argument.
        arg: &'static str,
        /// The dimension's name.
        dim: &'static str,
        /// Its required size.
        expected: usize,
        /// Its size.
        got: usize,
        /// The rule, in words.
        rule: &'static str,
    },
    /// A size relation between dimensions does not hold (`Hq % Hkv == 0`, `rotary_dim <= head_dim`).
    #[error("{rule} does not hold: {detail}")]
    Relation {
        /// The rule.
        rule: &'static str,
        /// The numbers.
        detail: String,
    },
    /// An argument's dtype is not the one required.
    #[error("`{arg}` must be {expected}, got {got}")]
    DtypeMismatch {
        /// The argument.
        arg: &'static str,
        /// The required dtype.
        expected: DType,
        /// The dtype given.
        got: DType,
    },
    /// An argument's dtype is not allowed for this operator.
    #[error("`{arg}` dtype {got} is not allowed; allowed: {}", list(allowed))]
    DtypeNotAllowed {
        /// The argument.
        arg: &'static str,
        /// The dtype given.
        got: DType,
        /// The dtypes allowed.
        allowed: &'static [DType],
    },
    /// An argument is on another device than the first argument.
    #[error(
        "`{arg}` is on {got} but `{first}` is on {expected}; move every argument to one device"
    )]
    DeviceMismatch {
        /// The argument.
        arg: &'static str,
        /// The first argument.
        first: &'static str,
        /// The first argument's device.
        expected: DeviceId,
        /// This argument's device.
        got: DeviceId,
    },
    /// A pointer is not aligned to its element size.
    #[error("`{arg}` pointer {addr:#x} is not aligned to its element size {align}; pass a pointer aligned to the dtype")]
    Misaligned {
        /// The argument.
        arg: &'static str,
        /// Alignment needed.
        align: usize,
        /// The address given.
        addr: usize,
    },
    /// A tensor has a null data pointer.
    #[error("`{arg}` has a null data pointer")]
    NullPointer {
        /// The argument.
        arg: &'static str,
    },
    /// A tensor has a zero-sized dimension.
    #[error("`{arg}` has a zero-sized dimension (shape {shape:?}); kernelyard operators need non-empty tensors, skip the call instead")]
    ZeroSized {
        /// The argument.
        arg: &'static str,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// A size overflows the index type.
    #[error("`{arg}`: {what} overflows the index type; split the problem")]
    Overflow {
        /// The argument.
        arg: &'static str,
        /// What overflows.
        what: String,
    },
    /// An argument's strides are not ones the operator can take.
    #[error(
        "`{arg}` with shape {shape:?} has strides {strides:?}; {need}; make it contiguous first"
    )]
    Strides {
        /// The argument.
        arg: &'static str,
        /// Its shape.
        shape: Vec<usize>,
        /// Its strides, in elements.
        strides: Vec<isize>,
        /// What the operator needs.
        need: &'static str,
    },
    /// A problem's matrix strides (gemm's, given as numbers rather than views) are not ones
    /// validation could have recorded.
    #[error("`{arg}` of the problem is [{rows}, {cols}] with row stride {ld} and batch stride {batch_stride}; {need}")]
    ProblemStrides {
        /// The operand.
        arg: &'static str,
        /// Its rows.
        rows: usize,
        /// Its columns.
        cols: usize,
        /// Its row stride, elements.
        ld: usize,
        /// Its batch stride, elements (0: unbatched or broadcast).
        batch_stride: usize,
        /// The rule.
        need: &'static str,
    },
    /// An output overlaps an input in memory where the operator does not allow it.
    #[error("output `{output}` overlaps input `{input}` in memory; {allowed}")]
    Aliasing {
        /// The output.
        output: &'static str,
        /// The input.
        input: &'static str,
        /// What is allowed instead.
        allowed: &'static str,
    },
    /// A scalar parameter is out of range.
    #[error("`{param}` = {value} is invalid: {why}")]
    Param {
        /// The parameter.
        param: &'static str,
        /// Its value.
        value: String,
        /// The rule.
        why: &'static str,
    },
    /// A slice's length does not match the shape given for it.
    #[error("slice of {len} elements does not match shape {shape:?} ({expected} elements)")]
    Length {
        /// Elements in the slice.
        len: usize,
        /// The shape given.
        shape: Vec<usize>,
        /// Elements the shape needs.
        expected: usize,
    },
    /// A view has more dimensions than kernelyard supports.
    #[error("rank {got} is above the maximum {max}")]
    RankTooHigh {
        /// The rank given.
        got: usize,
        /// The maximum.
        max: usize,
    },
    /// `scaled_gemm`: a pair of scale modes (A's, B's) the operator does not take; `why` says
    /// which pairs it takes (`crate::ops::scaled_gemm`'s table).
    #[error("`scale_a` {a} with `scale_b` {b} is not supported: {why}")]
    UnsupportedScales {
        /// A's scale mode.
        a: crate::ops::scaled_gemm::ScaleMode,
        /// B's scale mode.
        b: crate::ops::scaled_gemm::ScaleMode,
        /// The rule, and the pair to use instead.
        why: &'static str,
    },
    /// `scaled_gemm`: operand dtypes (A's, B's) that do not go together or with the scale modes
    /// given: FP4 and FP8 do not mix, FP4 operands take the FP4 block scales (NVFP4, MXFP4)
    /// and FP8 operands the others; `why` says what to pass instead.
    #[error(
        "`a` {a} and `b` {b} with `scale_a` {scale_a} and `scale_b` {scale_b} are not supported: {why}"
    )]
    UnsupportedOperands {
        /// A's dtype.
        a: DType,
        /// B's dtype.
        b: DType,
        /// A's scale mode.
        scale_a: crate::ops::scaled_gemm::ScaleMode,
        /// B's scale mode.
        scale_b: crate::ops::scaled_gemm::ScaleMode,
        /// The rule, and what to pass instead.
        why: &'static str,
    },
    /// A host slice of another element type or device was requested from a view.
    #[error("`{arg}` is {have} on {device}; it cannot be read as a host slice of {want}")]
    NotHostSlice {
        /// The argument.
        arg: &'static str,
        /// Its dtype.
        have: DType,
        /// Its device.
        device: DeviceId,
        /// The requested dtype.
        want: DType,
    },
}

/// No kernel could be selected for a problem on a device.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SelectError {
    /// The problem breaks an invariant that validation enforces on arguments (see
    /// [`Op::check_problem`](crate::Op::check_problem)): no arguments could describe it, so no
    /// kernel is considered for it.
    #[error("invalid `{op}` problem: {error}")]
    InvalidProblem {
        /// The operator.
        op: OpKind,
        /// The broken invariant.
        error: ValidationError,
    },
    /// The device is not present (its backend is not compiled in, unavailable, or has no such
    /// device).
    #[error(
        "device {device} is not available: {why}; devices present: {}",
        list(present)
    )]
    UnknownDevice {
        /// The device asked for.
        device: DeviceId,
        /// Why it is absent, with the fix.
        why: String,
        /// Devices that are present.
        present: Vec<DeviceId>,
    },
    /// No kernel of this op is registered for this device kind.
    #[error("no kernel for `{op}` is registered for {kind} devices; it is available on: {}; build with the backend's feature or select on one of those devices", if available_on.is_empty() { "nothing".to_string() } else { list(available_on) })]
    NoKernelForDevice {
        /// The op.
        op: OpKind,
        /// The device kind.
        kind: DeviceKind,
        /// Kinds with at least one kernel for this op.
        available_on: Vec<DeviceKind>,
    },
    /// Every candidate kernel was rejected; the report has each one's reasons.
    #[error("no kernel can run this `{}` problem on {}:\n{report}", report.op, report.device)]
    AllRejected {
        /// The selection report.
        report: Box<SelectionReport>,
    },
    /// A named kernel does not exist.
    #[error("unknown kernel `{name}`; known kernels for {op}: {}", known.join(", "))]
    UnknownKernel {
        /// The name given.
        name: String,
        /// The op the call was for.
        op: OpKind,
        /// Registered kernels for that op.
        known: Vec<&'static str>,
    },
    /// A named kernel has no tactic of the name given (`kernel@tactic`).
    #[error("kernel `{kernel}` has no tactic `{tactic}`; its tactics: {}", if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    UnknownTactic {
        /// The kernel.
        kernel: &'static str,
        /// The tactic asked for.
        tactic: String,
        /// The kernel's tactics.
        known: Vec<&'static str>,
    },
    /// A named kernel exists but cannot run this problem; it is never substituted.
    #[error("kernel `{name}` was asked for and cannot run this problem on {}; it is not replaced by another:\n{report}", report.device)]
    KernelRejected {
        /// The kernel.
        name: &'static str,
        /// The selection report with its reasons.
        report: Box<SelectionReport>,
    },
    /// A named kernel implements another op.
    #[error("kernel `{name}` implements `{kernel_op}`, not `{op}`; name a `{op}` kernel")]
    KernelForOtherOp {
        /// The kernel.
        name: &'static str,
        /// Its op.
        kernel_op: OpKind,
        /// The op asked for.
        op: OpKind,
    },
    /// A policy restricts selection to a backend that does not exist.
    #[error("unknown backend `{name}`; known backends: {}", known.join(", "))]
    UnknownBackend {
        /// The name given.
        name: String,
        /// Known backends.
        known: Vec<&'static str>,
    },
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_entry_point_names_the_source_and_what_was_asked() {
        let e = Error::NoEntryPoint {
            file: "softmax.cu",
            what: "variant `v8` of bf16".to_owned(),
        };
        let msg = e.to_string();
        assert!(msg.starts_with("kernels/softmax.cu has no entry point for variant `v8` of bf16;"));
        assert!(msg.contains("report the bug"), "{msg}");
    }
}

/// Why a backend cannot be used on this machine ([`Backend::probe`](crate::Backend::probe)):
/// the backend's own typed error (e.g. the CUDA backend's `Unavailable`), shared and
/// downcastable, so core stays free of backend types while callers can still match on them.
#[derive(Clone, Debug)]
pub struct ProbeError(std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>);

impl ProbeError {
    /// Wraps a backend's typed error.
    pub fn new<E: std::error::Error + Send + Sync + 'static>(error: E) -> Self {
        ProbeError(std::sync::Arc::new(error))
    }

    /// The backend's error, if it is an `E`.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ProbeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
