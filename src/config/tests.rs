//! Config tests: every problem at once, with its key path and value.

use super::*;
use std::collections::HashMap;
use std::path::Path;

/// A fake environment: variables and files from maps (empty by default: no variables, every
/// file missing).
#[derive(Default)]
pub(crate) struct FakeEnv {
    pub(crate) vars: HashMap<String, String>,
    pub(crate) files: HashMap<PathBuf, String>,
}

impl Environment for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

/// A valid config: a client for a fake identity server, then `rest` (the `poll`,
/// `discovery` and `customers` sections). For the planning tests.
pub(crate) fn with_client(rest: &str) -> Config {
    let yaml = format!(
        "elements:\n  token_url: https://id.example.com/t\n  client_id: x\n  client_secret: y\n{rest}"
    );
    Config::parse(&yaml, &FakeEnv::default()).unwrap()
}

#[test]
fn deep_nesting_fails_fast_and_real_nesting_passes() {
    let env = FakeEnv::default();
    let started = std::time::Instant::now();
    for hostile in [
        format!("customers: {}{}", "[".repeat(100_000), "]".repeat(100_000)),
        format!("customers: {}", "{a: ".repeat(100_000)),
        format!("customers:\n{}x", "- ".repeat(100_000)),
    ] {
        let problems = Config::parse(&hostile, &env).unwrap_err().problems();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("nested deeper than 64 levels"),
            "{problems:?}"
        );
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // Brackets in quotes and comments do not count; real configs pass.
    let quoted = format!("{GOOD}    tenant_types: [0] # {}\n", "[".repeat(100));
    assert!(Config::parse(&quoted, &env).is_ok());
    assert!(Config::parse(&format!("{GOOD}# \"{}\"\n", "{".repeat(100)), &env).is_ok());
}

#[test]
fn a_config_path_that_is_no_regular_file_is_refused() {
    // The bounded reads themselves are tested with them, in files.rs; here, that the
    // config file goes through them.
    let dir = tempfile::tempdir().unwrap();
    let e = Config::load(dir.path(), &FakeEnv::default()).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
}

const GOOD: &str = r#"
elements:
  token_url: https://identity.example.com/connect/token
  client_id: abc
  client_secret: s3cr3t-value
customers:
  - id: c1
    name: Contoso
"#;

fn problems(text: &str) -> Vec<String> {
    problems_with(text, &FakeEnv::default())
}

fn problems_with(text: &str, env: &FakeEnv) -> Vec<String> {
    match Config::parse(text, env) {
        Ok(_) => vec![],
        Err(e) => e.problems(),
    }
}

fn secret_of(c: &Config) -> (&str, SecretSource) {
    match &c.elements.credential {
        Credential::Secret { secret, source } => (secret.expose(), *source),
        Credential::Certificate { .. } => panic!("expected a secret"),
    }
}

#[test]
fn environments_pick_the_token_url_unless_one_is_given() {
    let base = "elements:\n  client_id: a\n  client_secret: b\n";
    let cust = "customers:\n  - id: c\n";
    let env = FakeEnv::default();
    let c = Config::parse(&format!("{base}{cust}"), &env).unwrap();
    assert_eq!(c.elements.environment, ElementsEnvironment::Commercial);
    assert_eq!(
        c.elements.token_url.as_str(),
        "https://identity.avepointonlineservices.com/connect/token"
    );
    for (name, url) in [
        (
            "gov",
            "https://identity-gov.avepointonlineservices.com/connect/token",
        ),
        (
            "aos2",
            "https://identity-aos2.avepointonlineservices.com/connect/token",
        ),
        ("fedramp", "https://identity.online15.net/connect/token"),
    ] {
        let c = Config::parse(&format!("{base}  environment: {name}\n{cust}"), &env).unwrap();
        assert_eq!(c.elements.token_url.as_str(), url);
        assert_eq!(c.elements.environment.name(), name);
    }
    let c = Config::parse(
        &format!("{base}  environment: gov\n  token_url: https://proxy.example.com/t\n{cust}"),
        &env,
    )
    .unwrap();
    assert_eq!(c.elements.token_url.as_str(), "https://proxy.example.com/t");
    assert_eq!(
        problems(&format!("{base}  environment: moon\n{cust}")),
        vec!["elements.environment: unknown environment \"moon\"; expected one of commercial, gov, aos2, fedramp"]
    );
}

