//! `selective_state_update` oracle and the `reference.selective_state_update` kernel.

use kernelyard_core::ops::selective_state_update::{
    check_state_indices, SelectiveStateUpdate, SelectiveStateUpdateArgs,
    SelectiveStateUpdateProblem, PAD_SLOT_ID,
};
use kernelyard_core::{Error, KernelDef, LaunchCtx};
use rayon::prelude::*;

use crate::host::{gather, gather_indices, scatter};
use crate::ops::meta;

/// The inputs of one decode step, dense and in logical order, widened to `f64`.
#[derive(Clone, Copy, Debug)]
pub struct SsuInputs<'a> {
    /// State `[cache_slots, H, P, N]` before the step (`[B, H, P, N]` without indices).
    pub state: &'a [f64],
    /// Optional `[B]`: each batch entry's slot of the state, or [`PAD_SLOT_ID`].
    pub state_indices: Option<&'a [i64]>,
    /// Input `[B, H, P]`.
    pub x: &'a [f64],
    /// Time step `[B, H, P]`.
    pub dt: &'a [f64],
    /// Optional time-step bias `[H, P]`.
    pub dt_bias: Option<&'a [f64]>,
    /// Decay `[H, P, N]`, or `[H]` when the problem's `a_per_head` is set.
    pub a: &'a [f64],
    /// Input projection `[B, G, N]`.
    pub bm: &'a [f64],
    /// Output projection `[B, G, N]`.
    pub cm: &'a [f64],
    /// Optional skip `[H, P]`.
    pub d: Option<&'a [f64]>,
    /// Optional gate `[B, H, P]`.
    pub z: Option<&'a [f64]>,
}

/// `ln(1 + exp(x))`, computed stably; `x` itself above 20 (as `mamba_ssm` does).
fn softplus(x: f64) -> f64 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// What a batch entry's `state_indices` entry makes of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// It updates this row of the state.
    Live(usize),
    /// [`PAD_SLOT_ID`]: no state access, a zero output row.
    Pad,
    /// Outside the cache: no state access, a NaN output row (what the GPU kernels do with an
    /// index validation could not read).
    Bad,
}

fn slot(i: &SsuInputs<'_>, b: usize, slots: usize) -> Slot {
    let Some(ix) = i.state_indices else {
        return Slot::Live(b);
    };
    match ix.get(b).copied() {
        Some(PAD_SLOT_ID) => Slot::Pad,
        Some(v) => match usize::try_from(v) {
            Ok(s) if s < slots => Slot::Live(s),
            _ => Slot::Bad,
        },
        None => Slot::Bad,
    }
}

/// One Mamba decode step in `f64`, with the semantics documented in
/// [`kernelyard_core::ops::selective_state_update`].
///
/// Returns `(new_state, y [B, H, P])`, `new_state` shaped as `i.state` (the cache with
/// indices: rows no entry names, padded entries' and out-of-range entries' untouched). The new
/// state is not rounded, and `y` is computed from it (as `mamba_ssm` computes in f32 and
/// stores the state afterwards). A padded entry's `y` row is 0, an out-of-range one's NaN.
/// Entries run in parallel; each `y`'s sum over `n` is taken in index order. With duplicate
/// indices (which validation rejects) the later entry's update wins.
pub fn selective_state_update(
    p: &SelectiveStateUpdateProblem,
    i: &SsuInputs<'_>,
) -> (Vec<f64>, Vec<f64>) {
    let (heads, pn) = (p.heads, p.head_dim * p.state_dim);
    let mut state = i.state.to_vec();
    let mut y = vec![0.0; p.batch * p.heads * p.head_dim];
    if pn == 0 || p.groups == 0 || !p.heads.is_multiple_of(p.groups) {
        return (state, y);
    }
    let slots = i.state.len() / (heads * pn).max(1);
    // Each live entry's rows of the state, copied out, updated in parallel and written back in
    // entry order.
    let mut rows: Vec<(Slot, Vec<f64>)> = (0..p.batch)
        .map(|b| match slot(i, b, slots) {
            Slot::Live(s) => (
                Slot::Live(s),
                state[s * heads * pn..(s + 1) * heads * pn].to_vec(),
            ),
            other => (other, Vec::new()),
        })
        .collect();
    let heads_per_group = p.heads / p.groups;
    rows.par_iter_mut()
        .zip(y.par_chunks_mut(heads * p.head_dim))
        .enumerate()
        .for_each(|(b, ((kind, st), yb))| match kind {
            Slot::Pad => yb.fill(0.0),
            Slot::Bad => yb.fill(f64::NAN),
            Slot::Live(_) => {
                for (h, (sh, yo)) in st.chunks_mut(pn).zip(yb.chunks_mut(p.head_dim)).enumerate() {
                    step(p, i, b, h, heads_per_group, sh, yo);
                }
            }
        });
    for (kind, st) in rows {
        if let Slot::Live(s) = kind {
            state[s * heads * pn..(s + 1) * heads * pn].copy_from_slice(&st);
        }
    }
    (state, y)
}

