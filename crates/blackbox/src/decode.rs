//! The validating reader: raw black-box bytes in, a [`Report`] or a clear error out.
//!
//! Nothing in the input is trusted. The header is checked first (magic, version, endianness,
//! sizes, checksum), then each section by its own integrity word. Any byte pattern gives either a
//! report or a [`DecodeError`]; the reader never panics (this is what the proptests and the fuzz
//! target check).

use std::fmt;
use std::mem::offset_of;

use crate::crc;
use crate::layout::*;
use crate::names::{code_is_sent, code_name, signal_name};
use crate::outcome::Outcome;
use crate::report::*;
use crate::shutdown_kinds::{HookStatus, ShutdownTrigger};
use crate::time::Timestamp;

/// Why bytes are not a readable black box.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the layout needs.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        found: usize,
    },
    /// The file does not start with the black-box magic.
    BadMagic,
    /// A layout version this reader does not know.
    UnsupportedVersion(u32),
    /// Written on a machine of the other endianness.
    WrongEndianness,
    /// The header's sizes disagree with this reader's layout.
    BadSizes(&'static str),
    /// A section's checksum does not match its contents.
    Checksum(&'static str),
    /// The file was created but never armed by a process.
    NeverArmed,
    /// The state word holds an unknown value.
    BadState(u32),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { needed, found } => {
                write!(f, "black box truncated: {found} bytes, need {needed}")
            }
            DecodeError::BadMagic => f.write_str("not a crashguard black box (bad magic)"),
            DecodeError::UnsupportedVersion(v) => {
                write!(
                    f,
                    "unsupported black-box version {v} (this reader knows {FORMAT_VERSION})"
                )
            }
            DecodeError::WrongEndianness => {
                f.write_str("black box was written on a machine of the other endianness")
            }
            DecodeError::BadSizes(what) => write!(f, "black-box header is inconsistent: {what}"),
            DecodeError::Checksum(what) => {
                write!(f, "black-box {what} section is corrupt (checksum mismatch)")
            }
            DecodeError::NeverArmed => f.write_str("black box was never armed by a process"),
            DecodeError::BadState(s) => write!(f, "black box has an unknown state {s}"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn read<T: Copy>(bytes: &[u8], offset: usize) -> Option<T> {
    let end = offset.checked_add(size_of::<T>())?;
    let slice = bytes.get(offset..end)?;
    // SAFETY: the slice holds size_of::<T>() bytes, and every T read here is a repr(C) struct of
    // integers and byte arrays without padding (see layout.rs), so any bit pattern is valid.
    Some(unsafe { std::ptr::read_unaligned(slice.as_ptr().cast::<T>()) })
}

fn section_crc(bytes: &[u8], offset: usize, len: usize, checksum_at: usize) -> Option<u32> {
    let s = bytes.get(offset..offset.checked_add(len)?)?;
    let before = s.get(..checksum_at)?;
    let after = s.get(checksum_at + 4..)?;
    Some(crc::update(crc::update(crc::crc32(before), &[0; 4]), after))
}

fn text(bytes: &[u8], len: u32) -> String {
    let n = (len as usize).min(bytes.len());
    String::from_utf8_lossy(bytes.get(..n).unwrap_or(&[])).into_owned()
}

/// A thread by id and the name recorded for it, made whole from the thread-name table when an
/// intact entry for it extends the recorded name.
fn thread_info(names: &[ThreadName], tid: u32, recorded: &[u8]) -> ThreadInfo {
    let short = cname(recorded);
    match crate::thread_names::lookup(names, tid, recorded) {
        Some(full) => ThreadInfo {
            tid,
            name: full,
            truncated_name: Some(short),
        },
        None => ThreadInfo {
            tid,
            name: short,
            truncated_name: None,
        },
    }
}

/// A NUL-padded name (thread names, census groups).
fn cname(bytes: &[u8]) -> String {
    let n = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(bytes.get(..n).unwrap_or(&[])).into_owned()
}

fn hex_bytes(bytes: &[u8], len: u32) -> Option<String> {
    let n = (len as usize).min(bytes.len());
    (n > 0).then(|| bytes.iter().take(n).map(|b| format!("{b:02x}")).collect())
}

fn opt(v: u64) -> Option<u64> {
    (v != u64::MAX).then_some(v)
}

/// Validates the header and returns it.
pub fn decode_header(bytes: &[u8]) -> Result<Header, DecodeError> {
    let header: Header = read(bytes, 0).ok_or(DecodeError::Truncated {
        needed: size_of::<Header>(),
        found: bytes.len(),
    })?;
    if header.magic != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if header.endian != ENDIAN_MARK {
        return Err(if header.endian.swap_bytes() == ENDIAN_MARK {
            DecodeError::WrongEndianness
        } else {
            DecodeError::BadSizes("endianness mark")
        });
    }
    if header.version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion(header.version));
    }
    let sum = section_crc(bytes, 0, size_of::<Header>(), offset_of!(Header, checksum));
    if sum != Some(header.checksum) {
        return Err(DecodeError::Checksum("header"));
    }
    if header.header_size as usize != size_of::<Header>() {
        return Err(DecodeError::BadSizes("header size"));
    }
    if header.record_size as usize != size_of::<Record>() {
        return Err(DecodeError::BadSizes("record size"));
    }
    if header.breadcrumb_size as usize != size_of::<Breadcrumb>() {
        return Err(DecodeError::BadSizes("breadcrumb size"));
    }
    if !(MIN_RING_CAPACITY..=MAX_RING_CAPACITY).contains(&header.ring_capacity) {
        return Err(DecodeError::BadSizes("ring capacity"));
    }
    if header.stack_capacity > MAX_STACK_CAPACITY {
        return Err(DecodeError::BadSizes("stack capacity"));
    }
    if header.file_size != file_size(header.ring_capacity, header.stack_capacity) as u64 {
        return Err(DecodeError::BadSizes("file size"));
    }
    if bytes.len() < header.file_size as usize {
        return Err(DecodeError::Truncated {
            needed: header.file_size as usize,
            found: bytes.len(),
        });
    }
    Ok(header)
}

/// Decodes a black box into a report.
///
/// A box whose state is still "running" becomes a `killed_without_warning` report: the process
/// vanished without any handler running (or is still alive: [`crate::open`] only reads boxes
/// whose lock it could take, so that case cannot reach `previous_run()`).
pub fn decode(bytes: &[u8]) -> Result<Report, DecodeError> {
    let header = decode_header(bytes)?;
    let record: Record = read(bytes, 0).ok_or(DecodeError::Truncated {
        needed: size_of::<Record>(),
        found: bytes.len(),
    })?;

    let s_off = offset_of!(Record, session);
    let sum = section_crc(
        bytes,
        s_off,
        size_of::<Session>(),
        offset_of!(Session, checksum),
    );
    if sum != Some(record.session.checksum) {
        return Err(DecodeError::Checksum("session"));
    }
    let state = record.state;
    let end = match state {
        STATE_EMPTY => return Err(DecodeError::NeverArmed),
        STATE_RUNNING => None,
        STATE_ENDED => {
            let e_off = offset_of!(Record, end);
            let sum = section_crc(bytes, e_off, size_of::<End>(), offset_of!(End, checksum));
            if sum != Some(record.end.checksum) {
                return Err(DecodeError::Checksum("end"));
            }
            Some(record.end)
        }
        other => return Err(DecodeError::BadState(other)),
    };

    let session = &record.session;
    let module_count = (session.module_count as usize).min(MAX_MODULES);
    let modules = session.modules.get(..module_count).unwrap_or(&[]);
    let exe_build_id = modules
        .first()
        .and_then(|m| hex_bytes(&m.build_id, m.build_id_len));

    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        app: text(&session.app, session.app_len),
        pid: session.pid,
        started_at: Timestamp::from_unix_nanos(session.started_at_ns),
        ended_at: None,
        outcome: Outcome::KilledWithoutWarning,
        signature: String::new(),
        exit_code: None,
        signal: None,
        thread: None,
        stack_overflow: false,
        panic: None,
        backtrace: Vec::new(),
        breadcrumbs: decode_breadcrumbs(bytes, &header),
        resources: decode_heartbeat(&record.heartbeat),
        allocation: decode_alloc(&record.alloc),
        shutdown: decode_shutdown(&record.shutdown),
        threads: None,
        detail: None,
        verdict: None,
        build_id: exe_build_id,
        executable: Some(text(&session.exe, session.exe_len)).filter(|s| !s.is_empty()),
        modules: modules
            .iter()
            .map(|m| ModuleInfo {
                path: text(&m.path, m.path_len),
                build_id: hex_bytes(&m.build_id, m.build_id_len),
                start: format!("{:#x}", m.start),
                end: Some(format!("{:#x}", m.end)),
                bias: format!("{:#x}", m.bias),
            })
            .collect(),
        crashguard_version: text(&session.version, session.version_len),
        context: None,
    };

    let panic = decode_panic(&record.panic, &record.thread_names);
    if let Some((info, frames)) = &panic {
        report.panic = Some(info.clone());
        report.backtrace = frames.iter().map(|&ip| frame(modules, ip)).collect();
    }

    match end {
        None => {
            report.verdict = Some(crate::verdict::killed_without_warning(
                report.resources.as_ref(),
            ));
        }
        Some(end) => {
            // A correction stored after the commit (one atomic word, self-checking) wins.
            let (outcome, exit_code) =
                amended(record.amended).unwrap_or((end.outcome, end.exit_code));
            report.outcome = outcome_of(outcome);
            report.exit_code = (exit_code != EXIT_CODE_UNKNOWN).then_some(exit_code);
            report.ended_at = Some(Timestamp::from_unix_nanos(end.ended_at_ns));
            report.stack_overflow = end.stack_overflow != 0;
            if end.tid != 0 {
                report.thread = Some(thread_info(&record.thread_names, end.tid, &end.thread_name));
            }
            if end.signal != 0 {
                report.signal = Some(signal_info(
                    end.signal,
                    end.si_code,
                    end.fault_address,
                    end.sender_pid,
                    end.sender_uid,
                ));
            }
            let n = (end.frame_count as usize).min(MAX_FRAMES);
            if n > 0 {
                report.backtrace = end
                    .frames
                    .iter()
                    .take(n)
                    .map(|&ip| frame(modules, ip))
                    .collect();
            }
            let groups = (end.census_count as usize).min(MAX_CENSUS);
            if end.census_total > 0 {
                report.threads = Some(ThreadCensus {
                    total: end.census_total,
                    groups: end
                        .census
                        .iter()
                        .take(groups)
                        .map(|g| CensusGroup {
                            name: text(&g.name, g.name_len),
                            count: g.count,
                        })
                        .collect(),
                });
            }
            report.detail = Some(text(&end.detail, end.detail_len)).filter(|s| !s.is_empty());
            report.context = decode_context(bytes, &header, &record, &end);
            if report.outcome != Outcome::MemoryBudget {
                report.allocation = None;
            }
        }
    }
    report.signature = crate::signature::signature(&report);
    Ok(report)
}

