//! `attention` oracle and the `reference.attention` kernel (being written).
