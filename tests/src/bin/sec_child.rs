//! The child of the security tests (`tests/security_*.rs`): a service that installs crashguard
//! into a report directory an attacker may have prepared, then does one thing.
//!
//! `crashguard-sec-child REPORT_DIR SCENARIO [--app NAME] [--termlog PATH] [--retention N]`
//!
//! Lines on stdout follow the harness's protocol (`PREVIOUS`, `INSTALLED`, `INSTALL_ERROR`,
//! `READY`, `RESULT`). Scenarios:
//!
//! - `none`: install and exit cleanly.
//! - `segv`: install and die of SIGSEGV (a null write).
//! - `hold`: install, print `READY`, wait for a line on stdin, exit cleanly.
//! - `poison-app NAME`: overwrite the application name in this run's own black box with `NAME`
//!   (a path-traversal string; the section checksum is repaired, as an attacker who can write
//!   the box would), then die of SIGKILL, leaving the box for the next run.
//! - `hostile-breadcrumb`: record a breadcrumb full of terminal escape sequences and newlines,
//!   then die of SIGKILL.
//! - `fork-then-crash`: fork a helper that writes into the box through the reference the parent
//!   holds and then lives on (stdout and stderr closed), print `FORKED <pid>`, die of SIGSEGV.
//! - `full-disk CHILD_EXE`: in a private mount namespace, mount a 4 MiB tmpfs on REPORT_DIR
//!   and run `CHILD_EXE` (this binary) through a crash, a restart on a full disk and a restart
//!   with space again; prints `RUN <n> <status> <stdout lines as JSON>` for each and `SKIP
//!   <reason>` (exit 77) when the kernel refuses the namespace.

use std::io::BufRead;
use std::mem::offset_of;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::ExitCode;

use crashguard_blackbox::layout::{Record, Session};
use crashguard_tests::child_protocol::{install_and_announce, say};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(scenario)) = (args.first(), args.get(1)) else {
        eprintln!("usage: crashguard-sec-child REPORT_DIR SCENARIO [ARG] [--app NAME]");
        return ExitCode::from(64);
    };
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if scenario == "full-disk" {
        let Some(exe) = args.get(2) else {
            return ExitCode::from(64);
        };
        return full_disk(Path::new(dir), exe);
    }
    let app = flag("--app").unwrap_or_else(|| "sec".to_owned());
    let mut config = crashguard::Config::new(&app)
        .report_dir(dir)
        .symbolize_previous_run(false);
    if let Some(log) = flag("--termlog") {
        config = config.termination_log(crashguard::TerminationLog::Path(log.into()));
    }
    if let Some(n) = flag("--retention").and_then(|n| n.parse().ok()) {
        config = config.retention(n, 64 << 20);
    }
    let guard = match install_and_announce(config) {
        Ok(g) => g,
        Err(code) => return code,
    };
    match scenario.as_str() {
        "none" => {}
        "segv" => crash_null_write(),
        "hold" => {
            say("READY");
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
        }
        "poison-app" => {
            let name = args.get(2).cloned().unwrap_or_default();
            poison_app_name(guard.blackbox_path(), name.as_bytes());
            die_without_warning();
        }
        "hostile-breadcrumb" => {
            crashguard::breadcrumb("\x1b[2J\x1b[31mFAKE\nlevel=error msg=\"forged\"\r\u{9b}2J");
            die_without_warning();
        }
        "fork-then-crash" => fork_then_crash(),
        other => {
            eprintln!("unknown scenario {other:?}");
            return ExitCode::from(64);
        }
    }
    drop(guard);
    ExitCode::SUCCESS
}

#[inline(never)]
fn crash_null_write() {
    let p: *mut u32 = std::hint::black_box(std::ptr::null_mut());
    // SAFETY: not safe at all: the point is to die of SIGSEGV for real.
    unsafe { p.write_volatile(1) };
}

fn die_without_warning() {
    // SAFETY: raise has no memory-safety preconditions; SIGKILL cannot be handled, so the box
    // stays "running", as after the OOM killer.
    unsafe { libc::raise(libc::SIGKILL) };
}