#[test]
fn discovery_makes_customers_optional_and_widens_the_scope() {
    let text = "elements:\n  client_id: a\n  client_secret: b\ndiscovery:\n  include: ['^Contoso']\n  exclude: ['^Test', 'Demo$']\n  exclude_ids: [x1]\n  tenant_types: [microsoft_365, 2]\n  license_assigned_status: assigned\n";
    let c = Config::parse(text, &FakeEnv::default()).unwrap();
    assert!(c.customers.is_empty());
    assert_eq!(c.elements.scope, DEFAULT_DISCOVERY_SCOPE);
    let d = c.discovery.as_ref().unwrap();
    assert_eq!(d.interval, Duration::from_secs(3600));
    assert_eq!(
        d.tenant_types,
        vec![TenantType::Microsoft365, TenantType::Google]
    );
    assert_eq!(
        d.license_assigned_status,
        Some(LicenseAssignedStatus::Assigned)
    );
    assert!(d.keeps("c1", "Contoso Ltd"));
    assert!(!d.keeps("c1", "Fabrikam"), "not included");
    assert!(!d.keeps("c1", "Contoso Demo"), "excluded by name");
    assert!(!d.keeps("x1", "Contoso Ltd"), "excluded by id");
    let summary = c.summary();
    assert!(summary.contains("discovery: every 1h, POST https://graph.avepointonlineservices.com/partner/external/v3/general/customers/batch"), "{summary}");
    assert!(summary.contains("keeps organizations matching any of [\"^Contoso\"], except those matching any of [\"^Test\", \"Demo$\"], and drops ids x1"), "{summary}");
    // An empty filter list keeps every organization.
    let all = Config::parse(
        "elements:\n  client_id: a\n  client_secret: b\ndiscovery: {}\n",
        &FakeEnv::default(),
    )
    .unwrap();
    assert!(all.discovery.unwrap().keeps("any", "Anything"));
    // So does a bare `discovery:` whose keys are all commented out.
    let bare = Config::parse(
        "elements:\n  client_id: a\n  client_secret: b\ndiscovery:\n#  interval: 1h\n",
        &FakeEnv::default(),
    )
    .unwrap();
    assert_eq!(bare.elements.scope, DEFAULT_DISCOVERY_SCOPE);
    let d = bare.discovery.unwrap();
    assert_eq!(d.interval, Duration::from_secs(3600));
    assert_eq!(d.tenant_types.len(), 4);
    // Every problem is named.
    let p = problems("elements:\n  client_id: a\n  client_secret: b\ndiscovery:\n  interval: soon\n  include: ['(']\n  exclude: 5\n  tenant_types: [office]\n  colour: blue\n");
    assert_eq!(p.len(), 5, "{p:?}");
    assert!(p
        .iter()
        .any(|l| l.starts_with("discovery.colour: unknown key")));
    assert!(p
        .iter()
        .any(|l| l.starts_with("discovery.interval: \"soon\" is not a duration")));
    assert!(p
        .iter()
        .any(|l| l.starts_with("discovery.include[0]: \"(\" is not a valid regular expression")));
    assert!(p
        .iter()
        .any(|l| l.starts_with("discovery.exclude: expected a list of strings")));
    assert!(p
        .iter()
        .any(|l| l.starts_with("discovery.tenant_types[0]: unknown tenant type")));
    // Without discovery, customers stay required.
    assert_eq!(
        problems("elements:\n  client_id: a\n  client_secret: b\n"),
        vec!["customers: missing; list at least one customer to poll, or turn on discovery"]
    );
}

