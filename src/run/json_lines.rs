//! JSON log lines for `pidguard run --log-format json`, written without a
//! JSON library.
//!
//! The daemon uses tracing-subscriber's own JSON format; its serializer
//! (serde_json and friends) would add about 75 KB to the static `run`
//! binary, which must stay under 2 MiB (docs/run.md). Log lines need only
//! strings, numbers and booleans, so this writes the same shape
//! (`timestamp`, `level`, `fields` with `message`, `target`, `span`,
//! `spans`) with one string escaper. `tests/run_options.rs` parses the
//! lines with a real JSON parser.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event format: one JSON object per line.
#[derive(Debug, Default)]
pub(crate) struct JsonLines;

/// Text or JSON lines, chosen at run time behind one type: a second
/// `fmt::Layer` type for JSON would repeat the whole layer's code in the
/// static binary (about 15 KB).
#[derive(Debug)]
pub(crate) enum Lines {
    /// tracing-subscriber's own text lines.
    Text(tracing_subscriber::fmt::format::Format),
    /// JSON lines.
    Json(JsonLines),
}

/// The field format that goes with [`Lines`].
#[derive(Debug)]
pub(crate) enum Fields {
    /// tracing-subscriber's `name=value` fields.
    Text(tracing_subscriber::fmt::format::DefaultFields),
    /// `"name":value` pairs.
    Json(JsonFields),
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        out: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        match self {
            Self::Text(text) => text.format_event(ctx, out, event),
            Self::Json(json) => json.format_event(ctx, out, event),
        }
    }
}

impl<'w> FormatFields<'w> for Fields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        match self {
            Self::Text(text) => text.format_fields(writer, fields),
            Self::Json(json) => json.format_fields(writer, fields),
        }
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        match self {
            // What `DefaultFields` does: a space between the old and new.
            Self::Text(text) => {
                if !current.fields.is_empty() {
                    current.fields.push(' ');
                }
                text.format_fields(current.as_writer(), fields)
            }
            Self::Json(_) => {
                let first = current.fields.is_empty();
                let mut visitor = Pairs {
                    out: current.as_writer(),
                    first,
                    result: Ok(()),
                };
                fields.record(&mut visitor);
                visitor.result
            }
        }
    }
}

/// The field format: `"name":value` pairs, comma-separated, so a span's
/// fields can be put inside an object as they are (used through
/// [`Fields`], which also appends a span's later fields).
#[derive(Debug, Default)]
pub(crate) struct JsonFields;

impl<'w> FormatFields<'w> for JsonFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = Pairs {
            out: writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut out: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        out.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut out)?;
        write!(out, "\",\"level\":\"{}\",\"fields\":{{", meta.level())?;
        let mut fields = Pairs {
            out: out.by_ref(),
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        out.write_str("},\"target\":")?;
        string(&mut out, meta.target())?;
        if let Some(scope) = ctx.event_scope() {
            let mut spans = String::new();
            let mut last = String::new();
            for span in scope.from_root() {
                last.clear();
                last.push_str("{\"name\":");
                string(&mut last, span.name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    last.push(',');
                    last.push_str(fields);
                }
                last.push('}');
                if !spans.is_empty() {
                    spans.push(',');
                }
                spans.push_str(&last);
            }
            write!(out, ",\"span\":{last},\"spans\":[{spans}]")?;
        }
        out.write_str("}\n")
    }
}

/// Writes visited fields as `"name":value` pairs.
struct Pairs<'w> {
    out: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Pairs<'_> {
    fn pair(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let comma = if self.first { "" } else { "," };
        self.first = false;
        self.result = write!(self.out, "{comma}")
            .and_then(|()| string(&mut self.out, field.name()))
            .and_then(|()| self.out.write_char(':'))
            .and_then(|()| value(&mut self.out));
    }
}

impl Visit for Pairs<'_> {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.pair(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.pair(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.pair(field, |out| write!(out, "{value}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.pair(field, |out| string(out, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.pair(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value:?}")?;
            out.write_char('"')
        });
    }
}

/// `text` as a JSON string.
fn string(out: &mut impl Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(&mut *out).write_str(text)?;
    out.write_char('"')
}

/// Escapes what passes through for the inside of a JSON string.
struct Escaped<'a, W: Write + ?Sized>(&'a mut W);

impl<W: Write + ?Sized> Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') {
            let (plain, tail) = rest.split_at(at);
            self.0.write_str(plain)?;
            let mut chars = tail.chars();
            match chars.next() {
                Some('"') => self.0.write_str("\\\"")?,
                Some('\\') => self.0.write_str("\\\\")?,
                Some('\n') => self.0.write_str("\\n")?,
                Some('\r') => self.0.write_str("\\r")?,
                Some('\t') => self.0.write_str("\\t")?,
                Some(control) => write!(self.0, "\\u{:04x}", u32::from(control))?,
                None => {}
            }
            rest = chars.as_str();
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_json() {
        let mut out = String::new();
        string(&mut out, "a \"quote\", a \\, a\nnewline, a \u{1} and é").expect("writes");
        let parsed: String = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(parsed, "a \"quote\", a \\, a\nnewline, a \u{1} and é");
    }
}
