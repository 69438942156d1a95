//! `selective_state_update`: batch entries are independent; `A`, `D` and `dt_bias` are shared.
//!
//! `A` is negative (`-exp(u)`, `u` in `[ln 0.5, ln 16)`), so the state decays. With softplus,
//! `dt + dt_bias` lies around `[-6, 0]` (time steps of 0.002 to 0.7, as Mamba's init gives);
//! without it, `dt` and `dt_bias` are small and positive so `exp(A * dt)` stays below 1.
//!
//! With `state_indices`, the state is a cache of `cache_slots` rows (no batch axis: every run
//! gets the whole cache) and the indices are distinct random slots; when the cache has more
//! slots than the batch has rows, about one entry in four is [`PAD_SLOT_ID`] (never all).
//! Rows appended by the batch-invariance check are padded entries
//! ([`Driver::fix_appended`]), so they cannot name a slot the first rows own.

use kernelyard::ops::selective_state_update::{
    SelectiveStateUpdate, SelectiveStateUpdateArgs, SelectiveStateUpdateProblem, PAD_SLOT_ID,
};
use kernelyard::ops::Listed;
use kernelyard::{Args, DType, Problem};
use kernelyard_reference::host::round_to;
use kernelyard_reference::ops::selective_state_update::{selective_state_update, SsuInputs};

use crate::cases::Scalars;
use crate::data::{HostTensor, Init, Instance, OutputSpec};
use crate::exec::{input, optional_input, outputs_mut, required, DeviceTensor};
use crate::ops::{expect, Driver};
use crate::rng::Rng;

/// The `selective_state_update` driver.
pub(crate) struct SsuDriver;

impl Driver for SsuDriver {
    fn rows(&self, p: &Problem) -> Result<usize, String> {
        Ok(expect::<SelectiveStateUpdate>(p)?.batch)
    }

    fn with_rows(&self, p: &Problem, rows: usize) -> Result<Problem, String> {
        let mut q = expect::<SelectiveStateUpdate>(p)?.clone();
        q.batch = rows;
        if q.index_dtype.is_none() {
            q.cache_slots = rows;
        }
        Ok(SelectiveStateUpdate::wrap(q))
    }

    fn fix_appended(&self, inputs: &mut [HostTensor], rows: usize) -> Result<(), String> {
        if let Some(ix) = inputs.iter_mut().find(|t| t.name == "state_indices") {
            for v in ix.data.iter_mut().skip(rows) {
                *v = PAD_SLOT_ID as f64;
            }
        }
        Ok(())
    }

    fn generate(
        &self,
        p: &Problem,
        _s: &Scalars,
        rng: &mut Rng,
    ) -> Result<Vec<HostTensor>, String> {
        let p = expect::<SelectiveStateUpdate>(p)?;
        let (b, h, hd, n, g) = (p.batch, p.heads, p.head_dim, p.state_dim, p.groups);
        let (dt_range, bias_range) = if p.dt_softplus {
            ((-2.0, 1.0), (-4.0, -1.0))
        } else {
            ((0.001, 0.3), (0.0, 0.1))
        };
        let a_shape = if p.a_per_head {
            vec![h]
        } else {
            vec![h, hd, n]
        };
        let a_len: usize = a_shape.iter().product();
        let a = (0..a_len)
            .map(|_| {
                let u = rng.uniform(0.5f64.ln(), 16f64.ln());
                -round_to(DType::F32, u.exp())
            })
            .collect();
        let mut v = vec![
            HostTensor::uniform(
                "state",
                p.state_dtype,
                vec![p.cache_slots, h, hd, n],
                state_axis(p),
                rng,
                -1.0,
                1.0,
            ),
            HostTensor::uniform("x", p.dtype, vec![b, h, hd], Some(0), rng, -1.0, 1.0),
            HostTensor::uniform(
                "dt",
                p.dtype,
                vec![b, h, hd],
                Some(0),
                rng,
                dt_range.0,
                dt_range.1,
            ),
            HostTensor::of("a", DType::F32, a_shape, None, a),
            HostTensor::uniform("bm", p.dtype, vec![b, g, n], Some(0), rng, -1.0, 1.0),
            HostTensor::uniform("cm", p.dtype, vec![b, g, n], Some(0), rng, -1.0, 1.0),
        ];
        if p.dt_bias {
            v.push(HostTensor::uniform(
                "dt_bias",
                DType::F32,
                vec![h, hd],
                None,
                rng,
                bias_range.0,
                bias_range.1,
            ));
        }
        if p.d {
            v.push(HostTensor::uniform(
                "d",
                DType::F32,
                vec![h, hd],
                None,
                rng,
                -1.0,
                1.0,
            ));
        }
        if p.z {
            v.push(HostTensor::uniform(
                "z",
                p.dtype,
                vec![b, h, hd],
                Some(0),
                rng,
                -2.0,
                2.0,
            ));
        }
        if let Some(dt) = p.index_dtype {
            v.push(HostTensor::of(
                "state_indices",
                dt,
                vec![b],
                Some(0),
                indices(p, rng),
            ));
        }
        Ok(v)
    }

