//! The state file's format (round trip, versions, damage) and the revival arithmetic.

use super::*;
use std::sync::Arc;

use crate::domain::{TenantSeats, TenantType};
use crate::elements::client::DiscoveredCustomer;
use crate::metrics::SeatSeries;

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

fn tenants(n: usize) -> Vec<TenantSeats> {
    (0..n)
        .map(|i| TenantSeats {
            id: format!("t{i}"),
            name: format!("Tenant \"{i}\" \\ \n é"),
            available: i as u64,
            assigned: 2 * i as u64,
        })
        .collect()
}

fn target(id: &str, n: usize) -> SavedTarget {
    SavedTarget {
        customer_id: id.into(),
        tenant_type: TenantType::Google,
        seats: Arc::new(SeatSeries::new(&tenants(n))),
        tenants: Some(n),
        last_poll: Some(at(1_000)),
        last_success: Some(at(1_000)),
        failing_since: None,
        error: None,
        pages: Some(1),
        next_due: Some(at(1_300)),
    }
}

/// The origin the tests' states are written for and read by.
fn origin() -> Origin {
    Origin {
        base_url: "https://graph.example.com/".into(),
        client: "sha256:00".into(),
        certificate: None,
    }
}

/// A clock well after every time in [`saved`].
fn later() -> SystemTime {
    at(100_000)
}

fn saved(customers: Option<Vec<DiscoveredCustomer>>) -> Saved {
    let mut failing = target("b", 0);
    failing.error = Some("HTTP 500 (http_5xx)".into());
    failing.failing_since = Some(at(1_100));
    failing.last_success = None;
    failing.tenants = None;
    Saved {
        written_at: at(1_200),
        origin: None,
        targets: vec![target("a", 3), failing, target("c", 250)],
        customers: customers.map(Arc::new),
    }
}

fn encoded(saved: &Saved) -> Vec<u8> {
    let mut out = Vec::new();
    format::encode(&mut out, saved).unwrap();
    out
}

fn decoded(bytes: &[u8]) -> Result<Saved, String> {
    decoded_at(bytes, &origin(), later())
}

fn decoded_at(bytes: &[u8], origin: &Origin, now: SystemTime) -> Result<Saved, String> {
    format::decode(&mut std::io::Cursor::new(bytes), origin, now).map_err(|r| match r {
        Refused::Foreign(differs) => format!("foreign: {differs}"),
        Refused::Bad { why, .. } => why,
    })
}

fn load(path: &Path) -> Loaded {
    super::load(path, &origin(), later()).loaded
}

fn same(a: &Saved, b: &Saved) {
    assert_eq!(a.written_at, b.written_at);
    assert_eq!(a.targets.len(), b.targets.len());
    for (x, y) in a.targets.iter().zip(&b.targets) {
        assert_eq!(x.customer_id, y.customer_id);
        assert_eq!(x.tenant_type, y.tenant_type);
        assert_eq!(*x.seats, *y.seats);
        assert_eq!(
            (x.tenants, x.last_poll, x.last_success, x.failing_since),
            (y.tenants, y.last_poll, y.last_success, y.failing_since)
        );
        assert_eq!(
            (&x.error, x.pages, x.next_due),
            (&y.error, y.pages, y.next_due)
        );
    }
    assert_eq!(a.customers, b.customers);
}

#[test]
fn a_state_round_trips_exactly() {
    let list = vec![DiscoveredCustomer {
        id: "f1620000-b9d4-0000-a165-97db0000fc15".into(),
        organization: "Contoso \"Ltd\"".into(),
        country_or_region: "DE".into(),
        management_mode: "Managed".into(),
    }];
    for customers in [None, Some(Vec::new()), Some(list)] {
        let state = saved(customers);
        same(&decoded(&encoded(&state)).unwrap(), &state);
    }
}

#[test]
fn the_header_names_the_format_and_its_version() {
    let text = String::from_utf8(encoded(&saved(None))).unwrap();
    let first = text.lines().next().unwrap();
    assert_eq!(
        first,
        "{\"header\":{\"format\":\"avepoint-elements-exporter state\",\"version\":1,\"written_at\":1200.0}}"
    );
    assert!(text.ends_with("{\"end\":{\"targets\":3,\"customers\":null}}\n"));
    // Another version of the format is refused by name.
    let other = text.replacen("\"version\":1", "\"version\":2", 1);
    assert_eq!(
        decoded(other.as_bytes()).unwrap_err(),
        "format version 2; this exporter reads version 1"
    );
}

