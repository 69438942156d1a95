//! Keeps the README's embedding example identical to `examples/embed.rs` (which CI runs).

#[test]
fn readme_example_is_the_embed_example() {
    let readme = include_str!("../../../README.md");
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