/// Batch entry `b`, head `h`: updates `st [P, N]` (that head's state rows) and writes `yo [P]`.
fn step(
    p: &SelectiveStateUpdateProblem,
    i: &SsuInputs<'_>,
    b: usize,
    h: usize,
    heads_per_group: usize,
    st: &mut [f64],
    yo: &mut [f64],
) {
    let (heads, n_dim) = (p.heads, p.state_dim);
    let bh = b * heads + h;
    let g = h / heads_per_group;
    let proj = (b * p.groups + g) * n_dim;
    let (bm, cm) = (&i.bm[proj..proj + n_dim], &i.cm[proj..proj + n_dim]);
    for (c, (s_row, out)) in st.chunks_mut(n_dim).zip(yo.iter_mut()).enumerate() {
        let xi = bh * p.head_dim + c;
        let hc = h * p.head_dim + c;
        let x = i.x[xi];
        let mut dt = i.dt[xi] + i.dt_bias.map_or(0.0, |bias| bias[hc]);
        if p.dt_softplus {
            dt = softplus(dt);
        }
        let mut acc = 0.0;
        for (n, s) in s_row.iter_mut().enumerate() {
            let a = if p.a_per_head {
                i.a[h]
            } else {
                i.a[hc * n_dim + n]
            };
            *s = *s * (a * dt).exp() + bm[n] * dt * x;
            acc += *s * cm[n];
        }
        if let Some(d) = i.d {
            acc += d[hc] * x;
        }
        if let Some(z) = i.z {
            let zv = z[xi];
            acc *= zv / (1.0 + (-zv).exp());
        }
        *out = acc;
    }
}

/// The `reference.selective_state_update` kernel.
pub static SELECTIVE_STATE_UPDATE: KernelDef<SelectiveStateUpdate> =
    KernelDef::<SelectiveStateUpdate>::new(
        meta::<SelectiveStateUpdate>(
            "reference.selective_state_update",
            module_path!(),
            "one Mamba decode step (mamba_ssm semantics) in f64, state updated in place",
        ),
        launch,
    );
crate::register_kernel!(SELECTIVE_STATE_UPDATE);

