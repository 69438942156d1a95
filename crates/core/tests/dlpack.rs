//! DLPack import and export of views (`kernelyard_core::dlpack`, feature `dlpack`), on the CPU.
//!
//! Foreign tensors are made here the way a producer would: a managed tensor whose context owns
//! the data (dlpark's builder, or a hand-written C-style struct with its own deleter), with
//! whatever device, dtype, offset, strides and flags the case needs. Tensors on devices other
//! than the CPU carry a host pointer that is never read.

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kernelyard_core::dlpack::dlpark::ffi::{
    DLDataType, DLDataTypeCode, DLDevice, DLDeviceType, DLManagedTensor, DLManagedTensorVersioned,
    DLTensor,
};
use kernelyard_core::dlpack::dlpark::metadata::Dynamic;
use kernelyard_core::dlpack::dlpark::{self, DlpackFlags, Managed, ManagedTensorBase};
use kernelyard_core::dlpack::{
    dtype_to_dlpack, export, export_mut, export_owning, export_owning_mut, import_view,
    import_view_mut, DlpackError, ManagedLegacy, ManagedVersioned,
};
use kernelyard_core::half::bf16;
use kernelyard_core::ops::softmax::SoftmaxArgs;
use kernelyard_core::{DType, DeviceId, TensorView, TensorViewMut, ValidationError};

/// Counts drops of whatever holds it: the producer's context, an exported owner.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// How a simulated producer lays out its tensor.
struct Desc<'s> {
    shape: &'s [i64],
    /// `None`: a NULL strides pointer.
    strides: Option<&'s [i64]>,
    dtype: DLDataType,
    device: DLDevice,
    byte_offset: u64,
    flags: DlpackFlags,
}

impl<'s> Desc<'s> {
    fn cpu(shape: &'s [i64], strides: &'s [i64], dtype: DType) -> Self {
        Desc {
            shape,
            strides: Some(strides),
            dtype: dtype_to_dlpack(dtype),
            device: DLDevice::CPU,
            byte_offset: 0,
            flags: DlpackFlags::empty(),
        }
    }
}

/// A producer's managed tensor (ABI `M`) whose context owns `data` and a drop counter.
fn produce<M: ManagedTensorBase, T: Send + 'static>(
    data: Vec<T>,
    desc: &Desc<'_>,
    drops: &Arc<AtomicUsize>,
) -> Managed<M> {
    let compact = vec![1i64; desc.shape.len()];
    let strides = desc.strides.unwrap_or(&compact);
    let ptr = data.as_ptr().cast_mut().cast::<c_void>();
    let ctx = Box::new((data, DropCount(Arc::clone(drops))));
    let mut init = Dynamic::new(desc.shape, strides)
        .initialize_as::<M>(ctx)
        .unwrap();
    init.set_data(ptr)
        .set_dtype(desc.dtype)
        .set_device(desc.device)
        .set_byte_offset(desc.byte_offset);
    // SAFETY: the test's producer sets READ_ONLY as asked and never IS_COPIED.
    unsafe { init.set_flags_unchecked(desc.flags) };
    if desc.strides.is_none() {
        init.tensor_mut().strides = std::ptr::null_mut();
    }
    // SAFETY: `ctx` owns the data and the allocation owns shape and strides until the deleter.
    unsafe { init.finish() }
}

fn versioned<T: Send + 'static>(data: Vec<T>, desc: &Desc<'_>) -> ManagedVersioned {
    produce(data, desc, &Arc::new(AtomicUsize::new(0)))
}

#[test]
fn imports_f32_with_byte_offset_and_row_stride() {
    let data: Vec<f32> = (0..32).map(|i| i as f32).collect();
    let base = data.as_ptr() as usize;
    let mut desc = Desc::cpu(&[3, 4], &[8, 1], DType::F32);
    desc.byte_offset = 2 * 4;
    let m = versioned(data, &desc);
    // SAFETY: the producer's context owns the 32 elements the view addresses; nobody writes.
    let v = unsafe { import_view(&m) }.unwrap();
    assert_eq!(v.dtype(), DType::F32);
    assert_eq!(v.device(), DeviceId::CPU);
    assert_eq!(v.shape(), &[3, 4]);
    assert_eq!(v.strides(), &[8, 1]);
    assert_eq!(v.addr(), base + 8);
    assert!(!v.is_contiguous());
    // Rows at elements 2, 10, 18; the last reaches element 18 + 3.
    assert_eq!(v.byte_span(), Some((base + 8, base + 22 * 4)));
}

