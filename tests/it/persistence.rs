//! Restarts with `--persistence.file`: what comes back at once (series, last-success times,
//! results, the schedule, the customer list), what does not (stale and removed targets), and
//! what a bad, unwritable or crashed-over file does. In-process on paused time where a test is
//! about timing; the binary for signals, flags and exit codes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use avepoint_elements_exporter::Persistence;
use tokio::time::Instant;

use crate::common::*;

/// A fake API: `n` tenants for every customer, seats from the customer's name; while `down`
/// is set, every request (tokens included) fails.
async fn api(down: Arc<AtomicBool>) -> FakeApi {
    FakeApi::start(move |r| {
        if down.load(Ordering::SeqCst) {
            return Reply::status(503, "text/plain", "maintenance");
        }
        if r.path == "/token" {
            return token_reply(1);
        }
        let customer = r.path.split('/').nth(6).unwrap_or("").to_owned();
        let n = customer.len();
        let records: Vec<_> = (0..2)
            .map(|i| {
                record(
                    &format!("{customer}-t{i}"),
                    &format!("T {i}"),
                    (n + i) as i64,
                    7,
                )
            })
            .collect();
        Reply::json(envelope(&records, 1, 100, records.len()))
    })
    .await
}

fn customers(ids: &[&str]) -> String {
    let mut yaml = String::from("poll:\n  interval: 5m\ncustomers:\n");
    for id in ids {
        yaml.push_str(&format!(
            "  - id: {id}\n    name: Org {id}\n    tenant_types: [0]\n"
        ));
    }
    yaml
}

fn keep_in(
    path: &Path,
    interval: Duration,
) -> impl FnOnce(&mut avepoint_elements_exporter::app::Options) {
    let path = path.to_owned();
    move |o| o.persistence = Some(Persistence { path, interval })
}

/// The seat series and last-success times of an exposition.
fn kept(text: &str) -> Vec<String> {
    let mut lines = series(text, "available_user_seats");
    lines.extend(series(text, "assigned_user_seats"));
    lines.extend(series(
        text,
        "avepoint_exporter_target_last_success_timestamp_seconds",
    ));
    lines.extend(series(text, "avepoint_exporter_target_tenants"));
    lines
}

/// A config for `api` with `rest` in a fresh directory, and the state file `name` in it.
fn kept_fleet(api: &FakeApi, rest: &str, name: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (dir, config) = config_with_limits(api, TEST_LIMITS, rest);
    let state = dir.path().join(name);
    (dir, config, state)
}

/// Starts the daemon in-process on `config` keeping its state in `state`; runs one full pass
/// and stops it cleanly (the last write happens at shutdown): the exposition it served.
async fn run_once(config: &Path, state: &Path) -> String {
    let exporter = Exporter::in_process_with(config, keep_in(state, Duration::from_secs(60))).await;
    let text = exporter.first_cycle().await;
    exporter.stop().await.unwrap();
    text
}

