//! How a candle operand (dtype, [`Layout`]) becomes a kernelyard view: dtypes, layouts the
//! operators take, and the bounds check every view passes before it is made.
//!
//! Responsibility: the op files ([`crate::ops`]) say which view of each operand a call needs
//! ([`ViewSpec`]: shape and strides in elements, relative to the operand's start offset) or
//! refuse the layout with a typed error; this module checks that the view lies inside the
//! storage and makes it from the storage's base address (host or device). kernelyard then
//! validates the views (shapes, dtypes, aliasing) as for any caller.

use std::ffi::c_void;

use candle_core::{DType as CDType, Layout, Shape};
use kernelyard::{DType, DeviceId, TensorView, TensorViewMut};

use crate::error::Error;

/// One operand of a call: its dtype and layout.
#[derive(Clone, Copy)]
pub(crate) struct Input<'l> {
    /// Its candle dtype.
    pub dtype: CDType,
    /// Its layout (shape, strides, start offset).
    pub layout: &'l Layout,
}

impl Input<'_> {
    /// The shape.
    pub fn dims(&self) -> &[usize] {
        self.layout.dims()
    }
}

/// The view of an operand a call needs: shape and strides in elements, from the operand's
/// start offset.
#[derive(Clone, Debug)]
pub(crate) struct ViewSpec {
    /// The argument's name (`x`, `weight`, ...), for errors.
    pub arg: &'static str,
    /// The element type kernelyard sees (`u32` storage is seen as `i32`: [`index_dtype`]).
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Strides, elements (never negative here).
    pub strides: Vec<usize>,
    /// The operand is used transposed (gemm's `trans_a` / `trans_b`); false for every other
    /// operator.
    pub transposed: bool,
}

impl ViewSpec {
    /// A row-major contiguous view of `shape`.
    pub fn contiguous(arg: &'static str, dtype: DType, shape: Vec<usize>) -> Self {
        let mut strides = vec![0; shape.len()];
        let mut acc = 1usize;
        for (s, &d) in strides.iter_mut().zip(&shape).rev() {
            *s = acc;
            acc = acc.saturating_mul(d.max(1));
        }
        ViewSpec {
            arg,
            dtype,
            shape,
            strides,
            transposed: false,
        }
    }
}

/// What a call writes: one new contiguous tensor.
pub(crate) struct OutSpec {
    /// Its dtype.
    pub dtype: DType,
    /// The shape of the kernelyard view written (contiguous).
    pub view: Vec<usize>,
    /// The candle shape of the result (the same elements, in the same order).
    pub shape: Shape,
}

/// The views of one call's operands and its output.
pub(crate) struct OpPlan<const N: usize> {
    /// One view per operand, in the operator's order.
    pub inputs: [ViewSpec; N],
    /// The output.
    pub out: OutSpec,
}

/// The float dtypes kernelyard's operators take, or a typed refusal.
pub(crate) fn float_dtype(op: &'static str, arg: &'static str, d: CDType) -> Result<DType, Error> {
    match d {
        CDType::F32 => Ok(DType::F32),
        CDType::F16 => Ok(DType::F16),
        CDType::BF16 => Ok(DType::BF16),
        dtype => Err(Error::DType {
            op,
            arg,
            dtype,
            allowed: "f32, f16 or bf16",
        }),
    }
}

/// The index dtypes (positions, targets): i32 and i64, and candle's usual `u32` ids, passed as
/// the same bits read as i32 (ids and positions below 2^31 are the same numbers; kernelyard's
/// vocabularies and positions never reach 2^31), or a typed refusal.
pub(crate) fn index_dtype(op: &'static str, arg: &'static str, d: CDType) -> Result<DType, Error> {
    match d {
        CDType::I64 => Ok(DType::I64),
        CDType::I32 | CDType::U32 => Ok(DType::I32),
        dtype => Err(Error::DType {
            op,
            arg,
            dtype,
            allowed: "i64, i32 or u32",
        }),
    }
}

/// Refuses a non-contiguous operand (any start offset is fine).
pub(crate) fn require_contiguous(
    op: &'static str,
    arg: &'static str,
    input: &Input<'_>,
    need: &'static str,
) -> Result<(), Error> {
    if input.layout.is_contiguous() {
        Ok(())
    } else {
        Err(not_contiguous(op, arg, input, need))
    }
}

/// The typed refusal of `input`'s layout.
pub(crate) fn not_contiguous(
    op: &'static str,
    arg: &'static str,
    input: &Input<'_>,
    need: &'static str,
) -> Error {
    Error::NotContiguous {
        op,
        arg,
        shape: input.dims().to_vec(),
        stride: input.layout.stride().to_vec(),
        need,
    }
}

