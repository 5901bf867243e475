//! Minidumps from crashguard crash reports.
//!
//! A minidump is the file format of Breakpad and Crashpad, and what the fleet's crash engines
//! ingest: rust-minidump's `minidump-stackwalk`, Sentry, Socorro, Backtrace. [`write_minidump`]
//! turns a report of a native crash (a fatal signal recorded with the crashing thread's
//! registers and a copy of its stack) into one, after the fact: no out-of-process crash server,
//! no ptrace, only what the black box kept. The file holds
//!
//! - the system info stream: the CPU architecture and Linux as the platform;
//! - the exception stream: the signal as the exception code, `si_code` as its flags, the fault
//!   address (Breakpad's convention for Linux);
//! - the thread list: the crashing thread, with its registers (`CONTEXT_AMD64` or
//!   `CONTEXT_ARM64`) and its stack memory, also listed in the memory list;
//! - the module list: every module loaded at install with its load address, size and a
//!   Breakpad `BpEL` CodeView record holding the GNU build id, from which processors derive
//!   the code id (the build id) and the debug id (its first 16 bytes as a little-endian GUID,
//!   age 0) that symbol files are looked up by;
//! - a Crashpad info stream whose simple annotations carry the report's app, outcome,
//!   signature, panic, detail and breadcrumbs (`crashguard.breadcrumbs`, one per line).
//!
//! Other threads, heap memory and floating-point registers were never recorded, so they are not
//! in the file.
//!
//! # Examples
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let report: crashguard_blackbox::Report =
//!     serde_json::from_slice(&std::fs::read("report.json")?)?;
//! std::fs::write("crash.dmp", crashguard_minidump::write_minidump(&report)?)?;
//! # Ok(())
//! # }
//! ```

#[cfg(not(unix))]
compile_error!("crashguard-minidump supports Unix targets only, like the reports it reads");

// On those targets every item below is configured out, so that the build stops at that one
// error instead of going on to fail in every module.
#[cfg(unix)]
mod buf;
#[cfg(unix)]
mod context;
#[cfg(unix)]
mod error;

#[cfg(unix)]
use crashguard_blackbox::{Report, StackMemory};

#[cfg(unix)]
use buf::{Buf, Location};
#[cfg(unix)]
pub use error::Error;

#[cfg(unix)]
const SIGNATURE: u32 = 0x504d_444d; // "MDMP"
#[cfg(unix)]
const VERSION: u32 = 0xa793;
#[cfg(unix)]
const THREAD_LIST_STREAM: u32 = 3;
#[cfg(unix)]
const MODULE_LIST_STREAM: u32 = 4;
#[cfg(unix)]
const MEMORY_LIST_STREAM: u32 = 5;
#[cfg(unix)]
const EXCEPTION_STREAM: u32 = 6;
#[cfg(unix)]
const SYSTEM_INFO_STREAM: u32 = 7;
#[cfg(unix)]
const CRASHPAD_INFO_STREAM: u32 = 0x4350_0001;
/// `PlatformId` of Linux in Breakpad's system-info stream.
#[cfg(unix)]
const PLATFORM_LINUX: u32 = 0x8201;
/// Breakpad's CodeView signature for an ELF build id: "BpEL".
#[cfg(unix)]
const CV_SIGNATURE_ELF: u32 = 0x4270_454c;
/// How many streams this writer emits.
#[cfg(unix)]
const STREAMS: u32 = 6;

/// The annotation keys written into the Crashpad info stream.
#[cfg(unix)]
pub const ANNOTATION_PREFIX: &str = "crashguard.";

