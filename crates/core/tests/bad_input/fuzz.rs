//! Fuzz: random mutations of the valid baselines never make validation (or any view accessor)
//! panic, and both outcomes occur for every operator.

use std::panic::{catch_unwind, AssertUnwindSafe};

use kernelyard_core::{DType, DeviceId, OpKind};

use crate::specs::{
    attention, gemm, rms_norm, rms_norm_residual, rope, rope_in_place, scaled_gemm, silu_mul,
    silu_mul_split, softmax, ssu, token_logprobs, Rows, Spec, GPU, OTHER_GPU, REGION, T,
};

/// Knuth's MMIX linear congruential generator; the high bits are the output.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 32
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<X: Copy>(&mut self, xs: &[X]) -> X {
        xs[self.below(xs.len())]
    }
}

const DIMS: &[usize] = &[
    0,
    1,
    1,
    2,
    3,
    4,
    8,
    16,
    64,
    1000,
    1 << 31,
    1 << 40,
    isize::MAX as usize,
    isize::MAX as usize + 1,
    usize::MAX,
];
const STRIDES: &[isize] = &[
    0,
    1,
    2,
    -1,
    -64,
    64,
    1 << 20,
    1 << 40,
    isize::MAX / 4,
    isize::MAX,
    isize::MIN,
];
const ADDRS: &[usize] = &[
    0,
    1,
    2,
    3,
    4,
    8,
    16,
    0x1000,
    REGION + 6,
    isize::MAX as usize,
    isize::MAX as usize + 1,
    usize::MAX - 7,
    usize::MAX,
];
const SCALARS: &[f32] = &[
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    -1.0,
    0.0,
    -0.0,
    1e-6,
    1.0,
    f32::MAX,
    f32::MIN_POSITIVE,
];
const DEVICES: &[DeviceId] = &[GPU, GPU, GPU, OTHER_GPU, DeviceId::CPU, DeviceId::rocm(0)];

/// Row-major strides of `shape`, or the view's own.
fn strides_of(t: &T) -> Vec<isize> {
    t.strides.clone().unwrap_or_else(|| {
        let mut acc = 1isize;
        let mut s = vec![0; t.shape.len()];
        for i in (0..t.shape.len()).rev() {
            s[i] = acc;
            acc = acc.saturating_mul(t.shape[i].max(1) as isize);
        }
        s
    })
}

fn mutate_tensor(rng: &mut Lcg, t: &mut T, other_addr: usize) {
    match rng.below(9) {
        0 => {
            let rank = rng.below(MAX_FUZZ_RANK + 1);
            t.shape = (0..rank).map(|_| rng.pick(DIMS)).collect();
        }
        1 if !t.shape.is_empty() => {
            let i = rng.below(t.shape.len());
            t.shape[i] = rng.pick(DIMS);
        }
        2 => {
            // Right length most of the time; sometimes one off.
            let len = match rng.below(4) {
                0 => t.shape.len() + 1,
                _ => t.shape.len(),
            };
            t.strides = Some((0..len).map(|_| rng.pick(STRIDES)).collect());
        }
        3 if !t.shape.is_empty() => {
            let mut s = strides_of(t);
            let i = rng.below(s.len());
            s[i] = rng.pick(STRIDES);
            t.strides = Some(s);
        }
        4 if !t.shape.is_empty() => {
            // A size-1 dimension with an arbitrary stride, as frameworks make them. (An earlier
            // mutation may have left one stride too many: index a dimension that has both.)
            let mut s = strides_of(t);
            let i = rng.below(s.len().min(t.shape.len()));
            t.shape[i] = 1;
            s[i] = rng.pick(STRIDES);
            t.strides = Some(s);
        }
        5 => t.dtype = rng.pick(&DType::ALL),
        6 => t.device = rng.pick(DEVICES),
        7 => t.addr = rng.pick(ADDRS),
        _ => t.addr = other_addr.wrapping_add(rng.pick(&[0usize, 2, 4, 64, 4096])),
    }
}

const MAX_FUZZ_RANK: usize = 7;