/// Rewrites the state file's lines with `edit` (as an operator's outage would age them).
fn edit_state(path: &Path, edit: impl Fn(serde_json::Value) -> serde_json::Value) {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<String> = text
        .lines()
        .map(|l| edit(serde_json::from_str(l).unwrap()).to_string())
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(start_paused = true)]
async fn a_restart_serves_everything_at_once_with_the_api_down_and_polls_nothing_early() {
    let down = Arc::new(AtomicBool::new(false));
    let api = api(down.clone()).await;
    let ids: Vec<String> = (0..30).map(|i| format!("c{i:02}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (_dir, config, state) = kept_fleet(&api, &customers(&ids), "state/exporter.jsonl");
    let before = run_once(&config, &state).await;
    assert_eq!(series(&before, "available_user_seats").len(), 60);

    // The file: 0600, and nothing secret in it.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&state).unwrap();
    for secret in ["my-very-secret-value", "tok-1", "my-client", "Bearer"] {
        assert!(!text.contains(secret), "{secret} in the state file");
    }

    // The API refuses everything now, tokens included.
    down.store(true, Ordering::SeqCst);
    let sent = api.requests().len();
    let exporter =
        Exporter::in_process_with(&config, keep_in(&state, Duration::from_secs(60))).await;
    // The very first answers: every series with its value and original last-success time,
    // and ready.
    let (_, after) = exporter.get("/metrics").await;
    assert_eq!(kept(&after), kept(&before));
    assert!(series(&after, "avepoint_exporter_target_up")
        .iter()
        .all(|l| l.ends_with(" 1")));
    assert_eq!(exporter.get("/-/ready").await.0, 200);
    assert_eq!(
        counter(&after, "avepoint_exporter_persistence_restored_targets"),
        Some(30.0)
    );
    let line = exporter.log_line("restored the persisted state").await;
    assert!(line.contains("targets=30"), "{line}");
    // Every target was polled a moment ago and is due at its slot, at least half an interval
    // (2.5 min) later: the first two minutes send nothing at all.
    let until = Instant::now() + Duration::from_secs(120);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    assert_eq!(api.requests().len(), sent, "nothing polled early");
    // Later each target is polled at its slot (within the interval after its last poll);
    // failing, it keeps its series (stale_after 15m).
    let until = Instant::now() + Duration::from_secs(6 * 60);
    let text = loop {
        let (_, text) = exporter.get("/metrics").await;
        let down = series(&text, "avepoint_exporter_target_up")
            .iter()
            .filter(|l| l.ends_with(" 0"))
            .count();
        if down == 30 || Instant::now() > until {
            break text;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    assert!(series(&text, "avepoint_exporter_target_up")
        .iter()
        .all(|l| l.ends_with(" 0")));
    assert_eq!(series(&text, "available_user_seats").len(), 60);
}

#[tokio::test(start_paused = true)]
async fn stale_and_removed_targets_are_not_revived_and_a_renamed_customer_takes_its_new_name() {
    let down = Arc::new(AtomicBool::new(false));
    let api = api(down.clone()).await;
    let (dir, config, state) =
        kept_fleet(&api, &customers(&["keep", "old", "gone"]), "state.jsonl");
    run_once(&config, &state).await;
    // `old` has been failing for 16 minutes (stale_after is 15m).
    let now = unix_now();
    edit_state(&state, |mut v| {
        if v["target"]["customer_id"] == "old" {
            v["target"]["failing_since"] = (now - 16.0 * 60.0).into();
            v["target"]["error"] = "HTTP 500 (http_5xx)".into();
        }
        v
    });
    down.store(true, Ordering::SeqCst);
    write_config(
        &dir,
        &api,
        "poll:\n  interval: 5m\ncustomers:\n  - id: keep\n    name: Renamed\n    tenant_types: [0]\n  - id: old\n    tenant_types: [0]\n  - id: new\n    tenant_types: [0]\n",
    );
    let exporter =
        Exporter::in_process_with(&config, keep_in(&state, Duration::from_secs(60))).await;
    let (_, text) = exporter.get("/metrics").await;
    // Revived, under the name the config gives it now.
    assert_eq!(
        series(&text, "available_user_seats"),
        [
            "available_user_seats{customer_id=\"keep\",customer_name=\"Renamed\",tenant_type=\"microsoft_365\",tenant_id=\"keep-t0\",tenant_name=\"T 0\"} 4",
            "available_user_seats{customer_id=\"keep\",customer_name=\"Renamed\",tenant_type=\"microsoft_365\",tenant_id=\"keep-t1\",tenant_name=\"T 1\"} 5",
        ]
    );
    // `gone` is no longer configured and `new` was never polled: neither has a target series
    // (`new` is named in customer_info, as every planned customer is from the start). `old`
    // is stale: back with its result and last success, without its series, and due at once.
    let targets: String = text
        .lines()
        .filter(|l| !l.starts_with("avepoint_exporter_customer_info"))
        .collect();
    for id in ["gone", "new"] {
        assert!(
            !targets.contains(&format!("customer_id=\"{id}\"")),
            "{id}: {text}"
        );
    }
    assert!(!text.contains("customer_id=\"gone\""), "{text}");
    assert_eq!(
        series(&text, "avepoint_exporter_customer_info").len(),
        3,
        "keep, old, new: {text}"
    );
    assert!(
        !text.contains("available_user_seats{customer_id=\"old\""),
        "{text}"
    );
    assert_eq!(up(&text, "old"), Some(0.0), "{text}");
    assert!(text
        .contains("avepoint_exporter_target_last_success_timestamp_seconds{customer_id=\"old\""));
    let line = exporter.log_line("restored the persisted state").await;
    for part in [
        "targets=1",
        "without_series_stale=1",
        "not_revived_removed=1",
        "not_in_file=1",
    ] {
        assert!(line.contains(part), "{part}: {line}");
    }
    // `new` and `old` are polled at once.
    let text = exporter.first_cycle().await;
    assert_eq!(up(&text, "old"), Some(0.0));
    assert_eq!(up(&text, "new"), Some(0.0));
    assert_eq!(up(&text, "keep"), Some(1.0));
    // A clean stop writes the state once more.
    exporter.stop().await.unwrap();

    // A 20-minute outage (every time in the file 20 minutes older) revives nothing.
    edit_state(&state, |mut v| {
        for field in ["written_at", "last_poll", "last_success", "next_due"] {
            for section in ["header", "target"] {
                if let Some(t) = v[section][field].as_f64() {
                    v[section][field] = (t - 1200.0).into();
                }
            }
        }
        v
    });
    let exporter =
        Exporter::in_process_with(&config, keep_in(&state, Duration::from_secs(60))).await;
    let (_, text) = exporter.get("/metrics").await;
    assert!(!text.contains("available_user_seats{"), "{text}");
    // `keep` and `old` come back without series, with their original last success (targets
    // that never succeeded have nothing to go stale and come back with their cause).
    assert!(text
        .contains("avepoint_exporter_target_last_success_timestamp_seconds{customer_id=\"keep\""));
    let line = exporter.log_line("restored the persisted state").await;
    assert!(line.contains("targets=1 without_series_stale=2"), "{line}");
}

/// Puts a bad state file (or something else) at a path.
type MakeFile = dyn Fn(&Path);

#[tokio::test(start_paused = true)]
async fn a_bad_state_file_is_moved_aside_with_one_warning_and_the_exporter_starts_fresh() {
    let api = api(Arc::default()).await;
    let (dir, config) = config_with_limits(&api, TEST_LIMITS, &customers(&["a", "b"]));
    let good = dir.path().join("good.jsonl");
    run_once(&config, &good).await;
    let whole = std::fs::read_to_string(&good).unwrap();
    let cases: Vec<(&str, Box<MakeFile>, &str)> = vec![
        (
            "garbage",
            Box::new(|p| std::fs::write(p, "\u{0}\u{1}garbage").unwrap()),
            "no header",
        ),
        (
            "empty",
            Box::new(|p| std::fs::write(p, "").unwrap()),
            "empty",
        ),
        (
            "truncated",
            Box::new({
                let whole = whole.clone();
                move |p| std::fs::write(p, &whole[..whole.len() * 2 / 3]).unwrap()
            }),
            "",
        ),
        (
            "other-version",
            Box::new({
                let whole = whole.clone();
                move |p| {
                    std::fs::write(p, whole.replacen("\"version\":1", "\"version\":7", 1)).unwrap()
                }
            }),
            "format version 7",
        ),
        (
            "directory",
            Box::new(|p| std::fs::create_dir(p).unwrap()),
            "not a regular file",
        ),
        (
            "fifo",
            Box::new(|p| {
                assert!(std::process::Command::new("mkfifo")
                    .arg(p)
                    .status()
                    .unwrap()
                    .success())
            }),
            "not a regular file",
        ),
        (
            "oversized",
            Box::new(|p| {
                let f = std::fs::File::create(p).unwrap();
                f.set_len(2 << 30).unwrap(); // sparse: no disk used
            }),
            "bytes a state file may have",
        ),
    ];
    for (name, make, cause) in cases {
        let path = dir.path().join(format!("{name}.jsonl"));
        make(&path);
        let exporter =
            Exporter::in_process_with(&config, keep_in(&path, Duration::from_secs(60))).await;
        let line = exporter
            .log_line("cannot use the persistence file; starting without it")
            .await;
        assert!(line.contains("level=warn"), "{line}");
        assert!(line.contains(path.to_str().unwrap()), "{name}: {line}");
        assert!(line.contains(cause), "{name}: {line}");
        let aside = PathBuf::from(format!("{}.bad", path.display()));
        assert!(aside.exists(), "{name}: not moved aside");
        // Starts as if there were no file: polls, serves, and writes a good file.
        let text = exporter.first_cycle().await;
        assert_eq!(series(&text, "available_user_seats").len(), 4, "{name}");
        exporter.stop().await.unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.starts_with("{\"header\""), "{name}: {written}");
        assert_eq!(
            written.lines().count(),
            4,
            "{name}: header, two targets, end"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_write_is_counted_and_logged_while_polling_and_serving_go_on() {
    let api = api(Arc::default()).await;
    let (dir, config, state) = kept_fleet(
        &api,
        "poll:\n  interval: 1s\ncustomers:\n  - id: a\n    tenant_types: [0]\n",
        "state.jsonl",
    );
    let exporter =
        Exporter::in_process_with(&config, keep_in(&state, Duration::from_secs(1))).await;
    let text = exporter
        .metrics_when("a write", |t| {
            counter(
                t,
                "avepoint_exporter_persistence_last_write_timestamp_seconds",
            )
            .is_some_and(|v| v > 0.0)
        })
        .await;
    assert_eq!(
        counter(&text, "avepoint_exporter_persistence_write_failures_total"),
        Some(0.0)
    );
    // The file's place is taken by a directory that a file cannot replace.
    std::fs::remove_file(&state).unwrap();
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("keep"), "x").unwrap();
    let polls = counter(&text, "avepoint_exporter_poll_duration_seconds_count").unwrap();
    let text = exporter
        .metrics_when("two failed writes, polls going on", |t| {
            counter(t, "avepoint_exporter_persistence_write_failures_total")
                .is_some_and(|v| v >= 2.0)
                && counter(t, "avepoint_exporter_poll_duration_seconds_count")
                    .is_some_and(|v| v > polls + 1.0)
        })
        .await;
    assert_eq!(up(&text, "a"), Some(1.0));
    let line = exporter.log_line("cannot write the persistence file").await;
    assert!(line.contains("state.jsonl"), "{line}");
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".tmp")), "{names:?}");
}

#[tokio::test(start_paused = true)]
async fn a_discovered_fleet_comes_back_while_the_customer_list_cannot_be_fetched() {
    const LIST: &str = "/partner/external/v3/general/customers/batch";
    let list_down = Arc::new(AtomicBool::new(false));
    let down = list_down.clone();
    let api = FakeApi::with_tokens(move |r| {
        if r.path == LIST {
            if down.load(Ordering::SeqCst) {
                return Reply::status(500, "text/plain", "directory down");
            }
            let list: Vec<_> = ["d1", "d2", "d3"]
                .iter()
                .map(|id| serde_json::json!({"id": id, "organization": format!("Org {id}")}))
                .collect();
            return Reply::json(envelope(&list, 1, 100, 3));
        }
        let customer = r.path.split('/').nth(6).unwrap_or("").to_owned();
        Reply::json(envelope(
            &[record(&format!("{customer}-t"), "T", 3, 1)],
            1,
            100,
            1,
        ))
    })
    .await;
    let (_dir, config, state) = kept_fleet(
        &api,
        "poll:\n  interval: 5m\ndiscovery:\n  tenant_types: [0]\n",
        "state.jsonl",
    );
    let before = run_once(&config, &state).await;
    assert_eq!(series(&before, "available_user_seats").len(), 3);
    list_down.store(true, Ordering::SeqCst);
    let exporter =
        Exporter::in_process_with(&config, keep_in(&state, Duration::from_secs(60))).await;
    let (_, after) = exporter.get("/metrics").await;
    assert_eq!(kept(&after), kept(&before));
    assert!(after.contains("customer_name=\"Org d2\""));
    assert_eq!(exporter.get("/-/ready").await.0, 200);
    // The list is still asked for, and its failure keeps the restored one.
    let line = exporter
        .log_line("cannot fetch the customer list; keeping the last one")
        .await;
    assert!(line.contains("http_5xx"), "{line}");
}

/// The binary's arguments for `config`, keeping its state in `state`.
fn args<'a>(config: &'a Path, state: &'a Path, interval: &'a str) -> Vec<&'a str> {
    vec![
        "--config.file",
        config.to_str().unwrap(),
        "--persistence.file",
        state.to_str().unwrap(),
        "--persistence.interval",
        interval,
    ]
}

