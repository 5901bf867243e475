//! Exit statuses that mean something by convention rather than by signal: C and the shells,
//! the LSB init-script codes, BSD's sysexits, container runtimes, systemd's own codes and Rust.

use super::Source;

/// One conventional meaning of an exit status.
#[derive(Clone, Copy)]
pub(super) struct CodeText {
    /// Who assigns this meaning.
    pub source: Source,
    /// The symbolic name, e.g. `EX_USAGE`, `EXIT_EXEC`.
    pub name: &'static str,
    /// What it means, one line.
    pub description: &'static str,
    /// What usually produces it.
    pub causes: &'static [&'static str],
    /// Where to look.
    pub checks: &'static [&'static str],
}

const fn text(source: Source, name: &'static str, description: &'static str) -> CodeText {
    CodeText {
        source,
        name,
        description,
        causes: &[],
        checks: &[],
    }
}

/// Every conventional meaning of `status`, most common first.
pub(super) fn conventional(status: u8) -> Vec<CodeText> {
    let mut out = Vec::new();
    out.extend(
        GENERAL
            .iter()
            .filter(|(s, _)| *s == status)
            .map(|(_, t)| *t),
    );
    if let Some(t) = status
        .checked_sub(64)
        .and_then(|i| SYSEXITS.get(usize::from(i)))
    {
        out.push(*t);
    }
    if let Some(Some((name, description))) = status
        .checked_sub(200)
        .and_then(|i| SYSTEMD.get(usize::from(i)))
    {
        out.push(CodeText {
                source: Source::Systemd,
                name,
                description,
                causes: &["systemd could not set up the service's execution environment; the program itself never ran"],
                checks: &["`systemctl status <unit>` and `journalctl -u <unit>` name the setting that failed"],
            });
    }
    out
}

const GENERAL: &[(u8, CodeText)] = &[
    (
        0,
        CodeText {
            source: Source::Convention,
            name: "EXIT_SUCCESS",
            description: "success",
            causes: &[
                "the program finished normally",
                "a Kubernetes Job or a one-shot container that completed its work",
            ],
            checks: &[
                "if a long-running service exited 0 unexpectedly, look for a code path that returns from main early",
            ],
        },
    ),
    (
        1,
        CodeText {
            source: Source::Convention,
            name: "EXIT_FAILURE",
            description: "generic failure: the program chose to fail without saying how",
            causes: &[
                "most programs' \"something went wrong\": a Rust main returning Err, Python or Java dying of an uncaught exception, Go's log.Fatal, Node's uncaught exception",
                "in containers: an entrypoint that failed, e.g. referencing a file missing from the image",
            ],
            checks: &["the program's own last log lines: the code carries no further information"],
        },
    ),
    (
        2,
        CodeText {
            source: Source::Convention,
            name: "misuse / usage",
            description: "usage error or second generic failure code",
            causes: &[
                "shells: a syntax error or misuse of a builtin",
                "many command-line tools: invalid arguments",
                "Go: an unrecovered panic exits with 2",
            ],
            checks: &["the program's stderr"],
        },
    ),
    (
        2,
        text(
            Source::Lsb,
            "EXIT_INVALIDARGUMENT",
            "init script: invalid or excess arguments",
        ),
    ),
    (
        3,
        text(
            Source::Lsb,
            "EXIT_NOTIMPLEMENTED",
            "init script: unimplemented feature",
        ),
    ),
    (
        4,
        text(
            Source::Lsb,
            "EXIT_NOPERMISSION",
            "init script: user had insufficient privilege",
        ),
    ),
    (
        5,
        text(
            Source::Lsb,
            "EXIT_NOTINSTALLED",
            "init script: program is not installed",
        ),
    ),
    (
        6,
        text(
            Source::Lsb,
            "EXIT_NOTCONFIGURED",
            "init script: program is not configured",
        ),
    ),
    (
        7,
        text(
            Source::Lsb,
            "EXIT_NOTRUNNING",
            "init script: program is not running",
        ),
    ),
    (
        101,
        CodeText {
            source: Source::Rust,
            name: "panic",
            description: "a Rust program's main thread panicked (the standard library's default exit status for a panic)",
            causes: &[
                "an unwrap()/expect() on None or Err, an index out of bounds, an explicit panic!",
                "std::thread::spawn failing with \"failed to spawn thread\" when the OS refused a new thread (EAGAIN: thread or process limit)",
            ],
            checks: &[
                "stderr: the panic message and location (set RUST_BACKTRACE=1 for a backtrace)",
                "with crashguard installed the panic is recorded and, by policy, the process exits 70 with a report",
            ],
        },
    ),
    (
        124,
        CodeText {
            source: Source::Shell,
            name: "timeout",
            description: "the `timeout` command killed the command because it ran too long",
            causes: &["`timeout <duration> <command>` expired"],
            checks: &["the duration given to timeout"],
        },
    ),
    (
        125,
        CodeText {
            source: Source::Docker,
            name: "docker run error",
            description: "`docker run` (or podman) itself failed; the container's command never started",
            causes: &[
                "an unknown flag, an image that cannot be pulled, a port already allocated, an invalid mount or device",
                "also `timeout` when timeout itself failed",
            ],
            checks: &[
                "the error docker printed on stderr",
                "`docker events` and the daemon's log",
            ],
        },
    ),
    (
        126,
        CodeText {
            source: Source::Shell,
            name: "not executable",
            description: "the command was found but could not be executed",
            causes: &[
                "missing execute permission, or the path is a directory",
                "a binary for another architecture or format (\"exec format error\"), or a file system mounted noexec",
                "docker: the container's command could not be invoked",
            ],
            checks: &["`ls -l` and `file` on the command", "`mount | grep noexec`"],
        },
    ),
    (
        127,
        CodeText {
            source: Source::Shell,
            name: "command not found",
            description: "the command (or its interpreter or dynamic loader) was not found",
            causes: &[
                "a typo, or the command is not on PATH or not in the image",
                "a script whose #! interpreter is missing (`/bin/bash` in an alpine image)",
                "a glibc binary on a musl system: its dynamic loader is missing, so the shell says \"not found\" for a file that exists",
            ],
            checks: &["`command -v <cmd>`, `head -1 <script>`, `ldd <binary>`"],
        },
    ),
    (
        128,
        CodeText {
            source: Source::Shell,
            name: "invalid exit argument",
            description: "not a signal (there is no signal 0); bash uses 128 for an invalid argument to `exit`, git for fatal errors",
            causes: &[
                "`exit 3.14` or `exit abc` in a script",
                "git: a fatal error (repository not found, bad object)",
            ],
            checks: &["the script's exit statements or the tool's stderr"],
        },
    ),
    (
        255,
        CodeText {
            source: Source::Convention,
            name: "exit(-1)",
            description: "an out-of-range exit value: only the low 8 bits of an exit status survive, so exit(-1) becomes 255",
            causes: &[
                "a program calling exit(-1) or exit(255) for a generic error",
                "ssh: the connection itself failed (host unreachable, authentication refused); otherwise ssh returns the remote command's status",
                "a shell `exit` with a value outside 0-255",
            ],
            checks: &["the program's stderr; for ssh, `ssh -v`"],
        },
    ),
];

