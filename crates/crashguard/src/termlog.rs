//! The orchestrator's termination message: a one-line summary of an abnormal end written to a
//! file that Kubernetes (and similar) shows in the pod's status. The file is opened at install
//! so that the crash path never has to open anything.

use std::fs::File;
use std::io::{Seek, Write};
use std::os::fd::AsFd;
use std::path::Path;

use crashguard_blackbox::Outcome;

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
    /// Opens the configured file. It must be a regular file with one link, owned by this
    /// process's uid (or, for [`TerminationLog::Auto`], by root: the orchestrator provides it);
    /// a FIFO, a device, a link or a file of another user is refused with an error naming the
    /// problem, and no open can block.
    pub(crate) fn open(config: &TerminationLog) -> Result<Option<TermLog>, Error> {
        let (path, orchestrator_owned) = match config {
            TerminationLog::Disabled => return Ok(None),
            TerminationLog::Auto => {
                let p = Path::new("/dev/termination-log");
                if std::fs::symlink_metadata(p).is_err() {
                    return Ok(None);
                }
                (p.to_owned(), true)
            }
            TerminationLog::Path(p) => (p.clone(), false),
        };
        let file = crashguard_blackbox::open_termination_log(&path, orchestrator_owned)
            .map_err(Error::TerminationLog)?;
        Ok(Some(TermLog { file }))
    }

    /// A second descriptor for the same file, for the fatal handlers (which keep theirs open
    /// for as long as they are installed).
    pub(crate) fn duplicate(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        self.file.as_fd().try_clone_to_owned()
    }

    /// Writes the one-line summary of an abnormal end: `crashguard: <outcome> (exit <code>):
    /// <detail>`.
    pub(crate) fn write_summary(&self, outcome: Outcome, code: u8, detail: Option<&str>) {
        let name = outcome.as_str();
        let line = match detail {
            Some(d) => format!("crashguard: {name} (exit {code}): {d}"),
            None => format!("crashguard: {name} (exit {code})"),
        };
        self.write(&line);
    }

    /// Replaces the file's contents with `line` as one line: control characters (a panic
    /// message's newlines) become spaces, and the whole, newline included, fits in [`MAX_LEN`]
    /// bytes, cut at a character boundary.
    pub(crate) fn write(&self, line: &str) {
        let mut out = String::with_capacity(line.len().min(MAX_LEN));
        for c in line.chars() {
            let c = if c.is_control() { ' ' } else { c };
            if out.len() + c.len_utf8() > MAX_LEN - 1 {
                break;
            }
            out.push(c);
        }
        out.push('\n');
        let mut f = &self.file;
        let _ = f.set_len(0);
        let _ = f.rewind();
        let _ = f.write_all(out.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_bounded_line_replacing_the_previous() {
        let dir = std::env::temp_dir().join(format!("cg-termlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("termination-log");
        let log = TermLog::open(&TerminationLog::Path(path.clone()))
            .expect("open")
            .expect("configured");
        log.write(&format!("first\nline {}", "é".repeat(5000)));
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.len() <= MAX_LEN, "{} bytes", text.len());
        assert_eq!(text.matches('\n').count(), 1);
        assert!(text.starts_with("first line é"));
        log.write_summary(Outcome::Panic, 70, Some("boom"));
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, "crashguard: panic (exit 70): boom\n");
        drop(log);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