#[tokio::test]
async fn through_the_binary_sigterm_writes_the_file_and_a_restart_restores_it() {
    let down = Arc::new(AtomicBool::new(false));
    let api = api(down.clone()).await;
    let (dir, config, state) = kept_fleet(
        &api,
        &customers(&["a", "b", "c"]),
        "var/lib/exporter/state.jsonl",
    );
    // The flags are in --help and in --check-config's summary.
    let (_, help, _) = run_binary(&["--help"], dir.path());
    assert!(help.contains("--persistence.file <PATH>"), "{help}");
    assert!(help.contains("--persistence.interval <DURATION>"), "{help}");
    let mut check = args(&config, &state, "30s");
    check.push("--check-config");
    let (code, out, _) = run_binary(&check, dir.path());
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!(
            "persistence: {} (written at most every 30s while something changed, and at shutdown)",
            state.display()
        )),
        "{out}"
    );
    let (_, out, _) = check_config(&config, dir.path());
    assert!(out.contains("persistence: off"), "{out}");

    let mut exporter = Exporter::start(&args(&config, &state, "1h"));
    let before = exporter.first_cycle().await;
    // Written at once after the first pass, an hour before the next interval's write...
    let start = std::time::Instant::now();
    while !state.exists() {
        assert!(start.elapsed() < DEADLINE, "no state file");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...and again at SIGTERM, within the shutdown budget.
    assert!(exporter
        .signal_and_wait("TERM", Duration::from_secs(5))
        .success());
    down.store(true, Ordering::SeqCst);
    let sent = api.requests().len();
    let exporter = Exporter::start(&args(&config, &state, "1h"));
    let (_, after) = exporter.get("/metrics").await;
    assert_eq!(kept(&after), kept(&before));
    assert_eq!(exporter.get("/-/ready").await.0, 200);
    assert_eq!(api.requests().len(), sent, "nothing polled at start");
}

