//! The CUDA backend on a real device: probing, the module pipeline, owned and borrowed streams,
//! and memory kernelyard does not own. Kernel numerics are the equivalence suite's job
//! (`tests/`, `kernelyard verify`).

use cudarc::driver::CudaContext;
use kernelyard_core::ops::softmax::{RowsProblem, SoftmaxArgs};
use kernelyard_core::{
    Arch, Args, DType, DeviceId, Policy, Runtime, Sm, Stream, TensorView, TensorViewMut,
};
use kernelyard_cuda::{device, source};

const GPU: &str = "requires a CUDA device";

fn runtime() -> Runtime {
    kernelyard_cuda::link();
    Runtime::new().expect("runtime")
}

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 8.0 - 4.0) as f32
        })
        .collect()
}

#[test]
#[ignore = "requires a CUDA device"]
fn the_probe_reports_the_device() {
    let _ = GPU;
    let rt = runtime();
    let caps = rt.capabilities(DeviceId::cuda(0)).expect("cuda:0");
    let Arch::Cuda { sm } = caps.arch else {
        panic!("{:?}", caps.arch)
    };
    println!(
        "{}: sm_{}{}, {} SMs, {} KiB shared/block opt-in, {} GiB, driver {:?}, NVRTC {:?}",
        caps.name,
        sm.major,
        sm.minor,
        caps.multiprocessors,
        caps.shared_mem_per_block_optin >> 10,
        caps.memory_bytes >> 30,
        caps.driver_version,
        caps.compiler_version
    );
    assert!(sm >= Sm::new(7, 5));
    assert!(caps.multiprocessors > 0);
    assert!(caps.shared_mem_per_block_optin >= caps.shared_mem_per_block);
    assert!(caps.memory_bytes > 1 << 30);
    assert!(caps.driver_version.is_some() && caps.compiler_version.is_some());
    assert!(!caps.name.is_empty());
}

#[test]
#[ignore = "requires a CUDA device"]
fn every_listed_entry_point_exists_in_its_loaded_module() {
    let _rt = runtime();
    assert!(!source::all().is_empty());
    for entry in source::all() {
        device::load_symbols(DeviceId::cuda(0), entry.source)
            .unwrap_or_else(|e| panic!("kernels/{}: {e}", entry.source.file));
    }
}

fn softmax_on(rt: &Runtime, stream: &Stream, x: TensorView<'_>, y: TensorViewMut<'_>) {
    let mut args = Args::Softmax(SoftmaxArgs { x, out: y });
    let plan = rt
        .run(&Policy::kernel("cuda.softmax"), stream, &mut args)
        .expect("run");
    assert_eq!(plan.kernel_name(), "cuda.softmax");
}

fn check_softmax(x: &[f32], y: &[f32], rows: usize, cols: usize) {
    let p = RowsProblem {
        rows,
        cols,
        dtype: DType::F32,
        align: 16,
    };
    let xs: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let want = kernelyard_reference::ops::softmax::softmax(&p, &xs);
    for (i, (&got, &want)) in y.iter().zip(&want).enumerate() {
        assert!(
            (f64::from(got) - want).abs() <= 1e-5 * want.abs() + 1e-7,
            "element {i}: got {got}, want {want}"
        );
    }
}

#[test]
#[ignore = "requires a CUDA device"]
fn a_borrowed_stream_and_foreign_memory_are_used_and_left_alone() {
    let rt = runtime();
    let (rows, cols) = (37, 1000);
    let x = random(rows * cols, 7);
    // The "framework": its own context handle, stream and allocations, through cudarc.
    let ctx = CudaContext::new(0).expect("context");
    let fw_stream = ctx.new_stream().expect("stream");
    let dx = fw_stream.clone_htod(&x).expect("upload");
    let mut dy = fw_stream
        .clone_htod(&vec![f32::NAN; rows * cols])
        .expect("poisoned output");
    {
        let (px, _gx) = cudarc::driver::DevicePtr::device_ptr(&dx, &fw_stream);
        let (py, _gy) = cudarc::driver::DevicePtrMut::device_ptr_mut(&mut dy, &fw_stream);
        // SAFETY: `dx`/`dy` are live allocations of `rows * cols` f32 on cuda:0 that outlive the
        // views; the stream is the framework's live stream on cuda:0.
        let (xv, yv, stream) = unsafe {
            (
                TensorView::from_raw_parts(
                    px as usize as *const _,
                    DType::F32,
                    &[rows, cols],
                    None,
                    DeviceId::cuda(0),
                )
                .expect("x view"),
                TensorViewMut::from_raw_parts(
                    py as usize as *mut _,
                    DType::F32,
                    &[rows, cols],
                    None,
                    DeviceId::cuda(0),
                )
                .expect("y view"),
                Stream::from_raw(DeviceId::cuda(0), fw_stream.cu_stream() as *mut _),
            )
        };
        softmax_on(&rt, &stream, xv, yv);
    }
    fw_stream.synchronize().expect("sync");
    let y = fw_stream.clone_dtoh(&dy).expect("download");
    check_softmax(&x, &y, rows, cols);
    // The framework's memory and stream are still its own: use them again, then free them
    // (a double free or a destroyed stream would fail here).
    let again = fw_stream.clone_dtoh(&dx).expect("x still readable");
    assert_eq!(again, x);
    drop((dx, dy));
    fw_stream.synchronize().expect("stream still alive");
}

#[test]
#[ignore = "requires a CUDA device"]
fn an_owned_stream_runs_kernels_and_is_destroyed_on_drop() {
    let rt = runtime();
    let (rows, cols) = (5, 4097);
    let x = random(rows * cols, 11);
    let device = DeviceId::cuda(0);
    let mut bx = rt.alloc(device, x.len() * 4).expect("alloc");
    bx.upload(&x).expect("upload");
    let mut by = rt.alloc(device, x.len() * 4).expect("alloc");
    by.upload(&vec![f32::NAN; x.len()]).expect("poison");
    let stream = rt.create_stream(device).expect("stream");
    assert!(!stream.raw().is_null());
    softmax_on(
        &rt,
        &stream,
        bx.view(DType::F32, &[rows, cols]).expect("view"),
        by.view_mut(DType::F32, &[rows, cols]).expect("view"),
    );
    rt.synchronize(&stream).expect("sync");
    let y: Vec<f32> = by.download(x.len()).expect("download");
    check_softmax(&x, &y, rows, cols);
    // Timing on the stream uses events.
    let ms = rt
        .time(&stream, &mut || {
            let mut args = Args::Softmax(SoftmaxArgs {
                x: bx.view(DType::F32, &[rows, cols])?,
                out: by.view_mut(DType::F32, &[rows, cols])?,
            });
            rt.run(&Policy::kernel("cuda.softmax"), &stream, &mut args)
                .map(|_| ())
        })
        .expect("time");
    assert!(ms > 0.0 && ms < 1000.0, "{ms} ms");
    drop(stream);
}

#[test]
#[ignore = "requires a CUDA device"]
fn the_copy_bandwidth_is_measured() {
    let rt = runtime();
    let bw = rt
        .copy_bandwidth(DeviceId::cuda(0), 1 << 30, 10)
        .expect("copy bandwidth");
    println!(
        "device-to-device copy: {:.3} TB/s (read + write)",
        bw / 1e12
    );
    assert!(bw > 100e9, "{bw}");
}