/// Writes `name` as the application name of the box at `path` and repairs the session's
/// checksum, as anything able to write the box (the service itself after a privilege drop, the
/// owner of the report directory) could.
fn poison_app_name(path: &Path, name: &[u8]) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open own black box");
    let s_off = offset_of!(Record, session) as u64;
    let mut session = vec![0u8; size_of::<Session>()];
    file.read_exact_at(&mut session, s_off)
        .expect("read session");
    let app_off = offset_of!(Session, app);
    let n = name.len().min(crashguard_blackbox::layout::APP_LEN);
    session[app_off..app_off + crashguard_blackbox::layout::APP_LEN].fill(0);
    session[app_off..app_off + n].copy_from_slice(&name[..n]);
    let len_off = offset_of!(Session, app_len);
    session[len_off..len_off + 4].copy_from_slice(&(n as u32).to_ne_bytes());
    let sum_off = offset_of!(Session, checksum);
    session[sum_off..sum_off + 4].fill(0);
    let sum = crashguard_blackbox::crc32(&session);
    session[sum_off..sum_off + 4].copy_from_slice(&sum.to_ne_bytes());
    file.write_all_at(&session, s_off).expect("write session");
}

/// Forks a helper that outlives this process, then crashes.
fn fork_then_crash() {
    let bb = crashguard_blackbox::active().expect("an armed black box");
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two descriptors into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: the child only makes async-signal-safe calls until it pauses forever.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: plain descriptor operations on descriptors this process owns; the helper's
        // stdout and stderr must not keep the harness's pipes open.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            libc::dup2(null, 1);
            libc::dup2(null, 2);
            libc::close(null);
        }
        // Code of the helper that still holds the parent's reference (a sampler, the guard):
        // its writes must not reach the parent's record.
        bb.breadcrumb("written by the forked helper");
        // SAFETY: write of one byte from a valid buffer; pause has no preconditions.
        unsafe {
            libc::write(fds[1], [1u8].as_ptr().cast(), 1);
            loop {
                libc::pause();
            }
        }
    }
    assert!(pid > 0, "fork failed");
    let mut b = [0u8; 1];
    // SAFETY: read of one byte into a valid buffer.
    let n = unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) };
    assert_eq!(n, 1, "the helper did not report");
    say(&format!("FORKED {pid}"));
    crashguard::breadcrumb("parent about to crash");
    crash_null_write();
}

/// The full-disk scenario in a private mount namespace: see the module documentation.
fn full_disk(dir: &Path, exe: &str) -> ExitCode {
    if let Err(reason) = private_tmpfs(dir) {
        say(&format!("SKIP {reason}"));
        return ExitCode::from(77);
    }
    let run = |n: u32, scenario: &str| {
        let out = std::process::Command::new(exe)
            .arg(dir)
            .arg(scenario)
            .output()
            .expect("run the child");
        let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        say(&format!(
            "RUN {n} {:?} {}",
            out.status,
            serde_json::to_string(&lines).unwrap_or_default()
        ));
    };
    run(1, "segv");
    // Fill the file system to the last block.
    let filler = dir.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).expect("create filler");
        let chunk = vec![0xa5u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    run(2, "none");
    std::fs::remove_file(&filler).expect("remove filler");
    run(3, "none");
    ExitCode::SUCCESS
}

/// Enters a private mount namespace and mounts a 4 MiB tmpfs on `dir`.
fn private_tmpfs(dir: &Path) -> Result<(), String> {
    // SAFETY: unshare and mount take plain arguments and NUL-terminated strings.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(format!(
                "unshare(CLONE_NEWNS): {}",
                std::io::Error::last_os_error()
            ));
        }
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(format!(
                "making mounts private: {}",
                std::io::Error::last_os_error()
            ));
        }
        let target = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
            .map_err(|e| e.to_string())?;
        if libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            c"size=4m,mode=0700".as_ptr().cast(),
        ) != 0
        {
            return Err(format!("mount tmpfs: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}
