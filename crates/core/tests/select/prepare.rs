//! `Plan::prepare` and `Runtime::prepare`: the kernel's preparation runs with the plan's
//! problem and the caller's stream, a stream of another device is refused, and kernels without
//! a preparation prepare as a no-op.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use kernelyard_core::ops::softmax::{Softmax, SoftmaxArgs, SoftmaxProblem};
use kernelyard_core::{
    DeviceId, DeviceKind, Error, Kernel, KernelDef, KernelMeta, LaunchCtx, OpKind, Policy,
    Registry, Stream,
};

use crate::fakes::{cpu, cuda, fake, meta, registry, runtime, softmax_problem, GPU0};

static PREPARED: AtomicUsize = AtomicUsize::new(0);
static SEEN: Mutex<Vec<(usize, DeviceId)>> = Mutex::new(Vec::new());

fn prepare(meta: &KernelMeta, ctx: &LaunchCtx<'_>, p: &SoftmaxProblem) -> Result<(), Error> {
    assert_eq!(meta.name, "fake.softmax.prepared");
    PREPARED.fetch_add(1, Ordering::SeqCst);
    SEEN.lock().unwrap().push((p.cols, ctx.stream.device()));
    Ok(())
}

fn launch(_: &LaunchCtx<'_>, _: &mut SoftmaxArgs<'_>, _: &SoftmaxProblem) -> Result<(), Error> {
    Ok(())
}

static PREPARED_KERNEL: KernelDef<Softmax> = KernelDef::<Softmax>::new(
    KernelMeta::new::<Softmax>(
        "fake.softmax.prepared",
        "fake",
        DeviceKind::Cuda,
        kernelyard_core::ArchReq::Any,
        module_path!(),
        "a fake softmax with a preparation",
    )
    .priority(5),
    launch,
)
.with_prepare(prepare);

fn with_prepared() -> &'static Registry {
    let r = Registry::from_kernels([&PREPARED_KERNEL as &'static dyn Kernel])
        .expect("test registry builds");
    Box::leak(Box::new(r))
}

#[test]
fn prepare_runs_the_kernels_preparation_with_the_plans_problem_and_the_stream() {
    let rt = runtime(with_prepared(), vec![cuda(0, 9, 0)]);
    // SAFETY: never launched on (the fake kernel queues nothing).
    let stream = unsafe { Stream::from_raw(GPU0, 0x10 as *mut std::ffi::c_void) };
    let before = PREPARED.load(Ordering::SeqCst);
    let plan = rt
        .prepare(&Policy::auto(), &stream, &softmax_problem())
        .expect("prepared");
    assert_eq!(plan.kernel_name(), "fake.softmax.prepared");
    plan.prepare(&stream).expect("again");
    assert_eq!(PREPARED.load(Ordering::SeqCst) - before, 2);
    assert!(SEEN.lock().unwrap().contains(&(4096, GPU0)));
}

#[test]
fn a_stream_of_another_device_is_refused_before_the_kernel_sees_it() {
    let rt = runtime(with_prepared(), vec![cuda(0, 9, 0)]);
    let plan = rt
        .select(GPU0, &softmax_problem(), &Policy::auto())
        .expect("selected");
    let before = PREPARED.load(Ordering::SeqCst);
    match plan.prepare(&Stream::host()) {
        Err(Error::WrongDevice { what, have, need }) => {
            assert_eq!((what, have, need), ("stream", DeviceId::CPU, GPU0));
        }
        other => panic!("expected WrongDevice, got {other:?}"),
    }
    assert_eq!(PREPARED.load(Ordering::SeqCst), before);
}

#[test]
fn kernels_without_a_preparation_prepare_as_a_no_op() {
    let k = fake(meta("fake.softmax.plain", OpKind::Softmax, DeviceKind::Cpu));
    let rt = runtime(registry(&[k]), vec![cpu()]);
    let plan = rt
        .prepare(&Policy::auto(), &Stream::host(), &softmax_problem())
        .expect("prepared");
    assert_eq!(plan.kernel_name(), "fake.softmax.plain");
    assert_eq!(k.launches.load(Ordering::SeqCst), 0);
}
