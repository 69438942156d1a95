//! Host tensors as dense `f64`: gathering views in logical (row-major) order and scattering
//! results back with one rounding to the view's dtype.

use float8::{F8E4M3, F8E5M2};
use half::{bf16, f16};
use kernelyard_core::dtype::fp4::{e2m1_from_f64, e2m1_to_f64};
use kernelyard_core::{
    DType, DeviceId, Element, F4E2M1x2, TensorView, TensorViewMut, ValidationError, F8E8M0,
};

/// Element offsets (in elements, from the base pointer) of every logical index, row-major.
fn offsets(shape: &[usize], strides: &[isize]) -> Vec<isize> {
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..n {
        out.push(idx.iter().zip(strides).map(|(&i, &s)| i as isize * s).sum());
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

fn require_host(arg: &'static str, dtype: DType, device: DeviceId) -> Result<(), ValidationError> {
    if device != DeviceId::CPU {
        return Err(ValidationError::NotHostSlice {
            arg,
            have: dtype,
            device,
            want: dtype,
        });
    }
    Ok(())
}

/// Reads every element of a host view, in logical order, as `f64` (exact for every dtype). A
/// packed FP4 view gives two values per element (its [`DType::lanes`]), the low nibble's
/// first: `2 * numel` values, the logical matrix row-major.
pub fn gather(arg: &'static str, v: &TensorView<'_>) -> Result<Vec<f64>, ValidationError> {
    require_host(arg, v.dtype(), v.device())?;
    fn read<T: Element>(v: &TensorView<'_>) -> Vec<f64> {
        let base = v.as_ptr().cast::<T>();
        offsets(v.shape(), v.strides())
            .into_iter()
            // SAFETY: core validated the view (non-null, aligned, non-negative strides) and the
            // view's constructor promised every addressed element is live host memory of `T`.
            .map(|o| unsafe { base.offset(o).read() }.to_f64())
            .collect()
    }
    Ok(match v.dtype() {
        DType::F32 => read::<f32>(v),
        DType::F16 => read::<f16>(v),
        DType::BF16 => read::<bf16>(v),
        DType::I32 => read::<i32>(v),
        DType::I64 => read::<i64>(v),
        DType::F8E4M3 => read::<F8E4M3>(v),
        DType::F8E5M2 => read::<F8E5M2>(v),
        DType::F8E8M0 => read::<F8E8M0>(v),
        DType::F4E2M1X2 => {
            let base = v.as_ptr().cast::<F4E2M1x2>();
            offsets(v.shape(), v.strides())
                .into_iter()
                // SAFETY: as in `read`.
                .flat_map(|o| unsafe { base.offset(o).read() }.to_f64s())
                .collect()
        }
    })
}

/// Reads an index tensor (i32/i64) as `i64`, exactly (not through `f64`).
pub fn gather_indices(arg: &'static str, v: &TensorView<'_>) -> Result<Vec<i64>, ValidationError> {
    require_host(arg, v.dtype(), v.device())?;
    fn read<T: Copy + Into<i64>>(v: &TensorView<'_>) -> Vec<i64> {
        let base = v.as_ptr().cast::<T>();
        offsets(v.shape(), v.strides())
            .into_iter()
            // SAFETY: as in `gather`.
            .map(|o| unsafe { base.offset(o).read() }.into())
            .collect()
    }
    match v.dtype() {
        DType::I32 => Ok(read::<i32>(v)),
        DType::I64 => Ok(read::<i64>(v)),
        other => Err(ValidationError::DtypeNotAllowed {
            arg,
            got: other,
            allowed: DType::INDICES,
        }),
    }
}

/// Writes `values` (logical order) into a host view, rounding once to its dtype (a packed FP4
/// view takes two values per element, the first into the low nibble).
pub fn scatter(
    arg: &'static str,
    v: &mut TensorViewMut<'_>,
    values: &[f64],
) -> Result<(), ValidationError> {
    require_host(arg, v.dtype(), v.device())?;
    fn write<T: Element>(v: &mut TensorViewMut<'_>, values: &[f64]) {
        let offs = offsets(v.shape(), v.strides());
        let base = v.as_mut_ptr().cast::<T>();
        for (o, &x) in offs.into_iter().zip(values) {
            // SAFETY: as in `gather`, and the view is an exclusive borrow whose elements
            // do not overlap any input (core checked aliasing).
            unsafe { base.offset(o).write(T::from_f64(x)) }
        }
    }
    match v.dtype() {
        DType::F32 => write::<f32>(v, values),
        DType::F16 => write::<f16>(v, values),
        DType::BF16 => write::<bf16>(v, values),
        DType::I32 => write::<i32>(v, values),
        DType::I64 => write::<i64>(v, values),
        DType::F8E4M3 => write::<F8E4M3>(v, values),
        DType::F8E5M2 => write::<F8E5M2>(v, values),
        DType::F8E8M0 => write::<F8E8M0>(v, values),
        DType::F4E2M1X2 => {
            let offs = offsets(v.shape(), v.strides());
            let base = v.as_mut_ptr().cast::<F4E2M1x2>();
            for (o, pair) in offs.into_iter().zip(values.chunks(2)) {
                let second = pair.get(1).copied().unwrap_or(0.0);
                // SAFETY: as in `write`.
                unsafe { base.offset(o).write(F4E2M1x2::pack(pair[0], second)) }
            }
        }
    }
    Ok(())
}

/// `x` rounded to `dtype` and widened back: what storing it in a `dtype` tensor keeps.
pub fn round_to(dtype: DType, x: f64) -> f64 {
    match dtype {
        DType::F32 => x as f32 as f64,
        DType::F16 => f16::from_f64(x).to_f64(),
        DType::BF16 => bf16::from_f64(x).to_f64(),
        DType::I32 => x as i32 as f64,
        DType::I64 => x as i64 as f64,
        DType::F8E4M3 => F8E4M3::from_f64(x).to_f64(),
        DType::F8E5M2 => F8E5M2::from_f64(x).to_f64(),
        DType::F8E8M0 => F8E8M0::from_f64(x).to_f64(),
        DType::F4E2M1X2 => e2m1_to_f64(e2m1_from_f64(x)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_follows_strides() {
        let data = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        // A [3, 2] view of a [2, 3] matrix, transposed (strides [1, 3]).
        // SAFETY: the addressed elements 0..6 lie in `data`, which outlives the view.
        let v = unsafe {
            TensorView::from_raw_parts(
                data.as_ptr().cast(),
                DType::F32,
                &[3, 2],
                Some(&[1, 3]),
                DeviceId::CPU,
            )
        }
        .unwrap();
        assert_eq!(gather("x", &v).unwrap(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }

    #[test]
    fn scatter_rounds_once() {
        let mut out = [bf16::ZERO; 2];
        let mut v = TensorViewMut::from_slice(&mut out, &[2]).unwrap();
        scatter("out", &mut v, &[1.0 + 1.0 / 512.0, -3.0]).unwrap();
        assert_eq!(out[0], bf16::from_f64(1.0 + 1.0 / 512.0));
        assert_eq!(out[1].to_f64(), -3.0);
    }

    #[test]
    fn fp8_gathers_exactly_and_scatters_saturating() {
        let data = [
            F8E4M3::from_bits(0x7E),
            F8E4M3::from_bits(0x01),
            F8E4M3::from_bits(0xB8),
        ];
        let v = TensorView::from_slice(&data, &[3]).unwrap();
        assert_eq!(gather("a", &v).unwrap(), vec![448.0, 2f64.powi(-9), -1.0]);
        let mut out = [F8E5M2::from_bits(0); 3];
        let mut w = TensorViewMut::from_slice(&mut out, &[3]).unwrap();
        scatter("out", &mut w, &[1e9, 1.25, -0.0]).unwrap();
        assert_eq!(out.map(|x| x.to_bits()), [0x7B, 0x3D, 0x80]);
        assert_eq!(round_to(DType::F8E4M3, 500.0), 448.0);
        assert_eq!(round_to(DType::F8E5M2, 3.0), 3.0);
    }

    #[test]
    fn fp4_gathers_two_values_per_byte_and_scatters_pairs() {
        // A [2, 2]-byte view of a [2, 4] matrix, read through a transposed (strided) view so
        // the byte order differs from the storage order.
        let data = [0xF2u8, 0x51, 0x6C, 0x07].map(F4E2M1x2::from_bits);
        let v = TensorView::from_slice(&data, &[2, 2]).unwrap();
        assert_eq!(
            gather("a", &v).unwrap(),
            vec![1.0, -6.0, 0.5, 3.0, -2.0, 4.0, 6.0, 0.0]
        );
        // SAFETY: the transposed view addresses the same 4 live bytes of `data`.
        let t = unsafe {
            TensorView::from_raw_parts(
                data.as_ptr().cast(),
                DType::F4E2M1X2,
                &[2, 2],
                Some(&[1, 2]),
                DeviceId::CPU,
            )
        }
        .unwrap();
        assert_eq!(
            gather("a", &t).unwrap(),
            vec![1.0, -6.0, -2.0, 4.0, 0.5, 3.0, 6.0, 0.0]
        );
        let mut out = [F4E2M1x2::default(); 2];
        let mut w = TensorViewMut::from_slice(&mut out, &[2]).unwrap();
        scatter("out", &mut w, &[0.75, 100.0, -0.25, 2.5]).unwrap();
        assert_eq!(out.map(|x| x.to_bits()), [0x72, 0x48]);
        assert_eq!(round_to(DType::F4E2M1X2, 5.5), 6.0);
        assert_eq!(round_to(DType::F8E8M0, 0.3), 0.25);
        let e8 = [F8E8M0::from_bits(126), F8E8M0::from_bits(0xFF)];
        let g = gather("s", &TensorView::from_slice(&e8, &[2]).unwrap()).unwrap();
        assert!(g[0] == 0.5 && g[1].is_nan());
    }
}