    fn input_shapes(&self, p: &Problem) -> Result<Vec<HostTensor>, String> {
        let p = expect::<SelectiveStateUpdate>(p)?;
        let (b, h, hd, n, g) = (p.batch, p.heads, p.head_dim, p.state_dim, p.groups);
        let a_shape = if p.a_per_head {
            vec![h]
        } else {
            vec![h, hd, n]
        };
        let mut v = vec![
            HostTensor::shape_only(
                "state",
                p.state_dtype,
                vec![p.cache_slots, h, hd, n],
                state_axis(p),
            ),
            HostTensor::shape_only("x", p.dtype, vec![b, h, hd], Some(0)),
            HostTensor::shape_only("dt", p.dtype, vec![b, h, hd], Some(0)),
            HostTensor::shape_only("a", DType::F32, a_shape, None),
            HostTensor::shape_only("bm", p.dtype, vec![b, g, n], Some(0)),
            HostTensor::shape_only("cm", p.dtype, vec![b, g, n], Some(0)),
        ];
        if p.dt_bias {
            v.push(HostTensor::shape_only(
                "dt_bias",
                DType::F32,
                vec![h, hd],
                None,
            ));
        }
        if p.d {
            v.push(HostTensor::shape_only("d", DType::F32, vec![h, hd], None));
        }
        if p.z {
            v.push(HostTensor::shape_only(
                "z",
                p.dtype,
                vec![b, h, hd],
                Some(0),
            ));
        }
        if let Some(dt) = p.index_dtype {
            v.push(HostTensor::shape_only(
                "state_indices",
                dt,
                vec![b],
                Some(0),
            ));
        }
        Ok(v)
    }

    fn outputs(&self, p: &Problem, inputs: &[HostTensor]) -> Result<Vec<OutputSpec>, String> {
        let p = expect::<SelectiveStateUpdate>(p)?;
        Ok(vec![
            OutputSpec {
                name: "state",
                dtype: p.state_dtype,
                shape: vec![p.cache_slots, p.heads, p.head_dim, p.state_dim],
                batch_axis: state_axis(p),
                init: Init::FromInput(Instance::input_index(inputs, "state")?),
            },
            OutputSpec {
                name: "out",
                dtype: p.dtype,
                shape: vec![p.batch, p.heads, p.head_dim],
                batch_axis: Some(0),
                init: Init::Poison,
            },
        ])
    }

    fn oracle(&self, inst: &Instance) -> Result<Vec<Vec<f64>>, String> {
        let p = expect::<SelectiveStateUpdate>(&inst.problem)?;
        let indices: Option<Vec<i64>> = inst
            .optional("state_indices")
            .map(|v| v.iter().map(|&i| i as i64).collect());
        let inputs = SsuInputs {
            state: &inst.input("state")?.data,
            state_indices: indices.as_deref(),
            x: &inst.input("x")?.data,
            dt: &inst.input("dt")?.data,
            dt_bias: inst.optional("dt_bias"),
            a: &inst.input("a")?.data,
            bm: &inst.input("bm")?.data,
            cm: &inst.input("cm")?.data,
            d: inst.optional("d"),
            z: inst.optional("z"),
        };
        let (state, y) = selective_state_update(p, &inputs);
        Ok(vec![state, y])
    }

    fn args<'a>(
        &self,
        inst: &Instance,
        ins: &'a [DeviceTensor],
        outs: &'a mut [DeviceTensor],
    ) -> Result<Args<'a>, String> {
        let p = expect::<SelectiveStateUpdate>(&inst.problem)?;
        let [state, out] = outputs_mut(outs, ["state", "out"])?;
        Ok(Args::SelectiveStateUpdate(SelectiveStateUpdateArgs {
            state: required(state, "state")?,
            x: input(ins, "x")?,
            dt: input(ins, "dt")?,
            dt_bias: optional_input(ins, "dt_bias")?,
            a: input(ins, "a")?,
            bm: input(ins, "bm")?,
            cm: input(ins, "cm")?,
            d: optional_input(ins, "d")?,
            z: optional_input(ins, "z")?,
            out: required(out, "out")?,
            dt_softplus: p.dt_softplus,
            state_indices: optional_input(ins, "state_indices")?,
        }))
    }
}

/// The state's batch axis: rows are batch entries without indices; a cache has none.
fn state_axis(p: &SelectiveStateUpdateProblem) -> Option<usize> {
    p.index_dtype.is_none().then_some(0)
}

/// Distinct random slots of the cache, one per batch entry; with spare slots, about one entry
/// in four (never all) is [`PAD_SLOT_ID`].
fn indices(p: &SelectiveStateUpdateProblem, rng: &mut Rng) -> Vec<f64> {
    let slots = rng.permutation(p.cache_slots);
    let pads = p.cache_slots > p.batch;
    let mut live = 0;
    let mut v: Vec<f64> = (0..p.batch)
        .map(|b| {
            if b >= slots.len() || (pads && rng.below(4) == 0) {
                PAD_SLOT_ID as f64
            } else {
                live += 1;
                slots[b] as f64
            }
        })
        .collect();
    if live == 0 {
        v[0] = slots[0] as f64;
    }
    v
}
