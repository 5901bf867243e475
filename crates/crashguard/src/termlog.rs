//! The orchestrator's termination message: a one-line summary of an abnormal end written to a
//! file that Kubernetes (and similar) shows in the pod's status. The file is opened at install
//! so that the crash path never has to open anything.

use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::Error;
use crate::config::TerminationLog;

/// Kubernetes reads at most this many bytes of the message.
pub(crate) const MAX_LEN: usize = 4096;

/// The pre-opened termination message file.
#[derive(Debug)]
pub(crate) struct TermLog {
    file: File,
}

impl TermLog {
    pub(crate) fn open(config: &TerminationLog) -> Result<Option<TermLog>, Error> {
        let path = match config {
            TerminationLog::Disabled => return Ok(None),
            TerminationLog::Auto => {
                let p = Path::new("/dev/termination-log");
                if !p.exists() {
                    return Ok(None);
                }
                p.to_owned()
            }
            TerminationLog::Path(p) => p.clone(),
        };
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|source| Error::Io {
                what: "open the termination log",
                source,
            })?;
        Ok(Some(TermLog { file }))
    }

    pub(crate) fn raw_fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    /// Replaces the file's contents with `line` (truncated to [`MAX_LEN`]).
    pub(crate) fn write(&self, line: &str) {
        let mut end = line.len().min(MAX_LEN);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        let mut f = &self.file;
        let _ = f.set_len(0);
        let _ = f.rewind();
        let _ = f.write_all(line[..end].as_bytes());
    }
}
