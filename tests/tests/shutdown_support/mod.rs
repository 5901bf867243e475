//! Running a child process under test: lines from its stdout as synchronisation points, its
//! stdin for instructions, signals from this process, and a watchdog that kills it after 60 s
//! so that a hung child fails the test instead of hanging it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long anything may take before the test gives up.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub const CHILD: &str = env!("CARGO_BIN_EXE_crashguard-shutdown-child");
pub const SERVICE: &str = env!("CARGO_BIN_EXE_crashguard-service");

/// A fresh report directory for one test; removed when the test passes, kept for a look when
/// it fails.
pub struct ReportDir(PathBuf);

impl std::ops::Deref for ReportDir {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ReportDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn report_dir(test: &str) -> ReportDir {
    let dir = std::env::temp_dir().join(format!("cg-shutdown-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the report dir");
    ReportDir(dir)
}

/// A running child.
pub struct Child {
    pid: i32,
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Option<JoinHandle<String>>,
    cancel_watchdog: Sender<()>,
}

/// How a child ended.
#[derive(Debug)]
pub struct Ended {
    pub status: ExitStatus,
    pub stdout: Vec<String>,
    pub stderr: String,
}

impl Ended {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    /// Lines that start with `prefix`.
    pub fn lines_starting(&self, prefix: &str) -> Vec<&str> {
        self.stdout
            .iter()
            .filter(|l| l.starts_with(prefix))
            .map(String::as_str)
            .collect()
    }

    /// The `PREVIOUS <json>` line, parsed.
    pub fn previous(&self) -> serde_json::Value {
        let line = self
            .lines_starting("PREVIOUS ")
            .first()
            .copied()
            .unwrap_or_else(|| panic!("no PREVIOUS line in {self:#?}"));
        serde_json::from_str(&line["PREVIOUS ".len()..]).expect("PREVIOUS is JSON")
    }
}

impl Child {
    pub fn spawn(program: &str, args: &[&str]) -> Child {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the child");
        let pid = child.id() as i32;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let (cancel_watchdog, cancelled) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = cancelled.recv_timeout(PATIENCE) {
                // SAFETY: kill has no memory-safety preconditions; the child has not been
                // reaped (the test would have cancelled us first), so the pid is still its.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        Child {
            pid,
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            stderr: Some(stderr),
            cancel_watchdog,
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Waits for a stdout line starting with `prefix` and returns it; fails the test (with
    /// everything the child said) if the child ends or 60 s pass first.
    pub fn expect_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    let stderr = self
                        .stderr
                        .take()
                        .and_then(|h| h.join().ok())
                        .unwrap_or_default();
                    panic!(
                        "no line starting with {prefix:?}; stdout so far: {:#?}\nstderr: {stderr}",
                        self.seen
                    );
                }
            }
        }
    }

    /// Waits for a stdout line starting with `prefix`; `None` when the child closed its
    /// stdout (it ended) first. Fails the test after 60 s.
    pub fn line_or_end(&mut self, prefix: &str) -> Option<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no line starting with {prefix:?} within {PATIENCE:?}: {:#?}",
                        self.seen
                    )
                }
            }
        }
    }

    /// Sends `signal` to the child from this process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory-safety preconditions; the child is alive or a zombie
        // (not yet reaped), so the pid is still its.
        let rc = unsafe { libc::kill(self.pid, signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid);
    }

    /// Writes a line to the child's stdin.
    pub fn write_line(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "{line}");
            let _ = stdin.flush();
        }
    }

    /// Waits for the child to end (within 60 s, or the watchdog kills it).
    pub fn wait(mut self) -> Ended {
        let status = self.child.wait().expect("wait for the child");
        let _ = self.cancel_watchdog.send(());
        let mut stdout = std::mem::take(&mut self.seen);
        stdout.extend(self.lines.try_iter());
        // The reader thread may still hold the last lines; it ends at EOF, which came with
        // the exit (unless a grandchild kept the pipe, which these children never create).
        while let Ok(line) = self.lines.recv_timeout(PATIENCE) {
            stdout.push(line);
        }
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        drop(self.stdin.take());
        Ended {
            status,
            stdout,
            stderr,
        }
    }
}

/// Runs the shutdown child's `report` scenario on `dir` and returns the previous run's report.
pub fn previous_report(dir: &std::path::Path) -> serde_json::Value {
    let ended = Child::spawn(CHILD, &[dir.to_str().expect("utf-8 path"), "report"]).wait();
    assert_eq!(ended.code(), Some(0), "report run: {ended:#?}");
    ended.previous()
}

/// The termination message file the shutdown child writes.
pub fn termination_log(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("termination-log")).unwrap_or_default()
}

/// Hook statuses of a report's shutdown section, as `(name, status)`.
pub fn hooks(report: &serde_json::Value) -> Vec<(String, String)> {
    report["shutdown"]["hooks"]
        .as_array()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    (
                        h["name"].as_str().unwrap_or_default().to_owned(),
                        h["status"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
