//! Log lines as every Prometheus exporter writes them: logfmt `ts=… level=info msg="…"
//! key=value …`, or one flat JSON object per line with the same keys (`--log.format json`).
//! Levels are lowercase; there is no module path, span list or nesting under `fields`: the
//! fields of the spans an event happens in (a target's `customer_id` and `tenant_type`) are
//! written as the event's own, after them, so one `grep customer_id=…` finds a target's
//! whole story.

use std::fmt::{self, Write as _};
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `key=value` pairs.
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// Where finished lines go, when not to stderr.
type Sink = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// A layer that writes each event as one line to stderr.
pub struct LineLayer {
    format: Format,
    sink: Option<Sink>,
}

impl LineLayer {
    /// A layer writing `format` to stderr.
    pub fn new(format: Format) -> LineLayer {
        LineLayer { format, sink: None }
    }

    /// A layer handing each line (without its newline) to `sink` instead: for tests that run
    /// the daemon in-process and read its log.
    pub fn with_sink(format: Format, sink: impl Fn(&str) + Send + Sync + 'static) -> LineLayer {
        LineLayer {
            format,
            sink: Some(std::sync::Arc::new(sink)),
        }
    }
}

/// A field's value, kept typed for JSON.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text(String),
    Int(i64),
    Uint(u64),
    Float(f64),
    Bool(bool),
}

/// The message and the fields of one event (or span), in order.
#[derive(Default)]
struct Collected {
    msg: String,
    fields: Vec<(&'static str, Value)>,
}

impl Visit for Collected {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.push(field, Value::Text(text));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::Text(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::Int(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::Uint(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::Float(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }
}

impl Collected {
    fn push(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.msg = match value {
                Value::Text(t) => t,
                other => format!("{other:?}"),
            };
        } else {
            self.fields.push((field.name(), value));
        }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// A logfmt value: bare when it is a plain token, else quoted with `"` and `\` escaped and
/// control characters written as escapes.
fn logfmt_value(out: &mut String, value: &str) {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=' && c != '\\');
    if plain {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Formats one line (without the newline).
fn format_line(
    format: Format,
    ts: &str,
    level: &Level,
    msg: &str,
    fields: &[(&str, Value)],
) -> String {
    match format {
        Format::Logfmt => {
            let mut out = String::with_capacity(128);
            out.push_str("ts=");
            out.push_str(ts);
            out.push_str(" level=");
            out.push_str(level_name(level));
            out.push_str(" msg=");
            logfmt_value(&mut out, msg);
            for (key, value) in fields {
                out.push(' ');
                out.push_str(key);
                out.push('=');
                match value {
                    Value::Text(t) => logfmt_value(&mut out, t),
                    Value::Int(n) => {
                        let _ = write!(out, "{n}");
                    }
                    Value::Uint(n) => {
                        let _ = write!(out, "{n}");
                    }
                    Value::Float(n) => {
                        let _ = write!(out, "{n}");
                    }
                    Value::Bool(b) => {
                        let _ = write!(out, "{b}");
                    }
                }
            }
            out
        }
        Format::Json => {
            let mut map = serde_json::Map::new();
            map.insert("ts".into(), ts.into());
            map.insert("level".into(), level_name(level).into());
            map.insert("msg".into(), msg.into());
            for (key, value) in fields {
                let v = match value {
                    Value::Text(t) => serde_json::Value::from(t.as_str()),
                    Value::Int(n) => (*n).into(),
                    Value::Uint(n) => (*n).into(),
                    Value::Float(n) => serde_json::Number::from_f64(*n)
                        .map_or_else(|| n.to_string().into(), serde_json::Value::Number),
                    Value::Bool(b) => (*b).into(),
                };
                map.insert((*key).to_owned(), v);
            }
            serde_json::Value::Object(map).to_string()
        }
    }
}

/// The fields of a span, kept in its extensions for the events inside it.
struct SpanFields(Vec<(&'static str, Value)>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for LineLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut collected = Collected::default();
        attrs.record(&mut collected);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(collected.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut collected = Collected::default();
        event.record(&mut collected);
        // The enclosing spans' fields, outermost first, unless the event sets the key itself.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    for (key, value) in fields {
                        if !collected.fields.iter().any(|(k, _)| k == key) {
                            collected.fields.push((key, value.clone()));
                        }
                    }
                }
            }
        }
        let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let mut line = format_line(
            self.format,
            &ts,
            event.metadata().level(),
            &collected.msg,
            &collected.fields,
        );
        if let Some(sink) = &self.sink {
            return sink(&line);
        }
        line.push('\n');
        // One write per line, so that lines from different threads never interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_the_fields_of_their_spans_once() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let subscriber = tracing_subscriber::registry()
            .with(LineLayer::with_sink(Format::Logfmt, move |l| {
                sink.lock().unwrap().push(l.to_owned())
            }));
        tracing::subscriber::with_default(subscriber, || {
            let poll = tracing::info_span!("poll", customer_id = "c1", tenant_type = "google");
            let _in = poll.enter();
            tracing::info!(attempt = 2, "retrying request");
            let inner = tracing::info_span!("page", page = 3);
            let _in = inner.enter();
            tracing::warn!(customer_id = "other", "said otherwise");
        });
        let lines = lines.lock().unwrap();
        assert!(
            lines[0]
                .ends_with("msg=\"retrying request\" attempt=2 customer_id=c1 tenant_type=google"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1]
                .ends_with("msg=\"said otherwise\" customer_id=other tenant_type=google page=3"),
            "{}",
            lines[1]
        );
    }

    const TS: &str = "2026-11-25T16:00:00.000Z";

    #[test]
    fn logfmt_lines_use_the_exporter_keys_and_quote_what_needs_it() {
        let line = format_line(
            Format::Logfmt,
            TS,
            &Level::WARN,
            "target poll failed",
            &[
                ("customer_id", Value::Text("c1".into())),
                ("error", Value::Text("said \"no\"\nand a\\b".into())),
                ("empty", Value::Text(String::new())),
                ("pages", Value::Uint(3)),
                ("ok", Value::Bool(true)),
            ],
        );
        assert_eq!(
            line,
            "ts=2026-11-25T16:00:00.000Z level=warn msg=\"target poll failed\" customer_id=c1 error=\"said \\\"no\\\"\\nand a\\\\b\" empty=\"\" pages=3 ok=true"
        );
        let plain = format_line(Format::Logfmt, TS, &Level::INFO, "listening", &[]);
        assert_eq!(
            plain,
            "ts=2026-11-25T16:00:00.000Z level=info msg=listening"
        );
    }

    #[test]
    fn json_lines_are_flat_with_typed_values() {
        let line = format_line(
            Format::Json,
            TS,
            &Level::ERROR,
            "exiting",
            &[
                ("targets", Value::Uint(16)),
                ("delta", Value::Int(-1)),
                ("ratio", Value::Float(1.5)),
                ("why", Value::Text("x".into())),
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ts"], TS);
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "exiting");
        assert_eq!(v["targets"], 16);
        assert_eq!(v["delta"], -1);
        assert_eq!(v["ratio"], 1.5);
        assert_eq!(v["why"], "x");
        assert!(v.get("fields").is_none());
    }
}