#[test]
fn damaged_files_are_refused_with_the_cause() {
    let text = String::from_utf8(encoded(&saved(None))).unwrap();
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "the file is empty"),
        ("garbage\n".into(), "no header on line 1"),
        ("{\"x\":1}\n".into(), "no header on line 1"),
        // Cut anywhere: no end line.
        (text[..text.len() / 2].into(), ""),
        (text[..text.len() - 10].into(), ""),
        (
            text.lines().take(3).collect::<Vec<_>>().join("\n"),
            "cut short",
        ),
        (
            text.replacen("\"targets\":3", "\"targets\":4", 1),
            "the end line counts 4 targets",
        ),
        (
            format!("{text}{{\"end\":{{\"targets\":3,\"customers\":null}}}}\n"),
            "data after the end line",
        ),
        (
            text.replacen("\"google\"", "\"office\"", 1),
            "unknown tenant_type \"office\"",
        ),
        (
            text.replacen("\"customer_id\":\"a\"", "\"customer_id\":\"..\"", 1),
            "customer_id \"..\"",
        ),
        (
            text.replacen("\"last_poll\":1000.0", "\"last_poll\":-5.0", 1),
            "last_poll: -5 is not a time",
        ),
        // A target twice (here: the same id in another case).
        (
            text.replacen("\"customer_id\":\"c\"", "\"customer_id\":\"A\"", 1),
            "target a/google appears twice",
        ),
    ];
    for (bad, cause) in cases {
        let why = decoded(bad.as_bytes()).unwrap_err();
        assert!(why.contains(cause), "{why:?} lacks {cause:?}");
    }
    // Not UTF-8.
    assert!(decoded(b"\xff\xfe\n").is_err());
}

#[test]
fn load_refuses_what_is_not_a_whole_regular_file_and_moves_it_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.jsonl");
    assert!(matches!(load(&path), Loaded::Missing));
    // A directory at the path.
    std::fs::create_dir(&path).unwrap();
    match load(&path) {
        Loaded::Bad(why) => assert!(why.contains("not a regular file"), "{why}"),
        other => panic!("{other:?}"),
    }
    let bad = dir.path().join("state.jsonl.bad");
    assert!(bad.is_dir() && !path.exists());
    // A FIFO answers at once (the directory moved aside earlier is the user's to remove).
    std::fs::remove_dir(&bad).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    match load(&path) {
        Loaded::Bad(why) => assert!(why.contains("not a regular file"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Replacing the older bad one.
    assert!(!path.exists());
    std::fs::write(&path, "garbage").unwrap();
    assert!(matches!(load(&path), Loaded::Bad(_)));
    assert_eq!(std::fs::read_to_string(&bad).unwrap(), "garbage");
    assert!(!path.exists());
}

#[test]
fn writes_replace_the_file_whole_with_mode_0600_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/state.jsonl");
    prepare(&path).unwrap();
    let state = saved(None);
    let written = write(&path, &state).unwrap();
    assert_eq!(written.bytes, std::fs::metadata(&path).unwrap().len());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // An older file with wider rights is replaced by a 0600 one.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    write(&path, &state).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    match load(&path) {
        Loaded::Restored(back) => same(&back, &state),
        other => panic!("{other:?}"),
    }
    let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["state.jsonl"]);
}

#[test]
fn an_unwritable_directory_is_a_start_up_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the directory should be.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "").unwrap();
    let err = prepare(&blocker.join("state.jsonl")).unwrap_err();
    assert!(matches!(err, PersistenceError::CreateDir { .. }));
    assert!(err.to_string().contains("blocker"), "{err}");
}

