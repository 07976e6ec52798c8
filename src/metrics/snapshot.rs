//! The seat series as bytes, at fleet scale.
//!
//! Each target keeps its seat data compactly ([`SeatSeries`]: per tenant its escaped
//! `tenant_id`/`tenant_name` labels and two numbers); a publish ([`render_snapshot`]) shares
//! every target's series with the previous snapshot, renders only the small per-target health
//! families, and writes the whole text once, a piece at a time, to compress it and take its
//! length and CRC. A plain scrape writes the text out again as it goes ([`Scrape`]); a gzip
//! scrape sends the compressed blocks.
//!
//! Why: at MSP scale the text is tens of megabytes, mostly the same labels written twice per
//! tenant. Keeping it as one buffer meant the text plus the tenants' structs, and the buffer
//! rendered anew (old and new alive together) on every publish. The compact form is about a
//! fifth of the text, and nothing of its size is ever allocated at once.

mod deflate;
mod series;

use std::sync::Arc;

use bytes::Bytes;
use flate2::{CompressError, Compression, FlushCompress};

use super::format::Format;
use deflate::Deflater;
pub(super) use deflate::{deflate_raw, GZIP_HEADER};
use series::write_u64;
pub(super) use series::Escaped;
pub use series::{SeatSeries, TargetCounters, TargetLabels};

/// How much of the snapshot a plain scrape hands to the connection at once.
const SCRAPE_PIECE: usize = 256 * 1024;

/// What the snapshot shows of one target.
#[derive(Debug, Clone)]
pub struct TargetView {
    /// The target's labels.
    pub labels: Arc<TargetLabels>,
    /// Whether the last poll succeeded.
    pub up: bool,
    /// Unix time of the last success, if any.
    pub last_success: Option<f64>,
    /// The series of the last successful poll (still fresh).
    pub seats: Arc<SeatSeries>,
    /// Tenants returned by the last successful poll (for `target_tenants`).
    pub last_tenant_count: Option<usize>,
    /// Its errors and invalid records.
    pub counters: Arc<TargetCounters>,
}

/// Every target's series of one publish: what the text is made of (written out as it is
/// compressed or scraped), and the same text as raw deflate blocks.
///
/// The text has three parts that read the same in both formats: the gauge families (seats
/// and target health), then the samples of each counter family (errors, invalid records).
/// Before each counter family's samples comes its header, which differs by format
/// (OpenMetrics names a counter family without `_total`): see [`Snapshot::gzip_pieces`].
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Every target, in order: its seat series, its health and its counters.
    targets: Arc<[TargetView]>,
    /// Length and CRC-32 of each part.
    parts: [(u64, u32); PARTS],
    /// Each part as raw deflate blocks, sync-flushed but not final (see
    /// [`super::Metrics::scrape`]), and each counter family's header in each format
    /// (`[text, openmetrics]`); `None` when compressing failed, and then scrapes that accept
    /// gzip get the plain text.
    pub(super) deflate: Option<Compressed>,
    /// Number of seat series (two per tenant).
    pub series: usize,
}

/// A snapshot's text as raw deflate blocks, part by part (see [`Snapshot`]).
#[derive(Debug, Clone)]
pub(super) struct Compressed {
    parts: [Bytes; PARTS],
    headers: [[Bytes; COUNTER_FAMILIES]; 2],
}

/// The metric families of a snapshot, in the order of its text: the seat gauges, the target
/// health gauges, then the target counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// `available_user_seats`: one line per tenant.
    Available,
    /// `assigned_user_seats`: one line per tenant.
    Assigned,
    /// `avepoint_exporter_target_up`: one line per target.
    TargetUp,
    /// `avepoint_exporter_target_last_success_timestamp_seconds`: targets that succeeded.
    TargetLastSuccess,
    /// `avepoint_exporter_target_tenants`: targets that succeeded.
    TargetTenants,
    /// `avepoint_exporter_target_errors_total`: one line per cause a target failed with.
    TargetErrors,
    /// `avepoint_exporter_invalid_records_total`: targets that skipped invalid records.
    InvalidRecords,
}