fn launch(
    ctx: &LaunchCtx<'_>,
    s: &mut SelectiveStateUpdateArgs<'_>,
    p: &SelectiveStateUpdateProblem,
) -> Result<(), Error> {
    crate::ops::with_tactic(ctx, "reference.selective_state_update", || {
        let optional = |name, v: &Option<_>| match v {
            Some(v) => gather(name, v).map(Some),
            None => Ok(None),
        };
        let state = gather("state", &s.state.as_view())?;
        let x = gather("x", &s.x)?;
        let dt = gather("dt", &s.dt)?;
        let dt_bias = optional("dt_bias", &s.dt_bias)?;
        let a = gather("a", &s.a)?;
        let bm = gather("bm", &s.bm)?;
        let cm = gather("cm", &s.cm)?;
        let d = optional("d", &s.d)?;
        let z = optional("z", &s.z)?;
        // Any index outside the cache (and any slot named twice) is refused before anything
        // is computed or written.
        let indices = match &s.state_indices {
            Some(v) => Some(gather_indices("state_indices", v)?),
            None => None,
        };
        if let Some(ix) = &indices {
            check_state_indices(ix.iter().copied(), p.cache_slots)?;
        }
        let inputs = SsuInputs {
            state: &state,
            state_indices: indices.as_deref(),
            x: &x,
            dt: &dt,
            dt_bias: dt_bias.as_deref(),
            a: &a,
            bm: &bm,
            cm: &cm,
            d: d.as_deref(),
            z: z.as_deref(),
        };
        let (new_state, y) = selective_state_update(p, &inputs);
        scatter("state", &mut s.state, &new_state)?;
        scatter("out", &mut s.out, &y)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelyard_core::half::bf16;
    use kernelyard_core::ops::selective_state_update::SelectiveStateUpdateArgs;
    use kernelyard_core::{
        Args, DType, Element, Policy, Runtime, Stream, TensorView, TensorViewMut,
    };

    #[derive(Clone, Copy)]
    struct Dims {
        b: usize,
        h: usize,
        p: usize,
        n: usize,
        g: usize,
    }

    fn problem(
        dm: Dims,
        a_per_head: bool,
        opt: bool,
        softplus: bool,
    ) -> SelectiveStateUpdateProblem {
        SelectiveStateUpdateProblem {
            batch: dm.b,
            heads: dm.h,
            head_dim: dm.p,
            state_dim: dm.n,
            groups: dm.g,
            dtype: DType::F32,
            state_dtype: DType::F32,
            a_per_head,
            dt_bias: opt,
            d: opt,
            z: opt,
            dt_softplus: softplus,
            align: 16,
            cache_slots: dm.b,
            index_dtype: None,
        }
    }

    fn data(n: usize, salt: usize, scale: f64) -> Vec<f64> {
        (0..n)
            .map(|i| (((i * 13 + salt * 7) % 19) as f64 / 9.0 - 1.0) * scale)
            .collect()
    }

    /// Owned inputs, so tests can vary one field.
    struct Owned {
        state: Vec<f64>,
        x: Vec<f64>,
        dt: Vec<f64>,
        dt_bias: Vec<f64>,
        a: Vec<f64>,
        bm: Vec<f64>,
        cm: Vec<f64>,
        d: Vec<f64>,
        z: Vec<f64>,
    }

    impl Owned {
        fn new(dm: Dims, a_per_head: bool) -> Owned {
            let (bhp, hp) = (dm.b * dm.h * dm.p, dm.h * dm.p);
            let a_len = if a_per_head { dm.h } else { hp * dm.n };
            Owned {
                state: data(bhp * dm.n, 1, 2.0),
                x: data(bhp, 2, 1.5),
                dt: data(bhp, 3, 1.0),
                dt_bias: data(hp, 4, 0.5),
                a: data(a_len, 5, 1.0).iter().map(|v| -v.abs() - 0.1).collect(),
                bm: data(dm.b * dm.g * dm.n, 6, 1.0),
                cm: data(dm.b * dm.g * dm.n, 7, 1.0),
                d: data(hp, 8, 1.0),
                z: data(bhp, 9, 3.0),
            }
        }

        fn inputs(&self, opt: bool) -> SsuInputs<'_> {
            SsuInputs {
                state: &self.state,
                state_indices: None,
                x: &self.x,
                dt: &self.dt,
                dt_bias: opt.then_some(self.dt_bias.as_slice()),
                a: &self.a,
                bm: &self.bm,
                cm: &self.cm,
                d: opt.then_some(self.d.as_slice()),
                z: opt.then_some(self.z.as_slice()),
            }
        }
    }

    /// Written independently of the oracle: explicit index arithmetic over (b, h, p, n), the
    /// group as `h * G / H`, and softplus and SiLU by their textbook formulas.
    fn naive(pr: &SelectiveStateUpdateProblem, i: &SsuInputs<'_>) -> (Vec<f64>, Vec<f64>) {
        let (bs, hs, ps, ns, gs) = (pr.batch, pr.heads, pr.head_dim, pr.state_dim, pr.groups);
        let mut st = vec![0.0; bs * hs * ps * ns];
        let mut y = vec![0.0; bs * hs * ps];
        for b in 0..bs {
            for h in 0..hs {
                let g = h * gs / hs;
                for p in 0..ps {
                    let bhp = (b * hs + h) * ps + p;
                    let mut dt = i.dt[bhp];
                    if let Some(bias) = i.dt_bias {
                        dt += bias[h * ps + p];
                    }
                    if pr.dt_softplus {
                        dt = (1.0 + dt.exp()).ln();
                    }
                    let mut acc = 0.0;
                    for n in 0..ns {
                        let a = match pr.a_per_head {
                            true => i.a[h],
                            false => i.a[(h * ps + p) * ns + n],
                        };
                        let k = bhp * ns + n;
                        st[k] = i.state[k] * (dt * a).exp()
                            + i.bm[(b * gs + g) * ns + n] * dt * i.x[bhp];
                        acc += st[k] * i.cm[(b * gs + g) * ns + n];
                    }
                    if let Some(d) = i.d {
                        acc += d[h * ps + p] * i.x[bhp];
                    }
                    if let Some(z) = i.z {
                        let sig = (-z[bhp]).exp().recip() / (1.0 + (-z[bhp]).exp().recip());
                        acc *= z[bhp] * sig;
                    }
                    y[bhp] = acc;
                }
            }
        }
        (st, y)
    }

    fn assert_close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "[{k}] {x} vs {y}");
        }
    }

    const DIMS: Dims = Dims {
        b: 2,
        h: 4,
        p: 3,
        n: 5,
        g: 2,
    };

    #[test]
    fn matches_naive() {
        for (a_per_head, opt, softplus) in [
            (false, true, true),
            (true, false, false),
            (false, false, true),
        ] {
            let o = Owned::new(DIMS, a_per_head);
            let pr = problem(DIMS, a_per_head, opt, softplus);
            let (s1, y1) = selective_state_update(&pr, &o.inputs(opt));
            let (s2, y2) = naive(&pr, &o.inputs(opt));
            assert_close(&s1, &s2, 1e-13);
            assert_close(&y1, &y2, 1e-13);
        }
    }

    #[test]
    fn zero_decay_and_zero_step_keep_the_state() {
        let mut o = Owned::new(DIMS, false);
        o.a = vec![0.0; o.a.len()];
        o.dt = vec![0.0; o.dt.len()];
        let mut i = o.inputs(true);
        i.dt_bias = None;
        i.z = None;
        let pr = problem(DIMS, false, true, false);
        let (st, y) = selective_state_update(&pr, &i);
        assert_eq!(st, o.state);
        let Dims { b: _, h, p, n, g } = DIMS;
        for (bhp, yv) in y.iter().enumerate() {
            let (b, hh, pp) = (bhp / (h * p), bhp / p % h, bhp % p);
            let grp = hh / (h / g);
            let dot: f64 = (0..n)
                .map(|k| o.state[bhp * n + k] * o.cm[(b * g + grp) * n + k])
                .sum();
            let want = dot + o.d[hh * p + pp] * o.x[bhp];
            assert!((yv - want).abs() < 1e-13, "[{bhp}] {yv} vs {want}");
        }
    }

    #[test]
    fn z_gates_with_silu() {
        let o = Owned::new(DIMS, false);
        let pr = problem(DIMS, false, true, true);
        let gated = o.inputs(true);
        let mut plain = gated;
        plain.z = None;
        let (s1, y1) = selective_state_update(&pr, &gated);
        let (s2, y2) = selective_state_update(&pr, &plain);
        assert_eq!(s1, s2);
        for (k, ((a, b), z)) in y1.iter().zip(&y2).zip(&o.z).enumerate() {
            let silu = z / (1.0 + (-z).exp());
            assert!((a - b * silu).abs() < 1e-14, "[{k}]");
        }
        // A large negative gate closes the output.
        let closed = vec![-800.0; o.z.len()];
        let mut shut = gated;
        shut.z = Some(&closed);
        let (_, y3) = selective_state_update(&pr, &shut);
        assert!(y3.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn heads_share_their_group_projections() {
        // H = 4, G = 2: heads 0 and 1 read group 0, heads 2 and 3 group 1. With a zero state,
        // dt = 1 and no decay, y = x * sum_n Bm[g, n] Cm[g, n].
        let dm = Dims {
            b: 1,
            h: 4,
            p: 1,
            n: 3,
            g: 2,
        };
        let mut o = Owned::new(dm, true);
        o.state = vec![0.0; 12];
        o.dt = vec![1.0; 4];
        o.a = vec![0.0; 4];
        o.x = vec![1.0, 2.0, 3.0, 4.0];
        o.bm = vec![1.0, 2.0, 3.0, -1.0, 0.5, 0.25];
        o.cm = vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0];
        let pr = problem(dm, true, false, false);
        let (st, y) = selective_state_update(&pr, &o.inputs(false));
        let dots = [6.0, -0.5];
        for h in 0..4 {
            assert_eq!(y[h], o.x[h] * dots[h / 2], "head {h}");
            assert_eq!(
                st[h * 3..h * 3 + 3],
                o.bm[h / 2 * 3..h / 2 * 3 + 3]
                    .iter()
                    .map(|v| v * o.x[h])
                    .collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn per_head_a_equals_broadcast_a() {
        let o = Owned::new(DIMS, true);
        let per_head = o.a.clone();
        let full: Vec<f64> = per_head
            .iter()
            .flat_map(|&a| std::iter::repeat_n(a, DIMS.p * DIMS.n))
            .collect();
        let (s1, y1) = selective_state_update(&problem(DIMS, true, true, true), &o.inputs(true));
        let mut i = o.inputs(true);
        i.a = &full;
        let (s2, y2) = selective_state_update(&problem(DIMS, false, true, true), &i);
        assert_eq!(s1, s2);
        assert_eq!(y1, y2);
    }

    #[test]
    fn softplus_is_stable() {
        assert_eq!(softplus(30.0), 30.0);
        assert!((softplus(0.0) - 2f64.ln()).abs() < 1e-15);
        assert!((softplus(-40.0) - (-40f64).exp()).abs() < 1e-30);
        assert!(softplus(-1000.0) == 0.0);
        assert!((softplus(20.0) - 20.0).abs() < 1e-8);
    }

    fn launch_matches_oracle<T: Element>() {
        let dm = DIMS;
        let o = Owned::new(dm, false);
        let narrow = |v: &[f64]| v.iter().map(|e| T::from_f64(*e)).collect::<Vec<T>>();
        let f32s = |v: &[f64]| v.iter().map(|e| *e as f32).collect::<Vec<f32>>();
        let wide = |v: &[T]| v.iter().map(|e| e.to_f64()).collect::<Vec<f64>>();
        let (bhp, hp, bgn) = ([dm.b, dm.h, dm.p], [dm.h, dm.p], [dm.b, dm.g, dm.n]);
        let mut state = narrow(&o.state);
        let state_before = wide(&state);
        let (x, dt, z, bm, cm) = (
            narrow(&o.x),
            narrow(&o.dt),
            narrow(&o.z),
            narrow(&o.bm),
            narrow(&o.cm),
        );
        let (dt_bias, a, d) = (f32s(&o.dt_bias), f32s(&o.a), f32s(&o.d));
        let mut out = vec![T::from_f64(f64::NAN); dm.b * dm.h * dm.p];
        let rt = Runtime::builder().build().unwrap();
        {
            let args = SelectiveStateUpdateArgs {
                state: TensorViewMut::from_slice(&mut state, &[dm.b, dm.h, dm.p, dm.n]).unwrap(),
                x: TensorView::from_slice(&x, &bhp).unwrap(),
                dt: TensorView::from_slice(&dt, &bhp).unwrap(),
                dt_bias: Some(TensorView::from_slice(&dt_bias, &hp).unwrap()),
                a: TensorView::from_slice(&a, &[dm.h, dm.p, dm.n]).unwrap(),
                bm: TensorView::from_slice(&bm, &bgn).unwrap(),
                cm: TensorView::from_slice(&cm, &bgn).unwrap(),
                d: Some(TensorView::from_slice(&d, &hp).unwrap()),
                z: Some(TensorView::from_slice(&z, &bhp).unwrap()),
                out: TensorViewMut::from_slice(&mut out, &bhp).unwrap(),
                dt_softplus: true,
                state_indices: None,
            };
            let plan = rt
                .run(
                    &Policy::auto(),
                    &Stream::host(),
                    &mut Args::SelectiveStateUpdate(args),
                )
                .unwrap();
            assert_eq!(plan.kernel_name(), "reference.selective_state_update");
        }
        let (dtb, aa, dd) = (wide32(&dt_bias), wide32(&a), wide32(&d));
        let (wx, wdt, wz, wbm, wcm) = (wide(&x), wide(&dt), wide(&z), wide(&bm), wide(&cm));
        let inputs = SsuInputs {
            state: &state_before,
            state_indices: None,
            x: &wx,
            dt: &wdt,
            dt_bias: Some(&dtb),
            a: &aa,
            bm: &wbm,
            cm: &wcm,
            d: Some(&dd),
            z: Some(&wz),
        };
        let mut pr = problem(dm, false, true, true);
        pr.dtype = T::DTYPE;
        pr.state_dtype = T::DTYPE;
        let (want_state, want_y) = selective_state_update(&pr, &inputs);
        let half_ulp = match T::DTYPE {
            DType::F32 => f64::powi(2.0, -24),
            _ => f64::powi(2.0, -8),
        };
        for (name, got, want) in [
            ("state", wide(&state), want_state),
            ("out", wide(&out), want_y),
        ] {
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= half_ulp * w.abs(),
                    "{name}[{k}] = {g}, oracle {w}"
                );
            }
        }
    }

    #[test]
    fn indices_update_their_slots_and_pads_leave_the_cache() {
        // Cache of 5 slots; entry 0 -> slot 3, entry 1 padded: slot 3 gets entry 0's update,
        // every other slot is untouched, entry 1's output row is zero.
        let dm = Dims {
            b: 2,
            h: 2,
            p: 3,
            n: 4,
            g: 1,
        };
        let slots = 5;
        let o = Owned::new(dm, false);
        let row = dm.h * dm.p * dm.n;
        let cache: Vec<f64> = data(slots * row, 11, 1.0);
        let mut dense = o.inputs(true);
        let mut both = o.state.clone();
        both[..row].copy_from_slice(&cache[3 * row..4 * row]);
        dense.state = &both;
        let pr = problem(dm, false, true, true);
        let (want_state, want_y) = selective_state_update(&pr, &dense);
        let mut ix = o.inputs(true);
        ix.state = &cache;
        let indices = [3, PAD_SLOT_ID];
        ix.state_indices = Some(&indices);
        let mut pr_ix = pr.clone();
        pr_ix.cache_slots = slots;
        pr_ix.index_dtype = Some(DType::I64);
        let (st, y) = selective_state_update(&pr_ix, &ix);
        let hp = dm.h * dm.p;
        assert_eq!(y[..hp], want_y[..hp]);
        assert!(y[hp..].iter().all(|v| *v == 0.0));
        for s in 0..slots {
            let got = &st[s * row..(s + 1) * row];
            if s == 3 {
                assert_eq!(got, &want_state[..row]);
            } else {
                assert_eq!(got, &cache[s * row..(s + 1) * row], "slot {s}");
            }
        }
        // An index outside the cache: NaN output, cache untouched.
        let bad = [3, 7];
        ix.state_indices = Some(&bad);
        let (st, y) = selective_state_update(&pr_ix, &ix);
        assert!(y[hp..].iter().all(|v| v.is_nan()));
        assert_eq!(st[4 * row..], cache[4 * row..]);
    }

    fn launch_with_indices(indices: &[i32], slots: usize) -> Result<Vec<f32>, Error> {
        let dm = Dims {
            b: indices.len(),
            h: 1,
            p: 2,
            n: 4,
            g: 1,
        };
        let o = Owned::new(dm, true);
        let f = |v: &[f64]| v.iter().map(|e| *e as f32).collect::<Vec<f32>>();
        let mut cache = f(&data(slots * dm.h * dm.p * dm.n, 12, 1.0));
        let (x, dt, a, bm, cm) = (f(&o.x), f(&o.dt), f(&o.a), f(&o.bm), f(&o.cm));
        let mut out = vec![f32::NAN; dm.b * dm.h * dm.p];
        let bhp = [dm.b, dm.h, dm.p];
        let bgn = [dm.b, dm.g, dm.n];
        let rt = Runtime::builder().build().unwrap();
        let args = SelectiveStateUpdateArgs {
            state: TensorViewMut::from_slice(&mut cache, &[slots, dm.h, dm.p, dm.n]).unwrap(),
            x: TensorView::from_slice(&x, &bhp).unwrap(),
            dt: TensorView::from_slice(&dt, &bhp).unwrap(),
            dt_bias: None,
            a: TensorView::from_slice(&a, &[dm.h]).unwrap(),
            bm: TensorView::from_slice(&bm, &bgn).unwrap(),
            cm: TensorView::from_slice(&cm, &bgn).unwrap(),
            d: None,
            z: None,
            out: TensorViewMut::from_slice(&mut out, &bhp).unwrap(),
            dt_softplus: false,
            state_indices: Some(TensorView::from_slice(indices, &[dm.b]).unwrap()),
        };
        rt.run(
            &Policy::auto(),
            &Stream::host(),
            &mut Args::SelectiveStateUpdate(args),
        )?;
        Ok(out)
    }

    #[test]
    fn host_indices_out_of_range_or_duplicated_are_errors() {
        let out = launch_with_indices(&[2, -1, 0], 3).unwrap();
        assert!(out[2..4].iter().all(|v| *v == 0.0), "{out:?}");
        assert!(out.iter().all(|v| v.is_finite()));
        match launch_with_indices(&[2, 0, 2], 3) {
            Err(Error::DuplicateStateIndex {
                index: 2,
                first: 0,
                second: 2,
            }) => {}
            other => panic!("{other:?}"),
        }
        for bad in [3, -2] {
            match launch_with_indices(&[0, bad], 3) {
                Err(Error::StateIndexOutOfRange {
                    row: 1,
                    index,
                    slots: 3,
                }) => assert_eq!(index, i64::from(bad)),
                other => panic!("{other:?}"),
            }
        }
    }

    fn wide32(v: &[f32]) -> Vec<f64> {
        v.iter().map(|e| f64::from(*e)).collect()
    }

    #[test]
    fn launch_bf16() {
        launch_matches_oracle::<bf16>();
    }

    #[test]
    fn launch_f32() {
        launch_matches_oracle::<f32>();
    }
}