/// The crashing thread's registers and stack copy, when the context section is intact and
/// belongs to the committed end (same thread); `None` otherwise.
fn decode_context(
    bytes: &[u8],
    header: &Header,
    record: &Record,
    end: &End,
) -> Option<CrashContext> {
    let ctx = &record.context;
    if ctx.arch == ARCH_NONE || ctx.tid == 0 || ctx.tid != end.tid {
        return None;
    }
    let c_off = offset_of!(Record, context);
    let sum = section_crc(
        bytes,
        c_off,
        size_of::<Context>(),
        offset_of!(Context, checksum),
    );
    if sum != Some(ctx.checksum) {
        return None;
    }
    let names: &[&str] = match ctx.arch {
        ARCH_X86_64 => &X86_64_REGISTERS,
        ARCH_AARCH64 => &AARCH64_REGISTERS,
        _ => return None,
    };
    let count = (ctx.register_count as usize)
        .min(names.len())
        .min(MAX_REGISTERS);
    let registers = names
        .iter()
        .zip(ctx.registers.iter())
        .take(count)
        .map(|(name, value)| ((*name).to_owned(), format!("{value:#x}")))
        .collect();
    let len = ctx.stack_len.min(header.stack_capacity) as usize;
    let start = stack_offset(header.ring_capacity);
    let stack_bytes = bytes.get(start..start.checked_add(len)?)?;
    let stack = (len > 0 && stack_sum(stack_bytes) == ctx.stack_sum).then(|| StackMemory {
        start: format!("{:#x}", ctx.stack_start),
        len: len as u32,
        bytes: stack_bytes.iter().map(|b| format!("{b:02x}")).collect(),
    });
    let bound = |v: u64| (v != 0).then(|| format!("{v:#x}"));
    Some(CrashContext {
        arch: if ctx.arch == ARCH_X86_64 {
            "x86_64"
        } else {
            "aarch64"
        }
        .to_owned(),
        registers,
        stack,
        stack_low: bound(ctx.stack_low),
        stack_high: bound(ctx.stack_high),
    })
}

