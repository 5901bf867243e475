//! Creating the black box at install: the report directory, a slot that no other live process
//! holds, the previous contents of that slot, and the fresh mapping.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::dir::{BLACKBOX, ReportDir, SubDir};
use crate::error::{BoxOption, Error};
use crate::files::open_private_at;
use crate::layout::*;
use crate::report::Report;
use crate::writer::BlackBox;
use crate::{DecodeError, assafe, crc, sys};

/// How many processes may share one report directory and application name.
pub const MAX_SLOTS: u32 = 16;

/// Options for [`open`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Application name; part of the file names, so restricted to `[A-Za-z0-9._-]`, not
    /// starting with `.`.
    pub app: String,
    /// Breadcrumbs kept in the ring.
    pub ring_capacity: u32,
    /// Bytes of the crashing thread's stack the fatal handler may copy (0 to copy none; at most
    /// [`MAX_STACK_CAPACITY`]); [`DEFAULT_STACK_CAPACITY`] is 32 KiB.
    pub stack_capacity: u32,
}

impl Options {
    /// Options for `app` with the default ring and stack capacities.
    pub fn new(app: impl Into<String>) -> Options {
        Options {
            app: app.into(),
            ring_capacity: DEFAULT_RING_CAPACITY,
            stack_capacity: DEFAULT_STACK_CAPACITY,
        }
    }
}

/// What [`open`] found and made.
#[derive(Debug)]
pub struct Opened {
    /// The fresh black box, not yet armed.
    pub blackbox: BlackBox,
    /// What the slot held from an earlier run: a report, a decoding error for a corrupt file, or
    /// `None` for a fresh slot or one the previous run closed cleanly without a report worth
    /// keeping (it is still returned: callers decide).
    pub previous: Option<Result<Report, DecodeError>>,
    /// The slot's raw bytes when they could not be decoded, so the caller can keep them.
    pub previous_raw: Option<Vec<u8>>,
}

/// Validates an application name for use in file names.
pub fn validate_app(app: &str) -> Result<(), Error> {
    let ok = !app.is_empty()
        && app.len() <= APP_LEN
        && app
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !app.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidOption {
            name: BoxOption::AppName,
            reason: format!(
                "{app:?} must be 1-{APP_LEN} characters of [A-Za-z0-9._-], not starting with '.'"
            ),
        })
    }
}

/// Creates `dir` (mode 0700) if needed and checks that it is a private directory: see
/// [`ReportDir::open`]. A directory crashguard did not create is never chmodded.
pub fn ensure_private_dir(dir: &Path) -> Result<(), Error> {
    ReportDir::open(dir).map(drop)
}

/// A locked slot whose previous contents were read but not yet overwritten. Keeping the two
/// steps apart lets the caller store the previous run's report *before* the evidence in the
/// slot is reset, so a failure in between loses nothing. Dropping a slot releases its lock
/// and leaves the file as it was.
#[derive(Debug)]
pub struct Slot {
    fd: OwnedFd,
    path: PathBuf,
    slot: u32,
    opts: Options,
    /// What the slot held from an earlier run; see [`Opened::previous`].
    pub previous: Option<Result<Report, DecodeError>>,
    /// The raw bytes when they could not be decoded.
    pub previous_raw: Option<Vec<u8>>,
}

impl Slot {
    /// Path of the slot's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The slot's number in the report directory.
    pub fn number(&self) -> u32 {
        self.slot
    }

    /// Empties the slot's file (its record has been read and dealt with) and releases it. The
    /// next run finds a fresh slot.
    pub fn clear(self) -> Result<(), Error> {
        sys::set_len(&self.fd, 0).map_err(|source| Error::File {
            path: self.path.clone(),
            source,
        })
    }

    /// Resets the slot's file to a fresh, running black box and maps it.
    ///
    /// When the file cannot be given its full size (a full disk), it is emptied again before
    /// the error is returned, so the next run finds a fresh slot rather than a zero-filled
    /// file it would call corrupt.
    pub fn reset(self) -> Result<BlackBox, Error> {
        let Slot {
            fd,
            path,
            slot,
            opts,
            ..
        } = self;
        let err = |source| Error::File {
            path: path.clone(),
            source,
        };
        let len = file_size(opts.ring_capacity, opts.stack_capacity);
        // The file keeps its blocks from run to run: truncating it to zero and growing it again
        // frees and reallocates them through the journal, which cost a third of a millisecond
        // at every start. It is sized (a file of another capacity, or a new one) and its
        // blocks reserved — a write from a crash handler into a hole of a sparse file on a full
        // disk would raise SIGBUS inside the handler — and the old record is zeroed through
        // the mapping instead.
        if let Err(e) = sys::set_len(&fd, len as u64).and_then(|()| sys::reserve(&fd, len as u64)) {
            let _ = sys::set_len(&fd, 0);
            return Err(err(e));
        }
        let base = sys::map_shared(&fd, len).map_err(err)?;
        // SAFETY: `base` maps `len` writable bytes of the file, and nobody else maps them: the
        // slot's lock is ours.
        unsafe { zero_dirty_pages(base, len) };
        // SAFETY: as above; every byte is now zero.
        unsafe { initialise(base, &opts) };
        // SAFETY: as above; the mapping is large enough for the record and its ring, and the
        // box unmaps it only if it is dropped without being armed.
        Ok(unsafe {
            BlackBox::from_mapping(
                base,
                opts.ring_capacity,
                opts.stack_capacity,
                path,
                slot,
                fd,
            )
        })
    }
}

