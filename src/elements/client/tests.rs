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

/// A server of `records` tenants (ids `t0000`..) that answers pages of `server_size` at
/// most (clamping what is asked), with `totalCount` unless `bare`; `pages` counts requests.
/// `quirk` may change each page (by 1-based index) before it is sent.
struct Server {
    records: usize,
    server_size: usize,
    bare: bool,
    requests: std::sync::atomic::AtomicU32,
    quirk: fn(u32, Page) -> Page,
}

impl Server {
    fn new(records: usize, server_size: usize) -> Server {
        Server {
            records,
            server_size,
            bare: false,
            requests: Default::default(),
            quirk: |_, p| p,
        }
    }

    fn page(&self, index: u32) -> Page {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let start = (index as usize - 1) * self.server_size;
        let items = (start..self.records.min(start + self.server_size))
            .map(|i| tenant(&format!("t{i:04}"), 1, 1))
            .collect();
        let page = Page {
            items,
            invalid: vec![],
            total_count: (!self.bare).then_some(self.records as u64),
        };
        (self.quirk)(index, page)
    }

    fn requests(&self) -> u32 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn fetch(&self, page_size: u8) -> Result<Fetched<TenantSeats>, ApiError> {
        fetch_all(page_size, "test", |i| std::future::ready(Ok(self.page(i)))).await
    }
}

impl Record for TenantSeats {
    fn key(&self) -> &str {
        &self.id
    }
}

