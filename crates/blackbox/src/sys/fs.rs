//! File operations on the report directory, all relative to a directory descriptor.
//!
//! The report directory is a trust boundary (see `docs/security.md`): it is opened once, checked
//! with `fstat`, and every later operation names a single component relative to its descriptor,
//! so that swapping a directory for a symbolic link after the check changes nothing. Every open
//! carries `O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC`: a symbolic link is refused, a FIFO or a device
//! cannot block the caller, and no descriptor leaks into a child program.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// The flags every open in the report directory carries.
pub(crate) const SAFE_OPEN_FLAGS: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;

/// What kind of file an `fstat` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
    /// A character or block device.
    Device,
}

impl FileKind {
    /// The kind in words, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            FileKind::Regular => "a regular file",
            FileKind::Directory => "a directory",
            FileKind::Symlink => "a symbolic link",
            FileKind::Fifo => "a named pipe (FIFO)",
            FileKind::Socket => "a socket",
            FileKind::Device => "a device",
        }
    }
}

/// The facts `fstat` gives that the checks use.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stat {
    pub(crate) kind: FileKind,
    pub(crate) uid: u32,
    /// Permission bits (`0o7777`).
    pub(crate) mode: u32,
    pub(crate) nlink: u64,
    pub(crate) size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub(crate) mtime_ns: i128,
}

// The field types differ between targets (`st_nlink` is 32 bits on aarch64, `st_mode` 16 bits
// on some BSDs), so the casts are needed somewhere even where they are no-ops.
#[allow(clippy::unnecessary_cast)]
fn stat_of(st: &libc::stat) -> Stat {
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => FileKind::Regular,
        libc::S_IFDIR => FileKind::Directory,
        libc::S_IFLNK => FileKind::Symlink,
        libc::S_IFIFO => FileKind::Fifo,
        libc::S_IFSOCK => FileKind::Socket,
        _ => FileKind::Device,
    };
    Stat {
        kind,
        uid: st.st_uid,
        mode: st.st_mode as u32 & 0o7777,
        nlink: st.st_nlink as u64,
        size: st.st_size.max(0) as u64,
        mtime_ns: st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128,
    }
}

pub(crate) fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The effective uid: the owner every file in the report directory must have.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Opens `path` as a directory; its last component must not be a symbolic link.
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = cstring(path.as_os_str().as_bytes())?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | SAFE_OPEN_FLAGS;
    // SAFETY: `c` is a valid NUL-terminated path.
    owned(unsafe { libc::open(c.as_ptr(), flags) })
}

/// Opens the directory `name` inside `dir`, refusing a symbolic link.
pub(crate) fn open_dir_at(dir: &OwnedFd, name: &CStr) -> io::Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | SAFE_OPEN_FLAGS;
    // SAFETY: `name` is NUL-terminated; `dir` is an open descriptor.
    owned(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) })
}

/// Creates the directory `name` inside `dir` with `mode`. `Ok(false)` when it exists already.
pub(crate) fn mkdir_at(dir: &OwnedFd, name: &CStr, mode: u32) -> io::Result<bool> {
    // SAFETY: `name` is NUL-terminated; `dir` is an open descriptor.
    let rc = unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) };
    match check(rc) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Opens `name` inside `dir` with `flags` (plus [`SAFE_OPEN_FLAGS`]); `mode` for a new file.
pub(crate) fn open_at(dir: &OwnedFd, name: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated; `dir` is an open descriptor.
    owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | SAFE_OPEN_FLAGS,
            mode as libc::c_uint,
        )
    })
}

/// Opens `path` for reading without following a last-component symbolic link into a FIFO and
/// without blocking: `O_NONBLOCK` makes opening a FIFO or a device return at once; the caller
/// then checks the kind with [`fstat`].
pub(crate) fn open_read_nonblocking(path: &Path) -> io::Result<OwnedFd> {
    let c = cstring(path.as_os_str().as_bytes())?;
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC;
    // SAFETY: `c` is a valid NUL-terminated path.
    owned(unsafe { libc::open(c.as_ptr(), flags) })
}

/// Opens `path` for writing, creating it with mode 0600 if missing; never through a symbolic
/// link, never blocking.
pub(crate) fn open_write_create(path: &Path) -> io::Result<OwnedFd> {
    let c = cstring(path.as_os_str().as_bytes())?;
    let flags = libc::O_WRONLY | libc::O_CREAT | SAFE_OPEN_FLAGS;
    // SAFETY: `c` is a valid NUL-terminated path.
    owned(unsafe { libc::open(c.as_ptr(), flags, 0o600 as libc::c_uint) })
}

