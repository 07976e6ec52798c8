//! The landing page at `/`, for a person at fleet scale: seat health first (how many tenants
//! are out of seats or low, and the worst of them by name), then a summary of the targets,
//! then the targets that are not up (with their cause and since when), then the others, at
//! most [`MAX_ROWS`] rows, filterable like `/api/v1/targets` (which has everything). Served
//! from the published status and metrics; never a secret, token or stack trace.

use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::time::SystemTime;

use super::targets::{counts, rfc3339, Counts, Filter, Health};
use super::AppState;
use crate::polling::plan::ListFetched;
use crate::polling::seat_health::{SeatHealth, SeatState, LOW_MAX_FREE, LOW_MIN_UTILISATION};
use crate::polling::status::TargetStatus;

/// Rows of the target table at most (the page stays far below 256 KiB).
pub const MAX_ROWS: usize = 300;

/// Escapes text for HTML.
pub fn html(s: &str) -> String {
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
        Some(t) => format!("<span title=\"{}\">{}</span>", rfc3339(t), relative(t, now)),
        None => "never".into(),
    }
}

/// The seat health section: counts, then the worst tenants by name.
fn seat_health(page: &mut String, health: &SeatHealth) {
    let _ = write!(
        page,
        "<h2>Seat health</h2>\n<p class=\"seats\">{} · {} · of {} tenants</p>\n\
<p class=\"note\">Out of seats: 0 free with seats assigned (the <code>AvePointTenantOutOfSeats</code> alert's condition). \
Low on seats: at most {LOW_MAX_FREE} free and at least {}\u{a0}% assigned (the <code>AvePointTenantLowOnSeats</code> alert's threshold).</p>\n",
        count_of(health.out, "out of seats", "out"),
        count_of(health.low, "low on seats", "low"),
        health.tenants,
        (LOW_MIN_UTILISATION * 100.0).round(),
    );
    if health.tenants == 0 {
        page.push_str("<p>No seat data yet: no target has been polled successfully.</p>\n");
        return;
    }
    if health.listed.is_empty() {
        page.push_str("<p class=\"ok\">Every tenant has free seats.</p>\n");
        return;
    }
    let at_risk = health.out + health.low;
    if at_risk > health.listed.len() {
        let _ = writeln!(
            page,
            "<p>The first {} of {at_risk} shown (out of seats first, then the fewest free); \
             all of them are in <code>available_user_seats</code>.</p>",
            health.listed.len()
        );
    }
    page.push_str("<table><tr><th>seats</th><th>customer</th><th>tenant</th><th>tenant type</th><th class=\"num\">free</th><th class=\"num\">assigned</th></tr>\n");
    for t in &health.listed {
        let _ = writeln!(
            page,
            "<tr class=\"{s}\"><td>{}</td><td title=\"{}\">{}</td><td title=\"{}\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            match t.state {
                SeatState::Out => "out of seats",
                SeatState::Low => "low",
            },
            html(&t.customer_id),
            html(&t.customer_name),
            html(&t.tenant_id),
            html(&t.tenant_name),
            t.tenant_type,
            t.available,
            t.assigned,
            s = t.state.name(),
        );
    }
    page.push_str("</table>\n");
}

