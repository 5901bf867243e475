//! Reading one kernel file into a reused buffer, with the crate's one error style: a missing
//! file is `None` (an older kernel, no cgroup, not Linux), anything else that goes wrong is an
//! [`Error`] naming the file, with the OS error or the [`ParseError`] as its source.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use super::parse::{Format, ParseError};
use crate::error::{Error, IoOp, Result};
use crate::sys::memory as sys;

/// Reads `path` into `buf`. `Ok(false)` when the file does not exist or the kernel does not
/// support it (PSI disabled makes `memory.pressure` fail with `EOPNOTSUPP`).
pub fn read(path: &Path, buf: &mut String) -> Result<bool> {
    buf.clear();
    let result = File::open(path).and_then(|mut f| f.read_to_string(buf));
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound || sys::is_unsupported(&e) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Err(Error::Parse {
            path: path.to_owned(),
            source: ParseError::new(Format::Text, "not valid utf-8"),
        }),
        Err(source) => Err(Error::io(IoOp::Read, path, source)),
    }
}

/// Reads `path` and parses it; `Ok(None)` when the file does not exist.
pub fn read_parsed<T>(
    path: &Path,
    buf: &mut String,
    parse: impl FnOnce(&str) -> std::result::Result<T, ParseError>,
) -> Result<Option<T>> {
    if !read(path, buf)? {
        return Ok(None);
    }
    parse(buf).map(Some).map_err(|source| Error::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Best effort: the parsed value of `path`, or `None` when it is missing, unreadable or
/// malformed. Bytes that are not UTF-8 (a process name may be anything) are replaced rather
/// than failing the whole file. For the thread budget's diagnosis and checks, which use what
/// they can find.
pub fn read_lenient<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> std::result::Result<T, ParseError>,
) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    parse(&String::from_utf8_lossy(&bytes)).ok()
}
