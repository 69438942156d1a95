//! `ScaledGemmArgs::validate`: the problem it records (scale modes, dtypes, bias, alignment),
//! each error it names (scale pairs, dtypes, shapes, aliasing), agreement with `--problem`
//! parameters, and that FP8 stays out of every other operator. Views are over fake addresses
//! on `cuda:0` (validation never reads data).

use std::ffi::c_void;

use kernelyard_core::ops::gemm::GemmArgs;
use kernelyard_core::ops::scaled_gemm::{
    ScaleMode, ScaledGemmArgs, ScaledGemmProblem, OPERAND_DTYPES,
};
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

/// The operand dtype `mode` takes: e4m3 for the FP8 modes, FP4 pairs for NVFP4 / MXFP4.
fn operand(mode: ScaleMode) -> DType {
    if mode.is_fp4() {
        DType::F4E2M1X2
    } else {
        DType::F8E4M3
    }
}

/// A valid call: A [m, k] and B [n, k] of `mode`'s operand dtype (FP4: `[m, k/2]` and
/// `[n, k/2]` pairs), scales of `mode` in its dtype, bf16 out.
fn call(m: usize, n: usize, k: usize, mode: ScaleMode) -> Call {
    let d = operand(mode);
    let cols = k / d.lanes();
    Call {
        a: t(0, d, &[m, cols]),
        b: t(1, d, &[n, cols]),
        scale_a: t(2, mode.scale_dtypes()[0], &mode.a_shape(m, k)),
        scale_b: t(3, mode.scale_dtypes()[0], &mode.b_shape(n, k)),
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
    use ScaleMode::{Block, Mxfp4, Nvfp4, Row, Tensor};
    for a in ScaleMode::ALL {
        for b in ScaleMode::ALL {
            let mut c = call(4, 130, 200, a);
            c.scale_b = t(3, b.scale_dtypes()[0], &b.b_shape(130, 200));
            c.modes = (a, b);
            let got = c.validate();
            let params = format!("m=4,n=130,k=200,scale_a={a},scale_b={b}");
            let built = from_params(&params, operand(a));
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
                (Nvfp4 | Mxfp4, _) | (_, Nvfp4 | Mxfp4) => "FP4 block scales need the same format",
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
        Err(ValidationError::DtypeNotAllowed { arg: "a", got: DType::BF16, allowed }) if allowed == OPERAND_DTYPES
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

#[test]
fn fp4_records_k_in_values_and_matches_its_params() {
    for mode in [ScaleMode::Nvfp4, ScaleMode::Mxfp4] {
        // k = 96 values: 48 bytes a row; NVFP4 6 scales a row, MXFP4 3.
        let c = call(3, 5, 96, mode);
        assert_eq!(c.a.shape, [3, 48]);
        let p = c.validate().unwrap();
        assert_eq!((p.m, p.n, p.k), (3, 5, 96));
        assert_eq!((p.dtype, p.b_dtype), (DType::F4E2M1X2, DType::F4E2M1X2));
        assert_eq!((p.scale_a, p.scale_b), (mode, mode));
        let blocks = 96 / mode.fp4_block().unwrap();
        assert_eq!(p.scale_a_shape(), [3, blocks]);
        assert_eq!(p.scale_b_shape(), [5, blocks]);
        let built = from_params(
            &format!("m=3,n=5,k=96,scale_a={mode},align=2"),
            DType::F4E2M1X2,
        )
        .unwrap();
        assert_eq!(built, Problem::ScaledGemm(p));
    }
    // A partial last block: k = 40 is two NVFP4 blocks and a half (3 scales), one MXFP4 block
    // and a quarter (2 scales).
    assert_eq!(ScaleMode::Nvfp4.a_shape(7, 40), [7, 3]);
    assert_eq!(ScaleMode::Mxfp4.b_shape(7, 40), [7, 2]);
    assert_eq!(ScaleMode::Nvfp4.a_index(2, 39, 7, 40), 2 * 3 + 2);
    assert_eq!(ScaleMode::Mxfp4.b_index(6, 31, 40), 6 * 2);
    assert!(call(2, 2, 40, ScaleMode::Nvfp4).validate().is_ok());
}

#[test]
fn fp4_operands_and_modes_go_together() {
    let unsupported = |c: &Call| match c.validate() {
        Err(ValidationError::UnsupportedOperands { why, .. }) => why,
        other => panic!("{other:?}"),
    };
    // FP4 A with FP8 B (either way round) does not mix.
    let mut c = call(2, 4, 32, ScaleMode::Nvfp4);
    c.b = t(1, DType::F8E4M3, &[4, 32]);
    assert!(unsupported(&c).contains("FP4 and FP8 operands do not mix"));
    let mut c = call(2, 4, 32, ScaleMode::Tensor);
    c.a = t(0, DType::F4E2M1X2, &[2, 16]);
    let err = c.validate().unwrap_err();
    assert!(matches!(
        err,
        ValidationError::UnsupportedOperands {
            a: DType::F4E2M1X2,
            b: DType::F8E4M3,
            scale_a: ScaleMode::Tensor,
            scale_b: ScaleMode::Tensor,
            ..
        }
    ));
    assert!(
        err.to_string().contains("`a` f4e2m1x2 and `b` f8e4m3"),
        "{err}"
    );
    // FP4 operands with FP8 scales, and FP8 operands with FP4 scales.
    let mut c = call(2, 4, 32, ScaleMode::Row);
    c.a = t(0, DType::F4E2M1X2, &[2, 16]);
    c.b = t(1, DType::F4E2M1X2, &[4, 16]);
    assert!(unsupported(&c).contains("FP4 operands take FP4 block scales"));
    let mut c = call(2, 4, 32, ScaleMode::Mxfp4);
    c.a = t(0, DType::F8E5M2, &[2, 32]);
    c.b = t(1, DType::F8E5M2, &[4, 32]);
    assert!(unsupported(&c).contains("are for FP4 operands"));
    // The same rules from parameters.
    let err = from_params("m=2,n=4,k=32,b_dtype=f8e4m3,scale_a=nvfp4", DType::F4E2M1X2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("do not mix"), "{err}");
    let err = from_params("m=2,n=4,k=32", DType::F4E2M1X2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("scale_a=nvfp4"), "{err}");
}

#[test]
fn fp4_scales_packing_and_shapes_are_checked() {
    // NVFP4 scales are e4m3, MXFP4 scales e8m0: f32 (or the other one) is refused.
    for (mode, wrong) in [
        (ScaleMode::Nvfp4, DType::F32),
        (ScaleMode::Nvfp4, DType::F8E8M0),
        (ScaleMode::Mxfp4, DType::F8E4M3),
    ] {
        let mut c = call(2, 4, 64, mode);
        c.scale_b.dtype = wrong;
        assert!(
            matches!(
                c.validate(),
                Err(ValidationError::DtypeNotAllowed { arg: "scale_b", got, allowed })
                    if got == wrong && allowed == mode.scale_dtypes()
            ),
            "{mode} {wrong}"
        );
    }
    // Scales of the FP8 shape, or counted in bytes instead of values, are refused.
    let mut c = call(2, 4, 64, ScaleMode::Nvfp4);
    c.scale_a = t(2, DType::F8E4M3, &[2, 2]);
    assert!(matches!(
        c.validate(),
        Err(ValidationError::Dim {
            arg: "scale_a",
            expected: 4,
            got: 2,
            ..
        })
    ));
    // B's packed columns must be A's.
    let mut c = call(2, 4, 64, ScaleMode::Mxfp4);
    c.b = t(1, DType::F4E2M1X2, &[4, 64]);
    let err = c.validate().unwrap_err();
    assert!(
        matches!(
            err,
            ValidationError::Dim {
                arg: "b",
                expected: 32,
                got: 64,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("[n, k/2] pairs"), "{err}");
    // An odd k cannot be packed: a problem says so (views always hold whole pairs).
    let err = from_params("m=2,n=4,k=33,scale_a=nvfp4", DType::F4E2M1X2).unwrap_err();
    assert!(err.to_string().contains("k even for FP4"), "{err}");
    // FP4 rows of k/2 bytes set the alignment: k = 36 gives 18-byte rows, 2-byte alignment.
    let p = call(2, 4, 36, ScaleMode::Nvfp4).validate().unwrap();
    assert_eq!(p.align, 2);
}
