//! A crash and the run that read it back: the checks every fatal-signal report must pass.

use std::os::unix::process::ExitStatusExt;

use crashguard::Report;
use crashguard_blackbox::CrashContext;

use crate::{Child, Finished, TempDir, child_command, run_child};

/// Whether any symbolized frame of `report` names a function ending in `function`.
pub fn has_frame(report: &Report, function: &str) -> bool {
    report.backtrace.iter().any(|f| {
        f.symbol
            .as_deref()
            .is_some_and(|s| s == function || s.ends_with(&format!("::{function}")))
    })
}

/// The symbols of the first `n` frames, for failure messages.
pub fn top_symbols(report: &Report, n: usize) -> Vec<String> {
    report
        .backtrace
        .iter()
        .take(n)
        .map(|f| f.symbol.clone().unwrap_or_else(|| format!("?? {}", f.ip)))
        .collect()
}

/// A child that crashed, and the run after it that read the crash back.
#[derive(Debug)]
pub struct Crash {
    /// The shared report directory (kept on failure).
    pub dir: TempDir,
    /// The crashing run.
    pub crashed: Finished,
    /// Its pid.
    pub pid: u32,
    /// The restarted run (scenario `none`).
    pub restarted: Finished,
    /// The report the restarted run got from `previous_run()`.
    pub report: Report,
}

/// Runs `scenario` in a fresh report directory, then runs the child again with `none` and
/// returns the report the second run read. Asserts that the second run exited cleanly and got
/// a report.
pub fn crash_and_restart(exe: &str, scenario: &str, args: &[&str]) -> Crash {
    let dir = TempDir::new(scenario);
    let child = Child::start(child_command(exe, dir.path(), scenario, args));
    let pid = child.pid();
    let crashed = child.finish();
    let restarted = run_child(exe, dir.path(), "none", &[]);
    restarted.assert_exit_code(0);
    let report = restarted
        .previous()
        .unwrap_or_else(|| panic!("the restarted child found no report\n{crashed}\n{restarted}"));
    Crash {
        dir,
        crashed,
        pid,
        restarted,
        report,
    }
}

/// What a fatal-signal report must say.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The application the child recorded for (`child` for `crashguard-child`).
    pub app: &'a str,
    /// The signal number.
    pub signal: i32,
    /// Its name.
    pub name: &'a str,
    /// The name of its `si_code`.
    pub code_name: &'a str,
    /// Whether it was a stack overflow.
    pub stack_overflow: bool,
    /// The function that crashed, which must be among the symbolized frames.
    pub function: &'a str,
    /// The crashing thread's name.
    pub thread: &'a str,
    /// Breadcrumbs the record must hold, whole messages, in this order (others may come
    /// between them).
    pub breadcrumbs: &'a [&'a str],
    /// How the record's last breadcrumb starts: the child's own, left just before the crash.
    pub last_breadcrumb: &'a str,
    /// Whether the record holds a copy of the crashed stack (a black box can be opened
    /// without one); the registers are always asserted.
    pub stack_copy: bool,
}

impl Expected<'static> {
    /// A fault of `crashguard-child` (the whole of crashguard, app `child`) in `function` on
    /// the thread `thread`: crashguard's install breadcrumb, then the scenario's own last.
    pub fn child(
        signal: i32,
        name: &'static str,
        code_name: &'static str,
        function: &'static str,
        thread: &'static str,
    ) -> Expected<'static> {
        Expected {
            app: "child",
            signal,
            name,
            code_name,
            stack_overflow: false,
            function,
            thread,
            breadcrumbs: &["crashguard installed"],
            last_breadcrumb: "about to run scenario",
            stack_copy: true,
        }
    }
}

