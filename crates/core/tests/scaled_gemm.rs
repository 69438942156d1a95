//! `ScaledGemmArgs::validate`: the problem it records (scale modes, dtypes, bias, alignment),
//! each error it names (scale pairs, dtypes, shapes, aliasing), agreement with `--problem`
//! parameters, and that FP8 stays out of every other operator. Views are over fake addresses
//! on `cuda:0` (validation never reads data).

use std::ffi::c_void;

use kernelyard_core::ops::gemm::GemmArgs;
use kernelyard_core::ops::scaled_gemm::{ScaleMode, ScaledGemmArgs, ScaledGemmProblem};
use kernelyard_core::{
    Args, DType, DeviceId, OpKind, Params, Problem, TensorView, TensorViewMut, ValidationError,
};

const GPU: DeviceId = DeviceId::cuda(0);

/// One tensor: a fake address in its own 1 GiB slot (so no two overlap), dtype and shape.
#[derive(Clone)]
struct T {
    addr: usize,
    dtype: DType,
    shape: Vec<usize>,
}

fn t(slot: usize, dtype: DType, shape: &[usize]) -> T {
    T {
        addr: (slot + 1) << 30,
        dtype,
        shape: shape.to_vec(),
    }
}

impl T {
    fn view(&self) -> TensorView<'static> {
        // SAFETY: a fake device address, never dereferenced: these views are only validated.
        unsafe {
            TensorView::from_raw_parts(
                self.addr as *const c_void,
                self.dtype,
                &self.shape,
                None,
                GPU,
            )
        }
        .unwrap()
    }

    fn view_mut(&self) -> TensorViewMut<'static> {
        // SAFETY: as in `view`.
        unsafe {
            TensorViewMut::from_raw_parts(
                self.addr as *mut c_void,
                self.dtype,
                &self.shape,
                None,
                GPU,
            )
        }
        .unwrap()
    }
}

/// The tensors of one call, editable before validation.
#[derive(Clone)]
struct Call {
    a: T,
    b: T,
    scale_a: T,
    scale_b: T,
    modes: (ScaleMode, ScaleMode),
    bias: Option<T>,
    out: T,
}

/// A valid call: e4m3 A [m, k] and B [n, k], scales of `mode`, bf16 out.
fn call(m: usize, n: usize, k: usize, mode: ScaleMode) -> Call {
    Call {
        a: t(0, DType::F8E4M3, &[m, k]),
        b: t(1, DType::F8E4M3, &[n, k]),
        scale_a: t(2, DType::F32, &mode.a_shape(m, k)),
        scale_b: t(3, DType::F32, &mode.b_shape(n, k)),
        modes: (mode, mode),
        bias: None,
        out: t(4, DType::BF16, &[m, n]),
    }
}

impl Call {
    fn args(&self) -> ScaledGemmArgs<'static> {
        ScaledGemmArgs {
            a: self.a.view(),
            b: self.b.view(),
            scale_a: self.scale_a.view(),
            scale_b: self.scale_b.view(),
            scale_a_mode: self.modes.0,
            scale_b_mode: self.modes.1,
            bias: self.bias.as_ref().map(T::view),
            out: self.out.view_mut(),
        }
    }

    fn validate(&self) -> Result<ScaledGemmProblem, ValidationError> {
        let typed = self.args().validate();
        let wrapped = Args::ScaledGemm(self.args()).validate();
        match (&typed, &wrapped) {
            (Ok((p, d)), Ok((Problem::ScaledGemm(q), e))) => {
                assert_eq!((p, d), (q, e));
                assert_eq!(*d, GPU);
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            other => panic!("typed and catalog validation differ: {other:?}"),
        }
        typed.map(|(p, _)| p)
    }
}

fn from_params(params: &str, dtype: DType) -> Result<Problem, kernelyard_core::Error> {
    Problem::from_params(
        OpKind::ScaledGemm,
        &Params::parse(OpKind::ScaledGemm, params)?,
        dtype,
    )
}