#[test]
fn revival_counts_the_downtime_as_failing_and_keeps_each_target_on_its_slot() {
    let minute = Duration::from_secs(60);
    let (stale_after, interval) = (15 * minute, 5 * minute);
    let up = target("a", 1); // polled at 1 000 s, due at 1 300 s, saved at 1 200 s
    let saved_at = at(1_200);
    // A restart a minute after the write: not due for another 40 s, up, not failing, but
    // unpolled for a minute (a first failure would count from the write).
    let r = revival(&up, saved_at, at(1_260), stale_after, interval);
    assert!(r.series);
    assert_eq!(r.due_in, Duration::from_secs(40));
    assert_eq!(r.failing_for, None);
    assert_eq!(r.unpolled_for, Some(minute));
    assert_eq!(r.polled_ago, Some(Duration::from_secs(260)));
    // Overdue by the time of the restart: due at once.
    let r = revival(&up, saved_at, at(1_500), stale_after, interval);
    assert_eq!(r.due_in, Duration::ZERO);
    // A 20-minute outage with a 15-minute stale_after revives no series; the target comes
    // back without them, due at once.
    let r = revival(&up, saved_at, at(1_200 + 1_200), stale_after, interval);
    assert!(!r.series);
    assert_eq!(r.due_in, Duration::ZERO);
    assert_eq!(r.unpolled_for, Some(20 * minute));
    // Failing since 1 100 s: ten minutes of failing before the stop plus six of downtime
    // are too many; plus four are not, and the failing time goes on from there.
    let mut failing = target("b", 2);
    failing.failing_since = Some(at(1_100));
    let r = revival(
        &failing,
        saved_at,
        at(1_100 + 16 * 60),
        stale_after,
        interval,
    );
    assert!(!r.series);
    assert_eq!(r.failing_for, Some(16 * minute));
    let r = revival(
        &failing,
        saved_at,
        at(1_100 + 14 * 60),
        stale_after,
        interval,
    );
    assert!(r.series);
    assert_eq!(r.failing_for, Some(14 * minute));
    assert_eq!(r.unpolled_for, None);
    // Never succeeded: nothing to go stale, kept with its cause and since when, however old.
    let mut never = target("c", 0);
    never.last_success = None;
    never.failing_since = Some(at(0));
    let r = revival(&never, saved_at, at(100_000), stale_after, interval);
    assert!(r.series);
    assert_eq!(r.failing_for, Some(Duration::from_secs(100_000)));
    // A due time further away than the (shortened) interval is brought in.
    let mut far = target("d", 1);
    far.next_due = Some(at(1_200 + 3_600));
    let r = revival(&far, saved_at, at(1_201), stale_after, interval);
    assert_eq!(r.due_in, interval);
    // A clock that went backwards counts as no time.
    let r = revival(&up, saved_at, at(900), stale_after, interval);
    assert_eq!(r.polled_ago, Some(Duration::ZERO));
}

#[test]
fn a_state_of_another_api_or_client_is_refused_after_its_header() {
    let mut state = saved(None);
    state.origin = Some(Arc::new(origin()));
    let bytes = encoded(&state);
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.lines().next().unwrap().ends_with(
            "\"base_url\":\"https://graph.example.com/\",\"client\":\"sha256:00\",\"certificate\":null}}"
        ),
        "{text}"
    );
    let back = decoded(&bytes).unwrap();
    same(&back, &state);
    assert_eq!(back.origin.as_deref(), Some(&origin()));

    let elsewhere = Origin {
        base_url: "https://other.example.com/".into(),
        ..origin()
    };
    let why = decoded_at(&bytes, &elsewhere, later()).unwrap_err();
    assert_eq!(
        why,
        "foreign: base_url https://graph.example.com/ in the file, https://other.example.com/ in the config"
    );
    let client = Origin {
        client: "sha256:01".into(),
        certificate: Some("ab".into()),
        ..origin()
    };
    let why = decoded_at(&bytes, &client, later()).unwrap_err();
    assert_eq!(
        why,
        "foreign: another client_id; a client secret in the file, a certificate in the config"
    );
    // Only the header was needed: the rest may be anything.
    let header = text.lines().next().unwrap();
    let why = decoded_at(format!("{header}\ngarbage").as_bytes(), &elsewhere, later());
    assert!(why.unwrap_err().starts_with("foreign: "));
    // A file of an earlier version records no origin: accepted.
    assert!(decoded(&encoded(&saved(None))).is_ok());
}

#[test]
fn the_origin_of_a_config_holds_no_secret_and_names_the_certificate() {
    let config = crate::config::tests::with_client("customers:\n  - id: a\n");
    let o = Origin::of(&config.elements);
    assert_eq!(o.base_url, config.elements.base_url.as_str());
    assert!(
        o.client.starts_with("sha256:") && o.client.len() == 7 + 64,
        "{o:?}"
    );
    assert!(!o.client.contains(&config.elements.client_id));
    assert_eq!(o.certificate, None);
    assert_eq!(o.differs(&o.clone()), None);
    // A very long base URL is kept as a fingerprint: the header stays short.
    let mut long = config.elements.clone();
    long.base_url = format!("https://example.com/{}", "x".repeat(300))
        .parse()
        .unwrap();
    assert!(Origin::of(&long).base_url.starts_with("sha256:"));
}

