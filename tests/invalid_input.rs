//! Invalid input (contract §1): every kind is rejected with a reason naming
//! the field, changes no KPI and no state, and never stops processing; and
//! the replay binary end to end on the worked example (§6).

mod common;

use common::*;
use serde_json::{json, Value as J};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// A valid event of each type at B+5 s, as JSON objects to break.
fn valid(kind: &str) -> J {
    let mut v = match kind {
        "ticket.opened" => json!({"ticket_id": "t", "customer_id": "c", "channel": "email"}),
        "ticket.replied" => json!({"ticket_id": "t", "author": "agent", "agent_id": "a"}),
        "ticket.resolved" => json!({"ticket_id": "t"}),
        "ticket.reopened" => json!({"ticket_id": "t"}),
        "chat.requested" => json!({"chat_id": "ch", "customer_id": "c"}),
        "chat.agent_joined" => json!({"chat_id": "ch", "agent_id": "a"}),
        "chat.ended" => json!({"chat_id": "ch"}),
        "survey.submitted" => json!({"survey": "csat", "score": 4, "customer_id": "c"}),
        "checkout.started" => json!({"checkout_id": "k", "customer_id": "c"}),
        "checkout.completed" => json!({"checkout_id": "k", "order_id": "o", "value": 9.5}),
        "subscription.started" => json!({"subscription_id": "s", "customer_id": "c"}),
        "subscription.renewed" => json!({"subscription_id": "s"}),
        "subscription.cancelled" => json!({"subscription_id": "s"}),
        other => panic!("{other}"),
    };
    v["event_id"] = json!(format!("inv-{kind}"));
    v["type"] = json!(kind);
    v["ts"] = json!(iso(5));
    v
}

fn with(kind: &str, key: &str, value: J) -> String {
    let mut v = valid(kind);
    v[key] = value;
    v.to_string()
}

fn without(kind: &str, key: &str) -> String {
    let mut v = valid(kind);
    v.as_object_mut().unwrap().remove(key);
    v.to_string()
}