/// BSD's sysexits.h, 64..=78, indexed from 64.
const SYSEXITS: [CodeText; 15] = [
    text(Source::Sysexits, "EX_USAGE", "command line usage error"),
    text(
        Source::Sysexits,
        "EX_DATAERR",
        "data format error: the input data was incorrect",
    ),
    text(
        Source::Sysexits,
        "EX_NOINPUT",
        "cannot open input: a file did not exist or was not readable",
    ),
    text(Source::Sysexits, "EX_NOUSER", "addressee unknown"),
    text(Source::Sysexits, "EX_NOHOST", "host name unknown"),
    text(
        Source::Sysexits,
        "EX_UNAVAILABLE",
        "service unavailable: a support program or file does not exist",
    ),
    text(Source::Sysexits, "EX_SOFTWARE", "internal software error"),
    text(
        Source::Sysexits,
        "EX_OSERR",
        "system error, e.g. cannot fork or create a pipe",
    ),
    text(
        Source::Sysexits,
        "EX_OSFILE",
        "critical OS file missing or in error",
    ),
    text(
        Source::Sysexits,
        "EX_CANTCREAT",
        "cannot create an output file",
    ),
    text(Source::Sysexits, "EX_IOERR", "input/output error"),
    text(
        Source::Sysexits,
        "EX_TEMPFAIL",
        "temporary failure; retrying later may succeed",
    ),
    text(Source::Sysexits, "EX_PROTOCOL", "remote error in protocol"),
    text(Source::Sysexits, "EX_NOPERM", "permission denied"),
    text(Source::Sysexits, "EX_CONFIG", "configuration error"),
];

