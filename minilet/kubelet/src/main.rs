//! minilet (being written).
fn main() {}