impl Family {
    /// The counter families, whose headers differ by format.
    const COUNTERS: [Family; COUNTER_FAMILIES] = [Family::TargetErrors, Family::InvalidRecords];

    /// The family after this one in the text, `None` after the last.
    fn next(self) -> Option<Family> {
        match self {
            Family::Available => Some(Family::Assigned),
            Family::Assigned => Some(Family::TargetUp),
            Family::TargetUp => Some(Family::TargetLastSuccess),
            Family::TargetLastSuccess => Some(Family::TargetTenants),
            Family::TargetTenants => Some(Family::TargetErrors),
            Family::TargetErrors => Some(Family::InvalidRecords),
            Family::InvalidRecords => None,
        }
    }

    /// The family's `# HELP` and `# TYPE` lines in `format`: a gauge's are the same in both,
    /// OpenMetrics names a counter family without `_total` (its samples keep it).
    fn header(self, format: Format) -> &'static str {
        let open = format == Format::OpenMetrics;
        match self {
            Family::Available => "# HELP available_user_seats Available (unassigned) user seats of the tenant, from the last successful poll.\n# TYPE available_user_seats gauge\n",
            Family::Assigned => "# HELP assigned_user_seats Assigned user seats of the tenant, from the last successful poll.\n# TYPE assigned_user_seats gauge\n",
            Family::TargetUp => "# HELP avepoint_exporter_target_up 1 if the last poll of the target (customer, tenant type) succeeded, else 0.\n# TYPE avepoint_exporter_target_up gauge\n",
            Family::TargetLastSuccess => "# HELP avepoint_exporter_target_last_success_timestamp_seconds Unix time of the last successful poll of the target.\n# TYPE avepoint_exporter_target_last_success_timestamp_seconds gauge\n",
            Family::TargetTenants => "# HELP avepoint_exporter_target_tenants Tenants returned by the last successful poll of the target.\n# TYPE avepoint_exporter_target_tenants gauge\n",
            Family::TargetErrors if open => "# HELP avepoint_exporter_target_errors Failed target polls, by cause.\n# TYPE avepoint_exporter_target_errors counter\n",
            Family::TargetErrors => "# HELP avepoint_exporter_target_errors_total Failed target polls, by cause.\n# TYPE avepoint_exporter_target_errors_total counter\n",
            Family::InvalidRecords if open => "# HELP avepoint_exporter_invalid_records Tenant records skipped because a required field was missing or invalid.\n# TYPE avepoint_exporter_invalid_records counter\n",
            Family::InvalidRecords => "# HELP avepoint_exporter_invalid_records_total Tenant records skipped because a required field was missing or invalid.\n# TYPE avepoint_exporter_invalid_records_total counter\n",
        }
    }
}

const COUNTER_FAMILIES: usize = 2;
/// Parts of a snapshot's text: the gauge families, then each counter family's samples.
const PARTS: usize = 1 + COUNTER_FAMILIES;

/// The first family of each part of the text; a part runs up to the next part's first
/// family (the last to the end).
const PART_STARTS: [Family; PARTS] = [Family::Available, Family::COUNTERS[0], Family::COUNTERS[1]];

fn format_index(format: Format) -> usize {
    match format {
        Format::Text => 0,
        Format::OpenMetrics => 1,
    }
}

/// Where writing a snapshot's text has got to.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    /// The family being written; `None` once the text is done.
    family: Option<Family>,
    /// Whether the family's header is written.
    header: bool,
    target: usize,
    tenant: usize,
}

impl Default for Cursor {
    /// At the start of the text.
    fn default() -> Cursor {
        Cursor::at(Family::Available)
    }
}

impl Cursor {
    /// At the start of `family`.
    fn at(family: Family) -> Cursor {
        Cursor {
            family: Some(family),
            header: false,
            target: 0,
            tenant: 0,
        }
    }
}

impl Snapshot {
    pub(super) fn empty() -> Snapshot {
        render_snapshot(&[])
    }

