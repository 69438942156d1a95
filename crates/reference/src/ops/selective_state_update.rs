//! `selective_state_update` oracle and the `reference.selective_state_update` kernel (being written).
