//! Where a module's symbols come from: its separate debug file (found by build id under
//! `/usr/lib/debug/.build-id/`, or by its `.gnu_debuglink`), and a size-aware symbol table.
//!
//! Distributions ship libraries stripped, with the debug information in a package of its own
//! (`libc6-dbg`, `*-dbgsym`, `*-debuginfo`) installed as `<debug dir>/.build-id/ab/cdef….debug`.
//! GDB and GNU addr2line look there first, then follow the `.gnu_debuglink` section (a file name
//! and a CRC-32) in the module's directory, its `.debug/` subdirectory and under the debug
//! directory. This module does the same, in the same order, and accepts a candidate only when
//! its build id equals the module's (or, for a file without one, when its CRC-32 matches the
//! debug link's).
//!
//! A stripped library keeps only its dynamic symbols, and many of its functions are static
//! (`start_thread` in libc). A lookup that takes the nearest symbol below an address names such
//! a function after whatever exported symbol happens to precede it; here a symbol covers only
//! `[address, address + size)`, so such an address gets no name rather than a wrong one, and is
//! shown as `module+0xoffset`.

use std::fs::File;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSymbol, ReadCache, SymbolKind};

/// Where distributions install separate debug files.
pub const DEFAULT_DEBUG_DIR: &str = "/usr/lib/debug";

/// One function symbol: start, size, raw (mangled) name.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sym {
    address: u64,
    size: u64,
    name: String,
}

/// The function symbols of a module and its debug file, sorted by address.
#[derive(Clone, Debug, Default)]
pub struct SymbolTable {
    symbols: Vec<Sym>,
}

impl SymbolTable {
    /// Reads the function symbols (`.symtab` and `.dynsym`) of each file that parses; files that
    /// cannot be read add nothing.
    pub fn read(files: &[&Path]) -> SymbolTable {
        let mut symbols = Vec::new();
        for path in files {
            let Ok(file) = File::open(path) else { continue };
            let cache = ReadCache::new(file);
            let Ok(obj) = object::File::parse(&cache) else {
                continue;
            };
            for s in obj.symbols().chain(obj.dynamic_symbols()) {
                if s.kind() != SymbolKind::Text || s.size() == 0 || s.is_undefined() {
                    continue;
                }
                let Ok(name) = s.name() else { continue };
                if name.is_empty() {
                    continue;
                }
                symbols.push(Sym {
                    address: s.address(),
                    size: s.size(),
                    name: name.to_owned(),
                });
            }
        }
        SymbolTable::from_entries(symbols)
    }

    fn from_entries(mut symbols: Vec<Sym>) -> SymbolTable {
        // For aliases (one address, several names) the first name in this order wins: global
        // names before local ones is not knowable here, so the shortest, then the first
        // alphabetically, which keeps `clone3` ahead of `__clone3`-style aliases stable.
        symbols.sort_by(|a, b| {
            (a.address, a.name.starts_with('_'), a.name.len(), &a.name).cmp(&(
                b.address,
                b.name.starts_with('_'),
                b.name.len(),
                &b.name,
            ))
        });
        symbols.dedup_by(|later, first| later.address == first.address && later.size == first.size);
        SymbolTable { symbols }
    }

    /// Builds a table from `(address, size, name)` entries (for tests and other tools).
    pub fn from_symbols<'a>(entries: impl IntoIterator<Item = (u64, u64, &'a str)>) -> SymbolTable {
        SymbolTable::from_entries(
            entries
                .into_iter()
                .filter(|&(_, size, name)| size > 0 && !name.is_empty())
                .map(|(address, size, name)| Sym {
                    address,
                    size,
                    name: name.to_owned(),
                })
                .collect(),
        )
    }

    /// The raw name of the function symbol whose range contains `address`; the innermost
    /// (smallest) one when ranges nest. `None` when no symbol covers it.
    pub fn lookup(&self, address: u64) -> Option<&str> {
        // Symbols starting at or below the address, nearest first; a covering symbol is among
        // the few nearest, since functions do not nest deeply.
        let end = self.symbols.partition_point(|s| s.address <= address);
        self.symbols
            .get(..end)?
            .iter()
            .rev()
            .take(64)
            .filter(|s| address - s.address < s.size)
            .min_by_key(|s| s.size)
            .map(|s| s.name.as_str())
    }

    /// How many symbols the table holds.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }
}

/// What the module file says about its separate debug file.
#[derive(Clone, Debug, Default)]
pub struct DebugLink {
    /// The `.gnu_debuglink` file name.
    pub name: Option<String>,
    /// Its CRC-32.
    pub crc: u32,
}

