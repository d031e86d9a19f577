//! End-to-end tests of the web UI's server side against a running `ratchet` and the TS test
//! service: the embedded files at `/ui/`, the `/internal/ui/*` routes (keyset paging through
//! every row, exact counts, filters and their errors, the detail bundle with the blocked-by
//! chain, size-gated payloads and state values, object locks and inboxes, batch actions by
//! filter), the event feed (pushed on change, closed at shutdown) and the ingress's CORS.
//! The browser tests (`tests/ui_browser.rs`) drive the pages themselves.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{send, Fixture, Reply, Sdks};

async fn get(fx: &mut Fixture, path: &str) -> Reply {
    let url = fx.admin_url(path);
    fx.request("GET", &url, None, &[], Duration::from_secs(20)).await
}

async fn get_json(fx: &mut Fixture, path: &str) -> Value {
    let r = get(fx, path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

/// Polls `path` until `done` holds for its JSON answer (at most 30 s).
async fn until(fx: &mut Fixture, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = get_json(fx, path).await;
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; last answer: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_files_are_the_embedded_ones_with_redirects_etags_and_an_app_fallback() {
    // The embedded table is exactly the source folder, byte for byte.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("admin-ui/www");
    let mut on_disk = Vec::new();
    fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).expect("read admin-ui/www").flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    walk(&root, &root, &mut on_disk);
    on_disk.sort();
    let embedded: Vec<&str> = ratchet::admin::ui::asset_paths().collect();
    assert_eq!(embedded, on_disk, "rebuild after changing admin-ui/www");
    for p in &on_disk {
        let (bytes, _) = ratchet::admin::ui::asset(p).expect("embedded");
        assert_eq!(bytes, std::fs::read(root.join(p)).unwrap().as_slice(), "{p} differs");
    }
    assert!(on_disk.iter().any(|p| p == "index.html"), "{on_disk:?}");
    assert!(on_disk.iter().any(|p| p == "vendor/preact.mjs"), "{on_disk:?}");

    let mut fx = Fixture::start("ui_files", Sdks::Ts).await;
    for path in ["/", "/ui"] {
        let r = get(&mut fx, path).await;
        assert_eq!(r.status, 308, "{path}");
        assert_eq!(r.header("location"), Some("/ui/"), "{path}");
    }
    let index = get(&mut fx, "/ui/").await;
    assert_eq!(index.status, 200);
    assert_eq!(index.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(index.text().contains("importmap"), "{}", index.text());
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    let etag = index.header("etag").expect("etag").to_string();
    // A client route is the app; a missing asset is 404; nothing escapes the folder.
    let route = get(&mut fx, "/ui/invocations/inv_1abc").await;
    assert_eq!((route.status, route.body.clone()), (200, index.body.clone()));
    let dotted = get(&mut fx, "/ui/state/Counter/v1.2").await;
    assert_eq!((dotted.status, dotted.body.clone()), (200, index.body.clone()));
    assert_eq!(get(&mut fx, "/ui/nope.js").await.status, 404);
    assert_eq!(get(&mut fx, "/ui/%2e%2e/Cargo.toml").await.status, 404);
    let js = get(&mut fx, "/ui/app.js").await;
    assert_eq!(js.status, 200);
    assert_eq!(js.header("content-type"), Some("text/javascript; charset=utf-8"));
    let url = fx.admin_url("/ui/");
    let again =
        fx.request("GET", &url, None, &[("if-none-match", &etag)], Duration::from_secs(5)).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_pages_through_every_row_newest_first_and_counts_are_exact() {
    let mut fx = Fixture::start("ui_list", Sdks::Ts).await;
    let mut greeted = HashSet::new();
    for i in 0..60 {
        greeted.insert(fx.call("/Greeter/greet", json!(format!("n{i}"))).await.invocation_id());
    }
    for i in 0..9 {
        assert_eq!(fx.call("/Counter/c/add", json!(i)).await.status, 200);
    }
    // Calls from a handler: their callees' ids are derived (hashes), yet they list in
    // creation order too.
    for i in 0..5 {
        assert_eq!(fx.call("/Caller/greet", json!(format!("c{i}"))).await.status, 200);
    }
    // Keyset pages of 7 through everything: no row twice, none missing, newest first.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let v =
            get_json(&mut fx, &format!("/internal/ui/invocations?limit=7&cursor={cursor}")).await;
        assert_eq!(v["partial"], false, "{v}");
        let items = v["items"].as_array().unwrap();
        assert!(items.len() <= 7);
        for it in items {
            seen.push((it["id"].as_str().unwrap().to_string(), it["created_at"].as_u64().unwrap()));
        }
        pages += 1;
        match v["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
        assert!(pages < 50, "paging does not end");
    }
    let ids: HashSet<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), seen.len(), "a row came twice");
    assert_eq!(seen.len(), 79);
    assert!(greeted.iter().all(|g| ids.contains(g.as_str())));
    assert!(seen.windows(2).all(|w| w[0].1 >= w[1].1), "not newest first: {seen:?}");

    // Oldest first is the same rows the other way round.
    let mut asc = Vec::new();
    let mut cursor = String::new();
    loop {
        let q = format!("/internal/ui/invocations?order=asc&limit=10&cursor={cursor}");
        let v = get_json(&mut fx, &q).await;
        for it in v["items"].as_array().unwrap() {
            asc.push(it["id"].as_str().unwrap().to_string());
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
        assert!(asc.len() <= 79, "paging does not end");
    }
    let desc: Vec<String> = seen.iter().rev().map(|(id, _)| id.clone()).collect();
    assert_eq!(asc, desc);

    let counts = get_json(&mut fx, "/internal/ui/counts").await;
    assert_eq!(counts["total"], 79, "{counts}");
    assert_eq!(counts["by_status"]["succeeded"], 79, "{counts}");
    let greeter = counts["services"].as_array().unwrap().iter().find(|s| s["service"] == "Greeter");
    assert_eq!(
        greeter.unwrap()["handlers"][0],
        json!({"handler": "greet", "total": 65,
        "by_status": {"succeeded": 65}})
    );
    let counter = get_json(&mut fx, "/internal/ui/counts?service=Counter&key=c").await;
    assert_eq!(counter["total"], 9);
    assert_eq!(counter["services"][0]["service_type"], "virtual_object");

    // Filters narrow the list and the counts the same way.
    let v = get_json(&mut fx, "/internal/ui/invocations?service=Counter&limit=100").await;
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 9);
    assert!(items.iter().all(|i| i["target"] == "Counter/c/add" && i["status"] == "succeeded"));
    let none = get_json(&mut fx, "/internal/ui/invocations?status=running,backing-off").await;
    assert_eq!(none["items"], json!([]));
    let one_id = seen[3].0.clone();
    let by_id = get_json(&mut fx, &format!("/internal/ui/invocations?id={one_id}")).await;
    assert_eq!(by_id["items"].as_array().unwrap().len(), 1);
    assert_eq!(by_id["items"][0]["id"], one_id);
    let after = seen[10].1;
    let newer = get_json(&mut fx, &format!("/internal/ui/counts?created_after={after}")).await;
    let expected = seen.iter().filter(|(_, t)| *t > after).count();
    assert_eq!(newer["total"], expected as u64);

    // Bad filters are refused with the parameter named, as admin errors.
    for (q, param) in [
        ("status=bogus", "status"),
        ("id=inv_nope", "id"),
        ("created_after=yesterday", "created_after"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=zz", "cursor"),
        ("service_type=actor", "service_type"),
        ("servce=Greeter", "filter"),
        ("order=sideways", "order"),
        ("cursor=a%C3%A9a", "cursor"),
    ] {
        for route in ["invocations", "counts"] {
            if route == "counts" && ["limit", "cursor", "order"].contains(&param) {
                continue;
            }
            let r = get(&mut fx, &format!("/internal/ui/{route}?{q}")).await;
            assert_eq!(r.status, 400, "{route}?{q}: {}", r.text());
            let msg = r.json()["message"].as_str().unwrap().to_string();
            assert!(msg.contains(&format!("'{param}'")), "{route}?{q}: {msg}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_detail_follows_the_blocked_by_chain_and_its_action_unblocks() {
    let mut fx = Fixture::start("ui_detail", Sdks::Ts).await;
    let caller = send(&mut fx, "/Caller/callStubborn", json!("ui-chain")).await;
    let path = format!("/internal/ui/invocations/{caller}");
    let d = until(&mut fx, &path, "a two-link chain", |d| {
        d["blocked_by"].as_array().is_some_and(|c| c.len() == 2)
            && d["blocked_by"][1]["status"] == "backing-off"
    })
    .await;
    let chain = d["blocked_by"].as_array().unwrap();
    assert_eq!(chain[0]["invocation_id"], caller);
    assert!(chain[0]["reason"].as_str().unwrap().contains("Stubborn/work"), "{d}");
    let callee = chain[1]["invocation_id"].as_str().unwrap().to_string();
    assert_eq!(chain[1]["target"], "Stubborn/work");
    assert!(chain[1]["reason"].as_str().unwrap().contains("not yet"), "{d}");
    assert_eq!(chain[1]["action"], json!({"op": "resume", "invocation_id": callee}));
    assert_eq!(d["callees"][0]["id"], callee);
    assert_eq!(d["callees"][0]["status"], "backing-off");
    let journal = d["journal"].as_array().unwrap();
    assert_eq!(journal[0]["type"], "Command: Input");
    assert_eq!(journal[0]["preview"], "\"ui-chain\"");
    let call = journal.iter().find(|e| e["type"] == "Command: Call").expect("call entry");
    assert_eq!(call["callee_id"], callee);
    assert_eq!(call["completed"], false);
    assert!(d["waiting_on"].as_array().unwrap().iter().any(|w| w["kind"] == "call"));

    // The callee knows its caller, its failures and when it retries.
    let c = get_json(&mut fx, &format!("/internal/ui/invocations/{callee}")).await;
    assert_eq!(c["caller"]["id"], caller);
    assert_eq!(c["invocation"]["invoked_by"], "service");
    assert!(c["invocation"]["retry_count"].as_u64().unwrap() >= 1, "{c}");
    assert!(c["events"].as_array().unwrap().iter().any(|e| e["kind"] == "TransientError"));

    // The root cause's action (retry now) after fixing the cause ends the whole chain.
    assert_eq!(fx.call("/Stubborn/allow", json!("ui-chain")).await.status, 200);
    let r = fx.admin("PATCH", &format!("/invocations/{callee}/resume"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let done = until(&mut fx, &path, "the caller to succeed", |d| {
        d["invocation"]["status"] == "succeeded"
    })
    .await;
    assert_eq!(done["blocked_by"], json!([]));
    assert_eq!(done["waiting_on"], json!([]));
    // Completed, the callee still names its caller (kept in its status, not only while the
    // caller waits).
    let c = get_json(&mut fx, &format!("/internal/ui/invocations/{callee}")).await;
    assert_eq!(c["invocation"]["status"], "succeeded");
    assert_eq!(c["invocation"]["invoked_by"], "service");
    assert_eq!(c["invocation"]["invoked_by_id"], caller);
    assert_eq!(c["caller"]["target"], "Caller/callStubborn");
    let by_caller =
        get_json(&mut fx, &format!("/internal/ui/invocations?invoked_by_id={caller}")).await;
    assert_eq!(by_caller["items"][0]["id"], callee);

    // A purged invocation is unknown.
    let gone = fx.call("/Greeter/greet", json!("gone")).await.invocation_id();
    let r = fx.admin("PATCH", &format!("/invocations/{gone}/purge"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The purge is applied a moment after it is accepted.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(&mut fx, &format!("/internal/ui/invocations/{gone}")).await;
        if r.status == 404 {
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(Instant::now() < deadline, "still there after the purge: {}", r.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = get(&mut fx, "/internal/ui/invocations/not-an-id").await;
    assert_eq!(r.status, 400, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_inboxes_and_the_chain_behind_a_lock() {
    let mut fx = Fixture::start("ui_lock", Sdks::Ts).await;
    let holder = send(&mut fx, "/Counter/held/hold", json!(20_000)).await;
    let queued = send(&mut fx, "/Counter/held/add", json!(1)).await;
    let o = until(&mut fx, "/internal/ui/objects/Counter/held", "the lock and the inbox", |o| {
        o["lock"]["invocation_id"] == holder.as_str()
            && o["inbox"].as_array().is_some_and(|i| i.len() == 1)
    })
    .await;
    assert_eq!(o["inbox"][0]["invocation_id"], queued);
    assert_eq!(o["inbox"][0]["handler"], "add");
    assert_eq!(o["inbox_total"], 1);
    let d = until(&mut fx, &format!("/internal/ui/invocations/{queued}"), "a chain", |d| {
        d["blocked_by"].as_array().is_some_and(|c| c.len() == 2)
    })
    .await;
    assert_eq!(d["invocation"]["status"], "pending");
    assert!(d["blocked_by"][0]["reason"].as_str().unwrap().contains("lock of Counter/held"));
    assert_eq!(d["blocked_by"][1]["invocation_id"], holder);
    assert!(d["blocked_by"][1]["reason"].as_str().unwrap().contains("timer"), "{d}");
    assert_eq!(d["waiting_on"][0]["kind"], "inbox");
    assert_eq!(d["waiting_on"][0]["invocation_id"], holder);
    // A plain service has no objects; an unknown one is 404.
    assert_eq!(get(&mut fx, "/internal/ui/objects/Greeter/x").await.status, 400);
    assert_eq!(get(&mut fx, "/internal/ui/objects/Nope/x").await.status, 404);
    // Killing the holder lets the queued one run.
    let r = fx.admin("PATCH", &format!("/invocations/{holder}/kill"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    until(&mut fx, &format!("/internal/ui/invocations/{queued}"), "the add to run", |d| {
        d["invocation"]["status"] == "succeeded"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_payloads_and_state_values_are_previewed_and_downloaded_whole() {
    let mut fx = Fixture::start("ui_big", Sdks::Ts).await;
    // A 4 MiB state value (the SDK message limit is about 8 MiB) and a 3 MiB input.
    let r = fx.call("/Seq/big/putLarge", json!({"name": "blob", "kib": 4096})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let s = get(&mut fx, "/internal/ui/state/Seq/big").await;
    assert_eq!(s.status, 200, "{}", s.text());
    assert!(s.body.len() < 16 * 1024, "the state answer carries the whole value");
    let v = s.json();
    let blob = v["entries"].as_array().unwrap().iter().find(|e| e["name"] == "blob").unwrap();
    assert_eq!(blob["size"], 4096 * 1024 + 2, "{blob}");
    assert_eq!(blob["truncated"], true);
    assert!(blob["preview"].as_str().unwrap().len() <= 4096);
    assert!(v["version"].as_str().is_some_and(|s| !s.is_empty()));
    let whole = get(&mut fx, "/internal/ui/state/Seq/big/blob").await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body.len(), 4096 * 1024 + 2);
    assert!(whole.header("content-disposition").is_some_and(|d| d.starts_with("attachment")));
    let keys = get_json(&mut fx, "/internal/ui/state/Seq").await;
    assert_eq!(keys["keys"], json!([{"key": "big", "entries": 1}]));
    assert_eq!(get(&mut fx, "/internal/ui/state/Seq/big/nope").await.status, 404);

    let input = "y".repeat(3 << 20);
    let id = fx.call("/Greeter/greet", json!(input)).await.invocation_id();
    let d = get(&mut fx, &format!("/internal/ui/invocations/{id}")).await;
    assert!(d.body.len() < 64 * 1024, "the detail carries a whole payload: {}", d.body.len());
    let entry = &d.json()["journal"][0];
    assert_eq!(entry["size"], (3 << 20) + 2);
    assert_eq!(entry["preview_truncated"], true);
    let head = get(&mut fx, &format!("/internal/ui/invocations/{id}/journal/0?max=65536")).await;
    assert_eq!(head.body.len(), 65536);
    assert_eq!(head.header("x-total-bytes"), Some(&*((3 << 20) + 2).to_string()));
    let all = get(&mut fx, &format!("/internal/ui/invocations/{id}/journal/0?download=1")).await;
    assert_eq!(all.body.len(), (3 << 20) + 2);
    assert_eq!(
        get(&mut fx, &format!("/internal/ui/invocations/{id}/journal/99")).await.status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_actions_by_filter_count_first_then_act_on_exactly_the_matches() {
    let mut fx = Fixture::start("ui_batch", Sdks::Ts).await;
    let mut scheduled = Vec::new();
    for i in 0..5 {
        let r = fx.call("/Greeter/greet/send?delay=1h", json!(format!("s{i}"))).await;
        assert_eq!(r.status, 202, "{}", r.text());
        scheduled.push(r.json()["invocationId"].as_str().unwrap().to_string());
    }
    fx.call("/Greeter/greet", json!("now")).await.invocation_id();
    let url = fx.admin_url("/internal/ui/batch/cancel");
    let post = |body: Value| (body.to_string(), url.clone());
    let (body, u) =
        post(json!({"filter": {"service": "Greeter", "status": "scheduled"}, "dry_run": true}));
    let ct = [("content-type", "application/json")];
    let r = fx.request("POST", &u, Some(body.into()), &ct, Duration::from_secs(20)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["matched"], 5);
    // A dry run changes nothing.
    let c = get_json(&mut fx, "/internal/ui/counts?service=Greeter").await;
    assert_eq!(c["by_status"], json!({"scheduled": 5, "succeeded": 1}));
    let (body, u) = post(json!({"filter": {"service": "Greeter", "status": ["scheduled"]}}));
    let r = fx.request("POST", &u, Some(body.into()), &ct, Duration::from_secs(20)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["matched"], 5, "{}", r.text());
    assert_eq!(r.json()["succeeded"], 5, "{}", r.text());
    assert_eq!(r.json()["failed"], json!([]));
    until(&mut fx, "/internal/ui/counts?service=Greeter", "the cancellations", |c| {
        c["by_status"] == json!({"failed": 5, "succeeded": 1})
    })
    .await;
    // Bad input is refused and changes nothing: a misspelt field or filter name, an empty
    // filter without `all`, an empty list, a null, a bad cursor, a bad deployment (in a dry
    // run too).
    let before = get_json(&mut fx, "/internal/ui/counts").await;
    for body in [
        json!({"filter": {"status": "sleepy"}}).to_string(),
        "{not json".to_string(),
        json!({"filters": {"service": "Greeter"}}).to_string(),
        json!({"filter": {"servce": "Greeter"}}).to_string(),
        json!({"filter": {}}).to_string(),
        json!({"filter": {"status": []}}).to_string(),
        json!({"filter": {"service": null}}).to_string(),
        json!({"filter": {"service": "Greeter"}, "cursor": "aéa"}).to_string(),
        json!({"filter": {"service": "Greeter", "status": [""]}}).to_string(),
        json!({"filter": {"service": ["Greeter", "Counter"]}}).to_string(),
        json!({"filter": {"status": ","}}).to_string(),
        json!({"filter": {"service": "Greeter"}, "dry_run": true, "deployment": "dp_nope"})
            .to_string(),
    ] {
        let u = fx.admin_url("/internal/ui/batch/restart-as-new");
        let r =
            fx.request("POST", &u, Some(body.clone().into()), &ct, Duration::from_secs(5)).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
    }
    assert_eq!(get_json(&mut fx, "/internal/ui/counts").await["by_status"], before["by_status"]);
    // Saying `all` counts everything.
    let body = json!({"filter": {}, "all": true, "dry_run": true}).to_string();
    let r = fx.request("POST", &url, Some(body.into()), &ct, Duration::from_secs(5)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["matched"], 6);
    let u = fx.admin_url("/internal/ui/batch/explode");
    let r = fx.request("POST", &u, Some("{}".into()), &ct, Duration::from_secs(5)).await;
    assert_eq!(r.status, 404);
}

/// An open event feed, read as raw HTTP (it never ends while the node runs).
struct Feed {
    stream: tokio::net::TcpStream,
    got: Vec<u8>,
}

impl Feed {
    /// Connects and reads until the feed's first event, so what happens after is seen.
    async fn open(admin: &str) -> Feed {
        use tokio::io::AsyncWriteExt;
        let addr = admin.trim_start_matches("http://").trim_end_matches('/').to_string();
        let mut stream = tokio::net::TcpStream::connect(&addr).await.expect("connect");
        let req = format!("GET /internal/ui/events HTTP/1.1\r\nhost: {addr}\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut feed = Feed { stream, got: Vec::new() };
        let hello = feed.read_until(Duration::from_secs(10), "event: hello").await;
        assert!(hello.contains("event: hello"), "{hello}");
        feed
    }

    /// Reads until `want` appears (or `wait` passes, or the stream ends); all read so far.
    async fn read_until(&mut self, wait: Duration, want: &str) -> String {
        use tokio::io::AsyncReadExt;
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&self.got).contains(want) {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                Ok(Ok(n)) => self.got.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&self.got).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_feed_pushes_changes_and_ends_when_the_node_stops() {
    let mut fx = Fixture::start("ui_events", Sdks::Ts).await;
    let admin = fx.admin_url("");
    let mut feed = Feed::open(&admin).await;
    fx.call("/Greeter/greet", json!("feed")).await.invocation_id();
    let got = feed.read_until(Duration::from_secs(20), "event: applied").await;
    assert!(got.contains("text/event-stream"), "{got}");
    assert!(got.contains("event: applied\ndata: {\"partitions\":["), "{got}");

    // An open feed does not hold the drain (shutdown-timeout, one minute): the node stops.
    let mut open = Feed::open(&admin).await;
    let open = tokio::spawn(async move { open.read_until(Duration::from_secs(30), "never").await });
    let started = Instant::now();
    fx.server.signal(libc::SIGTERM);
    let status = fx.server.wait_exit(Duration::from_secs(20)).await.expect("the node exits");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "stopping took {:?}", started.elapsed());
    // The stream ends (instead of running into read_until's 30 s).
    let rest = tokio::time::timeout(Duration::from_secs(5), open).await.expect("the feed ended");
    assert!(!rest.unwrap().contains("never"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingress_answers_cors_for_the_playground() {
    let mut fx = Fixture::start("ui_cors", Sdks::Ts).await;
    let url = fx.ingress_url("/Greeter/greet");
    let pre = fx
        .request(
            "OPTIONS",
            &url,
            None,
            &[
                ("origin", "http://127.0.0.1:9070"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type,idempotency-key"),
            ],
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(pre.status, 200);
    assert_eq!(pre.header("access-control-allow-origin"), Some("http://127.0.0.1:9070"));
    assert_eq!(pre.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(pre.header("access-control-allow-headers"), Some("content-type,idempotency-key"));
    let body = bytes::Bytes::from_static(b"\"cors\"");
    let headers = [("origin", "http://127.0.0.1:9070"), ("content-type", "application/json")];
    let r = fx.request("POST", &url, Some(body), &headers, Duration::from_secs(10)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some("http://127.0.0.1:9070"));
    assert_eq!(r.header("access-control-expose-headers"), Some("x-restate-id"));
    r.invocation_id();
    // Without an origin nothing changes.
    let plain = fx.call("/Greeter/greet", json!("x")).await;
    assert!(plain.header("access-control-allow-origin").is_none());
}
