//! Embedding kernelyard: name a device and a policy, run an operator, handle the error.
//!
//! This file is the README's embedding example (a test keeps them identical).

use kernelyard::ops::rms_norm::RmsNormArgs;
use kernelyard::{
    Args, DeviceId, Error, Policy, Runtime, SelectError, Stream, TensorView, TensorViewMut,
};

fn main() -> Result<(), Error> {
    kernelyard::link_backends(); // links the backends chosen by cargo features
    let rt = Runtime::new()?; // probes backends once; reads KERNELYARD_KERNELS

    let (rows, hidden) = (4, 64);
    let x: Vec<f32> = (0..rows * hidden)
        .map(|i| (i as f32 * 0.37).sin())
        .collect();
    let w = vec![1.0f32; hidden];
    let mut y = vec![f32::NAN; rows * hidden];
    let mut args = Args::RmsNorm(RmsNormArgs::new(
        TensorView::from_slice(&x, &[rows, hidden])?,
        TensorView::from_slice(&w, &[hidden])?,
        TensorViewMut::from_slice(&mut y, &[rows, hidden])?,
        1e-6,
    ));

    // Name the policy: here, only deterministic, batch-invariant kernels may run.
    let policy = Policy::auto().batch_invariant();
    let plan = rt.run(&policy, &Stream::host(), &mut args)?; // validate, select (cached), launch
    println!(
        "ran {} on {}\n{}",
        plan.kernel_name(),
        plan.device(),
        plan.report()
    );

    // A device that is not here is an error that says why, never a fallback to the CPU.
    match rt.select(DeviceId::cuda(0), plan.problem(), &policy) {
        Ok(p) => println!("cuda:0 would run {}", p.kernel_name()),
        Err(SelectError::UnknownDevice { why, .. }) => println!("cuda:0 unavailable: {why}"),
        Err(other) => return Err(other.into()),
    }
    Ok(())
}
