//! The CPU path: candle's `CpuStorage` viewed in place, run by kernelyard's reference backend
//! on the host stream (synchronously, on the calling thread).
//!
//! Inputs are never copied: each view points into the storage's `Vec` at the layout's start
//! offset. The output is a new zero-filled `Vec` that kernelyard writes and candle then owns.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout, Shape};
use kernelyard::half::{bf16, f16};
use kernelyard::{DType, DeviceId, Stream};

use crate::error::Error;
use crate::operand::{self, Base, Input, ViewSpec};
use crate::ops::{KyInplace2, KyOp};

/// The base of a host storage (`$v` bound to its `Vec`, `$ptr` the pointer method).
macro_rules! storage_base {
    ($s:expr, $v:ident => $e:expr) => {
        match $s {
            CpuStorage::U8($v)
            | CpuStorage::F6E2M3($v)
            | CpuStorage::F6E3M2($v)
            | CpuStorage::F4($v)
            | CpuStorage::F8E8M0($v) => $e,
            CpuStorage::U32($v) => $e,
            CpuStorage::I16($v) => $e,
            CpuStorage::I32($v) => $e,
            CpuStorage::I64($v) => $e,
            CpuStorage::BF16($v) => $e,
            CpuStorage::F16($v) => $e,
            CpuStorage::F32($v) => $e,
            CpuStorage::F64($v) => $e,
            CpuStorage::F8E4M3($v) => $e,
        }
    };
}

fn host_base(addr: usize, len: usize, elem: usize) -> Base {
    Base {
        addr: addr as u64,
        len,
        elem,
        device: DeviceId::CPU,
    }
}

/// The base of a host storage read through a shared borrow.
fn base(s: &CpuStorage) -> Base {
    fn of<T>(v: &[T]) -> Base {
        host_base(v.as_ptr() as usize, v.len(), std::mem::size_of::<T>())
    }
    storage_base!(s, v => of(v))
}

/// The base of a host storage written through an exclusive borrow (the address comes from
/// `as_mut_ptr`, so writes through it are allowed).
fn base_mut(s: &mut CpuStorage) -> Base {
    fn of<T>(v: &mut [T]) -> Base {
        host_base(v.as_mut_ptr() as usize, v.len(), std::mem::size_of::<T>())
    }
    storage_base!(s, v => of(v))
}

/// A new output buffer of a float dtype.
enum Out {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
}

impl Out {
    fn new(op: &'static str, dtype: DType, n: usize) -> Result<Self, Error> {
        Ok(match dtype {
            DType::F32 => Out::F32(vec![0.0; n]),
            DType::F16 => Out::F16(vec![f16::ZERO; n]),
            DType::BF16 => Out::BF16(vec![bf16::ZERO; n]),
            // The op files only ever ask for float outputs.
            other => {
                return Err(Error::Shape {
                    op,
                    arg: "out",
                    shape: vec![n],
                    need: format!("an output of dtype {other} (kernelyard-candle writes floats)"),
                })
            }
        })
    }

    fn base(&mut self) -> Base {
        fn of<T>(v: &mut [T]) -> Base {
            host_base(v.as_mut_ptr() as usize, v.len(), std::mem::size_of::<T>())
        }
        match self {
            Out::F32(v) => of(v),
            Out::F16(v) => of(v),
            Out::BF16(v) => of(v),
        }
    }

    fn into_storage(self) -> CpuStorage {
        match self {
            Out::F32(v) => CpuStorage::F32(v),
            Out::F16(v) => CpuStorage::F16(v),
            Out::BF16(v) => CpuStorage::BF16(v),
        }
    }
}

/// Runs `op` on host operands into a new storage.
pub(crate) fn run<const N: usize, O: KyOp<N>>(
    op: &O,
    ins: [(&CpuStorage, &Layout); N],
) -> candle_core::Result<(CpuStorage, Shape)> {
    let inputs = ins.map(|(s, l)| Input {
        dtype: s.dtype(),
        layout: l,
    });
    let plan = op.plan(inputs)?;
    let mut out = Out::new(O::NAME, plan.out.dtype, plan.out.shape.elem_count())?;
    let out_base = out.base();
    {
        let views = std::array::from_fn(|i| {
            let (s, l) = ins[i];
            // SAFETY: `s` is borrowed for this whole call and candle gives no one else write
            // access to it meanwhile; the output is a separate `Vec`.
            unsafe { operand::view(O::NAME, base(s), l, &plan.inputs[i]) }
        });
        let spec = ViewSpec::contiguous("out", plan.out.dtype, plan.out.view.clone());
        // SAFETY: `out` is a fresh `Vec` only this view addresses until it is dropped below.
        let out_view = unsafe { operand::view_mut(O::NAME, out_base, 0, &spec) }?;
        let mut args = op.args(&plan, views, out_view)?;
        crate::launch(O::NAME, op.policy(), &Stream::host(), &mut args)?;
    }
    Ok((out.into_storage(), plan.out.shape))
}

/// Runs the in-place `op` on the host operand `dst` (read and written) with `src`.
pub(crate) fn run_inplace2<O: KyInplace2>(
    op: &O,
    dst: (&mut CpuStorage, &Layout),
    src: (&CpuStorage, &Layout),
) -> candle_core::Result<()> {
    let (dst, dst_l) = dst;
    let (src, src_l) = src;
    let [dst_spec, src_spec] = op.plan([
        Input {
            dtype: dst.dtype(),
            layout: dst_l,
        },
        Input {
            dtype: src.dtype(),
            layout: src_l,
        },
    ])?;
    let dst_base = base_mut(dst);
    // SAFETY: `dst` is borrowed mutably for this call: nobody else reads or writes it.
    let dst_view =
        unsafe { operand::view_mut(O::NAME, dst_base, dst_l.start_offset(), &dst_spec) }?;
    // SAFETY: `src` is borrowed for this call and candle checked it is not `dst`'s storage.
    let src_view = unsafe { operand::view(O::NAME, base(src), src_l, &src_spec) };
    let mut args = op.args(dst_view, src_view)?;
    crate::launch(O::NAME, op.policy(), &Stream::host(), &mut args)
}
