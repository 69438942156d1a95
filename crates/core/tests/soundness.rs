//! Aliasing that the view types forbid does not compile: each file in `compile_fail/` tries to
//! hold a shared and a mutable view (or slice) of one buffer in safe code, and its `.stderr`
//! is the borrow error the compiler must give. Regenerate with `TRYBUILD=overwrite` after a
//! toolchain change, then check each file still names the borrow it should.

#[test]
fn aliasing_views_do_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/compile_fail/*.rs");
}
