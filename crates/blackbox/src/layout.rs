//! The on-disk layout of the black box, version 2 (version 1 had no context section).
//!
//! The file is one [`Record`], a ring of [`Breadcrumb`] entries, then `Header::stack_capacity`
//! bytes for the crashing thread's stack copy (see [`Context`]). Every field is a
//! fixed-width integer or a byte array, so any byte pattern is a valid value of these types: the
//! reader may copy untrusted bytes into them and then validate, and the writer can fill them with
//! plain memory stores from a signal handler. Integers are native-endian; the header carries an
//! endianness mark so a file from a machine of the other endianness is refused rather than
//! misread. `docs/report-format.md` documents the same layout for other tools.
//!
//! Sections written by different parties each carry their own integrity word:
//!
//! | section      | written by                     | integrity                                   |
//! |--------------|--------------------------------|---------------------------------------------|
//! | `header`     | `install()`                    | CRC-32 of the header                        |
//! | `session`    | `install()`                    | CRC-32 of the section                       |
//! | `heartbeat`  | the samplers, repeatedly       | sequence lock (odd while being written)     |
//! | `panic`      | the panic hook                 | sequence lock                               |
//! | `shutdown`   | the shutdown coordinator       | sequence lock                               |
//! | `alloc`      | the budget allocator           | sequence lock                               |
//! | `end`        | whoever ends the process       | CRC-32, then `state` is stored last         |
//! | `context` + stack bytes | the fatal handler (claimant of `end`) | CRC-32 of the section, which holds a sum of the stack bytes; written before `end` is committed |
//! | breadcrumbs  | any thread                     | per-entry sequence word                     |

/// The first eight bytes of every black-box file.
pub const MAGIC: [u8; 8] = *b"CRGDBOX\0";
/// The layout version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 5;
/// Stored as a native-endian integer; reads back differently on a machine of the other endianness.
pub const ENDIAN_MARK: u32 = 0x0102_0304;

/// `Record::state`: the file was created but never armed.
pub const STATE_EMPTY: u32 = 0;
/// `Record::state`: a process is (or was, if it vanished) running with this black box armed.
pub const STATE_RUNNING: u32 = 1;
/// `Record::state`: the `end` section is complete and checksummed.
pub const STATE_ENDED: u32 = 2;

/// Bytes kept of the application name.
pub const APP_LEN: usize = 64;
/// Bytes kept of a path (executable, module).
pub const PATH_LEN: usize = 256;
/// Bytes kept of a GNU build id (SHA-1 ids are 20 bytes; some linkers emit up to 32).
pub const BUILD_ID_LEN: usize = 32;
/// Bytes kept of the crate version string.
pub const VERSION_LEN: usize = 16;
/// Linux thread names are at most 15 bytes plus the terminating NUL.
pub const THREAD_NAME_LEN: usize = 16;
/// Loaded modules remembered at install, used to make frame addresses module-relative.
pub const MAX_MODULES: usize = 48;
/// Raw instruction pointers kept of the crashing stack.
pub const MAX_FRAMES: usize = 64;
/// Bytes kept of a panic message.
pub const PANIC_MESSAGE_LEN: usize = 1024;
/// Bytes kept of a panic location (`file:line:column`).
pub const LOCATION_LEN: usize = 192;
/// Distinct thread-name groups kept in a census.
pub const MAX_CENSUS: usize = 32;
/// Shutdown hooks whose outcome is kept.
pub const MAX_HOOKS: usize = 16;
/// Bytes kept of a hook name.
pub const HOOK_NAME_LEN: usize = 48;
/// Bytes kept of the free-form detail line in the end section.
pub const DETAIL_LEN: usize = 256;
/// Bytes of message text in one breadcrumb.
pub const BREADCRUMB_TEXT_LEN: usize = 96;
/// The default number of breadcrumbs in the ring.
pub const DEFAULT_RING_CAPACITY: u32 = 256;
/// The fewest breadcrumbs a ring may hold.
pub const MIN_RING_CAPACITY: u32 = 64;
/// The most breadcrumbs a ring may hold (keeps a file under 1 MiB).
pub const MAX_RING_CAPACITY: u32 = 4096;
/// Bytes of the crashing thread's stack the fatal handler copies by default.
pub const DEFAULT_STACK_CAPACITY: u32 = 32 * 1024;
/// The most stack bytes a black box may reserve.
pub const MAX_STACK_CAPACITY: u32 = 1024 * 1024;
/// Register slots in [`Context`] (x86-64 uses 23, aarch64 34).
pub const MAX_REGISTERS: usize = 40;
/// `Context::arch`: no context recorded.
pub const ARCH_NONE: u32 = 0;
/// `Context::arch`: x86-64; registers in the order of [`X86_64_REGISTERS`].
pub const ARCH_X86_64: u32 = 1;
/// `Context::arch`: aarch64; registers in the order of [`AARCH64_REGISTERS`].
pub const ARCH_AARCH64: u32 = 2;
/// The names of the x86-64 registers in `Context::registers`, in order. `cs`, `gs`, `fs` come
/// from the kernel's packed `csgsfs` word; `err`, `trapno` and `cr2` describe the fault.
pub const X86_64_REGISTERS: [&str; 23] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15", "rip", "rflags", "cs", "gs", "fs", "err", "trapno",
];
/// The names of the aarch64 registers in `Context::registers`, in order.
pub const AARCH64_REGISTERS: [&str; 34] = [
    "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14",
    "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27",
    "x28", "x29", "x30", "sp", "pc", "pstate",
];