/// An end section whose outcome this reader does not know was still written by a handler;
/// the closest honest description is a handler failure.
fn outcome_of(v: u32) -> Outcome {
    Outcome::from_code(v).unwrap_or(Outcome::HandlerFailure)
}

/// Builds the report's signal object from raw `siginfo` fields.
pub fn signal_info(signo: u32, code: i32, addr: u64, pid: u32, uid: u32) -> SignalInfo {
    let fault = matches!(signo, 4 | 7 | 8 | 11) && !code_is_sent(code);
    let sent = code_is_sent(code);
    SignalInfo {
        number: signo,
        name: signal_name(signo).unwrap_or_default().to_owned(),
        code,
        code_name: code_name(signo, code).unwrap_or_default().to_owned(),
        fault_address: fault.then(|| format!("{addr:#x}")),
        sender_pid: sent.then_some(pid),
        sender_uid: (sent && uid != u32::MAX).then_some(uid),
    }
}

fn frame(modules: &[Module], ip: u64) -> Frame {
    let mut f = Frame {
        ip: format!("{ip:#x}"),
        ..Frame::default()
    };
    if let Some((_, m)) = crate::modules::find(modules, ip) {
        f.module = Some(text(&m.path, m.path_len));
        f.offset = Some(format!("{:#x}", ip.wrapping_sub(m.bias)));
        f.build_id = hex_bytes(&m.build_id, m.build_id_len);
    }
    f
}

