//! The CNI executor (filled in below).