/// Fixed-size identification of the file; validated before anything else is trusted.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// [`ENDIAN_MARK`].
    pub endian: u32,
    /// `size_of::<Header>()`.
    pub header_size: u32,
    /// `size_of::<Record>()`; the breadcrumb ring starts here.
    pub record_size: u32,
    /// Number of entries in the breadcrumb ring.
    pub ring_capacity: u32,
    /// `size_of::<Breadcrumb>()`.
    pub breadcrumb_size: u32,
    /// Total bytes of the file: `record_size + ring_capacity * breadcrumb_size`.
    pub file_size: u64,
    /// CRC-32 of the header with this field zeroed.
    pub checksum: u32,
    /// Bytes reserved after the breadcrumb ring for the crashing thread's stack copy.
    pub stack_capacity: u32,
}

/// One loaded object (the executable or a shared library) as seen at install.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Module {
    /// Lowest mapped address of the object (its load bias plus lowest segment address).
    pub start: u64,
    /// One past the highest mapped address.
    pub end: u64,
    /// The load bias: a frame's file-relative address is `ip - bias`.
    pub bias: u64,
    /// Length of the valid prefix of `build_id`.
    pub build_id_len: u32,
    /// Length of the valid prefix of `path`.
    pub path_len: u32,
    /// GNU build id from the object's `NT_GNU_BUILD_ID` note.
    pub build_id: [u8; BUILD_ID_LEN],
    /// Path of the object as the loader names it.
    pub path: [u8; PATH_LEN],
}

/// Written once at install; describes the process that armed the black box.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Session {
    /// Process id.
    pub pid: u32,
    /// Number of valid entries in `modules`.
    pub module_count: u32,
    /// Wall-clock start time, nanoseconds since the Unix epoch.
    pub started_at_ns: u64,
    /// Monotonic clock at start, to compute durations without trusting the wall clock.
    pub started_mono_ns: u64,
    /// Length of the valid prefix of `app`.
    pub app_len: u32,
    /// Length of the valid prefix of `exe`.
    pub exe_len: u32,
    /// Length of the valid prefix of `version`.
    pub version_len: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// Application name given to `Config::new`.
    pub app: [u8; APP_LEN],
    /// Path of the executable.
    pub exe: [u8; PATH_LEN],
    /// crashguard's version.
    pub version: [u8; VERSION_LEN],
    /// Objects loaded at install; index 0 is the executable when it could be found.
    pub modules: [Module; MAX_MODULES],
    /// CRC-32 of this section with this field zeroed.
    pub checksum: u32,
    /// Reserved, zero.
    pub reserved2: u32,
}

