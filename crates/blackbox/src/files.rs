//! Opening the files crashguard reads and writes so that no pre-existing file is trusted: a
//! symbolic link, a FIFO, a device, a hard link to a file elsewhere or a file of another user is
//! replaced (in the report directory, which is ours) or refused with an error naming the
//! problem (the termination log, which is not). No open can block, no descriptor leaks into a
//! child program. See `docs/security.md`.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use crate::dir::SubDir;
use crate::error::Error;
use crate::sys::fs as sysfs;
use crate::sys::fs::{FileKind, Stat};

/// What is wrong with a file that should be a private regular file of uid `euid`, if anything.
/// A mode wider than 0600 is not a problem here: the owner tightens it with `fchmod`.
pub(crate) fn private_file_problem(st: &Stat, euid: u32) -> Option<String> {
    if st.kind != FileKind::Regular {
        return Some(format!("it is {}, not a regular file", st.kind.describe()));
    }
    if st.nlink != 1 {
        return Some(format!(
            "it has {} hard links (a link to a file elsewhere would be read or overwritten)",
            st.nlink
        ));
    }
    if st.uid != euid {
        return Some(format!(
            "it is owned by uid {}, not by this process's uid {euid}",
            st.uid
        ));
    }
    None
}

/// Opens `name` in `dir` for reading and writing as a private file: a regular file with one
/// link, owned by the effective uid, mode 0600 (tightened if wider). Anything else found under
/// the name — a symbolic link, a FIFO, a device, a hard link, a file of another user — is
/// removed (the directory is ours, so nothing of anyone else's is lost) and, when `create` is
/// set, replaced by a fresh file made with `O_EXCL`. `Ok(None)` when there is no usable file
/// and `create` is not set.
pub(crate) fn open_private_at(
    dir: &SubDir,
    name: &str,
    create: bool,
) -> Result<Option<OwnedFd>, Error> {
    let path = dir.join(name);
    let file_err = |source| Error::File {
        path: path.clone(),
        source,
    };
    let cname = sysfs::cstring(name.as_bytes()).map_err(file_err)?;
    let euid = sysfs::euid();
    // A few rounds: another process of the app may be replacing the same bad file at once.
    for _ in 0..4 {
        // Look before opening, so that a FIFO or device is never even opened; the check after
        // the open is the one that counts (the name may change in between).
        match sysfs::stat_at(&dir.fd, &cname) {
            Ok(st) if private_file_problem(&st, euid).is_some() => {
                remove_bad(dir, &cname, &path)?;
                if !create {
                    return Ok(None);
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !create {
                    return Ok(None);
                }
            }
            Err(e) => return Err(file_err(e)),
        }
        let flags = libc::O_RDWR | if create { libc::O_CREAT } else { 0 };
        let fd = match sysfs::open_at(&dir.fd, &cname, flags, 0o600) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(None),
            // Replaced under us by something that cannot be opened this way (a link): look
            // again.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENXIO)) => continue,
            Err(e) => return Err(file_err(e)),
        };
        let st = sysfs::fstat(&fd).map_err(file_err)?;
        if private_file_problem(&st, euid).is_some() {
            drop(fd);
            remove_bad(dir, &cname, &path)?;
            if !create {
                return Ok(None);
            }
            continue;
        }
        if st.mode & 0o7177 != 0 {
            sysfs::fchmod(&fd, 0o600).map_err(file_err)?;
        }
        return Ok(Some(fd));
    }
    Err(Error::UnsafeFile {
        path,
        problem: "it kept being replaced by something that is not a private regular file"
            .to_owned(),
    })
}