#[test]
fn a_reload_keeps_the_client_unless_an_api_setting_changed() {
    let base = "elements:\n  client_id: a\n  client_secret: b\n";
    let parse = |text: &str| Config::parse(text, &FakeEnv::default()).unwrap();
    let old = parse(&format!("{base}customers:\n  - id: c1\n"));
    let same = [
        format!("{base}customers:\n  - id: c2\n    name: Other\n"),
        format!("{base}poll:\n  stale_after: 1h\ncustomers:\n  - id: c1\n"),
        // Timing only: the client's waits follow the interval in place.
        format!("{base}poll:\n  interval: 1m\n  empty_interval: 2h\ncustomers:\n  - id: c1\n"),
    ];
    for text in &same {
        assert!(old.same_client_as(&parse(text)), "{text}");
    }
    let changed = [
        "elements:\n  client_id: a\n  client_secret: c\ncustomers:\n  - id: c1\n",
        "elements:\n  client_id: z\n  client_secret: b\ncustomers:\n  - id: c1\n",
        "elements:\n  client_id: a\n  client_secret: b\n  retries: 1\ncustomers:\n  - id: c1\n",
        "elements:\n  client_id: a\n  client_secret: b\n  max_requests_per_second: 3\ncustomers:\n  - id: c1\n",
        "elements:\n  client_id: a\n  client_secret: b\n  environment: gov\ncustomers:\n  - id: c1\n",
        // Discovery widens the default scope.
        "elements:\n  client_id: a\n  client_secret: b\ndiscovery: {}\n",
    ];
    for text in changed {
        assert!(!old.same_client_as(&parse(text)), "{text}");
    }
}

#[test]
fn certificate_or_secret_exactly_one() {
    let cust = "customers:\n  - id: c\n";
    let cert = "  client_certificate_file: /c.pem\n  client_private_key_file: /k.pem\n";
    let mut env = FakeEnv::default();
    env.files.insert("/c.pem".into(), "junk".into());
    env.files.insert("/k.pem".into(), "junk".into());
    let parse = |text: &str, env: &FakeEnv| match Config::parse(text, env) {
        Ok(_) => vec![],
        Err(e) => e.problems(),
    };
    let base = "elements:\n  client_id: a\n";
    assert_eq!(
        parse(&format!("{base}  client_secret: s\n{cert}{cust}"), &env),
        vec!["elements: both a client secret (client_secret) and a certificate (client_certificate_file, client_private_key_file) are configured; keep exactly one"]
    );
    env.vars.insert(SECRET_ENV.into(), "from-env".into());
    assert!(parse(&format!("{base}{cert}{cust}"), &env)[0]
        .contains("both a client secret (ELEMENTS_CLIENT_SECRET) and a certificate"));
    env.vars.clear();
    assert_eq!(
        parse(&format!("{base}  client_certificate_file: /c.pem\n{cust}"), &env),
        vec!["elements.client_private_key_file: missing; client_certificate_file needs the certificate's private key (PEM)"]
    );
    let p = parse(&format!("{base}{cert}{cust}"), &env);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("elements.client_certificate_file: \"/c.pem\": not a PEM certificate"),
        "{p:?}"
    );
    assert_eq!(
        parse(&format!("{base}{cust}"), &env),
        vec!["elements: no credentials; set client_secret_file, client_secret or the ELEMENTS_CLIENT_SECRET environment variable, or client_certificate_file and client_private_key_file"]
    );
}

fn with(extra_elements: &str, rest: &str) -> String {
    format!(
        "elements:\n  token_url: https://id.example.com/t\n  client_id: abc\n  client_secret: x\n{extra_elements}{rest}"
    )
}

#[test]
fn minimal_config_gets_defaults() {
    let c = Config::parse(GOOD, &FakeEnv::default()).unwrap();
    assert_eq!(
        c.elements.base_url.as_str(),
        "https://graph.avepointonlineservices.com/"
    );
    assert_eq!(c.elements.scope, DEFAULT_SCOPE);
    assert_eq!(c.elements.page_size, 100);
    assert_eq!(c.elements.max_concurrency.get(), 4);
    assert_eq!(
        c.elements.max_requests_per_second.map(|n| n.get()),
        Some(10)
    );
    assert_eq!(c.elements.retries, 3);
    assert_eq!(c.elements.timeout, Duration::from_secs(30));
    assert_eq!(c.poll.interval, Duration::from_secs(300));
    assert_eq!(c.poll.stale_after, Duration::from_secs(900));
    assert_eq!(c.customers[0].tenant_types, TenantType::ALL.to_vec());
    assert_eq!(c.customers[0].name, "Contoso");
    assert_eq!(secret_of(&c), ("s3cr3t-value", SecretSource::Inline));
    assert_eq!(c.target_count(), 4);
}

#[test]
fn summary_and_debug_never_show_the_secret() {
    let c = Config::parse(GOOD, &FakeEnv::default()).unwrap();
    assert!(!c.summary().contains("s3cr3t-value"));
    assert!(!format!("{c:?}").contains("s3cr3t-value"));
    assert!(c
        .summary()
        .contains("c1 (Contoso): microsoft_365, salesforce, google, dynamics_365"));
}