/// The last resource sample; rewritten by the samplers under a sequence lock.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Heartbeat {
    /// Sequence lock: odd while a writer is inside, incremented before and after.
    pub seq: u32,
    /// Non-zero once at least one sample was written.
    pub valid: u32,
    /// Wall clock of the sample, nanoseconds since the Unix epoch.
    pub sampled_at_ns: u64,
    /// Resident set size.
    pub rss_bytes: u64,
    /// Live heap bytes counted by `BudgetAllocator`, or `u64::MAX` when not installed.
    pub heap_bytes: u64,
    /// Threads in this process.
    pub threads: u64,
    /// Memory charged to the process's cgroup, or `u64::MAX` when unknown.
    pub cgroup_memory_current: u64,
    /// The cgroup's hard memory limit, or `u64::MAX` when unlimited or unknown.
    pub cgroup_memory_max: u64,
    /// The cgroup's `oom_kill` counter, or `u64::MAX` when unknown.
    pub oom_kill_count: u64,
    /// The memory budget in force, or `u64::MAX` when none.
    pub memory_budget: u64,
    /// The thread budget in force, or `u64::MAX` when none.
    pub thread_budget: u64,
}

/// A panic seen by the panic hook; kept even when a signal ends the process afterwards
/// (`panic = "abort"`), so that the SIGABRT report can carry the message.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PanicRecord {
    /// Sequence lock.
    pub seq: u32,
    /// Non-zero once a panic was recorded.
    pub valid: u32,
    /// Wall clock of the panic.
    pub at_ns: u64,
    /// Kernel thread id of the panicking thread.
    pub tid: u32,
    /// Length of the valid prefix of `message`.
    pub message_len: u32,
    /// Length of the valid prefix of `location`.
    pub location_len: u32,
    /// Number of valid entries in `frames`.
    pub frame_count: u32,
    /// Name of the panicking thread.
    pub thread_name: [u8; THREAD_NAME_LEN],
    /// The panic payload when it was a string.
    pub message: [u8; PANIC_MESSAGE_LEN],
    /// `file:line:column`.
    pub location: [u8; LOCATION_LEN],
    /// Raw instruction pointers of the panicking stack.
    pub frames: [u64; MAX_FRAMES],
}

/// What one shutdown hook did.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HookRecord {
    /// [`HookStatus::code`](crate::HookStatus::code): one of the `HOOK_*` constants.
    pub status: u32,
    /// Length of the valid prefix of `name`.
    pub name_len: u32,
    /// How long the hook ran (or had run when the deadline hit), in microseconds.
    pub duration_us: u64,
    /// The name given to `on_shutdown`.
    pub name: [u8; HOOK_NAME_LEN],
}

/// `HookRecord::status`: not started.
pub const HOOK_PENDING: u32 = 0;
/// `HookRecord::status`: returned normally.
pub const HOOK_OK: u32 = 1;
/// `HookRecord::status`: panicked.
pub const HOOK_PANICKED: u32 = 2;
/// `HookRecord::status`: its own timeout or the grace deadline passed while it ran.
pub const HOOK_TIMED_OUT: u32 = 3;
/// `HookRecord::status`: never started because the deadline had passed.
pub const HOOK_SKIPPED: u32 = 4;
/// `HookRecord::status`: still running when this record was last written.
pub const HOOK_RUNNING: u32 = 5;

/// The graceful-shutdown progress; written by the coordinator as it goes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ShutdownRecord {
    /// Sequence lock.
    pub seq: u32,
    /// Non-zero once a shutdown began.
    pub valid: u32,
    /// Wall clock when the shutdown was requested.
    pub requested_at_ns: u64,
    /// The termination signal that asked for it, or 0 when the application or a budget asked.
    pub signal: u32,
    /// `si_pid` of the sender, or 0.
    pub sender_pid: u32,
    /// `si_uid` of the sender, or `u32::MAX` when unknown.
    pub sender_uid: u32,
    /// [`ShutdownTrigger::code`](crate::ShutdownTrigger::code): one of the `REASON_*` constants.
    pub reason: u32,
    /// The grace period, in milliseconds.
    pub grace_ms: u64,
    /// Number of valid entries in `hooks`.
    pub hook_count: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// Hooks in the order they were registered.
    pub hooks: [HookRecord; MAX_HOOKS],
}

