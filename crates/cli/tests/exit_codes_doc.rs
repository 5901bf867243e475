//! `docs/exit-codes.md` is generated from the `ExitCode` table; this test fails when the
//! committed file differs. `CRASHGUARD_BLESS=1` rewrites it instead.

use std::path::Path;

#[test]
fn exit_codes_doc_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/exit-codes.md");
    let generated = crashguard_cli::exit_codes::markdown();
    if std::env::var_os("CRASHGUARD_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write docs/exit-codes.md");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/exit-codes.md is out of date with the ExitCode table; regenerate it with\n  \
         CRASHGUARD_BLESS=1 cargo test -p crashguard-cli --test exit_codes_doc\n--- generated ---\n{generated}"
    );
}

#[test]
fn every_exit_code_is_in_the_doc() {
    let doc = crashguard_cli::exit_codes::markdown();
    for code in crashguard_blackbox::ExitCode::ALL {
        let row = format!(
            "| {} | `{}` | {} |",
            code.code(),
            code.name(),
            code.meaning()
        );
        assert!(doc.contains(&row), "missing row {row}");
    }
}
