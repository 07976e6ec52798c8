//! The landing page at `/`, for a person at fleet scale: seat health first (how many tenants
//! are out of seats or low, and the worst of them by name), then a summary of the targets,
//! then the targets that are not up (with their cause and since when), then the others, at
//! most [`MAX_ROWS`] rows, filterable like `/api/v1/targets` (which has everything). Served
//! from the published status alone; never a secret, token or stack trace.
//!
//! The HTML is `landing.html`: the page and its parts, each with `{{name}}` placeholders
//! that [`fill`] replaces, escaping text there and only there.

use std::collections::{BinaryHeap, HashMap};
use std::fmt::Display;
use std::sync::LazyLock;
use std::time::SystemTime;

use super::state::AppState;
use super::targets::{rfc3339, Filter};
use crate::polling::plan::ListFetched;
use crate::polling::seat_health::{SeatHealth, SeatState, LOW_MAX_FREE, LOW_MIN_UTILISATION};
use crate::polling::status::{Counts, Health, TargetStatus};

/// Rows of the target table at most (the page stays far below 256 KiB).
pub const MAX_ROWS: usize = 300;

/// The page and its parts (see the comment at its top for how a part is marked).
const TEMPLATE: &str = include_str!("landing.html");

/// The part of the template called `name`.
fn part(name: &str) -> &'static str {
    static PARTS: LazyLock<HashMap<&'static str, &'static str>> = LazyLock::new(|| {
        let template = TEMPLATE.strip_suffix('\n').unwrap_or(TEMPLATE);
        template
            .split("\n<!--== ")
            .skip(1)
            .filter_map(|p| p.split_once(" ==-->\n"))
            .collect()
    });
    let found = PARTS.get(name).copied();
    debug_assert!(found.is_some(), "landing.html has no part {name:?}");
    found.unwrap_or_default()
}