/// `ShutdownRecord::reason`: a termination signal.
pub const REASON_SIGNAL: u32 = 1;
/// `ShutdownRecord::reason`: the application called `request_shutdown` or `exit`.
pub const REASON_APP: u32 = 2;
/// `ShutdownRecord::reason`: the memory budget's hard threshold.
pub const REASON_MEMORY: u32 = 3;
/// `ShutdownRecord::reason`: the thread budget's hard threshold.
pub const REASON_THREADS: u32 = 4;
/// `ShutdownRecord::reason`: a panic under `PanicPolicy::ExitProcess`.
pub const REASON_PANIC: u32 = 5;

/// The most recent allocation the budget allocator refused (or the inner allocator failed).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AllocFailure {
    /// Sequence lock.
    pub seq: u32,
    /// Non-zero once a failure was recorded.
    pub valid: u32,
    /// Wall clock of the failure.
    pub at_ns: u64,
    /// Bytes requested.
    pub request_bytes: u64,
    /// Requested alignment.
    pub align: u64,
    /// Live heap bytes when the request came.
    pub live_bytes: u64,
    /// The hard budget, or `u64::MAX` when the inner allocator itself failed.
    pub budget_bytes: u64,
    /// Kernel thread id of the requesting thread.
    pub tid: u32,
    /// Non-zero when the budget refused; zero when the inner allocator returned null.
    pub by_budget: u32,
}

/// One group of a thread census: threads sharing a name once trailing digits are dropped.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CensusEntry {
    /// Threads in this group.
    pub count: u32,
    /// Length of the valid prefix of `name`.
    pub name_len: u32,
    /// The group's name, e.g. `worker-` for `worker-1`, `worker-2`, ...
    pub name: [u8; THREAD_NAME_LEN],
}

/// How the process ended; complete only when `Record::state` is [`STATE_ENDED`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct End {
    /// [`Outcome::code`](crate::Outcome::code) of how the run ended.
    pub outcome: u32,
    /// The exit status the process ends with: an exit code, or `128 + signal` when re-raised.
    pub exit_code: u32,
    /// Wall clock of the end.
    pub ended_at_ns: u64,
    /// Monotonic clock of the end.
    pub ended_mono_ns: u64,
    /// Signal number, or 0.
    pub signal: u32,
    /// `si_code`.
    pub si_code: i32,
    /// `si_addr` for fault signals.
    pub fault_address: u64,
    /// `si_pid` when the signal was sent by a process.
    pub sender_pid: u32,
    /// `si_uid` when the signal was sent by a process, else `u32::MAX`.
    pub sender_uid: u32,
    /// Kernel thread id of the thread that ended the process.
    pub tid: u32,
    /// Non-zero when the fault address lay in a thread's stack guard region.
    pub stack_overflow: u32,
    /// Name of that thread.
    pub thread_name: [u8; THREAD_NAME_LEN],
    /// Number of valid entries in `frames`.
    pub frame_count: u32,
    /// Number of valid entries in `census`.
    pub census_count: u32,
    /// Raw instruction pointers, innermost first.
    pub frames: [u64; MAX_FRAMES],
    /// Threads in the process at the end, or 0 when not counted.
    pub census_total: u32,
    /// Length of the valid prefix of `detail`.
    pub detail_len: u32,
    /// Threads grouped by name.
    pub census: [CensusEntry; MAX_CENSUS],
    /// A free-form line: which limit was hit, which hook overran, ...
    pub detail: [u8; DETAIL_LEN],
    /// CRC-32 of this section with this field zeroed.
    pub checksum: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// `End::exit_code` when the status is not known (an exit seen by an `atexit` handler, which
/// is not told the status).
pub const EXIT_CODE_UNKNOWN: u32 = u32::MAX;

