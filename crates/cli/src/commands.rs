//! The subcommands, as functions from their arguments to the text they print.

use std::path::Path;

use serde::Serialize;

use crate::backtrace::{self, Options};
use crate::error::Error;
use crate::input::{self, BoxInfo, BoxState, Loaded};
use crate::{list, render};

/// What a command prints.
#[derive(Debug, Default)]
pub struct Output {
    /// For standard output.
    pub stdout: String,
    /// Warnings for standard error (kept off standard output so `--json` stays parseable).
    pub warnings: Vec<String>,
}

fn json<T: Serialize>(value: &T) -> String {
    // The values printed are plain data with string keys, which always serialize.
    let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
    s.push('\n');
    s
}

/// `crashguard list DIR`, or with `group`, `crashguard list --group DIR`.
pub fn list(dir: &Path, as_json: bool, group: bool) -> Result<Output, Error> {
    let l = list::listing(dir)?;
    let stdout = match (group, as_json) {
        (false, false) => list::render(&l),
        (false, true) => json(&l),
        (true, false) => list::render_groups(&list::group(&l)),
        (true, true) => json(&list::group(&l)),
    };
    Ok(Output {
        stdout,
        warnings: Vec::new(),
    })
}

/// Renders a loaded report. `show --json` prints exactly the report's schema; `inspect --json`
/// wraps it with what the black box itself says.
fn present(loaded: &Loaded, as_json: bool, opts: &Options, inspecting: bool) -> Output {
    let bt = backtrace::resolve(&loaded.report, opts);
    if !as_json {
        // Every string of the report came from the crashed process or from a file someone
        // may have edited: escaped before it reaches the terminal.
        let shown = crashguard_blackbox::escape_report(&loaded.report);
        let stdout = render::report(&loaded.path, &shown, loaded.blackbox.as_ref(), &bt);
        return Output {
            stdout,
            warnings: Vec::new(),
        };
    }
    let report = backtrace::apply(&loaded.report, &bt);
    let stdout = match loaded.blackbox.as_ref().filter(|_| inspecting) {
        None => json(&report),
        Some(info) => {
            #[derive(Serialize)]
            struct Inspected<'a> {
                path: &'a Path,
                black_box: &'a BoxInfo,
                process_alive: Option<bool>,
                report: &'a crashguard_blackbox::Report,
            }
            let alive = (info.state == BoxState::Running)
                .then(|| input::pid_alive(report.pid))
                .flatten();
            json(&Inspected {
                path: &loaded.path,
                black_box: info,
                process_alive: alive,
                report: &report,
            })
        }
    };
    Output {
        stdout,
        warnings: bt.notes,
    }
}

/// The newest thing to show in a report directory: the newest readable report, or a black box
/// whose process is gone (what its next run will report) when that is more recent. Unreadable
/// report files newer than the one chosen are skipped, each with a warning.
pub fn newest(dir: &Path) -> Result<(Loaded, Vec<String>), Error> {
    // The directory is streamed; of the newest files, the first readable one is taken.
    let found = input::report_files(dir, list::MAX_LISTED)?;
    let searched = found.searched;
    let mut warnings = Vec::new();
    let mut first_error = None;
    let mut chosen = None;
    for file in found.files {
        match input::load_file(&file.path) {
            Ok(l) => {
                chosen = Some(l);
                break;
            }
            Err(e) => {
                warnings.push(format!(
                    "skipped an unreadable report: {}",
                    crate::error::chain(&e)
                ));
                first_error.get_or_insert(e);
            }
        }
    }
    let root = searched.parent().unwrap_or(dir);
    for path in input::blackbox_files(root, list::MAX_LISTED) {
        let Ok(l) = input::load_blackbox(&path) else {
            continue;
        };
        if !l.blackbox.as_ref().is_some_and(BoxInfo::abandoned) {
            continue;
        }
        let newer = match &chosen {
            Some(c) => list::last_seen(&l.report) > list::last_seen(&c.report),
            None => true,
        };
        if newer {
            chosen = Some(l);
        }
    }
    match (chosen, first_error) {
        (Some(l), _) => Ok((l, warnings)),
        (None, Some(e)) => Err(e),
        (None, None) => Err(Error::NoReports { dir: searched }),
    }
}

/// `crashguard show TARGET`: the newest report of a directory, a report file or a black box.
pub fn show(target: &Path, as_json: bool, opts: &Options) -> Result<Output, Error> {
    let meta = std::fs::metadata(target).map_err(|e| Error::read(target, e))?;
    let (loaded, skipped) = if meta.is_dir() {
        newest(target)?
    } else {
        (input::load_file(target)?, Vec::new())
    };
    let mut out = present(&loaded, as_json, opts, false);
    out.warnings.splice(0..0, skipped);
    Ok(out)
}