#[test]
fn an_unwritable_persistence_path_exits_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "elements:\n  token_url: https://id.example.com/t\n  client_id: x\n  client_secret: y\ncustomers:\n  - id: a\n",
    )
    .unwrap();
    // A file where the state's directory would have to be.
    std::fs::write(dir.path().join("blocker"), "").unwrap();
    let state = dir.path().join("blocker/state.jsonl");
    let err = fails_with_1(
        &[
            "--config.file",
            config.to_str().unwrap(),
            "--web.listen-address",
            "127.0.0.1:0",
            "--persistence.file",
            state.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(
        err.contains("--persistence.file") && err.contains("cannot create its directory"),
        "{err}"
    );
    assert!(err.contains("blocker"), "{err}");
}

#[tokio::test]
async fn sigkill_at_any_moment_leaves_a_file_the_next_start_restores_without_a_warning() {
    let api = api(Arc::default()).await;
    let ids: Vec<String> = (0..40).map(|i| format!("k{i:02}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (_dir, config, state) = kept_fleet(
        &api,
        &customers(&ids).replace("interval: 5m", "interval: 1s"),
        "state.jsonl",
    );
    // Polls finish all the time and the state is written as often as it changes.
    let args = args(&config, &state, "1ms");
    let mut rng = fastrand::Rng::with_seed(7);
    for round in 0..6 {
        let exporter = Exporter::start(&args);
        if round > 0 {
            let line = exporter.log_line("restored the persisted state").await;
            assert!(!line.contains("targets=0 "), "round {round}: {line}");
            assert!(
                !exporter
                    .log_text()
                    .contains("cannot use the persistence file"),
                "round {round}: {}",
                exporter.log_text()
            );
        }
        exporter.first_cycle().await;
        // A kill at a moment nobody chose: mid-write, mid-rename, mid-poll.
        tokio::time::sleep(Duration::from_millis(rng.u64(0..300))).await;
        std::process::Command::new("kill")
            .args(["-KILL", &exporter.pid().to_string()])
            .status()
            .unwrap();
        drop(exporter);
    }
}

#[tokio::test(start_paused = true)]
async fn restored_empty_targets_keep_their_empty_cadence() {
    // Microsoft 365 has a tenant, the other three types are empty.
    let api = FakeApi::with_tokens(|r| {
        let records = match r.path.split('/').nth(9) {
            Some("0") => vec![record("t", "T", 5, 5)],
            _ => Vec::new(),
        };
        Reply::json(envelope(&records, 1, 100, records.len()))
    })
    .await;
    let (_dir, config, state) = kept_fleet(
        &api,
        "poll:\n  interval: 5m\ncustomers:\n  - id: a\n  - id: b\n",
        "state.jsonl",
    );
    run_once(&config, &state).await;
    let sent = api.tenant_requests().len();
    assert_eq!(sent, 8);
    let exporter =
        Exporter::in_process_with(&config, keep_in(&state, Duration::from_secs(60))).await;
    let (_, text) = exporter.get("/metrics").await;
    assert_eq!(
        counter(&text, "avepoint_exporter_empty_targets"),
        Some(6.0),
        "{text}"
    );
    // Twenty minutes later: Microsoft 365 polled every five minutes, the empty types not at
    // all (they are due an hour after their last poll).
    let until = Instant::now() + Duration::from_secs(20 * 60);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    for customer in ["a", "b"] {
        let m365 = api.requests_to(customer, 0).len();
        assert!((4..=6).contains(&m365), "{customer}: {m365}");
        for kind in 1..=3 {
            assert_eq!(
                api.requests_to(customer, kind).len(),
                1,
                "{customer} type {kind}"
            );
        }
    }
}

#[tokio::test]
async fn through_the_binary_a_torn_state_file_is_moved_aside_and_the_exporter_serves() {
    let api = api(Arc::default()).await;
    let (dir, config, state) = kept_fleet(&api, &customers(&["a", "b"]), "state.jsonl");
    // The header and first target of a real file, no end: what a write cut by kill -9 would
    // leave were it not atomic.
    run_once(&config, &state).await;
    let whole = std::fs::read_to_string(&state).unwrap();
    let torn: String = whole.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(&state, torn).unwrap();
    let exporter = Exporter::start(&args(&config, &state, "1h"));
    let line = exporter
        .log_line("cannot use the persistence file; starting without it")
        .await;
    assert!(line.contains("cut short"), "{line}");
    assert!(dir.path().join("state.jsonl.bad").exists());
    let text = exporter.first_cycle().await;
    assert_eq!(series(&text, "available_user_seats").len(), 4);
}

/// Runs the binary on `config` keeping its state in `state` until its first pass is written,
/// then stops it with SIGTERM (which writes the file once more): the exposition it served.
async fn binary_pass(config: &Path, state: &Path) -> String {
    let mut exporter = Exporter::start(&args(config, state, "1h"));
    let text = exporter.first_cycle().await;
    assert!(exporter
        .signal_and_wait("TERM", Duration::from_secs(5))
        .success());
    assert!(state.exists(), "no state file");
    text
}

#[tokio::test]
async fn through_the_binary_a_state_of_another_api_or_client_is_not_restored() {
    let other = api(Arc::new(AtomicBool::new(true))).await;
    let api = api(Arc::default()).await;
    let (dir, config, state) = kept_fleet(&api, &customers(&["a", "b"]), "state.jsonl");
    let before = binary_pass(&config, &state).await;
    assert_eq!(series(&before, "available_user_seats").len(), 4);
    // The file says what it was written for, and holds no client id.
    let header = std::fs::read_to_string(&state).unwrap();
    let header = header.lines().next().unwrap();
    assert!(
        header.contains(&format!("\"base_url\":\"{}/\"", api.base_url())),
        "{header}"
    );
    assert!(!header.contains("my-client"), "{header}");

    // The same customers behind another API, which fails everything.
    write_config(&dir, &other, &customers(&["a", "b"]));
    let exporter = Exporter::start(&args(&config, &state, "1h"));
    let line = exporter
        .log_line("the persistence file was written for another API or client")
        .await;
    assert!(line.contains("level=warn"), "{line}");
    assert!(
        line.contains(&format!(
            "base_url {}/ in the file, {}/ in the config",
            api.base_url(),
            other.base_url()
        )),
        "{line}"
    );
    // Nothing of the old API is served, let alone as up; its polls decide.
    let (_, text) = exporter.get("/metrics").await;
    assert!(!text.contains("available_user_seats{"), "{text}");
    assert!(!text.contains("avepoint_exporter_target_up{"), "{text}");
    assert_eq!(
        counter(&text, "avepoint_exporter_persistence_restored_targets"),
        Some(0.0)
    );
    let text = exporter.first_cycle().await;
    assert_eq!(up(&text, "a"), Some(0.0));
    assert!(!text.contains("available_user_seats{"), "{text}");
    assert_eq!(
        exporter.log_text().matches("another API or client").count(),
        1
    );
    drop(exporter);

    // The first API again, under another client id: not restored either.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace(&other.base_url(), &api.base_url()),
    )
    .unwrap();
    binary_pass(&config, &state).await;
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("client_id: my-client", "client_id: another-client"),
    )
    .unwrap();
    let exporter = Exporter::start(&args(&config, &state, "1h"));
    let line = exporter
        .log_line("the persistence file was written for another API or client")
        .await;
    assert!(line.contains("differs=\"another client_id\""), "{line}");
    assert!(!line.contains("my-client"), "{line}");
}

