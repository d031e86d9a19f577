//! End-to-end tests of `POST /query` (SQL introspection on DataFusion) and of the real
//! `restate` CLI commands built on it, against a running `ratchet` and the TS test service.

mod support;

use serde_json::{json, Value};
use support::{Fixture, Reply, Sdks};

async fn query(fx: &mut Fixture, sql: &str, accept: Option<&str>) -> Reply {
    let url = fx.admin_url("/query");
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = accept {
        headers.push(("accept", a));
    }
    let body = json!({ "query": sql }).to_string();
    fx.request("POST", &url, Some(body.into()), &headers, std::time::Duration::from_secs(20)).await
}

async fn rows(fx: &mut Fixture, sql: &str) -> Vec<Value> {
    let r = query(fx, sql, Some("application/json")).await;
    assert_eq!(r.status, 200, "{sql}: {}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"), "{sql}");
    r.json()["rows"].as_array().cloned().unwrap_or_else(|| panic!("{sql}: {}", r.text()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_over_invocations_state_and_journals_answers_json_and_arrow() {
    let mut fx = Fixture::start("query_sql", Sdks::Ts).await;
    let mut ids = Vec::new();
    for name in ["Ann", "Bob", "Cy"] {
        ids.push(fx.call("/Greeter/greet", json!(name)).await.invocation_id());
    }
    assert_eq!(fx.call("/Counter/k1/add", json!(5)).await.status, 200);
    assert_eq!(fx.call("/Counter/k1/add", json!(2)).await.status, 200);

    // The derived status and the target columns, filtered and ordered by the engine.
    let got = rows(
        &mut fx,
        "SELECT id, status, target, target_service_ty, completion_result FROM sys_invocation \
         WHERE target_service_name = 'Greeter' ORDER BY created_at",
    )
    .await;
    assert_eq!(got.len(), 3, "{got:?}");
    for (row, id) in got.iter().zip(&ids) {
        assert_eq!(row["id"], json!(id));
        assert_eq!(row["status"], "completed");
        assert_eq!(row["target"], "Greeter/greet");
        assert_eq!(row["target_service_ty"], "service");
        assert_eq!(row["completion_result"], "success");
    }
    // A NULL column is left out of its row, as Restate's encoder does.
    let one = rows(
        &mut fx,
        &format!("SELECT id, target_service_key FROM sys_invocation WHERE id = '{}'", ids[0]),
    )
    .await;
    assert_eq!(one, vec![json!({ "id": ids[0] })]);
    // Counts are Int64, grouped counts per status; state values are hex.
    let n = rows(&mut fx, "SELECT COUNT(*) AS n FROM sys_invocation_status").await;
    assert_eq!(n, vec![json!({ "n": 5 })]);
    let state = rows(
        &mut fx,
        "SELECT service_name, service_key, key, value, value_utf8 FROM state \
         WHERE service_name = 'Counter'",
    )
    .await;
    assert_eq!(
        state,
        vec![
            json!({"service_name": "Counter", "service_key": "k1", "key": "count", "value": "37", "value_utf8": "7"})
        ]
    );
    // The journal of a kept invocation: its input and output.
    let journal = rows(
        &mut fx,
        &format!(
            "SELECT index, entry_type, version FROM sys_journal WHERE id = '{}' ORDER BY index",
            ids[1]
        ),
    )
    .await;
    assert_eq!(
        journal,
        vec![
            json!({"index": 0, "entry_type": "Command: Input", "version": 2}),
            json!({"index": 1, "entry_type": "Command: Output", "version": 2}),
        ]
    );
    // The CLI's feature probe.
    let probe = rows(
        &mut fx,
        "SELECT COUNT(*) AS n FROM information_schema.columns WHERE table_name = 'sys_journal' \
         AND column_name IN ('version', 'entry_json', 'appended_at')",
    )
    .await;
    assert_eq!(probe, vec![json!({ "n": 3 })]);
    let services = rows(&mut fx, "SELECT name, ty FROM sys_service WHERE name = 'Counter'").await;
    assert_eq!(services, vec![json!({"name": "Counter", "ty": "virtual_object"})]);

    // Anything else than exactly `application/json` gets an Arrow IPC stream.
    let arrow = query(&mut fx, "SELECT COUNT(*) FROM sys_invocation", None).await;
    assert_eq!(arrow.status, 200);
    assert_eq!(arrow.header("content-type"), Some("application/vnd.apache.arrow.stream"));
    assert!(arrow.body.starts_with(&[0xFF, 0xFF, 0xFF, 0xFF]), "an IPC message first");
    assert!(arrow.body.ends_with(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]), "the end marker");

    // Bad queries: a clear 400 with the engine's message, in the admin error shape.
    for (sql, needle) in [
        ("SELEC 1", "SELEC"),
        ("SELECT * FROM nope", "nope"),
        ("SELECT nope FROM sys_invocation", "nope"),
        ("DROP TABLE sys_invocation", "DDL"),
    ] {
        let r = query(&mut fx, sql, Some("application/json")).await;
        assert_eq!(r.status, 400, "{sql}: {}", r.text());
        let body = r.json();
        assert!(body["message"].as_str().unwrap_or("").contains(needle), "{sql}: {body}");
        assert!(body.get("restate_code").is_some(), "{body}");
    }
    let r = fx
        .request(
            "POST",
            &fx.admin_url("/query"),
            Some(bytes::Bytes::from_static(b"{not json")),
            &[("content-type", "application/json")],
            std::time::Duration::from_secs(5),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    // Versioned mounts answer too (the CLI prefixes /v4).
    let r = fx
        .request(
            "POST",
            &fx.admin_url("/v4/query"),
            Some(json!({"query": "SELECT 1 AS one"}).to_string().into()),
            &[("content-type", "application/json"), ("accept", "application/json")],
            std::time::Duration::from_secs(5),
        )
        .await;
    assert_eq!(r.json(), json!({"rows": [{"one": 1}]}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restate_cli_lists_describes_and_reads_state_through_sql() {
    let mut fx = Fixture::start("query_cli", Sdks::Ts).await;
    let id = fx.call("/Greeter/greet", json!("Ann")).await.invocation_id();
    assert_eq!(fx.call("/Counter/k9/add", json!(42)).await.status, 200);

    let (code, out) = fx.cli(&["--yes", "sql", "SELECT COUNT(*) AS n FROM sys_invocation"]).await;
    assert_eq!(code, 0, "restate sql:\n{out}");
    // A one-column table (`N`, then the count), then "1 rows. Query took …".
    let cells: Vec<&str> = out.split_whitespace().collect();
    let n_at = cells.iter().position(|c| *c == "N").expect("the column header");
    assert_eq!(cells.get(n_at + 1), Some(&"2"), "restate sql:\n{out}");
    assert!(out.contains("1 rows"), "restate sql:\n{out}");

    let (code, out) = fx.cli(&["--yes", "invocations", "list", "--all"]).await;
    assert_eq!(code, 0, "restate invocations list:\n{out}");
    assert!(out.contains(&id) && out.contains("Greeter/greet"), "invocations list:\n{out}");

    let (code, out) = fx.cli(&["--yes", "invocations", "describe", &id]).await;
    assert_eq!(code, 0, "restate invocations describe:\n{out}");
    assert!(out.contains("Greeter/greet"), "invocations describe:\n{out}");

    let (code, out) = fx.cli(&["--yes", "kv", "get", "Counter", "k9"]).await;
    assert_eq!(code, 0, "restate kv get:\n{out}");
    assert!(out.contains("count") && out.contains("42"), "kv get:\n{out}");
}

async fn unfinished_counters(fx: &mut Fixture) -> u64 {
    let sql = "SELECT COUNT(*) AS n FROM sys_invocation WHERE target_service_name = 'Counter' \
               AND status != 'completed'";
    rows(fx, sql).await[0]["n"].as_u64().unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restate_cli_kills_and_purges_in_batches_found_through_sql() {
    let mut fx = Fixture::start("query_cli_batch", Sdks::Ts).await;
    // Two invocations that hold their keys for a minute, and one that finished.
    let mut held = Vec::new();
    for key in ["h1", "h2"] {
        let r =
            fx.ingress("POST", &format!("/Counter/{key}/hold/send"), Some(&json!(60_000))).await;
        assert_eq!(r.status, 202, "{}", r.text());
        held.push(r.json()["invocationId"].as_str().unwrap().to_string());
    }
    let done = fx.call("/Greeter/greet", json!("Ann")).await.invocation_id();
    let deadline = support::Deadline::after(std::time::Duration::from_secs(10), "both to run");
    while unfinished_counters(&mut fx).await != 2 {
        deadline.tick().await;
    }

    // `restate invocations kill Counter` finds both through SQL and kills each.
    let (code, out) = fx.cli(&["--yes", "invocations", "kill", "Counter"]).await;
    assert_eq!(code, 0, "restate invocations kill:\n{out}");
    let deadline = support::Deadline::after(std::time::Duration::from_secs(10), "the kills");
    while unfinished_counters(&mut fx).await != 0 {
        deadline.tick().await;
    }
    for id in &held {
        let got = rows(
            &mut fx,
            &format!("SELECT status, completion_failure FROM sys_invocation WHERE id = '{id}'"),
        )
        .await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0]["status"], "completed");
        assert!(got[0]["completion_failure"].as_str().unwrap_or("").contains("killed"), "{got:?}");
    }

    // `restate invocations purge Counter` forgets the completed ones, and only those.
    let (code, out) = fx.cli(&["--yes", "invocations", "purge", "Counter"]).await;
    assert_eq!(code, 0, "restate invocations purge:\n{out}");
    let deadline = support::Deadline::after(std::time::Duration::from_secs(10), "the purges");
    loop {
        let n = rows(
            &mut fx,
            "SELECT COUNT(*) AS n FROM sys_invocation WHERE target_service_name = 'Counter'",
        )
        .await;
        if n[0]["n"] == 0 {
            break;
        }
        deadline.tick().await;
    }
    let left = rows(&mut fx, &format!("SELECT id FROM sys_invocation WHERE id = '{done}'")).await;
    assert_eq!(left.len(), 1, "the Greeter invocation is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_state_is_replaced_with_a_version_check_and_cleared_by_the_cli() {
    let mut fx = Fixture::start("query_state", Sdks::Ts).await;
    assert_eq!(fx.call("/Counter/k1/add", json!(3)).await.status, 200);
    let url = fx.admin_url("/services/Counter/state");
    let fx = &mut fx;
    let post = |body: Value| Some(bytes::Bytes::from(body.to_string()));
    let h = [("content-type", "application/json")];
    let t = std::time::Duration::from_secs(5);
    // A stale version is accepted (202) and changes nothing.
    let r = fx
        .request(
            "POST",
            &url,
            post(json!({"object_key": "k1", "new_state": {"count": [57]}, "version": "stale"})),
            &h,
            t,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    // Without a version the state is replaced: count becomes 9.
    let r = fx
        .request(
            "POST",
            &url,
            post(json!({"object_key": "k1", "new_state": {"count": [57]}})),
            &h,
            t,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let deadline = support::Deadline::after(t, "the new state");
    loop {
        let got = rows(
            fx,
            "SELECT value_utf8 FROM state WHERE service_name = 'Counter' AND service_key = 'k1'",
        )
        .await;
        if got == vec![json!({"value_utf8": "9"})] {
            break;
        }
        assert!(got == vec![json!({"value_utf8": "3"})], "{got:?}");
        deadline.tick().await;
    }
    assert_eq!(fx.call("/Counter/k1/add", json!(1)).await.json(), json!(10));
    // Bad requests change nothing.
    for (path, body, status) in [
        ("/services/Greeter/state", json!({"object_key": "x", "new_state": {"a": [1]}}), 400),
        ("/services/Nope/state", json!({"object_key": "x", "new_state": {"a": [1]}}), 404),
        ("/services/Counter/state", json!({"new_state": {}}), 400),
        (
            "/services/Counter/state",
            json!({"object_key": "k1", "new_state": {"a": "not bytes"}}),
            400,
        ),
    ] {
        let r = fx.request("POST", &fx.admin_url(path), post(body.clone()), &h, t).await;
        assert_eq!(r.status, status, "{path} {body}: {}", r.text());
        assert!(r.json()["message"].is_string(), "{}", r.text());
    }
    // `restate kv clear Counter/k1` reads the state, computes its version and clears it.
    let (code, out) = fx.cli(&["--yes", "kv", "clear", "Counter/k1"]).await;
    assert_eq!(code, 0, "restate kv clear:\n{out}");
    let deadline = support::Deadline::after(t, "the cleared state");
    while !rows(fx, "SELECT key FROM state WHERE service_name = 'Counter'").await.is_empty() {
        deadline.tick().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_options_are_patched_through_the_admin_api_and_the_cli() {
    let mut fx = Fixture::start("query_patch_service", Sdks::Ts).await;
    let t = std::time::Duration::from_secs(5);
    let h = [("content-type", "application/json")];
    let patch = |body: &str| Some(bytes::Bytes::from(body.to_string()));
    let url = fx.admin_url("/services/Counter");
    let r = fx
        .request(
            "PATCH",
            &url,
            patch(r#"{"journal_retention": "2h", "idempotency_retention": "PT30M"}"#),
            &h,
            t,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["name"], "Counter");
    assert_eq!(body["journal_retention"], "2h", "{body}");
    assert_eq!(body["idempotency_retention"], "30m", "{body}");
    // Kept across a crash and restart (the schema is persisted) and shown by the CLI.
    fx.kill9_server();
    fx.restart_server().await;
    let (code, out) = fx.cli(&["--yes", "services", "config", "view", "Counter"]).await;
    assert_eq!(code, 0, "restate services config view:\n{out}");
    assert!(out.contains("2h") && out.contains("30m"), "config view:\n{out}");
    let (code, out) =
        fx.cli(&["--yes", "services", "config", "patch", "Counter", "--public", "false"]).await;
    assert_eq!(code, 0, "restate services config patch:\n{out}");
    let r = fx.admin("GET", "/services/Counter", None).await;
    assert_eq!(r.json()["public"], false, "{}", r.text());
    // A private service is not reachable from the ingress.
    assert_eq!(fx.call("/Counter/k/add", json!(1)).await.status, 400);
    // Bad input changes nothing.
    for (path, body, status) in [
        ("/services/Counter", r#"{"journal_retention": "soon"}"#, 400),
        ("/services/Counter", r#"{"workflow_completion_retention": "1h"}"#, 400),
        ("/services/Counter", "{not json", 400),
        ("/services/Nope", r#"{"public": true}"#, 404),
    ] {
        let r = fx.request("PATCH", &fx.admin_url(path), patch(body), &h, t).await;
        assert_eq!(r.status, status, "{path} {body}: {}", r.text());
    }
    let r = fx.admin("GET", "/services/Counter", None).await;
    assert_eq!(r.json()["journal_retention"], "2h", "{}", r.text());
}

async fn status_of(fx: &mut Fixture, id: &str) -> String {
    let got = rows(fx, &format!("SELECT status FROM sys_invocation WHERE id = '{id}'")).await;
    got.first().and_then(|r| r["status"].as_str()).unwrap_or("none").to_string()
}

async fn wait_status(fx: &mut Fixture, id: &str, ok: impl Fn(&str) -> bool, what: &str) {
    let deadline = support::Deadline::after(std::time::Duration::from_secs(10), what);
    while !ok(&status_of(fx, id).await) {
        deadline.tick().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restate_cli_pauses_resumes_cancels_and_restarts_and_the_ui_batches_do_too() {
    let mut fx = Fixture::start("query_cli_ops", Sdks::Ts).await;
    let mut sleeping = Vec::new();
    for tag in ["a", "b"] {
        let body = json!({"tag": tag, "ms": 600_000});
        let r = fx.ingress("POST", "/Sleeper/sleep/send", Some(&body)).await;
        assert_eq!(r.status, 202, "{}", r.text());
        sleeping.push(r.json()["invocationId"].as_str().unwrap().to_string());
    }
    let running = |s: &str| s == "running" || s == "suspended";
    for id in &sleeping {
        wait_status(&mut fx, id, running, "the sleepers to run").await;
    }
    let (s1, s2) = (sleeping[0].clone(), sleeping[1].clone());

    // One at a time through the CLI (it finds the id through SQL, then PATCHes it).
    let (code, out) = fx.cli(&["--yes", "invocations", "pause", &s1]).await;
    assert_eq!(code, 0, "invocations pause:\n{out}");
    assert!(out.contains("Paused 1 invocations"), "pause:\n{out}");
    wait_status(&mut fx, &s1, |s| s == "paused", "the pause").await;
    let (code, out) = fx.cli(&["--yes", "invocations", "resume", &s1]).await;
    assert_eq!(code, 0, "invocations resume:\n{out}");
    assert!(out.contains("Resumed 1 invocations"), "resume:\n{out}");
    wait_status(&mut fx, &s1, running, "the resume").await;

    // The UI's batches: each id answered in order, one failure does not stop the others.
    let done = fx.call("/Greeter/greet", json!("Ann")).await.invocation_id();
    let unknown = format!("{}0", &done[..done.len() - 1]);
    let unknown = if unknown == done { format!("{}1", &done[..done.len() - 1]) } else { unknown };
    let base = fx.admin_url("/internal/invocations_batch_operations/");
    let batch = |op: &str| format!("{base}{op}");
    let h = [("content-type", "application/json")];
    let t = std::time::Duration::from_secs(10);
    let body = |ids: &[&str]| Some(bytes::Bytes::from(json!({"invocation_ids": ids}).to_string()));
    let r = fx.request("POST", &batch("pause"), body(&[&s1, &done, &unknown]), &h, t).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = r.json();
    assert_eq!(got["succeeded"], json!([s1]), "{got}");
    let failed: Vec<&str> = got["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["invocation_id"].as_str().unwrap())
        .collect();
    assert_eq!(failed, vec![done.as_str(), unknown.as_str()], "{got}");
    assert!(got["failed"][1]["error"].as_str().unwrap().contains("does not exist"), "{got}");
    wait_status(&mut fx, &s1, |s| s == "paused", "the batch pause").await;
    let r = fx.request("POST", &batch("resume"), body(&[&s1]), &h, t).await;
    assert_eq!(r.json(), json!({"succeeded": [s1], "failed": []}));
    wait_status(&mut fx, &s1, running, "the batch resume").await;
    let r = fx.request("POST", &batch("restart-as-new"), body(&[&done]), &h, t).await;
    let got = r.json();
    assert_eq!(got["succeeded"][0]["old_invocation_id"], done.as_str(), "{got}");
    let restarted = got["succeeded"][0]["new_invocation_id"].as_str().unwrap().to_string();
    wait_status(&mut fx, &restarted, |s| s == "completed", "the restarted invocation").await;
    // Bad batches change nothing: a malformed id (422, before anything runs), too many ids,
    // bad JSON, an unknown operation.
    let r = fx.request("POST", &batch("kill"), body(&[&s2, "inv_nope"]), &h, t).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("invocation_ids[1]"), "{}", r.text());
    let many: Vec<&str> = vec![unknown.as_str(); 1001];
    let r = fx.request("POST", &batch("kill"), body(&many), &h, t).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["message"].as_str().unwrap().contains("1001"), "{}", r.text());
    let bad = Some(bytes::Bytes::from_static(b"{not json"));
    assert_eq!(fx.request("POST", &batch("kill"), bad, &h, t).await.status, 400);
    assert_eq!(fx.request("POST", &batch("explode"), body(&[&s2]), &h, t).await.status, 404);
    let r = fx.request("POST", &batch("cancel"), body(&[]), &h, t).await;
    assert_eq!(r.json(), json!({"succeeded": [], "failed": []}));
    assert!(running(&status_of(&mut fx, &s2).await), "the refused kill did nothing");

    // Batches by service through the CLI.
    let (code, out) = fx.cli(&["--yes", "invocations", "cancel", "Sleeper"]).await;
    assert_eq!(code, 0, "invocations cancel:\n{out}");
    assert!(out.contains("Cancelled 2 invocations"), "cancel:\n{out}");
    for id in &sleeping {
        wait_status(&mut fx, id, |s| s == "completed", "the cancels").await;
    }
    let (code, out) = fx.cli(&["--yes", "invocations", "cancel", "Sleeper"]).await;
    assert_eq!(code, 1, "nothing left to cancel:\n{out}");
    assert!(out.contains("No invocations found"), "cancel again:\n{out}");
    let (code, out) = fx.cli(&["--yes", "invocations", "restart-as-new", &done]).await;
    assert_eq!(code, 0, "invocations restart-as-new:\n{out}");
    assert!(out.contains("Restarted 1 invocations"), "restart-as-new:\n{out}");
    let again = rows(
        &mut fx,
        &format!("SELECT count(*) AS n FROM sys_invocation WHERE restarted_from = '{done}'"),
    )
    .await;
    assert_eq!(again, vec![json!({"n": 2})], "two restarts of the same invocation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restate_cli_edits_object_state_in_an_editor() {
    let mut fx = Fixture::start("query_state_edit", Sdks::Ts).await;
    assert_eq!(fx.call("/Counter/e1/add", json!(3)).await.status, 200);
    // An editor that changes the count and adds a key, as a user would in theirs.
    let script = std::env::temp_dir().join(format!("ratchet-editor-{}.sh", std::process::id()));
    std::fs::write(
        &script,
        "#!/bin/sh\nf=\"$1\"\nsed -i 's/\"count\": 3/\"count\": 40, \"note\": \"hi\"/' \"$f\"\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let editor = script.to_str().unwrap();
    let (code, out) =
        fx.cli_with_env(&["--yes", "state", "edit", "Counter", "e1"], &[("EDITOR", editor)]).await;
    let _ = std::fs::remove_file(&script);
    assert_eq!(code, 0, "restate state edit:\n{out}");
    let deadline = support::Deadline::after(std::time::Duration::from_secs(10), "the edit");
    loop {
        let got = rows(
            &mut fx,
            "SELECT key, value_utf8 FROM state WHERE service_name = 'Counter' AND \
             service_key = 'e1' ORDER BY key",
        )
        .await;
        if got.len() == 2 {
            assert_eq!(
                got,
                vec![
                    json!({"key": "count", "value_utf8": "40"}),
                    json!({"key": "note", "value_utf8": "\"hi\""}),
                ]
            );
            break;
        }
        deadline.tick().await;
    }
    assert_eq!(fx.call("/Counter/e1/add", json!(2)).await.json(), json!(42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_edit_waits_for_the_invocation_holding_the_object() {
    let mut fx = Fixture::start("query_state_queued", Sdks::Ts).await;
    assert_eq!(fx.call("/Counter/q1/add", json!(5)).await.json(), json!(5));
    let r = fx.ingress("POST", "/Counter/q1/hold/send", Some(&json!(3000))).await;
    let holder = r.json()["invocationId"].as_str().unwrap().to_string();
    let running = |s: &str| s == "running" || s == "suspended";
    wait_status(&mut fx, &holder, running, "the holder to run").await;
    let h = [("content-type", "application/json")];
    let t = std::time::Duration::from_secs(5);
    // {"count": "7"} as bytes.
    let edit = json!({"object_key": "q1", "new_state": {"count": [55]}}).to_string();
    let r = fx
        .request("POST", &fx.admin_url("/services/Counter/state"), Some(edit.into()), &h, t)
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let count =
        "SELECT value_utf8 FROM state WHERE service_name = 'Counter' AND service_key = 'q1'";
    // Queued behind the holder: the state it sees does not change under it. A count read
    // while the holder was still running (its status read after says so) must be the old one.
    let deadline = support::Deadline::after(std::time::Duration::from_secs(15), "the holder");
    let mut checked = 0;
    loop {
        let got = rows(&mut fx, count).await;
        if status_of(&mut fx, &holder).await == "completed" {
            break;
        }
        assert_eq!(got, vec![json!({"value_utf8": "5"})]);
        checked += 1;
        deadline.tick().await;
    }
    assert!(checked > 0, "the holder finished before the edit could be seen waiting");
    wait_status(&mut fx, &holder, |s| s == "completed", "the holder to finish").await;
    assert_eq!(rows(&mut fx, count).await, vec![json!({"value_utf8": "7"})]);
    assert_eq!(fx.call("/Counter/q1/add", json!(1)).await.json(), json!(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_operator_chains_are_planned_or_refused_never_crash_the_server() {
    let mut fx = Fixture::start("query_deep", Sdks::Ts).await;
    // The planner walks `1+1+...` recursively: 500 operators run on the query threads' deep
    // stacks, more are refused before planning, whichever operator builds the chain; text
    // that does not tokenize is refused too.
    let sql = format!("SELECT {}1 AS n", "1+".repeat(500));
    assert_eq!(rows(&mut fx, &sql).await, vec![json!({"n": 501})]);
    let chains = ["1+", "1<<", "'a'||", "'a' ~ ", "1::bigint + ", "NOT ", "1 IS NOT NULL AND "];
    for chain in chains {
        let sql = format!("SELECT {}1 AS n", chain.repeat(12_000 / chain.len()));
        let r = query(&mut fx, &sql, Some("application/json")).await;
        assert_eq!(r.status, 400, "{chain}: {}", r.text());
        let message = r.json()["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains("operators, more than 500"), "{chain}: {message}");
    }
    let r = query(&mut fx, "SELECT 'unterminated", Some("application/json")).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let sql = format!("SELECT 1 FROM sys_invocation WHERE {}", vec!["1=1"; 300].join(" AND "));
    assert_eq!(query(&mut fx, &sql, Some("application/json")).await.status, 400);
    // A long IN list is not a chain: ids are atoms.
    let ids: Vec<String> = (0..2000).map(|i| format!("'x{i}'")).collect();
    let sql = format!("SELECT count(*) AS n FROM sys_invocation WHERE id IN ({})", ids.join(","));
    assert_eq!(rows(&mut fx, &sql).await, vec![json!({"n": 0})]);
    assert_eq!(rows(&mut fx, "SELECT 1 AS one").await, vec![json!({"one": 1})]);
}
