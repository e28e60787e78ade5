//! The process entry of the one-shot `oathdesk code`: a short start-up in
//! place of std's.
//!
//! Why: scripts run `oathdesk code` in loops, so its start-up is most of its
//! run time (BENCHMARKS.md, "the loader and the runtime"). Before `main`, std
//! asks glibc where the main thread's stack ends, to place a stack-overflow
//! handler; for the main thread glibc answers by reading and parsing
//! `/proc/self/maps` — a third of the user-space instructions of a one-shot
//! code and most of its system time.
//!
//! How: crates/cli/build.rs links the executable with `--wrap=main`, so the C
//! runtime enters [`__wrap_main`] here, and `__real_main` is rustc's `main`,
//! std's full start-up. Every command but `code` goes straight there,
//! unchanged. `code` starts here with what std's start-up does that matters
//! to it:
//! - standard streams that were closed at start are opened on /dev/null (as
//!   std does), so a file the command opens can never become its stdout or
//!   stderr;
//! - a panic exits 101 after its message (as std does), through
//!   `std::process::exit`, which flushes stdout as returning from `main` does.
//!
//! What differs for `code` alone:
//! - SIGPIPE is the default action, not ignored: a reader that closes the
//!   pipe early (`oathdesk code … | head -c1`) ends it quietly, as it ends
//!   `oathtool`, instead of a "failed printing to stdout" panic. `code` writes
//!   to nothing but its standard streams, so no socket is affected;
//! - no stack-overflow handler: an overflow would still hit the kernel's
//!   stack guard gap (Rust's stack probes see to that) and end the process
//!   with SIGSEGV, only without std's "has overflowed its stack" message.
//!   `code` does not recurse;
//! - a panic message names the thread `<unnamed>` rather than `main`.

use std::ffi::{CStr, c_char, c_int};
use std::process::ExitCode;

unsafe extern "C" {
    /// rustc's `main`: std's start-up, then `fn main` (named so by the
    /// linker's `--wrap=main`).
    fn __real_main(argc: c_int, argv: *const *const c_char) -> c_int;
}

/// The executable's entry from the C runtime (`--wrap=main`).
#[unsafe(no_mangle)]
extern "C" fn __wrap_main(argc: c_int, argv: *const *const c_char) -> c_int {
    // Test builds run the test harness, whose arguments are test filters.
    // SAFETY: the C runtime passes `argc` valid C strings in `argv`.
    if !cfg!(test) && unsafe { command_of(argc, argv) } == Some(c"code") {
        one_shot();
    }
    // SAFETY: the C runtime's own arguments, passed on unchanged.
    unsafe { __real_main(argc, argv) }
}

/// The first argument after the program name, if any.
///
/// # Safety
/// `argv` must hold `argc` pointers to NUL-terminated strings.
unsafe fn command_of<'a>(argc: c_int, argv: *const *const c_char) -> Option<&'a CStr> {
    if argc < 2 || argv.is_null() {
        return None;
    }
    // SAFETY: argc ≥ 2, so argv[1] is one of the caller's valid strings.
    let first = unsafe { *argv.add(1) };
    // SAFETY: as above; a null entry is refused first.
    (!first.is_null()).then(|| unsafe { CStr::from_ptr(first) })
}

/// Runs the command line with the short start-up and exits.
fn one_shot() -> ! {
    keep_standard_streams_open();
    // SAFETY: setting a signal's disposition to its default has no memory
    // effect; no handler of ours is replaced.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let status = match std::panic::catch_unwind(crate::run) {
        Ok(code) => exit_status(code),
        Err(payload) => {
            // The panic hook has printed the message; dropping a payload
            // could panic again, and the process is ending anyway.
            std::mem::forget(payload);
            101
        }
    };
    // Flushes stdout, as returning from std's `main` does.
    std::process::exit(status)
}

/// Opens /dev/null on each of stdin, stdout and stderr that is closed, so
/// that no file opened later takes its number (std's start-up does the same).
fn keep_standard_streams_open() {
    for fd in closed_standard_streams() {
        // The lowest free number is taken first, so open() returns `fd`.
        // SAFETY: a NUL-terminated path and plain flags.
        let opened = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if opened != fd {
            // A standard stream left closed could become a file opened
            // later: std aborts here too.
            std::process::abort();
        }
    }
}

/// Which of 0, 1 and 2 are not open, lowest first: one poll, or one fcntl
/// each where poll is refused (RLIMIT_NOFILE, no memory), as std does.
fn closed_standard_streams() -> Vec<c_int> {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    loop {
        // SAFETY: `fds` is three valid pollfd for the call's duration.
        if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } != -1 {
            return fds
                .iter()
                .filter(|p| p.revents & libc::POLLNVAL != 0)
                .map(|p| p.fd)
                .collect();
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break;
        }
    }
    (0..3)
        .filter(|&fd| {
            // SAFETY: F_GETFD only reads the descriptor table.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            flags == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
        })
        .collect()
}

/// The number a process exits with for `code`: `ExitCode` keeps it private,
/// and the commands only use 0–3, so find it among the bytes.
fn exit_status(code: ExitCode) -> c_int {
    (0..=u8::MAX)
        .find(|&n| ExitCode::from(n) == code)
        .map_or(1, c_int::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_reads_back_every_byte() {
        for n in [0u8, 1, 2, 3, 101, 255] {
            assert_eq!(exit_status(ExitCode::from(n)), c_int::from(n));
        }
        assert_eq!(exit_status(ExitCode::SUCCESS), 0);
        assert_eq!(exit_status(ExitCode::FAILURE), 1);
    }

    #[test]
    fn command_of_reads_the_first_argument() {
        let strings = [c"oathdesk", c"code", c"JBSWY3DPEHPK3PXP"];
        let argv: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        // SAFETY: argv holds argc valid C strings.
        assert_eq!(unsafe { command_of(3, argv.as_ptr()) }, Some(c"code"));
        assert_eq!(unsafe { command_of(1, argv.as_ptr()) }, None);
        assert_eq!(unsafe { command_of(0, std::ptr::null()) }, None);
    }
}
