//! Keeps the README's embedding example identical to `examples/embed.rs` (which CI runs).

use std::path::Path;

/// The workspace README: `../../README.md` in the workspace, `README.md` in the published
/// package (the manifest's `readme` field copies it there). Read at run time, so the test file
/// names no path outside the package.
fn readme() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [dir.join("README.md"), dir.join("../../README.md")];
    candidates
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_else(|| panic!("no README.md at {candidates:?}"))
}

#[test]
fn readme_example_is_the_embed_example() {
    let readme = readme();
    let example = include_str!("../examples/embed.rs");
    let start = readme.find("```rust\n").expect("README has a rust block") + "```rust\n".len();
    let len = readme[start..].find("```").expect("the rust block ends");
    let block = &readme[start..start + len];
    let body = example
        .split_once("\n\n")
        .map(|(_, body)| body)
        .expect("the example has a header");
    assert_eq!(
        block, body,
        "README.md and examples/embed.rs differ: update one from the other"
    );
}