#[test]
fn imports_bf16_contiguous_with_offset_and_reads_it() {
    let data: Vec<bf16> = (0..10).map(|i| bf16::from_f32(i as f32)).collect();
    let mut desc = Desc::cpu(&[2, 3], &[3, 1], DType::BF16);
    desc.byte_offset = 4 * 2;
    let m = versioned(data, &desc);
    // SAFETY: as above.
    let v = unsafe { import_view(&m) }.unwrap();
    assert_eq!(v.dtype(), DType::BF16);
    let got: Vec<f32> = v
        .as_slice::<bf16>("x")
        .unwrap()
        .iter()
        .map(|x| x.to_f32())
        .collect();
    assert_eq!(got, [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
}

#[test]
fn imports_i64_transposed() {
    let data: Vec<i64> = (0..6).collect();
    let base = data.as_ptr() as usize;
    let m = versioned(data, &Desc::cpu(&[3, 2], &[1, 3], DType::I64));
    // SAFETY: as above.
    let v = unsafe { import_view(&m) }.unwrap();
    assert_eq!((v.dtype(), v.addr()), (DType::I64, base));
    assert_eq!(
        (v.shape(), v.strides()),
        (&[3usize, 2][..], &[1isize, 3][..])
    );
    assert!(matches!(
        v.as_slice::<i64>("x"),
        Err(ValidationError::Strides { .. })
    ));
}

#[test]
fn every_kernelyard_dtype_is_taken_and_maps_back() {
    for dtype in DType::ALL {
        let m = versioned(vec![0u64; 4], &Desc::cpu(&[4], &[1], dtype));
        // SAFETY: as above (32 bytes cover 4 elements of any dtype).
        let v = unsafe { import_view(&m) }.unwrap();
        assert_eq!(v.dtype(), dtype);
    }
}

#[test]
fn null_strides_are_row_major_legacy_and_versioned() {
    let drops = Arc::new(AtomicUsize::new(0));
    let mut desc = Desc::cpu(&[2, 3, 4], &[], DType::F32);
    desc.strides = None;
    let legacy: ManagedLegacy = produce(vec![0f32; 24], &desc, &drops);
    // SAFETY: as above.
    let v = unsafe { import_view(&legacy) }.unwrap();
    assert_eq!(v.strides(), &[12, 4, 1]);
    assert!(v.is_contiguous());
    let m = versioned(vec![0f32; 24], &desc);
    // SAFETY: as above.
    let v = unsafe { import_view(&m) }.unwrap();
    assert_eq!(v.strides(), &[12, 4, 1]);
    drop(legacy);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

static C_DELETES: AtomicUsize = AtomicUsize::new(0);

/// A C producer's tensor: the struct, its shape and its data in one box.
#[repr(C)]
struct CTensor {
    managed: DLManagedTensor,
    shape: [i64; 1],
    data: [f32; 4],
}

unsafe extern "C" fn c_deleter(p: *mut DLManagedTensor) {
    C_DELETES.fetch_add(1, Ordering::SeqCst);
    // SAFETY: `p` is the first field of a `CTensor` leaked by `c_producer`; called once.
    drop(unsafe { Box::from_raw(p.cast::<CTensor>()) });
}

fn c_producer() -> *mut DLManagedTensor {
    let b = Box::into_raw(Box::new(CTensor {
        managed: DLManagedTensor {
            dl_tensor: DLTensor::default(),
            manager_ctx: std::ptr::null_mut(),
            deleter: Some(c_deleter),
        },
        shape: [4],
        data: [1.0, 2.0, 3.0, 4.0],
    }));
    // SAFETY: `b` is a live box; the pointers stay inside it.
    unsafe {
        (*b).managed.dl_tensor = DLTensor {
            data: (&raw mut (*b).data).cast(),
            device: DLDevice::CPU,
            ndim: 1,
            dtype: DLDataType::F32,
            shape: (&raw mut (*b).shape).cast(),
            strides: std::ptr::null_mut(),
            byte_offset: 0,
        };
    }
    b.cast()
}

#[test]
fn a_c_producers_legacy_tensor_is_deleted_once_when_the_handle_drops() {
    let raw = c_producer();
    // SAFETY: `raw` is an initialized legacy managed tensor we own; its deleter is callable once.
    let mut m = unsafe { Managed::from_raw(raw) }.unwrap();
    {
        // SAFETY: the C producer's box holds the 4 floats; nothing else touches them.
        let mut v = unsafe { import_view_mut(&mut m) }.unwrap();
        v.as_mut_slice::<f32>("x").unwrap()[0] = 10.0;
    }
    // SAFETY: as above, read-only now.
    let v = unsafe { import_view(&m) }.unwrap();
    assert_eq!(v.as_slice::<f32>("x").unwrap(), &[10.0, 2.0, 3.0, 4.0]);
    assert_eq!(C_DELETES.load(Ordering::SeqCst), 0);
    drop(m);
    assert_eq!(C_DELETES.load(Ordering::SeqCst), 1);
}

#[test]
fn gpu_devices_map_to_their_ordinal() {
    for (device, want) in [
        (DLDevice::cuda(3), DeviceId::cuda(3)),
        (
            DLDevice {
                device_type: DLDeviceType::ROCM,
                device_id: 1,
            },
            DeviceId::rocm(1),
        ),
        (
            DLDevice {
                device_type: DLDeviceType::CPU,
                device_id: 0,
            },
            DeviceId::CPU,
        ),
    ] {
        let mut desc = Desc::cpu(&[4], &[1], DType::F32);
        desc.device = device;
        let m = versioned(vec![0f32; 4], &desc);
        // SAFETY: the view is only inspected, never read (its pointer is a host one).
        let v = unsafe { import_view(&m) }.unwrap();
        assert_eq!(v.device(), want);
    }
}

#[test]
fn every_other_device_is_refused_by_name() {
    let refused = [
        (3, "kDLCUDAHost"),
        (4, "kDLOpenCL"),
        (7, "kDLVulkan"),
        (8, "kDLMetal"),
        (9, "kDLVPI"),
        (11, "kDLROCMHost"),
        (12, "kDLExtDev"),
        (13, "kDLCUDAManaged"),
        (14, "kDLOneAPI"),
        (15, "kDLWebGPU"),
        (16, "kDLHexagon"),
        (17, "kDLMAIA"),
        (18, "kDLTrn"),
        (0, "unknown"),
        (99, "unknown"),
    ];
    for (code, name) in refused {
        let mut desc = Desc::cpu(&[4], &[1], DType::F32);
        desc.device = DLDevice {
            device_type: DLDeviceType(code),
            device_id: 0,
        };
        let mut m = versioned(vec![0f32; 4], &desc);
        // SAFETY: refused before any view exists.
        let err = unsafe { import_view(&m) }.unwrap_err();
        assert!(
            matches!(err, DlpackError::UnsupportedDevice { device_type, device_id: 0 } if device_type == code),
            "{code}: {err:?}"
        );
        assert!(err.to_string().contains(name), "{err}");
        // SAFETY: as above.
        let err = unsafe { import_view_mut(&mut m) }.unwrap_err();
        assert!(matches!(err, DlpackError::UnsupportedDevice { .. }));
    }
    let mut desc = Desc::cpu(&[4], &[1], DType::F32);
    desc.device = DLDevice::cuda(-1);
    let m = versioned(vec![0f32; 4], &desc);
    // SAFETY: as above.
    let err = unsafe { import_view(&m) }.unwrap_err();
    assert!(matches!(
        err,
        DlpackError::DeviceId {
            device_type: 2,
            device_id: -1
        }
    ));
}

#[test]
fn every_other_dtype_is_refused_with_its_name() {
    let scalar = |code: u8, bits: u8| DLDataType::new(DLDataTypeCode(code), bits, 1);
    let refused = [
        (DLDataType::F64, "float64"),
        (DLDataType::I8, "int8"),
        (DLDataType::I16, "int16"),
        (DLDataType::U8, "uint8"),
        (DLDataType::U16, "uint16"),
        (DLDataType::U32, "uint32"),
        (DLDataType::U64, "uint64"),
        (DLDataType::BOOL, "bool"),
        (DLDataType::C64, "complex64"),
        (DLDataType::C128, "complex128"),
        (scalar(2, 8), "float8"),
        (scalar(4, 32), "bfloat32"),
        (scalar(3, 64), "opaque_handle64"),
        (DLDataType::F8E3M4, "float8_e3m4"),
        (DLDataType::F8E4M3, "float8_e4m3"),
        (DLDataType::F8E4M3B11FNUZ, "float8_e4m3b11fnuz"),
        (DLDataType::F8E4M3FNUZ, "float8_e4m3fnuz"),
        (DLDataType::F8E5M2FNUZ, "float8_e5m2fnuz"),
        (DLDataType::F6E2M3FN, "float6_e2m3fn"),
        (DLDataType::F6E3M2FN, "float6_e3m2fn"),
        // FP4 is taken packed, two lanes of 4 bits (PyTorch's float4_e2m1fn_x2), not one.
        (DLDataType::F4E2M1FN, "float4_e2m1fn"),
        (
            DLDataType::new(DLDataTypeCode::FLOAT4_E2M1FN, 8, 1),
            "float4_e2m1fn",
        ),
        (DLDataType::new(DLDataTypeCode::FLOAT, 32, 4), "float32x4"),
        (DLDataType::new(DLDataTypeCode::BFLOAT, 16, 2), "bfloat16x2"),
        (DLDataType::new(DLDataTypeCode::INT, 64, 2), "int64x2"),
        (scalar(42, 16), "code42_16bit"),
        // The FP8 codes kernelyard takes, at another width or with lanes.
        (scalar(10, 16), "float8_e4m3fn"),
        (
            DLDataType::new(DLDataTypeCode::FLOAT8_E5M2, 8, 2),
            "float8_e5m2x2",
        ),
    ];
    for (dtype, name) in refused {
        let mut desc = Desc::cpu(&[2], &[1], DType::F32);
        desc.dtype = dtype;
        let m = versioned(vec![0u64; 8], &desc);
        // SAFETY: refused before any view exists.
        let err = unsafe { import_view(&m) }.unwrap_err();
        assert!(
            matches!(err, DlpackError::UnsupportedDType { code, bits, lanes }
                if (code, bits, lanes) == (dtype.code.0, dtype.bits, dtype.lanes)),
            "{name}: {err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&format!("dtype {name} ")), "{msg}");
        assert!(
            msg.contains("float32, float16, bfloat16, int32, int64, float8_e4m3fn, float8_e5m2"),
            "{msg}"
        );
    }
}

#[test]
fn fp8_maps_to_dlpack_1_1_codes_and_back_with_its_bits() {
    use kernelyard_core::float8::{F8E4M3, F8E5M2};
    assert_eq!(dtype_to_dlpack(DType::F8E4M3), DLDataType::F8E4M3FN);
    assert_eq!(dtype_to_dlpack(DType::F8E5M2), DLDataType::F8E5M2);
    assert_eq!(
        (
            DLDataTypeCode::FLOAT8_E4M3FN.0,
            DLDataTypeCode::FLOAT8_E5M2.0
        ),
        (10, 12)
    );
    // A torch.float8_e4m3fn tensor [448, -2^-9, NaN] as a producer hands it over.
    let bits = [0x7Eu8, 0x81, 0x7F];
    let mut desc = Desc::cpu(&[3], &[1], DType::F32);
    desc.dtype = DLDataType::F8E4M3FN;
    let m = versioned(bits.to_vec(), &desc);
    // SAFETY: the producer's context owns the 3 bytes; nobody writes.
    let v = unsafe { import_view(&m) }.unwrap();
    assert_eq!(v.dtype(), DType::F8E4M3);
    let got: Vec<u8> = v
        .as_slice::<F8E4M3>("a")
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect();
    assert_eq!(got, bits);
    let values: Vec<f64> = v
        .as_slice::<F8E4M3>("a")
        .unwrap()
        .iter()
        .map(|x| x.to_f64())
        .collect();
    assert_eq!(&values[..2], &[448.0, -(2f64.powi(-9))]);
    assert!(values[2].is_nan());
    // Export and import again: same dtype, same bytes (e5m2, odd byte offset in the slice).
    let data = [
        F8E5M2::from_bits(0x00),
        F8E5M2::from_bits(0x7B),
        F8E5M2::from_bits(0xFC),
    ];
    let view = TensorView::from_slice(&data[1..], &[2]).unwrap();
    let e = export(view).unwrap();
    // SAFETY: only the descriptor is read.
    let t = unsafe { e.managed().tensor() };
    assert_eq!(t.dtype, DLDataType::F8E5M2);
    // SAFETY: `data` is alive and unwritten while the view lives.
    let back = unsafe { import_view(e.managed()) }.unwrap();
    let got: Vec<f64> = back
        .as_slice::<F8E5M2>("b")
        .unwrap()
        .iter()
        .map(|x| x.to_f64())
        .collect();
    assert_eq!(got, [57344.0, f64::NEG_INFINITY]);
}

#[test]
fn fp4_pairs_and_e8m0_map_as_pytorch_exports_them() {
    use kernelyard_core::{F4E2M1x2, F8E8M0};
    assert_eq!(
        dtype_to_dlpack(DType::F4E2M1X2),
        DLDataType::new(DLDataTypeCode::FLOAT4_E2M1FN, 4, 2)
    );
    assert_eq!(dtype_to_dlpack(DType::F8E8M0), DLDataType::F8E8M0FNU);
    assert_eq!(
        (
            DLDataTypeCode::FLOAT8_E8M0FNU.0,
            DLDataTypeCode::FLOAT4_E2M1FN.0
        ),
        (14, 17)
    );
    // A torch.float4_e2m1fn_x2 tensor of shape [2] (four values 1, -6, 0.5, 3) as PyTorch
    // hands it over: the shape counts bytes.
    let bits = [0xF2u8, 0x51];
    let mut desc = Desc::cpu(&[2], &[1], DType::F32);
    desc.dtype = DLDataType::new(DLDataTypeCode::FLOAT4_E2M1FN, 4, 2);
    let m = versioned(bits.to_vec(), &desc);
    // SAFETY: the producer's context owns the 2 bytes; nobody writes.
    let v = unsafe { import_view(&m) }.unwrap();
    assert_eq!((v.dtype(), v.shape()), (DType::F4E2M1X2, &[2usize][..]));
    let pairs = v.as_slice::<F4E2M1x2>("a").unwrap();
    assert_eq!(F4E2M1x2::unpack_slice(pairs), [1.0, -6.0, 0.5, 3.0]);
    // e8m0 scales [1, 2^-127, NaN] and back through an export.
    let scales = [127u8, 0, 0xFF].map(F8E8M0::from_bits);
    let e = export(TensorView::from_slice(&scales, &[3]).unwrap()).unwrap();
    // SAFETY: only the descriptor is read.
    assert_eq!(unsafe { e.managed().tensor() }.dtype, DLDataType::F8E8M0FNU);
    // SAFETY: `scales` is alive and unwritten while the view lives.
    let back = unsafe { import_view(e.managed()) }.unwrap();
    let got = back.as_slice::<F8E8M0>("s").unwrap();
    assert_eq!((got[0].to_f64(), got[1].to_f64()), (1.0, 2f64.powi(-127)));
    assert!(got[2].to_f64().is_nan());
}

#[test]
fn read_only_tensors_are_refused_for_writing_only() {
    let mut desc = Desc::cpu(&[4], &[1], DType::F32);
    desc.flags = DlpackFlags::READ_ONLY;
    let mut m = versioned(vec![1f32; 4], &desc);
    // SAFETY: the producer's context owns the data; nobody writes.
    let err = unsafe { import_view_mut(&mut m) }.unwrap_err();
    assert!(matches!(err, DlpackError::ReadOnly), "{err:?}");
    assert!(err.to_string().contains("read-only"));
    // SAFETY: as above.
    let v = unsafe { import_view(&m) }.unwrap();
    assert_eq!(v.as_slice::<f32>("x").unwrap(), &[1.0; 4]);

    desc.flags = DlpackFlags::IS_COPIED;
    let mut m = versioned(vec![1f32; 4], &desc);
    {
        // SAFETY: the context owns the data and nothing else reaches it.
        let mut v = unsafe { import_view_mut(&mut m) }.unwrap();
        v.as_mut_slice::<f32>("x").unwrap()[3] = 7.0;
    }
    // SAFETY: as above.
    let v = unsafe { import_view(&m) }.unwrap();
    assert_eq!(v.as_slice::<f32>("x").unwrap(), &[1.0, 1.0, 1.0, 7.0]);
}

/// The error importing `m`, which must be refused.
fn refused(m: &ManagedVersioned) -> DlpackError {
    // SAFETY: the producer's context owns the data, which nobody writes; the cases that use
    // this are refused before a view exists anyway.
    unsafe { import_view(m) }.unwrap_err()
}

#[test]
fn malformed_descriptors_are_typed_errors() {
    // A negative dimension.
    let m = versioned(vec![0f32; 4], &Desc::cpu(&[2, -2], &[2, 1], DType::F32));
    let err = refused(&m);
    assert!(
        matches!(
            err,
            DlpackError::Descriptor(dlpark::tensor::Error::NegativeDimension {
                axis: 1,
                value: -2
            })
        ),
        "{err:?}"
    );
    // A negative rank.
    let m = versioned(vec![0f32; 4], &Desc::cpu(&[4], &[1], DType::F32));
    let raw = m.into_raw();
    // SAFETY: `raw` is the live tensor just made; its deleter ignores `ndim`.
    let m = unsafe {
        (*raw).dl_tensor.ndim = -1;
        Managed::from_raw(raw)
    }
    .unwrap();
    let err = refused(&m);
    assert!(matches!(
        err,
        DlpackError::Descriptor(dlpark::tensor::Error::NegativeNdim { ndim: -1 })
    ));
    // Above MAX_RANK: core's own validation error.
    let m = versioned(vec![0f32; 4], &Desc::cpu(&[1; 7], &[1; 7], DType::F32));
    let err = refused(&m);
    assert!(matches!(
        err,
        DlpackError::Invalid(ValidationError::RankTooHigh { got: 7, max: 6 })
    ));
    // Strides whose byte span overflows.
    let m = versioned(
        vec![0f32; 4],
        &Desc::cpu(&[3, 2], &[i64::MAX / 2, 1], DType::F32),
    );
    let err = refused(&m);
    assert!(
        matches!(err, DlpackError::Invalid(ValidationError::Overflow { .. })),
        "{err:?}"
    );
    // An element count that overflows.
    let m = versioned(
        vec![0f32; 4],
        &Desc::cpu(&[i64::MAX, 4], &[4, 1], DType::F32),
    );
    let err = refused(&m);
    assert!(matches!(
        err,
        DlpackError::Descriptor(dlpark::tensor::Error::NumElementsOverflow)
    ));
    // A byte offset that leaves the address space.
    let mut desc = Desc::cpu(&[4], &[1], DType::F32);
    desc.byte_offset = u64::MAX - 2;
    let m = versioned(vec![0f32; 4], &desc);
    let err = refused(&m);
    assert!(matches!(
        err,
        DlpackError::ByteOffset {
            byte_offset,
            ..
        } if byte_offset == u64::MAX - 2
    ));
    // A NULL data pointer for a non-empty tensor.
    let m = versioned(vec![0f32; 4], &Desc::cpu(&[4], &[1], DType::F32));
    let raw = m.into_raw();
    // SAFETY: as above; the deleter frees the context, not `data`.
    let m = unsafe {
        (*raw).dl_tensor.data = std::ptr::null_mut();
        Managed::from_raw(raw)
    }
    .unwrap();
    let err = refused(&m);
    assert!(matches!(
        err,
        DlpackError::Descriptor(dlpark::tensor::Error::NullData)
    ));
}

#[test]
fn negative_strides_import_and_operators_refuse_them() {
    // numpy's `x[::-1]`: the byte offset points at the last row, the row stride is negative.
    let data: Vec<f32> = (0..8).map(|i| i as f32).collect();
    let base = data.as_ptr() as usize;
    let mut desc = Desc::cpu(&[2, 4], &[-4, 1], DType::F32);
    desc.byte_offset = 4 * 4;
    let m = versioned(data, &desc);
    // SAFETY: both rows lie in the context's 8 elements; nobody writes.
    let x = unsafe { import_view(&m) }.unwrap();
    assert_eq!(x.strides(), &[-4, 1]);
    assert_eq!(x.byte_span(), Some((base, base + 32)));
    let mut out = vec![0f32; 8];
    let args = SoftmaxArgs {
        x,
        out: TensorViewMut::from_slice(&mut out, &[2, 4]).unwrap(),
    };
    assert!(matches!(
        args.validate(),
        Err(ValidationError::Strides { arg: "x", .. })
    ));
}

/// A consumer in the manner of Python's `from_dlpack`: reads the descriptor through the C ABI,
/// then calls the deleter once. Returns the elements it read (f32, contiguous).
///
/// # Safety
/// `raw` is an owned, live f32 managed tensor with explicit strides.
unsafe fn python_like_consumer(raw: *mut DLManagedTensorVersioned) -> (Vec<f32>, u64) {
    // SAFETY: the caller's promise.
    unsafe {
        let t = &(*raw).dl_tensor;
        assert_eq!((*raw).version.major, 1);
        assert!(!t.strides.is_null());
        let n: i64 = std::slice::from_raw_parts(t.shape, t.ndim as usize)
            .iter()
            .product();
        let data = t
            .data
            .cast::<u8>()
            .add(t.byte_offset as usize)
            .cast::<f32>();
        let values = std::slice::from_raw_parts(data, n as usize).to_vec();
        let flags = (*raw).flags.bits();
        ((*raw).deleter.expect("a deleter"))(raw);
        (values, flags)
    }
}

#[test]
fn export_then_import_round_trips_pointer_dtype_shape_strides() {
    let data: Vec<f32> = (0..12).map(|i| i as f32).collect();
    // SAFETY: a [4, 3] transposed view of the 12 elements of `data`, which outlives it.
    let view = unsafe {
        TensorView::from_raw_parts(
            data.as_ptr().cast(),
            DType::F32,
            &[4, 3],
            Some(&[1, 4]),
            DeviceId::CPU,
        )
    }
    .unwrap();
    let exported = export(view).unwrap();
    assert!(exported.is_read_only());
    // SAFETY: the export's descriptor lives as long as `exported`.
    let t = unsafe { exported.managed().tensor() };
    assert_eq!(t.data as usize, data.as_ptr() as usize);
    assert_eq!((t.byte_offset, t.ndim), (0, 2));
    assert_eq!(t.dtype, DLDataType::F32);
    assert_eq!(t.device, DLDevice::CPU);
    assert_eq!(exported.managed().version().major, 1);
    // SAFETY: `data` is alive and unwritten while the re-imported view lives.
    let back = unsafe { import_view(exported.managed()) }.unwrap();
    assert_eq!(back.addr(), view.addr());
    assert_eq!(back.dtype(), view.dtype());
    assert_eq!(back.shape(), view.shape());
    assert_eq!(back.strides(), view.strides());
    assert_eq!(back.device(), view.device());

    // Every dtype, a rank-0 view, and a GPU device (inspected only).
    for dtype in DType::ALL {
        let bytes = [0u64; 1];
        // SAFETY: one element of at most 8 bytes in `bytes`.
        let v = unsafe {
            TensorView::from_raw_parts(bytes.as_ptr().cast(), dtype, &[], None, DeviceId::cuda(2))
        }
        .unwrap();
        let e = export(v).unwrap();
        // SAFETY: only the descriptor is read.
        let t = unsafe { e.managed().tensor() };
        assert_eq!(t.device, DLDevice::cuda(2));
        assert_eq!(t.ndim, 0);
        // SAFETY: inspected only.
        let back = unsafe { import_view(e.managed()) }.unwrap();
        assert_eq!(
            (back.dtype(), back.shape(), back.device()),
            (dtype, &[][..], DeviceId::cuda(2))
        );
    }
}

#[test]
fn a_python_like_consumer_reads_writes_and_deletes_once() {
    // Borrowed, writable: the consumer's write lands in `out`.
    let mut out = vec![1.0f32, 2.0, 3.0, 4.0];
    {
        let exported = export_mut(TensorViewMut::from_slice(&mut out, &[2, 2]).unwrap()).unwrap();
        assert!(!exported.is_read_only());
        // SAFETY: the consumer is done (and has called the deleter) before `out` is used again.
        let raw = unsafe { exported.into_raw() };
        // SAFETY: `raw` is an owned f32 export; write one element, then read and delete.
        let (values, flags) = unsafe {
            *(*raw).dl_tensor.data.cast::<f32>().add(3) = 40.0;
            python_like_consumer(raw)
        };
        assert_eq!(values, [1.0, 2.0, 3.0, 40.0]);
        assert_eq!(flags, 0);
    }
    assert_eq!(out, [1.0, 2.0, 3.0, 40.0]);

    // Owning: the deleter drops the owner exactly once.
    let drops = Arc::new(AtomicUsize::new(0));
    let owner = (vec![0.5f32; 6], DropCount(Arc::clone(&drops)));
    let exported = export_owning(owner, |(v, _)| TensorView::from_slice(v, &[2, 3])).unwrap();
    assert!(exported.is_read_only());
    let raw = exported.into_managed().into_raw();
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    // SAFETY: `raw` is an owned f32 export that owns its data.
    let (values, flags) = unsafe { python_like_consumer(raw) };
    assert_eq!(values, [0.5; 6]);
    assert_eq!(flags, DlpackFlags::READ_ONLY.bits());
    assert_eq!(drops.load(Ordering::SeqCst), 1);

    // Dropped in Rust instead: once too.
    let drops = Arc::new(AtomicUsize::new(0));
    let owner = (vec![0.5f32; 6], DropCount(Arc::clone(&drops)));
    drop(export_owning(owner, |(v, _)| TensorView::from_slice(v, &[6])).unwrap());
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn owning_exports_free_the_owner_once_on_errors_too() {
    let drops = Arc::new(AtomicUsize::new(0));
    let owner = (vec![0.5f32; 6], DropCount(Arc::clone(&drops)));
    let err = export_owning(owner, |(v, _)| TensorView::from_slice(v, &[4, 4])).unwrap_err();
    assert!(matches!(
        err,
        DlpackError::Invalid(ValidationError::Length { .. })
    ));
    assert_eq!(drops.load(Ordering::SeqCst), 1);

    let drops = Arc::new(AtomicUsize::new(0));
    let owner = (vec![0.5f32; 6], DropCount(Arc::clone(&drops)));
    let err = export_owning(owner, |(v, _)| {
        // SAFETY: one element of the owner's Vec, on a device index DLPack cannot hold.
        unsafe {
            TensorView::from_raw_parts(
                v.as_ptr().cast(),
                DType::F32,
                &[1],
                None,
                DeviceId::cuda(u32::MAX),
            )
        }
    })
    .unwrap_err();
    assert!(matches!(err, DlpackError::ExportDevice { .. }), "{err:?}");
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn an_owning_writable_export_imports_mutably() {
    let exported =
        export_owning_mut(vec![0i32; 4], |v| TensorViewMut::from_slice(v, &[4])).unwrap();
    let mut m = exported.into_managed();
    {
        // SAFETY: the export owns its Vec; nothing else reaches it.
        let mut v = unsafe { import_view_mut(&mut m) }.unwrap();
        v.as_mut_slice::<i32>("x")
            .unwrap()
            .copy_from_slice(&[1, 2, 3, 4]);
    }
    // SAFETY: as above.
    let v = unsafe { import_view(&m) }.unwrap();
    assert_eq!(v.as_slice::<i32>("x").unwrap(), &[1, 2, 3, 4]);
}

#[test]
fn views_cannot_outlive_their_handle_or_memory() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/compile_fail_dlpack/*.rs");
}
