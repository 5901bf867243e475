//! `crashguard`: list, show, symbolize and explain crash reports and exit statuses.
//!
//! Exit statuses: 0 success, 64 bad command line, 65 unreadable input (corrupt or truncated
//! black box, invalid report JSON), 66 no such input or no report, 74 read or write failure.

#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use crashguard_cli::backtrace::Options;
use crashguard_cli::commands::{self, Output};
use crashguard_cli::{CliExit, Error};

#[derive(Debug, Parser)]
#[command(
    name = "crashguard",
    version,
    about = "Read crashguard crash reports and black boxes, and explain exit statuses",
    after_help = "Exit statuses: 0 ok, 64 usage, 65 unreadable input, 66 no input, 74 i/o error."
)]
struct Cli {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the reports of a report directory, newest first, and its black boxes.
    List {
        /// The report directory (the one given to `Config::report_dir`) or its `reports/`.
        dir: PathBuf,
        /// Count reports per crash signature instead of listing each one.
        #[arg(long)]
        group: bool,
    },
    /// Show a report: the newest in a directory, a report JSON file, or a raw black box.
    Show {
        /// A report directory, a report `.json` file, or a black-box file.
        target: PathBuf,
        #[command(flatten)]
        symbols: SymbolArgs,
    },
    /// Decode a raw black-box file, even one a running or vanished process left.
    Inspect {
        /// The black-box file (`<report dir>/blackbox/<app>.<slot>.box`).
        file: PathBuf,
        #[command(flatten)]
        symbols: SymbolArgs,
    },
    /// Export a report as a minidump for minidump-stackwalk, Sentry, Socorro or Backtrace.
    Export {
        /// Write a minidump (the only export format so far).
        #[arg(long, required = true)]
        minidump: bool,
        /// A report directory (its newest report), a report `.json` file, or a black-box file.
        target: PathBuf,
        /// The file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Explain what an exit status from 0 to 255 means and what usually causes it.
    Explain {
        /// The exit status, as a shell, docker or Kubernetes reports it (e.g. 137), or a signal
        /// name (SIGKILL: the status of a death by that signal).
        #[arg(allow_hyphen_values = true)]
        status: String,
    },
}

#[derive(Debug, clap::Args)]
struct SymbolArgs {
    /// Symbolize the executable's frames with this file instead of the recorded path (its build
    /// id must match the one recorded).
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
    /// Print frames as recorded, without opening any binary.
    #[arg(long)]
    no_symbolize: bool,
    /// Look for separate debug files (`.build-id/ab/cdef….debug`, `.gnu_debuglink` names) under
    /// this directory instead of /usr/lib/debug; may be given several times.
    #[arg(long, value_name = "DIR")]
    debug_dir: Vec<PathBuf>,
    /// Also read file and line numbers for frames in libraries whose debug information is a
    /// separate debug file (libc6-dbg and the like). Without it those frames are named from the
    /// debug file's symbol table only: such files are compressed, and inflating them is most of
    /// the time `show` takes.
    #[arg(long)]
    library_lines: bool,
}

impl SymbolArgs {
    fn options(&self) -> Options {
        Options {
            disabled: self.no_symbolize,
            binary: self.binary.clone(),
            debug_dirs: self.debug_dir.clone(),
            library_lines: self.library_lines,
        }
    }
}

fn run(cli: &Cli) -> Result<Output, Error> {
    match &cli.command {
        Command::List { dir, group } => commands::list(dir, cli.json, *group),
        Command::Show { target, symbols } => commands::show(target, cli.json, &symbols.options()),
        Command::Inspect { file, symbols } => commands::inspect(file, cli.json, &symbols.options()),
        Command::Explain { status } => commands::explain(status, cli.json),
        Command::Export { target, output, .. } => commands::export_minidump(target, output),
    }
}

/// Prints an error with its chain of causes: `crashguard: cannot read x: Permission denied`.
fn report_error(e: &Error) {
    let line = crashguard_cli::error::chain(e);
    eprintln!("crashguard: {}", crashguard_blackbox::escape_control(&line));
}

fn exit(code: CliExit) -> ExitCode {
    ExitCode::from(code.code())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    exit(CliExit::Ok)
                }
                _ => exit(CliExit::Usage),
            };
        }
    };
    match run(&cli) {
        Ok(out) => {
            for w in &out.warnings {
                eprintln!(
                    "crashguard: warning: {}",
                    crashguard_blackbox::escape_control(w)
                );
            }
            // The commands escape what they print; this is the last line of defence of the
            // terminal against anything that slipped through.
            let text = if cli.json {
                crashguard_blackbox::json_terminal_safe(&out.stdout)
            } else {
                crashguard_blackbox::terminal_safe(&out.stdout)
            };
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => exit(CliExit::Ok),
                // A reader that stopped early (`crashguard list DIR | head`) is not a failure.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit(CliExit::Ok),
                Err(e) => {
                    let e = Error::Write(e);
                    report_error(&e);
                    exit(e.exit())
                }
            }
        }
        Err(e) => {
            report_error(&e);
            exit(e.exit())
        }
    }
}
