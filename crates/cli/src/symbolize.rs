//! Offline symbolization of recorded frames.
//!
//! The black box records, for each frame, the module (executable or shared library) it fell in,
//! the offset from that module's load bias, and the module's GNU build id. Here the module file
//! is opened (or the `--binary` override for the executable), its `NT_GNU_BUILD_ID` note is
//! compared with the recorded one, and only when they match is the offset resolved with
//! `addr2line`: function names demangled, inlined frames expanded, file and line attached. A
//! binary with another build id was built from other code, so its answers would be confident and
//! wrong; it is refused and the frames stay raw. Each module is opened once per [`Symbolizer`].
//!
//! Debug information is read from the module's separate debug file when there is one
//! (`/usr/lib/debug/.build-id/…`, `.gnu_debuglink`; see [`crate::debuginfo`]), else from the
//! module itself. Without line information, the function is named from the symbol tables, by a
//! size-aware lookup: an address no symbol covers gets no name (and is shown `module+0xoffset`)
//! rather than the name of the nearest exported function below it.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use addr2line::Loader;
use object::{Object, ReadCache};

use crate::debuginfo::{self, Covering};
use serde::Serialize;

/// One resolved source location; an address inside inlined code yields several, innermost first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Location {
    /// Demangled function name.
    pub function: Option<String>,
    /// Source file.
    pub file: Option<String>,
    /// Source line.
    pub line: Option<u32>,
    /// Source column.
    pub column: Option<u32>,
    /// Whether this function was inlined into the next location's function.
    pub inlined: bool,
}

/// Why a frame could not be symbolized.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SymbolizeError {
    /// The frame fell outside every module recorded at install (JIT code, a `dlopen`ed library).
    NoModule,
    /// The recorded offset is not a hexadecimal number.
    BadOffset(String),
    /// The module file could not be opened.
    Open {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: Arc<io::Error>,
    },
    /// The module file is not an object file `object` can read.
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The file's build id differs from the recorded one: it is another build.
    BuildIdMismatch {
        /// The file.
        path: PathBuf,
        /// The build id recorded by the crashed process.
        recorded: String,
        /// The file's build id, when it has one.
        found: Option<String>,
    },
    /// The debug information could not be loaded or read.
    Dwarf {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        message: String,
    },
}

impl fmt::Display for SymbolizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SymbolizeError::NoModule => {
                f.write_str("the address is in no module recorded at install")
            }
            SymbolizeError::BadOffset(s) => {
                write!(f, "recorded offset {s:?} is not a hexadecimal number")
            }
            // The OS error is the source, printed after this by `error::chain`.
            SymbolizeError::Open { path, .. } => write!(f, "cannot open {}", path.display()),
            SymbolizeError::Parse { path, message } => {
                write!(f, "cannot parse {}: {message}", path.display())
            }
            SymbolizeError::BuildIdMismatch {
                path,
                recorded,
                found,
            } => write!(
                f,
                "refusing to symbolize with {}: its build id is {} but the crashed process ran build {recorded}; \
                 pass --binary PATH with the exact binary that crashed",
                path.display(),
                found.as_deref().unwrap_or("missing"),
            ),
            SymbolizeError::Dwarf { path, message } => {
                write!(
                    f,
                    "cannot read debug information of {}: {message}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for SymbolizeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SymbolizeError::Open { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

/// What to look up: the fields a report's frame carries.
#[derive(Clone, Copy, Debug)]
pub struct FrameRef<'a> {
    /// Path of the module as recorded.
    pub module: Option<&'a str>,
    /// Offset from the module's load bias, `0x...`.
    pub offset: Option<&'a str>,
    /// The module's recorded build id, hex.
    pub build_id: Option<&'a str>,
    /// Whether the address is a return address (every frame but the innermost): the call
    /// instruction lies just before it, so the lookup uses `offset - 1`.
    pub return_address: bool,
}

/// A module ready for lookups: its DWARF (from the debug file when found) and the files whose
/// symbol tables name functions DWARF does not know. The symbol tables are scanned only for
/// the addresses DWARF left unnamed, all of a backtrace's at once ([`Covering`]): a binary with
/// full debug information never needs them.
struct Module {
    /// `None` for a library named from its separate debug file's symbols only.
    dwarf: Option<Loader>,
    symbol_files: Vec<PathBuf>,
}

/// The outcome of loading one module, cached per (path, recorded build id).
type Cached = Result<Rc<Module>, SymbolizeError>;

/// Resolves frames against module files on disk, caching each module.
pub struct Symbolizer {
    executable: Option<String>,
    binary: Option<PathBuf>,
    debug_dirs: Vec<PathBuf>,
    /// `None`: every module's DWARF is read. `Some(exe)`: a module other than `exe` whose debug
    /// information is a separate debug file is named from that file's symbols only.
    symbols_only_for_libraries_but: Option<Option<String>>,
    cache: HashMap<(PathBuf, Option<String>), Cached>,
}

/// A module used without a recorded build id to check it against.
fn unverified(key: &(PathBuf, Option<String>), loaded: &Cached) -> Option<PathBuf> {
    (key.1.is_none() && loaded.is_ok()).then(|| key.0.clone())
}

impl fmt::Debug for Symbolizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Symbolizer")
            .field("executable", &self.executable)
            .field("binary", &self.binary)
            .field("debug_dirs", &self.debug_dirs)
            .field(
                "library_lines",
                &self.symbols_only_for_libraries_but.is_none(),
            )
            .field("modules", &self.cache.len())
            .finish()
    }
}