#[test]
fn records_the_problem() {
    let p = call(3, 5, 32, ScaleMode::Tensor).validate().unwrap();
    assert_eq!(
        p,
        ScaledGemmProblem {
            m: 3,
            n: 5,
            k: 32,
            dtype: DType::F8E4M3,
            b_dtype: DType::F8E4M3,
            out_dtype: DType::BF16,
            scale_a: ScaleMode::Tensor,
            scale_b: ScaleMode::Tensor,
            bias: false,
            align: 2,
        },
        "out's rows are 5 bf16 = 10 bytes apart: 2-byte aligned"
    );
    assert_eq!(
        Problem::ScaledGemm(p),
        from_params("m=3,n=5,k=32", DType::F8E4M3).unwrap()
    );
    // Mixed FP8 kinds, f32 out with its bf16 bias, rows 16 bytes apart.
    let mut c = call(4, 8, 48, ScaleMode::Row);
    c.b.dtype = DType::F8E5M2;
    c.out.dtype = DType::F32;
    c.bias = Some(t(5, DType::BF16, &[8]));
    let p = c.validate().unwrap();
    assert_eq!(
        (p.b_dtype, p.out_dtype, p.bias, p.align),
        (DType::F8E5M2, DType::F32, true, 16)
    );
    assert_eq!(
        Problem::ScaledGemm(p),
        from_params(
            "m=4,n=8,k=48,b_dtype=f8e5m2,out_dtype=f32,scale_a=row,bias=1",
            DType::F8E4M3
        )
        .unwrap()
    );
    // e5m2 x e5m2: the descriptor takes it (kernels that cannot refuse it in their checks).
    let mut c = call(2, 16, 16, ScaleMode::Tensor);
    (c.a.dtype, c.b.dtype) = (DType::F8E5M2, DType::F8E5M2);
    assert_eq!(c.validate().unwrap().dtype, DType::F8E5M2);
}

#[test]
fn odd_k_lowers_the_alignment_and_scales_do_not_count() {
    // k = 37: A's and B's rows are 37 bytes apart.
    let mut c = call(4, 16, 37, ScaleMode::Block);
    c.out.dtype = DType::F32;
    assert_eq!(c.validate().unwrap().align, 1);
    // k = 208: A's and B's rows are 208 bytes apart (16-byte aligned), out's 16 floats;
    // scale_a ([k-blocks, m]) has rows 4 floats apart and does not count either way.
    let mut c = call(4, 16, 208, ScaleMode::Block);
    c.out.dtype = DType::F32;
    assert_eq!(c.scale_a.shape, vec![2, 4]);
    assert_eq!(c.validate().unwrap().align, 16);
    assert_eq!(
        Problem::ScaledGemm(c.validate().unwrap()),
        from_params("m=4,n=16,k=208,scale_a=block,out_dtype=f32", DType::F8E4M3).unwrap()
    );
    assert_eq!(
        from_params("m=4,n=16,k=37,out_dtype=f32", DType::F8E4M3)
            .unwrap()
            .align(),
        1
    );
}

#[test]
fn block_scales_cover_partial_blocks() {
    // k = 200 and n = 130: two blocks along k and along n.
    let c = call(3, 130, 200, ScaleMode::Block);
    assert_eq!(
        (c.scale_a.shape.clone(), c.scale_b.shape.clone()),
        (vec![2, 3], vec![2, 2])
    );
    c.validate().unwrap();
    // One k-block short (scale_a is [k-blocks, m]: m fastest).
    let mut bad = c.clone();
    bad.scale_a.shape = vec![1, 3];
    assert!(matches!(
        bad.validate(),
        Err(ValidationError::Dim {
            arg: "scale_a",
            dim: "rows",
            expected: 2,
            got: 1,
            ..
        })
    ));
    // B's blocks are 128 rows high: [130, 2] is a per-row-sized tensor, not [2, 2].
    let mut bad = c.clone();
    bad.scale_b.shape = vec![130, 2];
    assert!(matches!(
        bad.validate(),
        Err(ValidationError::Dim {
            arg: "scale_b",
            dim: "rows",
            expected: 2,
            got: 130,
            ..
        })
    ));
    // A rank-1 scale where blocks need rank 2.
    let mut bad = c;
    bad.scale_a.shape = vec![3];
    assert!(matches!(
        bad.validate(),
        Err(ValidationError::Rank {
            arg: "scale_a",
            expected: 2,
            ..
        })
    ));
}

