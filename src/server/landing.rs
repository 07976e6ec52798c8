//! The landing page at `/`, for a person at fleet scale: a summary first, then the targets
//! that are not up (with their cause and since when), then the others, at most
//! [`MAX_ROWS`] rows, filterable like `/api/v1/targets` (which has everything). Served from
//! the published status and metrics; never a secret, token or stack trace.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::SystemTime;

use super::targets::{rfc3339, Filter, Health};
use super::AppState;
use crate::polling::poller::TargetStatus;

/// Rows of the target table at most (the page stays far below 256 KiB).
pub const MAX_ROWS: usize = 300;

/// Escapes text for HTML.
pub fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// "12s ago", "5m ago", "3h ago", "2d ago".
fn ago(t: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(t)
        .unwrap_or_default()
        .as_secs();
    match secs {
        s if s < 120 => format!("{s}s ago"),
        s if s < 2 * 3600 => format!("{}m ago", s / 60),
        s if s < 2 * 86400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86400),
    }
}

fn when(t: Option<SystemTime>) -> String {
    match t {
        Some(t) => format!("<span title=\"{}\">{}</span>", rfc3339(t), ago(t)),
        None => "never".into(),
    }
}

/// The page for `filter`.
pub fn page(state: &AppState, filter: &Filter, filter_error: Option<&str>) -> String {
    let status = state.status.load();
    let metrics = &state.metrics;
    let path = html(&state.telemetry_path);
    let count = |h: Health| status.targets.iter().filter(|t| Health::of(t) == h).count();
    let (up, down, unknown) = (
        count(Health::Up),
        count(Health::Down),
        count(Health::Unknown),
    );
    let customers: HashSet<&str> = status.targets.iter().map(|t| &*t.customer_id).collect();
    let tenants: usize = status.targets.iter().map(|t| t.tenants).sum();
    let empty = status.targets.iter().filter(|t| t.empty).count();
    let list = if !metrics.polling().discovery_enabled() {
        "off (customers from the config file)".to_owned()
    } else {
        match metrics.polling().discovery_last_success() {
            t if t > 0.0 => when(
                std::time::Duration::try_from_secs_f64(t)
                    .ok()
                    .and_then(|d| SystemTime::UNIX_EPOCH.checked_add(d)),
            ),
            _ => "<b class=\"down\">never fetched</b> (see avepoint_exporter_discovery_errors_total and the log)".to_owned(),
        }
    };
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>AvePoint Elements Exporter</title>\
<style>body{{font-family:system-ui,sans-serif;margin:1.5em 2em;color:#222}}table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}}th{{background:#f4f4f4}}\
.demo{{background:#fff3cd;border:1px solid #e0c060;padding:.4em .8em}}.down{{color:#b00}}.unknown{{color:#777}}.num{{text-align:right}}form{{margin:.8em 0}}input,select,button{{font:inherit}}.summary td:first-child{{font-weight:bold}}</style></head>\n\
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
    let _ = write!(
        page,
        "<h2>Summary</h2>\n<table class=\"summary\">\
<tr><td>Targets</td><td>{} · <span class=\"down\">{down} down</span> · {up} up ({empty} of them empty, polled every poll.empty_interval) · <span class=\"unknown\">{unknown} not polled yet</span></td></tr>\
<tr><td>Customers</td><td>{}</td></tr><tr><td>Tenants</td><td>{tenants}</td></tr><tr><td>Seat series</td><td>{}</td></tr>\
<tr><td>Polling utilization</td><td>{:.2} (above 1 the interval cannot be kept)</td></tr><tr><td>Target polls</td><td>{}</td></tr>\
<tr><td>Customer list</td><td>{list}</td></tr></table>\n",
        status.targets.len(),
        customers.len(),
        metrics.snapshot().series,
        metrics.polling().utilization(),
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
    // Failing first (longest failing first), then not polled yet, then up.
    let mut shown: Vec<&TargetStatus> = status.targets.iter().filter(|t| filter.keeps(t)).collect();
    let matching = shown.len();
    shown.sort_by_key(|t| match Health::of(t) {
        Health::Down => (0, t.failing_since),
        Health::Unknown => (1, None),
        Health::Up => (2, None),
    });
    shown.truncate(MAX_ROWS);
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
            t.failing_since.map_or(String::new(), |f| when(Some(f))),
            when(t.last_poll),
            when(t.last_success),
            t.tenants,
            t.next_poll.map_or(String::new(), rfc3339),
            h = health.name(),
        );
    }
    page.push_str("</table>\n</body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(
            html("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
