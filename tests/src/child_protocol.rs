//! The children's side of the protocol the harness speaks: one line per event on stdout,
//! flushed at once so the parent sees it even if the next instruction crashes.

use std::io::Write;
use std::process::ExitCode;

/// Prints one protocol line and flushes it.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// An error and all its sources, joined by ": ".
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Installs crashguard and announces the result: `INSTALL_ERROR <chain>` (and exit status 66),
/// or `PREVIOUS <report json | null>` followed by `INSTALLED <json>` with the black box's path,
/// where the previous report was stored, and why the previous black box was unreadable.
pub fn install_and_announce(config: crashguard::Config) -> Result<crashguard::Guard, ExitCode> {
    let guard = match config.install() {
        Ok(g) => g,
        Err(e) => {
            say(&format!("INSTALL_ERROR {}", chain(&e)));
            return Err(ExitCode::from(66));
        }
    };
    let previous = guard
        .previous_run()
        .map(|r| serde_json::to_string(r).unwrap_or_default());
    say(&format!(
        "PREVIOUS {}",
        previous.unwrap_or_else(|| "null".into())
    ));
    let installed = serde_json::json!({
        "blackbox": guard.blackbox_path(),
        "stored_at": guard.previous().stored_at(),
        "previous_error": guard.previous().read_error().map(|e| e.to_string()),
        "previous_saved_to": guard.previous().read_error().and_then(|e| e.saved_to.clone()),
        "store_error": guard.previous().store_error().map(|e| chain(e)),
    });
    say(&format!("INSTALLED {installed}"));
    Ok(guard)
}