#[test]
fn per_tensor_and_per_row_scale_shapes() {
    // A rank-0 per-tensor scale is taken like [1].
    let mut c = call(2, 4, 16, ScaleMode::Tensor);
    c.scale_a.shape = vec![];
    c.validate().unwrap();
    // [2] is not a per-tensor scale.
    c.scale_b.shape = vec![2];
    assert!(matches!(
        c.validate(),
        Err(ValidationError::Dim {
            arg: "scale_b",
            expected: 1,
            got: 2,
            ..
        })
    ));
    // Per row: one scale per row of A and of B; m = 1 takes [1] as a row scale.
    let mut c = call(1, 4, 16, ScaleMode::Row);
    c.validate().unwrap();
    c.scale_b.shape = vec![5];
    assert!(matches!(
        c.validate(),
        Err(ValidationError::Dim {
            arg: "scale_b",
            expected: 4,
            got: 5,
            ..
        })
    ));
    let mut c = call(3, 4, 16, ScaleMode::Row);
    c.scale_a.dtype = DType::F16;
    assert!(matches!(
        c.validate(),
        Err(ValidationError::DtypeNotAllowed {
            arg: "scale_a",
            got: DType::F16,
            ..
        })
    ));
}

#[test]
fn every_unsupported_scale_pair_is_named() {
    use ScaleMode::{Block, Row, Tensor};
    for a in ScaleMode::ALL {
        for b in ScaleMode::ALL {
            let mut c = call(4, 130, 200, a);
            c.scale_b = t(3, DType::F32, &b.b_shape(130, 200));
            c.modes = (a, b);
            let got = c.validate();
            let params = format!("m=4,n=130,k=200,scale_a={a},scale_b={b}");
            let built = from_params(&params, DType::F8E4M3);
            if a == b {
                assert_eq!(Problem::ScaledGemm(got.unwrap()), built.unwrap());
                continue;
            }
            let err = got.unwrap_err();
            let ValidationError::UnsupportedScales { a: ea, b: eb, why } = &err else {
                panic!("{a} x {b}: {err:?}");
            };
            assert_eq!((*ea, *eb), (a, b));
            let want = match (a, b) {
                (Tensor, Row) | (Row, Tensor) => "per-row scales on both sides",
                (Block, _) | (_, Block) => "block scales need block scales",
                _ => unreachable!("the diagonal passed above"),
            };
            assert!(why.contains(want), "{a} x {b}: {why}");
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("`scale_a` {a} with `scale_b` {b}")),
                "{msg}"
            );
            let built = built.unwrap_err().to_string();
            assert!(built.contains(want), "{params}: {built}");
        }
    }
}