/// The crashing thread's machine context, recorded by the fatal handler together with a copy of
/// its stack (stored in the `Header::stack_capacity` bytes after the ring): what a minidump
/// writer or an offline unwinder needs. Valid only when `checksum` matches, `tid` equals
/// `End::tid` and the `end` section is committed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Context {
    /// [`ARCH_X86_64`], [`ARCH_AARCH64`] or [`ARCH_NONE`].
    pub arch: u32,
    /// Number of valid entries in `registers`.
    pub register_count: u32,
    /// The general-purpose registers at the fault, in the arch's order.
    pub registers: [u64; MAX_REGISTERS],
    /// Kernel thread id of the thread whose context this is.
    pub tid: u32,
    /// Bytes of stack copied (at most `Header::stack_capacity`).
    pub stack_len: u32,
    /// Address of the first copied stack byte in the crashed process.
    pub stack_start: u64,
    /// The thread's known stack bounds `[low, high)`, or zeros when unknown.
    pub stack_low: u64,
    /// See `stack_low`.
    pub stack_high: u64,
    /// [`stack_sum`] of the copied bytes.
    pub stack_sum: u64,
    /// CRC-32 of this section with this field zeroed.
    pub checksum: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// A fast sum of the copied stack bytes (four multiply-xor lanes over 64-bit words, then the
/// tail), so that a torn copy is detected without a byte-at-a-time CRC over 32 KiB in the
/// handler.
///
/// Async-signal-safe.
pub fn stack_sum(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut lanes = [K, K.rotate_left(16), K.rotate_left(32), K.rotate_left(48)];
    let mut chunks = bytes.chunks_exact(32);
    for chunk in &mut chunks {
        for (lane, word) in lanes.iter_mut().zip(chunk.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            *lane = (*lane ^ u64::from_ne_bytes(w))
                .wrapping_mul(K)
                .rotate_left(29);
        }
    }
    let mut h = lanes
        .iter()
        .fold(bytes.len() as u64, |h, &l| (h ^ l).wrapping_mul(K));
    for &b in chunks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(K);
    }
    h ^ (h >> 32)
}

/// Entries in the thread-name table ([`Record::thread_names`]).
pub const MAX_THREAD_NAMES: usize = 64;
/// Bytes of a full thread name kept in the thread-name table.
pub const FULL_THREAD_NAME_LEN: usize = 64;

/// One entry of the thread-name table: the full name of a live thread that crashguard spawned
/// (the kernel keeps only 15 bytes of a name). Written by that thread itself when it starts and
/// cleared when its closure ends; never written by a signal handler.
///
/// A writer claims a free entry by storing its thread id into `tid` (compare-and-swap from 0),
/// stores an odd `seq`, the body and [`thread_name_check`], then the next (even) `seq`. Freeing
/// stores an odd `seq`, then 0 into `tid`. A reader uses an entry only when `seq` is even and
/// non-zero, `tid` is the thread it looks for and `check` matches: an entry torn by a crash
/// mid-write, or claimed by another thread since, matches no check.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ThreadName {
    /// Odd while the owner writes or frees the entry; even once the body is complete.
    pub seq: u32,
    /// Kernel thread id of the owner, or 0 for a free entry.
    pub tid: u32,
    /// Length of the valid prefix of `name`.
    pub len: u32,
    /// [`thread_name_check`] of the entry.
    pub check: u32,
    /// The thread's name, cut at a UTF-8 boundary.
    pub name: [u8; FULL_THREAD_NAME_LEN],
}

/// The integrity word of a [`ThreadName`] entry: CRC-32 of its final (even) `seq`, `tid` and
/// `len` (native-endian) followed by `name[..len]`. Part of the file format.
pub fn thread_name_check(seq: u32, tid: u32, len: u32, name: &[u8]) -> u32 {
    let mut c = crate::crc::update(0, &seq.to_ne_bytes());
    c = crate::crc::update(c, &tid.to_ne_bytes());
    c = crate::crc::update(c, &len.to_ne_bytes());
    let n = (len as usize).min(name.len());
    crate::crc::update(c, name.get(..n).unwrap_or(&[]))
}