    /// Length of the text in `format`.
    pub fn len(&self, format: Format) -> u64 {
        let headers: usize = Family::COUNTERS
            .iter()
            .map(|f| f.header(format).len())
            .sum();
        self.parts.iter().map(|(len, _)| len).sum::<u64>() + headers as u64
    }

    /// Whether the compressed text is there (see [`Snapshot::gzip_pieces`]).
    pub fn compressed(&self) -> bool {
        self.deflate.is_some()
    }

    /// The text in `format` as raw deflate blocks (sync-flushed, not final), in pieces to
    /// send one after another, each with its CRC-32 and length; `None` when compressing
    /// failed.
    pub(super) fn gzip_pieces(&self, format: Format) -> Option<Vec<(Bytes, u32, u64)>> {
        let compressed = self.deflate.as_ref()?;
        let headers = &compressed.headers[format_index(format)];
        let mut pieces = Vec::with_capacity(PARTS + COUNTER_FAMILIES);
        for (i, (blocks, (len, crc))) in compressed.parts.iter().zip(self.parts).enumerate() {
            if let Some(counter) = i.checked_sub(1) {
                let text = Family::COUNTERS[counter].header(format);
                pieces.push((
                    headers[counter].clone(),
                    crc32fast::hash(text.as_bytes()),
                    text.len() as u64,
                ));
            }
            pieces.push((blocks.clone(), crc, len));
        }
        Some(pieces)
    }

    /// Appends text from `cursor` on until `out` holds at least `limit` bytes or family
    /// `end` begins (`None`: the text ends); false once it has. Each family begins with its
    /// header in `format`, or without one (`None`: the header is sent apart).
    fn fill(
        &self,
        cursor: &mut Cursor,
        out: &mut Vec<u8>,
        limit: usize,
        end: Option<Family>,
        format: Option<Format>,
    ) -> bool {
        while out.len() < limit {
            let Some(family) = cursor.family.filter(|f| Some(*f) != end) else {
                return false;
            };
            if !cursor.header {
                if let Some(format) = format {
                    out.extend_from_slice(family.header(format).as_bytes());
                }
                cursor.header = true;
            }
            let Some(t) = self.targets.get(cursor.target) else {
                *cursor = Cursor {
                    family: family.next(),
                    ..Cursor::default()
                };
                continue;
            };
            match family {
                Family::Available | Family::Assigned if cursor.tenant < t.seats.tenants() => {
                    t.seats.write_line(
                        &t.labels.seat_prefix,
                        family == Family::Available,
                        cursor.tenant,
                        out,
                    );
                    cursor.tenant += 1;
                    continue;
                }
                Family::Available | Family::Assigned => {}
                Family::TargetUp | Family::TargetLastSuccess | Family::TargetTenants => {
                    write_health(t, family, out)
                }
                Family::TargetErrors | Family::InvalidRecords => write_counters(t, family, out),
            }
            cursor.target += 1;
            cursor.tenant = 0;
        }
        true
    }

    /// The text exposition as one buffer (for tests; scrapes write it piecewise).
    #[cfg(test)]
    pub fn text(&self) -> Vec<u8> {
        self.text_in(Format::Text)
    }

    /// The exposition in `format` as one buffer (for tests).
    #[cfg(test)]
    pub fn text_in(&self, format: Format) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len(format) as usize);
        self.fill(
            &mut Cursor::default(),
            &mut out,
            usize::MAX,
            None,
            Some(format),
        );
        out
    }
}

/// Appends the line of target health `family` (up, last success, tenants) for `t`, if it
/// has one.
fn write_health(t: &TargetView, family: Family, out: &mut Vec<u8>) {
    let name = match family {
        Family::TargetUp => "target_up",
        Family::TargetLastSuccess => "target_last_success_timestamp_seconds",
        _ => "target_tenants",
    };
    let mut line = |value: &dyn std::fmt::Display| {
        let _ = std::io::Write::write_fmt(
            out,
            format_args!(
                "avepoint_exporter_{name}{{{}}} {value}\n",
                t.labels.target_labels
            ),
        );
    };
    match family {
        Family::TargetUp => line(&u8::from(t.up)),
        Family::TargetLastSuccess => {
            if let Some(ts) = t.last_success {
                line(&format_args!("{ts:.3}"));
            }
        }
        _ => {
            if let Some(n) = t.last_tenant_count {
                line(&n);
            }
        }
    }
}

