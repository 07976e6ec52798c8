//! Paging, errors and the client against canned answers.

use super::*;

fn tenant(id: &str, available: u64, assigned: u64) -> TenantSeats {
    TenantSeats {
        id: id.into(),
        name: format!("{id} name"),
        available,
        assigned,
    }
}

#[test]
fn parses_object_envelope() {
    let body = br#"{"data":[{"type":0,"tenantId":"a","tenantName":"a name","availableUserSeat":25,"assignedUserSeat":5,"extra":{"x":1}}],
        "metadata":{"pageIndex":1,"pageSize":50,"totalCount":1},"other":true}"#;
    let page = parse_page(body).unwrap();
    assert_eq!(page.items, vec![tenant("a", 25, 5)]);
    assert_eq!(page.total_count, Some(1));
    assert!(page.invalid.is_empty());
}

#[test]
fn parses_bare_array() {
    let body =
        br#"[{"tenantId":"a","tenantName":"a name","availableUserSeat":1,"assignedUserSeat":2}]"#;
    let page = parse_page(body).unwrap();
    assert_eq!(page.items, vec![tenant("a", 1, 2)]);
    assert_eq!(page.total_count, None);
}

#[test]
fn skips_invalid_records_only() {
    let body = br#"{"data":[
        {"tenantId":"ok","tenantName":"ok name","availableUserSeat":0,"assignedUserSeat":0},
        {"tenantName":"no id","availableUserSeat":1,"assignedUserSeat":1},
        {"tenantId":"neg","availableUserSeat":-1,"assignedUserSeat":1},
        {"tenantId":"missing","assignedUserSeat":1},
        {"tenantId":"str","availableUserSeat":"5","assignedUserSeat":1},
        {"tenantId":"noname","availableUserSeat":2,"assignedUserSeat":3},
        42
    ]}"#;
    let page = parse_page(body).unwrap();
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.items[1].name, "");
    assert_eq!(page.invalid.len(), 5, "{:?}", page.invalid);
    assert_eq!(page.len(), 7);
    assert!(page.invalid[0].contains("missing tenantId"));
    assert!(page.invalid[1].contains("availableUserSeat -1 is not a non-negative integer"));
    assert!(page.invalid[2].contains("missing availableUserSeat"));
}

