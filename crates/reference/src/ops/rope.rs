//! `rope` oracle and the `reference.rope` kernel (being written).