/// Checks the options before any file is touched.
fn validate(opts: &Options) -> Result<(), Error> {
    validate_app(&opts.app)?;
    if !(MIN_RING_CAPACITY..=MAX_RING_CAPACITY).contains(&opts.ring_capacity) {
        return Err(Error::InvalidOption {
            name: BoxOption::BreadcrumbCapacity,
            reason: format!(
                "{} is outside {MIN_RING_CAPACITY}..={MAX_RING_CAPACITY}",
                opts.ring_capacity
            ),
        });
    }
    if opts.stack_capacity > MAX_STACK_CAPACITY || !opts.stack_capacity.is_multiple_of(16) {
        return Err(Error::InvalidOption {
            name: BoxOption::CrashStackCapacity,
            reason: format!(
                "{} must be a multiple of 16 of at most {MAX_STACK_CAPACITY} bytes",
                opts.stack_capacity
            ),
        });
    }
    Ok(())
}

/// The file name of slot `n` of `app`.
fn slot_name(app: &str, n: u32) -> String {
    format!("{app}.{n}.box")
}

impl ReportDir {
    /// Locks every existing slot of the app that no live process holds, and reads what each
    /// held, without changing anything yet. A crash recorded in any slot (slot 1 of a run that
    /// had a sibling, a slot a forked helper kept busy) is found by the next run of the app,
    /// whichever slot that run ends up taking. Files under a slot's name that are not private
    /// regular files (links, FIFOs, files of another user) are removed, never read.
    pub fn collect_slots(&self, opts: &Options) -> Result<Vec<Slot>, Error> {
        validate(opts)?;
        // A dropped guard's box keeps its slot until the process ends or a new one is opened.
        crate::writer::release_retired();
        let Some(boxes) = self.sub(BLACKBOX, false)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for n in 0..MAX_SLOTS {
            if let Some(slot) = lock_slot(&boxes, opts, n, false)? {
                out.push(slot);
            }
        }
        Ok(out)
    }

    /// Takes the first slot of the app whose number is not in `skip` and that no live process
    /// holds, creating its file (mode 0600) if needed, and reads what it held.
    pub fn take_slot(&self, opts: &Options, skip: &[u32]) -> Result<Slot, Error> {
        validate(opts)?;
        // A dropped guard's box keeps its slot until the process ends or a new one is opened.
        crate::writer::release_retired();
        let boxes = self
            .sub(BLACKBOX, true)?
            .ok_or_else(|| Error::NotADirectory {
                path: self.path().join("blackbox"),
            })?;
        for n in (0..MAX_SLOTS).filter(|n| !skip.contains(n)) {
            if let Some(slot) = lock_slot(&boxes, opts, n, true)? {
                return Ok(slot);
            }
        }
        Err(Error::NoFreeSlot {
            path: boxes.path,
            slots: MAX_SLOTS,
        })
    }
}

/// Opens slot `n` (creating it when `create` is set) and locks it; `None` when the file does
/// not exist (and is not to be created) or a live process holds it.
fn lock_slot(boxes: &SubDir, opts: &Options, n: u32, create: bool) -> Result<Option<Slot>, Error> {
    let name = slot_name(&opts.app, n);
    let path = boxes.join(&name);
    let Some(fd) = open_private_at(boxes, &name, create)? else {
        return Ok(None);
    };
    let locked = sys::try_lock(&fd).map_err(|source| Error::File {
        path: path.clone(),
        source,
    })?;
    if !locked {
        return Ok(None);
    }
    let (previous, previous_raw) = read_previous(&fd, &path)?;
    Ok(Some(Slot {
        fd,
        path,
        slot: n,
        opts: opts.clone(),
        previous,
        previous_raw,
    }))
}

/// Takes a free slot in `<dir>/blackbox/` (creating the directories, mode 0700) and reads what
/// it held, without changing it yet.
pub fn open_slot(dir: &Path, opts: &Options) -> Result<Slot, Error> {
    validate(opts)?;
    ReportDir::open(dir)?.take_slot(opts, &[])
}

/// Takes a free slot, reads what it held, and resets it to a fresh black box: [`open_slot`]
/// followed by [`Slot::reset`].
pub fn open(dir: &Path, opts: &Options) -> Result<Opened, Error> {
    let mut slot = open_slot(dir, opts)?;
    let previous = slot.previous.take();
    let previous_raw = slot.previous_raw.take();
    let blackbox = slot.reset()?;
    Ok(Opened {
        blackbox,
        previous,
        previous_raw,
    })
}