#[test]
fn durations() {
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert!(parse_duration("30").unwrap_err().contains("without a unit"));
    assert!(parse_duration("5 minutes please").is_err());
    // Prometheus's syntax exactly.
    assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
    assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
    assert_eq!(parse_duration("1y"), Ok(Duration::from_secs(365 * 86_400)));
    assert_eq!(
        parse_duration("1d2h3m4s5ms"),
        Ok(Duration::from_millis(93_784_005))
    );
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    for bad in [
        "5M",
        "5min",
        "5 minutes",
        "5minutes",
        "1m1h",
        "1h1h",
        "1.5h",
        " 5m",
        "5m ",
        "5mo",
        "99999999999999999999y",
    ] {
        let e = parse_duration(bad).unwrap_err();
        assert!(
            e.contains(bad.trim()) || e.contains("too long"),
            "{bad}: {e}"
        );
    }
    assert!(parse_duration("5M")
        .unwrap_err()
        .contains("y, w, d, h, m, s, ms"));
    assert!(parse_duration("-5m").is_err());
    assert!(parse_duration("").is_err());
    assert!(parse_duration("m5").is_err());
}

#[test]
fn unknown_keys_name_their_path() {
    let p = problems(&with(
        "  pagesize: 10\n",
        "customers:\n  - id: c1\n    colour: red\n",
    ));
    assert_eq!(p.len(), 2, "{p:?}");
    // The known keys are the keys the parser reads: the message lists every one of them.
    assert_eq!(
        p[0],
        "elements.pagesize: unknown key; did you mean \"page_size\"? expected one of base_url, environment, token_url, \
         client_id, client_secret, client_secret_file, client_certificate_file, \
         client_private_key_file, scope, timeout, page_size, max_concurrency, \
         max_requests_per_second, retries"
    );
    assert_eq!(
        p[1],
        "customers[0].colour: unknown key; expected one of id, name, tenant_types, \
         license_assigned_status, tenant_ids"
    );
    let p = problems(&format!(
        "{GOOD}poll:\n  intervall: 5m\ndiscovery:\n  filter: x\nextra: 1\n"
    ));
    assert_eq!(
        p,
        [
            "discovery.filter: unknown key; expected one of interval, include, exclude, \
             exclude_ids, tenant_types, license_assigned_status, tenant_ids",
            "poll.intervall: unknown key; did you mean \"interval\"? expected one of interval, \
             stale_after, empty_interval",
            "extra: unknown key; expected one of discovery, elements, poll, customers",
        ]
    );
}

#[test]
fn out_of_range_and_wrong_types() {
    let p = problems(&with(
        "  page_size: 101\n  max_concurrency: 0\n  retries: lots\n  timeout: 10\n",
        "poll:\n  interval: 500ms\ncustomers:\n  - id: c1\n",
    ));
    let joined = p.join("\n");
    assert!(
        joined.contains("elements.page_size: 101 is out of range; expected 1..100"),
        "{joined}"
    );
    assert!(
        joined.contains("elements.max_concurrency: 0 is out of range"),
        "{joined}"
    );
    assert!(
        joined.contains("elements.retries: expected an integer, got \"lots\""),
        "{joined}"
    );
    assert!(
        joined.contains("elements.timeout: 10 has no unit; a duration is a number and a unit"),
        "{joined}"
    );
    assert!(
        joined.contains("poll.interval: 500ms is too short; the minimum is 1s"),
        "{joined}"
    );
    assert_eq!(p.len(), 5, "{joined}");
}

#[test]
fn tenant_types_by_name_or_number() {
    let text = with(
        "",
        "customers:\n  - id: c1\n    tenant_types: [3, google, \"0\"]\n",
    );
    let c = Config::parse(&text, &FakeEnv::default()).unwrap();
    assert_eq!(
        c.customers[0].tenant_types,
        vec![
            TenantType::Dynamics365,
            TenantType::Google,
            TenantType::Microsoft365
        ]
    );
    let p = problems(&with(
        "",
        "customers:\n  - id: c1\n  - id: c2\n  - id: c3\n    tenant_types: [office, 4]\n",
    ));
    assert_eq!(
        p[0],
        "customers[2].tenant_types[0]: unknown tenant type \"office\"; expected one of microsoft_365, salesforce, google, dynamics_365 (or 0..3)"
    );
    assert!(p[1].starts_with("customers[2].tenant_types[1]: unknown tenant type 4"));
}

