//! What each Linux signal means when it ends a process, and what usually sends it.
//!
//! The names come from [`crate::names::signal_name`] so that reports and explanations agree;
//! this table adds the human part: a one-line description, the usual causes and what to check.

/// The human side of one signal.
#[derive(Clone, Copy)]
pub(super) struct SignalText {
    /// The signal number.
    pub number: u8,
    /// What the signal means, one line.
    pub description: &'static str,
    /// What usually sends it, most likely first.
    pub causes: &'static [&'static str],
    /// Where to look to find out which cause it was.
    pub checks: &'static [&'static str],
}

/// The description of signal `n` (1..=64), including the real-time range.
pub(super) fn signal_text(n: u8) -> Option<SignalText> {
    if let Some(text) = SIGNALS.iter().find(|s| s.number == n) {
        return Some(*text);
    }
    match n {
        32 | 33 => Some(SignalText {
            number: n,
            description: "a signal glibc reserves for its own threads (cancellation, setxid); it does not normally reach an application",
            causes: &[
                "someone sent this raw signal number explicitly (`kill -32`, `kill -33`)",
                "a program built against a C library that uses these numbers differently",
            ],
            checks: &["whatever sends signals to this process by number (scripts, supervisors)"],
        }),
        34..=64 => Some(SignalText {
            number: n,
            description: "a real-time signal (SIGRTMIN..SIGRTMAX) that the process had no handler for; the default action terminates",
            causes: &[
                "a library or the program itself expected to install a handler for it and had not (yet)",
                "a timer (`timer_create` with SIGEV_SIGNAL) or `sigqueue` aimed at the wrong process",
                "systemd sends SIGRTMIN+n to PID 1 style processes for control requests",
            ],
            checks: &["which component uses real-time signals (timers, profilers, runtimes)"],
        }),
        _ => None,
    }
}

/// The name of signal `n`, covering the real-time range that `signal_name` leaves out.
pub(super) fn name_of(n: u8) -> String {
    match crate::names::signal_name(u32::from(n)) {
        Some(name) => name.to_owned(),
        None if n == 34 => "SIGRTMIN".to_owned(),
        None if n == 64 => "SIGRTMAX".to_owned(),
        None if (35..64).contains(&n) => format!("SIGRTMIN+{}", n - 34),
        None => format!("signal {n}"),
    }
}