impl Symbolizer {
    /// A symbolizer that opens modules at their recorded paths and looks for separate debug
    /// files under `/usr/lib/debug`.
    pub fn new() -> Symbolizer {
        Symbolizer {
            executable: None,
            binary: None,
            debug_dirs: vec![PathBuf::from(debuginfo::DEFAULT_DEBUG_DIR)],
            symbols_only_for_libraries_but: None,
            cache: HashMap::new(),
        }
    }

    /// Whether libraries' separate debug files are read for file, line and inlined functions
    /// (`on`, the default of a new symbolizer) or only for their symbol tables. A distribution
    /// ships its libraries' debug information compressed (libc6-dbg: 4 MB inflating to 16 MB),
    /// and DWARF is read whole before the first lookup, so two libc frames (`start_thread`,
    /// `clone3`, named right from the symbols either way) cost more than 64 frames of the
    /// application. The executable recorded at `executable` (and any module whose DWARF is in
    /// the module file itself) always gets file and line.
    pub fn library_lines(mut self, executable: Option<&str>, on: bool) -> Symbolizer {
        self.symbols_only_for_libraries_but = (!on).then(|| executable.map(str::to_owned));
        self
    }

    /// Looks for separate debug files under `dirs` (in order) instead of `/usr/lib/debug`.
    pub fn with_debug_dirs(mut self, dirs: Vec<PathBuf>) -> Symbolizer {
        self.debug_dirs = dirs;
        self
    }

    /// Uses `binary` in place of the module recorded at `executable` (the crashed program):
    /// the `--binary` option, for a binary copied elsewhere or a report from another host.
    pub fn with_binary(mut self, executable: Option<&str>, binary: PathBuf) -> Symbolizer {
        self.executable = executable.map(str::to_owned);
        self.binary = Some(binary);
        self
    }

    /// The file to open for a recorded module path.
    fn file_for(&self, module: &str) -> PathBuf {
        match (&self.binary, &self.executable) {
            (Some(binary), Some(exe)) if exe == module => binary.clone(),
            // Without a known executable path the override applies to the first module asked
            // about, which callers arrange to be the executable's.
            (Some(binary), None) => binary.clone(),
            _ => PathBuf::from(module),
        }
    }

    /// Resolves one frame to its source locations, innermost inlined function first.
    pub fn symbolize(&mut self, frame: FrameRef<'_>) -> Result<Vec<Location>, SymbolizeError> {
        self.symbolize_all(&[frame])
            .pop()
            .unwrap_or(Err(SymbolizeError::NoModule))
    }

