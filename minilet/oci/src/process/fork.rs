//! `fork(2)` with the child's code as a closure whose return value is the exit code.

use nix::unistd::{fork, ForkResult, Pid};

use crate::error::{Error, Result};

/// Forks; the child runs `child` and `_exit`s with what it returns (it never returns to
/// the caller's code, so no destructor or atexit handler of the parent runs twice).
pub fn run_in_child(child: impl FnOnce() -> i32) -> Result<Pid> {
    // SAFETY: the runtime's callers fork from a single-threaded process (the CLI) or
    // accept glibc's fork guarantees (malloc and stdio stay usable in the child). The
    // child only runs `child` and then `_exit`s, never unwinding into the caller.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => Ok(child),
        Ok(ForkResult::Child) => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
            // SAFETY: _exit ends the process at once; nothing of the parent's runs again.
            unsafe { libc::_exit(code) }
        }
        Err(e) => Err(Error::sys("fork", e)),
    }
}
