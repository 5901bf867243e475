//! Real faults on the main thread: each child installs crashguard, records a breadcrumb and
//! faults inside a function with a distinctive name. The test checks the exact wait status,
//! then restarts the child and checks the report it reads back.

use crashguard_tests::{Expected, crash_and_restart};

const CHILD: &str = env!("CARGO_BIN_EXE_crashguard-child");

/// What the report must say about a fault on the child's main thread (named after the
/// executable, truncated to 15 bytes by the kernel).
fn on_main(
    signal: i32,
    name: &'static str,
    code_name: &'static str,
    function: &'static str,
) -> Expected<'static> {
    Expected::child(signal, name, code_name, function, "crashguard-chil")
}

#[test]
fn null_write_dies_of_sigsegv_and_reports_segv_maperr_at_zero() {
    let crash = crash_and_restart(CHILD, "segv", &[]);
    crash.crashed.assert_killed_by(libc::SIGSEGV);
    crash.assert_fatal(on_main(
        libc::SIGSEGV,
        "SIGSEGV",
        "SEGV_MAPERR",
        "crash_null_write",
    ));
    let signal = crash.report.signal.as_ref().expect("signal");
    assert_eq!(signal.fault_address.as_deref(), Some("0x0"));
    assert_eq!(signal.sender_pid, None, "a fault has no sender");
    // The handler's one-line summary went to stderr before the process died.
    assert!(
        crash
            .crashed
            .stderr
            .contains("crashguard: fatal signal SIGSEGV (SEGV_MAPERR) at 0x0"),
        "{}",
        crash.crashed
    );
}

#[test]
fn abort_dies_of_sigabrt_sent_by_itself() {
    let crash = crash_and_restart(CHILD, "abort", &[]);
    crash.crashed.assert_killed_by(libc::SIGABRT);
    crash.assert_fatal(on_main(libc::SIGABRT, "SIGABRT", "SI_TKILL", "crash_abort"));
    let signal = crash.report.signal.as_ref().expect("signal");
    // abort() is raise(SIGABRT): tgkill from the process to itself.
    assert_eq!(signal.sender_pid, Some(crash.pid));
    assert_eq!(signal.sender_uid, Some(unsafe_getuid()));
    assert_eq!(signal.fault_address, None);
}

#[test]
fn undefined_instruction_dies_of_sigill() {
    let crash = crash_and_restart(CHILD, "ill", &[]);
    crash.crashed.assert_killed_by(libc::SIGILL);
    // x86_64's ud2 is an invalid operand ("ILL_ILLOPN"); aarch64's udf an invalid opcode.
    let code = if cfg!(target_arch = "x86_64") {
        "ILL_ILLOPN"
    } else {
        "ILL_ILLOPC"
    };
    crash.assert_fatal(on_main(
        libc::SIGILL,
        "SIGILL",
        code,
        "crash_illegal_instruction",
    ));
    // The fault address of SIGILL is the instruction, and the innermost frame is exactly it.
    let signal = crash.report.signal.as_ref().expect("signal");
    assert_eq!(
        signal.fault_address.as_ref(),
        Some(&crash.report.backtrace[0].ip)
    );
    assert_eq!(
        crash.report.backtrace[0].symbol.as_deref(),
        Some("crashguard_child::crash_illegal_instruction"),
        "{}",
        crash.report.to_json_pretty()
    );
}

#[test]
fn integer_division_by_zero_dies_of_sigfpe() {
    let crash = crash_and_restart(CHILD, "fpe", &[]);
    crash.crashed.assert_killed_by(libc::SIGFPE);
    // aarch64 does not trap on division by zero; the child raises SIGFPE by hand there.
    let code = if cfg!(target_arch = "x86_64") {
        "FPE_INTDIV"
    } else {
        "SI_TKILL"
    };
    crash.assert_fatal(on_main(
        libc::SIGFPE,
        "SIGFPE",
        code,
        "crash_divide_by_zero",
    ));
}

#[test]
fn touching_a_truncated_file_mapping_dies_of_sigbus() {
    let crash = crash_and_restart(CHILD, "bus", &[]);
    crash.crashed.assert_killed_by(libc::SIGBUS);
    crash.assert_fatal(on_main(
        libc::SIGBUS,
        "SIGBUS",
        "BUS_ADRERR",
        "crash_bus_error",
    ));
    let touched = crash
        .crashed
        .line("BUS_ADDRESS ")
        .expect("the child printed the address");
    let signal = crash.report.signal.as_ref().expect("signal");
    assert_eq!(signal.fault_address.as_deref(), Some(touched));
}

#[test]
fn breakpoint_dies_of_sigtrap() {
    let crash = crash_and_restart(CHILD, "trap", &[]);
    crash.crashed.assert_killed_by(libc::SIGTRAP);
    // x86_64's int3 is reported by the kernel as SI_KERNEL, not TRAP_BRKPT; aarch64's brk as
    // TRAP_BRKPT.
    let code = if cfg!(target_arch = "x86_64") {
        "SI_KERNEL"
    } else {
        "TRAP_BRKPT"
    };
    crash.assert_fatal(on_main(libc::SIGTRAP, "SIGTRAP", code, "crash_breakpoint"));
}

#[test]
fn two_threads_faulting_at_once_leave_one_complete_record() {
    let crash = crash_and_restart(CHILD, "segv-two-threads", &[]);
    crash.crashed.assert_killed_by(libc::SIGSEGV);
    let name = crash
        .report
        .thread
        .as_ref()
        .map(|t| t.name.clone())
        .unwrap_or_default();
    assert!(
        name == "racer-1" || name == "racer-2",
        "the record names one of the racers: {name:?}\n{}",
        crash.report.to_json_pretty()
    );
    // The first crash wins; the second thread waits and does not write a second summary.
    let summaries = crash
        .crashed
        .stderr
        .matches("crashguard: fatal signal")
        .count();
    assert_eq!(summaries, 1, "{}", crash.crashed);
    assert!(
        crash
            .crashed
            .stderr
            .contains(&format!("in thread '{name}'")),
        "{}",
        crash.crashed
    );
    crash.assert_fatal(Expected {
        thread: &name,
        ..on_main(libc::SIGSEGV, "SIGSEGV", "SEGV_MAPERR", "crash_null_write")
    });
}

#[test]
fn exit_policy_exits_with_128_plus_the_signal() {
    let crash = crash_and_restart(CHILD, "segv", &["--exit-policy"]);
    crash.crashed.assert_exit_code(128 + libc::SIGSEGV);
    crash.assert_fatal(on_main(
        libc::SIGSEGV,
        "SIGSEGV",
        "SEGV_MAPERR",
        "crash_null_write",
    ));
}

#[test]
fn exit_policy_applies_to_abort_too() {
    let crash = crash_and_restart(CHILD, "abort", &["--exit-policy"]);
    crash.crashed.assert_exit_code(128 + libc::SIGABRT);
    crash.assert_fatal(on_main(libc::SIGABRT, "SIGABRT", "SI_TKILL", "crash_abort"));
}

fn unsafe_getuid() -> u32 {
    // SAFETY: getuid cannot fail and has no preconditions.
    unsafe { libc::getuid() }
}
