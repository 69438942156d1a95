//! The tuner on the CPU: every candidate verified against the reference before it is timed,
//! a wrong candidate rejected however fast or preferred, one tuning per key per process, and
//! the entry applied by a tuned policy.

use kernelyard::tune::TuningCache;
use kernelyard::{
    Args, ChoiceSource, DType, DeviceId, Error, Kernel, KernelMeta, LaunchCtx, OpKind, Params,
    Policy, Problem, Registry, Runtime,
};
use kernelyard_suite::tune::{tune, TuneOptions};

/// `reference.softmax` with its first output element off by one: wrong, and preferred by
/// priority.
struct Wrong(KernelMeta);

impl Kernel for Wrong {
    fn meta(&self) -> &KernelMeta {
        &self.0
    }
    fn launch(&self, ctx: &LaunchCtx<'_>, args: &mut Args<'_>, p: &Problem) -> Result<(), Error> {
        kernelyard_reference::ops::softmax::SOFTMAX.launch(ctx, args, p)?;
        if let Args::Softmax(a) = args {
            match p.dtype() {
                DType::F32 => a.out.as_mut_slice::<f32>("out")?[0] += 1.0,
                other => panic!("the test uses f32, not {other}"),
            }
        }
        Ok(())
    }
}

fn wrong() -> &'static Wrong {
    let reference = kernelyard_reference::ops::softmax::SOFTMAX.meta();
    Box::leak(Box::new(Wrong(KernelMeta {
        name: "test.softmax.wrong",
        backend: "test",
        priority: 100,
        ..*reference
    })))
}

fn softmax(rows: usize) -> Problem {
    let op = OpKind::Softmax;
    Problem::from_params(
        op,
        &Params::parse(op, &format!("rows={rows},cols=300")).unwrap(),
        DType::F32,
    )
    .unwrap()
}

fn runtime_with_wrong() -> Runtime {
    let mut kernels: Vec<&'static dyn Kernel> = Registry::global().unwrap().all().to_vec();
    kernels.push(wrong());
    let registry: &'static Registry = Box::leak(Box::new(Registry::from_kernels(kernels).unwrap()));
    Runtime::builder().registry(registry).build().unwrap()
}

#[test]
fn a_wrong_candidate_is_rejected_and_the_verified_one_chosen() {
    let rt = runtime_with_wrong();
    // Without tuning, priority picks the wrong kernel: the failure tuning must not repeat.
    let auto = rt
        .select(DeviceId::CPU, &softmax(8), &Policy::auto())
        .unwrap();
    assert_eq!(auto.kernel_name(), "test.softmax.wrong");
    let mut opts = TuneOptions::new(DeviceId::CPU, softmax(8));
    opts.warmup = 1;
    opts.iters = 3;
    let mut lines = Vec::new();
    let report = tune(&rt, &opts, &mut |l| lines.push(l.to_string())).unwrap();
    assert!(!report.memoised);
    let entry = report.entry.clone().expect("the reference is verified");
    assert_eq!(entry.choice.kernel, "reference.softmax");
    let wrong = report
        .measurements
        .iter()
        .find(|m| m.candidate.kernel == "test.softmax.wrong")
        .unwrap();
    assert!(!wrong.verified);
    assert_eq!(wrong.ms, None, "a rejected candidate is never timed");
    assert!(
        wrong.rejected.as_deref().unwrap().starts_with("oracle:"),
        "{:?}",
        wrong.rejected
    );
    let chosen = entry.chosen().unwrap();
    assert!(chosen.verified && chosen.ms.is_some_and(|ms| ms > 0.0));
    assert!(lines.iter().any(|l| l.contains("verifying")), "{lines:?}");
    // The same key again: not tuned twice.
    let again = tune(&rt, &opts, &mut |_| {}).unwrap();
    assert!(again.memoised);
    assert_eq!(again.entry.unwrap().choice, entry.choice);
    // The entry, in a cache, makes a tuned policy choose the verified kernel.
    let mut cache = TuningCache::in_memory();
    cache.insert(entry);
    let mut kernels: Vec<&'static dyn Kernel> = Registry::global().unwrap().all().to_vec();
    kernels.push(self::wrong());
    let registry: &'static Registry = Box::leak(Box::new(Registry::from_kernels(kernels).unwrap()));
    let tuned_rt = Runtime::builder()
        .registry(registry)
        .tuning_cache(cache)
        .build()
        .unwrap();
    let plan = tuned_rt
        .select(DeviceId::CPU, &softmax(8), &Policy::auto().tuned())
        .unwrap();
    assert_eq!(plan.kernel_name(), "reference.softmax");
    assert_eq!(plan.report().source, Some(ChoiceSource::Tuned));
}

#[test]
fn constraints_reject_candidates_that_do_not_declare_them() {
    let reference = kernelyard_reference::ops::softmax::SOFTMAX.meta();
    let loose: &'static Wrong = Box::leak(Box::new(Wrong(KernelMeta {
        name: "test.softmax.loose",
        backend: "test",
        deterministic: false,
        batch_invariant: false,
        ..*reference
    })));
    let mut kernels: Vec<&'static dyn Kernel> = Registry::global().unwrap().all().to_vec();
    kernels.push(loose);
    let registry: &'static Registry = Box::leak(Box::new(Registry::from_kernels(kernels).unwrap()));
    let rt = Runtime::builder().registry(registry).build().unwrap();
    let mut opts = TuneOptions::new(DeviceId::CPU, softmax(5));
    opts.warmup = 1;
    opts.iters = 2;
    opts.batch_invariant = true;
    let report = tune(&rt, &opts, &mut |_| {}).unwrap();
    assert!(report.key.constrained);
    assert!(!report.key.fields.contains_key("rows"));
    let loose = report
        .measurements
        .iter()
        .find(|m| m.candidate.kernel == "test.softmax.loose")
        .unwrap();
    assert!(
        loose
            .rejected
            .as_deref()
            .is_some_and(|r| r.contains("batch invariance was required")),
        "{loose:?}"
    );
    assert_eq!(report.entry.unwrap().choice.kernel, "reference.softmax");
}
