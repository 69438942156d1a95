//! `selective_state_update`: one Mamba decode step, with `mamba_ssm` semantics.
//!
//! For batch `b`, head `h`, channel `p`, state index `n`, with group `g = h / (H / G)`:
//!
//! ```text
//! d = dt[b,h,p] + dt_bias[h,p]            (dt_bias optional)
//! if dt_softplus: d = softplus(d)         (softplus(x) = log(1 + exp(x)))
//! a = A[h,p,n]  (or A[h] when A is [H])
//! state[b,h,p,n] = state[b,h,p,n] * exp(a * d) + Bm[b,g,n] * d * x[b,h,p]
//! y = sum_n state[b,h,p,n] * Cm[b,g,n] + D[h,p] * x[b,h,p]      (D optional)
//! if z: y *= z[b,h,p] * sigmoid(z[b,h,p])                        (z optional)
//! out[b,h,p] = y
//! ```
//!
//! `state [B, H, P, N]` (any float dtype) is updated in place: read and written through its one
//! writable view, [`SelectiveStateUpdateArgs::state`], never a separate read view, so safe
//! code cannot hold a shared and a mutable view of it. `x, dt, z, out [B, H, P]` and
//! `Bm, Cm [B, G, N]` share one float dtype; `A`, `D` and `dt_bias` are f32. All contiguous;
//! `out` must not overlap any input or the state.
//!
//! # Continuous batching: `state_indices`
//! Serving engines (vLLM, sglang) keep the states of every running sequence in one cache and
//! pass, per batch entry, the cache row it owns. With the optional `state_indices [B]` (i32 or
//! i64), `state` is that cache, `[cache_slots, H, P, N]`, and batch entry `b` reads and updates
//! `state[state_indices[b]]`:
//! - an index in `[0, cache_slots)` selects that slot;
//! - [`PAD_SLOT_ID`] (-1) marks a padded entry: its slot is not read or written and its output
//!   row `out[b]` is **set to zero** (every backend, so a padded batch gives the same bits
//!   everywhere);
//! - two entries naming the same slot would update it concurrently, and any other index is
//!   outside the cache. Validation reads no tensor data (it checks views, never their
//!   contents), so the indices' values are checked where they are read: the reference backend
//!   (host memory) rejects both ([`Error::DuplicateStateIndex`],
//!   [`Error::StateIndexOutOfRange`]) before it reads or
//!   writes anything. Device-resident indices cannot be read without a synchronisation, so
//!   there the GPU kernels guard memory instead: an out-of-range entry leaves the cache
//!   untouched and gets a NaN output row; duplicates are the caller's contract (as in
//!   `mamba_ssm` and FlashInfer): the slot's final value is then one of the racing entries'
//!   (never memory outside the cache). [`check_state_indices`] checks a host copy.
//!
//! Without indices, `state` is `[B, H, P, N]` and entry `b` owns row `b` (`cache_slots ==
//! batch`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::device::DeviceId;
use crate::dtype::DType;
use crate::error::{Error, ValidationError};
use crate::ops::check::{dim, dtype_in, no_alias, nonzero, same_dtype, Checker, Implied, ViewMeta};
use crate::ops::params::{ParamKey, Params};
use crate::ops::{Example, Op, OpKind, ScalarKey, Work};
use crate::tensor::{TensorView, TensorViewMut};

/// The `state_indices` entry that marks a padded batch entry: no state access, a zero output.
pub const PAD_SLOT_ID: i64 = -1;

/// Checks host-readable `state_indices` against a cache of `slots` rows: every entry is
/// [`PAD_SLOT_ID`] or a slot in `[0, slots)`, and no slot is named twice.
pub fn check_state_indices(
    indices: impl IntoIterator<Item = i64>,
    slots: usize,
) -> Result<(), Error> {
    let mut seen: HashMap<i64, usize> = HashMap::new();
    for (row, index) in indices.into_iter().enumerate() {
        if index == PAD_SLOT_ID {
            continue;
        }
        if index < 0 || usize::try_from(index).map_or(true, |i| i >= slots) {
            return Err(Error::StateIndexOutOfRange { row, index, slots });
        }
        if let Some(&first) = seen.get(&index) {
            return Err(Error::DuplicateStateIndex {
                index,
                first,
                second: row,
            });
        }
        seen.insert(index, row);
    }
    Ok(())
}

