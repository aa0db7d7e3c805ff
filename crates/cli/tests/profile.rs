//! The client configuration file (`~/.cairn/config`): endpoint and credentials per profile,
//! chosen by `CAIRN_PROFILE`, with Cairn's keys kept apart from the AWS_* variables.

mod support;

use support::TestServer;

fn cairn(config: &std::path::Path, profile: Option<&str>, args: &[&str]) -> (bool, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"));
    command
        .args(args)
        .env("CAIRN_CONFIG_FILE", config)
        // A key in the environment for some other AWS service: not Cairn's.
        .env("AWS_ACCESS_KEY_ID", "AKIASOMEOTHERSERVICE")
        .env("AWS_SECRET_ACCESS_KEY", "not-a-cairn-secret")
        .env_remove("CAIRN_ENDPOINT")
        .env_remove("CAIRN_ACCESS_KEY_ID")
        .env_remove("CAIRN_SECRET_ACCESS_KEY")
        .env_remove("CAIRN_PROFILE")
        .env_remove("AWS_PROFILE");
    if let Some(profile) = profile {
        command.env("CAIRN_PROFILE", profile);
    }
    let output = command.output().expect("run cairn");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_give_the_endpoint_and_cairns_own_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(&dir.path().join("data"), |_| {}).await;
    let (reader, _) = support::user_with_key(&server, "reader", "CairnReader").await;
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "# Cairn client profiles\n[default]\nendpoint = {base}\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n\n[profile reader]\nendpoint = {base}\naws_access_key_id = {rid}\naws_secret_access_key = {rsecret}\n",
            base = server.base,
            id = server.creds.id,
            secret = server.creds.secret,
            rid = reader.id,
            rsecret = reader.secret,
        ),
    )
    .expect("config");

    // The default profile: the endpoint and the administrator's key, though AWS_* name another.
    let trail_dir = dir.path().join("trail");
    let (ok, _, err) = cairn(
        &config,
        None,
        &[
            "trails",
            "create",
            "--name",
            "main",
            "--local-directory",
            trail_dir.to_str().expect("path"),
        ],
    );
    assert!(ok, "{err}");
    let (ok, out, err) = cairn(&config, None, &["iam", "whoami"]);
    assert!(ok, "{err}");
    assert!(out.contains(":user/admin"), "{out}");

    // Another profile, another identity: the reader may read and not change.
    let (ok, out, err) = cairn(&config, Some("reader"), &["iam", "whoami"]);
    assert!(ok, "{err}");
    assert!(out.contains(":user/reader"), "{out}");
    let (ok, _, err) = cairn(
        &config,
        Some("reader"),
        &["trails", "stop-logging", "--name", "main"],
    );
    assert!(!ok && err.contains("AccessDenied"), "{err}");

    // A profile that does not exist is an error that says so, not a silent fallback.
    let (ok, _, err) = cairn(&config, Some("nope"), &["iam", "whoami"]);
    assert!(!ok && err.contains("no [nope] section"), "{err}");
    server.stop().await;
}