fn fuzz_spec(rng: &mut Lcg) -> Box<dyn Spec> {
    match rng.below(13) {
        0 => Box::new(gemm()),
        1 => Box::new(rms_norm()),
        2 => Box::new(rms_norm_residual()),
        3 => Box::new(softmax()),
        4 => Box::new(Rows {
            log: true,
            ..softmax()
        }),
        5 => Box::new(token_logprobs()),
        6 => Box::new(rope()),
        7 => Box::new(attention()),
        8 => Box::new(silu_mul()),
        9 => Box::new(silu_mul_split()),
        10 => Box::new(rope_in_place()),
        11 => Box::new(scaled_gemm()),
        _ => Box::new(ssu()),
    }
}

fn mutate(rng: &mut Lcg, spec: &mut dyn Spec) {
    match rng.below(10) {
        0 => {
            let scalars = spec.scalars();
            if !scalars.is_empty() {
                let i = rng.below(scalars.len());
                *scalars.into_iter().nth(i).unwrap() = rng.pick(SCALARS);
            }
        }
        1 => {
            let sizes = spec.sizes();
            if !sizes.is_empty() {
                let i = rng.below(sizes.len());
                *sizes.into_iter().nth(i).unwrap() = rng.pick(DIMS);
            }
        }
        2 => {
            let template = spec.tensors()[0].clone();
            let opts = spec.optional();
            if !opts.is_empty() {
                let i = rng.below(opts.len());
                let o = opts.into_iter().nth(i).unwrap();
                *o = match o {
                    Some(_) => None,
                    None => Some(T {
                        addr: 11 * REGION,
                        ..template
                    }),
                };
            }
        }
        _ => {
            let addrs: Vec<usize> = spec.tensors().iter().map(|t| t.addr).collect();
            let other = rng.pick(&addrs);
            let tensors = spec.tensors();
            let i = rng.below(tensors.len());
            mutate_tensor(rng, tensors.into_iter().nth(i).unwrap(), other);
        }
    }
}

/// Everything a caller may do with a view without launching: none of it may panic.
fn poke_views(spec: &mut dyn Spec) {
    for t in spec.tensors() {
        if let Ok(v) = t.view() {
            let _ = (
                v.byte_span(),
                v.numel(),
                v.is_contiguous(),
                format!("{v:?}"),
            );
        }
        if let Ok(v) = t.view_mut() {
            let _ = (
                v.byte_span(),
                v.numel(),
                v.is_contiguous(),
                v.as_view().rank(),
            );
        }
    }
}

#[test]
fn fuzzed_arguments_never_panic() {
    const ITERATIONS: usize = 5000;
    let mut rng = Lcg(0x5eed_cafe_f00d_d00d);
    let mut panics = Vec::new();
    // Per op: (validated, rejected).
    let mut outcomes = std::collections::BTreeMap::<OpKind, (usize, usize)>::new();
    for i in 0..ITERATIONS {
        let mut spec = fuzz_spec(&mut rng);
        let op = spec.args().expect("baselines build").op();
        for _ in 0..rng.below(4) {
            mutate(&mut rng, spec.as_mut());
        }
        let before = format!("{spec:?}");
        let result = catch_unwind(AssertUnwindSafe(|| {
            poke_views(spec.as_mut());
            let args = spec.args()?;
            let _ = args.describe();
            let first = args.validate();
            // Validation is a pure function of the arguments.
            assert_eq!(first, args.validate());
            if let Ok((problem, _)) = &first {
                assert_eq!(problem.op(), args.op());
                let _ = (problem.to_string(), problem.align(), problem.dtype());
            }
            first.map(|_| ())
        }));
        let entry = outcomes.entry(op).or_default();
        match result {
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panics.push(format!("iteration {i}: {msg}\n  {before}"));
            }
            Ok(Ok(())) => entry.0 += 1,
            Ok(Err(e)) => {
                assert!(!e.to_string().is_empty());
                entry.1 += 1;
            }
        }
    }
    assert!(
        panics.is_empty(),
        "{} of {ITERATIONS} fuzzed calls panicked; first ones:\n{}",
        panics.len(),
        panics[..panics.len().min(5)].join("\n")
    );
    // The loop exercised both outcomes for every operator.
    assert_eq!(outcomes.len(), OpKind::ALL.len(), "{outcomes:?}");
    for (op, (ok, err)) in &outcomes {
        assert!(*ok > 0 && *err > 0, "{op}: {ok} valid, {err} rejected");
    }
}