/// A `selective_state_update` problem.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SelectiveStateUpdateProblem {
    /// Batch.
    pub batch: usize,
    /// Heads.
    pub heads: usize,
    /// Channels per head (P).
    pub head_dim: usize,
    /// State size per channel (N).
    pub state_dim: usize,
    /// Groups of B/C (divides `heads`).
    pub groups: usize,
    /// dtype of x, dt, z, out, Bm and Cm.
    pub dtype: DType,
    /// dtype of the state.
    pub state_dtype: DType,
    /// A is `[H]` (one value per head) rather than `[H, P, N]`.
    pub a_per_head: bool,
    /// `dt_bias [H, P]` is given.
    pub dt_bias: bool,
    /// `D [H, P]` is given.
    pub d: bool,
    /// `z [B, H, P]` is given.
    pub z: bool,
    /// softplus is applied to `dt + dt_bias`.
    pub dt_softplus: bool,
    /// Least alignment of pointers and row strides, bytes (capped at 16). `state_indices`
    /// does not count: kernels read it one element at a time.
    pub align: usize,
    /// Rows of the state cache: `state` is `[cache_slots, H, P, N]`. Equal to `batch` without
    /// `state_indices`.
    pub cache_slots: usize,
    /// dtype of `state_indices [B]` (i32 or i64), when given.
    pub index_dtype: Option<DType>,
}

/// Keys of `--problem` for `selective_state_update`.
pub const PARAMS: &[ParamKey] = &[
    ParamKey {
        key: "batch",
        default: None,
        help: "batch",
    },
    ParamKey {
        key: "heads",
        default: None,
        help: "heads (H)",
    },
    ParamKey {
        key: "head_dim",
        default: None,
        help: "channels per head (P)",
    },
    ParamKey {
        key: "state_dim",
        default: None,
        help: "state size (N)",
    },
    ParamKey {
        key: "groups",
        default: Some("1"),
        help: "B/C groups (G), divides heads",
    },
    ParamKey {
        key: "state_dtype",
        default: Some("same"),
        help: "dtype of the state",
    },
    ParamKey {
        key: "a_per_head",
        default: Some("0"),
        help: "A is [H]",
    },
    ParamKey {
        key: "dt_bias",
        default: Some("1"),
        help: "dt_bias given",
    },
    ParamKey {
        key: "d",
        default: Some("1"),
        help: "D given",
    },
    ParamKey {
        key: "z",
        default: Some("1"),
        help: "z given",
    },
    ParamKey {
        key: "dt_softplus",
        default: Some("1"),
        help: "softplus on dt",
    },
    ParamKey {
        key: "align",
        default: Some("16"),
        help: "pointer alignment in bytes",
    },
    ParamKey {
        key: "state_indices",
        default: Some("none"),
        help: "dtype of state_indices [batch] (none, i32 or i64)",
    },
    ParamKey {
        key: "cache_slots",
        default: Some("0"),
        help: "rows of the state cache with state_indices (0: batch)",
    },
];

fn check_groups(heads: usize, groups: usize) -> Result<(), ValidationError> {
    if !heads.is_multiple_of(groups) {
        return Err(ValidationError::Relation {
            rule: "heads % groups == 0",
            detail: format!("heads = {heads}, groups = {groups}"),
        });
    }
    Ok(())
}

impl SelectiveStateUpdateProblem {
    /// A problem from `--problem` keys.
    pub fn from_params(params: &Params, dtype: DType) -> Result<Self, Error> {
        let r = params.reader(OpKind::SelectiveStateUpdate);
        r.check_keys()?;
        let mut p = SelectiveStateUpdateProblem {
            batch: r.usize("batch")?,
            heads: r.usize("heads")?,
            head_dim: r.usize("head_dim")?,
            state_dim: r.usize("state_dim")?,
            groups: r.usize("groups")?,
            dtype,
            state_dtype: r.dtype("state_dtype", dtype)?,
            a_per_head: r.flag("a_per_head")?,
            dt_bias: r.flag("dt_bias")?,
            d: r.flag("d")?,
            z: r.flag("z")?,
            dt_softplus: r.flag("dt_softplus")?,
            align: r.usize("align")?,
            cache_slots: r.usize("cache_slots")?,
            index_dtype: match r.choice("state_indices", &["none", "i32", "i64"])? {
                "i32" => Some(DType::I32),
                "i64" => Some(DType::I64),
                _ => None,
            },
        };
        if p.cache_slots == 0 {
            p.cache_slots = p.batch;
        }
        p.align = p.implied()?.align_param(p.align)?;
        p.check()?;
        Ok(p)
    }