#[test]
fn license_assigned_status_values() {
    for (v, want) in [
        ("available", LicenseAssignedStatus::Available),
        ("0", LicenseAssignedStatus::Available),
        ("assigned", LicenseAssignedStatus::Assigned),
        ("1", LicenseAssignedStatus::Assigned),
    ] {
        let text = with(
            "",
            &format!("customers:\n  - id: c1\n    license_assigned_status: {v}\n"),
        );
        let c = Config::parse(&text, &FakeEnv::default()).unwrap();
        assert_eq!(c.customers[0].license_assigned_status, Some(want));
    }
    let p = problems(&with(
        "",
        "customers:\n  - id: c1\n    license_assigned_status: 2\n",
    ));
    assert_eq!(
        p,
        vec!["customers[0].license_assigned_status: unknown value 2; expected available (0) or assigned (1)"]
    );
}

#[test]
fn customer_ids_cannot_change_the_url_path() {
    let p = problems(&with(
        "",
        "customers:\n  - id: a/../b\n  - id: \"c d\"\n  - id: ..\n  - id: 'x\\..\\admin'\n",
    ));
    assert_eq!(
        p,
        vec![
            "customers[0].id: \"a/../b\" may not contain '/' (it is part of the request path)",
            "customers[1].id: \"c d\" may not contain ' ' (it is part of the request path)",
            "customers[2].id: \"..\" would change the request path",
            "customers[3].id: \"x\\\\..\\\\admin\" may not contain '\\\\' (it is part of the request path)",
        ]
    );
}

#[test]
fn duplicate_customer_ids() {
    let p = problems(&with(
        "",
        "customers:\n  - id: c1\n  - id: c2\n  - id: c1\n",
    ));
    assert_eq!(p, vec!["customers[2].id: duplicate customer id \"c1\""]);
}

#[test]
fn secret_sources() {
    let base = "elements:\n  token_url: https://id.example.com/t\n  client_id: abc\n";
    let cust = "customers:\n  - id: c1\n";
    // None at all.
    let p = problems(&format!("{base}{cust}"));
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("elements: no credentials"), "{p:?}");
    // Both.
    let p = problems(&format!(
        "{base}  client_secret: a\n  client_secret_file: /x\n{cust}"
    ));
    assert_eq!(
        p,
        vec!["elements: both client_secret and client_secret_file are set; keep exactly one"]
    );
    // File, read through the environment abstraction and trimmed.
    let mut env = FakeEnv::default();
    env.files
        .insert(PathBuf::from("/run/s"), "from-file\n".into());
    let c = Config::parse(&format!("{base}  client_secret_file: /run/s\n{cust}"), &env).unwrap();
    assert_eq!(secret_of(&c), ("from-file", SecretSource::File));
    // Missing file.
    let p = problems(&format!("{base}  client_secret_file: /nope\n{cust}"));
    assert!(
        p[0].starts_with("elements.client_secret_file: cannot read \"/nope\""),
        "{p:?}"
    );
    // Environment wins over both.
    env.vars.insert(SECRET_ENV.into(), "from-env".into());
    let c = Config::parse(&format!("{base}  client_secret_file: /run/s\n{cust}"), &env).unwrap();
    assert_eq!(secret_of(&c).0, "from-env");
    let c = Config::parse(&format!("{base}{cust}"), &env).unwrap();
    assert_eq!(secret_of(&c).1, SecretSource::Environment);
    // Trimmed like the file; blank is an error, not an empty secret.
    env.vars.insert(SECRET_ENV.into(), " from-env\n".into());
    let c = Config::parse(&format!("{base}{cust}"), &env).unwrap();
    assert_eq!(secret_of(&c).0, "from-env");
    env.vars.insert(SECRET_ENV.into(), " \n".into());
    let p = problems_with(&format!("{base}{cust}"), &env);
    assert_eq!(
        p,
        ["elements: the ELEMENTS_CLIENT_SECRET environment variable is set but empty"]
    );
}

