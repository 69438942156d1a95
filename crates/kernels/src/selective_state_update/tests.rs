use super::*;
use crate::launch::tests::Recorder;
use kernelyard_core::half::bf16;
use kernelyard_core::{TensorView, TensorViewMut};

/// A problem with every optional input, A per element, no indices, aligned.
fn problem(
    batch: usize,
    h: usize,
    p: usize,
    n: usize,
    dtype: DType,
    state: DType,
) -> SelectiveStateUpdateProblem {
    SelectiveStateUpdateProblem {
        batch,
        heads: h,
        head_dim: p,
        state_dim: n,
        groups: 1,
        dtype,
        state_dtype: state,
        a_per_head: false,
        dt_bias: true,
        d: true,
        z: true,
        dt_softplus: true,
        align: 16,
        cache_slots: batch,
        index_dtype: None,
    }
}

/// The row kernel's plan (the default).
fn row_plan(p: &SelectiveStateUpdateProblem) -> SsuPlan {
    plan_tactic(p, None).unwrap()
}

fn reasons(p: &SelectiveStateUpdateProblem) -> Vec<Reason> {
    let mut r = Vec::new();
    check(&Capabilities::host(), p, &mut r);
    r
}

#[test]
fn the_lanes_follow_the_table() {
    // (state size, largest N of each L from 1 to 32).
    for (size, ns) in [
        (4, [16, 32, 64, 128, 256, 512]),
        (2, [32, 64, 128, 256, 512, 1024]),
    ] {
        let mut low = 1;
        for (i, &high) in ns.iter().enumerate() {
            for n in low..=high {
                assert_eq!(lanes(n, size), 1 << i, "N = {n}, {size}-byte state");
            }
            low = high + 1;
        }
        assert_eq!(max_state_dim(size), *ns.last().unwrap());
    }
    assert_eq!(max_state_dim(4), 512);
    assert_eq!(max_state_dim(2), 1024);
    // Rows per block, from the plan.
    for (n, state, per_block) in [
        (16, DType::F32, 128),
        (128, DType::F32, 16),
        (512, DType::F32, 4),
        (128, DType::BF16, 32),
        (64, DType::F16, 64),
        (1024, DType::BF16, 4),
    ] {
        let plan = row_plan(&problem(3, 2, 4, n, DType::BF16, state));
        assert_eq!(plan.rows_per_block(), per_block, "{n} {state}");
        assert_eq!(plan.block, THREADS);
    }
}

#[test]
fn plans_of_any_sizes_are_computed_without_overflow() {
    for n in [0, 1, 1025, 1 << 40, usize::MAX] {
        for size in [1, 2, 4, 8] {
            let l = lanes(n, size);
            assert!(l.is_power_of_two() && l as usize <= MAX_LANES, "{n} {size}");
        }
        let mut p = problem(
            usize::MAX,
            usize::MAX,
            usize::MAX,
            n,
            DType::F16,
            DType::F32,
        );
        p.cache_slots = usize::MAX;
        p.groups = usize::MAX;
        let plan = row_plan(&p);
        assert_eq!(plan.grid as usize, MAX_GRID);
        for tactic in [Some("tile8"), Some("tile4"), Some("tile32")] {
            let tiled = plan_tactic(&p, tactic).unwrap();
            assert!(tiled.grid >= 1 && tiled.grid_y as usize <= MAX_GRID_Y);
        }
        let r = reasons(&p);
        assert!(
            r.iter()
                .all(|r| matches!(r, Reason::ShapeUnsupported { .. }))
                && r.len() >= 3,
            "{r:?}"
        );
    }
    // Groups of 0 (invalid; core rejects it) still give parameters, not a panic.
    let mut p = problem(1, 2, 2, 16, DType::F32, DType::F32);
    p.groups = 0;
    let mut bufs = Buffers::new(&p);
    let plan = plan(&p).unwrap();
    assert_eq!(params(&mut bufs.args(&p), &p, &plan).heads_per_group, 0);
}