#[tokio::test]
async fn through_the_binary_times_in_the_future_neither_crash_the_pages_nor_come_back() {
    let down = Arc::new(AtomicBool::new(false));
    let api = api(down.clone()).await;
    let (_dir, config, state) = kept_fleet(&api, &customers(&["a", "b"]), "state.jsonl");
    binary_pass(&config, &state).await;
    let good = std::fs::read_to_string(&state).unwrap();
    down.store(true, Ordering::SeqCst);

    // One target's times in the year 33658 (a crafted file, a clock far ahead then).
    edit_state(&state, |mut v| {
        if v["target"]["customer_id"] == "a" {
            for field in ["last_poll", "last_success"] {
                v["target"][field] = 1e12.into();
            }
        }
        v
    });
    let exporter = Exporter::start(&args(&config, &state, "1h"));
    let now = unix_now();
    let (code, page) = exporter.get("/").await;
    assert_eq!(code, 200, "{page}");
    let (code, json) = exporter.get("/api/v1/targets").await;
    assert_eq!(code, 200, "{json}");
    // Clamped to when the file was written: never later than now.
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let a = v["data"]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["customerId"] == "a")
        .unwrap()
        .clone();
    let last = a["lastSuccess"].as_str().unwrap();
    assert!(last.starts_with("20"), "{a}");
    let (_, text) = exporter.get("/metrics").await;
    let at = value(
        &text,
        "avepoint_exporter_target_last_success_timestamp_seconds",
        &["customer_id=\"a\""],
    )
    .unwrap();
    assert!(at <= now + 1.0, "{at} > {now}");
    drop(exporter);

    // A file written a day from now: its times cannot be trusted; refused, moved aside.
    std::fs::write(&state, &good).unwrap();
    edit_state(&state, |mut v| {
        if v["header"].is_object() {
            v["header"]["written_at"] = (unix_now() + 86_400.0).into();
        }
        v
    });
    let exporter = Exporter::start(&args(&config, &state, "1h"));
    let line = exporter
        .log_line("cannot use the persistence file; starting without it")
        .await;
    assert!(line.contains("s after now"), "{line}");
    assert!(PathBuf::from(format!("{}.bad", state.display())).exists());
    let (_, text) = exporter.get("/metrics").await;
    assert!(!text.contains("available_user_seats{"), "{text}");
    assert_eq!(exporter.get("/").await.0, 200);
}