    /// Resolves a whole backtrace, one result per frame in order. DWARF answers first, frame by
    /// frame; the frames it leaves unnamed are then named from their module's symbol tables in
    /// one pass per module, for all of them together.
    pub fn symbolize_all(
        &mut self,
        frames: &[FrameRef<'_>],
    ) -> Vec<Result<Vec<Location>, SymbolizeError>> {
        let mut out = Vec::with_capacity(frames.len());
        // (frame index, module, probe) of every frame DWARF did not name.
        let mut unnamed: Vec<(usize, Rc<Module>, u64)> = Vec::new();
        for (index, frame) in frames.iter().enumerate() {
            match self.lookup_dwarf(*frame) {
                Ok((module, probe, locations)) => {
                    if locations.iter().all(|l| l.function.is_none()) {
                        unnamed.push((index, module, probe));
                    }
                    out.push(Ok(locations));
                }
                Err(e) => out.push(Err(e)),
            }
        }
        while let Some((_, module, _)) = unnamed.first() {
            let module = module.clone();
            let (these, rest): (Vec<_>, Vec<_>) = unnamed
                .into_iter()
                .partition(|(_, m, _)| Rc::ptr_eq(m, &module));
            unnamed = rest;
            let mut covering = Covering::new(these.iter().map(|&(_, _, probe)| probe));
            let files: Vec<&Path> = module.symbol_files.iter().map(PathBuf::as_path).collect();
            covering.read(&files);
            for (index, _, probe) in these {
                if let (Some(name), Some(Ok(locations))) =
                    (covering.lookup(probe), out.get_mut(index))
                {
                    name_outermost(locations, name);
                }
            }
        }
        out
    }

    /// The module of a frame (loaded once per path and recorded build id), the address to look
    /// up in it, and what its DWARF says there.
    fn lookup_dwarf(
        &mut self,
        frame: FrameRef<'_>,
    ) -> Result<(Rc<Module>, u64, Vec<Location>), SymbolizeError> {
        let (Some(module), Some(offset)) = (frame.module, frame.offset) else {
            return Err(SymbolizeError::NoModule);
        };
        let offset =
            parse_hex(offset).ok_or_else(|| SymbolizeError::BadOffset(offset.to_owned()))?;
        let path = self.file_for(module);
        let key = (path.clone(), frame.build_id.map(str::to_owned));
        let library_lines = match &self.symbols_only_for_libraries_but {
            None => true,
            Some(exe) => exe.as_deref() == Some(module),
        };
        let loaded = match self.cache.get(&key) {
            Some(cached) => cached.clone()?,
            None => {
                let loaded = load(&path, frame.build_id, &self.debug_dirs, library_lines);
                self.cache.insert(key, loaded.clone());
                loaded?
            }
        };
        let probe = if frame.return_address {
            offset.saturating_sub(1)
        } else {
            offset
        };
        let locations = resolve(&loaded, &path, probe)?;
        Ok((loaded, probe, locations))
    }

    /// The modules used without a recorded build id, so without proof that they are the build
    /// that crashed.
    pub fn unverified(&self) -> Vec<PathBuf> {
        let mut out: Vec<_> = self
            .cache
            .iter()
            .filter_map(|(k, v)| unverified(k, v))
            .collect();
        out.sort();
        out
    }

    /// The modules that could not be used, with the reason, for a note above the backtrace.
    pub fn failures(&self) -> Vec<(PathBuf, SymbolizeError)> {
        let mut out: Vec<_> = self
            .cache
            .iter()
            .filter_map(|((p, _), r)| r.as_ref().err().map(|e| (p.clone(), e.clone())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

impl Default for Symbolizer {
    fn default() -> Self {
        Symbolizer::new()
    }
}

/// Parses `0x1234` or `1234` as hexadecimal.
pub fn parse_hex(s: &str) -> Option<u64> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// Lower-case hex of a byte string.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The GNU build id of an object file, hex; `Ok(None)` when the file has none.
pub fn build_id_of(path: &Path) -> Result<Option<String>, SymbolizeError> {
    // The path comes from a report: never block on a FIFO or device named there.
    let file = crashguard_blackbox::open_regular_file(path).map_err(|e| SymbolizeError::Open {
        path: path.to_owned(),
        source: Arc::new(e),
    })?;
    // ReadCache reads only the parts of the file the parser asks for (headers and the note),
    // not a binary that may be hundreds of megabytes of debug information.
    let cache = ReadCache::new(file);
    let obj = object::File::parse(&cache).map_err(|e| SymbolizeError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let id = obj.build_id().map_err(|e| SymbolizeError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    Ok(id.map(hex))
}

/// Loads a module: checks its build id, finds its separate debug file, and opens the DWARF
/// (of the debug file when there is one) — unless `separate_dwarf` is false and there is a
/// separate debug file, which is then used for its symbol table only.
fn load(
    path: &Path,
    recorded: Option<&str>,
    debug_dirs: &[PathBuf],
    separate_dwarf: bool,
) -> Cached {
    let found = build_id_of(path)?;
    if let Some(recorded) = recorded
        && found.as_deref().map(str::to_ascii_lowercase) != Some(recorded.to_ascii_lowercase())
    {
        return Err(SymbolizeError::BuildIdMismatch {
            path: path.to_owned(),
            recorded: recorded.to_owned(),
            found,
        });
    }
    let debug_file = debuginfo::find_debug_file(path, found.as_deref(), debug_dirs);
    let mut symbol_files: Vec<PathBuf> = debug_file.iter().cloned().collect();
    symbol_files.push(path.to_owned());
    if debug_file.is_some() && !separate_dwarf {
        return Ok(Rc::new(Module {
            dwarf: None,
            symbol_files,
        }));
    }
    // A debug file that the DWARF reader rejects is passed over for the module itself.
    let dwarf = match debug_file.as_deref().map(Loader::new) {
        Some(Ok(l)) => l,
        _ => Loader::new(path).map_err(|e| SymbolizeError::Dwarf {
            path: path.to_owned(),
            message: e.to_string(),
        })?,
    };
    Ok(Rc::new(Module {
        dwarf: Some(dwarf),
        symbol_files,
    }))
}

/// Names the outermost location (or the only one) from a symbol: without debug information (a
/// stripped or release binary) the symbol table still names the function.
fn name_outermost(locations: &mut Vec<Location>, raw: &str) {
    let function = addr2line::demangle_auto(raw.into(), None).into_owned();
    match locations.last_mut() {
        Some(last) => last.function = Some(function),
        None => locations.push(Location {
            function: Some(function),
            ..Location::default()
        }),
    }
}

/// What a module's DWARF says about `probe`, innermost inlined function first; nothing for a
/// module named from symbols only.
fn resolve(module: &Module, path: &Path, probe: u64) -> Result<Vec<Location>, SymbolizeError> {
    let Some(loader) = &module.dwarf else {
        return Ok(Vec::new());
    };
    let dwarf = |e: &dyn fmt::Display| SymbolizeError::Dwarf {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut out = Vec::new();
    let mut frames = loader.find_frames(probe).map_err(|e| dwarf(&e))?;
    while let Some(frame) = frames.next().map_err(|e| dwarf(&e))? {
        let function = frame
            .function
            .as_ref()
            .and_then(|n| n.demangle().ok())
            .map(|n| n.into_owned());
        let (file, line, column) = match frame.location {
            Some(l) => (l.file.map(str::to_owned), l.line, l.column),
            None => (None, None, None),
        };
        out.push(Location {
            function,
            file,
            line,
            column,
            inlined: true,
        });
    }
    if let Some(last) = out.last_mut() {
        last.inlined = false;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_parsing() {
        assert_eq!(parse_hex("0x1f"), Some(31));
        assert_eq!(parse_hex("1F"), Some(31));
        assert_eq!(parse_hex("0x"), None);
        assert_eq!(parse_hex("zz"), None);
        assert_eq!(hex(&[0xab, 0x01]), "ab01");
    }

    #[test]
    fn frames_without_a_module_are_refused() {
        let mut s = Symbolizer::new();
        let f = FrameRef {
            module: None,
            offset: Some("0x10"),
            build_id: None,
            return_address: false,
        };
        assert!(matches!(s.symbolize(f), Err(SymbolizeError::NoModule)));
        let f = FrameRef {
            module: Some("/bin/true"),
            offset: Some("nothex"),
            build_id: None,
            return_address: false,
        };
        assert!(matches!(s.symbolize(f), Err(SymbolizeError::BadOffset(_))));
    }
}
