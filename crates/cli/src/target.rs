//! The arguments `bench` and `tune` share: an operator, a device, a problem and its dtype.

use clap::Args;
use kernelyard::{DType, DeviceId, OpKind, Params, Problem};

use crate::error;

/// One problem on one device (`OP --device DEV --problem K=V,... --dtype T`).
#[derive(Args)]
pub struct Target {
    // The operator; the help lists the catalog's.
    #[arg(value_name = "OP", help = format!("The operator ({})", crate::op_names()))]
    pub op: OpKind,
    /// The device to run on: `cpu`, `cuda:N` or `rocm:N`. There is no default device.
    #[arg(long, value_name = "DEV")]
    pub device: DeviceId,
    /// The problem's shape and flags as `key=value,...` (the keys per operator are listed by
    /// `kernelyard explain --help`).
    #[arg(long, value_name = "K=V,...")]
    pub problem: String,
    /// The primary dtype (of the main input): f32, f16 or bf16; f8e4m3, f8e5m2 or f4e2m1x2
    /// (A's) for scaled_gemm.
    #[arg(long, value_name = "T")]
    pub dtype: DType,
}

impl Target {
    /// The problem these arguments name (a [`error::Class::Problem`] error if core refuses
    /// them).
    pub fn problem(&self) -> error::Result<Problem> {
        let params = Params::parse(self.op, &self.problem).map_err(error::problem)?;
        Problem::from_params(self.op, &params, self.dtype).map_err(error::problem)
    }
}
