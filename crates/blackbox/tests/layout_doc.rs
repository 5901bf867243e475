//! `docs/report-format.md` documents the section offsets; this keeps them true.

use crashguard_blackbox::layout::{
    Breadcrumb, DEFAULT_RING_CAPACITY, DEFAULT_STACK_CAPACITY, Record, file_size,
};
use std::mem::offset_of;

fn sections() -> Vec<(&'static str, usize, usize)> {
    vec![
        (
            "header",
            offset_of!(Record, header),
            size_of::<crashguard_blackbox::layout::Header>(),
        ),
        ("state", offset_of!(Record, state), 4),
        ("claim", offset_of!(Record, claim), 4),
        (
            "session",
            offset_of!(Record, session),
            size_of::<crashguard_blackbox::layout::Session>(),
        ),
        (
            "heartbeat",
            offset_of!(Record, heartbeat),
            size_of::<crashguard_blackbox::layout::Heartbeat>(),
        ),
        (
            "panic",
            offset_of!(Record, panic),
            size_of::<crashguard_blackbox::layout::PanicRecord>(),
        ),
        (
            "shutdown",
            offset_of!(Record, shutdown),
            size_of::<crashguard_blackbox::layout::ShutdownRecord>(),
        ),
        (
            "alloc",
            offset_of!(Record, alloc),
            size_of::<crashguard_blackbox::layout::AllocFailure>(),
        ),
        (
            "end",
            offset_of!(Record, end),
            size_of::<crashguard_blackbox::layout::End>(),
        ),
        (
            "context",
            offset_of!(Record, context),
            size_of::<crashguard_blackbox::layout::Context>(),
        ),
        ("amended", offset_of!(Record, amended), 8),
        (
            "thread_names",
            offset_of!(Record, thread_names),
            size_of::<crashguard_blackbox::layout::ThreadName>(),
        ),
        ("breadcrumbs", size_of::<Record>(), size_of::<Breadcrumb>()),
    ]
}

#[test]
fn report_format_doc_matches_the_layout() {
    let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/report-format.md");
    let doc = std::fs::read_to_string(doc_path).expect("docs/report-format.md exists");
    let mut expected = String::new();
    for (name, off, size) in sections() {
        expected.push_str(&format!("| `{name}` | {off} | {size} |\n"));
    }
    expected.push_str(&format!(
        "\nDefault file size: {} bytes.\n",
        file_size(DEFAULT_RING_CAPACITY, DEFAULT_STACK_CAPACITY)
    ));
    if std::env::var_os("CRASHGUARD_BLESS").is_some() {
        println!("{expected}");
    }
    for line in expected.lines().filter(|l| !l.is_empty()) {
        assert!(
            doc.contains(line),
            "docs/report-format.md lacks the line {line:?}; the table should read:\n{expected}"
        );
    }
}
