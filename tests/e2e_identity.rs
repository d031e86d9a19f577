//! End-to-end tests of request identity (request signing) with a real SDK: what a user sees
//! when a TypeScript SDK service accepts only requests signed by Ratchet's key.
//!
//! Goal: with `worker.invoker.request-identity-private-key-pem-file` set, every request to a
//! deployment is signed so the SDK (given the public key as `identityKeys`) accepts discovery
//! and invocations, keyed ones included; without the key, or with another key, registration
//! fails with a 500 `META0003` answer that says what to configure; SDKs that check nothing
//! (the Rust test service) work as before; a bad key file stops start-up with a message
//! naming the option and the file.
//!
//! Method: a fresh key pair per test, written as a PKCS#8 PEM file; the fixture
//! (`tests/support`) runs Ratchet with the Rust test service registered and starts
//! `tests/services/ts/identity.mjs` (services `Guarded` and `GuardedCounter`) with the public
//! key. Tests observe only HTTP answers and the server's log and exit status.

mod support;

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use ed25519_dalek::SigningKey;
use ratchet::protocol::identity;
use serde_json::{json, Value};
use support::{Fixture, FixtureOptions, Sdks};

const KEY_ENV: &str = "RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE";
const KEY_OPTION: &str = "worker.invoker.request-identity-private-key-pem-file";

/// A fresh Ed25519 key (the seed from the standard library's per-process random hasher keys).
fn fresh_key() -> SigningKey {
    let mut seed = [0u8; 32];
    for (i, chunk) in seed.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    SigningKey::from_bytes(&seed)
}

/// Writes `key` as a PKCS#8 PEM file (what `openssl genpkey -algorithm ed25519` writes).
fn write_pem(dir: &Path, name: &str, key: &SigningKey) -> PathBuf {
    let path = dir.join(name);
    let pem = key.to_pkcs8_pem(LineEnding::LF).expect("encode the key");
    std::fs::write(&path, pem.as_bytes()).expect("write the key file");
    path
}

fn public_id(key: &SigningKey) -> String {
    identity::key_id(&key.verifying_key())
}

fn with_key(file: &Path) -> FixtureOptions {
    FixtureOptions {
        env: vec![(KEY_ENV.to_string(), file.display().to_string())],
        ..FixtureOptions::default()
    }
}

async fn register(fx: &mut Fixture, port: u16) -> (u16, Value) {
    let body = json!({ "uri": format!("http://127.0.0.1:{port}") });
    let reply = fx.admin("POST", "/deployments", Some(&body)).await;
    let json = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    (reply.status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_requests_are_accepted() {
    let keys = tempfile::tempdir().unwrap();
    let key = fresh_key();
    let file = write_pem(keys.path(), "identity.pem", &key);
    let kid = public_id(&key);
    // The Rust test service checks no identity: it is registered and works as before.
    let mut fx = Fixture::start_with("identity_signed", Sdks::Rust, with_key(&file)).await;
    let log = fx.server.log();
    assert!(log.contains(&kid), "the start-up log names the public key {kid}:\n{log}");
    let r = fx.call("/RustGreeter/greet", json!("rust")).await;
    assert_eq!(r.status, 200, "{}", r.text());

    let port = fx.start_ts_script("identity.mjs", &["--identity-key", &kid]).await;
    let (status, body) = register(&mut fx, port).await;
    assert_eq!(status, 201, "signed discovery is accepted: {body}");
    let names: Vec<&str> =
        body["services"].as_array().unwrap().iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names.len(), 2, "{body}");
    assert!(names.contains(&"Guarded") && names.contains(&"GuardedCounter"), "{body}");

    let r = fx.call("/Guarded/greet", json!("Ratchet")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!("Hello Ratchet, signed!"));
    // Keyed handlers (the token carries the key as `sub`), a key needing escaping included.
    for (path, want) in [
        ("/GuardedCounter/a/add", 1),
        ("/GuardedCounter/a/add", 2),
        ("/GuardedCounter/b%2F%22c%22/add", 1),
    ] {
        let r = fx.call(path, json!(1)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.json(), json!(want), "{path}");
    }

    // A deployment that trusts another key refuses ours; the answer names our key.
    let other = public_id(&fresh_key());
    let port = fx.start_ts_script("identity.mjs", &["--identity-key", &other]).await;
    let (status, body) = register(&mut fx, port).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["restate_code"], "META0003", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("401 Unauthorized"), "{message}");
    assert!(message.contains(&format!("refused the request signed with key {kid}")), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_registration_fails_clearly() {
    let key = fresh_key();
    let mut fx = Fixture::start("identity_unsigned", Sdks::Rust).await;
    let port = fx.start_ts_script("identity.mjs", &["--identity-key", &public_id(&key)]).await;
    let (status, body) = register(&mut fx, port).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["restate_code"], "META0003", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("returned 401 Unauthorized"), "{message}");
    assert!(message.contains("this server signs none"), "{message}");
    assert!(message.contains(KEY_OPTION), "says what to configure: {message}");
    // Nothing was registered.
    let r = fx.admin("GET", "/services", None).await;
    let listed = r.text();
    assert!(!listed.contains("Guarded"), "{listed}");
    // The Rust test service still works.
    let r = fx.call("/RustGreeter/greet", json!("rust")).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Runs `ratchet server` with `key_file` and returns its exit code and output; it must stop
/// by itself (a configuration error stops it before it binds anything).
fn run_with_key_file(key_file: &Path) -> (Option<i32>, String) {
    let base = tempfile::tempdir().unwrap();
    let out_path = base.path().join("out.log");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ratchet"))
        .arg("server")
        .arg("--base-dir")
        .arg(base.path().join("data"))
        .env("RESTATE_INGRESS__BIND_ADDRESS", "127.0.0.1:0")
        .env("RESTATE_ADMIN__BIND_ADDRESS", "127.0.0.1:0")
        .env("RESTATE_BIND_ADDRESS", "127.0.0.1:0")
        .env(KEY_ENV, key_file)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("start ratchet");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ratchet kept running with the bad key file {}", key_file.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.code(), std::fs::read_to_string(&out_path).unwrap_or_default())
}

#[test]
fn a_bad_key_file_stops_startup_naming_option_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not-a-key.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let public = dir.path().join("public.pem");
    std::fs::write(
        &public,
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAhx4Uy5/5iTpdMMw2stPqgVmDUKkV8Fva3qqrohZ0pXU=\n\
         -----END PUBLIC KEY-----\n",
    )
    .unwrap();
    for (file, says) in [
        (dir.path().join("missing.pem"), "cannot read"),
        (not_pem, "is not a PEM file"),
        (public, "`PUBLIC KEY`"),
    ] {
        let (code, out) = run_with_key_file(&file);
        assert_eq!(code, Some(2), "{out}");
        assert!(out.contains(KEY_OPTION), "{out}");
        assert!(out.contains(&file.display().to_string()), "{out}");
        assert!(out.contains(says), "{out}");
        assert!(!out.contains("panicked"), "{out}");
    }
}
