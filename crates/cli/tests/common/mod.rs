//! Fixtures for the CLI tests: black boxes and reports made with the black-box crate's own
//! writer, exactly as a crashing process would leave them, and a runner for the built binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use object::{Object, ObjectSegment};

use crashguard_blackbox::layout::{self, End, Heartbeat};
use crashguard_blackbox::{BlackBox, Options, Report, Retention, decode, open, write_report};

/// A fresh, empty directory for one test, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh, empty directory for one test.
pub fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("crashguard-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    TempDir(dir)
}

/// Makes a black box in `dir`, lets `write` fill it, and returns the file's bytes. The box is
/// dropped afterwards, which releases its slot as a dead process's would.
pub fn make_box(dir: &Path, app: &str, write: impl FnOnce(&BlackBox)) -> Vec<u8> {
    let opened = open(
        dir,
        &Options {
            app: app.to_owned(),
            ring_capacity: 64,
            stack_capacity: crashguard_blackbox::layout::DEFAULT_STACK_CAPACITY,
        },
    )
    .expect("open black box");
    write(&opened.blackbox);
    std::fs::read(opened.blackbox.path()).expect("read black box")
}

/// Ends a box the way the fatal-signal handler does: SIGSEGV at address 0 with `frames`.
pub fn end_with_segv(bb: &BlackBox, frames: &[u64]) {
    let mut w = bb.claim_end().expect("first claim");
    let e: &mut End = w.end();
    e.signal = 11;
    e.si_code = 1;
    e.fault_address = 0;
    e.tid = 4242;
    e.thread_name[..6].copy_from_slice(b"worker");
    for (slot, ip) in e.frames.iter_mut().zip(frames) {
        *slot = *ip;
    }
    e.frame_count = frames.len().min(layout::MAX_FRAMES) as u32;
    w.commit(crashguard_blackbox::Outcome::FatalSignal, 139);
}

/// A heartbeat close to a 1 GiB cgroup limit.
pub fn heartbeat_near_limit(bb: &BlackBox) {
    assert!(bb.write_heartbeat(|h: &mut Heartbeat| {
        h.valid = 1;
        h.sampled_at_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        h.rss_bytes = 200 << 20;
        h.threads = 12;
        h.cgroup_memory_current = 950 << 20;
        h.cgroup_memory_max = 1 << 30;
        h.oom_kill_count = 0;
    }));
}

/// Decodes `bytes` and stores the report in `<dir>/reports/`, returning its path.
pub fn store_report(dir: &Path, bytes: &[u8]) -> (PathBuf, Report) {
    let report = decode(bytes).expect("fixture decodes");
    let path = write_report(dir, &report, Retention::default()).expect("write report");
    (path, report)
}

/// Runs the built `crashguard` binary.
pub fn crashguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crashguard"))
        .args(args)
        .output()
        .expect("run crashguard")
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit status and that the binary did not panic.
pub fn assert_status(o: &Output, code: i32) {
    let err = stderr(o);
    assert!(!err.contains("panicked"), "crashguard panicked:\n{err}");
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{err}",
        stdout(o)
    );
}

/// The module containing `addr` (an address in this process) and the address's offset from the
/// module's load bias, found the way a debugger would: the mapping from /proc/self/maps gives
/// the file offset, and the ELF segment holding that file offset gives the link-time address.
pub fn module_and_offset(addr: u64) -> Option<(PathBuf, u64)> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    for line in maps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [range, _, offset, _, _, path] = f.as_slice() else {
            continue;
        };
        let (start, end) = range.split_once('-')?;
        let start = u64::from_str_radix(start, 16).ok()?;
        let end = u64::from_str_radix(end, 16).ok()?;
        if !(start..end).contains(&addr) {
            continue;
        }
        let file_off = addr - start + u64::from_str_radix(offset, 16).ok()?;
        let data = std::fs::read(path).ok()?;
        let obj = object::File::parse(&*data).ok()?;
        for seg in obj.segments() {
            let (off, size) = seg.file_range();
            if (off..off + size).contains(&file_off) {
                return Some((PathBuf::from(path), seg.address() + (file_off - off)));
            }
        }
        return None;
    }
    None
}