#[test]
fn dtypes_are_checked() {
    let c = call(2, 8, 16, ScaleMode::Tensor);
    let mut bad = c.clone();
    bad.a.dtype = DType::BF16;
    assert!(matches!(
        bad.validate(),
        Err(ValidationError::DtypeNotAllowed { arg: "a", got: DType::BF16, allowed }) if allowed == DType::FP8
    ));
    let mut bad = c.clone();
    bad.b.dtype = DType::F32;
    assert!(matches!(
        bad.validate(),
        Err(ValidationError::DtypeNotAllowed { arg: "b", .. })
    ));
    let mut bad = c.clone();
    bad.out.dtype = DType::F8E4M3;
    assert!(matches!(
        bad.validate(),
        Err(ValidationError::DtypeNotAllowed {
            arg: "out",
            got: DType::F8E4M3,
            ..
        })
    ));
    // The bias follows out: f16 with f16, bf16 with bf16 and f32.
    let mut bad = c.clone();
    bad.bias = Some(t(5, DType::F32, &[8]));
    assert!(matches!(
        bad.validate(),
        Err(ValidationError::DtypeNotAllowed {
            arg: "bias",
            got: DType::F32,
            allowed: [DType::BF16]
        })
    ));
    let mut ok = c.clone();
    ok.out.dtype = DType::F16;
    ok.bias = Some(t(5, DType::F16, &[8]));
    assert!(ok.validate().unwrap().bias);
    ok.bias = Some(t(5, DType::BF16, &[8]));
    assert!(matches!(
        ok.validate(),
        Err(ValidationError::DtypeNotAllowed {
            arg: "bias",
            allowed: [DType::F16],
            ..
        })
    ));
    // From parameters: an FP8 out, a float A.
    assert!(from_params("m=2,n=8,k=16,out_dtype=f8e5m2", DType::F8E4M3).is_err());
    assert!(from_params("m=2,n=8,k=16", DType::BF16).is_err());
}

#[test]
fn shapes_and_aliasing_are_checked() {
    let c = call(2, 8, 16, ScaleMode::Tensor);
    let mut bad = c.clone();
    bad.b.shape = vec![8, 32];
    assert!(matches!(
        bad.validate(),
        Err(ValidationError::Dim {
            arg: "b",
            dim: "k",
            expected: 16,
            got: 32,
            ..
        })
    ));
    let mut bad = c.clone();
    bad.out.shape = vec![2, 9];
    assert!(matches!(
        bad.validate(),
        Err(ValidationError::Dim {
            arg: "out",
            dim: "n",
            ..
        })
    ));
    let mut bad = c.clone();
    bad.bias = Some(t(5, DType::BF16, &[2]));
    assert!(matches!(
        bad.validate(),
        Err(ValidationError::Dim {
            arg: "bias",
            expected: 8,
            got: 2,
            ..
        })
    ));
    let mut bad = c.clone();
    bad.a.shape = vec![2, 16, 1];
    assert!(matches!(
        bad.validate(),
        Err(ValidationError::Rank { arg: "a", .. })
    ));
    let mut bad = c.clone();
    bad.out.addr = bad.scale_b.addr;
    assert!(matches!(
        bad.validate(),
        Err(ValidationError::Aliasing {
            output: "out",
            input: "scale_b",
            ..
        })
    ));
    let mut bad = c;
    bad.a.shape = vec![0, 16];
    assert!(matches!(
        bad.validate(),
        Err(ValidationError::ZeroSized { arg: "a", .. })
    ));
    assert!(from_params("m=0,n=8,k=16", DType::F8E4M3).is_err());
    assert!(from_params("m=1,n=8,k=16,scale_a=col", DType::F8E4M3).is_err());
}

#[test]
fn fp8_stays_out_of_every_other_operator() {
    assert!(!DType::FLOATS.iter().any(|d| d.is_fp8()));
    for op in OpKind::ALL {
        let example = op.example();
        let params = Params::parse(op, example.params).unwrap();
        for &fp8 in DType::FP8 {
            let built = Problem::from_params(op, &params, fp8);
            assert_eq!(built.is_ok(), op == OpKind::ScaledGemm, "{op} with {fp8}");
        }
    }
    // A gemm over FP8 views is a typed refusal naming A.
    let a = t(0, DType::F8E4M3, &[4, 4]);
    let b = t(1, DType::F8E4M3, &[4, 4]);
    let c = t(2, DType::F32, &[4, 4]);
    let err = GemmArgs::new(a.view(), b.view(), c.view_mut())
        .validate()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ValidationError::DtypeNotAllowed {
                arg: "a",
                got: DType::F8E4M3,
                ..
            }
        ),
        "{err:?}"
    );
}
