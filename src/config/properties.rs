//! Property tests: the config loader takes any text, and random documents built from the keys
//! and values it knows, without panicking and without a secret in its errors.

use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;

use super::{Config, Environment};

/// No environment variables; `/tls/app.crt`, `/tls/app.key` (PKCS#8) and `/tls/app-rsa.key`
/// (PKCS#1) are a real certificate and its key, any other file reads as `file-secret`.
struct FakeFiles;
impl Environment for FakeFiles {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        static IDENTITY: OnceLock<(String, String, String)> = OnceLock::new();
        let (cert, pkcs8, pkcs1) =
            IDENTITY.get_or_init(|| crate::domain::certificate::test_identity("app"));
        Ok(match path.to_str() {
            Some("/tls/app.crt") => cert.clone(),
            Some("/tls/app.key") => pkcs8.clone(),
            Some("/tls/app-rsa.key") => pkcs1.clone(),
            _ => "file-secret".into(),
        })
    }
}

/// A value for a config key: mostly the first of `choices` (a valid one), sometimes another
/// of them (usually out of range), junk of any YAML type, or nothing.
fn field(choices: &'static [&'static str]) -> BoxedStrategy<Option<serde_yaml::Value>> {
    use serde_yaml::Value;
    let parse =
        |s: &str| serde_yaml::from_str::<Value>(s).unwrap_or_else(|_| Value::String(s.to_owned()));
    let valid = Just(parse(choices[0]));
    let other = prop::sample::select(choices).prop_map(parse);
    let junk = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,8}".prop_map(Value::String),
        Just(Value::Sequence(vec![
            Value::from(1),
            Value::String("x".into())
        ])),
        Just(Value::Mapping(Default::default())),
    ];
    prop_oneof![
        80 => valid.prop_map(Some),
        3 => other.prop_map(Some),
        2 => junk.prop_map(Some),
        2 => Just(None),
    ]
    // Boxed: a document's strategy nests dozens of these, too big for a test thread's stack.
    .boxed()
}

