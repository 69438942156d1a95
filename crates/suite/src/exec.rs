//! Running one instance on a device: allocate, upload, poison the outputs, validate the
//! arguments, select the named kernel, launch, synchronize and download.
//!
//! Everything that can go wrong is a value ([`RunError`]); a kernel that panics is reported as
//! a failure of that case, not of the suite.

use std::panic::{catch_unwind, AssertUnwindSafe};

use kernelyard::float8::{F8E4M3, F8E5M2};
use kernelyard::half::{bf16, f16};
use kernelyard::{
    DType, DeviceBuffer, DeviceId, Error, Policy, Problem, Runtime, SelectError, TensorView,
    TensorViewMut, Verdict,
};
use kernelyard::{F4E2M1x2, F8E8M0};

use crate::data::{par_map, Init, Instance};
use crate::ops::Driver;

/// A tensor in device memory with its logical description.
pub(crate) struct DeviceTensor {
    pub name: &'static str,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub buf: DeviceBuffer,
}

/// An output read back: values widened to `f64`, and the raw bits for bitwise comparisons.
#[derive(Clone, Debug)]
pub(crate) struct Downloaded {
    pub values: Vec<f64>,
    pub bits: Vec<u64>,
}

/// Why a run produced no outputs.
#[derive(Debug)]
pub(crate) enum RunError {
    /// Selection rejected the kernel for this problem on this device: its reasons.
    Rejected(Vec<String>),
    /// The harness could not set the run up, or the kernel panicked.
    Failed(String),
    /// The launch (or synchronization) returned an error.
    Launch(Error),
}

/// Host values converted to a dtype's storage, ready to upload (once or many times).
pub(crate) enum Encoded {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F8E4M3(Vec<F8E4M3>),
    F8E5M2(Vec<F8E5M2>),
    F4E2M1X2(Vec<F4E2M1x2>),
    F8E8M0(Vec<F8E8M0>),
}

impl Encoded {
    /// `values` (already representable in `dtype`) in `dtype`'s storage (packed FP4: two values
    /// per byte, the first in the low nibble).
    pub(crate) fn new(dtype: DType, values: &[f64]) -> Self {
        match dtype {
            DType::F32 => Encoded::F32(par_map(values, |v| v as f32)),
            DType::F16 => Encoded::F16(par_map(values, f16::from_f64)),
            DType::BF16 => Encoded::BF16(par_map(values, bf16::from_f64)),
            DType::I32 => Encoded::I32(par_map(values, |v| v as i32)),
            DType::I64 => Encoded::I64(par_map(values, |v| v as i64)),
            DType::F8E4M3 => Encoded::F8E4M3(par_map(values, F8E4M3::from_f64)),
            DType::F8E5M2 => Encoded::F8E5M2(par_map(values, F8E5M2::from_f64)),
            DType::F8E8M0 => Encoded::F8E8M0(par_map(values, F8E8M0::from_f64)),
            DType::F4E2M1X2 => Encoded::F4E2M1X2(F4E2M1x2::pack_slice(values)),
        }
    }

    /// Copies the values into the start of `buf`.
    pub(crate) fn upload(&self, buf: &mut DeviceBuffer) -> Result<(), Error> {
        match self {
            Encoded::F32(v) => buf.upload(v),
            Encoded::F16(v) => buf.upload(v),
            Encoded::BF16(v) => buf.upload(v),
            Encoded::I32(v) => buf.upload(v),
            Encoded::I64(v) => buf.upload(v),
            Encoded::F8E4M3(v) => buf.upload(v),
            Encoded::F8E5M2(v) => buf.upload(v),
            Encoded::F4E2M1X2(v) => buf.upload(v),
            Encoded::F8E8M0(v) => buf.upload(v),
        }
    }
}

/// Allocates a tensor on `device` and uploads `values` (logical order) in `dtype`.
fn upload(
    rt: &Runtime,
    device: DeviceId,
    name: &'static str,
    dtype: DType,
    shape: &[usize],
    values: &[f64],
) -> Result<DeviceTensor, Error> {
    upload_encoded(rt, device, name, dtype, shape, &Encoded::new(dtype, values))
}

/// The shape of the storage of a tensor whose values have the logical shape `shape`: the same
/// but for packed FP4, whose last dimension counts pairs (its values' count over
/// [`DType::lanes`]). Host tensors and output specs of the suite use logical shapes.
pub(crate) fn storage_shape(dtype: DType, shape: &[usize]) -> Vec<usize> {
    let mut s = shape.to_vec();
    if let Some(last) = s.last_mut() {
        *last = last.div_ceil(dtype.lanes());
    }
    s
}

