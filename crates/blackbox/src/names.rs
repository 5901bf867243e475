//! Names of signals and of their `si_code` values, for reports and `crashguard explain`.
//!
//! Signal numbers are the platform's (libc's constants); `si_code` values are Linux's, which
//! are identical on x86_64 and aarch64.

/// The conventional name of signal `n` (`"SIGSEGV"`), if it has one: the one signal-name table
/// of crashguard (`crashguard_signals::Signal::name`, reports, `crashguard explain` and the CLI
/// all use it). Numbers are the platform's own, as the handler records them; Linux's are the
/// same on x86_64 and aarch64, so a report reads the same on either.
///
/// Async-signal-safe.
pub fn signal_name(n: u32) -> Option<&'static str> {
    let n = i32::try_from(n).ok()?;
    Some(match n {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        #[cfg(any(target_os = "linux", target_os = "android"))]
        libc::SIGSTKFLT => "SIGSTKFLT",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGURG => "SIGURG",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGVTALRM => "SIGVTALRM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGIO => "SIGIO",
        #[cfg(any(target_os = "linux", target_os = "android"))]
        libc::SIGPWR => "SIGPWR",
        libc::SIGSYS => "SIGSYS",
        _ => return None,
    })
}

/// The name of `si_code` value `code` for signal `signo` (`"SEGV_MAPERR"`), if known.
///
/// Async-signal-safe.
pub fn code_name(signo: u32, code: i32) -> Option<&'static str> {
    // Codes that mean "sent by someone" apply to every signal.
    let generic = match code {
        0 => Some("SI_USER"),
        0x80 => Some("SI_KERNEL"),
        -1 => Some("SI_QUEUE"),
        -2 => Some("SI_TIMER"),
        -3 => Some("SI_MESGQ"),
        -4 => Some("SI_ASYNCIO"),
        -5 => Some("SI_SIGIO"),
        -6 => Some("SI_TKILL"),
        _ => None,
    };
    if generic.is_some() {
        return generic;
    }
    Some(match (signo, code) {
        (11, 1) => "SEGV_MAPERR",
        (11, 2) => "SEGV_ACCERR",
        (11, 3) => "SEGV_BNDERR",
        (11, 4) => "SEGV_PKUERR",
        (11, 5) => "SEGV_ACCADI",
        (11, 6) => "SEGV_ADIDERR",
        (11, 7) => "SEGV_ADIPERR",
        (11, 8) => "SEGV_MTEAERR",
        (11, 9) => "SEGV_MTESERR",
        (7, 1) => "BUS_ADRALN",
        (7, 2) => "BUS_ADRERR",
        (7, 3) => "BUS_OBJERR",
        (7, 4) => "BUS_MCEERR_AR",
        (7, 5) => "BUS_MCEERR_AO",
        (4, 1) => "ILL_ILLOPC",
        (4, 2) => "ILL_ILLOPN",
        (4, 3) => "ILL_ILLADR",
        (4, 4) => "ILL_ILLTRP",
        (4, 5) => "ILL_PRVOPC",
        (4, 6) => "ILL_PRVREG",
        (4, 7) => "ILL_COPROC",
        (4, 8) => "ILL_BADSTK",
        (8, 1) => "FPE_INTDIV",
        (8, 2) => "FPE_INTOVF",
        (8, 3) => "FPE_FLTDIV",
        (8, 4) => "FPE_FLTOVF",
        (8, 5) => "FPE_FLTUND",
        (8, 6) => "FPE_FLTRES",
        (8, 7) => "FPE_FLTINV",
        (8, 8) => "FPE_FLTSUB",
        (5, 1) => "TRAP_BRKPT",
        (5, 2) => "TRAP_TRACE",
        (5, 3) => "TRAP_BRANCH",
        (5, 4) => "TRAP_HWBKPT",
        _ => return None,
    })
}

/// Whether `si_code` says the signal was sent by a process (so `si_pid`/`si_uid` are meaningful).
///
/// Async-signal-safe.
pub fn code_is_sent(code: i32) -> bool {
    code <= 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_libc() {
        for (n, name) in [
            (libc::SIGSEGV, "SIGSEGV"),
            (libc::SIGBUS, "SIGBUS"),
            (libc::SIGILL, "SIGILL"),
            (libc::SIGFPE, "SIGFPE"),
            (libc::SIGABRT, "SIGABRT"),
            (libc::SIGTRAP, "SIGTRAP"),
            (libc::SIGTERM, "SIGTERM"),
            (libc::SIGKILL, "SIGKILL"),
            (libc::SIGSYS, "SIGSYS"),
        ] {
            assert_eq!(signal_name(n as u32), Some(name));
        }
        assert_eq!(signal_name(0), None);
        assert_eq!(signal_name(64), None);
        assert_eq!(signal_name(u32::MAX), None);
        #[cfg(target_os = "linux")]
        for n in 1..=31 {
            assert!(signal_name(n).is_some(), "Linux signal {n} has a name");
        }
    }

    #[test]
    fn codes() {
        assert_eq!(code_name(11, 1), Some("SEGV_MAPERR"));
        assert_eq!(code_name(8, 1), Some("FPE_INTDIV"));
        assert_eq!(code_name(6, -6), Some("SI_TKILL"));
        assert_eq!(code_name(15, 0), Some("SI_USER"));
        assert_eq!(code_name(11, 99), None);
        assert!(code_is_sent(-6));
        assert!(!code_is_sent(1));
    }
}
