//! Secure serving through the real binary: the exporter-toolkit web config (TLS, client
//! certificates, basic auth, headers), certificate rotation on reload, and connection
//! hardening. Certificates are made at test time with rcgen.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

use crate::common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

/// A CA that signs server and client certificates.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ca {
            cert: params.self_signed(&key).unwrap(),
            key,
        }
    }
    fn pem(&self) -> String {
        self.cert.pem()
    }
    /// (certificate PEM, key PEM) for `sans`, for a server or a client.
    fn issue(&self, sans: &[&str], client: bool) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// An API with one customer, and a config for it in `dir`.
async fn setup() -> (tempfile::TempDir, FakeApi, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let api =
        FakeApi::with_tokens(|_| Reply::json(envelope(&[record("t", "T", 5, 1)], 1, 100, 1))).await;
    let config = write_config(&dir, &api, &one_target("1h"));
    (dir, api, config)
}

/// `--config.file config --web.config.file web`, then `extra`.
fn web_args<'a>(config: &'a Path, web: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--config.file",
        config.to_str().unwrap(),
        "--web.config.file",
        web.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args
}

/// Starts the exporter on `config` with `--web.config.file web`.
fn start_web(config: &Path, web: &Path) -> Exporter {
    Exporter::start(&web_args(config, web, &[]))
}

/// Writes `server.crt` and `server.key` for `sans`, issued by `ca`, into `dir`.
fn server_certificate(dir: &Path, ca: &Ca, sans: &[&str]) {
    let (cert, key) = ca.issue(sans, false);
    write(dir, "server.crt", &cert);
    write(dir, "server.key", &key);
}

/// A "Test CA", a server certificate it issued for 127.0.0.1 and localhost, and `web.yml`
/// serving it, followed by `more` (further web config lines), all in `dir`.
fn tls_web_config(dir: &Path, more: &str) -> (Ca, PathBuf) {
    let ca = Ca::new("Test CA");
    server_certificate(dir, &ca, &["127.0.0.1", "localhost"]);
    let web = write(
        dir,
        "web.yml",
        &format!(
            "\
tls_server_config:
  cert_file: server.crt
  key_file: server.key
{more}"
        ),
    );
    (ca, web)
}

