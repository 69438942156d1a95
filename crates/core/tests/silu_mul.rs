//! `SiluMulArgs::validate`: the problem it records (fused or split, and an alignment that
//! counts the offset of `up` inside a fused row), its errors, and agreement with
//! `--problem` parameters. Views are over fake addresses on `cuda:0` (see `bad_input/specs.rs`).

#[path = "bad_input/specs.rs"]
#[allow(dead_code)] // these tests use a few of the specs
mod specs;

use kernelyard_core::ops::silu_mul::{SiluMulArgs, SiluMulInput, SiluMulProblem};
use kernelyard_core::{Args, DType, Error, OpKind, Params, Problem, ValidationError};

use specs::{silu_mul, silu_mul_split, t, SiluMul, Spec, GPU};

/// The spec's arguments as `SiluMulArgs`.
fn args(spec: &SiluMul) -> SiluMulArgs<'static> {
    match spec.args().expect("views build") {
        Args::SiluMul(a) => a,
        other => panic!("built {} arguments", other.op()),
    }
}

fn validate(spec: &SiluMul) -> Result<SiluMulProblem, ValidationError> {
    let a = args(spec);
    let typed = a.validate();
    // The catalog's dispatch gives the same answer.
    let wrapped = Args::SiluMul(args(spec)).validate();
    match (&typed, &wrapped) {
        (Ok((p, d)), Ok((Problem::SiluMul(q), e))) => {
            assert_eq!((p, d), (q, e));
            assert_eq!(*d, GPU);
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        other => panic!("typed and catalog validation differ: {other:?}"),
    }
    typed.map(|(p, _)| p)
}

/// A fused `x[rows, 2*d]` and its `out[rows, d]` of `dtype`.
fn fused(rows: usize, d: usize, dtype: DType) -> SiluMul {
    SiluMul {
        x: t(1, dtype, &[rows, 2 * d]),
        up: None,
        out: t(3, dtype, &[rows, d]),
    }
}

/// Split `gate`, `up` and `out`, all `[rows, d]` of `dtype`.
fn split(rows: usize, d: usize, dtype: DType) -> SiluMul {
    SiluMul {
        x: t(1, dtype, &[rows, d]),
        up: Some(t(2, dtype, &[rows, d])),
        out: t(3, dtype, &[rows, d]),
    }
}

#[test]
fn fused_and_split_problems() {
    let p = validate(&silu_mul()).unwrap();
    assert_eq!(
        p,
        SiluMulProblem {
            rows: 4,
            d: 128,
            dtype: DType::BF16,
            split: false,
            align: 16,
        }
    );
    let p = validate(&silu_mul_split()).unwrap();
    assert_eq!(
        p,
        SiluMulProblem {
            rows: 4,
            d: 128,
            dtype: DType::BF16,
            split: true,
            align: 16,
        }
    );
    // Every float dtype.
    for dtype in DType::FLOATS {
        assert_eq!(validate(&fused(2, 64, *dtype)).unwrap().dtype, *dtype);
        assert_eq!(validate(&split(2, 64, *dtype)).unwrap().dtype, *dtype);
    }
}

#[test]
fn fused_align_counts_the_up_offset() {
    // One row, so no row stride counts: only the pointers (16-byte aligned) and, fused, the
    // byte offset of `up` (`d * size`) inside the row.
    for (d, dtype, want) in [
        (8, DType::BF16, 16), // 16 bytes
        (4, DType::BF16, 8),  // 8 bytes
        (2, DType::BF16, 4),  // 4 bytes
        (3, DType::BF16, 2),  // 6 bytes
        (1, DType::F16, 2),   // 2 bytes
        (2, DType::F32, 8),   // 8 bytes
        (3, DType::F32, 4),   // 12 bytes
        (12, DType::F32, 16), // 48 bytes
    ] {
        let p = validate(&fused(1, d, dtype)).unwrap();
        assert_eq!(p.align, want, "fused d={d} {dtype}: {p:?}");
        // Split, the same sizes are 16-byte aligned: there is no offset.
        let p = validate(&split(1, d, dtype)).unwrap();
        assert_eq!(p.align, 16, "split d={d} {dtype}: {p:?}");
    }
    // With several rows the row strides count too: out's stride is `d * size` and the fused
    // input's `2 * d * size`.
    assert_eq!(validate(&fused(4, 4, DType::BF16)).unwrap().align, 8);
    assert_eq!(validate(&split(4, 4, DType::BF16)).unwrap().align, 8);
    assert_eq!(validate(&split(4, 8, DType::BF16)).unwrap().align, 16);
    // A misaligned pointer still lowers it.
    let mut s = silu_mul();
    s.x.addr += 4;
    assert_eq!(validate(&s).unwrap().align, 4);
}

#[test]
fn errors_name_the_argument() {
    use ValidationError as V;
    let err = |s: SiluMul| validate(&s).unwrap_err();

    // Fused: an odd last dimension cannot be split into gate and up.
    let mut s = silu_mul();
    s.x.shape = vec![4, 129];
    let e = err(s);
    assert!(
        matches!(e, V::Param { param: "x", why, .. } if why.contains("even")),
        "{e:?}"
    );
    assert!(e.to_string().contains("`x`"), "{e}");

    // Shapes that disagree.
    let mut s = silu_mul();
    s.out.shape = vec![4, 256];
    let e = err(s);
    assert!(
        matches!(
            e,
            V::Dim {
                arg: "out",
                dim: "d",
                expected: 128,
                got: 256,
                ..
            }
        ),
        "{e:?}"
    );
    let mut s = silu_mul_split();
    s.up.as_mut().unwrap().shape = vec![4, 64];
    let e = err(s);
    assert!(
        matches!(
            e,
            V::Dim {
                arg: "up",
                dim: "d",
                expected: 128,
                got: 64,
                ..
            }
        ),
        "{e:?}"
    );

    // `out` may not overlap an input, fused or split.
    let mut s = silu_mul();
    s.out.addr = s.x.addr + 2 * 128 * 2;
    let e = err(s);
    assert!(
        matches!(
            e,
            V::Aliasing {
                output: "out",
                input: "x",
                ..
            }
        ),
        "{e:?}"
    );
    let mut s = silu_mul_split();
    s.out.addr = s.up.as_ref().unwrap().addr;
    let e = err(s);
    assert!(
        matches!(
            e,
            V::Aliasing {
                output: "out",
                input: "up",
                ..
            }
        ),
        "{e:?}"
    );

    // One dtype for every tensor, and a float one.
    let mut s = silu_mul_split();
    s.up.as_mut().unwrap().dtype = DType::F32;
    let e = err(s);
    assert!(
        matches!(
            e,
            V::DtypeMismatch {
                arg: "up",
                expected: DType::BF16,
                got: DType::F32
            }
        ),
        "{e:?}"
    );
    let mut s = silu_mul();
    s.out.dtype = DType::F32;
    assert!(matches!(
        err(s),
        V::DtypeMismatch {
            arg: "out",
            expected: DType::BF16,
            got: DType::F32
        }
    ));
    let mut s = silu_mul();
    s.x.dtype = DType::I64;
    s.out.dtype = DType::I64;
    assert!(matches!(
        err(s),
        V::DtypeNotAllowed {
            arg: "x",
            got: DType::I64,
            ..
        }
    ));

    // Zero-sized.
    let mut s = silu_mul();
    s.x.shape = vec![0, 256];
    s.out.shape = vec![0, 128];
    assert!(matches!(err(s), V::ZeroSized { arg: "x", .. }));
    let mut s = silu_mul_split();
    s.x.shape = vec![4, 0];
    assert!(matches!(err(s), V::ZeroSized { arg: "gate", .. }));
}

#[test]
fn problem_parameters_agree_with_validation() {
    let from_params = |spec: &str, dtype| {
        Problem::from_params(
            OpKind::SiluMul,
            &Params::parse(OpKind::SiluMul, spec).unwrap(),
            dtype,
        )
    };
    let fused = from_params("rows=4,d=128", DType::BF16).unwrap();
    assert_eq!(fused, Problem::SiluMul(validate(&silu_mul()).unwrap()));
    let split = from_params("rows=4,d=128,split=1", DType::BF16).unwrap();
    assert_eq!(
        split,
        Problem::SiluMul(validate(&silu_mul_split()).unwrap())
    );
    assert_ne!(fused, split, "fused and split are different problems");
    assert_eq!(fused.shape(), vec![4, 128]);
    assert!(
        matches!(fused.work(), kernelyard_core::Work::Bytes(b) if b == 3.0 * 4.0 * 128.0 * 2.0)
    );

    assert!(matches!(
        from_params("rows=4,d=0", DType::BF16),
        Err(Error::Validation(ValidationError::ZeroSized {
            arg: "problem",
            ..
        }))
    ));
    assert!(matches!(
        from_params("rows=4,d=8", DType::I32),
        Err(Error::Validation(ValidationError::DtypeNotAllowed {
            arg: "x",
            ..
        }))
    ));
    assert!(matches!(
        from_params(&format!("rows={},d={}", usize::MAX / 2, 8), DType::F32),
        Err(Error::Validation(ValidationError::Overflow {
            arg: "x",
            ..
        }))
    ));
    assert!(matches!(
        from_params("rows=4", DType::BF16),
        Err(Error::Param { op: OpKind::SiluMul, ref what, .. }) if what.contains("missing key `d`")
    ));
}

#[test]
fn input_form_is_kept_in_the_arguments() {
    assert!(matches!(args(&silu_mul()).input, SiluMulInput::Fused(_)));
    assert!(matches!(
        args(&silu_mul_split()).input,
        SiluMulInput::Split { .. }
    ));
}
