//! VM tests live in tests/tests/*.rs, gated by the `vm` feature that `cargo xtask test` enables.