/// `crashguard export --minidump TARGET -o FILE`: the report (the newest of a directory) as a
/// minidump.
pub fn export_minidump(target: &Path, output: &Path) -> Result<Output, Error> {
    let meta = std::fs::metadata(target).map_err(|e| Error::read(target, e))?;
    let (loaded, warnings) = if meta.is_dir() {
        newest(target)?
    } else {
        (input::load_file(target)?, Vec::new())
    };
    let bytes =
        crashguard_minidump::write_minidump(&loaded.report).map_err(|source| Error::Export {
            path: loaded.path.clone(),
            source,
        })?;
    std::fs::write(output, &bytes).map_err(|source| Error::WriteFile {
        path: output.to_owned(),
        source,
    })?;
    Ok(Output {
        stdout: format!(
            "wrote {} ({} bytes) from {}: {}\n",
            output.display(),
            bytes.len(),
            loaded.path.display(),
            loaded.report
        ),
        warnings,
    })
}

/// `crashguard inspect FILE`: a raw black box only.
pub fn inspect(file: &Path, as_json: bool, opts: &Options) -> Result<Output, Error> {
    if file.is_dir() {
        return Err(Error::Usage(format!(
            "{} is a directory; inspect takes a black-box file (see `crashguard list {}`)",
            file.display(),
            file.display()
        )));
    }
    Ok(present(&input::load_blackbox(file)?, as_json, opts, true))
}

/// The exit status of a death by the signal named `s` (`SIGKILL`, `sigkill`, `KILL`): `128 + n`.
fn signal_status(s: &str) -> Option<u8> {
    let upper = s.trim().to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    (1..=31u32)
        .find(|&n| crashguard_blackbox::signal_name(n) == Some(name.as_str()))
        .and_then(|n| u8::try_from(128 + n).ok())
}

/// Parses an exit status: a whole number from 0 to 255, or a signal name (`SIGKILL` means 137,
/// the status of a death by that signal).
pub fn parse_status(s: &str) -> Result<u8, Error> {
    if let Some(status) = signal_status(s) {
        return Ok(status);
    }
    let expected = format!(
        "invalid exit status {s:?}: expected a whole number from 0 to 255 or a signal name (SIGKILL)"
    );
    let n: i64 = s
        .trim()
        .parse()
        .map_err(|_| Error::Usage(expected.clone()))?;
    if let Ok(status) = u8::try_from(n) {
        return Ok(status);
    }
    Err(Error::Usage(if n < 0 {
        format!(
            "{expected} (a process that calls exit({n}) is seen as {})",
            n.rem_euclid(256)
        )
    } else {
        format!("{expected} (an exit status is one byte)")
    }))
}

/// `crashguard explain STATUS`.
pub fn explain(status: &str, as_json: bool) -> Result<Output, Error> {
    let e = crashguard_blackbox::explain::explain(parse_status(status)?);
    let stdout = if as_json { json(&e) } else { e.to_string() };
    Ok(Output {
        stdout,
        warnings: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn statuses() {
        assert_eq!(parse_status("0").ok(), Some(0));
        assert_eq!(parse_status(" 255 ").ok(), Some(255));
        assert!(parse_status("256").is_err());
        assert!(
            parse_status("-1")
                .unwrap_err()
                .to_string()
                .contains("seen as 255")
        );
        assert!(parse_status("abc").is_err());
        assert_eq!(parse_status("SIGKILL").ok(), Some(137));
        assert_eq!(parse_status("sigsegv").ok(), Some(139));
        assert_eq!(parse_status("TERM").ok(), Some(143));
        assert_eq!(parse_status("SIGHUP").ok(), Some(129));
        assert!(parse_status("SIGNOPE").is_err());
        assert!(parse_status("").is_err());
    }

    proptest! {
        #[test]
        fn explain_never_fails_for_a_byte(n in any::<u8>()) {
            let out = explain(&n.to_string(), false).expect("valid status");
            let prefix = format!("exit status {n}: ");
            prop_assert!(out.stdout.starts_with(&prefix));
            let out = explain(&n.to_string(), true).expect("valid status");
            let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
            prop_assert_eq!(v["status"].as_u64(), Some(u64::from(n)));
        }

        #[test]
        fn parse_status_never_panics(s in ".*") {
            let _ = parse_status(&s);
        }
    }
}