const SIGNALS: &[SignalText] = &[
    SignalText {
        number: 1,
        description: "hangup: the controlling terminal went away, or a request to reload",
        causes: &[
            "the terminal or ssh session the process was started from closed (no nohup, setsid or supervisor)",
            "an operator or a tool sent SIGHUP to ask for a configuration reload and the process had no handler",
        ],
        checks: &[
            "run services under a supervisor (systemd, docker) rather than from an interactive shell",
            "crashguard treats SIGHUP as a graceful shutdown request and records who sent it",
        ],
    },
    SignalText {
        number: 2,
        description: "interrupt: Ctrl-C in a terminal",
        causes: &[
            "Ctrl-C in the terminal the process ran in",
            "`docker run` in the foreground (without -d), then Ctrl-C: the container exits 130",
            "`kill -INT` by a script or supervisor",
        ],
        checks: &[
            "if a service got it, who sent it: crashguard records the sender's pid and uid",
            "handle SIGINT as a graceful stop so the exit status is 0",
        ],
    },
    SignalText {
        number: 3,
        description: "quit: Ctrl-\\ in a terminal; the default action also writes a core dump",
        causes: &[
            "Ctrl-\\ in the terminal",
            "a supervisor whose stop signal is SIGQUIT (some images set STOPSIGNAL SIGQUIT, e.g. nginx's graceful stop)",
            "a tool that expects to trigger a thread dump (the JVM handles SIGQUIT; a native process dies of it)",
        ],
        checks: &[
            "`coredumpctl list` for the core it left",
            "the container's STOPSIGNAL and the supervisor's stop settings",
        ],
    },
    SignalText {
        number: 4,
        description: "illegal instruction: the CPU refused to execute an instruction",
        causes: &[
            "a binary built for a newer CPU than it runs on (`-C target-cpu=native`, AVX-512 or AVX2 on an older host or a VM that hides the flags)",
            "a deliberate trap: compilers emit `ud2` for unreachable code and Rust's `core::intrinsics::abort`",
            "a jump into data or corrupted code (memory corruption, a bad function pointer)",
        ],
        checks: &[
            "`crashguard show <report dir>`: the si_code (ILL_ILLOPC, ILL_ILLOPN, ...) and the symbolized frame at the fault",
            "compare `grep flags /proc/cpuinfo` with the target features the binary was built with",
        ],
    },
    SignalText {
        number: 5,
        description: "trace/breakpoint trap",
        causes: &[
            "a breakpoint instruction left in the code (`int3`, `std::intrinsics::breakpoint`), hit without a debugger",
            "a debugger or tracer that detached while breakpoints were still set",
            "on aarch64, compiler-emitted traps (`brk`) for aborts and unreachable code",
        ],
        checks: &[
            "whether a debugger, tracer or profiler was attached",
            "`crashguard show <report dir>` for the frame that trapped",
        ],
    },
    SignalText {
        number: 6,
        description: "abort: the process called abort() on itself (or was sent SIGABRT)",
        causes: &[
            "Rust: a panic with `panic = \"abort\"`, a panic while panicking, or `std::process::abort()`",
            "Rust: an allocation failure; the default handler prints \"memory allocation of N bytes failed\" and aborts (crashguard's memory budget turns this into exit 80 with a report)",
            "Rust: a stack overflow on the main thread or a std thread without crashguard; std prints \"thread '<name>' has overflowed its stack\" and \"fatal runtime error: stack overflow\" and aborts",
            "C/C++: a failed assert(), std::terminate (an uncaught C++ exception), glibc detecting heap corruption (\"double free or corruption\", \"free(): invalid pointer\", \"malloc(): corrupted top size\")",
            "a managed runtime giving up on a fatal error (the JVM writes hs_err_pid<pid>.log first)",
        ],
        checks: &[
            "the process's last lines on stderr or in the journal: every cause above prints a message before aborting",
            "`crashguard show <report dir>`: the panic message and location when a panic led to the abort, and the backtrace",
            "`coredumpctl list` for the core dump the default action wrote",
        ],
    },
    SignalText {
        number: 7,
        description: "bus error: access to memory whose backing is gone or misaligned",
        causes: &[
            "a memory-mapped file that another process truncated while it was mapped (the most common cause)",
            "shared memory on a full tmpfs, e.g. docker's default 64 MiB /dev/shm",
            "huge pages that could not be allocated when touched",
            "a misaligned access on a CPU that requires alignment, or a hardware memory error (BUS_MCEERR_*)",
        ],
        checks: &[
            "`crashguard show <report dir>`: BUS_ADRERR (backing gone) vs BUS_ADRALN (alignment) and the fault address",
            "`df -h /dev/shm` and who truncates or rotates the files this process maps",
        ],
    },
    SignalText {
        number: 8,
        description: "arithmetic exception: integer division by zero or overflow, or an enabled floating-point trap",
        causes: &[
            "integer division by zero or INT_MIN / -1 in C, C++, assembly or FFI code (Rust panics for these instead)",
            "floating-point exceptions that a library unmasked",
        ],
        checks: &[
            "`crashguard show <report dir>`: FPE_INTDIV vs FPE_INTOVF and the symbolized frame at the fault",
        ],
    },
    SignalText {
        number: 9,
        description: "kill: ends the process at once; it cannot be caught, blocked or handled, so no handler ran and nothing was flushed",
        causes: &[
            "the kernel OOM killer: the host ran out of memory, or the container's cgroup hit its memory limit (the most common cause in containers)",
            "`docker stop`, `kubectl delete`, `systemctl stop` after the grace period ran out (docker 10 s, Kubernetes 30 s, systemd TimeoutStopSec= 90 s) because the process did not exit on SIGTERM in time",
            "a shell wrapper as PID 1 in a container (`sh -c app`) that does not forward SIGTERM, so every stop ends in SIGKILL",
            "`kill -9`, `docker kill`, `kubectl delete --grace-period=0 --force` by an operator or a script",
            "the RLIMIT_CPU hard limit (the kernel sends SIGKILL after SIGXCPU)",
        ],
        checks: &[
            "kernel log: `dmesg -T | grep -i 'killed process'` or `journalctl -k | grep -i -e oom -e 'killed process'`; a line \"Killed process <pid> (<name>)\" or \"Memory cgroup out of memory\" names the victim",
            "the cgroup's counters: cgroup v2 `memory.events` (oom_kill), cgroup v1 `memory.oom_control` (oom_kill) and `memory.failcnt`",
            "docker: `docker inspect -f '{{.State.OOMKilled}}' <container>`; Kubernetes: `kubectl describe pod` shows \"Reason: OOMKilled\"",
            "crashguard: the next start finds the black box still running and reports `killed_without_warning` with the last resource heartbeat; its verdict reads \"likely OOM-killed\" when memory was near the limit or the cgroup oom_kill counter grew, else \"killed by SIGKILL or power loss\" (`crashguard show <report dir>`)",
            "a crashguard memory budget ends the process itself with code 80 and a report before the kernel OOM killer acts",
        ],
    },
    SignalText {
        number: 10,
        description: "user-defined signal 1, with no handler installed; the default action terminates",
        causes: &[
            "a tool sent SIGUSR1 expecting a handler (log reopen, status dump) before the process installed one, or to the wrong process",
        ],
        checks: &[
            "logrotate postrotate scripts, cron jobs and supervisors that signal this process",
        ],
    },
    SignalText {
        number: 11,
        description: "segmentation fault: an invalid memory access",
        causes: &[
            "a null or wild pointer dereference, use-after-free or buffer overflow in C/C++, FFI or `unsafe` Rust code",
            "a stack overflow: deep or unbounded recursion, or a huge array on the stack; crashguard reports `stack_overflow: true` when the fault address lies in a stack guard page (without crashguard, Rust's main and std threads print \"has overflowed its stack\" and abort with 134, while threads created by raw pthread_create die silently with 139)",
            "native libraries: JNI or FFI code, a shared library of a different version than the one built against",
            "rarely, faulty hardware (look for machine-check errors in the kernel log)",
        ],
        checks: &[
            "`crashguard show <report dir>`: SEGV_MAPERR (nothing mapped there: null or wild pointer) vs SEGV_ACCERR (mapped but not allowed: read-only, non-executable, guard page), the fault address, the crashing thread and the symbolized backtrace",
            "kernel log: `dmesg | grep segfault` shows the instruction pointer and the object it was in",
            "`coredumpctl info` / `coredumpctl gdb` when systemd-coredump is set up",
        ],
    },
    SignalText {
        number: 12,
        description: "user-defined signal 2, with no handler installed; the default action terminates",
        causes: &[
            "a tool sent SIGUSR2 expecting a handler that the process had not installed, or to the wrong process",
        ],
        checks: &["scripts, cron jobs and supervisors that signal this process"],
    },
    SignalText {
        number: 13,
        description: "broken pipe: a write to a pipe or socket whose reading end is closed",
        causes: &[
            "a pipeline whose reader exited early (`app | head`); usually harmless",
            "a socket peer that went away, in a program that does not ignore SIGPIPE (Rust ignores it by default, but child processes and C programs get the default action)",
        ],
        checks: &[
            "what reads this process's output",
            "systemd counts death by SIGPIPE as a clean stop for daemons",
        ],
    },
    SignalText {
        number: 14,
        description: "alarm clock: a timer from alarm() or setitimer() expired with no handler",
        causes: &[
            "the program or a library armed a timer without a handler",
            "`timeout --signal=ALRM`",
        ],
        checks: &["who calls alarm()/setitimer() in this process"],
    },
    SignalText {
        number: 15,
        description: "terminate: a polite request to stop, which the process did not handle as a graceful exit",
        causes: &[
            "`docker stop`, `docker compose down`, `kubectl delete pod`, a rollout, a scale-down or a node drain, `systemctl stop`: the orchestrator asked the process to stop",
            "`kill <pid>`: SIGTERM is kill's default",
            "the process has no SIGTERM handler, or handles it but then re-raises or exits with 143 instead of finishing its graceful shutdown with 0",
        ],
        checks: &[
            "whether the stop was expected: `kubectl get events`, `docker events`, `journalctl -u <unit>`",
            "crashguard records who sent the signal (sender pid and uid) and runs the shutdown hooks; a service that finishes its shutdown in time exits 0, so 143 means the stop was not handled as graceful",
        ],
    },
    SignalText {
        number: 16,
        description: "stack fault on a coprocessor; unused by Linux itself",
        causes: &["someone sent signal 16 explicitly"],
        checks: &["scripts that send signals by number"],
    },
    SignalText {
        number: 17,
        description: "child stopped or exited; ignored by default, so it does not end a process by itself",
        causes: &[
            "the status is more likely the application's own exit code than a death by SIGCHLD",
        ],
        checks: &["the application's own exit codes"],
    },
    SignalText {
        number: 18,
        description: "continue a stopped process; it does not end a process",
        causes: &[
            "the status is more likely the application's own exit code than a death by SIGCONT",
        ],
        checks: &["the application's own exit codes"],
    },
    SignalText {
        number: 19,
        description: "stop (cannot be caught); the process was suspended, not killed",
        causes: &[
            "a shell reports 128+n for a job that was stopped; `kill -STOP`, a debugger, or a freezer cgroup",
        ],
        checks: &["`ps -o stat <pid>` shows T for a stopped process; `kill -CONT` resumes it"],
    },
    SignalText {
        number: 20,
        description: "terminal stop (Ctrl-Z); the process was suspended, not killed",
        causes: &["Ctrl-Z in the terminal: bash reports 148 for the stopped job"],
        checks: &["`jobs` and `fg` in that shell"],
    },
    SignalText {
        number: 21,
        description: "a background process tried to read from its terminal and was stopped",
        causes: &["a background job (`app &`) read from the terminal"],
        checks: &["redirect stdin (`< /dev/null`) for background jobs"],
    },
    SignalText {
        number: 22,
        description: "a background process tried to write to its terminal (with `stty tostop`) and was stopped",
        causes: &["a background job wrote to a terminal that has tostop set"],
        checks: &["redirect the job's output"],
    },
    SignalText {
        number: 23,
        description: "urgent data on a socket; ignored by default (Go's runtime uses it to preempt goroutines)",
        causes: &[
            "the status is more likely the application's own exit code than a death by SIGURG",
        ],
        checks: &["the application's own exit codes"],
    },
    SignalText {
        number: 24,
        description: "CPU time limit exceeded (the RLIMIT_CPU soft limit)",
        causes: &["`ulimit -t`, systemd `LimitCPU=`, or a batch scheduler's CPU-time limit"],
        checks: &["`cat /proc/<pid>/limits` (Max cpu time) and the unit's or job's limits"],
    },
    SignalText {
        number: 25,
        description: "file size limit exceeded (RLIMIT_FSIZE)",
        causes: &["a write beyond `ulimit -f` or systemd `LimitFSIZE=`"],
        checks: &["`cat /proc/<pid>/limits` (Max file size)"],
    },
    SignalText {
        number: 26,
        description: "virtual timer expired (setitimer ITIMER_VIRTUAL) with no handler",
        causes: &[
            "a profiler or library armed a virtual timer and its handler was removed or never installed",
        ],
        checks: &["profilers or timer users loaded into the process"],
    },
    SignalText {
        number: 27,
        description: "profiling timer expired (setitimer ITIMER_PROF) with no handler",
        causes: &[
            "a sampling profiler (gperftools, pprof-style) was started and its handler removed or never installed",
        ],
        checks: &["profilers enabled by environment variables (e.g. CPUPROFILE)"],
    },
    SignalText {
        number: 28,
        description: "terminal window size changed; ignored by default",
        causes: &[
            "the status is more likely the application's own exit code than a death by SIGWINCH",
        ],
        checks: &["the application's own exit codes"],
    },
    SignalText {
        number: 29,
        description: "asynchronous I/O event (O_ASYNC) with no handler",
        causes: &["a file descriptor was set to O_ASYNC without a SIGIO handler"],
        checks: &["code that uses fcntl(F_SETOWN/O_ASYNC)"],
    },
    SignalText {
        number: 30,
        description: "power failure warning; the default action terminates",
        causes: &[
            "a UPS daemon announced a power failure",
            "a runtime that uses SIGPWR internally for thread suspension, without its handler",
        ],
        checks: &["UPS daemon logs and the runtime in use"],
    },
    SignalText {
        number: 31,
        description: "bad system call: usually a seccomp filter that forbids a syscall the process made",
        causes: &[
            "a seccomp profile (docker's default profile, systemd `SystemCallFilter=`, Kubernetes seccompProfile) killed the process for a forbidden syscall",
            "a binary using a syscall the kernel does not have",
        ],
        checks: &[
            "audit messages: `journalctl -k | grep -i seccomp` (type=SECCOMP names the syscall number)",
            "retry with the filter relaxed (e.g. docker `--security-opt seccomp=unconfined`) to confirm",
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_ordered_and_named() {
        for (i, s) in SIGNALS.iter().enumerate() {
            assert_eq!(usize::from(s.number), i + 1, "table row {i}");
            assert!(
                crate::names::signal_name(u32::from(s.number)).is_some(),
                "{}",
                s.number
            );
            assert!(!s.causes.is_empty() && !s.checks.is_empty(), "{}", s.number);
        }
    }

    #[test]
    fn realtime_names() {
        assert_eq!(name_of(34), "SIGRTMIN");
        assert_eq!(name_of(35), "SIGRTMIN+1");
        assert_eq!(name_of(64), "SIGRTMAX");
        assert_eq!(name_of(9), "SIGKILL");
        assert!(signal_text(64).is_some());
        assert!(signal_text(65).is_none());
        assert!(signal_text(0).is_none());
    }
}