#[test]
fn stale_after_must_cover_the_interval() {
    let p = problems(&with(
        "",
        "poll:\n  interval: 5m\n  stale_after: 1m\ncustomers:\n  - id: c1\n",
    ));
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("poll.stale_after: 1m is shorter than poll.interval (5m)"));
    let c = Config::parse(
        &with("", "poll:\n  interval: 10s\ncustomers:\n  - id: c1\n"),
        &FakeEnv::default(),
    )
    .unwrap();
    assert_eq!(c.poll.stale_after, Duration::from_secs(30));
}

#[test]
fn empty_interval_defaults_to_an_hour_and_is_at_least_the_interval() {
    let poll = |rest: &str| {
        let c = Config::parse(
            &with("", &format!("{rest}customers:\n  - id: c1\n")),
            &FakeEnv::default(),
        )
        .unwrap();
        (c.poll.interval.as_secs(), c.poll.empty_interval.as_secs())
    };
    assert_eq!(poll(""), (300, 3600));
    // An interval longer than the default keeps it for empty targets too.
    assert_eq!(poll("poll:\n  interval: 2h\n"), (7200, 7200));
    // Equal turns the empty cadence off.
    assert_eq!(
        poll("poll:\n  interval: 5m\n  empty_interval: 5m\n"),
        (300, 300)
    );
    let p = problems(&with(
        "",
        "poll:\n  interval: 5m\n  empty_interval: 1m\ncustomers:\n  - id: c1\n",
    ));
    assert_eq!(
        p,
        vec!["poll.empty_interval: 1m is shorter than poll.interval (5m); it must be at least the interval (equal turns the empty cadence off)"]
    );
}

#[test]
fn structural_errors_are_one_line_each() {
    assert_eq!(problems(""), vec!["config: the file is empty"]);
    assert_eq!(
        problems("- a\n- b\n"),
        vec!["config: expected a mapping, got a list"]
    );
    let p = problems("elements: [\n");
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("not valid YAML:"));
    assert!(!p[0].contains('\n'));
    let p = problems(&with("  base_url: ftp://x\n", "customers: {}\n"));
    assert!(
        p.iter()
            .any(|l| l.starts_with("elements.base_url: \"ftp://x\" is not an http(s) URL")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|l| l == "customers: expected a list of customers, got a mapping"),
        "{p:?}"
    );
    let p = problems("elements:\n  client_secret: x\ncustomers:\n  - name: no id\n");
    // token_url defaults to the environment's; client_id has no default.
    assert!(!p.iter().any(|l| l.contains("token_url")), "{p:?}");
    assert!(
        p.contains(&"elements.client_id: missing; the app registration's client id".to_owned()),
        "{p:?}"
    );
    assert!(
        p.contains(&"customers[0].id: missing; the Elements customer id".to_owned()),
        "{p:?}"
    );
}

#[test]
fn tenant_ids_filter_targets_and_are_checked() {
    let c = with_client(
        "customers:\n  - id: c1\n    tenant_ids: [T-1, t-2]\n  - id: c2\ndiscovery:\n  tenant_ids: [x]\n",
    );
    assert_eq!(
        c.customers[0].tenant_ids.as_deref(),
        Some(&["T-1".to_owned(), "t-2".to_owned()][..])
    );
    assert_eq!(c.customers[1].tenant_ids, None);
    assert_eq!(
        c.discovery.as_ref().unwrap().tenant_ids.as_deref(),
        Some(&["x".to_owned()][..])
    );
    let summary = c.summary();
    assert!(
        summary.contains(
            "c1: microsoft_365, salesforce, google, dynamics_365, tenant_ids: [T-1, t-2]"
        ),
        "{summary}"
    );
    for (yaml, want) in [
        (
            "tenant_ids: []",
            "customers[0].tenant_ids: an empty list would ask for no tenant",
        ),
        (
            "tenant_ids: [a, A]",
            "customers[0].tenant_ids[1]: \"A\" is listed twice",
        ),
        ("tenant_ids: ['']", "customers[0].tenant_ids[0]: is empty"),
        ("tenant_ids: [12]", "customers[0].tenant_ids[0]:"),
        (
            "tenant_ids: x",
            "customers[0].tenant_ids: expected a list of strings",
        ),
    ] {
        let p = problems(&format!("{GOOD}    {yaml}\n"));
        assert!(p.iter().any(|l| l.starts_with(want)), "{yaml}: {p:?}");
    }
}