/// systemd's own codes (systemd.exec(5), "Process Exit Codes"), 200..=243, indexed from 200.
/// `None` marks numbers systemd retired (223 was tcpwrap, 234 the bus proxy starter).
const SYSTEMD: [Option<(&str, &str)>; 44] = [
    Some((
        "EXIT_CHDIR",
        "changing to the requested working directory failed (WorkingDirectory=)",
    )),
    Some(("EXIT_NICE", "failed to set the scheduling priority (Nice=)")),
    Some((
        "EXIT_FDS",
        "failed to close unwanted file descriptors or to adjust passed ones",
    )),
    Some((
        "EXIT_EXEC",
        "execve() of the program failed: most likely a missing or non-executable file (ExecStart=)",
    )),
    Some((
        "EXIT_MEMORY",
        "failed to perform an action due to memory shortage",
    )),
    Some((
        "EXIT_LIMITS",
        "failed to adjust resource limits (LimitNOFILE= and friends)",
    )),
    Some((
        "EXIT_OOM_ADJUST",
        "failed to adjust the OOM setting (OOMScoreAdjust=)",
    )),
    Some(("EXIT_SIGNAL_MASK", "failed to set the process signal mask")),
    Some((
        "EXIT_STDIN",
        "failed to set up standard input (StandardInput=)",
    )),
    Some((
        "EXIT_STDOUT",
        "failed to set up standard output (StandardOutput=)",
    )),
    Some((
        "EXIT_CHROOT",
        "failed to change the root directory (RootDirectory=, RootImage=)",
    )),
    Some((
        "EXIT_IOPRIO",
        "failed to set up the IO scheduling priority (IOSchedulingClass=)",
    )),
    Some((
        "EXIT_TIMERSLACK",
        "failed to set up the timer slack (TimerSlackNSec=)",
    )),
    Some((
        "EXIT_SECUREBITS",
        "failed to set the process secure bits (SecureBits=)",
    )),
    Some((
        "EXIT_SETSCHEDULER",
        "failed to set up CPU scheduling (CPUSchedulingPolicy=)",
    )),
    Some((
        "EXIT_CPUAFFINITY",
        "failed to set up CPU affinity (CPUAffinity=)",
    )),
    Some((
        "EXIT_GROUP",
        "failed to determine or change group credentials (Group=, SupplementaryGroups=)",
    )),
    Some((
        "EXIT_USER",
        "failed to determine or change user credentials, or to set up user namespacing (User=)",
    )),
    Some((
        "EXIT_CAPABILITIES",
        "failed to drop or apply capabilities (CapabilityBoundingSet=, AmbientCapabilities=)",
    )),
    Some((
        "EXIT_CGROUP",
        "setting up the service's control group failed",
    )),
    Some(("EXIT_SETSID", "failed to create a new process session")),
    Some((
        "EXIT_CONFIRM",
        "execution was cancelled by the user (systemd.confirm_spawn=)",
    )),
    Some((
        "EXIT_STDERR",
        "failed to set up standard error (StandardError=)",
    )),
    None,
    Some(("EXIT_PAM", "failed to set up the PAM session (PAMName=)")),
    Some((
        "EXIT_NETWORK",
        "failed to set up network namespacing (PrivateNetwork=)",
    )),
    Some((
        "EXIT_NAMESPACE",
        "failed to set up mount, UTS or IPC namespacing (ReadOnlyPaths=, PrivateTmp=, ProtectHostname=, ...)",
    )),
    Some((
        "EXIT_NO_NEW_PRIVILEGES",
        "failed to disable new privileges (NoNewPrivileges=)",
    )),
    Some((
        "EXIT_SECCOMP",
        "failed to apply system call filters (SystemCallFilter=)",
    )),
    Some((
        "EXIT_SELINUX_CONTEXT",
        "determining or changing the SELinux context failed (SELinuxContext=)",
    )),
    Some((
        "EXIT_PERSONALITY",
        "failed to set up the execution domain (Personality=)",
    )),
    Some((
        "EXIT_APPARMOR_PROFILE",
        "failed to prepare changing the AppArmor profile (AppArmorProfile=)",
    )),
    Some((
        "EXIT_ADDRESS_FAMILIES",
        "failed to restrict address families (RestrictAddressFamilies=)",
    )),
    Some((
        "EXIT_RUNTIME_DIRECTORY",
        "setting up the runtime directory failed (RuntimeDirectory=)",
    )),
    None,
    Some((
        "EXIT_CHOWN",
        "failed to adjust socket ownership (socket units only)",
    )),
    Some((
        "EXIT_SMACK_PROCESS_LABEL",
        "failed to set the SMACK label (SmackProcessLabel=)",
    )),
    Some(("EXIT_KEYRING", "failed to set up the kernel keyring")),
    Some((
        "EXIT_STATE_DIRECTORY",
        "failed to set up the state directory (StateDirectory=)",
    )),
    Some((
        "EXIT_CACHE_DIRECTORY",
        "failed to set up the cache directory (CacheDirectory=)",
    )),
    Some((
        "EXIT_LOGS_DIRECTORY",
        "failed to set up the logs directory (LogsDirectory=)",
    )),
    Some((
        "EXIT_CONFIGURATION_DIRECTORY",
        "failed to set up the configuration directory (ConfigurationDirectory=)",
    )),
    Some((
        "EXIT_NUMA_POLICY",
        "failed to set up the NUMA memory policy (NUMAPolicy=, NUMAMask=)",
    )),
    Some((
        "EXIT_CREDENTIALS",
        "failed to set up the service's credentials (LoadCredential=, SetCredential=)",
    )),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_line_up() {
        assert_eq!(conventional(64)[0].name, "EX_USAGE");
        assert_eq!(conventional(70)[0].name, "EX_SOFTWARE");
        assert_eq!(conventional(78)[0].name, "EX_CONFIG");
        assert_eq!(conventional(200)[0].name, "EXIT_CHDIR");
        assert_eq!(conventional(203)[0].name, "EXIT_EXEC");
        assert_eq!(conventional(217)[0].name, "EXIT_USER");
        assert_eq!(conventional(224)[0].name, "EXIT_PAM");
        assert_eq!(conventional(243)[0].name, "EXIT_CREDENTIALS");
        assert!(conventional(223).is_empty());
        assert!(conventional(234).is_empty());
        assert!(conventional(79).is_empty());
        assert_eq!(conventional(2).len(), 2);
    }
}
