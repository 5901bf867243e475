//! The OS refuses a thread under a real limit, and the error names that limit.
//!
//! Each scenario runs in a child process (this test binary again, selected by an environment
//! variable) because it lowers the child's resource limits for good. Root is exempt from
//! `RLIMIT_NPROC`, and tests and CI run as root here, so the `RLIMIT_NPROC` child first drops to
//! an otherwise unused uid; the `RLIMIT_AS` child leaves too little address space for a stack.

// Real OS refusals need Linux's rlimits and uids as this file drives them.
#![cfg(target_os = "linux")]

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crashguard_budget::thread::{self, ProcessTable, SpawnError};

const SCENARIO: &str = "CRASHGUARD_THREAD_SCENARIO";
/// A uid no other process on the host is expected to run as, so that `RLIMIT_NPROC` counts
/// only the child's own threads.
const UNUSED_UID: u32 = 3_912_047;
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// The child's entry point: does nothing unless the environment selects a scenario.
#[test]
fn scenario_child() {
    let Ok(which) = std::env::var(SCENARIO) else {
        return;
    };
    let outcome = match which.as_str() {
        "nproc" => nproc_scenario(),
        "address-space" => address_space_scenario(),
        other => Err(format!("unknown scenario {other}")),
    };
    match outcome {
        Ok(text) => {
            println!("CHILD-OK\n{text}");
            std::process::exit(0);
        }
        Err(why) => {
            println!("CHILD-FAILED: {why}");
            std::process::exit(1);
        }
    }
}

/// Spawns guarded threads that park until the process exits, until a spawn fails.
fn leak_until_refused(prefix: &str, most: usize) -> Result<SpawnError, String> {
    let (_keep, parked) = mpsc::channel::<()>();
    let parked = std::sync::Arc::new(std::sync::Mutex::new(parked));
    let (started_tx, started) = mpsc::channel::<()>();
    for i in 0..most {
        let parked = parked.clone();
        let started_tx = started_tx.clone();
        let spawned = thread::Builder::new()
            .name(format!("{prefix}{i}"))
            .spawn(move || {
                let _ = started_tx.send(());
                let _ = parked.lock().map(|rx| rx.recv());
            });
        match spawned {
            // std names a thread when it starts running: wait for that, so the census in the
            // refusal cannot catch a thread that still carries its parent's name.
            Ok(_) => {
                let _ = started.recv();
            }
            Err(err) => {
                // The parked threads stay until the child exits.
                std::mem::forget(_keep);
                return Ok(err);
            }
        }
    }
    Err(format!(
        "{most} threads were created; the limit never refused one"
    ))
}

fn nproc_scenario() -> Result<String, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // SAFETY: plain system calls; dropping the gid before the uid keeps the right to do so.
        // glibc applies both to every thread of the process.
        let dropped = unsafe { libc::setgid(UNUSED_UID) == 0 && libc::setuid(UNUSED_UID) == 0 };
        if !dropped {
            return Err(format!("setuid: {}", std::io::Error::last_os_error()));
        }
    }
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let table = ProcessTable::scan(std::path::Path::new("/proc")).map_err(|e| e.to_string())?;
    let used = table.threads_of_uid(uid);
    let room = 4;
    let lim = libc::rlimit {
        rlim_cur: used + room,
        rlim_max: used + room,
    };
    // SAFETY: `lim` is a valid rlimit; lowering a limit needs no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &lim) } != 0 {
        return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
    }
    let err = leak_until_refused("nproc-leak-", 1000)?;
    check(&err, "limit hit: RLIMIT_NPROC", "nproc-leak-*")
}

fn address_space_scenario() -> Result<String, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let vm_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or("no VmSize")?;
    // One MiB of headroom: enough for the small allocations of a spawn and its diagnosis, not
    // for a 2 MiB thread stack.
    let limit = (vm_kb + 1024) * 1024;
    let lim = libc::rlimit {
        rlim_cur: limit,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `lim` is a valid rlimit; lowering the soft limit needs no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) } != 0 {
        return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
    }
    let err = leak_until_refused("as-leak-", 1000)?;
    check(&err, "limit hit: RLIMIT_AS", "\"as-leak-0\"")
}

fn check(err: &SpawnError, limit: &str, group: &str) -> Result<String, String> {
    let text = err.to_string();
    if !err.is_os_refusal() {
        return Err(format!("expected an os refusal, got: {text}"));
    }
    if std::error::Error::source(err).is_none() {
        return Err("source() must keep the io::Error".into());
    }
    if !text.contains(limit) || !text.contains(group) {
        return Err(format!("expected {limit:?} and {group:?} in: {text}"));
    }
    Ok(text)
}

/// Runs the scenario in a child and returns its stdout; kills it after [`CHILD_TIMEOUT`].
fn run_child(which: &str) -> String {
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "scenario_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SCENARIO, which)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let (done_tx, done_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = done_tx.send(());
        out
    });
    // stdout closes when the child exits; if that does not happen in time, kill it.
    if done_rx.recv_timeout(CHILD_TIMEOUT).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("scenario {which} did not finish within {CHILD_TIMEOUT:?}");
    }
    let status = child.wait().expect("wait for child");
    let out = reader.join().expect("reader");
    assert!(
        status.success(),
        "scenario {which} failed ({status}):\n{out}"
    );
    assert!(out.contains("CHILD-OK"), "{out}");
    out
}

#[test]
fn nproc_refusal_names_rlimit_nproc() {
    let out = run_child("nproc");
    assert!(
        out.contains("the os refused to create thread \"nproc-leak-"),
        "{out}"
    );
    eprintln!("{out}");
}

#[test]
fn address_space_refusal_names_rlimit_as() {
    let out = run_child("address-space");
    assert!(out.contains("RLIMIT_AS"), "{out}");
    eprintln!("{out}");
}