#[test]
fn the_plan_does_not_depend_on_the_batch_except_for_the_grid() {
    for (n, dtype, state, align) in [
        (128, DType::BF16, DType::BF16, 16),
        (128, DType::F32, DType::F32, 4),
        (16, DType::F16, DType::F32, 16),
        (1024, DType::BF16, DType::F16, 16),
        (100, DType::F32, DType::BF16, 16),
    ] {
        let at = |batch| {
            let mut p = problem(batch, 24, 64, n, dtype, state);
            p.align = align;
            row_plan(&p)
        };
        let one = at(1);
        for batch in [2, 3, 64, 1000, 1 << 20, 1 << 30] {
            let other = at(batch);
            assert_eq!(
                (other.symbol, other.vector, other.lanes, other.block),
                (one.symbol, one.vector, one.lanes, one.block),
                "{n} {dtype} {state}: batch {batch}"
            );
            let want = (batch * 24 * 64).div_ceil(one.rows_per_block());
            assert_eq!(other.grid as usize, want.clamp(1, MAX_GRID));
            // So is the verdict.
            let mut p = problem(batch, 24, 64, n, dtype, state);
            p.align = align;
            assert!(reasons(&p).is_empty(), "{n} {dtype} {state} {batch}");
        }
    }
}

#[test]
fn the_vector_path_needs_16_byte_alignment_and_whole_chunks() {
    for (n, state, align, want) in [
        (128, DType::BF16, 16, true),
        (128, DType::F32, 16, true),
        (4, DType::F32, 16, true),
        (8, DType::BF16, 16, true),
        (4, DType::BF16, 16, false), // 8 bytes: half a chunk
        (6, DType::F32, 16, false),
        (100, DType::BF16, 16, false),
        (128, DType::BF16, 8, false),
        (128, DType::F32, 4, false),
    ] {
        let mut p = problem(2, 2, 4, n, DType::F16, state);
        p.align = align;
        assert_eq!(vector(&p), want, "{n} {state} align {align}");
        let plan = row_plan(&p);
        assert_eq!(plan.vector, want);
        assert!(plan.symbol.ends_with(if want { "_v" } else { "_s" }));
        // The tiled kernel is the 16-byte path's only.
        let tiled = matches!(
            plan_tactic(&p, Some("tile8")).unwrap().kernel,
            SsuKernel::Tiles { .. }
        );
        assert_eq!(tiled, want, "{n} {state} align {align}");
    }
    // Whole chunks of state imply aligned slices of Bm, Cm (any dtype) and A: their row starts
    // and chunk starts are multiples of the slice width.
    for n in 1..=1024 {
        for state in [2usize, 4] {
            if n * state % 16 != 0 {
                continue;
            }
            let es = 16 / state;
            for input in [2usize, 4] {
                let width = (es * input).min(16);
                assert_eq!(n * input % width, 0, "Bm row, N = {n}");
                assert_eq!(es * input % width, 0, "Bm chunk");
            }
            assert_eq!(n * 4 % 16, 0, "A row, N = {n}");
        }
    }
}

/// The kernel's element mapping for a row: lane `l < L` takes chunks `l + k L`, `k < 4`, those
/// below the chunk count, and their elements below N. Returns how often each n is taken.
fn elements_covered(n_dim: usize, state_bytes: usize) -> Vec<u32> {
    let (l, es) = (
        lanes(n_dim, state_bytes) as usize,
        CHUNK_BYTES / state_bytes,
    );
    let chunks = chunks(n_dim, state_bytes);
    let mut seen = vec![0u32; n_dim];
    for lane in 0..l {
        for k in 0..CHUNKS_PER_LANE {
            let c = lane + k * l;
            if c >= chunks {
                continue;
            }
            for e in 0..es {
                let n = c * es + e;
                if n < n_dim {
                    seen[n] += 1;
                }
            }
        }
    }
    seen
}

#[test]
fn every_state_element_has_exactly_one_lane() {
    for size in [4, 2] {
        for n in 1..=max_state_dim(size) {
            let seen = elements_covered(n, size);
            assert!(seen.iter().all(|&c| c == 1), "N = {n}, {size}-byte state");
            // L is the fewest: half as many lanes would need more than 4 chunks each.
            let l = lanes(n, size) as usize;
            assert!(chunks(n, size) <= CHUNKS_PER_LANE * l);
            assert!(
                l == 1 || chunks(n, size) > CHUNKS_PER_LANE * (l / 2),
                "N = {n}"
            );
        }
    }
}