fn remove_bad(dir: &SubDir, name: &CStr, path: &Path) -> Result<(), Error> {
    match sysfs::unlink_at(&dir.fd, name) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        // A directory under the name: unlinkat without AT_REMOVEDIR refuses it, and so do we.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EISDIR | libc::EPERM)) => {
            Err(Error::UnsafeFile {
                path: path.to_owned(),
                problem: "it is a directory, not a regular file; remove it".to_owned(),
            })
        }
        Err(source) => Err(Error::File {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Opens the orchestrator's termination-message file for writing. Its contents stay (they
/// describe how the previous run ended) until this run writes its own message, which replaces
/// them whole.
///
/// The file is opened `O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC` (created mode 0600 if missing) and must
/// be a regular file with one link, owned by the effective uid — or by root when
/// `orchestrator_owned` says the orchestrator provides it (Kubernetes' `/dev/termination-log`);
/// anything else (a FIFO, a device, a symbolic or hard link, a file of another user) is refused
/// with an error naming the problem, never written through. A file this process owns is
/// tightened to mode 0600.
pub fn open_termination_log(path: &Path, orchestrator_owned: bool) -> Result<File, Error> {
    let unsafe_file = |problem: String| Error::UnsafeFile {
        path: path.to_owned(),
        problem,
    };
    if let Ok(m) = std::fs::symlink_metadata(path) {
        let ft = m.file_type();
        if ft.is_symlink() {
            return Err(Error::Symlink {
                path: path.to_owned(),
            });
        }
        if !ft.is_file() {
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_fifo() {
                FileKind::Fifo
            } else if ft.is_dir() {
                FileKind::Directory
            } else if ft.is_socket() {
                FileKind::Socket
            } else {
                FileKind::Device
            };
            return Err(unsafe_file(format!(
                "it is {}, not a regular file; the termination message is only written to a \
                 regular file",
                kind.describe()
            )));
        }
    }
    let fd = match sysfs::open_write_create(path) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Error::Symlink {
                path: path.to_owned(),
            });
        }
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            return Err(unsafe_file(
                "it is a named pipe (FIFO) without a reader, not a regular file".to_owned(),
            ));
        }
        Err(source) => {
            return Err(Error::File {
                path: path.to_owned(),
                source,
            });
        }
    };
    let file_err = |source| Error::File {
        path: path.to_owned(),
        source,
    };
    let st = sysfs::fstat(&fd).map_err(file_err)?;
    let euid = sysfs::euid();
    let owner_ok = st.uid == euid || (orchestrator_owned && st.uid == 0);
    let problem = if !owner_ok {
        private_file_problem(&st, euid)
    } else {
        private_file_problem(&st, st.uid)
    };
    if let Some(problem) = problem {
        return Err(unsafe_file(problem));
    }
    if st.uid == euid && st.mode & 0o7177 != 0 {
        sysfs::fchmod(&fd, 0o600).map_err(file_err)?;
    }
    Ok(File::from(fd))
}

/// Reads at most `max` bytes of the regular file at `path` without ever blocking: the open is
/// `O_NONBLOCK`, and a FIFO, socket or device is refused (`InvalidInput`) after an `fstat`,
/// before anything is read. For tools (the CLI) that read files named by a user or by a report.
pub fn read_regular_file(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    sysfs::read_fd(&open_regular(path)?, max)
}

/// Opens the regular file at `path` for reading without ever blocking (see
/// [`read_regular_file`]); for readers that map or parse the file themselves.
pub fn open_regular_file(path: &Path) -> io::Result<File> {
    open_regular(path).map(File::from)
}

/// The one non-blocking open behind [`read_regular_file`] and [`open_regular_file`]: `O_NONBLOCK`,
/// then `fstat`, refusing anything that is not a regular file before it is read.
fn open_regular(path: &Path) -> io::Result<std::os::fd::OwnedFd> {
    let fd = sysfs::open_read_nonblocking(path)?;
    let st = sysfs::fstat(&fd)?;
    if st.kind != FileKind::Regular {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is {}, not a regular file",
                path.display(),
                st.kind.describe()
            ),
        ));
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(kind: FileKind, uid: u32, nlink: u64) -> Stat {
        Stat {
            kind,
            uid,
            mode: 0o600,
            nlink,
            size: 0,
            mtime_ns: 0,
        }
    }

    #[test]
    fn only_private_regular_files_pass() {
        assert_eq!(
            private_file_problem(&stat(FileKind::Regular, 5, 1), 5),
            None
        );
        for (st, words) in [
            (stat(FileKind::Fifo, 5, 1), "named pipe"),
            (stat(FileKind::Device, 5, 1), "device"),
            (stat(FileKind::Regular, 5, 2), "2 hard links"),
            (stat(FileKind::Regular, 6, 1), "owned by uid 6"),
        ] {
            let p = private_file_problem(&st, 5).expect("a problem");
            assert!(p.contains(words), "{p}");
        }
    }
}
