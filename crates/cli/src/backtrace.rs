//! Symbolizing a report's backtrace: which module to open for each frame, what to say about
//! frames that stay raw, and how the result goes back into the report's JSON form.

use std::path::PathBuf;

use crashguard_blackbox::{Frame, Report};

use crate::symbolize::{FrameRef, Location, SymbolizeError, Symbolizer};

/// How to symbolize.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Leave every frame as recorded.
    pub disabled: bool,
    /// Use this file in place of the crashed executable.
    pub binary: Option<PathBuf>,
    /// Directories to search for separate debug files; empty means `/usr/lib/debug`.
    pub debug_dirs: Vec<PathBuf>,
    /// Read file and line from the separate debug files of libraries too (see
    /// [`Symbolizer::library_lines`]); by default their frames are named from symbols only.
    pub library_lines: bool,
}

/// One frame and what it resolved to.
#[derive(Clone, Debug)]
pub struct ResolvedFrame {
    /// Position in the recorded backtrace, innermost first.
    pub index: usize,
    /// The frame as recorded.
    pub frame: Frame,
    /// Source locations, innermost inlined function first; empty when unresolved.
    pub locations: Vec<Location>,
    /// Why the frame stayed raw, when symbolization was attempted and failed.
    pub error: Option<String>,
}

/// A symbolized backtrace.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    /// The frames, innermost first.
    pub frames: Vec<ResolvedFrame>,
    /// One line per module that could not be used (missing file, build-id mismatch, ...).
    pub notes: Vec<String>,
}

/// The executable's path as the report names it.
pub fn executable_of(report: &Report) -> Option<&str> {
    report
        .executable
        .as_deref()
        .or_else(|| report.modules.first().map(|m| m.path.as_str()))
}

/// Symbolizes every frame of `report` that is not symbolized yet (all of them with `--binary`).
pub fn resolve(report: &Report, opts: &Options) -> Resolved {
    let mut symbolizer = match &opts.binary {
        Some(binary) => Symbolizer::new().with_binary(executable_of(report), binary.clone()),
        None => Symbolizer::new(),
    };
    if !opts.debug_dirs.is_empty() {
        symbolizer = symbolizer.with_debug_dirs(opts.debug_dirs.clone());
    }
    symbolizer = symbolizer.library_lines(executable_of(report), opts.library_lines);
    let recorded = |frame: &Frame| {
        frame.symbol.as_ref().map(|symbol| Location {
            function: Some(symbol.clone()),
            file: frame.file.clone(),
            line: frame.line,
            ..Location::default()
        })
    };
    let wanted =
        |frame: &Frame| !opts.disabled && (frame.symbol.is_none() || opts.binary.is_some());
    // Every frame to look up, in one call: the symbolizer names what DWARF leaves unnamed
    // with one pass over each module's symbol table for all of them.
    let refs: Vec<FrameRef<'_>> = report
        .backtrace
        .iter()
        .enumerate()
        .filter(|(_, frame)| wanted(frame))
        .map(|(index, frame)| FrameRef {
            module: frame.module.as_deref(),
            offset: frame.offset.as_deref(),
            build_id: frame.build_id.as_deref(),
            return_address: index > 0,
        })
        .collect();
    let mut looked_up = symbolizer.symbolize_all(&refs).into_iter();
    let frames = report
        .backtrace
        .iter()
        .enumerate()
        .map(|(index, frame)| {
            let result = if wanted(frame) {
                looked_up.next()
            } else {
                None
            };
            match result {
                None => ResolvedFrame {
                    index,
                    frame: frame.clone(),
                    locations: recorded(frame).into_iter().collect(),
                    error: None,
                },
                Some(Ok(locations)) => ResolvedFrame {
                    index,
                    frame: frame.clone(),
                    locations,
                    error: None,
                },
                Some(Err(e)) => ResolvedFrame {
                    index,
                    frame: frame.clone(),
                    locations: recorded(frame).into_iter().collect(),
                    error: Some(crate::error::chain(&e)),
                },
            }
        })
        .collect();
    let mut notes: Vec<String> = symbolizer
        .failures()
        .into_iter()
        .map(|(path, e)| {
            let hint = match e {
                SymbolizeError::Open { .. } if opts.binary.is_none() => {
                    " (pass --binary PATH with a copy of the executable that crashed)"
                }
                _ => "",
            };
            format!(
                "frames in {} left raw: {}{hint}",
                path.display(),
                crate::error::chain(&e)
            )
        })
        .collect();
    notes.extend(symbolizer.unverified().into_iter().map(|path| {
        format!(
            "frames in {} symbolized without a recorded build id to check: they are right only if this is the binary that crashed",
            path.display()
        )
    }));
    Resolved { frames, notes }
}

/// The report with its backtrace replaced by the symbolized one. A frame whose address lies in
/// inlined code becomes one entry per function (sharing `ip`, innermost first), as Rust's own
/// backtraces print them.
pub fn apply(report: &Report, resolved: &Resolved) -> Report {
    let mut out = report.clone();
    out.backtrace = resolved
        .frames
        .iter()
        .flat_map(|rf| {
            if rf.locations.is_empty() {
                return vec![rf.frame.clone()];
            }
            rf.locations
                .iter()
                .map(|l| {
                    let mut frame = rf.frame.clone();
                    frame.symbol = l.function.clone();
                    frame.file = l.file.clone();
                    frame.line = l.line;
                    frame
                })
                .collect()
        })
        .collect();
    out
}