#[test]
fn rejects_other_shapes() {
    assert!(parse_page(b"<html>oops</html>")
        .unwrap_err()
        .starts_with("not JSON"));
    assert!(parse_page(br#"{"data":[{"tenantId":"a""#)
        .unwrap_err()
        .starts_with("not JSON"));
    assert_eq!(
        parse_page(br#"{"items":[]}"#).unwrap_err(),
        "object without a \"data\" list"
    );
    assert_eq!(
        parse_page(br#"{"data":{}}"#).unwrap_err(),
        "\"data\" is not a list"
    );
    assert!(parse_page(b"42").is_err());
    assert!(parse_page(br#"{"data":[],"metadata":{"totalCount":-3}}"#).is_err());
    // The doc's own sample is not valid JSON.
    let sample = br#"[ { "type": 0, "tenantId": "f", "tenantName":"T", "availableUserSeat": 25, "assignedUserSeat": 25 }
        "metadata": { "pageIndex": 1, "pageSize": 50, "totalCount": 2 } ]"#;
    assert!(parse_page(sample).is_err());
}

fn page_of(n: usize, total: Option<u64>) -> Page {
    Page {
        items: (0..n).map(|i| tenant(&i.to_string(), 1, 1)).collect(),
        invalid: vec![],
        total_count: total,
    }
}

#[test]
fn paging_plan() {
    assert_eq!(plan_after_first(&page_of(0, Some(0)), 100), PagePlan::Done);
    assert_eq!(
        plan_after_first(&page_of(50, Some(50)), 100),
        PagePlan::Done
    );
    assert_eq!(
        plan_after_first(&page_of(100, Some(100)), 100),
        PagePlan::Done
    );
    assert_eq!(
        plan_after_first(&page_of(100, Some(250)), 100),
        PagePlan::Pages(3)
    );
    assert_eq!(
        plan_after_first(&page_of(100, Some(201)), 100),
        PagePlan::Pages(3)
    );
    assert_eq!(
        plan_after_first(&page_of(10, Some(10_000)), 10),
        PagePlan::Pages(1000)
    );
    // A server that ignores pageSize: its page size counts, not ours.
    assert_eq!(
        plan_after_first(&page_of(1000, Some(1000)), 100),
        PagePlan::Done
    );
    assert_eq!(
        plan_after_first(&page_of(500, Some(1200)), 100),
        PagePlan::Pages(3)
    );
    // Absurd counts are not clamped to u32 (the guard reports the real number).
    assert_eq!(
        plan_after_first(&page_of(100, Some(u64::MAX)), 100),
        PagePlan::Pages(u64::MAX.div_ceil(100))
    );
    // A short first page ends paging even if totalCount claims more.
    assert_eq!(
        plan_after_first(&page_of(99, Some(250)), 100),
        PagePlan::Done
    );
    // Bare arrays: a full page means there may be more.
    assert_eq!(
        plan_after_first(&page_of(100, None), 100),
        PagePlan::UntilShort
    );
    assert_eq!(plan_after_first(&page_of(7, None), 100), PagePlan::Done);
}

#[test]
fn last_page_decision() {
    assert!(is_last_page(&page_of(0, None), 100, 100, None));
    assert!(is_last_page(&page_of(50, None), 100, 150, None));
    assert!(!is_last_page(&page_of(100, None), 100, 200, None));
    assert!(is_last_page(&page_of(100, Some(200)), 100, 200, Some(200)));
    assert!(!is_last_page(&page_of(100, Some(250)), 100, 200, Some(250)));
}

#[test]
fn error_causes() {
    let every = [
        ApiError::Transport(TransportError::Timeout(std::time::Duration::ZERO)),
        ApiError::Transport(TransportError::Redirect {
            status: 302,
            location: String::new(),
        }),
        ApiError::Transport(TransportError::TooLarge { limit: 1 }),
        ApiError::Paging(String::new()),
        ApiError::Token(AuthError::Parse(String::new())),
    ];
    for e in every {
        assert!(CAUSES.contains(&e.cause()), "{}", e.cause());
    }
    let status = |s: u16| ApiError::Status {
        status: StatusCode::from_u16(s).unwrap(),
        detail: String::new(),
    };
    assert_eq!(status(429).cause(), "rate_limited");
    assert_eq!(status(503).cause(), "http_5xx");
    assert_eq!(status(403).cause(), "http_4xx");
    assert_eq!(
        ApiError::Transport(TransportError::TooLarge { limit: 1 }).cause(),
        "too_large"
    );
    assert_eq!(
        ApiError::Transport(TransportError::Timeout(std::time::Duration::from_secs(1))).cause(),
        "timeout"
    );
    assert_eq!(
        ApiError::Token(AuthError::Parse(String::new())).cause(),
        "token"
    );
}

#[test]
fn pages_are_read_record_by_record_within_the_list_cap() {
    use wire::{parse_tenants_page, RecordCap, MAX_RECORDS};
    // A server that ignores pageSize: one page of 250 000 minimal records.
    let mut body = String::from("{\"data\":[");
    for i in 0..250_000 {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            "{{\"tenantId\":\"t{i}\",\"availableUserSeat\":1,\"assignedUserSeat\":0}}"
        ));
    }
    body.push_str("]}");
    let e = parse_tenants_page(body.as_bytes(), &RecordCap::default()).unwrap_err();
    assert!(
        e.contains(&format!("more than {MAX_RECORDS} records")),
        "{e}"
    );
    // The cap is the list's, over all of its pages.
    let cap = RecordCap::new(3);
    let page = br#"[{"tenantId":"a","availableUserSeat":1,"assignedUserSeat":0},{"tenantId":"b","availableUserSeat":1,"assignedUserSeat":0}]"#;
    assert_eq!(parse_tenants_page(page, &cap).unwrap().items.len(), 2);
    assert!(parse_tenants_page(page, &cap).is_err());
}

#[test]
fn unknown_keys_and_nested_values_are_skipped_unread() {
    // Nested values, in unknown keys and in known ones: never kept, never a tree in memory.
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let body = format!(
        r#"{{"junk":{deep},"data":[{{"tenantId":"a","availableUserSeat":3,"assignedUserSeat":1,"extra":{deep}}},{{"tenantId":{{"x":[1,2]}},"availableUserSeat":1,"assignedUserSeat":1}},[1,2,3]],"metadata":{{"other":{deep},"totalCount":3}}}}"#
    );
    let page = parse_page(body.as_bytes()).unwrap();
    assert_eq!(page.items.len(), 1, "{page:?}");
    assert_eq!(page.items[0].id, "a");
    assert_eq!(page.invalid.len(), 2, "{page:?}");
    assert!(page.invalid[0].contains("tenantId"), "{page:?}");
    assert!(page.invalid[1].contains("not an object"), "{page:?}");
    assert_eq!(page.total_count, Some(3));
    // A totalCount that is not a count still refuses the page.
    let e = parse_page(br#"{"data":[],"metadata":{"totalCount":[1]}}"#).unwrap_err();
    assert_eq!(e, "metadata.totalCount is not a non-negative integer");
}
