//! The harness of the end-to-end tests: run a child process under a watchdog, talk to it
//! through its stdout lines, and read back what it reported.
//!
//! Every child gets a deadline ([`CHILD_TIMEOUT`]). A watchdog thread kills it with SIGKILL when
//! the deadline passes, and the test then fails with everything the child printed. The
//! watchdog is stopped before the child is reaped (the child is first waited for with
//! `WNOWAIT`), so it can never signal a recycled pid.
//!
//! Synchronisation is by the child's own lines (`READY`, `INSTALLED ...`) and by `waitid`,
//! never by sleeping.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use crashguard::Report;

pub mod alloc_pairs;
pub mod child_protocol;
mod crash;

pub use crash::{Crash, Expected, crash_and_restart, has_frame, top_symbols};

/// How long any child may live before the watchdog kills it and fails the test.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// A scratch directory, removed when dropped unless the test is failing (then it is kept and
/// its path printed, for a post-mortem).
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A fresh, empty directory whose name contains `label`.
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("crashguard-e2e-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a scratch directory");
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The watchdog of one child: kills it when the deadline passes first.
struct Watchdog {
    stop: mpsc::Sender<()>,
    fired: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Watchdog {
    fn start(pid: u32, timeout: Duration) -> Watchdog {
        let (stop, stopped) = mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&fired);
        let thread = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(timeout) {
                flag.store(true, Ordering::SeqCst);
                // SAFETY: kill has no memory-safety preconditions. The child has not been
                // reaped yet (the owner waits with WNOWAIT and stops us first), so the pid is
                // still the child's.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        });
        Watchdog {
            stop,
            fired,
            thread,
        }
    }

    /// Stops the watchdog; returns whether it had already killed the child.
    fn stop(self) -> bool {
        let _ = self.stop.send(());
        let _ = self.thread.join();
        self.fired.load(Ordering::SeqCst)
    }
}

/// A running child process with a watchdog.
#[derive(Debug)]
pub struct Child {
    child: std::process::Child,
    description: String,
    lines: mpsc::Receiver<String>,
    stdout_seen: Arc<Mutex<Vec<String>>>,
    stdout_thread: Option<JoinHandle<()>>,
    stderr_thread: Option<JoinHandle<String>>,
    watchdog: Option<Watchdog>,
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog").finish_non_exhaustive()
    }
}

impl Child {
    /// Starts `command` with piped stdin, stdout and stderr, under a [`CHILD_TIMEOUT`] watchdog.
    pub fn start(mut command: Command) -> Child {
        let description = format!("{command:?}");
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {description}: {e}"));
        let watchdog = Watchdog::start(child.id(), CHILD_TIMEOUT);
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        let stdout_seen = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&stdout_seen);
        let stdout_thread = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                seen.lock().expect("stdout log").push(line.clone());
                let _ = tx.send(line);
            }
        });
        let stderr_thread = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut s);
            s
        });
        Child {
            child,
            description,
            lines,
            stdout_seen,
            stdout_thread: Some(stdout_thread),
            stderr_thread: Some(stderr_thread),
            watchdog: Some(watchdog),
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the next stdout line that starts with `prefix` and returns the rest of it.
    /// Fails the test if the child closes stdout first (it exited, or the watchdog killed it).
    pub fn expect_line(&mut self, prefix: &str) -> String {
        while let Ok(line) = self.lines.recv() {
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim_start().to_owned();
            }
        }
        let seen = self.stdout_seen.lock().expect("stdout log").join("\n");
        panic!(
            "{} closed stdout before printing a line starting with {prefix:?}; stdout was:\n{seen}",
            self.description
        );
    }

    /// Like [`Child::expect_line`], but `None` when the child closes stdout (it ended) first.
    pub fn line_or_end(&mut self, prefix: &str) -> Option<String> {
        while let Ok(line) = self.lines.recv() {
            if let Some(rest) = line.strip_prefix(prefix) {
                return Some(rest.trim_start().to_owned());
            }
        }
        None
    }

    /// Writes one line to the child's stdin; an error (the child has ended) is returned, for
    /// tests whose next step shows how the child ended.
    ///
    /// The line and its newline go in one `write` (atomic on a pipe up to `PIPE_BUF` bytes):
    /// `writeln!` would write the text and the newline separately, and a child that acts on the
    /// first byte it reads (and ends, as the recording child does) may be gone before the
    /// second write, which then fails with `EPIPE` although the child got its go-ahead.
    pub fn try_send_line(&mut self, line: &str) -> std::io::Result<()> {
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        let whole = format!("{line}\n");
        stdin.write_all(whole.as_bytes())?;
        stdin.flush()
    }

    /// Writes one line to the child's stdin (in one `write`, as [`Child::try_send_line`]).
    pub fn send_line(&mut self, line: &str) {
        self.try_send_line(line)
            .expect("write a line to the child's stdin");
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory-safety preconditions; the child is not reaped before
        // `finish`, which takes `self`, so the pid is still the child's.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid());
    }

    /// Closes the child's stdin (a child waiting on it goes on), then waits for it to end and
    /// collects what it printed. Fails the test if the watchdog had to kill it.
    pub fn finish(mut self) -> Finished {
        drop(self.child.stdin.take());
        self.wait()
    }

    /// Waits for the child to end on its own (its stdin stays open, so a child blocked on it
    /// stays blocked: for children that are to end by a signal) and collects what it printed.
    /// Fails the test if the watchdog had to kill it.
    pub fn wait(mut self) -> Finished {
        wait_without_reaping(self.pid());
        let timed_out = self.watchdog.take().is_some_and(Watchdog::stop);
        let status = self.child.wait().expect("reap the child");
        if let Some(t) = self.stdout_thread.take() {
            let _ = t.join();
        }
        let stderr = self
            .stderr_thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        let stdout = std::mem::take(&mut *self.stdout_seen.lock().expect("stdout log"));
        let finished = Finished {
            description: self.description.clone(),
            status,
            stdout,
            stderr,
        };
        assert!(
            !timed_out,
            "the watchdog killed {} after {CHILD_TIMEOUT:?}\n{finished}",
            self.description
        );
        finished
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // A test that fails half-way must not leave its child behind.
        if let Some(w) = self.watchdog.take() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            w.stop();
        }
    }
}