type Previous = (Option<Result<Report, DecodeError>>, Option<Vec<u8>>);

/// A black box is well under 1 MiB; nothing more is read from a file someone grew.
const MAX_BOX_READ: u64 = 4 << 20;

fn read_previous(fd: &OwnedFd, path: &Path) -> Result<Previous, Error> {
    let bytes = sys::fs::read_fd(fd, MAX_BOX_READ).map_err(|source| Error::File {
        path: path.to_owned(),
        source,
    })?;
    // An empty file, or one that was sized but never written (a first install that ran out of
    // space half-way, before this version emptied such files), is a fresh slot, not a
    // corrupt one.
    if bytes.iter().all(|&b| b == 0) {
        return Ok((None, None));
    }
    let decoded = crate::decode(&bytes);
    let raw = decoded.is_err().then_some(bytes);
    Ok((Some(decoded), raw))
}

/// Zeroes the pages of a mapping that hold anything but zeros, leaving all-zero pages
/// untouched (and so not dirtied).
///
/// # Safety
///
/// `base` must point to `len` writable bytes that no one else accesses during the call.
unsafe fn zero_dirty_pages(base: *mut u8, len: usize) {
    // SAFETY: the caller guarantees `len` valid, exclusively held bytes at `base`.
    let bytes = unsafe { std::slice::from_raw_parts_mut(base, len) };
    for page in bytes.chunks_mut(4096) {
        if page.iter().any(|&b| b != 0) {
            page.fill(0);
        }
    }
}

/// Writes the header and session, then arms the state word.
///
/// # Safety
///
/// `base` must point to a zeroed, writable mapping of
/// `file_size(opts.ring_capacity, opts.stack_capacity)` bytes.
unsafe fn initialise(base: *mut u8, opts: &Options) {
    let rec = base.cast::<Record>();
    // SAFETY: the caller guarantees the mapping holds a whole Record, and nobody else sees it yet.
    let r = unsafe { &mut *rec };
    r.header = Header {
        magic: MAGIC,
        version: FORMAT_VERSION,
        endian: ENDIAN_MARK,
        header_size: size_of::<Header>() as u32,
        record_size: size_of::<Record>() as u32,
        ring_capacity: opts.ring_capacity,
        breadcrumb_size: size_of::<Breadcrumb>() as u32,
        file_size: file_size(opts.ring_capacity, opts.stack_capacity) as u64,
        checksum: 0,
        stack_capacity: opts.stack_capacity,
    };
    r.header.checksum = checksum_of(&r.header);
    let s = &mut r.session;
    s.pid = std::process::id();
    s.started_at_ns = assafe::now_realtime_ns();
    s.started_mono_ns = assafe::now_monotonic_ns();
    s.app_len = assafe::copy_bytes(&mut s.app, opts.app.as_bytes());
    let exe = std::env::current_exe()
        .map(PathBuf::into_os_string)
        .unwrap_or_default();
    let exe = std::os::unix::ffi::OsStrExt::as_bytes(exe.as_os_str());
    s.exe_len = assafe::copy_bytes(&mut s.exe, exe);
    s.version_len = assafe::copy_bytes(&mut s.version, env!("CARGO_PKG_VERSION").as_bytes());
    s.module_count = crate::modules::capture(&mut s.modules, exe);
    s.checksum = 0;
    s.checksum = checksum_of(s);
    // Heartbeat fields that mean "unknown" are all-ones, not zero.
    let h = &mut r.heartbeat;
    h.heap_bytes = u64::MAX;
    h.cgroup_memory_current = u64::MAX;
    h.cgroup_memory_max = u64::MAX;
    h.oom_kill_count = u64::MAX;
    h.memory_budget = u64::MAX;
    h.thread_budget = u64::MAX;
    r.shutdown.sender_uid = u32::MAX;
    r.end.sender_uid = u32::MAX;
    // Dirty the stack area's pages now, so that the fatal handler's copy into them does not
    // take page faults (each one a trip into the file system) in the middle of a crash.
    let stack = stack_offset(opts.ring_capacity);
    for off in (0..opts.stack_capacity as usize).step_by(4096) {
        // SAFETY: `stack + off` lies inside the mapping of file_size(..) bytes; volatile so the
        // store of a zero over a zero is not elided.
        unsafe { base.add(stack + off).write_volatile(0) };
    }
    std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
    r.state = STATE_RUNNING;
}

fn checksum_of<T>(v: &T) -> u32 {
    // The checksum field is zero when this is called.
    // SAFETY: `v` lives in the zero-filled mapping, so all its bytes (padding included) are
    // initialised; the slice covers exactly the value.
    let bytes = unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) };
    crc::crc32(bytes)
}