/// Allocates a tensor of logical shape `shape` on `device` and uploads `data` into it (the
/// device tensor has the storage shape, [`storage_shape`]).
pub(crate) fn upload_encoded(
    rt: &Runtime,
    device: DeviceId,
    name: &'static str,
    dtype: DType,
    shape: &[usize],
    data: &Encoded,
) -> Result<DeviceTensor, Error> {
    let shape = &storage_shape(dtype, shape)[..];
    let n: usize = shape.iter().product();
    let mut buf = rt.alloc(device, (n * dtype.size()).max(dtype.size()))?;
    data.upload(&mut buf)?;
    Ok(DeviceTensor {
        name,
        dtype,
        shape: shape.to_vec(),
        buf,
    })
}

/// Reads a tensor back.
fn download(t: &DeviceTensor) -> Result<Downloaded, Error> {
    let n: usize = t.shape.iter().product();
    let (values, bits): (Vec<f64>, Vec<u64>) = match t.dtype {
        DType::F32 => t
            .buf
            .download::<f32>(n)?
            .into_iter()
            .map(|v| (f64::from(v), u64::from(v.to_bits())))
            .unzip(),
        DType::F16 => t
            .buf
            .download::<f16>(n)?
            .into_iter()
            .map(|v| (v.to_f64(), u64::from(v.to_bits())))
            .unzip(),
        DType::BF16 => t
            .buf
            .download::<bf16>(n)?
            .into_iter()
            .map(|v| (v.to_f64(), u64::from(v.to_bits())))
            .unzip(),
        DType::I32 => t
            .buf
            .download::<i32>(n)?
            .into_iter()
            .map(|v| (f64::from(v), v as u32 as u64))
            .unzip(),
        DType::I64 => t
            .buf
            .download::<i64>(n)?
            .into_iter()
            .map(|v| (v as f64, v as u64))
            .unzip(),
        DType::F8E4M3 => t
            .buf
            .download::<F8E4M3>(n)?
            .into_iter()
            .map(|v| (v.to_f64(), u64::from(v.to_bits())))
            .unzip(),
        DType::F8E5M2 => t
            .buf
            .download::<F8E5M2>(n)?
            .into_iter()
            .map(|v| (v.to_f64(), u64::from(v.to_bits())))
            .unzip(),
        DType::F8E8M0 => t
            .buf
            .download::<F8E8M0>(n)?
            .into_iter()
            .map(|v| (v.to_f64(), u64::from(v.to_bits())))
            .unzip(),
        // Two values per byte, in logical order; each value's bits are its nibble.
        DType::F4E2M1X2 => t
            .buf
            .download::<F4E2M1x2>(n)?
            .into_iter()
            .flat_map(|v| {
                let [lo, hi] = v.to_f64s();
                let b = u64::from(v.to_bits());
                [(lo, b & 0xF), (hi, b >> 4)]
            })
            .unzip(),
    };
    Ok(Downloaded { values, bits })
}

/// A read-only view of the input called `name`.
pub(crate) fn input<'a>(ins: &'a [DeviceTensor], name: &str) -> Result<TensorView<'a>, String> {
    optional_input(ins, name)?.ok_or_else(|| format!("harness bug: no input `{name}`"))
}

/// A read-only view of the input called `name`, if there is one.
pub(crate) fn optional_input<'a>(
    ins: &'a [DeviceTensor],
    name: &str,
) -> Result<Option<TensorView<'a>>, String> {
    match ins.iter().find(|t| t.name == name) {
        None => Ok(None),
        Some(t) => t
            .buf
            .view(t.dtype, &t.shape)
            .map(Some)
            .map_err(|e| format!("harness bug: view of `{name}`: {e}")),
    }
}

/// Writable views of the outputs called `names`, in that order (`None` for absent ones).
pub(crate) fn outputs_mut<'a, const N: usize>(
    outs: &'a mut [DeviceTensor],
    names: [&str; N],
) -> Result<[Option<TensorViewMut<'a>>; N], String> {
    let mut views: [Option<TensorViewMut<'a>>; N] = std::array::from_fn(|_| None);
    for t in outs.iter_mut() {
        let Some(slot) = names.iter().position(|n| *n == t.name) else {
            return Err(format!("harness bug: unexpected output `{}`", t.name));
        };
        let view = t
            .buf
            .view_mut(t.dtype, &t.shape)
            .map_err(|e| format!("harness bug: view of `{}`: {e}", t.name))?;
        views[slot] = Some(view);
    }
    Ok(views)
}

/// The output called `name`, which must be there.
pub(crate) fn required<'a>(
    v: Option<TensorViewMut<'a>>,
    name: &str,
) -> Result<TensorViewMut<'a>, String> {
    v.ok_or_else(|| format!("harness bug: no output `{name}`"))
}

