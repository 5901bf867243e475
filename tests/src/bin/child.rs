//! The crashing child of the end-to-end tests: installs crashguard, prints the previous run's
//! report as JSON on stdout, then does what its first argument says.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(scenario)) = (args.next(), args.next()) else {
        eprintln!("usage: crashguard-child REPORT_DIR SCENARIO");
        return ExitCode::from(64);
    };
    let guard = match crashguard::Config::new("child").report_dir(&dir).install() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("install failed: {e}");
            return ExitCode::from(66);
        }
    };
    let previous = guard
        .previous_run()
        .map(|r| serde_json::to_string(r).unwrap_or_default());
    println!("PREVIOUS {}", previous.unwrap_or_else(|| "null".into()));
    crashguard::breadcrumb(&format!("scenario {scenario}"));
    match scenario.as_str() {
        "none" => {}
        "segv" => unsafe { sadness_generator::raise_segfault() },
        "abort" => unsafe { sadness_generator::raise_abort() },
        other => {
            eprintln!("unknown scenario {other}");
            return ExitCode::from(64);
        }
    }
    ExitCode::SUCCESS
}
