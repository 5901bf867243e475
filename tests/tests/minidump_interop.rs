//! The minidump proof: a child crashes for real, its next run reads the report, crashguard
//! writes a minidump from it, and rust-minidump's processor — with Breakpad symbols that
//! dump_syms makes from the crashed binary — walks the stack to the same top application frames
//! as crashguard's own report.

use std::path::PathBuf;

use crashguard::Report;
use crashguard_tests::{Crash, TempDir, crash_and_restart};
use minidump::Minidump;
use minidump_unwind::{Symbolizer, simple_symbol_supplier};

const CHILD: &str = env!("CARGO_BIN_EXE_crashguard-child");

/// How many application frames must agree.
const TOP: usize = 3;

/// A function name without the hash suffix some tools keep (`::h0123456789abcdef`).
fn normalized(name: &str) -> String {
    match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head.to_owned()
        }
        _ => name.to_owned(),
    }
}

/// crashguard's own top frames in the executable, by name.
fn reported_frames(report: &Report) -> Vec<String> {
    report
        .backtrace
        .iter()
        .filter(|f| f.module.is_some() && f.module == report.executable)
        .map(|f| normalized(f.symbol.as_deref().unwrap_or("??")))
        .take(TOP)
        .collect()
}

/// Breakpad symbols for the crashed binary, in the symbol-store layout
/// (`<name>/<debug id>/<name>.sym`).
fn breakpad_symbols(dir: &TempDir) -> PathBuf {
    let store = dir.path().join("symbols");
    let config =
        dump_syms::dumper::Config::with_output(dump_syms::dumper::Output::Store(store.clone()));
    dump_syms::dumper::single_file(&config, CHILD).expect("dump_syms makes the symbol file");
    store
}

fn walked_frames(crash: &Crash, bytes: Vec<u8>, symbols: PathBuf) -> Vec<String> {
    let dump = Minidump::read(bytes).expect("rust-minidump reads the file");
    let symbolizer = Symbolizer::new(simple_symbol_supplier(vec![symbols]));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime for the processor");
    let state = runtime
        .block_on(minidump_processor::process_minidump(&dump, &symbolizer))
        .expect("minidump-processor processes the file");
    assert_eq!(
        state
            .exception_info
            .as_ref()
            .map(|e| e.reason.to_string().contains("SIGSEGV")),
        Some(true),
        "{:?}",
        state.exception_info
    );
    let thread = &state.threads[state.requesting_thread.expect("a crashing thread")];
    assert_eq!(
        thread.thread_id,
        crash.report.thread.as_ref().map_or(0, |t| t.tid)
    );
    let exe = crash.report.executable.clone().unwrap_or_default();
    thread
        .frames
        .iter()
        .filter(|f| {
            f.module
                .as_ref()
                .is_some_and(|m| minidump::Module::code_file(m) == exe)
        })
        .map(|f| normalized(f.function_name.as_deref().unwrap_or("??")))
        .take(TOP)
        .collect()
}

#[test]
fn a_real_segv_becomes_a_minidump_that_minidump_processor_walks_to_the_same_frames() {
    let crash = crash_and_restart(CHILD, "segv", &[]);
    crash.crashed.assert_killed_by(libc::SIGSEGV);
    let ours = reported_frames(&crash.report);
    assert_eq!(ours.len(), TOP, "{:?}", crash.report.backtrace);
    assert!(ours[0].ends_with("crash_null_write"), "{ours:?}");

    let bytes = crashguard_minidump::write_minidump(&crash.report).expect("write the minidump");
    let symbols = breakpad_symbols(&crash.dir);
    let walked = walked_frames(&crash, bytes, symbols);
    assert_eq!(
        walked, ours,
        "minidump-processor's frames vs crashguard's report"
    );

    // The CLI's export writes the same file from the stored report.
    let out = crash.dir.path().join("crash.dmp");
    crashguard_cli::commands::export_minidump(crash.dir.path(), &out).expect("export");
    let exported = std::fs::read(&out).expect("read the export");
    let dump = Minidump::read(exported).expect("the export parses");
    let exc: minidump::MinidumpException<'_> = dump.get_stream().expect("exception stream");
    assert_eq!(exc.raw.exception_record.exception_code, 11);
}