    /// `state [cache_slots, H, P, N]`, `x`, `dt`, `out` (and `z`) `[B, H, P]`, `dt_bias` and
    /// `D` `[H, P]` (f32) when given, `A [H, P, N]` or `[H]` (f32), `Bm`, `Cm [B, G, N]`, and
    /// `state_indices [B]` (not counted in `align`) when given.
    fn implied(&self) -> Result<Implied, ValidationError> {
        let (b, h, p, n, g) = (
            self.batch,
            self.heads,
            self.head_dim,
            self.state_dim,
            self.groups,
        );
        nonzero(&[b, h, p, n, g, self.cache_slots])?;
        check_groups(h, g)?;
        dtype_in("x", self.dtype, DType::FLOATS)?;
        dtype_in("state", self.state_dtype, DType::FLOATS)?;
        let mut t = Implied::new();
        match self.index_dtype {
            Some(dt) => {
                dtype_in("state_indices", dt, DType::INDICES)?;
                t.contiguous_uncounted("state_indices", dt, &[b])?;
            }
            None if self.cache_slots != b => {
                return Err(ValidationError::Relation {
                    rule: "cache_slots == batch without state_indices",
                    detail: format!("cache_slots = {}, batch = {b}", self.cache_slots),
                });
            }
            None => {}
        }
        t.contiguous("state", self.state_dtype, &[self.cache_slots, h, p, n])?;
        t.contiguous("x", self.dtype, &[b, h, p])?;
        t.contiguous("dt", self.dtype, &[b, h, p])?;
        if self.z {
            t.contiguous("z", self.dtype, &[b, h, p])?;
        }
        t.contiguous("out", self.dtype, &[b, h, p])?;
        if self.dt_bias {
            t.contiguous("dt_bias", DType::F32, &[h, p])?;
        }
        if self.d {
            t.contiguous("d", DType::F32, &[h, p])?;
        }
        if self.a_per_head {
            t.contiguous("a", DType::F32, &[h])?;
        } else {
            t.contiguous("a", DType::F32, &[h, p, n])?;
        }
        t.contiguous("bm", self.dtype, &[b, g, n])?;
        t.contiguous("cm", self.dtype, &[b, g, n])?;
        Ok(t)
    }

    /// The invariants [`SelectiveStateUpdateArgs::validate`] enforces (see
    /// [`Op::check_problem`]).
    pub fn check(&self) -> Result<(), ValidationError> {
        self.implied()?.check_align(self.align)
    }
}

/// Arguments of `selective_state_update`.
#[derive(Debug)]
pub struct SelectiveStateUpdateArgs<'a> {
    /// State `[B, H, P, N]`, updated in place.
    pub state: TensorViewMut<'a>,
    /// Input `[B, H, P]`.
    pub x: TensorView<'a>,
    /// Time step `[B, H, P]`.
    pub dt: TensorView<'a>,
    /// Optional time-step bias `[H, P]`, f32.
    pub dt_bias: Option<TensorView<'a>>,
    /// Decay `[H, P, N]` or `[H]`, f32.
    pub a: TensorView<'a>,
    /// Input projection `[B, G, N]`.
    pub bm: TensorView<'a>,
    /// Output projection `[B, G, N]`.
    pub cm: TensorView<'a>,
    /// Optional skip `[H, P]`, f32.
    pub d: Option<TensorView<'a>>,
    /// Optional gate `[B, H, P]`.
    pub z: Option<TensorView<'a>>,
    /// Output `[B, H, P]`.
    pub out: TensorViewMut<'a>,
    /// Apply softplus to `dt + dt_bias`.
    pub dt_softplus: bool,
    /// Optional `[B]` (i32 or i64): the state cache row of each batch entry, or
    /// [`PAD_SLOT_ID`]; `state` is then `[cache_slots, H, P, N]` (see the module docs).
    pub state_indices: Option<TensorView<'a>>,
}

