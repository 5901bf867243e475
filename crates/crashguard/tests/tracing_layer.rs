//! The `tracing` feature: events at or above the layer's level end up in the black box's
//! breadcrumbs, below it they do not, and other layers still see everything.

#![cfg(feature = "tracing")]

use tracing::Level;
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn events_at_or_above_the_level_become_breadcrumbs() {
    let dir = std::env::temp_dir().join(format!("cg-tracing-layer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let guard = crashguard::Config::new("tracing-layer")
        .report_dir(&dir)
        .panic_policy(crashguard::PanicPolicy::Unwind)
        .install()
        .expect("install");
    let subscriber =
        tracing_subscriber::registry().with(crashguard::tracing::BreadcrumbLayer::new(Level::INFO));
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(peer = "10.0.0.7", port = 8443, "accepted connection");
        tracing::debug!("too chatty to keep");
        tracing::warn!(target: "db", "pool {} of {} in use", 9, 10);
        tracing::error!(error = "broken pipe", "write failed");
        tracing::info!("{}", "x".repeat(500));
    });

    let bytes = std::fs::read(guard.blackbox_path()).expect("read the black box");
    let report = crashguard_blackbox::decode(&bytes).expect("decode the running black box");
    let crumbs: Vec<&str> = report
        .breadcrumbs
        .iter()
        .map(|b| b.message.as_str())
        .collect();
    let target = module_path!();
    assert!(
        crumbs.contains(
            &format!("INFO {target}: accepted connection peer=10.0.0.7 port=8443").as_str()
        ),
        "{crumbs:#?}"
    );
    assert!(
        crumbs.contains(&"WARN db: pool 9 of 10 in use"),
        "{crumbs:#?}"
    );
    assert!(
        crumbs.contains(&format!("ERROR {target}: write failed error=broken pipe").as_str()),
        "{crumbs:#?}"
    );
    assert!(
        !crumbs.iter().any(|c| c.contains("too chatty")),
        "{crumbs:#?}"
    );
    let long = crumbs
        .iter()
        .find(|c| c.contains("xxxx"))
        .expect("the long event is kept, cut");
    assert!(long.len() <= 128, "{} bytes", long.len());
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
}