/// The whole fixed part of a black-box file.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Record {
    /// Identification; see [`Header`].
    pub header: Header,
    /// [`STATE_EMPTY`], [`STATE_RUNNING`] or [`STATE_ENDED`]; stored last.
    pub state: u32,
    /// Kernel thread id of the party that claimed the `end` section; first claim wins.
    pub claim: u32,
    /// See [`Session`].
    pub session: Session,
    /// See [`Heartbeat`].
    pub heartbeat: Heartbeat,
    /// See [`PanicRecord`].
    pub panic: PanicRecord,
    /// See [`ShutdownRecord`].
    pub shutdown: ShutdownRecord,
    /// See [`AllocFailure`].
    pub alloc: AllocFailure,
    /// See [`End`].
    pub end: End,
    /// See [`Context`].
    pub context: Context,
    /// A correction of the committed `end`'s outcome and exit status, made with one atomic
    /// store after the commit (see [`amend_word`]): the status a chained handler really ended
    /// the process with, or the status `exit` was called with after a clean end was recorded.
    /// 0 when there is none; a value that fails its own check is ignored.
    pub amended: u64,
    /// See [`ThreadName`].
    pub thread_names: [ThreadName; MAX_THREAD_NAMES],
}

/// One breadcrumb in the ring that follows the [`Record`].
///
/// A writer stores `2n + 1` into `seq`, then the body, then [`breadcrumb_hash`] of the finished
/// entry into `hash`, then `2n + 2` into `seq`. A reader accepts an entry only when `seq` is even
/// and non-zero and `hash` matches what it copied: a body that two writers wrote over each other
/// (a writer preempted for a whole lap of the ring) or that changed while a reader copied it
/// matches neither writer's hash. No read-modify-write is needed, so a breadcrumb costs a few
/// plain stores.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Breadcrumb {
    /// `2 * n + 1` while the writer of the n-th breadcrumb is inside, `2 * n + 2` when done;
    /// 0 for a slot never written.
    pub seq: u64,
    /// Wall clock as of the last kernel tick, nanoseconds since the Unix epoch.
    pub at_ns: u64,
    /// Kernel thread id of the writer.
    pub tid: u32,
    /// Length of the valid prefix of `text`.
    pub len: u32,
    /// The message, truncated at a UTF-8 boundary.
    pub text: [u8; BREADCRUMB_TEXT_LEN],
    /// [`breadcrumb_hash`] of `seq` (the final, even value) and the body.
    pub hash: u64,
}

/// The integrity word of a breadcrumb: every 64-bit word of the entry (its final sequence
/// word, time, thread and length, and `text[..len]` zero-padded to twelve words) multiplied by
/// its own odd constant, all XORed together, then mixed once. The products are independent (no
/// chain of multiplications), so it costs a few nanoseconds; a body whose words come from two
/// writers differs from both writers' hashes unless the products happen to cancel. Bytes of
/// `text` beyond `len` take no part (the writer does not clear them). Part of the file format.
///
/// `text` longer than [`BREADCRUMB_TEXT_LEN`] is hashed as if cut there.
///
/// Async-signal-safe.
#[inline]
pub fn breadcrumb_hash(seq: u64, at_ns: u64, tid: u32, len: u32, text: &[u8]) -> u64 {
    const K: [u64; 3 + BREADCRUMB_TEXT_LEN / 8] = [
        0x9E37_79B9_7F4A_7C15,
        0xC2B2_AE3D_27D4_EB4F,
        0x1656_67B1_9E37_79F9,
        0x27D4_EB2F_1656_67C5,
        0x85EB_CA77_C2B2_AE63,
        0xFF51_AFD7_ED55_8CCD,
        0xC4CE_B9FE_1A85_EC53,
        0x8CB9_2BA7_2F3D_8DD7,
        0xD6E8_FEB8_6659_FD93,
        0xA076_1D64_78BD_642F,
        0xE703_7ED1_A0B4_28DB,
        0x8EBC_6AF0_9C88_C6E3,
        0x5899_65CC_7537_4CC3,
        0x1D8E_4E27_C47D_124F,
        0xBF58_476D_1CE4_E5B9,
    ];
    let text = text.get(..BREADCRUMB_TEXT_LEN).unwrap_or(text);
    let mut h = seq.wrapping_mul(K[0])
        ^ at_ns.wrapping_mul(K[1])
        ^ (u64::from(tid) | u64::from(len) << 32).wrapping_mul(K[2]);
    let mut chunks = text.chunks_exact(8);
    let mut k = K[3..].iter();
    for (chunk, k) in (&mut chunks).zip(&mut k) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        h ^= u64::from_ne_bytes(b).wrapping_mul(*k);
    }
    // The last partial word, as if zero-padded, built in a register rather than through a
    // buffer (a load that straddles narrower stores cannot be forwarded and stalls).
    let rest = chunks.remainder();
    if let Some(k) = k.next().filter(|_| !rest.is_empty()) {
        let mut w = 0u64;
        for (i, &b) in rest.iter().enumerate() {
            let shift = if cfg!(target_endian = "little") {
                8 * i
            } else {
                56 - 8 * i
            };
            w |= u64::from(b) << shift;
        }
        h ^= w.wrapping_mul(*k);
    }
    let h = (h ^ (h >> 32)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    h ^ (h >> 32)
}