impl SelectiveStateUpdateArgs<'_> {
    /// Validates the arguments into a problem and their device.
    pub fn validate(&self) -> Result<(SelectiveStateUpdateProblem, DeviceId), ValidationError> {
        let mut ck = Checker::new();
        let st = ck.contiguous(
            "state",
            &self.state,
            4,
            "[batch or cache_slots, heads, head_dim, state_dim]",
            DType::FLOATS,
        )?;
        let (cache_slots, heads, head_dim, state_dim) = (st[0], st[1], st[2], st[3]);
        let bhp = "[batch, heads, head_dim]";
        let xs = ck.contiguous("x", &self.x, 3, bhp, DType::FLOATS)?;
        let dtype = self.x.dtype();
        let batch = xs[0];
        let rule_bhp = "it is [batch, heads, head_dim]: x's batch, the state's heads and head_dim";
        let want_bhp = [batch, heads, head_dim];
        for (i, name) in ["heads", "head_dim"].into_iter().enumerate() {
            dim("x", name, xs[i + 1], want_bhp[i + 1], rule_bhp)?;
        }
        if self.state_indices.is_none() {
            dim(
                "state",
                "batch",
                cache_slots,
                batch,
                "without state_indices the state is [batch, heads, head_dim, state_dim]",
            )?;
        }
        let same_bhp = |ck: &mut Checker, arg: &'static str, v: &dyn ViewMeta| {
            let s = ck.contiguous(arg, v, 3, bhp, DType::FLOATS)?;
            same_dtype(arg, v, dtype)?;
            for (i, name) in ["batch", "heads", "head_dim"].into_iter().enumerate() {
                dim(arg, name, s[i], want_bhp[i], rule_bhp)?;
            }
            Ok::<(), ValidationError>(())
        };
        same_bhp(&mut ck, "dt", &self.dt)?;
        if let Some(z) = &self.z {
            same_bhp(&mut ck, "z", z)?;
        }
        same_bhp(&mut ck, "out", &self.out)?;
        let hp = |ck: &mut Checker, arg: &'static str, v: &dyn ViewMeta| {
            let s = ck.contiguous(arg, v, 2, "[heads, head_dim]", &[DType::F32])?;
            dim(arg, "heads", s[0], heads, "it is [heads, head_dim]")?;
            dim(arg, "head_dim", s[1], head_dim, "it is [heads, head_dim]")
        };
        if let Some(b) = &self.dt_bias {
            hp(&mut ck, "dt_bias", b)?;
        }
        if let Some(d) = &self.d {
            hp(&mut ck, "d", d)?;
        }
        let a_per_head = self.a.shape().len() == 1;
        if a_per_head {
            let s = ck.contiguous(
                "a",
                &self.a,
                1,
                "[heads] or [heads, head_dim, state_dim]",
                &[DType::F32],
            )?;
            dim(
                "a",
                "heads",
                s[0],
                heads,
                "A is [heads] or [heads, head_dim, state_dim]",
            )?;
        } else {
            let s = ck.contiguous(
                "a",
                &self.a,
                3,
                "[heads] or [heads, head_dim, state_dim]",
                &[DType::F32],
            )?;
            for (i, (name, want)) in [
                ("heads", heads),
                ("head_dim", head_dim),
                ("state_dim", state_dim),
            ]
            .into_iter()
            .enumerate()
            {
                dim(
                    "a",
                    name,
                    s[i],
                    want,
                    "A is [heads] or [heads, head_dim, state_dim]",
                )?;
            }
        }
        let bs = ck.contiguous(
            "bm",
            &self.bm,
            3,
            "[batch, groups, state_dim]",
            DType::FLOATS,
        )?;
        same_dtype("bm", &self.bm, dtype)?;
        let groups = bs[1];
        dim(
            "bm",
            "batch",
            bs[0],
            batch,
            "Bm is [batch, groups, state_dim]",
        )?;
        dim(
            "bm",
            "state_dim",
            bs[2],
            state_dim,
            "Bm is [batch, groups, state_dim]",
        )?;
        let cs = ck.contiguous(
            "cm",
            &self.cm,
            3,
            "[batch, groups, state_dim]",
            DType::FLOATS,
        )?;
        same_dtype("cm", &self.cm, dtype)?;
        for (i, name) in ["batch", "groups", "state_dim"].into_iter().enumerate() {
            dim("cm", name, cs[i], bs[i], "Cm has Bm's shape")?;
        }
        check_groups(heads, groups)?;
        let mut inputs: Vec<(&'static str, &dyn ViewMeta)> = vec![
            ("x", &self.x),
            ("dt", &self.dt),
            ("a", &self.a),
            ("bm", &self.bm),
            ("cm", &self.cm),
        ];
        for (name, v) in [("dt_bias", &self.dt_bias), ("d", &self.d), ("z", &self.z)] {
            if let Some(v) = v {
                inputs.push((name, v));
            }
        }
        for (name, v) in &inputs {
            no_alias("out", &self.out, name, *v)?;
            no_alias("state", &self.state, name, *v)?;
        }
        no_alias("out", &self.out, "state", &self.state)?;
        // Kernels read the indices one element at a time: they do not count in `align`.
        let align = ck.align();
        let index_dtype = match &self.state_indices {
            Some(ix) => {
                let s = ck.contiguous("state_indices", ix, 1, "[batch]", DType::INDICES)?;
                dim(
                    "state_indices",
                    "batch",
                    s[0],
                    batch,
                    "it has one entry per batch row",
                )?;
                no_alias("out", &self.out, "state_indices", ix)?;
                no_alias("state", &self.state, "state_indices", ix)?;
                Some(ix.dtype())
            }
            None => None,
        };
        let p = SelectiveStateUpdateProblem {
            batch,
            heads,
            head_dim,
            state_dim,
            groups,
            dtype,
            state_dtype: self.state.dtype(),
            a_per_head,
            dt_bias: self.dt_bias.is_some(),
            d: self.d.is_some(),
            z: self.z.is_some(),
            dt_softplus: self.dt_softplus,
            align,
            cache_slots,
            index_dtype,
        };
        p.check()?;
        Ok((p, ck.device()))
    }
}