/// A shape refusal.
pub(crate) fn shape_error(
    op: &'static str,
    arg: &'static str,
    input: &Input<'_>,
    need: impl Into<String>,
) -> Error {
    Error::Shape {
        op,
        arg,
        shape: input.dims().to_vec(),
        need: need.into(),
    }
}

/// Where an operand's storage is: its base address, length in elements and element size.
#[derive(Clone, Copy)]
pub(crate) struct Base {
    /// Address of element 0 of the storage (host or device).
    pub addr: u64,
    /// Elements in the storage.
    pub len: usize,
    /// Bytes per element.
    pub elem: usize,
    /// The device.
    pub device: DeviceId,
}

/// The address of the view `spec` of an operand at `start` elements into `base`, after
/// checking that every element the view addresses lies in the storage.
fn checked_addr(op: &'static str, base: Base, start: usize, spec: &ViewSpec) -> Result<u64, Error> {
    let arg = spec.arg;
    let out_of_bounds = || Error::Shape {
        op,
        arg,
        shape: spec.shape.clone(),
        need: format!(
            "the view at element {start} with strides {:?} reaches past the storage of {} elements",
            spec.strides, base.len
        ),
    };
    if spec.dtype.size() != base.elem {
        return Err(Error::Shape {
            op,
            arg,
            shape: spec.shape.clone(),
            need: format!(
                "a view of {} elements over storage of {}-byte elements",
                spec.dtype, base.elem
            ),
        });
    }
    let empty = spec.shape.contains(&0);
    let mut last = start;
    if !empty {
        for (&d, &s) in spec.shape.iter().zip(&spec.strides) {
            last = (d - 1)
                .checked_mul(s)
                .and_then(|r| last.checked_add(r))
                .ok_or_else(out_of_bounds)?;
        }
    }
    if (empty && start > base.len) || (!empty && last >= base.len) {
        return Err(out_of_bounds());
    }
    let offset = (start as u64)
        .checked_mul(base.elem as u64)
        .and_then(|o| base.addr.checked_add(o))
        .ok_or_else(out_of_bounds)?;
    Ok(offset)
}

fn strides(spec: &ViewSpec) -> Vec<isize> {
    spec.strides.iter().map(|&s| s as isize).collect()
}

/// A read-only view of an operand.
///
/// # Safety
/// `base` must describe one live allocation on `base.device` holding `base.len` elements of
/// `base.elem` bytes that nobody writes for `'a` (the caller holds a shared borrow of the
/// storage it came from for `'a`, and on a device the work is ordered on the launch stream).
pub(crate) unsafe fn view<'a>(
    op: &'static str,
    base: Base,
    layout: &Layout,
    spec: &ViewSpec,
) -> Result<TensorView<'a>, Error> {
    let addr = checked_addr(op, base, layout.start_offset(), spec)?;
    // SAFETY: every element the shape and strides address lies in the storage (checked just
    // above), which holds values of `spec.dtype` (the op files derive it from the storage's
    // dtype; `u32` read as `i32` is the same size) and is not written during `'a` (this
    // function's contract).
    unsafe {
        TensorView::from_raw_parts(
            addr as usize as *const c_void,
            spec.dtype,
            &spec.shape,
            Some(&strides(spec)),
            base.device,
        )
    }
    .map_err(|source| Error::Kernelyard {
        op,
        source: source.into(),
    })
}

/// A writable view of an operand or output.
///
/// # Safety
/// As for [`view`], and in addition nothing else reads or writes the addressed elements for
/// `'a` (the caller holds the storage mutably, or it is a fresh output).
pub(crate) unsafe fn view_mut<'a>(
    op: &'static str,
    base: Base,
    start: usize,
    spec: &ViewSpec,
) -> Result<TensorViewMut<'a>, Error> {
    let addr = checked_addr(op, base, start, spec)?;
    // SAFETY: in bounds (checked), of `spec.dtype`, and exclusively ours for `'a` (this
    // function's contract).
    unsafe {
        TensorViewMut::from_raw_parts(
            addr as usize as *mut c_void,
            spec.dtype,
            &spec.shape,
            Some(&strides(spec)),
            base.device,
        )
    }
    .map_err(|source| Error::Kernelyard {
        op,
        source: source.into(),
    })
}

/// The product of `dims`, for the flattening of leading dimensions.
pub(crate) fn product(dims: &[usize]) -> usize {
    dims.iter().product()
}