impl Crash {
    /// Asserts the report fields every fatal-signal crash must have, the crashing thread's
    /// context, and that the report was stored as JSON in `<dir>/reports/` with the same
    /// contents. Returns the report, for the test's own checks.
    pub fn assert_fatal(&self, exp: Expected<'_>) -> &Report {
        let r = &self.report;
        let ctx = || format!("{}\n{}", r.to_json_pretty(), self.crashed);
        assert_eq!(r.outcome, crashguard::Outcome::FatalSignal, "{}", ctx());
        assert_eq!(r.app, exp.app, "{}", ctx());
        assert_eq!(r.pid, self.pid, "{}", ctx());
        // The recorded exit status is the one the parent really saw: 128 + n for a death by
        // signal n (which may differ from the recorded signal when a chained handler aborts),
        // or the exit code under FatalPolicy::Exit.
        let seen = self
            .crashed
            .status
            .signal()
            .map(|n| 128 + n)
            .or(self.crashed.status.code());
        assert_eq!(r.exit_code, seen.map(|n| n as u32), "{}", ctx());
        let s = r
            .signal
            .as_ref()
            .unwrap_or_else(|| panic!("no signal\n{}", ctx()));
        assert_eq!(s.number, exp.signal as u32, "{}", ctx());
        assert_eq!(s.name, exp.name, "{}", ctx());
        assert_eq!(s.code_name, exp.code_name, "{}", ctx());
        assert_eq!(r.stack_overflow, exp.stack_overflow, "{}", ctx());
        let t = r
            .thread
            .as_ref()
            .unwrap_or_else(|| panic!("no thread\n{}", ctx()));
        assert_eq!(t.name, exp.thread, "{}", ctx());
        assert!(r.ended_at.is_some(), "{}", ctx());
        let messages: Vec<&str> = r.breadcrumbs.iter().map(|b| b.message.as_str()).collect();
        let mut rest = messages.iter();
        for want in exp.breadcrumbs {
            assert!(
                rest.any(|m| m == want),
                "no breadcrumb {want:?} in order among {messages:?}\n{}",
                ctx()
            );
        }
        let last = messages.last();
        assert!(
            last.is_some_and(|m| m.starts_with(exp.last_breadcrumb)),
            "the last breadcrumb is the child's own ({:?}...): {last:?}\n{}",
            exp.last_breadcrumb,
            ctx()
        );
        assert!(!r.backtrace.is_empty(), "{}", ctx());
        assert!(
            has_frame(r, exp.function),
            "no frame of {} among {:?}\n{}",
            exp.function,
            top_symbols(r, 8),
            ctx()
        );
        // The one-line summary names the signal.
        let line = r.to_string();
        assert!(line.contains(exp.name), "{line}");
        if exp.stack_copy {
            self.assert_context();
        } else {
            let (ctx, _) = self.assert_registers();
            assert!(
                ctx.stack.is_none(),
                "a stack copy after all\n{}",
                r.to_json_pretty()
            );
        }
        self.assert_stored();
        r
    }

    /// Asserts the crashing thread's registers: those of this architecture, the program
    /// counter being frame 0. Returns the context and the stack pointer's value.
    fn assert_registers(&self) -> (&CrashContext, String) {
        let r = &self.report;
        let ctx = r
            .context
            .as_ref()
            .unwrap_or_else(|| panic!("no context\n{}", r.to_json_pretty()));
        let (pc, sp) = if cfg!(target_arch = "x86_64") {
            ("rip", "rsp")
        } else {
            ("pc", "sp")
        };
        assert_eq!(ctx.arch, std::env::consts::ARCH);
        let reg = |name: &str| {
            ctx.registers
                .get(name)
                .unwrap_or_else(|| panic!("no register {name} in {:?}", ctx.registers))
                .clone()
        };
        assert_eq!(Some(reg(pc)), r.backtrace.first().map(|f| f.ip.clone()));
        (ctx, reg(sp))
    }

    /// Asserts the crashing thread's context: registers whose program counter is frame 0 and
    /// whose stack pointer starts the stack copy, and a stack copy that really is the crashed
    /// stack — it holds the return address of at least one recorded caller frame.
    pub fn assert_context(&self) {
        let r = &self.report;
        let (ctx, sp) = self.assert_registers();
        let stack = ctx
            .stack
            .as_ref()
            .unwrap_or_else(|| panic!("no stack copy in {:?}", ctx.registers));
        // The copy starts at the stack pointer, or — a stack overflow, whose stack pointer is in
        // the guard region — at the first readable page above it.
        let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex");
        let (start, sp) = (hex(&stack.start), hex(&sp));
        if r.stack_overflow {
            assert!(
                start >= sp && start - sp <= 256 * 1024,
                "{start:#x} vs {sp:#x}"
            );
        } else {
            assert_eq!(start, sp, "the copy starts at the stack pointer");
        }
        let bytes = stack.to_bytes().expect("hex stack bytes");
        assert_eq!(bytes.len(), stack.len as usize);
        assert!(!bytes.is_empty());
        let words: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")))
            .collect();
        let callers: Vec<u64> = r
            .backtrace
            .iter()
            .skip(1)
            .filter_map(|f| u64::from_str_radix(f.ip.trim_start_matches("0x"), 16).ok())
            .collect();
        assert!(
            callers.iter().any(|ip| words.contains(ip)),
            "no caller's return address in the {} copied stack bytes",
            bytes.len()
        );
    }

    /// Asserts that the report was written to `<dir>/reports/` and reads back equal.
    pub fn assert_stored(&self) {
        let installed = self.restarted.installed();
        let stored = installed
            .stored_at
            .unwrap_or_else(|| panic!("the report was not stored\n{}", self.restarted));
        assert_eq!(
            stored.parent(),
            Some(self.dir.path().join("reports").as_path())
        );
        let on_disk: Report = serde_json::from_slice(
            &std::fs::read(&stored).unwrap_or_else(|e| panic!("read {}: {e}", stored.display())),
        )
        .expect("the stored report is valid JSON");
        assert_eq!(on_disk, self.report);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&stored).expect("stat").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "report file mode");
    }
}
