//! `token_logprobs` oracle and the `reference.token_logprobs` kernel (being written).