/// `fstat` of an open descriptor.
pub(crate) fn fstat(fd: &OwnedFd) -> io::Result<Stat> {
    // SAFETY: a zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one stat through a valid pointer.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(stat_of(&st))
}

/// `fstatat` of `name` inside `dir`, not following a symbolic link; never opens the file, so
/// it cannot block on a FIFO.
pub(crate) fn stat_at(dir: &OwnedFd, name: &CStr) -> io::Result<Stat> {
    // SAFETY: a zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated and `st` is a valid out-parameter.
    check(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(stat_of(&st))
}

/// Sets the permission bits of an open file.
pub(crate) fn fchmod(fd: &OwnedFd, mode: u32) -> io::Result<()> {
    // SAFETY: fchmod on a descriptor we own.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })
}

/// Renames `from` to `to`, both inside `dir`.
pub(crate) fn rename_at(dir: &OwnedFd, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: both names are NUL-terminated; `dir` is an open descriptor.
    check(unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) })
}

/// Removes the file `name` inside `dir` (never a directory, never following a link).
pub(crate) fn unlink_at(dir: &OwnedFd, name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated; `dir` is an open descriptor.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) })
}

/// Flushes a file or directory to stable storage.
pub(crate) fn fsync(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fsync on a descriptor we own.
    check(unsafe { libc::fsync(fd.as_raw_fd()) })
}

/// Writes all of `bytes` at the file's current offset.
pub(crate) fn write_fd(fd: &OwnedFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: write reads `bytes.len()` bytes from a valid slice.
        let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
        }
        bytes = bytes.get(n as usize..).unwrap_or(&[]);
    }
    Ok(())
}

/// Reads at most `max` bytes from the start of an open file (`pread`, so the offset does not
/// matter).
pub(crate) fn read_fd(fd: &OwnedFd, max: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    while (out.len() as u64) < max {
        let want = buf.len().min((max - out.len() as u64) as usize);
        // SAFETY: pread writes at most `want` bytes into `buf`, which holds at least that many.
        let n = unsafe {
            libc::pread(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                want,
                out.len() as libc::off_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        out.extend_from_slice(buf.get(..n as usize).unwrap_or(&[]));
    }
    Ok(out)
}

/// The entries of an open directory, streamed: one `readdir` at a time, nothing collected.
pub(crate) struct DirEntries {
    dir: std::ptr::NonNull<libc::DIR>,
}

impl DirEntries {
    /// Starts reading `dir` from its beginning (through a duplicate, so `dir` stays usable).
    pub(crate) fn new(dir: &OwnedFd) -> io::Result<DirEntries> {
        // SAFETY: fcntl duplicates a descriptor we own.
        let dup = owned(unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
        let raw = std::os::fd::IntoRawFd::into_raw_fd(dup);
        // SAFETY: fdopendir takes ownership of `raw` on success.
        let d = unsafe { libc::fdopendir(raw) };
        let Some(d) = std::ptr::NonNull::new(d) else {
            let e = io::Error::last_os_error();
            // SAFETY: on failure `raw` is still ours to close.
            unsafe { libc::close(raw) };
            return Err(e);
        };
        // The duplicate shares the directory offset with `dir`: start from the beginning.
        // SAFETY: `d` is a valid DIR stream.
        unsafe { libc::rewinddir(d.as_ptr()) };
        Ok(DirEntries { dir: d })
    }
}

impl Iterator for DirEntries {
    type Item = OsString;

    fn next(&mut self) -> Option<OsString> {
        loop {
            // SAFETY: `dir` is a valid DIR stream used by this value alone.
            let ent = unsafe { libc::readdir(self.dir.as_ptr()) };
            if ent.is_null() {
                return None;
            }
            // SAFETY: readdir returned a valid dirent whose d_name is NUL-terminated.
            let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
            let bytes = name.to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            return Some(OsString::from_vec(bytes.to_vec()));
        }
    }
}

impl Drop for DirEntries {
    fn drop(&mut self) {
        // SAFETY: `dir` came from fdopendir and is closed once, here.
        unsafe { libc::closedir(self.dir.as_ptr()) };
    }
}

/// A name as a C string, refusing NUL bytes.
pub(crate) fn c_name(name: &OsStr) -> io::Result<CString> {
    cstring(name.as_bytes())
}