fn mapping(fields: Vec<(&'static str, Option<serde_yaml::Value>)>) -> serde_yaml::Value {
    serde_yaml::Value::Mapping(
        fields
            .into_iter()
            .filter_map(|(k, v)| Some((serde_yaml::Value::String(k.into()), v?)))
            .collect(),
    )
}

/// Config documents near the valid ones: every key present or not, good or junk.
fn config_doc() -> impl Strategy<Value = String> {
    let elements = (
        field(&["https://graph.example.com", "ftp://x", "not a url"]),
        field(&["https://id.example.com/connect/token", ""]),
        field(&["00000000-0000-0000-0000-000000000000", ""]),
        field(&["s3cret", ""]),
        prop::option::weighted(0.03, Just(serde_yaml::Value::from("/run/secret"))),
        field(&["elements.license.read.all", ""]),
        field(&["30s", "0s", "1x", "-5s"]),
        (
            field(&["100", "0", "101", "50"]),
            field(&["4", "0", "100000"]),
            field(&["10", "0", "-1"]),
            field(&["3", "1000"]),
        ),
        (
            prop::option::weighted(
                0.3,
                field(&["commercial", "gov", "aos2", "fedramp", "moon"]),
            ),
            prop::option::weighted(
                0.1,
                field(&["/tls/app.crt", "/tls/app.key", "/tls/other.crt"]),
            ),
            prop::option::weighted(
                0.1,
                field(&["/tls/app.key", "/tls/app-rsa.key", "/tls/app.crt", "/tls/x"]),
            ),
        ),
    )
        .prop_map(
            |(
                base,
                token,
                id,
                secret,
                secret_file,
                scope,
                timeout,
                (page, conc, rps, retries),
                (environment, certificate, key),
            )| {
                mapping(vec![
                    ("environment", environment.flatten()),
                    ("client_certificate_file", certificate.flatten()),
                    ("client_private_key_file", key.flatten()),
                    ("base_url", base),
                    ("token_url", token),
                    ("client_id", id),
                    ("client_secret", secret),
                    ("client_secret_file", secret_file),
                    ("scope", scope),
                    ("timeout", timeout),
                    ("page_size", page),
                    ("max_concurrency", conc),
                    ("max_requests_per_second", rps),
                    ("retries", retries),
                ])
            },
        );
    let poll = (
        field(&["5m", "1s", "500ms", "1h30m", "0s"]),
        field(&["15m", "1m", "1s"]),
    )
        .prop_map(|(interval, stale)| {
            mapping(vec![("interval", interval), ("stale_after", stale)])
        });
    let customer = (
        field(&[
            "f1620000-b9d4-0000-a165-97db0000fc15",
            "c1",
            "",
            "has space",
        ]),
        field(&["Contoso", "\"quoted\"", ""]),
        field(&[
            "[microsoft_365, google]",
            "[0, 3]",
            "[office]",
            "[]",
            "[0, 0]",
            "[4]",
        ]),
        field(&["available", "assigned", "0", "1", "2", "maybe"]),
    )
        .prop_map(|(id, name, types, status)| {
            mapping(vec![
                ("id", id),
                ("name", name),
                ("tenant_types", types),
                ("license_assigned_status", status),
            ])
        });
    let customers = prop::collection::vec(customer, 0..4).prop_map(serde_yaml::Value::Sequence);
    let discovery = (
        field(&["1h", "0s", "soon"]),
        field(&["[\"^C\"]", "[\"(\"]", "[]", "\"^C\""]),
        field(&["[\"Test$\"]", "[5]"]),
        field(&["[c1]", "[\"\"]"]),
        field(&["[microsoft_365, 3]", "[office]", "[]"]),
        field(&["available", "maybe"]),
    )
        .prop_map(|(interval, include, exclude, ids, types, status)| {
            mapping(vec![
                ("interval", interval),
                ("include", include),
                ("exclude", exclude),
                ("exclude_ids", ids),
                ("tenant_types", types),
                ("license_assigned_status", status),
            ])
        });
    (
        prop::option::weighted(0.9, elements),
        prop::option::weighted(0.8, poll),
        prop::option::weighted(0.9, customers),
        prop::option::weighted(0.3, discovery),
        prop::option::weighted(0.03, Just(serde_yaml::Value::from(1))),
    )
        .prop_map(|(elements, poll, customers, discovery, bogus)| {
            let doc = mapping(vec![
                ("elements", elements),
                ("poll", poll),
                ("customers", customers),
                ("discovery", discovery),
                ("bogus", bogus),
            ]);
            serde_yaml::to_string(&doc).unwrap_or_default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_config_loader_survives_any_text(text in ".{0,300}") {
        let _ = Config::parse(&text, &FakeFiles);
    }

    #[test]
    fn the_config_loader_survives_documents_near_valid_ones(doc in config_doc()) {
        match Config::parse(&doc, &FakeFiles) {
            Ok(config) => {
                prop_assert!(!config.customers.is_empty() || config.discovery.is_some());
                prop_assert!(config.poll.stale_after >= config.poll.interval);
                prop_assert!((1..=100).contains(&config.elements.page_size));
            }
            // Each problem is reported with the key it is about.
            Err(e) => {
                let text = e.to_string();
                prop_assert!(!text.trim().is_empty());
                // Every key the generator writes is known, except the one it makes up: a key
                // the parser reads only on some paths would show up here.
                for problem in e.problems() {
                    prop_assert!(
                        !problem.contains("unknown key") || problem.starts_with("bogus:"),
                        "{}",
                        problem
                    );
                }
                prop_assert!(!text.contains("s3cret"), "a secret in an error: {}", text);
                // Key material, not the PEM label that a message may name.
                prop_assert!(!text.contains("-----BEGIN"), "a key in an error: {}", text);
                prop_assert!(!text.contains("file-secret"), "a secret file in an error: {}", text);
            }
        }
    }
}