#[tokio::test]
async fn paging_follows_total_count_at_the_servers_page_size() {
    // Asked for 100, the server sends 50 a page: every tenant, ceil(250 / 50) requests.
    let server = Server::new(250, 50);
    let fetched = server.fetch(100).await.unwrap();
    assert_eq!(fetched.items.len(), 250);
    assert_eq!(server.requests(), 5);
    assert_eq!(fetched.pages, 5);
    // As many as asked: ceil(total / page size), one request for a list that fits.
    for (records, size, want) in [
        (0, 100, 1),
        (1, 100, 1),
        (100, 100, 1),
        (101, 100, 2),
        (253, 50, 6),
    ] {
        let server = Server::new(records, size);
        let fetched = server.fetch(100).await.unwrap();
        assert_eq!(fetched.items.len(), records, "{records} in pages of {size}");
        assert_eq!(server.requests(), want, "{records} in pages of {size}");
    }
    // A server that sends more per page than asked is paged by what it sends.
    let server = Server::new(1200, 500);
    assert_eq!(server.fetch(100).await.unwrap().items.len(), 1200);
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn pages_shorter_than_the_first_are_followed_one_by_one() {
    // The first page is full (100), the rest hold 40: the planned pages are not enough.
    let mut server = Server::new(260, 100);
    server.quirk = |i, mut p| {
        if i > 1 {
            let start = 100 + (i as usize - 2) * 40;
            p.items = (start..260.min(start + 40))
                .map(|n| tenant(&format!("t{n:04}"), 1, 1))
                .collect();
        }
        p
    };
    let fetched = server.fetch(100).await.unwrap();
    assert_eq!(fetched.items.len(), 260);
    assert_eq!(server.requests(), 5);
}

#[tokio::test]
async fn pages_that_run_out_before_total_count_fail_the_list() {
    // Empty from page 3 on: 100 of 250.
    let mut server = Server::new(250, 50);
    server.quirk = |i, mut p| {
        if i >= 3 {
            p.items.clear();
        }
        p
    };
    let e = server.fetch(100).await.unwrap_err();
    assert_eq!(e.cause().as_str(), "incomplete");
    assert!(e.to_string().contains("100 of the 250"), "{e}");
    // A server that ignores pageIndex: the same 50 records on every page.
    let mut server = Server::new(250, 50);
    server.quirk = |_, mut p| {
        p.items = (0..50).map(|n| tenant(&format!("t{n:04}"), 1, 1)).collect();
        p
    };
    let e = server.fetch(100).await.unwrap_err();
    assert!(
        matches!(
            e,
            ApiError::Incomplete {
                received: 50,
                total: 250,
                ..
            }
        ),
        "{e}"
    );
    assert!(server.requests() <= 6, "{}", server.requests());
    // An empty first page that announces records.
    let mut server = Server::new(5, 50);
    server.quirk = |_, mut p| {
        p.items.clear();
        p
    };
    assert_eq!(
        server.fetch(100).await.unwrap_err().cause().as_str(),
        "incomplete"
    );
}

#[tokio::test]
async fn records_that_move_between_pages_are_followed_and_counted_duplicates_accepted() {
    // A tenant added at the front while the pages are read: page 2 starts with page 1's last
    // record, and the last record moves to a third page.
    let mut server = Server::new(100, 50);
    server.quirk = |i, mut p| {
        let ids = match i {
            1 => 0..50,
            2 => 49..99,
            3 => 99..100,
            _ => 0..0,
        };
        p.items = ids.map(|n| tenant(&format!("t{n:04}"), 1, 1)).collect();
        p
    };
    let fetched = server.fetch(100).await.unwrap();
    assert_eq!(fetched.items.len(), 100);
    assert_eq!(server.requests(), 3);
    // A server whose total counts a tenant it lists twice: every announced record came, so
    // the empty page after them ends the list.
    let mut server = Server::new(3, 50);
    server.quirk = |i, mut p| {
        if i == 1 {
            p.items = vec![tenant("a", 1, 1), tenant("b", 1, 1), tenant("a", 2, 1)];
        }
        p
    };
    let fetched = server.fetch(100).await.unwrap();
    assert_eq!(fetched.items.len(), 2);
    assert_eq!(
        fetched.items[0].available, 2,
        "the last record of an id wins"
    );
}

#[test]
fn records_of_another_or_an_unknown_type_are_not_the_targets() {
    let target = TargetRequest {
        customer_id: "c".into(),
        tenant_type: TenantType::Salesforce,
        license_assigned_status: None,
        tenant_ids: Some(vec!["KEEP".to_owned(), "other".to_owned()].into()),
    };
    let record = |id: &str, kind: Option<Result<TenantType, String>>| TenantRecord {
        seats: tenant(id, 1, 1),
        tenant_type: kind,
    };
    let all = Fetched {
        items: vec![
            record("keep", Some(Ok(TenantType::Salesforce))),
            record("other", None),
            record("m365", Some(Ok(TenantType::Microsoft365))),
            record("box", Some(Err("7".into()))),
            record("unasked", Some(Ok(TenantType::Salesforce))),
        ],
        invalid: vec![],
        pages: 1,
        foreign: Skipped::default(),
        unrequested: 0,
    };
    let mine = only_requested(&target, all);
    let ids: Vec<&str> = mine.items.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["keep", "other"]);
    assert_eq!(mine.foreign.count, 2);
    assert_eq!(
        mine.foreign.example.as_deref(),
        Some("tenant \"m365\" of type microsoft_365")
    );
    assert_eq!(mine.unrequested, 1);
    assert_eq!(target.body(), r#"{"tenantIds":["KEEP","other"]}"#);
}

#[tokio::test]
async fn a_total_beyond_the_paging_guard_fails_before_asking() {
    let mut server = Server::new(10, 10);
    server.quirk = |_, mut p| {
        p.total_count = Some(u64::MAX);
        p
    };
    let e = server.fetch(10).await.unwrap_err();
    assert!(matches!(e, ApiError::Paging(_)), "{e}");
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn bare_arrays_end_at_the_first_short_page() {
    let mut server = Server::new(250, 100);
    server.bare = true;
    assert_eq!(server.fetch(100).await.unwrap().items.len(), 250);
    assert_eq!(server.requests(), 3);
    // Without a total, a clamping server is read only up to its first page (documented:
    // page_size must not exceed the server's page size with the bare array).
    let mut server = Server::new(250, 50);
    server.bare = true;
    assert_eq!(server.fetch(100).await.unwrap().items.len(), 50);
    assert_eq!(server.fetch(50).await.unwrap().items.len(), 250);
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
    assert_eq!(status(429).cause().as_str(), "rate_limited");
    assert_eq!(status(503).cause().as_str(), "http_5xx");
    assert_eq!(status(403).cause().as_str(), "http_4xx");
    assert_eq!(
        ApiError::Transport(TransportError::TooLarge { limit: 1 })
            .cause()
            .as_str(),
        "too_large"
    );
    assert_eq!(
        ApiError::Transport(TransportError::Timeout(std::time::Duration::from_secs(1)))
            .cause()
            .as_str(),
        "timeout"
    );
    assert_eq!(
        ApiError::Token(AuthError::Parse(String::new()))
            .cause()
            .as_str(),
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
