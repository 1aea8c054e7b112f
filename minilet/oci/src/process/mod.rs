//! The container's processes: the fork of the init (two stages when a PID namespace
//! is involved), the typed channel between runtime and init, the final steps before
//! `execve`, and the console.

pub mod channel;
pub mod finalize;
pub mod fork;
pub mod init;
pub mod tty;