/// The tag in bits 24..32 of an [`amend_word`]'s low half.
const AMEND_TAG: u32 = 0xA5;

/// `Record::amended` for `outcome` (an `Outcome::code`) and exit status `code`: the low 32 bits
/// hold the outcome (8 bits), the status (16 bits, `0xffff` for [`EXIT_CODE_UNKNOWN`]) and a tag,
/// the high 32 bits their complement, so one 64-bit store amends both and a torn or corrupted
/// word is recognised.
///
/// Async-signal-safe.
pub const fn amend_word(outcome: u32, code: u32) -> u64 {
    let code = if code == EXIT_CODE_UNKNOWN {
        0xffff
    } else {
        code & 0xffff
    };
    let low = (outcome & 0xff) | code << 8 | AMEND_TAG << 24;
    (low as u64) | ((!low as u64) << 32)
}

/// The outcome code and exit status an [`amend_word`] holds, if it is one.
///
/// Async-signal-safe.
pub const fn amended(word: u64) -> Option<(u32, u32)> {
    let low = word as u32;
    let high = (word >> 32) as u32;
    if word == 0 || high != !low || low >> 24 != AMEND_TAG {
        return None;
    }
    let code = (low >> 8) & 0xffff;
    Some((
        low & 0xff,
        if code == 0xffff {
            EXIT_CODE_UNKNOWN
        } else {
            code
        },
    ))
}

/// The file size for a ring of `capacity` breadcrumbs and `stack_capacity` bytes of stack.
pub const fn file_size(capacity: u32, stack_capacity: u32) -> usize {
    size_of::<Record>() + capacity as usize * size_of::<Breadcrumb>() + stack_capacity as usize
}

/// Where the stack bytes start: right after the ring.
pub const fn stack_offset(capacity: u32) -> usize {
    size_of::<Record>() + capacity as usize * size_of::<Breadcrumb>()
}

// The layout is part of the file format: make accidental changes a compile error.
const _: () = assert!(size_of::<Header>() == 48);
const _: () = assert!(size_of::<Breadcrumb>() == 128);
const _: () = assert!(size_of::<Record>().is_multiple_of(8));
const _: () = assert!(file_size(DEFAULT_RING_CAPACITY, DEFAULT_STACK_CAPACITY) <= 256 * 1024);
const _: () = assert!(size_of::<Context>().is_multiple_of(8));
const _: () = assert!(std::mem::offset_of!(Record, amended).is_multiple_of(8));
const _: () = assert!(size_of::<ThreadName>() == 80);
// The sequence-locked sections start with their sequence word: the writer copies everything
// after it and leaves the word itself to atomic operations.
const _: () = assert!(std::mem::offset_of!(Heartbeat, seq) == 0);
const _: () = assert!(std::mem::offset_of!(PanicRecord, seq) == 0);
const _: () = assert!(std::mem::offset_of!(ShutdownRecord, seq) == 0);
const _: () = assert!(std::mem::offset_of!(AllocFailure, seq) == 0);
