//! `gemm` oracle and the `reference.gemm` kernel (being written).