fn https_client(ca: &str, identity: Option<(&str, &str)>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(5))
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// The status of `GET /-/healthy` over TLS trusting `ca`, presenting `identity`; `None` when
/// the handshake (or the connection) fails.
async fn healthy(exporter: &Exporter, ca: &str, identity: Option<(&str, &str)>) -> Option<u16> {
    https_client(ca, identity)
        .get(https(exporter, "/-/healthy"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .ok()
}

fn https(exporter: &Exporter, path: &str) -> String {
    format!("https://{}{path}", exporter.addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_scrape_over_http1_and_http2_and_plain_http_is_refused() {
    let (dir, _api, config) = setup().await;
    // Relative file names are resolved against the web config's directory.
    let (ca, web) = tls_web_config(
        dir.path(),
        "  min_version: TLS12\nhttp_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\n    X-Content-Type-Options: nosniff\n",
    );
    let exporter = start_web(&config, &web);
    let client = https_client(&ca.pem(), None);
    let scrape = || async {
        let resp = client
            .get(https(&exporter, "/metrics"))
            .send()
            .await
            .unwrap();
        let version = resp.version();
        let hsts = resp.headers().get("strict-transport-security").cloned();
        (version, hsts, resp.text().await.unwrap())
    };
    let start = Instant::now();
    loop {
        let (_, _, text) = scrape().await;
        if text.contains("available_user_seats{") {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "no seats over TLS: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ALPN: HTTP/2 by default...
    let (version, hsts, _) = scrape().await;
    assert_eq!(version, reqwest::Version::HTTP_2);
    assert_eq!(hsts.unwrap(), "max-age=31536000");
    // ...and HTTP/1.1 for clients that only speak it.
    let h1 = reqwest::Client::builder()
        .use_rustls_tls()
        .http1_only()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let resp = h1.get(https(&exporter, "/-/healthy")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    // Plain HTTP to the TLS port gets no HTTP answer.
    assert!(reqwest::get(exporter.url("/metrics")).await.is_err());
    let mut raw = TcpStream::connect(exporter.addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = raw.read_to_end(&mut buf);
    assert!(
        !String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"),
        "{buf:?}"
    );
    // A client that does not trust the CA fails the handshake.
    let stranger = Ca::new("Other CA");
    assert!(https_client(&stranger.pem(), None)
        .get(https(&exporter, "/metrics"))
        .send()
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_and_without_a_client_certificate() {
    let (dir, _api, config) = setup().await;
    let server_ca = Ca::new("Server CA");
    let client_ca = Ca::new("Client CA");
    let (cert, key) = server_ca.issue(&["127.0.0.1"], false);
    let (client_cert, client_key) = client_ca.issue(&["prometheus.example.com"], true);
    let (other_cert, other_key) = client_ca.issue(&["someone-else.example.com"], true);
    let (rogue_cert, rogue_key) = Ca::new("Rogue CA").issue(&["prometheus.example.com"], true);
    write(dir.path(), "server.crt", &cert);
    write(dir.path(), "server.key", &key);
    write(dir.path(), "clients.pem", &client_ca.pem());
    for (auth_type, sans) in [
        ("RequireAndVerifyClientCert", ""),
        (
            "RequireAndVerifyClientCert",
            "  client_allowed_sans: [prometheus.example.com]\n",
        ),
        ("VerifyClientCertIfGiven", ""),
        ("RequireAnyClientCert", ""),
        ("RequestClientCert", ""),
    ] {
        let web = write(
            dir.path(),
            "web.yml",
            &format!(
                "\
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: {auth_type}
  client_ca_file: clients.pem
{sans}"
            ),
        );
        let exporter = start_web(&config, &web);
        let server_pem = server_ca.pem();
        let with = healthy(&exporter, &server_pem, Some((&client_cert, &client_key))).await;
        let without = healthy(&exporter, &server_pem, None).await;
        let rogue = healthy(&exporter, &server_pem, Some((&rogue_cert, &rogue_key))).await;
        let other = healthy(&exporter, &server_pem, Some((&other_cert, &other_key))).await;
        let case = format!("{auth_type} {sans}");
        assert_eq!(with, Some(200), "{case}: a trusted client certificate");
        match (auth_type, sans.is_empty()) {
            ("RequireAndVerifyClientCert", true) => {
                assert_eq!(without, None, "{case}: no certificate");
                assert_eq!(rogue, None, "{case}: untrusted certificate");
                assert_eq!(other, Some(200), "{case}");
            }
            ("RequireAndVerifyClientCert", false) => {
                assert_eq!(without, None, "{case}");
                assert_eq!(other, None, "{case}: certificate without an allowed SAN");
            }
            ("VerifyClientCertIfGiven", _) => {
                assert_eq!(without, Some(200), "{case}: no certificate is fine");
                assert_eq!(rogue, None, "{case}: a given certificate must verify");
            }
            ("RequireAnyClientCert", _) => {
                assert_eq!(without, None, "{case}: a certificate is required");
                assert_eq!(rogue, Some(200), "{case}: any certificate will do");
            }
            _ => {
                assert_eq!(without, Some(200), "{case}: asked for, not required");
                assert_eq!(rogue, Some(200), "{case}: not verified");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_on_every_endpoint_but_healthy() {
    let (dir, _api, config) = setup().await;
    let hash = bcrypt::hash("s3cret-pw", 4).unwrap();
    let web = write(
        dir.path(),
        "web.yml",
        &format!(
            "\
basic_auth_users:
  prometheus: {hash}
http_server_config:
  headers:
    X-Frame-Options: deny
"
        ),
    );
    let exporter = start_web(&config, &web);
    let client = reqwest::Client::new();
    let get = |path: &str, user: Option<(&str, &str)>| {
        let mut req = client.get(exporter.url(path));
        if let Some((u, p)) = user {
            req = req.basic_auth(u, Some(p));
        }
        async move { req.send().await.unwrap() }
    };
    for path in ["/metrics", "/", "/-/ready", "/nope"] {
        for user in [
            None,
            Some(("prometheus", "wrong")),
            Some(("intruder", "s3cret-pw")),
        ] {
            let resp = get(path, user).await;
            assert_eq!(resp.status().as_u16(), 401, "{path} {user:?}");
            assert_eq!(
                resp.headers()["www-authenticate"],
                "Basic realm=\"avepoint-elements-exporter\""
            );
            assert_eq!(resp.headers()["x-frame-options"], "deny");
        }
    }
    let resp = client.post(exporter.url("/-/reload")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401, "reload needs auth too");
    assert_eq!(get("/-/healthy", None).await.status().as_u16(), 200);
    // The right password, many times: bcrypt runs once, later scrapes hit the cache.
    for _ in 0..20 {
        let resp = get("/metrics", Some(("prometheus", "s3cret-pw"))).await;
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.headers()["x-frame-options"], "deny");
    }
    assert!(!exporter.log_text().contains("s3cret-pw"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_web_config_is_a_start_up_error_naming_file_and_key() {
    let (dir, _api, config) = setup().await;
    let cases = [
        (
            "\
tls_server_config:
  cert_file: missing.crt
  key_file: missing.key
",
            "tls_server_config.cert_file: cannot read",
        ),
        (
            "\
basic_auth_users:
  alice: not-a-hash
",
            "basic_auth_users.alice: not a bcrypt hash",
        ),
        (
            "\
tls_server_config:
  cert_file: a
  key_file: b
  colour: blue
",
            "unknown field `colour`",
        ),
        (
            "\
http_server_config:
  headers:
    X-Powered-By: me
",
            "http_server_config.headers.X-Powered-By: header not allowed",
        ),
        (
            "\
rate_limit:
  interval: 1s
  burst: 2
",
            "rate_limit: not supported",
        ),
    ];
    for (text, expected) in cases {
        let web = write(dir.path(), "web.yml", text);
        for extra in [&[][..], &["--check-config"][..]] {
            let mut args = web_args(&config, &web, &["--web.listen-address", "127.0.0.1:0"]);
            args.extend_from_slice(extra);
            let err = fails_with_1(&args, dir.path());
            // One error line for the user (config warnings may come before it): the log
            // line when running, plain with --check-config.
            // --check-config gives each problem a line of its own, each naming the file.
            let lines: Vec<&str> = err.lines().filter(|l| !l.contains("level=warn")).collect();
            if extra.is_empty() {
                assert_eq!(lines.len(), 1, "{err}");
            } else {
                assert!(
                    lines.iter().all(|l| l.starts_with(web.to_str().unwrap())),
                    "{err}"
                );
            }
            let line = lines
                .iter()
                .find(|l| l.contains(expected))
                .copied()
                .unwrap_or(lines[0]);
            assert!(
                line.contains("level=error") || line.starts_with(web.to_str().unwrap()),
                "{line}"
            );
            assert!(
                line.contains(web.to_str().unwrap()),
                "names the file: {line}"
            );
            assert!(line.contains(expected), "{expected:?} in {line}");
        }
    }
    let missing = Path::new("/nonexistent/web.yml");
    let err = fails_with_1(&web_args(&config, missing, &[]), dir.path());
    assert!(
        err.contains("cannot read web config /nonexistent/web.yml"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_certificates_apply_on_reload_and_a_broken_web_config_is_refused() {
    let (dir, _api, config) = setup().await;
    let old_ca = Ca::new("Old CA");
    let new_ca = Ca::new("New CA");
    server_certificate(dir.path(), &old_ca, &["127.0.0.1"]);
    let web = write(
        dir.path(),
        "web.yml",
        "\
tls_server_config:
  cert_file: server.crt
  key_file: server.key
",
    );
    let exporter = start_web(&config, &web);
    assert_eq!(healthy(&exporter, &old_ca.pem(), None).await, Some(200));
    assert_eq!(healthy(&exporter, &new_ca.pem(), None).await, None);
    // Rotate: new files, SIGHUP.
    server_certificate(dir.path(), &new_ca, &["127.0.0.1"]);
    std::process::Command::new("kill")
        .args(["-HUP", &exporter.pid().to_string()])
        .status()
        .unwrap();
    let start = Instant::now();
    while healthy(&exporter, &new_ca.pem(), None).await != Some(200) {
        assert!(
            start.elapsed() < DEADLINE,
            "rotated certificate never served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(healthy(&exporter, &old_ca.pem(), None).await, None);
    // A broken key: the reload is refused with the reason and the current certificate stays.
    write(dir.path(), "server.key", "not a key");
    let client = https_client(&new_ca.pem(), None);
    let (status, body) = answer(client.post(https(&exporter, "/-/reload"))).await;
    assert_eq!(status, 500);
    assert!(body.contains("tls_server_config.key_file"), "{body}");
    assert_eq!(healthy(&exporter, &new_ca.pem(), None).await, Some(200));
    let (_, text) = {
        let resp = client
            .get(https(&exporter, "/metrics"))
            .send()
            .await
            .unwrap();
        (resp.status(), resp.text().await.unwrap())
    };
    assert!(text.contains("avepoint_exporter_config_last_reload_successful 0"));
}

/// Reads until the peer closes; true if it closed within `within` without sending anything.
fn closed_silently(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    matches!(stream.read(&mut buf), Ok(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_oversized_headers_and_the_connection_bound() {
    let (_dir, _api, config) = setup().await;
    let exporter = Exporter::start(&[
        "--config.file",
        config.to_str().unwrap(),
        "--web.read-header-timeout",
        "2s",
        "--web.max-connections",
        "400",
    ]);
    exporter.first_poll().await;
    // 300 connections that never send a byte do not delay a real scrape.
    let mut idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(exporter.addr).unwrap())
        .collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    for _ in 0..5 {
        let resp = client.get(exporter.url("/metrics")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    // The read-header timeout closes them.
    assert!(
        closed_silently(&mut idle[0], Duration::from_secs(10)),
        "idle connection not closed"
    );
    assert!(closed_silently(&mut idle[299], Duration::from_secs(10)));
    drop(idle);
    // An oversized request head: 431 (or a closed connection), never a crash.
    let mut big = TcpStream::connect(exporter.addr).unwrap();
    let header = "x".repeat(64 * 1024);
    let _ = big.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {header}\r\n\r\n").as_bytes(),
    );
    big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = Vec::new();
    let _ = big.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    assert_eq!(exporter.get("/-/healthy").await.0, 200);

    // At --web.max-connections, the connection idle longest is closed to make room.
    let small = Exporter::start(&[
        "--config.file",
        config.to_str().unwrap(),
        "--web.max-connections",
        "3",
    ]);
    // Three keep-alive connections, each idle after one request (so surely accepted).
    let mut held: Vec<TcpStream> = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(small.addr).unwrap();
        s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
    let fresh = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let resp = fresh.get(small.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        closed_silently(&mut held[0], Duration::from_secs(5)),
        "the connection idle longest was not closed"
    );
    // The others stay open and usable.
    held[2]
        .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 256];
    let n = held[2].read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_web_config_and_scrape_config_work_together() {
    let (dir, _api, config) = setup().await;
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/web-config.yml"
    ))
    .unwrap();
    let web = write(dir.path(), "web-config.yml", &example);
    let server_ca = Ca::new("Server CA");
    let prometheus_ca = Ca::new("Prometheus CA");
    let (cert, key) = server_ca.issue(&["127.0.0.1"], false);
    write(dir.path(), "exporter.crt", &cert);
    write(dir.path(), "exporter.key", &key);
    write(dir.path(), "prometheus-ca.crt", &prometheus_ca.pem());
    let (client_cert, client_key) = prometheus_ca.issue(&["prometheus"], true);
    let exporter = start_web(&config, &web);
    // What the scrape_config of docs/security.md does: https, the CA, a client certificate, basic auth.
    let client = https_client(&server_ca.pem(), Some((&client_cert, &client_key)));
    let resp = client
        .get(https(&exporter, "/metrics"))
        .basic_auth("prometheus", Some("change-me"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["x-frame-options"], "deny");
    let (status, _) = answer(client.get(https(&exporter, "/metrics"))).await;
    assert_eq!(status, 401);
}

/// Completes a TLS handshake with the exporter offering `alpn`, then sends nothing.
async fn tls_handshake(
    exporter: &Exporter,
    ca: &Ca,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(exporter.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(alpn));
    stream
}

/// True if the server closes `stream` within `within` (whatever it sends before closing).
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut sink = Vec::new();
    matches!(
        tokio::time::timeout(within, stream.read_to_end(&mut sink)).await,
        Ok(Ok(_)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tls_connections_are_closed_and_free_their_slots() {
    let (dir, _api, config) = setup().await;
    let (ca, web) = tls_web_config(dir.path(), "");
    let exporter = Exporter::start(&web_args(
        &config,
        &web,
        &[
            "--web.read-header-timeout",
            "1s",
            "--web.max-connections",
            "4",
        ],
    ));
    assert_eq!(healthy(&exporter, &ca.pem(), None).await, Some(200));

    // Every slot taken by a client that finished the handshake and went quiet: HTTP/2 and
    // HTTP/1.1 by ALPN, and one that never started the handshake.
    let mut h2a = tls_handshake(&exporter, &ca, b"h2").await;
    let mut h2b = tls_handshake(&exporter, &ca, b"h2").await;
    let mut h1 = tls_handshake(&exporter, &ca, b"http/1.1").await;
    let mut raw = tokio::net::TcpStream::connect(exporter.addr).await.unwrap();
    // All four are closed by the server within the header timeout (plus slack)...
    for (name, closed) in [
        ("h2", closed_within(&mut h2a, Duration::from_secs(5)).await),
        ("h2", closed_within(&mut h2b, Duration::from_secs(5)).await),
        (
            "http/1.1",
            closed_within(&mut h1, Duration::from_secs(5)).await,
        ),
        (
            "no handshake",
            closed_within(&mut raw, Duration::from_secs(5)).await,
        ),
    ] {
        assert!(closed, "idle {name} connection kept open");
    }
    // ...so their slots serve real scrapes again.
    let start = Instant::now();
    loop {
        if let Some(code) = healthy(&exporter, &ca.pem(), None).await {
            assert_eq!(code, 200);
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "slots of idle TLS connections never freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // An oversized request head over TLS: 431 (or a closed connection), never a crash.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut big = tls_handshake(&exporter, &ca, b"http/1.1").await;
    let header = "x".repeat(64 * 1024);
    let _ = big
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {header}\r\n\r\n").as_bytes(),
        )
        .await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), big.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    assert_eq!(healthy(&exporter, &ca.pem(), None).await, Some(200));
}

/// Runs the binary with `args` and returns (exit code, stderr), failing the test when it has
/// not ended within `within` (it is killed then).
fn ends_within(args: &[&str], dir: &Path, within: Duration) -> (i32, String) {
    let mut child = std::process::Command::new(binary())
        .args(args)
        .current_dir(dir)
        .env_remove("ELEMENTS_CLIENT_SECRET")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} did not end within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code().unwrap_or(-1), err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_bcrypt_costs_and_oversized_or_special_web_files_are_refused_at_once() {
    let (dir, _api, config) = setup().await;
    // A valid cost-31 hash (days per check): refused, not computed.
    let hash = bcrypt::hash("pw", 4).unwrap().replacen("$04$", "$31$", 1);
    let web = write(
        dir.path(),
        "web.yml",
        &format!("basic_auth_users:\n  prom: '{hash}'\n"),
    );
    let check = web_args(&config, &web, &["--check-config"]);
    let (code, err) = ends_within(&check, dir.path(), Duration::from_secs(10));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("basic_auth_users.prom: bcrypt cost 31 is too high"),
        "{err}"
    );
    // A 300 MB (sparse) certificate file: refused by size, never read whole.
    let big = std::fs::File::create(dir.path().join("big.crt")).unwrap();
    big.set_len(300 * 1024 * 1024).unwrap();
    let (ca, _) = tls_web_config(dir.path(), "");
    drop(ca);
    refused_tls(
        &config,
        dir.path(),
        "  cert_file: big.crt\n  key_file: server.key\n",
        &["tls_server_config.cert_file", "larger than"],
    );
    // A FIFO as the key: refused at once, not waited on.
    let fifo = dir.path().join("key.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    refused_tls(
        &config,
        dir.path(),
        "  cert_file: server.crt\n  key_file: key.fifo\n",
        &["tls_server_config.key_file", "not a regular file"],
    );
}

/// `--check-config` with a web config of `tls` (the `tls_server_config` keys) ends within
/// 10 s with exit 1 and every one of `expected` on stderr.
fn refused_tls(config: &Path, dir: &Path, tls: &str, expected: &[&str]) {
    let web = write(dir, "web.yml", &format!("tls_server_config:\n{tls}"));
    let (code, err) = ends_within(
        &web_args(config, &web, &["--check-config"]),
        dir,
        Duration::from_secs(10),
    );
    assert_eq!(code, 1, "{err}");
    for e in expected {
        assert!(err.contains(e), "{e}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_config_turned_fifo_fails_the_reload_at_once_and_sigterm_still_ends_the_process() {
    let (dir, _api, config) = setup().await;
    let web = write(dir.path(), "web.yml", "");
    let mut exporter = start_web(&config, &web);
    exporter.first_cycle().await;
    std::fs::remove_file(&web).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(&web)
        .status()
        .unwrap()
        .success());
    let (code, body) = tokio::time::timeout(Duration::from_secs(10), exporter.post("/-/reload"))
        .await
        .expect("the reload answers");
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("not a regular file"), "{body}");
    assert_eq!(exporter.get("/-/healthy").await.0, 200);
    let status = exporter.signal_and_wait("TERM", Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
}

/// Threads of process `pid` now.
fn threads(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_runs_a_bounded_number_of_password_checks() {
    let (dir, _api, config) = setup().await;
    // Cost 10 (Prometheus' suggestion): long enough unoptimised that the flood overlaps.
    let hash = "$2b$10$4KVF6rbshPmMy//0kKpfE.VVtrgE3CiQR5OQuYphNzrpL5Y5BW9E.";
    let web = write(
        dir.path(),
        "web.yml",
        &format!("basic_auth_users:\n  prom: '{hash}'\n"),
    );
    let exporter = start_web(&config, &web);
    let scrape = |password: &'static str| {
        // A client (a connection) of its own, as an attacker's or a scraper's.
        let request = reqwest::Client::new()
            .get(exporter.url("/metrics"))
            .basic_auth("prom", Some(password));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(scrape("right-pw").await, 200, "verified once, then cached");
    let pid = exporter.pid();
    let before = threads(pid);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(threads(pid));
                std::thread::sleep(Duration::from_millis(2));
            }
            most
        })
    };
    // 32 attackers, 4 wrong passwords each, all at once; a verified scraper among them.
    let attackers: Vec<_> = (0..32)
        .map(|_| {
            let client = reqwest::Client::new();
            let url = exporter.url("/metrics");
            tokio::spawn(async move {
                let mut codes = Vec::new();
                for _ in 0..4 {
                    let resp = client.get(&url).basic_auth("prom", Some("wrong")).send();
                    codes.push(resp.await.unwrap().status().as_u16());
                }
                codes
            })
        })
        .collect();
    assert_eq!(
        scrape("right-pw").await,
        200,
        "a verified scraper gets through"
    );
    for attacker in attackers {
        assert_eq!(attacker.await.unwrap(), [401; 4]);
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let most = sampler.join().unwrap();
    // At most min(cores, 4) checks at once, each on one blocking thread; unbounded, every
    // attacker would hold one.
    assert!(
        most <= before + 4,
        "{most} threads during the flood, {before} before"
    );
}