/// The kernel's row loop for one plan: every warp of every block runs iterations from its first
/// row `(block * 4 + warp) * (32 / L)` while that is below `rows`, stepping by `grid * 128 / L`;
/// group `j` of the warp takes row `first + j` when below `rows`, with `(b, hp)` advanced by the
/// step's quotient and remainder (the kernel's 32-bit arithmetic). Returns how often each row
/// is taken, after checking each `(b, hp)` against the row.
fn rows_covered(plan: &SsuPlan, rows: u64, hp_n: u32) -> Vec<u32> {
    let l = plan.lanes;
    let (rpw, rpb) = (32 / l, THREADS / l);
    let step = plan.grid * rpb;
    let (step_b, step_hp) = (u64::from(step / hp_n), step % hp_n);
    let mut seen = vec![0u32; rows as usize];
    for block in 0..plan.grid {
        for warp in 0..THREADS / 32 {
            for gw in 0..rpw {
                let r0 = block * rpb + warp * rpw + gw;
                let (mut b, mut hp) = (u64::from(r0 / hp_n), r0 % hp_n);
                let mut first = u64::from(r0 - gw);
                while first < rows {
                    let row = first + u64::from(gw);
                    if row < rows {
                        assert_eq!(b * u64::from(hp_n) + u64::from(hp), row);
                        seen[row as usize] += 1;
                    }
                    b += step_b;
                    hp += step_hp;
                    if hp >= hp_n {
                        hp -= hp_n;
                        b += 1;
                    }
                    first += u64::from(step);
                }
            }
        }
    }
    seen
}

#[test]
fn every_row_has_exactly_one_group() {
    for (batch, h, p, n) in [
        (1, 1, 1, 16),
        (3, 5, 7, 128),
        (2, 24, 64, 128),
        (5, 3, 1, 1024),
        (1, 1, 3, 512),
    ] {
        for state in [DType::F32, DType::BF16] {
            if n > max_state_dim(state.size()) {
                continue;
            }
            let plan = row_plan(&problem(batch, h, p, n, DType::F32, state));
            let seen = rows_covered(&plan, (batch * h * p) as u64, (h * p) as u32);
            assert!(seen.iter().all(|&c| c == 1), "{batch} {h} {p} {n} {state}");
        }
    }
    // Past the grid's cap (the kernel loops): 4 rows a block, 65535 blocks.
    let (batch, h, p) = (2100, 2, 64);
    let plan = row_plan(&problem(batch, h, p, 512, DType::F32, DType::F32));
    assert_eq!(plan.grid as usize, MAX_GRID);
    assert!(batch * h * p > MAX_GRID * plan.rows_per_block());
    let seen = rows_covered(&plan, (batch * h * p) as u64, (h * p) as u32);
    assert!(seen.iter().all(|&c| c == 1));
    // The kernel's 32-bit counters: the grid's rows per step plus an in-batch row fit 2^32.
    let most = (MAX_GRID * THREADS as usize) as u64 + i32::MAX as u64;
    assert!(most < 1 << 32);
}