/// What fills a placeholder.
enum Slot<'a> {
    /// Text: escaped as it goes in.
    Text(&'a dyn Display),
    /// Markup made of the template's parts: taken as it is.
    Html(&'a str),
}

use Slot::{Html, Text};

/// Part `name` of the template with each `{{placeholder}}` replaced by its slot, appended
/// to `out`.
fn fill_into(out: &mut String, name: &str, slots: &[(&str, Slot<'_>)]) {
    let mut rest = part(name);
    while let Some((before, after)) = rest.split_once("{{") {
        out.push_str(before);
        let Some((placeholder, after)) = after.split_once("}}") else {
            rest = after;
            break;
        };
        match slots.iter().find(|(n, _)| *n == placeholder) {
            Some((_, Text(value))) => out.push_str(&html(&value.to_string())),
            Some((_, Html(markup))) => out.push_str(markup),
            None => debug_assert!(false, "no value for {{{{{placeholder}}}}} in {name}"),
        }
        rest = after;
    }
    out.push_str(rest);
}

/// Part `name` of the template, filled (see [`fill_into`]).
fn fill(name: &str, slots: &[(&str, Slot<'_>)]) -> String {
    let mut out = String::with_capacity(part(name).len());
    fill_into(&mut out, name, slots);
    out
}

/// Escapes text for HTML: the page's only escaping, applied by [`fill_into`].
fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A span of seconds the way the page says it: "12 s", "5 m", "3 h", "2 d" (short, never
/// wrapping; the exact time is in the element's title).
fn span(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}\u{a0}s"),
        s if s < 2 * 3600 => format!("{}\u{a0}m", s / 60),
        s if s < 2 * 86400 => format!("{}\u{a0}h", s / 3600),
        s => format!("{}\u{a0}d", s / 86400),
    }
}

/// `t` relative to `now`: "12 s ago" in the past, "in 4 m" in the future.
fn relative(t: SystemTime, now: SystemTime) -> String {
    match t.duration_since(now) {
        Ok(ahead) if ahead.as_secs() > 0 => format!("in\u{a0}{}", span(ahead.as_secs())),
        Ok(_) => "now".into(),
        Err(e) => format!("{}\u{a0}ago", span(e.duration().as_secs())),
    }
}

/// A past or future time as [`relative`] says it, with the exact time as its title.
fn when(t: Option<SystemTime>, now: SystemTime) -> String {
    match t {
        Some(t) => fill(
            "when",
            &[
                ("time", Text(&rfc3339(t))),
                ("relative", Text(&relative(t, now))),
            ],
        ),
        None => part("never").to_owned(),
    }
}

/// The seat health section: counts, then the worst tenants by name.
fn seat_health(page: &mut String, health: &SeatHealth) {
    let at_risk = if health.tenants == 0 {
        part("no_seat_data").to_owned()
    } else if health.listed.is_empty() {
        part("all_free").to_owned()
    } else {
        let at_risk = health.out + health.low;
        let only_first = if at_risk > health.listed.len() {
            fill(
                "at_risk_only_first",
                &[
                    ("shown", Text(&health.listed.len())),
                    ("at_risk", Text(&at_risk)),
                ],
            )
        } else {
            String::new()
        };
        let mut rows = String::new();
        for t in &health.listed {
            let state = match t.state {
                SeatState::Out => "out of seats",
                SeatState::Low => "low",
            };
            fill_into(
                &mut rows,
                "seat_row",
                &[
                    ("class", Text(&t.state.name())),
                    ("state", Text(&state)),
                    ("customer_id", Text(&t.customer_id)),
                    ("customer_name", Text(&t.customer_name)),
                    ("tenant_id", Text(&t.tenant_id)),
                    ("tenant_name", Text(&t.tenant_name)),
                    ("tenant_type", Text(&t.tenant_type)),
                    ("available", Text(&t.available)),
                    ("assigned", Text(&t.assigned)),
                ],
            );
        }
        fill(
            "at_risk",
            &[("only_first", Html(&only_first)), ("rows", Html(&rows))],
        )
    };
    fill_into(
        page,
        "seat_health",
        &[
            ("out", Html(&count_of(health.out, "out of seats", "out"))),
            ("low", Html(&count_of(health.low, "low on seats", "low"))),
            ("tenants", Text(&health.tenants)),
            ("low_max_free", Text(&LOW_MAX_FREE)),
            (
                "low_min_percent",
                Text(&(LOW_MIN_UTILISATION * 100.0).round()),
            ),
            ("tenants_at_risk", Html(&at_risk)),
        ],
    );
}

/// "3 down" in `class` when there are any, plain "0 down" when there are none (red only
/// when something is wrong).
fn count_of(n: usize, what: &str, class: &str) -> String {
    let slots = [
        ("n", Text(&n)),
        ("what", Text(&what)),
        ("class", Text(&class)),
    ];
    fill(if n > 0 { "count_marked" } else { "count" }, &slots)
}

/// The first [`MAX_ROWS`] targets that pass `filter`, failing first (longest failing first),
/// then not polled yet, then up, each group in plan order; and how many pass. Kept in a heap
/// of [`MAX_ROWS`]: a request holds the rows it shows, not the fleet.
fn first_rows<'a>(targets: &'a [TargetStatus], filter: &Filter) -> (Vec<&'a TargetStatus>, usize) {
    let mut heap = BinaryHeap::with_capacity(MAX_ROWS + 1);
    let mut matching = 0;
    for (i, t) in targets.iter().enumerate() {
        if !filter.keeps(t) {
            continue;
        }
        matching += 1;
        let key = match Health::of(t) {
            Health::Down => (0u8, t.failing_since, i),
            Health::Unknown => (1, None, i),
            Health::Up => (2, None, i),
        };
        heap.push(key);
        if heap.len() > MAX_ROWS {
            heap.pop();
        }
    }
    let rows = heap
        .into_sorted_vec()
        .into_iter()
        .filter_map(|(_, _, i)| targets.get(i))
        .collect();
    (rows, matching)
}

/// The page for `filter`.
pub fn page(state: &AppState, filter: &Filter, filter_error: Option<&str>) -> String {
    let status = state.status.load();
    let now = SystemTime::now();
    // Counted once per status; nothing here grows with the fleet but the page's rows, which
    // are capped.
    let Counts {
        up,
        down,
        unknown,
        empty,
        customers,
        tenants,
    } = status.counts();
    let customer_list = match status.discovery.as_deref().map(ListFetched::get) {
        None => part("discovery_off").to_owned(),
        Some(Some(t)) => when(Some(t), now),
        Some(None) => part("discovery_never").to_owned(),
    };
    let mut seats = String::new();
    seat_health(&mut seats, &status.seat_health);
    let selected = |h: Option<Health>| {
        if filter.health == h {
            part("selected")
        } else {
            ""
        }
    };
    let filter_error = filter_error.map_or_else(String::new, |e| {
        fill("filter_error", &[("error", Text(&e))])
    });
    let (shown, matching) = first_rows(&status.targets, filter);
    let only_first = if matching > shown.len() {
        fill("only_first", &[("shown", Text(&shown.len()))])
    } else {
        String::new()
    };
    let mut rows = String::new();
    for t in shown {
        let failing_since = t
            .failing_since
            .map_or(String::new(), |f| when(Some(f), now));
        let next_poll = t.next_poll.map_or(String::new(), |n| when(Some(n), now));
        fill_into(
            &mut rows,
            "target_row",
            &[
                ("health", Text(&Health::of(t).name())),
                ("empty", Html(if t.empty { part("empty_mark") } else { "" })),
                ("customer_name", Text(&t.customer_name)),
                ("customer_id", Text(&t.customer_id)),
                ("tenant_type", Text(&t.tenant_type)),
                ("cause", Text(&t.last_error.as_deref().unwrap_or(""))),
                ("failing_since", Html(&failing_since)),
                ("last_poll", Html(&when(t.last_poll, now))),
                ("last_success", Html(&when(t.last_success, now))),
                ("tenants", Text(&t.tenants)),
                ("next_poll", Html(&next_poll)),
            ],
        );
    }
    let demo = if state.demo { part("demo") } else { "" };
    fill(
        "page",
        &[
            ("version", Text(&state.build.version)),
            ("revision", Text(&state.build.revision)),
            ("metrics_path", Text(&state.telemetry_path)),
            ("demo", Html(demo)),
            ("seat_health", Html(&seats)),
            ("targets", Text(&status.targets.len())),
            ("down", Html(&count_of(down, "down", "down"))),
            ("up", Text(&up)),
            ("empty", Text(&empty)),
            ("unknown", Text(&unknown)),
            ("customers", Text(&customers)),
            ("tenants", Text(&tenants)),
            ("series", Text(&status.series)),
            (
                "utilization",
                Text(&format_args!("{:.2}", status.utilization)),
            ),
            ("polls", Text(&status.polls)),
            ("customer_list", Html(&customer_list)),
            ("customer", Text(&filter.customer.as_deref().unwrap_or(""))),
            ("any", Html(selected(None))),
            ("health_down", Html(selected(Some(Health::Down)))),
            ("health_unknown", Html(selected(Some(Health::Unknown)))),
            ("health_up", Html(selected(Some(Health::Up)))),
            ("filter_error", Html(&filter_error)),
            ("matching", Text(&matching)),
            ("only_first", Html(&only_first)),
            ("rows", Html(&rows)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::domain::TenantType;
    use crate::polling::seat_health::TenantAtRisk;

    #[test]
    fn past_and_future_are_both_relative_and_never_wrap() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ago = |s| relative(now - Duration::from_secs(s), now);
        let ahead = |s| relative(now + Duration::from_secs(s), now);
        assert_eq!(ago(12), "12\u{a0}s\u{a0}ago");
        assert_eq!(ago(119), "119\u{a0}s\u{a0}ago");
        assert_eq!(ago(600), "10\u{a0}m\u{a0}ago");
        assert_eq!(ago(3 * 3600), "3\u{a0}h\u{a0}ago");
        assert_eq!(ago(3 * 86400), "3\u{a0}d\u{a0}ago");
        assert_eq!(ahead(4 * 60 + 30), "in\u{a0}4\u{a0}m");
        assert_eq!(ahead(5), "in\u{a0}5\u{a0}s");
        assert_eq!(ahead(0), "now");
        // The exact time is the title; the text has no space to wrap at.
        let next = when(Some(now + Duration::from_secs(240)), now);
        assert_eq!(
            next,
            "<span title=\"2027-01-15T08:04:00Z\">in\u{a0}4\u{a0}m</span>"
        );
        assert_eq!(when(None, now), "never");
    }

    #[test]
    fn a_count_is_drawn_in_its_colour_only_when_it_is_not_zero() {
        assert_eq!(count_of(0, "down", "down"), "0 down");
        assert_eq!(count_of(3, "down", "down"), "<b class=\"down\">3 down</b>");
    }

    fn at_risk(state: SeatState, tenant: &str, available: u64, assigned: u64) -> TenantAtRisk {
        TenantAtRisk {
            state,
            customer_id: Arc::from("c1"),
            customer_name: Arc::from("Contoso <EU>"),
            tenant_type: TenantType::Salesforce,
            tenant_id: format!("{tenant}-id"),
            tenant_name: tenant.into(),
            available,
            assigned,
        }
    }

    #[test]
    fn seat_health_names_the_tenants_with_their_customer_and_says_the_threshold() {
        let mut page = String::new();
        seat_health(
            &mut page,
            &SeatHealth {
                tenants: 200,
                out: 1,
                low: 3,
                listed: vec![
                    at_risk(SeatState::Out, "Sales", 0, 120),
                    at_risk(SeatState::Low, "CRM", 5, 55),
                ],
            },
        );
        assert!(page.contains("<b class=\"out\">1 out of seats</b> · <b class=\"low\">3 low on seats</b> · of 200 tenants"), "{page}");
        assert!(page.contains("at most 10 free and at least 90\u{a0}% assigned (the <code>AvePointTenantLowOnSeats</code> alert's threshold)"), "{page}");
        assert!(page.contains("<tr class=\"out\"><td>out of seats</td><td title=\"c1\">Contoso &lt;EU&gt;</td><td title=\"Sales-id\">Sales</td><td>salesforce</td><td class=\"num\">0</td><td class=\"num\">120</td></tr>"), "{page}");
        assert!(page.contains("<tr class=\"low\"><td>low</td>"), "{page}");
        // Capped: says how many it leaves out.
        assert!(page.contains("The first 2 of 4 shown"), "{page}");

        let mut page = String::new();
        seat_health(
            &mut page,
            &SeatHealth {
                tenants: 7,
                ..SeatHealth::default()
            },
        );
        assert!(
            page.contains("0 out of seats · 0 low on seats · of 7 tenants"),
            "{page}"
        );
        assert!(page.contains("Every tenant has free seats."), "{page}");
        assert!(!page.contains("class=\"out\"") && !page.contains("<table"));

        let mut page = String::new();
        seat_health(&mut page, &SeatHealth::default());
        assert!(page.contains("No seat data yet"), "{page}");
    }

    #[test]
    fn the_rows_are_the_first_by_health_then_failing_since_then_plan_order() {
        let at = |s| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        let targets: Vec<TargetStatus> = (0..1000u64)
            .map(|i| TargetStatus {
                customer_id: Arc::from(format!("c{i}")),
                customer_name: Arc::from(format!("Org {i}")),
                tenant_type: TenantType::Google,
                last_poll: if i % 5 == 0 { None } else { at(1000) },
                last_error: (i % 3 == 0 && i % 5 != 0).then(|| "boom".to_owned()),
                last_success: None,
                tenants: 1,
                last_duration: None,
                next_poll: None,
                failing_since: if i % 3 == 0 && i % 5 != 0 {
                    at(1000 - i % 7)
                } else {
                    None
                },
                empty: false,
            })
            .collect();
        for filter in [
            Filter::default(),
            Filter::parse(Some("customer=org 1")).unwrap(),
        ] {
            // What a stable sort of every matching target gives.
            let mut all: Vec<&TargetStatus> = targets.iter().filter(|t| filter.keeps(t)).collect();
            let matching = all.len();
            all.sort_by_key(|t| match Health::of(t) {
                Health::Down => (0, t.failing_since),
                Health::Unknown => (1, None),
                Health::Up => (2, None),
            });
            all.truncate(MAX_ROWS);
            let (rows, n) = first_rows(&targets, &filter);
            assert_eq!(n, matching);
            let ids =
                |v: &[&TargetStatus]| v.iter().map(|t| t.customer_id.clone()).collect::<Vec<_>>();
            assert_eq!(ids(&rows), ids(&all));
        }
    }

    #[test]
    fn escapes_html() {
        assert_eq!(
            html("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_template_fills_every_placeholder_and_escapes_text_once() {
        use crate::metrics::{BuildInfo, Metrics};
        use crate::polling::status::Status;
        let target = TargetStatus {
            customer_id: Arc::from("c1"),
            customer_name: Arc::from("A & B <Ltd>"),
            tenant_type: TenantType::Google,
            last_poll: Some(SystemTime::now()),
            last_error: Some("http_4xx (HTTP 403)".into()),
            last_success: None,
            tenants: 0,
            last_duration: None,
            next_poll: None,
            failing_since: Some(SystemTime::now()),
            empty: false,
        };
        let state = AppState {
            metrics: Arc::new(Metrics::new(&BuildInfo::current()).unwrap()),
            status: Arc::new(arc_swap::ArcSwap::from_pointee(Status {
                targets: vec![target],
                discovery: Some(Arc::default()),
                ..Status::default()
            })),
            telemetry_path: "/metrics".into(),
            reload: None,
            build: BuildInfo::current(),
            demo: true,
            web: Default::default(),
        };
        let filter = Filter::parse(Some("health=down")).unwrap();
        let page = page(&state, &filter, Some("a <bad> filter"));
        assert!(!page.contains("{{") && !page.contains("<!--=="), "{page}");
        assert!(page.starts_with("<!DOCTYPE html>\n") && page.ends_with("</body></html>\n"));
        assert!(page.contains("<td>A &amp; B &lt;Ltd&gt;</td>"), "{page}");
        assert!(
            page.contains("<p class=\"down\">a &lt;bad&gt; filter</p>"),
            "{page}"
        );
        assert!(page.contains("<option value=\"down\" selected>"), "{page}");
        assert!(
            page.contains("<b class=\"down\">never fetched</b>"),
            "{page}"
        );
        assert!(page.contains("<b>Demo mode</b>"), "{page}");
    }
}