/// Writes the minidump of a native crash report.
///
/// Fails with [`Error::NoContext`] when the report holds no registers (it is not a native
/// crash, or an older crashguard recorded it).
#[cfg(unix)]
pub fn write_minidump(report: &Report) -> Result<Vec<u8>, Error> {
    let ctx = report.context.as_ref().ok_or_else(|| Error::NoContext {
        outcome: report.outcome.as_str().to_owned(),
    })?;
    let context = context::build(&ctx.arch, &ctx.registers)?;
    let tid = report.thread.as_ref().map_or(report.pid, |t| t.tid);

    let mut b = Buf::default();
    // Header, with the directory right after it.
    b.u32(SIGNATURE);
    b.u32(VERSION);
    b.u32(STREAMS);
    b.u32(32); // stream directory RVA
    b.u32(0); // checksum
    b.u32(timestamp(report));
    b.u64(0); // flags
    let directory = b.rva();
    b.zeros(STREAMS as usize * 12);
    let mut entries: Vec<(u32, Location)> = Vec::new();

    // Data blocks the streams point at.
    let context_loc = b.block(&context.bytes);
    let stack = stack_memory(ctx.stack.as_ref(), context.sp);
    let stack_loc = stack.as_ref().map(|(_, bytes)| b.block(bytes));
    let stack_start = stack.as_ref().map_or(context.sp, |(start, _)| *start);

    entries.push((SYSTEM_INFO_STREAM, system_info(&mut b, context.processor)));
    entries.push((
        EXCEPTION_STREAM,
        exception(&mut b, report, tid, context.ip, context_loc),
    ));

    // Thread list: the crashing thread.
    b.align(4);
    let rva = b.rva();
    b.u32(1);
    b.u32(tid);
    b.u32(0); // suspend count
    b.u32(0); // priority class
    b.u32(0); // priority
    b.u64(0); // TEB
    b.u64(stack_start);
    b.location(stack_loc.unwrap_or_default());
    b.location(context_loc);
    entries.push((
        THREAD_LIST_STREAM,
        Location {
            size: b.rva() - rva,
            rva,
        },
    ));

    entries.push((MODULE_LIST_STREAM, module_list(&mut b, report)));

    // Memory list: the stack.
    b.align(4);
    let rva = b.rva();
    match stack_loc {
        Some(loc) => {
            b.u32(1);
            b.u64(stack_start);
            b.location(loc);
        }
        None => b.u32(0),
    }
    entries.push((
        MEMORY_LIST_STREAM,
        Location {
            size: b.rva() - rva,
            rva,
        },
    ));

    entries.push((CRASHPAD_INFO_STREAM, crashpad_info(&mut b, report)));

    for (i, (kind, loc)) in entries.iter().enumerate() {
        let at = directory + i as u32 * 12;
        b.patch_u32(at, *kind);
        b.patch_u32(at + 4, loc.size);
        b.patch_u32(at + 8, loc.rva);
    }
    Ok(b.into_bytes())
}

/// The end (else the start) of the run, in seconds since the epoch.
#[cfg(unix)]
fn timestamp(report: &Report) -> u32 {
    let at = report.ended_at.unwrap_or(report.started_at);
    u32::try_from(at.unix_millis() / 1000).unwrap_or(u32::MAX)
}

#[cfg(unix)]
fn stack_memory(stack: Option<&StackMemory>, sp: u64) -> Option<(u64, Vec<u8>)> {
    let s = stack?;
    let bytes = s.to_bytes()?;
    let start = s.start_address().unwrap_or(sp);
    (!bytes.is_empty()).then_some((start, bytes))
}

#[cfg(unix)]
fn system_info(b: &mut Buf, processor: u16) -> Location {
    // The CSD version string (Windows' service pack; the kernel version on Linux) is unknown to
    // the report; readers expect the string to exist.
    let csd = b.utf16_string("");
    b.align(4);
    let rva = b.rva();
    b.u16(processor);
    b.u16(0); // processor level
    b.u16(0); // processor revision
    b.u8(0); // number of processors: not recorded
    b.u8(0); // product type
    b.u32(0); // major version
    b.u32(0); // minor version
    b.u32(0); // build number
    b.u32(PLATFORM_LINUX);
    b.u32(csd);
    b.u16(0); // suite mask
    b.u16(0); // reserved
    b.zeros(24); // CPU information
    Location { size: 56, rva }
}

#[cfg(unix)]
fn parse_hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16).ok()
}

