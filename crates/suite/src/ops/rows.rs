//! `softmax` and `log_softmax`: rows are independent.

use kernelyard::ops::log_softmax::{LogSoftmax, LogSoftmaxArgs};
use kernelyard::ops::softmax::{RowsProblem, Softmax, SoftmaxArgs};
use kernelyard::ops::Listed;
use kernelyard::{Args, Problem};
use kernelyard_reference::ops::log_softmax::log_softmax;
use kernelyard_reference::ops::softmax::softmax;

use crate::cases::Scalars;
use crate::data::{HostTensor, Init, Instance, OutputSpec};
use crate::exec::{input, outputs_mut, required, DeviceTensor};
use crate::ops::{expect, logit_rows, Driver};
use crate::rng::Rng;

/// The driver of `softmax` (`log: false`) and `log_softmax` (`log: true`).
pub(crate) struct RowsDriver {
    /// `log_softmax` rather than `softmax`.
    pub log: bool,
}

impl RowsDriver {
    fn problem<'p>(&self, p: &'p Problem) -> Result<&'p RowsProblem, String> {
        if self.log {
            expect::<LogSoftmax>(p)
        } else {
            expect::<Softmax>(p)
        }
    }

    fn wrap(&self, q: RowsProblem) -> Problem {
        if self.log {
            LogSoftmax::wrap(q)
        } else {
            Softmax::wrap(q)
        }
    }
}

impl Driver for RowsDriver {
    fn rows(&self, p: &Problem) -> Result<usize, String> {
        Ok(self.problem(p)?.rows)
    }

    fn with_rows(&self, p: &Problem, rows: usize) -> Result<Problem, String> {
        let mut q = self.problem(p)?.clone();
        q.rows = rows;
        Ok(self.wrap(q))
    }

    fn generate(
        &self,
        p: &Problem,
        _s: &Scalars,
        rng: &mut Rng,
    ) -> Result<Vec<HostTensor>, String> {
        let p = self.problem(p)?;
        let x = logit_rows(rng, p.dtype, p.rows, p.cols);
        Ok(vec![HostTensor::of(
            "x",
            p.dtype,
            vec![p.rows, p.cols],
            Some(0),
            x,
        )])
    }

    fn input_shapes(&self, p: &Problem) -> Result<Vec<HostTensor>, String> {
        let p = self.problem(p)?;
        Ok(vec![HostTensor::shape_only(
            "x",
            p.dtype,
            vec![p.rows, p.cols],
            Some(0),
        )])
    }

    fn outputs(&self, p: &Problem, _inputs: &[HostTensor]) -> Result<Vec<OutputSpec>, String> {
        let p = self.problem(p)?;
        Ok(vec![OutputSpec {
            name: "out",
            dtype: p.dtype,
            shape: vec![p.rows, p.cols],
            batch_axis: Some(0),
            init: Init::Poison,
        }])
    }

    fn oracle(&self, inst: &Instance) -> Result<Vec<Vec<f64>>, String> {
        let p = self.problem(&inst.problem)?;
        let x = &inst.input("x")?.data;
        Ok(vec![if self.log {
            log_softmax(p, x)
        } else {
            softmax(p, x)
        }])
    }

    fn args<'a>(
        &self,
        _inst: &Instance,
        ins: &'a [DeviceTensor],
        outs: &'a mut [DeviceTensor],
    ) -> Result<Args<'a>, String> {
        let [out] = outputs_mut(outs, ["out"])?;
        let (x, out) = (input(ins, "x")?, required(out, "out")?);
        Ok(if self.log {
            Args::LogSoftmax(LogSoftmaxArgs { x, out })
        } else {
            Args::Softmax(SoftmaxArgs { x, out })
        })
    }
}