#[test]
fn check_limits_the_state_row_and_the_in_batch_rows_only() {
    let ok = |p: &SelectiveStateUpdateProblem| assert!(reasons(p).is_empty(), "{p:?}");
    let shape = |p: &SelectiveStateUpdateProblem| {
        let r = reasons(p);
        assert!(
            matches!(r.as_slice(), [Reason::ShapeUnsupported { .. }]),
            "{p:?}: {r:?}"
        );
    };
    ok(&problem(4, 8, 64, 512, DType::BF16, DType::F32));
    shape(&problem(4, 8, 64, 513, DType::BF16, DType::F32));
    ok(&problem(4, 8, 64, 1024, DType::F32, DType::BF16));
    ok(&problem(4, 8, 64, 1024, DType::F32, DType::F16));
    shape(&problem(4, 8, 64, 1025, DType::F32, DType::BF16));
    // head_dim of any size, up to 32-bit in-batch rows.
    ok(&problem(
        1,
        1,
        i32::MAX as usize,
        16,
        DType::F32,
        DType::F32,
    ));
    shape(&problem(1, 2, 1 << 30, 16, DType::F32, DType::F32));
    // Any batch, and a large cache.
    ok(&problem(1 << 24, 8, 64, 128, DType::BF16, DType::BF16));
    let mut p = problem(4, 8, 64, 128, DType::BF16, DType::BF16);
    (p.cache_slots, p.index_dtype) = (1 << 20, Some(DType::I64));
    ok(&p);
    // Dtypes core excludes are reasons, not panics.
    p.index_dtype = Some(DType::F32);
    p.state_dtype = DType::I32;
    let r = reasons(&p);
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r
        .iter()
        .all(|r| matches!(r, Reason::DtypeUnsupported { .. })));
    assert!(matches!(plan(&p), Err(Error::NoEntryPoint { .. })));
}

#[test]
fn every_plan_names_a_listed_entry_point() {
    assert_eq!(SOURCE.symbols.len(), 27);
    for dtype in DType::FLOATS.iter().copied() {
        for state in DType::FLOATS.iter().copied() {
            for align in [2, 16] {
                let mut p = problem(2, 4, 8, 64, dtype, state);
                p.align = align;
                let plan = row_plan(&p);
                let v = if align == 16 { "v" } else { "s" };
                assert_eq!(
                    plan.symbol,
                    format!("ssu_{}_{}_{v}", dtype.name(), state.name())
                );
                assert!(SOURCE.lists(plan.symbol));
                let tiled = plan_tactic(&p, Some("tile8")).unwrap();
                let want = if align == 16 {
                    format!("ssut_{}_{}", dtype.name(), state.name())
                } else {
                    plan.symbol.to_string()
                };
                assert_eq!(tiled.symbol, want);
                assert!(SOURCE.lists(tiled.symbol));
            }
        }
    }
}

#[test]
fn every_listed_entry_point_is_in_the_source() {
    // `KY_SSU_ENTRY(D, SD, T, S)` makes `ssu_##D##_##SD##_v` and `..._s`.
    assert!(SOURCE.code.contains("ssu_##D##_##SD##_v(KY_SSU_ARGS)"));
    assert!(SOURCE.code.contains("ssu_##D##_##SD##_s(KY_SSU_ARGS)"));
    assert!(SOURCE
        .code
        .contains("ssut_##D##_##SD(KY_SSU_ARGS, int tile)"));
    for s in SOURCE.symbols {
        if let Some(pair) = s.strip_prefix("ssut_") {
            let (d, sd) = pair.split_once('_').unwrap();
            assert!(
                SOURCE
                    .code
                    .contains(&format!("\nKY_SSU_TILE_ENTRY({d}, {sd}, ")),
                "{s}"
            );
            continue;
        }
        let rest = s.strip_prefix("ssu_").unwrap();
        let (pair, variant) = rest.rsplit_once('_').unwrap();
        assert!(["v", "s"].contains(&variant), "{s}");
        let (d, sd) = pair.split_once('_').unwrap();
        assert!(
            SOURCE.code.contains(&format!("\nKY_SSU_ENTRY({d}, {sd}, ")),
            "{s}"
        );
        // f32 inputs with a half state take the wider register budget (64 would spill).
        let bound = if d == "f32" && sd != "f32" {
            "KY_SSU_V_MIN_BLOCKS_WIDE)"
        } else {
            "KY_SSU_V_MIN_BLOCKS)"
        };
        let line = SOURCE
            .code
            .lines()
            .find(|l| l.starts_with(&format!("KY_SSU_ENTRY({d}, {sd}, ")))
            .unwrap();
        assert!(line.ends_with(bound), "{line}");
    }
    for (name, value) in [
        ("KY_SSU_THREADS", THREADS as i64),
        ("KY_SSU_CHUNKS", CHUNKS_PER_LANE as i64),
        ("KY_SSU_MIN_BLOCKS", i64::from(MIN_BLOCKS)),
        ("KY_SSU_V_MIN_BLOCKS", i64::from(V_MIN_BLOCKS)),
        ("KY_SSU_V_MIN_BLOCKS_WIDE", i64::from(V_MIN_BLOCKS_WIDE)),
        ("KY_SSU_TILE_CHUNKS", TILE_CHUNKS_PER_LANE as i64),
        ("KY_SSU_TILE_MAX", i64::from(MAX_TILE)),
        ("KY_SSU_TILE_MIN_BLOCKS", i64::from(TILE_MIN_BLOCKS)),
        ("KY_SSU_A_PER_HEAD", i64::from(FLAG_A_PER_HEAD)),
        ("KY_SSU_DT_BIAS", i64::from(FLAG_DT_BIAS)),
        ("KY_SSU_D", i64::from(FLAG_D)),
        ("KY_SSU_Z", i64::from(FLAG_Z)),
        ("KY_SSU_SOFTPLUS", i64::from(FLAG_SOFTPLUS)),
    ] {
        assert!(
            SOURCE.code.contains(&format!("#define {name} {value}\n")),
            "{name}"
        );
    }
    // The signature's 21 parameters, as the launch passes them.
    let args = SOURCE
        .code
        .split("#define KY_SSU_ARGS")
        .nth(1)
        .and_then(|r| r.split("\n\n").next())
        .unwrap();
    assert_eq!(args.matches(',').count() + 1, 21, "{args}");
}