/// The `selective_state_update` operator's descriptor.
pub struct SelectiveStateUpdate;

impl Op for SelectiveStateUpdate {
    const KIND: OpKind = OpKind::SelectiveStateUpdate;
    const PARAMS: &'static [ParamKey] = PARAMS;
    const SCALARS: &'static [ScalarKey] = &[];
    const EXAMPLE: Example = Example {
        params: "batch=8,heads=32,head_dim=64,state_dim=128",
        dtype: DType::BF16,
    };
    const BATCH_FIELDS: &'static [&'static str] = &["batch", "cache_slots"];
    const BUCKETED: &'static [&'static str] = &["batch", "heads", "head_dim", "cache_slots"];
    type Problem = SelectiveStateUpdateProblem;
    type Args<'a> = SelectiveStateUpdateArgs<'a>;

    fn from_params(params: &Params, dtype: DType) -> Result<SelectiveStateUpdateProblem, Error> {
        SelectiveStateUpdateProblem::from_params(params, dtype)
    }

    fn check_problem(p: &SelectiveStateUpdateProblem) -> Result<(), ValidationError> {
        p.check()
    }

    fn validate(
        args: &SelectiveStateUpdateArgs<'_>,
    ) -> Result<(SelectiveStateUpdateProblem, DeviceId), ValidationError> {
        args.validate()
    }

    /// `2*B*H*P*N*state_elem` bytes (the state rows of the batch read and written).
    fn work(p: &SelectiveStateUpdateProblem) -> Work {
        Work::Bytes(
            2.0 * p.batch as f64
                * p.heads as f64
                * p.head_dim as f64
                * p.state_dim as f64
                * p.state_dtype.size() as f64,
        )
    }

    /// `[batch, heads, head_dim, state_dim, groups]`.
    fn shape(p: &SelectiveStateUpdateProblem) -> Vec<usize> {
        vec![p.batch, p.heads, p.head_dim, p.state_dim, p.groups]
    }
}
