//! The `tracing` feature: crashguard's own lifecycle arrives as structured events under the
//! target `crashguard` — the previous run's report once at install, the shutdown, each hook and
//! the end — and the `BreadcrumbLayer` does not copy them into the black box a second time.

#![cfg(feature = "tracing")]

use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// One event as seen: level, message and fields as strings.
#[derive(Debug, Default, Clone)]
struct Seen {
    level: String,
    fields: Vec<(String, String)>,
}

impl Seen {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Visit for Seen {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.fields
            .push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.fields
            .push((field.name().to_owned(), value.to_owned()));
    }
}

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Seen>>>);

impl<S: Subscriber> Layer<S> for Collect {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "crashguard" {
            return;
        }
        let mut seen = Seen {
            level: event.metadata().level().to_string(),
            ..Seen::default()
        };
        event.record(&mut seen);
        self.0.lock().expect("events").push(seen);
    }
}

#[test]
fn the_lifecycle_and_the_previous_run_arrive_as_events() {
    let dir = std::env::temp_dir().join(format!("cg-tracing-events-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let collect = Collect::default();
    let subscriber = tracing_subscriber::registry().with(collect.clone()).with(
        crashguard::tracing::BreadcrumbLayer::new(tracing::Level::INFO),
    );
    // Global, because the shutdown's events come from crashguard's coordinator thread; this
    // test binary has no other test that could mind.
    tracing::subscriber::set_global_default(subscriber).expect("the first subscriber");
    {
        let config = || {
            crashguard::Config::new("tracing-events")
                .report_dir(&dir)
                .panic_policy(crashguard::PanicPolicy::Unwind)
                .previous_run_to_stderr(false)
        };
        // A first run that ends cleanly, so the second has a previous run to announce.
        drop(config().install().expect("install"));
        let guard = config().install().expect("install again");
        guard.on_shutdown("flush", || {});
        let _ = guard.shutdown(crashguard::ExitCode::Ok);
    }
    let events = collect.0.lock().expect("events").clone();
    let message = |e: &Seen| e.get("message").unwrap_or_default().to_owned();
    let previous: Vec<&Seen> = events
        .iter()
        .filter(|e| message(e).starts_with("previous run: "))
        .collect();
    assert_eq!(previous.len(), 1, "{events:#?}");
    let p = previous[0];
    assert_eq!(p.level, "INFO");
    assert_eq!(p.get("outcome"), Some("clean_exit"));
    let report: serde_json::Value =
        serde_json::from_str(p.get("report").unwrap_or_default()).expect("the report as JSON");
    assert_eq!(report["app"], "tracing-events");
    let hook = events
        .iter()
        .find(|e| e.get("hook") == Some("flush"))
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(hook.get("status"), Some("ok"));
    let requested = events
        .iter()
        .find(|e| message(e) == "shutdown requested")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(requested.get("kind"), Some("app"), "{requested:#?}");
    let ended = events
        .iter()
        .find(|e| message(e) == "run ended")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(ended.get("outcome"), Some("clean_exit"));
    assert_eq!(ended.get("exit_code"), Some("0"));
    let _ = std::fs::remove_dir_all(&dir);
}
