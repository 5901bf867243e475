//! The black-box crate's errors.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a black box could not be opened, armed, or a report stored.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The report directory could not be created or opened.
    ReportDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The report directory (or a file in it) is a symbolic link; crashguard refuses to follow
    /// links there so that a crash cannot be made to write elsewhere.
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// The report directory exists but is not a directory.
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// Every slot of the directory is held by a live process.
    NoFreeSlot {
        /// The directory.
        path: PathBuf,
        /// How many slots there are.
        slots: u32,
    },
    /// A black-box or report file could not be read, written or mapped.
    File {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A black box is already armed in this process.
    AlreadyArmed,
    /// The report directory, or one of its subdirectories, is not safe to use: owned by another
    /// user, or writable by other users. crashguard never changes the mode of a directory it did
    /// not create; the message says what to do.
    UnsafeDirectory {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it, and what to do.
        problem: String,
    },
    /// A file crashguard writes (a slot, a report, the termination log) is not a private
    /// regular file and could not be replaced: a FIFO, a device, a hard link, a file of
    /// another user.
    UnsafeFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// An option is out of range.
    InvalidOption {
        /// Which option.
        name: BoxOption,
        /// Why (the value given and the range allowed).
        reason: String,
    },
}

/// The options of a black box that [`Error::InvalidOption`] can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BoxOption {
    /// The application name (slot and report file names are made from it).
    AppName,
    /// The number of breadcrumbs the ring holds.
    BreadcrumbCapacity,
    /// The bytes of the crashing thread's stack the record keeps.
    CrashStackCapacity,
}

impl BoxOption {
    /// The words for it: `"app name"`, `"breadcrumb capacity"`, `"crash stack capacity"`.
    pub fn as_str(self) -> &'static str {
        match self {
            BoxOption::AppName => "app name",
            BoxOption::BreadcrumbCapacity => "breadcrumb capacity",
            BoxOption::CrashStackCapacity => "crash stack capacity",
        }
    }
}

impl fmt::Display for BoxOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ReportDir { path, .. } => {
                write!(f, "cannot use report directory {}", path.display())
            }
            Error::Symlink { path } => {
                write!(f, "refusing to follow symbolic link {}", path.display())
            }
            Error::NotADirectory { path } => {
                write!(f, "report directory {} is not a directory", path.display())
            }
            Error::NoFreeSlot { path, slots } => write!(
                f,
                "all {slots} black-box slots in {} are held by running processes",
                path.display()
            ),
            Error::File { path, .. } => write!(f, "cannot use file {}", path.display()),
            Error::UnsafeDirectory { path, problem } => {
                write!(f, "refusing report directory {}: {problem}", path.display())
            }
            Error::UnsafeFile { path, problem } => {
                write!(f, "refusing file {}: {problem}", path.display())
            }
            Error::AlreadyArmed => f.write_str("a black box is already armed in this process"),
            Error::InvalidOption { name, reason } => write!(f, "invalid {name}: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::ReportDir { source, .. } | Error::File { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_option_is_named_by_its_enum() {
        let e = crate::validate_app("../etc").expect_err("a path is not an app name");
        assert!(
            matches!(
                e,
                Error::InvalidOption {
                    name: BoxOption::AppName,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string().starts_with("invalid app name: \"../etc\""),
            "{e}"
        );
        let mut opts = crate::Options::new("svc");
        opts.ring_capacity = 0;
        let dir =
            std::env::temp_dir().join(format!("crashguard-bad-option-{}", std::process::id()));
        let e = crate::open(&dir, &opts).expect_err("a ring of zero breadcrumbs");
        assert!(
            matches!(
                e,
                Error::InvalidOption {
                    name: BoxOption::BreadcrumbCapacity,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            !dir.exists(),
            "options are checked before any file is touched"
        );
    }
}