fn view<'a>(v: &'a [f32], shape: &[usize]) -> TensorView<'a> {
    TensorView::from_slice(v, shape).unwrap()
}

/// Host buffers for a problem's tensors (f32 inputs, a bf16 state, i32 indices).
struct Buffers {
    state: Vec<bf16>,
    x: Vec<f32>,
    dt: Vec<f32>,
    dt_bias: Vec<f32>,
    a: Vec<f32>,
    bm: Vec<f32>,
    cm: Vec<f32>,
    d: Vec<f32>,
    z: Vec<f32>,
    out: Vec<f32>,
    indices: Vec<i32>,
}

impl Buffers {
    fn new(p: &SelectiveStateUpdateProblem) -> Self {
        let (b, h, hp, n) = (p.batch, p.heads, p.heads * p.head_dim, p.state_dim);
        let groups = p.groups.max(1);
        Buffers {
            state: vec![bf16::from_f32(0.5); p.cache_slots * hp * n],
            x: vec![1.0; b * hp],
            dt: vec![0.1; b * hp],
            dt_bias: vec![0.0; hp],
            a: vec![-1.0; if p.a_per_head { h } else { hp * n }],
            bm: vec![1.0; b * groups * n],
            cm: vec![1.0; b * groups * n],
            d: vec![1.0; hp],
            z: vec![1.0; b * hp],
            out: vec![0.0; b * hp],
            // Slot b from the end, and the pad slot for the last entry.
            indices: (0..b)
                .map(|i| {
                    if i + 1 == b {
                        -1
                    } else {
                        (p.cache_slots - 1 - i) as i32
                    }
                })
                .collect(),
        }
    }

    fn args(&mut self, p: &SelectiveStateUpdateProblem) -> SelectiveStateUpdateArgs<'_> {
        let (b, h, hd, n) = (p.batch, p.heads, p.head_dim, p.state_dim);
        let g = p.groups.max(1);
        let a_shape: &[usize] = if p.a_per_head { &[h] } else { &[h, hd, n] };
        let bhp = [b, h, hd];
        SelectiveStateUpdateArgs {
            state: TensorViewMut::from_slice(&mut self.state, &[p.cache_slots, h, hd, n]).unwrap(),
            x: view(&self.x, &bhp),
            dt: view(&self.dt, &bhp),
            dt_bias: p.dt_bias.then(|| view(&self.dt_bias, &[h, hd])),
            a: view(&self.a, a_shape),
            bm: view(&self.bm, &[b, g, n]),
            cm: view(&self.cm, &[b, g, n]),
            d: p.d.then(|| view(&self.d, &[h, hd])),
            z: p.z.then(|| view(&self.z, &bhp)),
            out: TensorViewMut::from_slice(&mut self.out, &bhp).unwrap(),
            dt_softplus: p.dt_softplus,
            state_indices: p
                .index_dtype
                .map(|_| TensorView::from_slice(&self.indices, &[b]).unwrap()),
        }
    }
}