/// Reads the `.gnu_debuglink` of an object file.
pub fn debug_link(path: &Path) -> DebugLink {
    let link = (|| {
        let file = File::open(path).ok()?;
        let cache = ReadCache::new(file);
        let obj = object::File::parse(&cache).ok()?;
        let (name, crc) = obj.gnu_debuglink().ok()??;
        Some(DebugLink {
            name: Some(String::from_utf8_lossy(name).into_owned()),
            crc,
        })
    })();
    link.unwrap_or_default()
}

/// The build id of an object file, hex, when it parses and has one.
fn build_id_hex(path: &Path) -> Option<String> {
    let file = File::open(path).ok()?;
    let cache = ReadCache::new(file);
    let obj = object::File::parse(&cache).ok()?;
    obj.build_id().ok()?.map(crate::symbolize::hex)
}

/// Whether `candidate` is the debug file of a module with `build_id` and `link`.
fn matches(candidate: &Path, build_id: Option<&str>, link: Option<&DebugLink>) -> bool {
    if !candidate.is_file() {
        return false;
    }
    match (build_id_hex(candidate), build_id) {
        (Some(found), Some(want)) => found.eq_ignore_ascii_case(want),
        // No build id to compare: the debug link's CRC-32 of the whole file decides.
        _ => match link {
            Some(l) => std::fs::read(candidate)
                .is_ok_and(|bytes| crashguard_blackbox::crc32(&bytes) == l.crc),
            None => false,
        },
    }
}

/// The separate debug file of the module at `module` (with `build_id`, hex), searched in
/// `debug_dirs` the way GDB does: `<dir>/.build-id/ab/cdef….debug` first, then the
/// `.gnu_debuglink` name next to the module, in its `.debug/`, and under `<dir>/<module dir>/`.
pub fn find_debug_file(
    module: &Path,
    build_id: Option<&str>,
    debug_dirs: &[PathBuf],
) -> Option<PathBuf> {
    if let Some(id) = build_id.filter(|id| id.len() > 2 && id.is_ascii())
        && let (Some(head), Some(tail)) = (id.get(..2), id.get(2..))
    {
        for dir in debug_dirs {
            let candidate = dir
                .join(".build-id")
                .join(head.to_ascii_lowercase())
                .join(format!("{}.debug", tail.to_ascii_lowercase()));
            if matches(&candidate, Some(id), None) {
                return Some(candidate);
            }
        }
    }
    let link = debug_link(module);
    let name = link.name.as_deref()?;
    // The link is a bare file name; anything with a directory in it is not followed.
    if name.contains('/') || name.is_empty() {
        return None;
    }
    let module_dir = module.parent().unwrap_or(Path::new("/"));
    let mut candidates = vec![module_dir.join(name), module_dir.join(".debug").join(name)];
    for dir in debug_dirs {
        let relative = module_dir.strip_prefix("/").unwrap_or(module_dir);
        candidates.push(dir.join(relative).join(name));
    }
    candidates
        .into_iter()
        .filter(|c| c != module)
        .find(|c| matches(c, build_id, Some(&link)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symbol_covers_only_its_own_range() {
        let t = SymbolTable::from_symbols([
            (0x1000, 0x40, "exported_a"),
            // A gap: a static function of a stripped library lives at 0x1040..0x1100.
            (0x1100, 0x10, "exported_b"),
            (0x1200, 0x100, "outer"),
            (0x1220, 0x20, "inner_label"),
            (0x1300, 0, "unsized"),
        ]);
        assert_eq!(t.lookup(0x1000), Some("exported_a"));
        assert_eq!(t.lookup(0x103f), Some("exported_a"));
        assert_eq!(t.lookup(0x1040), None, "the nearest symbol below is not it");
        assert_eq!(t.lookup(0x10ff), None);
        assert_eq!(t.lookup(0x1105), Some("exported_b"));
        assert_eq!(t.lookup(0x1230), Some("inner_label"), "innermost range");
        assert_eq!(t.lookup(0x1250), Some("outer"));
        assert_eq!(t.lookup(0x1300), None, "unsized symbols are dropped");
        assert_eq!(t.lookup(0x10), None);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn aliases_pick_one_name_stably() {
        let a = SymbolTable::from_symbols([(0x10, 8, "__clone3"), (0x10, 8, "clone3")]);
        let b = SymbolTable::from_symbols([(0x10, 8, "clone3"), (0x10, 8, "__clone3")]);
        assert_eq!(a.lookup(0x12), Some("clone3"));
        assert_eq!(b.lookup(0x12), Some("clone3"));
    }
}