fn seq_ok(seq: u32, valid: u32) -> bool {
    seq & 1 == 0 && valid != 0
}

fn decode_heartbeat(h: &Heartbeat) -> Option<Resources> {
    seq_ok(h.seq, h.valid).then(|| Resources {
        rss_bytes: opt(h.rss_bytes).filter(|&v| v != 0),
        heap_bytes: opt(h.heap_bytes),
        threads: opt(h.threads).filter(|&v| v != 0),
        cgroup_memory_current: opt(h.cgroup_memory_current),
        cgroup_memory_max: opt(h.cgroup_memory_max),
        oom_kill_count: opt(h.oom_kill_count),
        memory_budget: opt(h.memory_budget),
        thread_budget: opt(h.thread_budget),
        sampled_at: Timestamp::from_unix_nanos(h.sampled_at_ns),
    })
}

fn decode_alloc(a: &AllocFailure) -> Option<AllocationInfo> {
    seq_ok(a.seq, a.valid).then(|| AllocationInfo {
        request_bytes: a.request_bytes,
        align: a.align,
        live_bytes: a.live_bytes,
        budget_bytes: opt(a.budget_bytes),
        tid: a.tid,
        at: Timestamp::from_unix_nanos(a.at_ns),
    })
}

fn decode_panic(p: &PanicRecord, names: &[ThreadName]) -> Option<(PanicInfo, Vec<u64>)> {
    if !seq_ok(p.seq, p.valid) {
        return None;
    }
    let frames = p
        .frames
        .iter()
        .take((p.frame_count as usize).min(MAX_FRAMES))
        .copied()
        .collect();
    let info = PanicInfo {
        message: text(&p.message, p.message_len),
        location: text(&p.location, p.location_len),
        thread: (p.tid != 0).then(|| thread_info(names, p.tid, &p.thread_name)),
    };
    Some((info, frames))
}

fn decode_shutdown(s: &ShutdownRecord) -> Option<ShutdownInfo> {
    if !seq_ok(s.seq, s.valid) {
        return None;
    }
    let hooks = s
        .hooks
        .iter()
        .take((s.hook_count as usize).min(MAX_HOOKS))
        .map(|h| HookInfo {
            name: text(&h.name, h.name_len),
            status: HookStatus::from_code(h.status),
            duration_ms: h.duration_us as f64 / 1000.0,
        })
        .collect();
    Some(ShutdownInfo {
        reason: ShutdownTrigger::from_code(s.reason),
        signal: (s.signal != 0).then(|| {
            let mut info = signal_info(s.signal, 0, 0, s.sender_pid, s.sender_uid);
            // The coordinator stores 0 when the kernel did not say who sent the signal.
            info.sender_pid = info.sender_pid.filter(|&pid| pid != 0);
            info
        }),
        requested_at: Timestamp::from_unix_nanos(s.requested_at_ns),
        grace_ms: s.grace_ms,
        hooks,
    })
}

fn decode_breadcrumbs(bytes: &[u8], header: &Header) -> Vec<BreadcrumbInfo> {
    let mut crumbs: Vec<((u64, u64), BreadcrumbInfo)> = Vec::new();
    for i in 0..header.ring_capacity as usize {
        let off = size_of::<Record>() + i * size_of::<Breadcrumb>();
        let Some(b) = read::<Breadcrumb>(bytes, off) else {
            break;
        };
        // Odd: a writer was inside when the process died (or when these bytes were copied);
        // zero: never written; a hash that differs: two writers wrote over each other, or the
        // body changed while it was copied.
        if b.seq == 0
            || b.seq & 1 == 1
            || b.len as usize > BREADCRUMB_TEXT_LEN
            || b.hash
                != breadcrumb_hash(
                    b.seq,
                    b.at_ns,
                    b.tid,
                    b.len,
                    b.text.get(..b.len as usize).unwrap_or(&[]),
                )
        {
            continue;
        }
        let info = BreadcrumbInfo {
            at: Timestamp::from_unix_nanos(b.at_ns),
            thread: b.tid,
            message: text(&b.text, b.len),
        };
        crumbs.push(((b.at_ns, b.seq), info));
    }
    // Threads claim sequence numbers in batches, so the numbers order one thread's breadcrumbs
    // exactly and different threads' only within a tick of the (coarse) clock.
    crumbs.sort_by_key(|(key, _)| *key);
    crumbs.into_iter().map(|(_, c)| c).collect()
}