#[test]
fn validated_arguments_launch_the_planned_entry_point_with_their_parameters() {
    let gpu = Recorder::default();
    for (a_per_head, optional, indices) in [(false, true, false), (true, false, true)] {
        let mut want = problem(3, 4, 6, 40, DType::F32, DType::BF16);
        (want.a_per_head, want.dt_bias, want.d, want.z) =
            (a_per_head, optional, optional, optional);
        want.dt_softplus = optional;
        if indices {
            (want.cache_slots, want.index_dtype) = (7, Some(DType::I32));
        }
        let mut bufs = Buffers::new(&want);
        let mut a = bufs.args(&want);
        let (p, _) = a.validate().unwrap();
        // 40 bf16 = 80 bytes: 5 chunks, 2 lanes (the path depends on the buffers' alignment).
        assert_eq!(
            (p.a_per_head, p.z, p.index_dtype, p.cache_slots),
            (a_per_head, optional, want.index_dtype, want.cache_slots)
        );
        // The row kernel (its tactic): the tiled kernel's launch is tested below.
        let plan = plan_tactic(&p, None).unwrap();
        assert_eq!(plan.lanes, 2);
        let k = params(&mut a, &p, &plan);
        launch(
            &gpu,
            &Stream::host(),
            &Capabilities::host(),
            &mut a,
            &p,
            None,
        )
        .unwrap();
        let calls = gpu.0.take();
        assert_eq!(calls.len(), 1);
        let c = &calls[0];
        assert_eq!(
            (c.file, c.symbol, c.params),
            ("selective_state_update.cu", plan.symbol, 21)
        );
        assert!(c.symbol.starts_with("ssu_f32_bf16_"));
        assert_eq!(c.dims, plan.dims());
        assert_eq!(c.first, bufs.state.as_ptr().cast());
        // 72 rows of 64 a block: 2 blocks.
        assert_eq!(c.dims.grid, (2, 1, 1));
        assert_eq!(c.dims.block, (128, 1, 1));
        let null = std::ptr::null::<c_void>();
        let opt = |v: &Vec<f32>| if optional { v.as_ptr().cast() } else { null };
        let flags = if optional {
            FLAG_DT_BIAS | FLAG_D | FLAG_Z | FLAG_SOFTPLUS
        } else {
            FLAG_A_PER_HEAD
        };
        let want_params = SsuParams {
            state: bufs.state.as_mut_ptr().cast(),
            x: bufs.x.as_ptr().cast(),
            dt: bufs.dt.as_ptr().cast(),
            dt_bias: opt(&bufs.dt_bias),
            a: bufs.a.as_ptr().cast(),
            bm: bufs.bm.as_ptr().cast(),
            cm: bufs.cm.as_ptr().cast(),
            d: opt(&bufs.d),
            z: opt(&bufs.z),
            out: bufs.out.as_mut_ptr().cast(),
            state_indices: if indices {
                bufs.indices.as_ptr().cast()
            } else {
                null
            },
            rows: 72,
            heads: 4,
            head_dim: 6,
            state_dim: 40,
            groups: 1,
            heads_per_group: 4,
            cache_slots: if indices { 7 } else { 3 },
            index_bytes: if indices { 4 } else { 0 },
            flags,
            lanes: 2,
            tile: 0,
        };
        assert_eq!(k, want_params);
    }
}

#[test]
fn groups_and_i64_indices_reach_the_parameters() {
    let mut p = problem(2, 6, 2, 16, DType::F32, DType::BF16);
    (p.groups, p.cache_slots, p.index_dtype) = (3, 5, Some(DType::I64));
    let mut bufs = Buffers::new(&p);
    let indices: Vec<i64> = vec![4, -1];
    let mut a = bufs.args(&p);
    a.state_indices = Some(TensorView::from_slice(&indices, &[2]).unwrap());
    let (v, _) = a.validate().unwrap();
    assert_eq!((v.groups, v.index_dtype), (3, Some(DType::I64)));
    let plan = plan(&v).unwrap();
    let k = params(&mut a, &v, &plan);
    assert_eq!((k.groups, k.heads_per_group, k.index_bytes), (3, 2, 8));
    assert_eq!(k.state_indices, indices.as_ptr().cast());
    assert_eq!((k.lanes, plan.lanes), (1, 1));
}