#[test]
fn reading_is_bounded_whatever_the_file_holds() {
    use std::io::Read as _;
    // No header within the first KiB (a sparse file reads as zeros).
    let why = decoded(&vec![0u8; 4096]).unwrap_err();
    assert!(why.contains("within the first 1024 bytes"), "{why}");
    // An endless line after a good header: refused after MAX_LINE_BYTES.
    let text = String::from_utf8(encoded(&saved(None))).unwrap();
    let header = format!("{}\n", text.lines().next().unwrap());
    let endless = std::io::Cursor::new(header.into_bytes()).chain(std::io::repeat(b'x'));
    let mut input = std::io::BufReader::new(endless);
    match format::decode(&mut input, &origin(), later()) {
        Err(Refused::Bad { why, .. }) => {
            assert!(
                why.contains("line 2 is longer than 67108864 bytes"),
                "{why}"
            )
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn times_in_the_future_are_refused_or_clamped() {
    let text = String::from_utf8(encoded(&saved(None))).unwrap();
    // Written 20 minutes after now: the clock was ahead, or the file was edited.
    let why = decoded_at(text.as_bytes(), &origin(), at(0)).unwrap_err();
    assert!(why.contains("1200 s after now"), "{why}");
    // Written a little after now (NTP stepped the clock back): clamped to now.
    let now = at(1_170);
    let back = decoded_at(text.as_bytes(), &origin(), now).unwrap();
    assert_eq!(back.written_at, now);
    assert!(back.targets.iter().all(|t| t.last_poll <= Some(now)));
    // A target's times after the file's: clamped to the file's (its next due time is the
    // schedule's to bound).
    let edited = text
        .replacen("\"last_success\":1000.0", "\"last_success\":1e12", 1)
        .replacen("\"next_due\":1300.0", "\"next_due\":1e12", 1);
    let back = decoded(edited.as_bytes()).unwrap();
    assert_eq!(back.targets[0].last_success, Some(at(1_200)));
    assert_eq!(back.targets[0].next_due, Some(at(1_000_000_000_000)));
}

#[test]
fn a_file_is_moved_aside_while_read_and_a_read_cut_short_is_not_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.jsonl");
    let reading = dir.path().join("state.jsonl.reading");
    let bad = dir.path().join("state.jsonl.bad");
    let mut state = saved(None);
    state.origin = Some(Arc::new(origin()));
    write(&path, &state).unwrap();
    let whole = std::fs::read(&path).unwrap();
    // Read: back in its place, nothing else left.
    let r = super::load(&path, &origin(), later());
    assert!(matches!(r.loaded, Loaded::Restored(_)));
    assert!(r.interrupted.is_none() && r.moved_to.is_none());
    assert_eq!(std::fs::read(&path).unwrap(), whole);
    assert!(!reading.exists() && !bad.exists());
    // For another API: ignored, left in place for the next write to replace.
    let elsewhere = Origin {
        base_url: "https://other.example.com/".into(),
        ..origin()
    };
    let r = super::load(&path, &elsewhere, later());
    assert!(matches!(r.loaded, Loaded::Foreign(_)), "{r:?}");
    assert_eq!(std::fs::read(&path).unwrap(), whole);
    assert!(!reading.exists() && !bad.exists());
    // A start that died while reading left `.reading`: moved to `.bad` unread, and the file
    // at the path (written since) is read.
    std::fs::write(&reading, "whatever made it crash").unwrap();
    let r = super::load(&path, &origin(), later());
    assert!(matches!(r.loaded, Loaded::Restored(_)));
    assert_eq!(r.interrupted.unwrap().unwrap(), bad);
    assert_eq!(
        std::fs::read_to_string(&bad).unwrap(),
        "whatever made it crash"
    );
    // With no file at the path, nothing is read at all.
    std::fs::rename(&path, &reading).unwrap();
    let r = super::load(&path, &origin(), later());
    assert!(matches!(r.loaded, Loaded::Missing));
    assert!(r.interrupted.unwrap().is_ok());
    assert!(!reading.exists() && !path.exists() && bad.exists());
    // A bad file goes from `.reading` to `.bad`.
    std::fs::write(&path, "garbage\n").unwrap();
    let r = super::load(&path, &origin(), later());
    assert!(matches!(r.loaded, Loaded::Bad(_)));
    assert_eq!(r.moved_to.unwrap().unwrap(), bad);
    assert!(!reading.exists() && !path.exists());
    assert_eq!(std::fs::read_to_string(&bad).unwrap(), "garbage\n");
}