/// Appends the lines of target counter `family` (errors by cause, invalid records) for `t`:
/// one per cause that has failed, and invalid records once there are any.
fn write_counters(t: &TargetView, family: Family, out: &mut Vec<u8>) {
    let labels = t.labels.target_labels.as_bytes();
    if family == Family::TargetErrors {
        for (cause, n) in &t.counters.errors {
            out.extend_from_slice(b"avepoint_exporter_target_errors_total{cause=\"");
            out.extend_from_slice(cause.as_str().as_bytes());
            out.extend_from_slice(b"\",");
            out.extend_from_slice(labels);
            out.extend_from_slice(b"} ");
            write_u64(out, *n);
            out.push(b'\n');
        }
    } else if t.counters.invalid > 0 {
        out.extend_from_slice(b"avepoint_exporter_invalid_records_total{");
        out.extend_from_slice(labels);
        out.extend_from_slice(b"} ");
        write_u64(out, t.counters.invalid);
        out.push(b'\n');
    }
}

/// Takes the targets (their series are shared, not copied) and writes the whole text once, a
/// piece at a time, to compress it part by part and take each part's length and CRC.
pub fn render_snapshot(targets: &[TargetView]) -> Snapshot {
    let tenants: usize = targets.iter().map(|t| t.seats.tenants()).sum();
    let mut snapshot = Snapshot {
        targets: targets.into(),
        parts: [(0, 0); PARTS],
        deflate: None,
        series: tenants * 2,
    };
    let mut piece = Vec::with_capacity(SCRAPE_PIECE + 1024);
    let mut parts: Vec<Result<Bytes, CompressError>> = Vec::with_capacity(PARTS);
    for (i, start) in PART_STARTS.into_iter().enumerate() {
        let end = PART_STARTS.get(i + 1).copied();
        // The gauge families with their headers (the same in both formats); a counter
        // family's samples alone.
        let format = (i == 0).then_some(Format::Text);
        let mut cursor = Cursor::at(start);
        let mut crc = crc32fast::Hasher::new();
        let mut len = 0u64;
        let mut deflater = Deflater::new(Compression::new(6));
        let mut compressed = Ok(());
        loop {
            piece.clear();
            let more = snapshot.fill(&mut cursor, &mut piece, SCRAPE_PIECE, end, format);
            crc.update(&piece);
            len += piece.len() as u64;
            if compressed.is_ok() {
                let flush = if more {
                    FlushCompress::None
                } else {
                    FlushCompress::Sync
                };
                compressed = deflater.push(&piece, flush);
            }
            if !more {
                break;
            }
        }
        snapshot.parts[i] = (len, crc.finalize());
        parts.push(compressed.map(|()| Bytes::from(deflater.finish().into_boxed_slice())));
    }
    let headers = |format: Format| -> Result<[Bytes; COUNTER_FAMILIES], CompressError> {
        let mut out: [Bytes; COUNTER_FAMILIES] = Default::default();
        for (family, slot) in Family::COUNTERS.into_iter().zip(out.iter_mut()) {
            let text = family.header(format);
            *slot = Bytes::from(deflate_raw(&[text.as_bytes()], Compression::new(6), false)?);
        }
        Ok(out)
    };
    let compressed = (|| {
        let mut blocks: [Bytes; PARTS] = Default::default();
        for (slot, part) in blocks.iter_mut().zip(parts) {
            *slot = part?;
        }
        Ok::<_, CompressError>(Compressed {
            parts: blocks,
            headers: [headers(Format::Text)?, headers(Format::OpenMetrics)?],
        })
    })();
    match compressed {
        Ok(c) => snapshot.deflate = Some(c),
        Err(e) => {
            tracing::error!(error = %e, "cannot compress the snapshot; gzip scrapes get plain text")
        }
    }
    snapshot
}

