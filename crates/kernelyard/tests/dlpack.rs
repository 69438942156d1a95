//! End to end through DLPack on the CPU: two tensors from a foreign producer (an input with a
//! byte offset, read-only, DLPack 1.x; an output of the legacy ABI with NULL strides) are
//! imported without a copy, softmax runs on them through the reference backend, and the output
//! is exported to a consumer that reads it through the C ABI and calls the deleter once.

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kernelyard::dlpack::dlpark::ffi::{DLDataType, DLDevice, DLManagedTensorVersioned};
use kernelyard::dlpack::dlpark::metadata::Dynamic;
use kernelyard::dlpack::dlpark::{DlpackFlags, Managed, ManagedTensorBase};
use kernelyard::dlpack::{export, import_view, import_view_mut, ManagedLegacy, ManagedVersioned};
use kernelyard::ops::softmax::SoftmaxArgs;
use kernelyard::{Args, Policy, Runtime, Stream};

struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A producer's f32 tensor (ABI `M`) whose context owns `data` and counts its own drop.
fn produce<M: ManagedTensorBase>(
    data: Vec<f32>,
    shape: &[i64],
    strides: Option<&[i64]>,
    byte_offset: u64,
    flags: DlpackFlags,
    drops: &Arc<AtomicUsize>,
) -> Managed<M> {
    let ptr = data.as_ptr().cast_mut().cast::<c_void>();
    let ones = vec![1i64; shape.len()];
    let ctx = Box::new((data, DropCount(Arc::clone(drops))));
    let mut init = Dynamic::new(shape, strides.unwrap_or(&ones))
        .initialize_as::<M>(ctx)
        .unwrap();
    init.set_data(ptr)
        .set_dtype(DLDataType::F32)
        .set_device(DLDevice::CPU)
        .set_byte_offset(byte_offset);
    // SAFETY: READ_ONLY as asked; IS_COPIED never.
    unsafe { init.set_flags_unchecked(flags) };
    if strides.is_none() {
        init.tensor_mut().strides = std::ptr::null_mut();
    }
    // SAFETY: the context owns the data; the allocation owns shape and strides.
    unsafe { init.finish() }
}

fn softmax_rows(x: &[f32], cols: usize) -> Vec<f32> {
    x.chunks(cols)
        .flat_map(|row| {
            let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let sum: f64 = row.iter().map(|&v| ((v - max) as f64).exp()).sum();
            row.iter()
                .map(move |&v| (((v - max) as f64).exp() / sum) as f32)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn softmax_on_imported_tensors_then_export_the_output() {
    kernelyard::link_backends();
    let rt = Runtime::new().unwrap();
    let (rows, cols) = (3usize, 5usize);
    let pad = 7usize;
    let values: Vec<f32> = (0..rows * cols)
        .map(|i| (i as f32 * 0.61).sin() * 3.0)
        .collect();
    let mut storage = vec![f32::NAN; pad];
    storage.extend_from_slice(&values);
    let x_drops = Arc::new(AtomicUsize::new(0));
    let out_drops = Arc::new(AtomicUsize::new(0));
    let x_m: ManagedVersioned = produce(
        storage,
        &[rows as i64, cols as i64],
        Some(&[cols as i64, 1]),
        (pad * 4) as u64,
        DlpackFlags::READ_ONLY,
        &x_drops,
    );
    let mut out_m: ManagedLegacy = produce(
        vec![0.0; rows * cols],
        &[rows as i64, cols as i64],
        None,
        0,
        DlpackFlags::empty(),
        &out_drops,
    );
    let out_addr = {
        // SAFETY: the producers' contexts own both buffers, which nothing else reaches; the
        // views end with this block, before the handles drop.
        let x = unsafe { import_view(&x_m) }.unwrap();
        // SAFETY: as above; `out` is a separate buffer, written by the kernel only.
        let out = unsafe { import_view_mut(&mut out_m) }.unwrap();
        let mut args = Args::Softmax(SoftmaxArgs { x, out });
        let plan = rt.run(&Policy::auto(), &Stream::host(), &mut args).unwrap();
        assert_eq!(plan.kernel_name(), "reference.softmax");
        let Args::Softmax(SoftmaxArgs { out, .. }) = args else {
            unreachable!("the args were built as softmax")
        };

        // Export the output to a consumer that sees only the C ABI.
        let exported = export(out.as_view()).unwrap();
        let raw: *mut DLManagedTensorVersioned = exported.as_ptr();
        // SAFETY: `exported` owns `raw` and lives across this block; the data is the
        // producer's buffer, alive while `out_m` is.
        let got: Vec<f32> = unsafe {
            let t = &(*raw).dl_tensor;
            assert_eq!((t.ndim, t.byte_offset, (*raw).flags.bits()), (2, 0, 1));
            assert_eq!(std::slice::from_raw_parts(t.strides, 2), &[cols as i64, 1]);
            std::slice::from_raw_parts(t.data.cast::<f32>(), rows * cols).to_vec()
        };
        let want = softmax_rows(&values, cols);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-6, "element {i}: {g} vs {w}");
        }
        for row in got.chunks(cols) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        // SAFETY: handed to a consumer that only calls the deleter, before `out_m` drops.
        let raw = unsafe { exported.into_raw() };
        // SAFETY: `raw` is owned here; the deleter frees the export's own allocation.
        unsafe { ((*raw).deleter.expect("a deleter"))(raw) };
        out.addr()
    };
    // The export borrowed the producer's memory: deleting it freed nothing of theirs.
    assert_eq!(out_drops.load(Ordering::SeqCst), 0);
    // SAFETY: the output buffer, alive in `out_m`; nobody writes it now.
    let back = unsafe { import_view(&out_m) }.unwrap();
    assert_eq!(back.addr(), out_addr);
    drop(x_m);
    drop(out_m);
    assert_eq!(x_drops.load(Ordering::SeqCst), 1);
    assert_eq!(out_drops.load(Ordering::SeqCst), 1);
}