/// Blocks until the child `pid` has ended, leaving it a zombie so that its pid stays reserved.
fn wait_without_reaping(pid: u32) {
    loop {
        // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes only into `info`.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            return;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::Interrupted,
            "waitid({pid}): {err}"
        );
    }
}

/// A child that has ended.
#[derive(Debug)]
pub struct Finished {
    /// The command line, for messages.
    pub description: String,
    /// The wait status.
    pub status: ExitStatus,
    /// Its stdout, line by line.
    pub stdout: Vec<String>,
    /// Its stderr.
    pub stderr: String,
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}: {}", self.description, self.status)?;
        writeln!(f, "--- stdout\n{}", self.stdout.join("\n"))?;
        write!(f, "--- stderr\n{}", self.stderr)
    }
}

impl Finished {
    /// The exit code, when the child exited.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The signal that killed the child, if one did.
    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    /// Every stdout line starting with `prefix`, whole.
    pub fn lines_starting(&self, prefix: &str) -> Vec<&str> {
        self.stdout
            .iter()
            .filter(|l| l.starts_with(prefix))
            .map(String::as_str)
            .collect()
    }

    /// The previous run's report the child printed (`PREVIOUS <json>`), as untyped JSON.
    pub fn previous_json(&self) -> serde_json::Value {
        let json = self
            .line("PREVIOUS ")
            .unwrap_or_else(|| panic!("no PREVIOUS line\n{self}"));
        serde_json::from_str(json).unwrap_or_else(|e| panic!("bad PREVIOUS json: {e}\n{self}"))
    }

    /// The rest of the first stdout line starting with `prefix`, if any.
    pub fn line(&self, prefix: &str) -> Option<&str> {
        self.stdout
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim_start)
    }

    /// Asserts that the child was killed by `signal` (no exit code, no core dump needed).
    pub fn assert_killed_by(&self, signal: i32) {
        assert_eq!(
            self.status.signal(),
            Some(signal),
            "expected death by signal {signal}\n{self}"
        );
    }

    /// Asserts that the child exited with `code`.
    pub fn assert_exit_code(&self, code: i32) {
        assert_eq!(
            self.status.code(),
            Some(code),
            "expected exit code {code}\n{self}"
        );
    }

    /// The previous run's report the child printed (`PREVIOUS <json>`).
    pub fn previous(&self) -> Option<Report> {
        let json = self
            .line("PREVIOUS ")
            .unwrap_or_else(|| panic!("no PREVIOUS line\n{self}"));
        serde_json::from_str(json).unwrap_or_else(|e| panic!("bad PREVIOUS json: {e}\n{self}"))
    }

    /// The child's `INSTALLED <json>` facts.
    pub fn installed(&self) -> Installed {
        let json = self
            .line("INSTALLED ")
            .unwrap_or_else(|| panic!("no INSTALLED line\n{self}"));
        Installed::parse(json)
    }
}

/// What a child said about its installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// This run's black-box file.
    pub blackbox: PathBuf,
    /// Where the previous run's report was stored.
    pub stored_at: Option<PathBuf>,
    /// Why the previous run's black box could not be read.
    pub previous_error: Option<String>,
    /// Where the unreadable black box's bytes were kept.
    pub previous_saved_to: Option<PathBuf>,
    /// Why the previous run's report could not be stored.
    pub store_error: Option<String>,
}

impl Installed {
    /// Parses the JSON of an `INSTALLED` line.
    pub fn parse(json: &str) -> Installed {
        let v: serde_json::Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("bad INSTALLED json {json}: {e}"));
        let path = |k: &str| v.get(k).and_then(|p| p.as_str()).map(PathBuf::from);
        Installed {
            blackbox: path("blackbox").expect("INSTALLED has a blackbox"),
            stored_at: path("stored_at"),
            previous_error: v
                .get("previous_error")
                .and_then(|p| p.as_str())
                .map(str::to_owned),
            previous_saved_to: path("previous_saved_to"),
            store_error: v
                .get("store_error")
                .and_then(|p| p.as_str())
                .map(str::to_owned),
        }
    }
}

/// Builds the command line of the crashguard child: `exe dir scenario args...`.
pub fn child_command(exe: &str, dir: &Path, scenario: &str, args: &[&str]) -> Command {
    let mut c = Command::new(exe);
    c.arg(dir).arg(scenario).args(args);
    c
}

/// Runs the child once to the end.
pub fn run_child(exe: &str, dir: &Path, scenario: &str, args: &[&str]) -> Finished {
    Child::start(child_command(exe, dir, scenario, args)).finish()
}
