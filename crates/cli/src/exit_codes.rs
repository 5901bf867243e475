//! `docs/exit-codes.md`, generated from [`ExitCode::ALL`], [`explain`] and the CLI's own
//! [`CliExit`] table, so the document cannot drift from the code. A test in
//! `crates/cli/tests/exit_codes_doc.rs` compares the committed file with this output.

use std::fmt::Write;

use crashguard_blackbox::ExitCode;
use crashguard_blackbox::explain::explain;

use crate::error::CliExit;

/// Statuses an operator commonly meets that are not crashguard's, explained in the document.
const COMMON: [u8; 19] = [
    1, 2, 64, 65, 101, 124, 125, 126, 127, 130, 134, 135, 136, 137, 139, 141, 143, 203, 255,
];

/// The report outcome each code goes with: the code's own name, except for a clean exit.
fn outcome(code: ExitCode) -> &'static str {
    if code == ExitCode::Ok {
        "clean_exit"
    } else {
        code.name()
    }
}

/// The whole document.
pub fn markdown() -> String {
    let mut s = String::new();
    // Writing into a String cannot fail.
    let _ = write_doc(&mut s);
    s
}

fn write_doc(s: &mut String) -> std::fmt::Result {
    writeln!(s, "# Exit codes")?;
    writeln!(s)?;
    writeln!(
        s,
        "<!-- Generated from `crashguard_blackbox::ExitCode` and `crashguard_blackbox::explain` by \
         crates/cli/tests/exit_codes_doc.rs. Do not edit by hand: run \
         `CRASHGUARD_BLESS=1 cargo test -p crashguard-cli --test exit_codes_doc` to regenerate. -->"
    )?;
    writeln!(s)?;
    writeln!(
        s,
        "crashguard ends a process with one of these codes, and `crashguard explain <status>` explains \
         them and every other status from 0 to 255."
    )?;
    writeln!(s)?;
    writeln!(s, "## crashguard's codes")?;
    writeln!(s)?;
    writeln!(s, "| code | name | meaning | report outcome |")?;
    writeln!(s, "|---:|---|---|---|")?;
    for code in ExitCode::ALL {
        let (name, o) = (code.name(), outcome(code));
        writeln!(
            s,
            "| {} | `{name}` | {} | `{o}` |",
            code.code(),
            code.meaning()
        )?;
    }
    writeln!(
        s,
        "| 128+n | | fatal signal n, when the fatal policy is `Exit` instead of the default re-raise | `fatal_signal` |"
    )?;
    writeln!(s)?;
    writeln!(
        s,
        "The numbers avoid 1–2 (too generic), 126–165 (the shells' own codes and 128+signal) and \
         200–243 (systemd's codes), so an operator can tell crashguard's deliberate exits from \
         everything else. 70 is also BSD's `EX_SOFTWARE`, which a panic is."
    )?;
    writeln!(s)?;
    writeln!(
        s,
        "An application ends with its own code through `guard.exit(ExitCode::app(n)?)`, which          accepts 1–125 except 80–84 (1, 2, the `sysexits` codes 64–78, ...); its report's outcome          is `exit` with that status. So is an exit made outside crashguard (`std::process::exit`,          `libc::exit`, `main` returning another status after the guard was dropped)."
    )?;
    writeln!(s)?;
    writeln!(s, "## Other statuses you will meet")?;
    writeln!(s)?;
    writeln!(s, "| status | most likely meaning |")?;
    writeln!(s, "|---:|---|")?;
    for status in COMMON {
        let e = explain(status);
        // For a signal the summary names it; the signal's own description says what it means.
        let signal = e.meanings.iter().find(|m| {
            e.signal.is_some() && m.name == e.signal.as_ref().map_or("", |s| s.name.as_str())
        });
        let text = match signal {
            Some(m) => format!("{}: {}", e.summary, m.description),
            None => e.summary.clone(),
        };
        writeln!(s, "| {status} | {} |", text.replace('|', "\\|"))?;
    }
    writeln!(s)?;
    writeln!(
        s,
        "A shell, docker and Kubernetes report a death by signal n as 128+n; `waitpid` reports it as \
         \"killed by signal n\". Run `crashguard explain <status>` for the causes and what to check."
    )?;
    writeln!(s)?;
    writeln!(s, "## The `crashguard` command's own exit codes")?;
    writeln!(s)?;
    writeln!(s, "| code | meaning |")?;
    writeln!(s, "|---:|---|")?;
    for c in CliExit::ALL {
        writeln!(s, "| {} | {} |", c.code(), c.meaning())?;
    }
    Ok(())
}
