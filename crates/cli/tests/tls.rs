//! HTTPS with `--tls-cert`/`--tls-key`, checked with curl: health without a signature, a call
//! signed by curl's own SigV4 implementation (`--aws-sigv4`, a third implementation beside
//! Cairn's and botocore's), and a refusal of an unsigned call — all over TLS.

mod support;

use std::process::Command;
use support::TestServer;

fn curl(args: &[&str]) -> (bool, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_signed_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let (c, k) = (cert.clone(), key.clone());
    let server = TestServer::start(&dir.path().join("data"), move |config| {
        config.tls_cert = Some(c);
        config.tls_key = Some(k);
    })
    .await;
    let url = server.base.replace("http://", "https://");
    let creds = server.creds.clone();
    let cert_arg = cert.display().to_string();
    let result = tokio::task::spawn_blocking(move || {
        let (ok, text) = curl(&["--cacert", &cert_arg, &format!("{url}/healthz")]);
        assert!(ok && text.trim() == "ok", "{text}");
        let user = format!("{}:{}", creds.id, creds.secret);
        let (ok, text) = curl(&[
            "--cacert",
            &cert_arg,
            "--aws-sigv4",
            "aws:amz:us-east-1:cloudtrail",
            "--user",
            &user,
            &format!("{url}/v1/trails"),
        ]);
        assert!(ok && text.contains("\"Trails\""), "{text}");
        let (ok, text) = curl(&["--cacert", &cert_arg, &format!("{url}/v1/trails")]);
        assert!(
            ok && text.contains("MissingAuthenticationTokenException"),
            "{text}"
        );
        // Plain HTTP to the HTTPS port gets nothing.
        let (ok, _) = curl(&[&format!("{}/healthz", url.replace("https://", "http://"))]);
        assert!(!ok, "plain HTTP must not be served on the TLS port");
        // A bad key file is refused at start with a precise error.
    })
    .await;
    result.expect("curl session");
    server.stop().await;
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a key").expect("write");
    let config = cairn_server::config::RawConfig {
        data_dir: Some(dir.path().join("data2")),
        listen: Some("127.0.0.1:0".into()),
        tls_cert: Some(cert),
        tls_key: Some(bad),
        ..Default::default()
    }
    .resolve()
    .expect("config");
    let error =
        match cairn_server::start(config, std::sync::Arc::new(cairn_model::SystemClock)).await {
            Ok(_) => panic!("a server started with a bad key"),
            Err(e) => e.to_string(),
        };
    assert!(error.contains("no private key"), "{error}");
}