#[test]
fn the_tiled_lanes_leave_at_most_two_chunks() {
    // (state size, largest N of each L from 1 to 32).
    for (size, ns) in [
        (4, [8, 16, 32, 64, 128, 256]),
        (2, [16, 32, 64, 128, 256, 512]),
    ] {
        let mut low = 1;
        for (i, &high) in ns.iter().enumerate() {
            for n in low..=high {
                assert_eq!(tile_lanes(n, size), Some(1 << i), "N = {n}, {size}");
            }
            low = high + 1;
        }
        assert_eq!(max_tiled_state_dim(size), *ns.last().unwrap());
        assert_eq!(tile_lanes(low, size), None);
    }
    // Each element of a row has exactly one lane: lane l takes chunks l and l + L.
    for (n, size) in [(128, 2), (128, 4), (256, 4), (512, 2), (8, 2), (40, 2)] {
        let l = tile_lanes(n, size).unwrap() as usize;
        let es = CHUNK_BYTES / size;
        let mut seen = vec![0; n];
        for lane in 0..l {
            for k in 0..TILE_CHUNKS_PER_LANE {
                let c = lane + k * l;
                for e in 0..es {
                    if c * es + e < n {
                        seen[c * es + e] += 1;
                    }
                }
            }
        }
        assert!(seen.iter().all(|&c| c == 1), "{n} {size}");
    }
}

#[test]
fn the_tactics_choose_the_kernel_and_the_tile_only() {
    let p = problem(37, 24, 64, 128, DType::BF16, DType::BF16);
    let default = plan_tactic(&p, Some("tile8")).unwrap();
    assert_eq!(default.kernel, SsuKernel::Tiles { tile: 8 });
    assert_eq!(
        (default.symbol, default.lanes, default.grid, default.grid_y),
        ("ssut_bf16_bf16", 8, 24 * 64 / 16, 37u32.div_ceil(8))
    );
    assert_eq!(default.dims().grid, (96, 5, 1));
    for (tactic, tile) in [("tile4", 4), ("tile16", 16), ("tile32", 32)] {
        let t = plan_tactic(&p, Some(tactic)).unwrap();
        assert_eq!(t.kernel, SsuKernel::Tiles { tile });
        assert_eq!((t.symbol, t.lanes, t.grid), ("ssut_bf16_bf16", 8, 96));
        assert_eq!(t.grid_y, 37u32.div_ceil(tile));
    }
    let row = plan(&p).unwrap();
    assert_eq!(
        (row.kernel, row.symbol, row.lanes),
        (SsuKernel::Rows, "ssu_bf16_bf16_v", 4)
    );
    assert!(TACTICS.iter().all(|t| tactic_tile(Some(t)).is_ok()));
    assert!(TACTICS.iter().all(|t| t
        .strip_prefix("tile")
        .is_none_or(|n| n.parse::<u32>().is_ok_and(|n| n <= MAX_TILE))));
    assert!(matches!(
        plan_tactic(&p, Some("tile8x")),
        Err(Error::NoEntryPoint { what, .. }) if what.contains("tile8x")
    ));
    // Where the tiled kernel does not apply, every tactic is the row kernel.
    let mut unaligned = p.clone();
    unaligned.align = 4;
    let big = problem(3, 2, 4, 512, DType::BF16, DType::F32);
    for q in [&unaligned, &big] {
        for tactic in [None, Some("tile4"), Some("tile8"), Some("tile32")] {
            assert_eq!(plan_tactic(q, tactic).unwrap(), row_plan(q), "{tactic:?}");
        }
    }
    // Nothing but the grid's y depends on the batch.
    for batch in [1, 2, 9, 1000, 1 << 20, 1 << 30] {
        let q = problem(batch, 24, 64, 128, DType::BF16, DType::BF16);
        let t = plan_tactic(&q, Some("tile8")).unwrap();
        assert_eq!(
            (t.symbol, t.lanes, t.grid, t.block, t.kernel),
            (
                default.symbol,
                default.lanes,
                default.grid,
                default.block,
                default.kernel
            )
        );
        assert_eq!(t.grid_y as usize, batch.div_ceil(8).min(MAX_GRID_Y));
    }
}

