//! `rms_norm` oracle and the `reference.rms_norm` kernel (being written).