#[tokio::test]
async fn through_the_binary_a_huge_file_or_line_is_refused_after_a_bounded_read() {
    let api = api(Arc::default()).await;
    let (dir, config, state) = kept_fleet(&api, &customers(&["a", "b"]), "state.jsonl");
    binary_pass(&config, &state).await;
    let good = std::fs::read_to_string(&state).unwrap();
    let header = format!("{}\n", good.lines().next().unwrap());
    let bad = PathBuf::from(format!("{}.bad", state.display()));
    let cases: Vec<(&str, Box<MakeFile>, &str)> = vec![
        (
            // 1 GiB of zeros (sparse: no disk used), just within the size limit.
            "sparse",
            Box::new(|p| {
                let f = std::fs::File::create(p).unwrap();
                f.set_len(1 << 30).unwrap();
            }),
            "no header line within the first 1024 bytes",
        ),
        (
            // A good header, then one line of 512 MiB.
            "huge line",
            Box::new(move |p| {
                std::fs::write(p, &header).unwrap();
                let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
                f.set_len(header.len() as u64 + (512 << 20)).unwrap();
            }),
            "line 2 is longer than 67108864 bytes",
        ),
    ];
    for (name, make, cause) in cases {
        let _ = std::fs::remove_file(&bad);
        make(&state);
        let started = std::time::Instant::now();
        let exporter = Exporter::start(&args(&config, &state, "1h"));
        let line = exporter
            .log_line("cannot use the persistence file; starting without it")
            .await;
        assert!(line.contains(cause), "{name}: {line}");
        assert!(bad.exists() && !state.exists(), "{name}: not moved aside");
        // Read in bounded pieces: quickly, and never the whole file in memory.
        assert!(started.elapsed() < Duration::from_secs(5), "{name}");
        let peak = peak_rss_mib(exporter.pid());
        assert!(peak < 256, "{name}: peak RSS {peak} MiB");
        let text = exporter.first_cycle().await;
        assert_eq!(series(&text, "available_user_seats").len(), 4, "{name}");
    }

    // A start that died while reading (a crash, a kill) left the file at `PATH.reading`: the
    // next start does not read it again, says so, and starts without it.
    let reading = dir.path().join("state.jsonl.reading");
    let _ = std::fs::remove_file(&state);
    std::fs::write(&reading, &good).unwrap();
    let exporter = Exporter::start(&args(&config, &state, "1h"));
    let line = exporter
        .log_line("an earlier start stopped while reading the persistence file")
        .await;
    assert!(line.contains("level=warn"), "{line}");
    assert!(!reading.exists() && bad.exists());
    let (_, text) = exporter.get("/metrics").await;
    assert!(!text.contains("available_user_seats{"), "{text}");
    exporter.first_cycle().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_keeps_its_state_across_restarts_although_its_api_moves_port() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let args = ["--demo", "--persistence.file", state];
    let mut first = Exporter::start(&args);
    let text = first.first_cycle().await;
    let tenants = series(&text, "available_user_seats").len();
    assert!(tenants > 100);
    assert!(first
        .signal_and_wait("TERM", Duration::from_secs(5))
        .success());
    // The simulated API of the second start listens on another port: the same demo.
    let second = Exporter::start(&args);
    let text = second
        .metrics_when("the restored demo", |t| {
            t.contains("avepoint_exporter_persistence_restored_targets")
        })
        .await;
    assert!(
        counter(&text, "avepoint_exporter_persistence_restored_targets").is_some_and(|n| n > 0.0),
        "{}",
        second.log_text()
    );
    assert!(
        !second.log_text().contains("another API"),
        "{}",
        second.log_text()
    );
    // ...and says that its simulated API starts its story over.
    second
        .log_line("the simulated API starts its story over")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_pass_is_written_at_once_so_sigkill_soon_after_start_loses_nothing() {
    let down = Arc::new(AtomicBool::new(false));
    let api = api(down.clone()).await;
    let ids: Vec<String> = (0..12).map(|i| format!("s{i:02}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (_dir, config, state) = kept_fleet(&api, &customers(&ids), "state.jsonl");
    // Written at most once an hour: only the first pass's own write can keep it all.
    let args = args(&config, &state, "1h");
    let exporter = Exporter::start(&args);
    let first = kept(&exporter.first_cycle().await);
    assert_eq!(series(&first.join("\n"), "available_user_seats").len(), 24);
    let deadline = Instant::now() + DEADLINE;
    while !ids
        .iter()
        .all(|id| std::fs::read_to_string(&state).is_ok_and(|t| t.contains(&format!("{id}-t1"))))
    {
        assert!(
            Instant::now() < deadline,
            "the first pass was not written: {:?}",
            std::fs::read_to_string(&state)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::process::Command::new("kill")
        .args(["-KILL", &exporter.pid().to_string()])
        .status()
        .unwrap();
    drop(exporter);
    // The API is gone: what is served is what the file kept.
    down.store(true, Ordering::SeqCst);
    let exporter = Exporter::start(&args);
    let text = exporter
        .metrics_when("the restored series", |t| {
            series(t, "available_user_seats").len() == 24
        })
        .await;
    assert_eq!(kept(&text).len(), first.len(), "{text}");
}