/// The exception stream. The address is the fault address of a fault (SIGSEGV, SIGBUS, ...);
/// for a signal without one (SIGABRT) it is the instruction pointer, as processors expect a
/// crash address there.
#[cfg(unix)]
fn exception(b: &mut Buf, report: &Report, tid: u32, ip: u64, context: Location) -> Location {
    let (signo, code, address) = match &report.signal {
        Some(s) => (
            s.number,
            s.code,
            s.fault_address.as_deref().and_then(parse_hex).unwrap_or(ip),
        ),
        None => (0, 0, ip),
    };
    b.align(4);
    let rva = b.rva();
    b.u32(tid);
    b.u32(0); // alignment
    b.u32(signo); // exception code: the signal
    b.u32(code as u32); // exception flags: si_code
    b.u64(0); // nested exception record
    b.u64(address);
    b.u32(0); // number of parameters
    b.u32(0); // alignment
    b.zeros(15 * 8); // parameters
    b.location(context);
    Location { size: 168, rva }
}

#[cfg(unix)]
fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(unix)]
fn module_list(b: &mut Buf, report: &Report) -> Location {
    struct Prepared {
        base: u64,
        size: u32,
        name: u32,
        cv: Location,
    }
    let prepared: Vec<Prepared> = report
        .modules
        .iter()
        .filter_map(|m| {
            let base = parse_hex(&m.start)?;
            let end = m.end.as_deref().and_then(parse_hex).unwrap_or(base);
            let size = u32::try_from(end.saturating_sub(base)).unwrap_or(u32::MAX);
            let name = b.utf16_string(&m.path);
            let cv = match m.build_id.as_deref().and_then(hex_bytes) {
                Some(id) => {
                    let mut record = CV_SIGNATURE_ELF.to_le_bytes().to_vec();
                    record.extend_from_slice(&id);
                    b.block(&record)
                }
                None => Location::default(),
            };
            Some(Prepared {
                base,
                size,
                name,
                cv,
            })
        })
        .collect();
    b.align(4);
    let rva = b.rva();
    b.u32(u32::try_from(prepared.len()).unwrap_or(0));
    for m in &prepared {
        b.u64(m.base);
        b.u32(m.size);
        b.u32(0); // checksum
        b.u32(0); // time stamp
        b.u32(m.name);
        b.zeros(13 * 4); // VS_FIXEDFILEINFO: ELF has none
        b.location(m.cv);
        b.location(Location::default()); // misc record
        b.u64(0);
        b.u64(0);
    }
    Location {
        size: b.rva() - rva,
        rva,
    }
}

/// The report's facts as `crashguard.*` annotations.
#[cfg(unix)]
pub fn annotations(report: &Report) -> Vec<(String, String)> {
    let mut out = vec![
        ("app", report.app.clone()),
        ("outcome", report.outcome.as_str().to_owned()),
        ("signature", report.signature.clone()),
        ("pid", report.pid.to_string()),
        ("crashguard_version", report.crashguard_version.clone()),
    ];
    if let Some(code) = report.exit_code {
        out.push(("exit_code", code.to_string()));
    }
    if let Some(p) = &report.panic {
        out.push(("panic", format!("'{}' at {}", p.message, p.location)));
    }
    if let Some(d) = &report.detail {
        out.push(("detail", d.clone()));
    }
    if !report.breadcrumbs.is_empty() {
        let lines: Vec<String> = report
            .breadcrumbs
            .iter()
            .map(|c| format!("{} [tid {}] {}", c.at, c.thread, c.message))
            .collect();
        out.push(("breadcrumbs", lines.join("\n")));
    }
    out.into_iter()
        .map(|(k, v)| (format!("{ANNOTATION_PREFIX}{k}"), v))
        .collect()
}

#[cfg(unix)]
fn crashpad_info(b: &mut Buf, report: &Report) -> Location {
    let pairs: Vec<(u32, u32)> = annotations(report)
        .iter()
        .map(|(k, v)| (b.utf8_string(k), b.utf8_string(v)))
        .collect();
    b.align(4);
    let dict = b.rva();
    b.u32(u32::try_from(pairs.len()).unwrap_or(0));
    for (k, v) in &pairs {
        b.u32(*k);
        b.u32(*v);
    }
    let dict = Location {
        size: b.rva() - dict,
        rva: dict,
    };
    // The module list of the Crashpad info (per-module annotations) is an empty list.
    let modules = b.block(&0u32.to_le_bytes());
    b.align(4);
    let rva = b.rva();
    b.u32(1); // version
    b.zeros(16); // report id
    b.zeros(16); // client id
    b.location(dict);
    b.location(modules);
    Location { size: 52, rva }
}