/// The body of one scrape: the snapshot's text (plain scrapes), then `pieces`; the text is
/// written out about 256 KiB at a time, as the connection takes it.
pub struct Scrape {
    /// Whether the body is gzip (the answer's `Content-Encoding`).
    gzip: bool,
    /// The format the snapshot's text is written in.
    format: Format,
    snapshot: Option<Arc<Snapshot>>,
    cursor: Cursor,
    pieces: std::collections::VecDeque<Bytes>,
    remaining: u64,
}

impl Scrape {
    pub(super) fn new(
        gzip: bool,
        format: Format,
        snapshot: Option<Arc<Snapshot>>,
        pieces: Vec<Bytes>,
    ) -> Scrape {
        let remaining = snapshot.as_ref().map_or(0, |s| s.len(format))
            + pieces.iter().map(|p| p.len() as u64).sum::<u64>();
        Scrape {
            gzip,
            format,
            snapshot,
            cursor: Cursor::default(),
            pieces: pieces.into(),
            remaining,
        }
    }

    /// Whether the body is gzip: asked for, and the compressed snapshot is there.
    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// Bytes left to hand out.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The next piece of the body, or `None` at the end.
    pub fn next_piece(&mut self) -> Option<Bytes> {
        let piece = match self.snapshot.take() {
            Some(snapshot) => {
                let mut piece = Vec::with_capacity(SCRAPE_PIECE + 1024);
                if snapshot.fill(
                    &mut self.cursor,
                    &mut piece,
                    SCRAPE_PIECE,
                    None,
                    Some(self.format),
                ) {
                    self.snapshot = Some(snapshot);
                }
                if piece.is_empty() {
                    return self.next_piece();
                }
                Bytes::from(piece)
            }
            None => self.pieces.pop_front()?,
        };
        self.remaining = self.remaining.saturating_sub(piece.len() as u64);
        Some(piece)
    }