/// The tiled kernel's loops for one plan: block (x, y) takes rows `hp = x * (128 / L) + j` (those
/// below `H * P`) for the entries of tiles `b0 = y * tile, y * tile + grid_y * tile, ...`, each
/// `min(tile, B - b0)` entries. Returns how often each `(b, hp)` is taken.
fn tiles_covered(plan: &SsuPlan, batch: usize, hp_n: usize) -> Vec<u32> {
    let SsuKernel::Tiles { tile } = plan.kernel else {
        panic!("not a tiled plan")
    };
    let (tile, per_block) = (tile as usize, plan.rows_per_block());
    let mut seen = vec![0u32; batch * hp_n];
    for y in 0..plan.grid_y as usize {
        let mut b0 = y * tile;
        while b0 < batch {
            let count = tile.min(batch - b0);
            for x in 0..plan.grid as usize {
                for j in 0..per_block {
                    let hp = x * per_block + j;
                    if hp < hp_n {
                        for e in 0..count {
                            seen[(b0 + e) * hp_n + hp] += 1;
                        }
                    }
                }
            }
            b0 += plan.grid_y as usize * tile;
        }
    }
    seen
}

#[test]
fn every_row_of_every_entry_has_exactly_one_tiled_group() {
    for (batch, h, p, n, state) in [
        (1, 1, 1, 16, DType::BF16),
        (3, 5, 7, 128, DType::F32),
        (37, 24, 64, 128, DType::BF16),
        (5, 3, 1, 512, DType::BF16),
        (70, 1, 3, 256, DType::F32),
    ] {
        for tactic in [Some("tile8"), Some("tile4"), Some("tile16"), Some("tile32")] {
            let plan = plan_tactic(&problem(batch, h, p, n, DType::BF16, state), tactic).unwrap();
            let seen = tiles_covered(&plan, batch, h * p);
            assert!(
                seen.iter().all(|&c| c == 1),
                "{batch} {h} {p} {n} {tactic:?}"
            );
        }
    }
    // Past the grid's cap on y (the kernel loops over the tiles beyond).
    let batch = MAX_GRID_Y * 4 + 3;
    let plan = plan_tactic(
        &problem(batch, 1, 1, 16, DType::F32, DType::F32),
        Some("tile4"),
    )
    .unwrap();
    assert_eq!(plan.grid_y as usize, MAX_GRID_Y);
    let seen = tiles_covered(&plan, batch, 1);
    assert!(seen.iter().all(|&c| c == 1));
}

#[test]
fn the_tiled_launch_passes_the_batch_and_the_tile() {
    let gpu = Recorder::default();
    // The problem as validated from 16-byte aligned views (the recorder reads no memory).
    let p = problem(3, 4, 6, 64, DType::F32, DType::BF16);
    let mut bufs = Buffers::new(&p);
    let mut a = bufs.args(&p);
    let plan = plan_tactic(&p, Some("tile16")).unwrap();
    assert!(plan.vector);
    assert_eq!(plan.kernel, SsuKernel::Tiles { tile: 16 });
    let k = params(&mut a, &p, &plan);
    assert_eq!((k.rows, k.tile, k.lanes), (3, 16, 4));
    launch(
        &gpu,
        &Stream::host(),
        &Capabilities::host(),
        &mut a,
        &p,
        Some("tile16"),
    )
    .unwrap();
    let calls = gpu.0.take();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].symbol, calls[0].params, calls[0].dims),
        ("ssut_f32_bf16", 22, plan.dims())
    );
    // 24 rows (h, p) of 32 a block: 1 block; 3 entries in one tile.
    assert_eq!(plan.dims().grid, (1, 1, 1));
}