/// Every invalid kind the contract lists, with the field the reason must
/// name (`None`: the input is not an object, there is no field).
fn invalid_cases() -> Vec<(String, Option<&'static str>)> {
    let mut c: Vec<(String, Option<&'static str>)> = vec![
        // not JSON
        ("not json at all".into(), None),
        (r#"{"event_id": "x", "type": "ticket.opened""#.into(), None),
        (r#"{"event_id": 'x'}"#.into(), None),
        // not an object
        ("[1, 2, 3]".into(), None),
        (r#""ticket.opened""#.into(), None),
        ("42".into(), None),
        ("null".into(), None),
        ("true".into(), None),
        // unknown / mistyped type
        (
            with("ticket.opened", "type", json!("ticket.closed")),
            Some("type"),
        ),
        (with("ticket.opened", "type", json!("")), Some("type")),
        (with("ticket.opened", "type", json!(3)), Some("type")),
        // common fields
        (without("ticket.opened", "event_id"), Some("event_id")),
        (
            with("ticket.opened", "event_id", json!("")),
            Some("event_id"),
        ),
        (
            with("ticket.opened", "event_id", json!(17)),
            Some("event_id"),
        ),
        (without("ticket.opened", "type"), Some("type")),
        (without("ticket.opened", "ts"), Some("ts")),
        (with("ticket.opened", "ts", json!("yesterday")), Some("ts")),
        (
            with("ticket.opened", "ts", json!("2026-13-45T10:00:00Z")),
            Some("ts"),
        ),
        (
            with("ticket.opened", "ts", json!("2026-11-23T10:00:05")),
            Some("ts"),
        ),
        (with("ticket.opened", "ts", json!("2026-11-23")), Some("ts")),
        (with("ticket.opened", "ts", json!("")), Some("ts")),
        (with("ticket.opened", "ts", json!(true)), Some("ts")),
        (with("ticket.opened", "ts", json!(1.7954e12)), Some("ts")),
        (with("ticket.opened", "region", json!(5)), Some("region")),
        (
            with("survey.submitted", "channel", json!(true)),
            Some("channel"),
        ),
        // tickets
        (without("ticket.opened", "ticket_id"), Some("ticket_id")),
        (
            with("ticket.opened", "ticket_id", json!(12)),
            Some("ticket_id"),
        ),
        (without("ticket.opened", "customer_id"), Some("customer_id")),
        (without("ticket.opened", "channel"), Some("channel")),
        (without("ticket.replied", "ticket_id"), Some("ticket_id")),
        (without("ticket.replied", "author"), Some("author")),
        (
            with("ticket.replied", "author", json!("robot")),
            Some("author"),
        ),
        (without("ticket.replied", "agent_id"), Some("agent_id")),
        (
            with("ticket.replied", "agent_id", json!(7)),
            Some("agent_id"),
        ),
        (
            with("ticket.replied", "public", json!("yes")),
            Some("public"),
        ),
        (with("ticket.replied", "public", json!(1)), Some("public")),
        (without("ticket.resolved", "ticket_id"), Some("ticket_id")),
        (without("ticket.reopened", "ticket_id"), Some("ticket_id")),
        // chats
        (without("chat.requested", "chat_id"), Some("chat_id")),
        (
            without("chat.requested", "customer_id"),
            Some("customer_id"),
        ),
        (without("chat.agent_joined", "chat_id"), Some("chat_id")),
        (without("chat.agent_joined", "agent_id"), Some("agent_id")),
        (without("chat.ended", "chat_id"), Some("chat_id")),
        // surveys
        (without("survey.submitted", "survey"), Some("survey")),
        (
            with("survey.submitted", "survey", json!("ces2")),
            Some("survey"),
        ),
        (without("survey.submitted", "score"), Some("score")),
        (with("survey.submitted", "score", json!("5")), Some("score")),
        (with("survey.submitted", "score", json!(4.5)), Some("score")),
        (
            without("survey.submitted", "customer_id"),
            Some("customer_id"),
        ),
        // checkouts
        (
            without("checkout.started", "checkout_id"),
            Some("checkout_id"),
        ),
        (
            without("checkout.started", "customer_id"),
            Some("customer_id"),
        ),
        (
            without("checkout.completed", "checkout_id"),
            Some("checkout_id"),
        ),
        (without("checkout.completed", "order_id"), Some("order_id")),
        (without("checkout.completed", "value"), Some("value")),
        (
            with("checkout.completed", "value", json!("12.5")),
            Some("value"),
        ),
        (
            with("checkout.completed", "value", json!(-0.01)),
            Some("value"),
        ),
        (
            with("checkout.completed", "value", json!(-3)),
            Some("value"),
        ),
        // subscriptions
        (
            without("subscription.started", "subscription_id"),
            Some("subscription_id"),
        ),
        (
            without("subscription.started", "customer_id"),
            Some("customer_id"),
        ),
        (
            without("subscription.renewed", "subscription_id"),
            Some("subscription_id"),
        ),
        (
            without("subscription.cancelled", "subscription_id"),
            Some("subscription_id"),
        ),
    ];
    // Scores out of range for each survey, and 7.5.
    for (survey, score) in [
        ("csat", json!(0)),
        ("csat", json!(6)),
        ("nps", json!(-1)),
        ("nps", json!(11)),
        ("ces", json!(0)),
        ("ces", json!(8)),
        ("ces", json!(7.5)),
    ] {
        let mut v = valid("survey.submitted");
        v["survey"] = json!(survey);
        v["score"] = score;
        c.push((v.to_string(), Some("score")));
    }
    c
}

#[test]
fn every_invalid_kind_is_rejected_naming_the_field() {
    let cases = invalid_cases();
    let lines: Vec<&str> = cases.iter().map(|(l, _)| l.as_str()).collect();
    let out = run(&tumbling10(ALL_SETS), &lines);
    assert!(out.records.is_empty(), "{:?}", out.records.first());
    assert_eq!(out.counters.invalid, cases.len() as u64);
    assert_eq!(out.counters.accepted, 0);
    assert_eq!(out.invalid.len(), cases.len());
    for (i, (line, field)) in cases.iter().enumerate() {
        let (no, err) = &out.invalid[i];
        assert_eq!(*no, i + 1, "line numbers are 1-based");
        let reason = err.to_string();
        assert!(!reason.is_empty());
        // Not JSON / not an object: there is no field to name; the reason
        // is still given (checked above).
        if let Some(f) = field {
            assert_eq!(err.field(), Some(*f), "line {line}: {reason}");
            assert!(
                reason.contains(f),
                "reason {reason:?} must name {f} ({line})"
            );
        }
    }
}

#[test]
fn the_valid_templates_are_valid() {
    // Guards the test above: each template is accepted as is, so the
    // rejections come from the one broken field.
    let kinds = common::EVENT_TYPES;
    let lines: Vec<String> = kinds.iter().map(|k| valid(k).to_string()).collect();
    let out = run(&tumbling10(OVERALL), &lines);
    assert!(out.invalid.is_empty(), "{:?}", out.invalid);
    assert_eq!(out.counters.accepted, kinds.len() as u64);
    // Boundary values that are valid.
    let mut ok = Vec::new();
    for (survey, score) in [
        ("csat", 1),
        ("csat", 5),
        ("nps", 0),
        ("nps", 10),
        ("ces", 1),
        ("ces", 7),
    ] {
        let mut v = valid("survey.submitted");
        v["event_id"] = json!(format!("{survey}{score}"));
        v["survey"] = json!(survey);
        v["score"] = json!(score);
        ok.push(v.to_string());
    }
    let mut v = valid("checkout.completed");
    v["value"] = json!(0);
    ok.push(v.to_string());
    let mut v = valid("ticket.replied");
    v["event_id"] = json!("bot-reply");
    v["author"] = json!("bot");
    v.as_object_mut().unwrap().remove("agent_id");
    v["extra_unknown_field"] = json!({"nested": [1, 2]});
    ok.push(v.to_string());
    let mut v = valid("ticket.opened");
    v["ts"] = json!("2026-11-23T11:00:05+01:00");
    v["event_id"] = json!("offset");
    ok.push(v.to_string());
    let out = run(&tumbling10(OVERALL), &ok);
    assert!(out.invalid.is_empty(), "{:?}", out.invalid);
}

#[test]
fn non_utf8_input_is_invalid_and_does_not_stop_processing() {
    let cfg = tumbling10(OVERALL);
    let good = valid("ticket.opened").to_string();
    let lines: Vec<&[u8]> = vec![b"\xff\xfe{\"a\":1}", good.as_bytes()];
    let out = cxpulse::replay::replay_lines(&cfg, lines).unwrap();
    assert_eq!(out.invalid.len(), 1);
    assert_eq!(out.invalid[0].0, 1);
    assert_count(Rows::of(&out).get("tickets_opened", 0, &[]), 1);
}

/// A valid scenario over 25 minutes with late events, a duplicate and
/// timers: a good test bed for "invalid lines change nothing".
fn valid_scenario() -> Vec<String> {
    let mut ev = Events::new();
    for i in 0..12i64 {
        let t = i * 97;
        ev.add(
            "ticket.opened",
            t,
            json!({"ticket_id": format!("t{i}"), "customer_id": "c", "channel": "email", "region": "eu"}),
        );
        ev.add(
            "ticket.replied",
            t + 40,
            json!({"ticket_id": format!("t{i}"), "author": "agent", "agent_id": format!("a{}", i % 3)}),
        );
        ev.add(
            "checkout.started",
            t + 41,
            json!({"checkout_id": format!("k{i}"), "customer_id": "c"}),
        );
        if i % 2 == 0 {
            ev.add(
                "checkout.completed",
                t + 42,
                json!({"checkout_id": format!("k{i}"), "order_id": "o", "value": i}),
            );
        }
        ev.add(
            "survey.submitted",
            t + 43,
            json!({"survey": "nps", "score": i % 11, "customer_id": "c"}),
        );
        ev.add(
            "subscription.started",
            t + 44,
            json!({"subscription_id": format!("s{i}"), "customer_id": "c"}),
        );
        if i % 3 == 1 {
            ev.add(
                "subscription.cancelled",
                t + 700,
                json!({"subscription_id": format!("s{i}")}),
            );
        }
    }
    let mut lines = ev.lines;
    lines.sort_by_key(|l| {
        let v: J = serde_json::from_str(l).unwrap();
        v["ts"].as_str().unwrap().to_string()
    });
    // Watermark to B+1800 (window 2 fires), then a late one within the
    // allowed lateness (a revision) and a duplicate.
    lines.push(event_line(
        "last",
        "chat.requested",
        json!(iso(1830)),
        json!({"chat_id": "z", "customer_id": "c"}),
    ));
    // (window 2 already has renewal_rate rows from two cancellations.)
    lines.push(event_line(
        "late-1",
        "subscription.renewed",
        json!(iso(1500)),
        json!({"subscription_id": "s2"}),
    ));
    let dup = lines[3].clone();
    lines.push(dup);
    lines
}

/// Invalid lines built to tempt an engine into changing state: a far-future
/// `ts` (would move the watermark), an `event_id` that a later valid event
/// uses (would make it a duplicate), a ticket that a later valid reply
/// names (would un-orphan it).
fn tempting_invalid_lines() -> Vec<String> {
    let mut v: Vec<String> = invalid_cases().into_iter().map(|(l, _)| l).collect();
    let mut far = valid("ticket.opened");
    far["ts"] = json!(iso(36_000));
    far.as_object_mut().unwrap().remove("customer_id");
    v.push(far.to_string());
    let mut steal = valid("subscription.renewed");
    steal["event_id"] = json!("late-1");
    steal["ts"] = json!(iso(1500));
    steal["subscription_id"] = json!(false);
    v.push(steal.to_string());
    let mut orphan_maker = valid("ticket.opened");
    orphan_maker["ticket_id"] = json!("tx");
    orphan_maker["score"] = json!("irrelevant");
    orphan_maker["value"] = json!(-1);
    orphan_maker.as_object_mut().unwrap().remove("customer_id");
    v.push(orphan_maker.to_string());
    let mut sub = valid("subscription.started");
    sub["subscription_id"] = json!("s1");
    sub["ts"] = json!(1_000);
    sub["region"] = json!(["eu"]);
    v.push(sub.to_string());
    v
}

#[test]
fn invalid_lines_anywhere_change_no_record() {
    let cfg = tumbling10(ALL_SETS);
    let base_lines = valid_scenario();
    let base = run(&cfg, &base_lines);
    assert!(base.invalid.is_empty());
    assert!(base.counters.late >= 1 && base.counters.duplicates == 1);
    assert!(base.records.iter().any(|r| r.revision > 0), "has revisions");
    let want = canon_all(&base);
    let bad = tempting_invalid_lines();
    for seed in 0..12u64 {
        let mut rng = Rng(seed + 99);
        let mut lines = base_lines.clone();
        let mut inserted = 0;
        for b in &bad {
            // Seed 0: all at the front; 1: all at the end; else anywhere.
            let at = match seed {
                0 => 0,
                1 => lines.len(),
                _ => rng.below(lines.len() + 1),
            };
            lines.insert(at, b.clone());
            inserted += 1;
        }
        let out = run(&cfg, &lines);
        assert_eq!(out.invalid.len(), inserted, "seed {seed}");
        assert_same_rows(&canon_all(&out), &want, &format!("seed {seed}"));
        let mut c = out.counters.clone();
        c.invalid -= inserted as u64;
        assert_eq!(c, base.counters, "seed {seed}");
    }
}

#[test]
fn an_invalid_opened_event_creates_no_state() {
    let mut ev = Events::new();
    let mut bad = valid("ticket.opened");
    bad["ticket_id"] = json!("tx");
    bad.as_object_mut().unwrap().remove("customer_id");
    ev.raw(bad.to_string());
    ev.add(
        "ticket.replied",
        50,
        json!({"ticket_id": "tx", "author": "agent", "agent_id": "a"}),
    );
    let out = ev.run(&tumbling10(OVERALL));
    assert_eq!(out.counters.invalid, 1);
    assert_eq!(out.counters.orphans, 1);
    assert!(out.records.is_empty());
}

// ------------------------------------------------------------ end to end

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/example")
}

type RowKey = (String, String, String, String, Vec<(String, String)>);

fn row_key(r: &J) -> RowKey {
    let mut g: Vec<(String, String)> = r["group"]
        .as_object()
        .unwrap_or_else(|| panic!("group must be an object: {r}"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    g.sort();
    (
        r["kpi"].as_str().unwrap().to_string(),
        r["window"].as_str().unwrap().to_string(),
        r["window_start"].as_str().unwrap().to_string(),
        r["window_end"].as_str().unwrap().to_string(),
        g,
    )
}

/// Latest revision of each row.
fn latest(text: &str) -> BTreeMap<RowKey, J> {
    let mut rows: BTreeMap<RowKey, J> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let r: J = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let rev = r["revision"].as_u64().unwrap_or(0);
        let k = row_key(&r);
        match rows.get(&k) {
            Some(prev) if prev["revision"].as_u64().unwrap_or(0) > rev => {}
            _ => {
                rows.insert(k, r);
            }
        }
    }
    rows
}

fn rel_close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()) + 1e-12
}

fn compare_with_expected(actual: &BTreeMap<RowKey, J>, expected: &BTreeMap<RowKey, J>) {
    let mut problems: Vec<String> = Vec::new();
    for (k, e) in expected {
        let Some(a) = actual.get(k) else {
            problems.push(format!("missing row {k:?}"));
            continue;
        };
        if a["count"] != e["count"] {
            problems.push(format!("{k:?}: count {} want {}", a["count"], e["count"]));
        }
        if a.get("numerator") != e.get("numerator") {
            problems.push(format!(
                "{k:?}: numerator {:?} want {:?}",
                a.get("numerator"),
                e.get("numerator")
            ));
        }
        let (av, ev) = (a["value"].as_f64().unwrap(), e["value"].as_f64().unwrap());
        if !rel_close(av, ev, 1e-9) {
            problems.push(format!("{k:?}: value {av} want {ev}"));
        }
        match (a.get("quantiles"), e.get("quantiles")) {
            (None, None) => {}
            (Some(aq), Some(eq)) => {
                for q in ["p50", "p90", "p99"] {
                    let (x, y) = (aq[q].as_f64().unwrap(), eq[q].as_f64().unwrap());
                    if !rel_close(x, y, 0.01) {
                        problems.push(format!("{k:?}: {q} {x} want {y} (±1%)"));
                    }
                }
            }
            (aq, eq) => problems.push(format!("{k:?}: quantiles {aq:?} want {eq:?}")),
        }
    }
    for k in actual.keys() {
        if !expected.contains_key(k) {
            problems.push(format!("extra row {k:?}: {}", actual[k]));
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences (of {} expected rows):\n{}",
        problems.len(),
        expected.len(),
        problems
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn replay_binary_reproduces_the_worked_example() {
    let dir = example_dir();
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("e2e-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let output = tmp.join("kpis.jsonl");
    let dead = tmp.join("dead.jsonl");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_cxpulse"))
        .arg("replay")
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("--input")
        .arg(dir.join("events.jsonl"))
        .arg("--output")
        .arg(&output)
        .arg("--dead-letter")
        .arg(&dead)
        .env_remove("RUST_LOG")
        .output()
        .expect("run cxpulse replay");
    assert!(
        status.status.success(),
        "exit {:?}\n{}",
        status.status,
        String::from_utf8_lossy(&status.stderr)
    );
    let expected_text = std::fs::read_to_string(dir.join("expected.jsonl")).unwrap();
    let expected = latest(&expected_text);
    assert_eq!(expected.len(), 1110, "the example has 1,110 rows");
    let actual = latest(&std::fs::read_to_string(&output).unwrap());
    compare_with_expected(&actual, &expected);

    // Dead letters: one JSON object per invalid line, with `line` and `reason`.
    let input = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let input_lines: HashSet<&str> = input.lines().collect();
    let dead_text = std::fs::read_to_string(&dead).unwrap();
    let letters: Vec<J> = dead_text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(letters.len(), 36);
    for d in &letters {
        assert!(d.is_object(), "{d}");
        let reason = d["reason"]
            .as_str()
            .unwrap_or_else(|| panic!("no reason: {d}"));
        assert!(!reason.is_empty());
        match &d["line"] {
            J::String(s) => assert!(input_lines.contains(s.as_str()), "not an input line: {d}"),
            J::Number(n) => {
                let n = n.as_u64().unwrap();
                assert!((1..=1561).contains(&n), "{d}")
            }
            other => panic!("`line` missing or odd: {other} in {d}"),
        }
    }
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn replay_exits_zero_on_a_file_of_only_invalid_lines() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bad-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let input = tmp.join("in.jsonl");
    let lines: Vec<String> = invalid_cases().into_iter().map(|(l, _)| l).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let output = tmp.join("out.jsonl");
    let dead = tmp.join("dead.jsonl");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_cxpulse"))
        .arg("replay")
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .arg("--dead-letter")
        .arg(&dead)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert_eq!(std::fs::read_to_string(&output).unwrap().trim(), "");
    let dl = std::fs::read_to_string(&dead).unwrap();
    assert_eq!(dl.lines().count(), lines.len());
    for (d, (_, field)) in dl.lines().zip(invalid_cases()) {
        let d: J = serde_json::from_str(d).unwrap();
        if let Some(f) = field {
            assert!(
                d["reason"].as_str().unwrap().contains(f),
                "{d} should name {f}"
            );
        }
    }
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn library_replay_of_the_example_matches_its_readme() {
    let dir = example_dir();
    let cfg = cxpulse::config::Config::load(Some(&dir.join("config.toml"))).unwrap();
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1561);
    let out = run(&cfg, &lines);
    assert_eq!(out.invalid.len(), 36, "36 invalid lines");
    assert_eq!(out.counters.duplicates, 3, "three duplicate deliveries");
    assert!(out.counters.late > 0, "a few late events");
    for (_, e) in &out.invalid {
        assert!(!e.to_string().is_empty());
    }
    // Inserting more invalid lines anywhere changes no record.
    let want = canon_all(&out);
    let bad = tempting_invalid_lines();
    let mut rng = Rng(4242);
    let mut more: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    for b in &bad {
        let at = rng.below(more.len() + 1);
        more.insert(at, b.clone());
    }
    let out2 = run(&cfg, &more);
    assert_eq!(out2.invalid.len(), 36 + bad.len());
    assert_same_rows(&canon_all(&out2), &want, "example + invalid lines");
}
