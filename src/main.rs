//! The `registrar` binary.
fn main() {}