    /// The whole body at once (for tests and benches).
    pub fn concat(mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.remaining as usize);
        while let Some(p) = self.next_piece() {
            out.extend_from_slice(&p);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::series::{Escaped, ASSIGNED, AVAILABLE};
    use super::*;
    use crate::domain::{Cause, TenantSeats, TenantType};

    fn labels(id: &str, name: &str) -> TargetLabels {
        TargetLabels::new(id.into(), name.into(), TenantType::Salesforce)
    }

    fn tenant(i: u64) -> TenantSeats {
        TenantSeats {
            id: format!("tenant-{i}"),
            name: format!("Tenant number {i}"),
            available: i,
            assigned: 3 * i,
        }
    }

    #[test]
    fn numbers_are_written_in_decimal() {
        for n in [0u64, 7, 10, 99, 100, 12345, u64::MAX] {
            let mut out = Vec::new();
            write_u64(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn series_give_their_tenants_back_exactly() {
        let mut tenants: Vec<TenantSeats> = (0..50).map(tenant).collect();
        tenants[3].name = "quote \" backslash \\ newline \n end \\\"".into();
        tenants[4].id = "\"\\n\"".into();
        tenants[5].name = String::new();
        tenants[6].name = "ümlaut, emoji 🚀, tenant_name=\"x\"".into();
        let series = SeatSeries::new(&tenants);
        assert_eq!(series.iter().collect::<Vec<_>>(), tenants);
        assert_eq!(SeatSeries::empty().iter().count(), 0);
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(
            Escaped("a\"b\\c\nd é").to_string(),
            "a\\\"b\\\\c\\nd é".to_owned()
        );
        assert_eq!(Escaped("plain").to_string(), "plain");
    }

    fn view(labels: TargetLabels, tenants: &[TenantSeats], up: bool) -> TargetView {
        TargetView {
            labels: Arc::new(labels),
            up,
            last_success: up.then_some(1700000000.5),
            seats: Arc::new(SeatSeries::new(tenants)),
            last_tenant_count: up.then_some(tenants.len()),
            counters: Arc::default(),
        }
    }

    #[test]
    fn renders_seats_and_target_health() {
        let tenants = vec![TenantSeats {
            id: "t1".into(),
            name: "Line\nBreak".into(),
            available: 3,
            assigned: 97,
        }];
        let snap = render_snapshot(&[view(labels("c\"1", "Con\\toso"), &tenants, true)]);
        let text = String::from_utf8(snap.text()).unwrap();
        assert!(text.contains(
            "available_user_seats{customer_id=\"c\\\"1\",customer_name=\"Con\\\\toso\",tenant_type=\"salesforce\",tenant_id=\"t1\",tenant_name=\"Line\\nBreak\"} 3\n"
        ), "{text}");
        assert!(text.contains("assigned_user_seats{customer_id=\"c\\\"1\",customer_name=\"Con\\\\toso\",tenant_type=\"salesforce\",tenant_id=\"t1\",tenant_name=\"Line\\nBreak\"} 97\n"));
        assert!(text.contains(
            "avepoint_exporter_target_up{customer_id=\"c\\\"1\",tenant_type=\"salesforce\"} 1\n"
        ));
        assert!(text.contains("avepoint_exporter_target_last_success_timestamp_seconds{customer_id=\"c\\\"1\",tenant_type=\"salesforce\"} 1700000000.500\n"));
        assert_eq!(snap.series, 2);
        assert_eq!(snap.len(Format::Text), text.len() as u64);
        assert_gzip_pieces_are_the_text(&snap);
    }

    /// The pieces of each format, with a final block from elsewhere after them (they are
    /// sync-flushed, not final), inflate to the text, and their CRCs and lengths add up.
    fn assert_gzip_pieces_are_the_text(snap: &Snapshot) {
        for format in [Format::Text, Format::OpenMetrics] {
            let text = snap.text_in(format);
            assert_eq!(snap.len(format), text.len() as u64);
            let pieces = snap.gzip_pieces(format).unwrap();
            let mut crc = crc32fast::Hasher::new();
            let mut stream = Vec::new();
            for (blocks, piece_crc, len) in &pieces {
                crc.combine(&crc32fast::Hasher::new_with_initial_len(*piece_crc, *len));
                stream.extend_from_slice(blocks);
            }
            assert_eq!(crc.finalize(), crc32fast::hash(&text));
            stream.extend(deflate_raw(&[], Compression::fast(), true).unwrap());
            let mut back = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::DeflateDecoder::new(&stream[..]),
                &mut back,
            )
            .unwrap();
            assert_eq!(back, text);
        }
    }

    #[test]
    fn counters_are_rendered_per_target_in_each_format() {
        let mut counters = TargetCounters::default();
        counters.failed(Cause::Timeout);
        counters.failed(Cause::Http5xx);
        counters.failed(Cause::Timeout);
        counters.invalid(2);
        let failing = TargetView {
            counters: Arc::new(counters),
            ..view(labels("c\"1", "Contoso"), &[], false)
        };
        let snap = render_snapshot(&[failing, view(labels("ok", "Fine"), &[tenant(1)], true)]);
        let text = String::from_utf8(snap.text()).unwrap();
        let tail = &text[text
            .find("# HELP avepoint_exporter_target_errors_total")
            .unwrap()..];
        assert_eq!(
            tail,
            "# HELP avepoint_exporter_target_errors_total Failed target polls, by cause.\n\
             # TYPE avepoint_exporter_target_errors_total counter\n\
             avepoint_exporter_target_errors_total{cause=\"http_5xx\",customer_id=\"c\\\"1\",tenant_type=\"salesforce\"} 1\n\
             avepoint_exporter_target_errors_total{cause=\"timeout\",customer_id=\"c\\\"1\",tenant_type=\"salesforce\"} 2\n\
             # HELP avepoint_exporter_invalid_records_total Tenant records skipped because a required field was missing or invalid.\n\
             # TYPE avepoint_exporter_invalid_records_total counter\n\
             avepoint_exporter_invalid_records_total{customer_id=\"c\\\"1\",tenant_type=\"salesforce\"} 2\n"
        );
        // OpenMetrics names the counter families without `_total`; the samples keep it.
        let open = String::from_utf8(snap.text_in(Format::OpenMetrics)).unwrap();
        assert!(open.contains("# TYPE avepoint_exporter_target_errors counter\n"));
        assert!(open.contains("# TYPE avepoint_exporter_invalid_records counter\n"));
        assert_eq!(
            open.replace("_errors ", "_errors_total ")
                .replace("_records ", "_records_total "),
            text
        );
        assert_gzip_pieces_are_the_text(&snap);
        assert_gzip_pieces_are_the_text(&render_snapshot(&[]));
    }

    #[test]
    fn families_stay_grouped_across_targets_and_names_come_from_the_labels() {
        let targets = [
            view(labels("a", "Alpha"), &[tenant(1), tenant(2)], true),
            view(labels("b", "Beta"), &[tenant(3)], false),
            view(labels("e", "Empty"), &[], true),
        ];
        let snap = render_snapshot(&targets);
        let text = String::from_utf8(snap.text()).unwrap();
        let kinds: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split('{').next().unwrap_or(""))
            .collect();
        let first_assigned = kinds.iter().position(|k| *k == ASSIGNED).unwrap();
        assert!(kinds[..first_assigned].iter().all(|k| *k == AVAILABLE));
        assert_eq!(kinds.iter().filter(|k| **k == AVAILABLE).count(), 3);
        assert_eq!(kinds.iter().filter(|k| **k == ASSIGNED).count(), 3);
        assert_eq!(text.matches("# TYPE available_user_seats gauge").count(), 1);
        // The same series under a renamed customer: only the name changes.
        let renamed = TargetView {
            labels: Arc::new(labels("a", "Alpha \"New\"")),
            ..targets[0].clone()
        };
        let again = String::from_utf8(render_snapshot(&[renamed]).text()).unwrap();
        assert!(again.contains("customer_name=\"Alpha \\\"New\\\"\",tenant_type=\"salesforce\",tenant_id=\"tenant-1\",tenant_name=\"Tenant number 1\"} 1\n"), "{again}");
        assert_eq!(SeatSeries::new(&[tenant(1), tenant(2)]).tenants(), 2);
    }

    #[test]
    fn scrape_pieces_are_large_and_add_up() {
        let targets: Vec<TargetView> = (0..2000)
            .map(|i| {
                view(
                    labels(&format!("c{i}"), "Customer"),
                    &[tenant(i), tenant(i + 1)],
                    true,
                )
            })
            .collect();
        let snap = Arc::new(render_snapshot(&targets));
        let whole = snap.text();
        assert_eq!(whole.len() as u64, snap.len(Format::Text));
        let mut scrape = Scrape::new(
            false,
            Format::Text,
            Some(snap.clone()),
            vec![Bytes::from_static(b"tail\n")],
        );
        assert_eq!(scrape.remaining(), whole.len() as u64 + 5);
        let mut pieces = Vec::new();
        while let Some(p) = scrape.next_piece() {
            pieces.push(p);
        }
        assert_eq!(scrape.remaining(), 0);
        // 8 000 lines (1.3 MB) in pieces of about 256 KiB.
        let expected = whole.len().div_ceil(SCRAPE_PIECE);
        assert!(pieces.len() <= expected + 2, "{} pieces", pieces.len());
        let joined: Vec<u8> = pieces.concat();
        assert_eq!(&joined[..whole.len()], &whole[..]);
        assert!(joined.ends_with(b"tail\n"));
    }

    #[test]
    fn deflate_of_many_parts_is_the_deflate_of_their_concatenation() {
        assert!(deflate_raw(&[], Compression::fast(), true).unwrap().len() < 16);
        let parts: Vec<Vec<u8>> = (0..500)
            .map(|i| format!("line {i} of some exposition text\n").into_bytes())
            .collect();
        let slices: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
        let compressed = deflate_raw(&slices, Compression::new(6), true).unwrap();
        let mut back = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::DeflateDecoder::new(&compressed[..]),
            &mut back,
        )
        .unwrap();
        assert_eq!(back, parts.concat());
        assert_eq!(compressed.len(), compressed.capacity());
    }
}