/// Whether two problems are the same but for their alignment, to compare a case's problem
/// with the launch's (the case cannot know the row strides' alignment; validation computes
/// it). Every problem has an `align` field (`kernelyard::Op::Problem`'s contract), so their
/// serialized fields are compared without it, whatever the op.
pub(crate) fn same_but_align(a: &Problem, b: &Problem) -> bool {
    fn fields(p: &Problem) -> Option<serde_json::Value> {
        let mut v = serde_json::to_value(p).ok()?;
        v.as_object_mut()?.remove("align")?;
        Some(v)
    }
    match (fields(a), fields(b)) {
        (Some(x), Some(y)) => x == y,
        // Not expected: then only identical problems are the same.
        _ => a == b,
    }
}

/// The text of a panic payload.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)")
        .to_string()
}

/// The reasons a selection rejected `kernel`, as text.
fn rejection_reasons(err: &SelectError, kernel: &str) -> Option<Vec<String>> {
    let SelectError::KernelRejected { report, .. } = err else {
        return None;
    };
    let reasons = report
        .candidates
        .iter()
        .find(|c| c.kernel == kernel)
        .and_then(|c| match &c.verdict {
            Verdict::Rejected { reasons } => Some(reasons.iter().map(|r| r.to_string()).collect()),
            _ => None,
        })
        .unwrap_or_else(|| vec![err.to_string()]);
    Some(reasons)
}

/// Runs `inst` with the kernel `kernel` on `device` and reads every output back.
pub(crate) fn execute(
    rt: &Runtime,
    device: DeviceId,
    kernel: &'static str,
    driver: &dyn Driver,
    inst: &Instance,
) -> Result<Vec<Downloaded>, RunError> {
    let failed = |what: &str, e: Error| RunError::Failed(format!("{what}: {e}"));
    let stream = rt.default_stream(device).map_err(|e| failed("stream", e))?;
    let mut ins = Vec::with_capacity(inst.inputs.len());
    for t in &inst.inputs {
        ins.push(
            upload(rt, device, t.name, t.dtype, &t.shape, &t.data)
                .map_err(|e| failed(&format!("upload of `{}`", t.name), e))?,
        );
    }
    let mut outs = Vec::with_capacity(inst.outputs.len());
    for o in &inst.outputs {
        let n: usize = o.shape.iter().product();
        let init = match o.init {
            Init::Poison => vec![f64::NAN; n],
            Init::FromInput(i) => match inst.inputs.get(i) {
                Some(t) if t.data.len() == n => t.data.clone(),
                _ => {
                    return Err(RunError::Failed(format!(
                        "harness bug: output `{}` starts from a missing input",
                        o.name
                    )))
                }
            },
        };
        outs.push(
            upload(rt, device, o.name, o.dtype, &o.shape, &init)
                .map_err(|e| failed(&format!("upload of `{}`", o.name), e))?,
        );
    }
    {
        let mut args = driver
            .args(inst, &ins, &mut outs)
            .map_err(RunError::Failed)?;
        let (problem, _) = args.validate().map_err(|e| {
            RunError::Failed(format!("harness bug: the arguments do not validate: {e}"))
        })?;
        if !same_but_align(&problem, &inst.problem) {
            return Err(RunError::Failed(format!(
                "harness bug: the arguments describe {problem}, the case {}",
                inst.problem
            )));
        }
        let plan = rt
            .select(device, &problem, &Policy::kernel(kernel))
            .map_err(|e| match rejection_reasons(&e, kernel) {
                Some(reasons) => RunError::Rejected(reasons),
                None => RunError::Failed(format!("selection: {e}")),
            })?;
        match catch_unwind(AssertUnwindSafe(|| plan.launch(&stream, &mut args))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(RunError::Launch(e)),
            Err(panic) => {
                return Err(RunError::Failed(format!(
                    "the kernel panicked: {}",
                    panic_text(panic.as_ref())
                )))
            }
        }
    }
    rt.synchronize(&stream).map_err(RunError::Launch)?;
    outs.iter()
        .map(|t| download(t).map_err(|e| failed(&format!("download of `{}`", t.name), e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelyard::{OpKind, Params};

    fn problem(op: OpKind, params: &str) -> Problem {
        let params = Params::parse(op, params).unwrap();
        Problem::from_params(op, &params, DType::BF16).unwrap()
    }

    #[test]
    fn problems_compare_without_their_alignment() {
        // d = 8: 16-byte rows, so the default alignment (16) differs from `align=2`.
        let a = problem(OpKind::SiluMul, "rows=3,d=8");
        let b = problem(OpKind::SiluMul, "rows=3,d=8,align=2");
        assert_ne!(a, b);
        assert!(same_but_align(&a, &b));
        assert!(!same_but_align(
            &a,
            &problem(OpKind::SiluMul, "rows=3,d=8,split=1")
        ));
        assert!(!same_but_align(&a, &problem(OpKind::SiluMul, "rows=4,d=8")));
        let g = problem(OpKind::Gemm, "m=2,n=3,k=4");
        assert!(same_but_align(
            &g,
            &problem(OpKind::Gemm, "m=2,n=3,k=4,align=4")
        ));
        assert!(!same_but_align(&g, &a));
    }
}
