//! Creating the black box at install: the report directory, a slot that no other live process
//! holds, the previous contents of that slot, and the fresh mapping.

use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::layout::*;
use crate::report::Report;
use crate::writer::BlackBox;
use crate::{DecodeError, assafe, crc, sys};

/// How many processes may share one report directory and application name.
pub const MAX_SLOTS: u32 = 16;

/// Options for [`open`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Application name; part of the file names, so restricted to `[A-Za-z0-9._-]`.
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
            name: "app name",
            reason: format!(
                "{app:?} must be 1-{APP_LEN} characters of [A-Za-z0-9._-], not starting with '.'"
            ),
        })
    }
}

/// Creates `dir` (mode 0700) if needed and checks that it is a real, writable directory.
pub fn ensure_private_dir(dir: &Path) -> Result<(), Error> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(Error::Symlink {
                path: dir.to_owned(),
            });
        }
        Ok(m) if !m.is_dir() => {
            return Err(Error::NotADirectory {
                path: dir.to_owned(),
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| Error::ReportDir {
                    path: dir.to_owned(),
                    source,
                })?;
        }
        Err(source) => {
            return Err(Error::ReportDir {
                path: dir.to_owned(),
                source,
            });
        }
    }
    // Tighten a directory someone else created with a wider mode; failure (not the owner) is
    // caught by the write probe below only if it also cannot be written.
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    Ok(())
}

/// A locked slot whose previous contents were read but not yet overwritten. Keeping the two
/// steps apart lets the caller store the previous run's report *before* the evidence in the
/// slot is reset, so a failure in between loses nothing.
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

    /// Resets the slot's file to a fresh, running black box and maps it.
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
        sys::set_len(&fd, len as u64).map_err(err)?;
        sys::reserve(&fd, len as u64).map_err(err)?;
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

/// Takes a free slot in `<dir>/blackbox/` (creating the directories, mode 0700) and reads what
/// it held, without changing it yet.
pub fn open_slot(dir: &Path, opts: &Options) -> Result<Slot, Error> {
    validate_app(&opts.app)?;
    if !(MIN_RING_CAPACITY..=MAX_RING_CAPACITY).contains(&opts.ring_capacity) {
        return Err(Error::InvalidOption {
            name: "breadcrumb capacity",
            reason: format!(
                "{} is outside {MIN_RING_CAPACITY}..={MAX_RING_CAPACITY}",
                opts.ring_capacity
            ),
        });
    }
    if opts.stack_capacity > MAX_STACK_CAPACITY || !opts.stack_capacity.is_multiple_of(16) {
        return Err(Error::InvalidOption {
            name: "crash stack capacity",
            reason: format!(
                "{} must be a multiple of 16 of at most {MAX_STACK_CAPACITY} bytes",
                opts.stack_capacity
            ),
        });
    }
    ensure_private_dir(dir)?;
    // A dropped guard's box keeps its slot until the process ends or a new one is opened.
    crate::writer::release_retired();
    let boxes = dir.join("blackbox");
    ensure_private_dir(&boxes)?;

    for slot in 0..MAX_SLOTS {
        let path = boxes.join(format!("{}.{slot}.box", opts.app));
        let fd = match sys::open_private(&path) {
            Ok(fd) => fd,
            Err(e) if sys::is_symlink_refusal(&e) => return Err(Error::Symlink { path }),
            Err(source) => return Err(Error::File { path, source }),
        };
        let locked = sys::try_lock(&fd).map_err(|source| Error::File {
            path: path.clone(),
            source,
        })?;
        if !locked {
            continue;
        }
        let (previous, previous_raw) = read_previous(&fd, &path)?;
        return Ok(Slot {
            fd,
            path,
            slot,
            opts: opts.clone(),
            previous,
            previous_raw,
        });
    }
    Err(Error::NoFreeSlot {
        path: boxes,
        slots: MAX_SLOTS,
    })
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

fn read_previous(fd: &std::os::fd::OwnedFd, path: &Path) -> Result<Previous, Error> {
    let mut file = fs::File::from(fd.try_clone().map_err(|source| Error::File {
        path: path.to_owned(),
        source,
    })?);
    // A black box is well under 1 MiB; refuse to read more from a file someone grew.
    let mut bytes = Vec::new();
    (&mut file)
        .take(4 << 20)
        .read_to_end(&mut bytes)
        .map_err(|source| Error::File {
            path: path.to_owned(),
            source,
        })?;
    if bytes.is_empty() {
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
