//! The `tracing` feature: a `tracing-subscriber` layer that turns events at or above a chosen
//! level into breadcrumbs, so a crash report shows the service's last log lines even when the
//! log itself was lost with the process. It implements the `Layer` trait of
//! **tracing-subscriber 0.3** (and is built on tracing 0.1): a subscriber stack of another
//! tracing-subscriber major version cannot take it.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Bytes of text per breadcrumb; the black box keeps about this many.
const LINE: usize = 120;

/// Turns events at `level` or more severe into breadcrumbs (`LEVEL target: message k=v ...`,
/// cut at about 120 bytes). Add it next to the layers that print or ship the logs:
///
/// ```no_run
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let subscriber = tracing_subscriber::registry()
///     .with(crashguard::tracing::BreadcrumbLayer::new(tracing::Level::INFO));
/// tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
/// ```
///
/// The layer never filters what other layers see, and costs one formatting pass into a stack
/// buffer per event it keeps; without an installed guard it does nothing.
#[derive(Clone, Copy, Debug)]
pub struct BreadcrumbLayer {
    level: Level,
}

impl BreadcrumbLayer {
    /// Keeps events at `level` and more severe: `Level::INFO` keeps INFO, WARN and ERROR.
    pub fn new(level: Level) -> Self {
        BreadcrumbLayer { level }
    }
}

impl<S: Subscriber> Layer<S> for BreadcrumbLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        // tracing orders levels by verbosity: TRACE is the greatest, ERROR the least.
        if *meta.level() > self.level {
            return;
        }
        // crashguard's own lifecycle events: what they say is in the black box already.
        if meta.target() == crate::events::TARGET {
            return;
        }
        let Some(bb) = crashguard_blackbox::active() else {
            return;
        };
        let mut line = Line::default();
        // Plain copies rather than `write!`: this runs for every kept event (one per request in
        // a typical service), and the formatting machinery was most of its cost.
        let _ = line.write_str(meta.level().as_str());
        let _ = line.write_str(" ");
        let _ = line.write_str(meta.target());
        let _ = line.write_str(":");
        // One pass over the fields, in the order the event declares them: tracing's macros put
        // the message first, so the line reads "INFO target: message name=value ...".
        event.record(&mut Fields(&mut line));
        bb.breadcrumb(line.as_str());
    }
}

/// A fixed buffer that keeps what fits, cut at a character boundary.
struct Line {
    buf: [u8; LINE],
    len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Line {
            buf: [0; LINE],
            len: 0,
        }
    }
}

impl Line {
    fn as_str(&self) -> &str {
        let bytes = self.buf.get(..self.len).unwrap_or_default();
        // Only whole characters are ever copied in, so this cannot fail.
        std::str::from_utf8(bytes).unwrap_or_default()
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = LINE - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..self.len + n), s.get(..n)) {
            dst.copy_from_slice(src.as_bytes());
            self.len += n;
        }
        // Reporting an error would only stop the formatting early, which is what a full line
        // wants anyway.
        if n < s.len() { Err(fmt::Error) } else { Ok(()) }
    }
}

/// Writes the `message` field as it is and the others as `name=value`.
struct Fields<'a>(&'a mut Line);

impl Fields<'_> {
    fn name(&mut self, field: &Field) {
        let _ = self.0.write_str(" ");
        if field.name() != "message" {
            let _ = self.0.write_str(field.name());
            let _ = self.0.write_str("=");
        }
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.name(field);
        let _ = self.0.write_str(value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.name(field);
        let _ = write!(self.0, "{value:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_at_a_character_boundary() {
        let mut l = Line::default();
        let long = "é".repeat(LINE);
        assert!(write!(l, "{long}").is_err());
        assert!(l.as_str().len() <= LINE && l.as_str().len() >= LINE - 1);
        assert!(l.as_str().chars().all(|c| c == 'é'));
    }
}
