//! The CLI's errors and the exit status each one maps to.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crashguard_blackbox::DecodeError;

/// The `crashguard` command's own exit statuses (BSD sysexits, so scripts can tell them apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CliExit {
    /// Success.
    Ok,
    /// Bad command line (`EX_USAGE`).
    Usage,
    /// The input exists but is not a readable report or black box (`EX_DATAERR`).
    DataErr,
    /// The input does not exist, or a directory holds no report (`EX_NOINPUT`).
    NoInput,
    /// Reading the input or writing the output failed (`EX_IOERR`).
    IoErr,
}

impl CliExit {
    /// Every status, in numeric order.
    pub const ALL: [CliExit; 5] = [
        CliExit::Ok,
        CliExit::Usage,
        CliExit::DataErr,
        CliExit::NoInput,
        CliExit::IoErr,
    ];

    /// The numeric status.
    pub const fn code(self) -> u8 {
        match self {
            CliExit::Ok => 0,
            CliExit::Usage => 64,
            CliExit::DataErr => 65,
            CliExit::NoInput => 66,
            CliExit::IoErr => 74,
        }
    }

    /// What the status means, one line.
    pub const fn meaning(self) -> &'static str {
        match self {
            CliExit::Ok => "success",
            CliExit::Usage => "bad command line, e.g. an exit status outside 0-255 (EX_USAGE)",
            CliExit::DataErr => {
                "the input is not a readable report or black box: truncated, bad magic, checksum mismatch, invalid JSON (EX_DATAERR)"
            }
            CliExit::NoInput => {
                "the file or directory does not exist, or the directory holds no report (EX_NOINPUT)"
            }
            CliExit::IoErr => "reading the input or writing the output failed (EX_IOERR)",
        }
    }
}

/// Why a `crashguard` command failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The command line is wrong in a way the argument parser cannot see.
    Usage(String),
    /// The path does not exist.
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The directory exists but holds no report.
    NoReports {
        /// The directory searched.
        dir: PathBuf,
    },
    /// The file is not a valid black box.
    Decode {
        /// The file.
        path: PathBuf,
        /// What the reader found wrong.
        source: DecodeError,
    },
    /// The file is neither a black box nor a valid report JSON.
    InvalidReport {
        /// The file.
        path: PathBuf,
        /// What the JSON parser said.
        source: serde_json::Error,
    },
    /// A file or directory could not be read.
    Read {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The report store could not be listed.
    Store(crashguard_blackbox::Error),
    /// The output could not be written.
    Write(io::Error),
    /// The report cannot be exported in the format asked for.
    Export {
        /// The report's file.
        path: PathBuf,
        /// Why.
        source: crashguard_minidump::Error,
    },
    /// An output file could not be written.
    WriteFile {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
}

impl Error {
    /// The exit status this error ends the command with.
    pub fn exit(&self) -> CliExit {
        match self {
            Error::Usage(_) => CliExit::Usage,
            Error::NotFound { .. } | Error::NoReports { .. } => CliExit::NoInput,
            Error::Decode { .. } | Error::InvalidReport { .. } | Error::Export { .. } => {
                CliExit::DataErr
            }
            Error::Read { .. } | Error::Store(_) | Error::Write(_) | Error::WriteFile { .. } => {
                CliExit::IoErr
            }
        }
    }

    /// Builds a read error, turning "not found" into [`Error::NotFound`].
    pub fn read(path: impl Into<PathBuf>, source: io::Error) -> Error {
        let path = path.into();
        if source.kind() == io::ErrorKind::NotFound {
            Error::NotFound { path }
        } else {
            Error::Read { path, source }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(message) => f.write_str(message),
            Error::NotFound { path } => write!(f, "{}: no such file or directory", path.display()),
            Error::NoReports { dir } => write!(f, "no crash reports in {}", dir.display()),
            // The causes are the sources, printed after this by `chain`: never here too.
            // DecodeError says what is wrong with the file ("black box truncated: ...").
            Error::Decode { path, .. } => write!(f, "{}", path.display()),
            Error::InvalidReport { path, .. } => {
                write!(
                    f,
                    "{}: neither a crashguard black box nor a report JSON",
                    path.display()
                )
            }
            Error::Read { path, .. } => write!(f, "cannot read {}", path.display()),
            Error::Store(e) => write!(f, "{e}"),
            Error::Write(_) => f.write_str("cannot write the output"),
            Error::Export { path, .. } => write!(f, "cannot export {}", path.display()),
            Error::WriteFile { path, .. } => write!(f, "cannot write {}", path.display()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Decode { source, .. } => Some(source),
            Error::InvalidReport { source, .. } => Some(source),
            Error::Read { source, .. } | Error::Write(source) | Error::WriteFile { source, .. } => {
                Some(source)
            }
            Error::Export { source, .. } => Some(source),
            Error::Store(e) => std::error::Error::source(e),
            Error::Usage(_) | Error::NotFound { .. } | Error::NoReports { .. } => None,
        }
    }
}

/// An error and its chain of causes on one line, each cause once:
/// `cannot read x: Permission denied (os error 13)`. Every error type of the CLI leaves its
/// cause out of its own `Display` and returns it from `source()` instead.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        line.push_str(": ");
        line.push_str(&s.to_string());
        source = s.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses() {
        assert_eq!(Error::Usage("x".into()).exit().code(), 64);
        assert_eq!(
            Error::read("/nope", io::ErrorKind::NotFound.into())
                .exit()
                .code(),
            66
        );
        assert_eq!(
            Error::read("/nope", io::ErrorKind::PermissionDenied.into())
                .exit()
                .code(),
            74
        );
        let e = Error::Decode {
            path: "f".into(),
            source: DecodeError::BadMagic,
        };
        assert_eq!(e.exit().code(), 65);
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(chain(&e), "f: not a crashguard black box (bad magic)");
        let e = Error::read("/x", io::Error::from_raw_os_error(13));
        let text = chain(&e);
        assert_eq!(text.matches("ermission denied").count(), 1, "{text}");
        let codes: Vec<u8> = CliExit::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(codes, [0, 64, 65, 66, 74]);
    }
}
