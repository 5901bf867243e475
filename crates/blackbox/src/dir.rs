//! The report directory as a trust boundary: opened once, checked with `fstat`, and used only
//! through its descriptor.
//!
//! A crash guard runs in every process of a fleet, often as root, and reads what a crashed
//! (possibly compromised) run left behind. Whoever can write the report directory must not be
//! able to steer this process's file operations elsewhere, so the directory is opened with
//! `O_DIRECTORY|O_NOFOLLOW`, must be owned by the effective uid and not writable by group or
//! others, and every later operation (`openat`, `mkdirat`, `renameat`, `unlinkat`, `fdopendir`,
//! `fstatat`, `fchmod`) names one component relative to a checked descriptor. A directory that
//! crashguard did not create is never chmodded. See `docs/security.md`.

use std::ffi::CStr;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::sys::fs as sysfs;
use crate::sys::fs::{FileKind, Stat};

/// The subdirectory holding the slot files.
pub(crate) const BLACKBOX: &CStr = c"blackbox";
/// The subdirectory holding report files.
pub(crate) const REPORTS: &CStr = c"reports";

/// An open, checked report directory.
#[derive(Debug)]
pub struct ReportDir {
    path: PathBuf,
    fd: OwnedFd,
}

/// An open, checked subdirectory (`blackbox/` or `reports/`).
#[derive(Debug)]
pub(crate) struct SubDir {
    pub(crate) path: PathBuf,
    pub(crate) fd: OwnedFd,
}

impl SubDir {
    /// The path of `name` inside this directory, for messages and for callers that show it.
    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl ReportDir {
    /// Opens the report directory for writing: creates it (mode 0700, parents too) if it does
    /// not exist, refuses a symbolic link as its last component, and refuses a directory owned
    /// by another user or writable by group or others, with a message saying what to do.
    pub fn open(path: &Path) -> Result<ReportDir, Error> {
        match fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Created private from the start; an existing directory is never chmodded.
                match fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(path)
                {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(source) => {
                        return Err(Error::ReportDir {
                            path: path.to_owned(),
                            source,
                        });
                    }
                }
            }
            Ok(_) => {}
            Err(source) => {
                return Err(Error::ReportDir {
                    path: path.to_owned(),
                    source,
                });
            }
        }
        let fd = sysfs::open_dir(path).map_err(|e| open_error(path, e))?;
        check_private_dir(&fd, path)?;
        Ok(ReportDir {
            path: path.to_owned(),
            fd,
        })
    }

    /// Opens an existing report directory only to read it (the CLI, often run by an operator
    /// as another user): a symbolic link as the last component is still refused, ownership is
    /// not required. Nothing is created.
    pub fn open_for_reading(path: &Path) -> Result<ReportDir, Error> {
        let fd = sysfs::open_dir(path).map_err(|e| open_error(path, e))?;
        Ok(ReportDir {
            path: path.to_owned(),
            fd,
        })
    }

    /// The directory's path, as configured.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the subdirectory `name`, creating it (mode 0700) when `create` is set; checks it
    /// as the directory itself was checked (when writing). `Ok(None)` when it does not exist
    /// and was not to be created.
    pub(crate) fn sub(&self, name: &CStr, create: bool) -> Result<Option<SubDir>, Error> {
        let path = self.path.join(name.to_string_lossy().as_ref());
        if create {
            sysfs::mkdir_at(&self.fd, name, 0o700).map_err(|source| Error::ReportDir {
                path: path.clone(),
                source,
            })?;
        }
        let fd = match sysfs::open_dir_at(&self.fd, name) {
            Ok(fd) => fd,
            Err(e) if !create && e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(open_error(&path, e)),
        };
        if create {
            check_private_dir(&fd, &path)?;
        }
        Ok(Some(SubDir { path, fd }))
    }
}

/// Turns a failed directory open into the error that names the problem.
fn open_error(path: &Path, e: io::Error) -> Error {
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    match e.raw_os_error() {
        Some(libc::ELOOP) => Error::Symlink {
            path: path.to_owned(),
        },
        Some(libc::ENOTDIR) if is_link => Error::Symlink {
            path: path.to_owned(),
        },
        Some(libc::ENOTDIR) => Error::NotADirectory {
            path: path.to_owned(),
        },
        _ => Error::ReportDir {
            path: path.to_owned(),
            source: e,
        },
    }
}

/// Checks an open directory: a directory, owned by the effective uid, not writable by group or
/// others.
fn check_private_dir(fd: &OwnedFd, path: &Path) -> Result<(), Error> {
    let st = sysfs::fstat(fd).map_err(|source| Error::ReportDir {
        path: path.to_owned(),
        source,
    })?;
    match private_dir_problem(&st, sysfs::euid()) {
        None => Ok(()),
        Some(problem) => Err(Error::UnsafeDirectory {
            path: path.to_owned(),
            problem,
        }),
    }
}

/// What is wrong with a directory for use by uid `euid`, if anything.
fn private_dir_problem(st: &Stat, euid: u32) -> Option<String> {
    if st.kind != FileKind::Directory {
        return Some(format!("it is {}, not a directory", st.kind.describe()));
    }
    if st.uid != euid {
        return Some(format!(
            "it is owned by uid {}, but this process runs as uid {euid}; whoever owns the \
             directory controls where this process's files go. Give the service a directory of \
             its own (owned by uid {euid}, mode 0700), or let crashguard create one",
            st.uid
        ));
    }
    if st.mode & 0o022 != 0 {
        return Some(format!(
            "it is writable by other users (mode {:04o}); crashguard does not change the mode \
             of a directory it did not create. Use a private subdirectory (crashguard creates \
             one with mode 0700 if it does not exist), or remove the write permission \
             (`chmod go-w`)",
            st.mode
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(kind: FileKind, uid: u32, mode: u32) -> Stat {
        Stat {
            kind,
            uid,
            mode,
            nlink: 2,
            size: 0,
            mtime_ns: 0,
        }
    }

    #[test]
    fn private_directories_pass_and_others_are_named() {
        assert_eq!(
            private_dir_problem(&stat(FileKind::Directory, 7, 0o700), 7),
            None
        );
        assert_eq!(
            private_dir_problem(&stat(FileKind::Directory, 7, 0o755), 7),
            None
        );
        let foreign = private_dir_problem(&stat(FileKind::Directory, 8, 0o700), 7).unwrap();
        assert!(foreign.contains("owned by uid 8"), "{foreign}");
        let shared = private_dir_problem(&stat(FileKind::Directory, 7, 0o1777), 7).unwrap();
        assert!(shared.contains("mode 1777"), "{shared}");
        assert!(shared.contains("chmod go-w"), "{shared}");
        let group = private_dir_problem(&stat(FileKind::Directory, 7, 0o770), 7).unwrap();
        assert!(group.contains("writable by other users"), "{group}");
        let fifo = private_dir_problem(&stat(FileKind::Fifo, 7, 0o700), 7).unwrap();
        assert!(fifo.contains("named pipe"), "{fifo}");
    }
}