/// "3 down" in `class` when there are any, plain "0 down" when there are none (red only
/// when something is wrong).
fn count_of(n: usize, what: &str, class: &str) -> String {
    if n > 0 {
        format!("<b class=\"{class}\">{n} {what}</b>")
    } else {
        format!("{n} {what}")
    }
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
    let path = html(&state.telemetry_path);
    // Counted once per status; nothing here grows with the fleet but the page's rows, which
    // are capped.
    let Counts {
        up,
        down,
        unknown,
        empty,
        customers,
        tenants,
    } = counts(&status);
    let list = match status.discovery.as_deref().map(ListFetched::get) {
        None => "off (customers from the config file)".to_owned(),
        Some(Some(t)) => when(Some(t), now),
        Some(None) => "<b class=\"down\">never fetched</b> (see avepoint_exporter_discovery_errors_total and the log)".to_owned(),
    };
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>AvePoint Elements Exporter</title>\
<style>body{{font-family:system-ui,sans-serif;margin:1.5em 2em;color:#222}}table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}}th{{background:#f4f4f4}}\
.demo{{background:#fff3cd;border:1px solid #e0c060;padding:.4em .8em}}.down,.out{{color:#b00}}.low{{color:#a55a00}}.ok{{color:#17692a}}.note{{color:#555;font-size:.9em}}.seats{{font-size:1.15em}}.unknown{{color:#777}}.num{{text-align:right}}form{{margin:.8em 0}}input,select,button{{font:inherit}}.summary td:first-child{{font-weight:bold}}</style></head>\n\
<body><h1>AvePoint Elements Exporter</h1>\n<p>Version {} (revision {}) · <a href=\"{path}\">Metrics</a> · <a href=\"/api/v1/targets\">Targets (JSON)</a> · <a href=\"/-/healthy\">Health</a> · <a href=\"/-/ready\">Readiness</a></p>\n",
        html(state.build.version),
        html(state.build.revision),
    );
    if state.demo {
        page.push_str(
            "<p class=\"demo\"><b>Demo mode</b>: these seats come from the built-in simulated \
             Elements API, not from an account. Run with <code>--config.file</code> for your own.</p>\n",
        );
    }
    seat_health(&mut page, &status.seat_health);
    let _ = write!(
        page,
        "<h2>Summary</h2>\n<table class=\"summary\">\
<tr><td>Targets</td><td>{} · {} · {up} up ({empty} of them empty, polled every poll.empty_interval) · <span class=\"unknown\">{unknown} not polled yet</span></td></tr>\
<tr><td>Customers</td><td>{}</td></tr><tr><td>Tenants</td><td>{tenants}</td></tr><tr><td>Seat series</td><td>{}</td></tr>\
<tr><td>Polling utilization</td><td>{:.2} (above 1 the interval cannot be kept)</td></tr><tr><td>Target polls</td><td>{} completed since start (one poll fetches one customer's tenants of one type, all pages)</td></tr>\
<tr><td>Customer list</td><td>{list}</td></tr></table>\n",
        status.targets.len(),
        count_of(down, "down", "down"),
        customers,
        status.series,
        status.utilization,
        status.polls,
    );
    let selected = |h: Option<Health>| {
        if filter.health == h {
            " selected"
        } else {
            ""
        }
    };
    let _ = write!(
        page,
        "<h2>Targets</h2>\n<form method=\"get\" action=\"/\"><label>Customer (id or part of the name) <input name=\"customer\" value=\"{}\"></label> \
<label>Health <select name=\"health\"><option value=\"\"{}>any</option><option value=\"down\"{}>down</option><option value=\"unknown\"{}>not polled yet</option><option value=\"up\"{}>up</option></select></label> \
<button type=\"submit\">Filter</button></form>\n",
        html(filter.customer.as_deref().unwrap_or("")),
        selected(None),
        selected(Some(Health::Down)),
        selected(Some(Health::Unknown)),
        selected(Some(Health::Up)),
    );
    if let Some(e) = filter_error {
        let _ = writeln!(page, "<p class=\"down\">{}</p>", html(e));
    }
    let (shown, matching) = first_rows(&status.targets, filter);
    let _ = writeln!(
        page,
        "<p>{matching} matching targets{}.</p>\n<table><tr><th>health</th><th>customer</th><th>customer id</th><th>tenant type</th><th>cause</th><th>failing since</th><th>last poll</th><th>last success</th><th class=\"num\">tenants</th><th>next poll</th></tr>",
        if matching > shown.len() {
            format!(
                ", the first {} shown (failing first): filter, or see <a href=\"/api/v1/targets\">all of them as JSON</a>",
                shown.len()
            )
        } else {
            String::new()
        }
    );
    for t in shown {
        let health = Health::of(t);
        let _ = writeln!(
            page,
            "<tr class=\"{h}\"><td>{h}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            if t.empty { " (empty)" } else { "" },
            html(&t.customer_name),
            html(&t.customer_id),
            t.tenant_type,
            html(t.last_error.as_deref().unwrap_or("")),
            t.failing_since.map_or(String::new(), |f| when(Some(f), now)),
            when(t.last_poll, now),
            when(t.last_success, now),
            t.tenants,
            t.next_poll.map_or(String::new(), |n| when(Some(n), now)),
            h = health.name(),
        );
    }
    page.push_str("</table>\n</body></html>\n");
    page
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
}
