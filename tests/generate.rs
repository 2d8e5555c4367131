//! Integration tests of the synthetic traffic generator (`cxpulse::generate`):
//! determinism, the contract's event shapes, delivery (disorder, lateness,
//! duplicates, malformed lines), rates, scenarios and streaming.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

mod common;

use cxpulse::generate::*;
use serde_json::{Map, Value};

const MINUTE: i64 = 60_000;

fn opts(seed: u64, rate: f64, duration_ms: i64) -> GenerateOptions {
    GenerateOptions {
        seed,
        rate,
        duration_ms,
        ..GenerateOptions::default()
    }
}

/// Options with enough late, duplicate and malformed records to measure.
fn noisy(seed: u64) -> GenerateOptions {
    GenerateOptions {
        late_fraction: 0.02,
        duplicate_fraction: 0.02,
        malformed_fraction: 0.02,
        ..opts(seed, 100.0, 20 * MINUTE)
    }
}

fn collect(o: &GenerateOptions) -> Vec<GeneratedRecord> {
    Generator::new(o.clone()).collect()
}

fn is_valid_kind(r: &GeneratedRecord) -> bool {
    matches!(r.kind, RecordKind::Normal | RecordKind::Late)
}

/// FNV-1a over the payloads (with separators) and the delivery metadata.
fn fingerprint(records: &[GeneratedRecord]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for r in records {
        eat(r.payload.as_bytes());
        eat(r.key.as_bytes());
        eat(r.stream.name().as_bytes());
        eat(r.kind.name().as_bytes());
        eat(&r.ts_ms.to_le_bytes());
        eat(&r.arrival_ms.to_le_bytes());
        eat(b"\n");
    }
    h
}

// ---------------------------------------------------------------------------
// A strict reading of the contract's section 1, used to check that valid
// events are valid and malformed lines are not.
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct Checked {
    event_id: String,
    ty: String,
    ts: i64,
    obj: Map<String, Value>,
}

impl Checked {
    fn str(&self, k: &str) -> Option<&str> {
        self.obj.get(k).and_then(Value::as_str)
    }
}

fn parse_ts(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| format!("ts {n} not an integer")),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|d| d.timestamp_millis())
            .map_err(|e| format!("ts {s:?}: {e}")),
        other => Err(format!("ts mistyped: {other}")),
    }
}

fn validate(line: &str) -> Result<Checked, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(obj) = v else {
        return Err("not an object".into());
    };
    let req_str = |k: &str| -> Result<&str, String> {
        match obj.get(k) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(format!("{k} mistyped: {other}")),
            None => Err(format!("{k} missing")),
        }
    };
    let opt_str = |k: &str| -> Result<Option<&str>, String> {
        match obj.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!("{k} mistyped: {other}")),
        }
    };
    let event_id = req_str("event_id")?.to_string();
    if event_id.is_empty() {
        return Err("event_id empty".into());
    }
    let ty = req_str("type")?.to_string();
    let ts = parse_ts(obj.get("ts").ok_or("ts missing")?)?;
    opt_str("region")?;
    opt_str("channel")?;
    match ty.as_str() {
        "ticket.opened" => {
            req_str("ticket_id")?;
            req_str("customer_id")?;
            req_str("channel")?;
        }
        "ticket.replied" => {
            req_str("ticket_id")?;
            let author = req_str("author")?;
            if !["agent", "customer", "bot"].contains(&author) {
                return Err(format!("author {author:?}"));
            }
            match obj.get("public") {
                None | Some(Value::Bool(_)) => {}
                Some(other) => return Err(format!("public mistyped: {other}")),
            }
            let agent = opt_str("agent_id")?;
            if author == "agent" && agent.is_none() {
                return Err("agent reply without agent_id".into());
            }
        }
        "ticket.resolved" => {
            req_str("ticket_id")?;
            opt_str("agent_id")?;
        }
        "ticket.reopened" => {
            req_str("ticket_id")?;
        }
        "chat.requested" => {
            req_str("chat_id")?;
            req_str("customer_id")?;
        }
        "chat.agent_joined" => {
            req_str("chat_id")?;
            req_str("agent_id")?;
        }
        "chat.ended" => {
            req_str("chat_id")?;
        }
        "survey.submitted" => {
            let survey = req_str("survey")?;
            let score = match obj.get("score") {
                Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.as_i64().unwrap(),
                Some(other) => return Err(format!("score mistyped: {other}")),
                None => return Err("score missing".into()),
            };
            let range = match survey {
                "csat" => 1..=5,
                "nps" => 0..=10,
                "ces" => 1..=7,
                other => return Err(format!("survey {other:?}")),
            };
            if !range.contains(&score) {
                return Err(format!("{survey} score {score} out of range"));
            }
            req_str("customer_id")?;
            opt_str("agent_id")?;
        }
        "checkout.started" => {
            req_str("checkout_id")?;
            req_str("customer_id")?;
        }
        "checkout.completed" => {
            req_str("checkout_id")?;
            req_str("order_id")?;
            let value = match obj.get("value") {
                Some(Value::Number(n)) => n.as_f64().unwrap(),
                Some(other) => return Err(format!("value mistyped: {other}")),
                None => return Err("value missing".into()),
            };
            if value < 0.0 {
                return Err(format!("negative value {value}"));
            }
        }
        "subscription.started" => {
            req_str("subscription_id")?;
            req_str("customer_id")?;
        }
        "subscription.renewed" | "subscription.cancelled" => {
            req_str("subscription_id")?;
        }
        other => return Err(format!("unknown type {other:?}")),
    }
    Ok(Checked {
        event_id,
        ty,
        ts,
        obj,
    })
}

fn entity_field(ty: &str) -> &'static str {
    match ty.split('.').next().unwrap() {
        "ticket" => "ticket_id",
        "chat" => "chat_id",
        "survey" => "customer_id",
        "checkout" => "checkout_id",
        "subscription" => "subscription_id",
        other => panic!("type family {other}"),
    }
}

fn stream_of(ty: &str) -> Stream {
    match ty.split('.').next().unwrap() {
        "ticket" => Stream::Tickets,
        "chat" => Stream::Chats,
        "survey" => Stream::Surveys,
        _ => Stream::Checkouts,
    }
}

/// Valid events (first deliveries only), sorted by event time.
fn valid_events(records: &[GeneratedRecord]) -> Vec<Checked> {
    let mut out: Vec<Checked> = records
        .iter()
        .filter(|r| is_valid_kind(r))
        .map(|r| validate(&r.payload).unwrap())
        .collect();
    out.sort_by_key(|c| c.ts);
    out
}

// ---------------------------------------------------------------------------

#[test]
fn same_seed_same_bytes_different_seed_different_bytes() {
    let small = |seed| GenerateOptions {
        duration_ms: 8 * MINUTE,
        ..noisy(seed)
    };
    let a = collect(&small(7));
    let b = collect(&small(7));
    assert!(a.len() > 40_000);
    assert_eq!(a, b);
    let c = collect(&small(8));
    assert_ne!(fingerprint(&a), fingerprint(&c));
    // Not merely shifted: the very first records already differ.
    let head = |v: &[GeneratedRecord]| {
        v[..100]
            .iter()
            .map(|r| r.payload.clone())
            .collect::<Vec<_>>()
    };
    assert_ne!(head(&a), head(&c));
}

#[test]
fn output_is_pinned_forever() {
    // The generator promises byte-identical output for a seed on every
    // platform and toolchain. If the traffic model is changed on purpose,
    // update these constants in the same change.
    let records: Vec<GeneratedRecord> = Generator::new(noisy(42)).take(5_000).collect();
    let first = &records[0];
    assert_eq!(
        fingerprint(&records),
        GOLDEN_FINGERPRINT,
        "first record: {}",
        first.payload
    );
}

const GOLDEN_FINGERPRINT: u64 = 10_420_431_637_895_181_889;

#[test]
fn options_change_delivery_not_traffic() {
    // Separate random streams: lateness, duplicates and malformed lines do not
    // change the logical traffic.
    let quiet = GenerateOptions {
        late_fraction: 0.0,
        duplicate_fraction: 0.0,
        malformed_fraction: 0.0,
        ..noisy(3)
    };
    let ids = |o: &GenerateOptions| {
        let mut v: Vec<(i64, String)> = collect(o)
            .into_iter()
            .filter(is_valid_kind)
            .map(|r| (r.ts_ms, r.payload))
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(&quiet), ids(&noisy(3)));
}

#[test]
fn valid_payloads_follow_the_contract() {
    let o = noisy(11);
    let records = collect(&o);
    let mut types = HashSet::new();
    let (mut int_ts, mut str_ts) = (0usize, 0usize);
    let mut offsets = HashSet::new();
    for r in records.iter().filter(|r| r.kind != RecordKind::Malformed) {
        assert!(r.malformed.is_none());
        assert!(!r.payload.contains('\n'));
        let c = validate(&r.payload).unwrap_or_else(|e| panic!("{e}: {}", r.payload));
        assert_eq!(c.ts, r.ts_ms, "{}", r.payload);
        assert!(
            c.ts >= o.start_ms && c.ts < o.end_ms(),
            "ts outside the run: {}",
            r.payload
        );
        assert!(c.event_id.starts_with("e-"));
        assert_eq!(r.stream, stream_of(&c.ty), "{}", r.payload);
        assert_eq!(Some(r.key.as_str()), c.str(entity_field(&c.ty)));
        match &c.obj["ts"] {
            Value::Number(_) => int_ts += 1,
            Value::String(s) => {
                str_ts += 1;
                let off = if s.ends_with('Z') {
                    "Z"
                } else {
                    &s[s.len() - 6..]
                };
                offsets.insert(off.to_string());
            }
            _ => unreachable!(),
        }
        if c.ty == "checkout.completed" {
            let text = r.payload.split("\"value\": ").nth(1).unwrap();
            let num = text.split([',', '}']).next().unwrap();
            assert_eq!(num.split('.').nth(1).map(str::len), Some(2), "{num}");
        }
        types.insert(c.ty.clone());
    }
    for t in common::EVENT_TYPES {
        assert!(types.contains(t), "no {t} generated");
    }
    let share = int_ts as f64 / (int_ts + str_ts) as f64;
    assert!((0.45..0.55).contains(&share), "integer ts share {share}");
    for off in ["Z", "+02:00", "-05:00"] {
        assert!(offsets.contains(off), "no {off} offset in {offsets:?}");
    }
    assert!(offsets.len() >= 5, "{offsets:?}");
}

#[test]
fn realistic_fields() {
    let records = collect(&opts(5, 100.0, 20 * MINUTE));
    let events = valid_events(&records);
    let (mut regions, mut no_region_tickets, mut tickets) = (HashSet::new(), 0, 0);
    let mut channels = HashSet::new();
    let mut authors = HashSet::new();
    let (mut private, mut resolved, mut resolved_without_agent) = (0, 0, 0);
    let (mut surveys, mut with_agent, mut with_channel) = (0, 0, 0);
    let mut survey_kinds = HashSet::new();
    let mut agents = HashSet::new();
    let mut zero_values = 0;
    for c in &events {
        if let Some(a) = c.str("agent_id") {
            agents.insert(a.to_string());
        }
        match c.ty.as_str() {
            "ticket.opened" => {
                tickets += 1;
                channels.insert(c.str("channel").unwrap().to_string());
                match c.str("region") {
                    Some(r) => {
                        regions.insert(r.to_string());
                    }
                    None => no_region_tickets += 1,
                }
            }
            "ticket.replied" => {
                authors.insert(c.str("author").unwrap().to_string());
                if c.obj.get("public") == Some(&Value::Bool(false)) {
                    private += 1;
                    assert_eq!(c.str("author"), Some("agent"));
                }
            }
            "ticket.resolved" => {
                resolved += 1;
                if c.str("agent_id").is_none() {
                    resolved_without_agent += 1;
                }
            }
            "survey.submitted" => {
                surveys += 1;
                survey_kinds.insert(c.str("survey").unwrap().to_string());
                with_agent += usize::from(c.obj.contains_key("agent_id"));
                with_channel += usize::from(c.obj.contains_key("channel"));
            }
            "checkout.started" => {
                if let Some(ch) = c.str("channel") {
                    assert!(["web", "app"].contains(&ch));
                }
            }
            "checkout.completed" => {
                zero_values += usize::from(c.obj["value"].as_f64() == Some(0.0));
            }
            _ => {}
        }
    }
    let expect = |set: &HashSet<String>, items: &[&str]| {
        for i in items {
            assert!(set.contains(*i), "{i} missing from {set:?}");
        }
    };
    expect(&channels, &["email", "phone", "web", "social", "chat"]);
    expect(&regions, &["us", "eu", "apac"]);
    expect(&authors, &["agent", "customer", "bot"]);
    expect(&survey_kinds, &["csat", "nps", "ces"]);
    let share = no_region_tickets as f64 / tickets as f64;
    assert!((0.03..0.15).contains(&share), "no-region share {share}");
    assert!(private > 0);
    assert!(resolved_without_agent > 0 && resolved_without_agent * 3 < resolved);
    assert!(with_agent * 10 > surveys * 6, "agent_id on most surveys");
    assert!(with_channel > surveys / 4 && with_channel < surveys * 3 / 4);
    assert_eq!(agents.len(), 40, "every agent works");
    assert!(zero_values > 0);
}

#[test]
fn entity_life_cycles_are_consistent() {
    let o = opts(9, 60.0, 45 * MINUTE);
    let records = collect(&o);
    let events = valid_events(&records);
    let mut ids = HashSet::new();
    let mut opened: HashMap<String, i64> = HashMap::new();
    let mut requested: HashMap<String, i64> = HashMap::new();
    let mut joined: HashMap<String, i64> = HashMap::new();
    let mut started: HashMap<String, i64> = HashMap::new();
    let mut completed = HashSet::new();
    let mut subs = HashSet::new();
    let mut cancelled = HashSet::new();
    let mut resolved_tickets = HashSet::new();
    let (mut short_abandons, mut abandons, mut slow_completions, mut reopens) = (0, 0, 0, 0);
    for c in &events {
        assert!(ids.insert(c.event_id.clone()), "event_id reused");
        let id = |k: &str| c.str(k).unwrap().to_string();
        match c.ty.as_str() {
            "ticket.opened" => assert!(opened.insert(id("ticket_id"), c.ts).is_none()),
            "ticket.replied" | "ticket.resolved" | "ticket.reopened" => {
                let t = id("ticket_id");
                assert!(opened[&t] <= c.ts, "{} before its ticket opened", c.ty);
                if c.ty == "ticket.resolved" {
                    resolved_tickets.insert(t);
                } else if c.ty == "ticket.reopened" {
                    assert!(resolved_tickets.contains(&t), "reopen of an open ticket");
                    reopens += 1;
                }
            }
            "chat.requested" => assert!(requested.insert(id("chat_id"), c.ts).is_none()),
            "chat.agent_joined" => {
                let ch = id("chat_id");
                assert!(requested[&ch] < c.ts);
                joined.entry(ch).or_insert(c.ts);
            }
            "chat.ended" => {
                let ch = id("chat_id");
                let req = requested[&ch];
                assert!(req < c.ts);
                if !joined.contains_key(&ch) {
                    abandons += 1;
                    if c.ts - req < 5_000 {
                        short_abandons += 1;
                    }
                }
            }
            "checkout.started" => assert!(started.insert(id("checkout_id"), c.ts).is_none()),
            "checkout.completed" => {
                let co = id("checkout_id");
                assert!(completed.insert(co.clone()), "completed twice");
                let wait = c.ts - started[&co];
                assert!(wait > 0);
                if wait > 30 * MINUTE {
                    slow_completions += 1;
                }
            }
            "subscription.started" => assert!(subs.insert(id("subscription_id"))),
            "subscription.renewed" | "subscription.cancelled" => {
                let s = id("subscription_id");
                assert!(subs.contains(&s), "{} of an unknown subscription", c.ty);
                assert!(!cancelled.contains(&s), "{} after cancellation", c.ty);
                if c.ty == "subscription.cancelled" {
                    cancelled.insert(s);
                }
            }
            _ => {}
        }
    }
    assert!(short_abandons > 0 && short_abandons < abandons);
    assert!(slow_completions > 0);
    assert!(reopens > 0);
    let conversion = completed.len() as f64 / started.len() as f64;
    assert!(
        (0.38..0.62).contains(&conversion),
        "conversion {conversion}"
    );
    let join_share = joined.len() as f64 / requested.len() as f64;
    assert!(join_share > 0.8, "join share {join_share}");
}

#[test]
fn malformed_lines_cover_every_kind_and_match_the_option() {
    let o = noisy(13);
    let records = collect(&o);
    let valid = records.iter().filter(|r| is_valid_kind(r)).count();
    let malformed: Vec<&GeneratedRecord> = records
        .iter()
        .filter(|r| r.kind == RecordKind::Malformed)
        .collect();
    let share = malformed.len() as f64 / valid as f64;
    assert!(
        (o.malformed_fraction * 0.85..o.malformed_fraction * 1.15).contains(&share),
        "malformed share {share}"
    );
    let mut kinds = HashSet::new();
    for r in &malformed {
        let kind = r.malformed.expect("malformed kind");
        kinds.insert(kind);
        assert!(!r.payload.contains('\n'));
        assert!(!r.key.is_empty());
        assert!(r.ts_ms >= o.start_ms && r.ts_ms < o.end_ms());
        let err = validate(&r.payload).expect_err(&r.payload);
        let expected = match kind {
            MalformedKind::NotJson => "not JSON",
            MalformedKind::NotObject => "not an object",
            MalformedKind::UnknownType => "unknown type",
            MalformedKind::MissingField => "missing",
            MalformedKind::MistypedField => "mistyped",
            MalformedKind::ScoreOutOfRange => "out of range",
            MalformedKind::NegativeValue => "negative",
            MalformedKind::UnparseableTs => "ts ",
            MalformedKind::EmptyEventId => "event_id empty",
            MalformedKind::AgentReplyWithoutAgentId => "without agent_id",
        };
        assert!(err.contains(expected), "{kind}: {err:?} for {}", r.payload);
    }
    assert_eq!(kinds.len(), MalformedKind::ALL.len(), "{kinds:?}");

    let none = collect(&GenerateOptions {
        malformed_fraction: 0.0,
        ..noisy(13)
    });
    assert!(none.iter().all(|r| r.kind != RecordKind::Malformed));
}

#[test]
fn delivery_disorder_lateness_and_duplicates() {
    let o = noisy(17);
    let records = collect(&o);
    let mut max_ts = i64::MIN;
    let mut last_arrival = i64::MIN;
    let mut first_delivery: HashMap<&str, &GeneratedRecord> = HashMap::new();
    let (mut normal, mut late, mut dups, mut far) = (0usize, 0usize, 0usize, 0usize);
    for r in &records {
        assert!(r.arrival_ms >= last_arrival, "records out of arrival order");
        last_arrival = r.arrival_ms;
        match r.kind {
            RecordKind::Normal => {
                normal += 1;
                assert!(
                    r.ts_ms >= max_ts.saturating_sub(o.disorder_ms),
                    "ts {} more than {} ms behind {}",
                    r.ts_ms,
                    o.disorder_ms,
                    max_ts
                );
                max_ts = max_ts.max(r.ts_ms);
                let delay = r.arrival_ms - r.ts_ms;
                assert!((0..o.disorder_ms).contains(&delay));
                if delay > o.disorder_ms / 2 {
                    far += 1;
                }
            }
            RecordKind::Late => {
                late += 1;
                let delay = r.arrival_ms - r.ts_ms;
                assert!(delay > o.disorder_ms && delay <= o.disorder_ms + o.late_by_ms);
            }
            RecordKind::Duplicate => {
                dups += 1;
                let first = first_delivery
                    .get(r.payload.as_str())
                    .expect("a duplicate follows its first delivery");
                assert_eq!(
                    (&first.key, first.stream, first.ts_ms),
                    (&r.key, r.stream, r.ts_ms)
                );
                assert!(r.arrival_ms > first.arrival_ms);
                assert!(r.arrival_ms <= first.arrival_ms + 1 + o.disorder_ms.max(1_000));
            }
            RecordKind::Malformed => {}
        }
        if is_valid_kind(r) {
            assert!(
                first_delivery.insert(&r.payload, r).is_none(),
                "event delivered twice without being marked duplicate"
            );
        }
    }
    let valid = (normal + late) as f64;
    let late_share = late as f64 / valid;
    let dup_share = dups as f64 / valid;
    assert!(
        (0.016..0.024).contains(&late_share),
        "late share {late_share}"
    );
    assert!(
        (0.016..0.024).contains(&dup_share),
        "duplicate share {dup_share}"
    );
    // The disorder is real: some on-time events use most of the bound.
    assert!(far > normal / 100, "{far} of {normal} far-displaced");
    // And the stream really is shuffled.
    let inversions = records
        .windows(2)
        .filter(|w| w[0].kind == RecordKind::Normal && w[1].kind == RecordKind::Normal)
        .filter(|w| w[1].ts_ms < w[0].ts_ms)
        .count();
    assert!(inversions > normal / 50, "{inversions} inversions");

    // Zero disorder: on-time events arrive in event-time order.
    let ordered = collect(&GenerateOptions {
        disorder_ms: 0,
        ..opts(17, 50.0, 10 * MINUTE)
    });
    let normal_ts: Vec<i64> = ordered
        .iter()
        .filter(|r| r.kind == RecordKind::Normal)
        .map(|r| r.ts_ms)
        .collect();
    assert!(normal_ts.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn rate_is_honoured_on_average() {
    for (seed, rate, minutes) in [(1, 100.0, 20), (2, 40.0, 90), (3, 500.0, 2)] {
        let o = opts(seed, rate, minutes * MINUTE);
        let mut g = Generator::new(o.clone());
        let valid = g.by_ref().filter(is_valid_kind).count() as f64;
        let expected = rate * (minutes * 60) as f64;
        assert!(
            (valid / expected - 1.0).abs() < 0.08,
            "seed {seed}: {valid} valid events, expected about {expected}"
        );
        let stats = g.stats();
        assert_eq!((stats.normal + stats.late) as f64, valid);
        assert!(g.next().is_none(), "fused");
    }
}

#[test]
fn wait_spike_slows_chats_in_the_middle_third() {
    let measure = |scenario: Scenario| {
        let o = GenerateOptions {
            scenario,
            ..opts(21, 60.0, 30 * MINUTE)
        };
        let third = o.duration_ms / 3;
        let seg = |ts: i64| ((ts - o.start_ms) / third).min(2) as usize;
        let events = valid_events(&collect(&o));
        let mut requested = HashMap::new();
        let mut joined = HashSet::new();
        let mut waits: [Vec<i64>; 3] = Default::default();
        let mut abandons = [0usize; 3];
        for c in &events {
            let chat = c.str("chat_id").map(str::to_string);
            match c.ty.as_str() {
                "chat.requested" => {
                    requested.insert(chat.unwrap(), c.ts);
                }
                "chat.agent_joined" => {
                    let chat = chat.unwrap();
                    if joined.insert(chat.clone()) {
                        let req = requested[&chat];
                        waits[seg(req)].push(c.ts - req);
                    }
                }
                "chat.ended" => {
                    let chat = chat.unwrap();
                    if !joined.contains(&chat) {
                        abandons[seg(requested[&chat])] += 1;
                    }
                }
                _ => {}
            }
        }
        let median = |v: &mut Vec<i64>| {
            v.sort_unstable();
            v[v.len() / 2] as f64
        };
        let wait_ratio = median(&mut waits[1]) / median(&mut waits[0]);
        let rate = |i: usize| abandons[i] as f64 / (abandons[i] + waits[i].len()) as f64;
        (wait_ratio, rate(1) / rate(0))
    };
    let (wait_ratio, abandon_ratio) = measure(Scenario::WaitSpike);
    assert!(wait_ratio > 2.5, "spike wait ratio {wait_ratio}");
    assert!(
        abandon_ratio > 3.0,
        "spike abandonment ratio {abandon_ratio}"
    );
    let (wait_ratio, abandon_ratio) = measure(Scenario::Steady);
    assert!(
        (0.8..1.25).contains(&wait_ratio),
        "steady wait ratio {wait_ratio}"
    );
    assert!(
        (0.7..1.4).contains(&abandon_ratio),
        "steady abandonment {abandon_ratio}"
    );
}

#[test]
fn churn_wave_multiplies_cancellations_in_the_middle_third() {
    let cancels = |scenario: Scenario| {
        let o = GenerateOptions {
            scenario,
            ..opts(23, 80.0, 30 * MINUTE)
        };
        let third = o.duration_ms / 3;
        let mut per_third = [0usize; 3];
        for r in Generator::new(o.clone()).filter(is_valid_kind) {
            if r.payload.contains("\"subscription.cancelled\"") {
                per_third[((r.ts_ms - o.start_ms) / third).min(2) as usize] += 1;
            }
        }
        per_third
    };
    let wave = cancels(Scenario::ChurnWave);
    assert!(wave[1] > 3 * wave[0] && wave[1] > 3 * wave[2], "{wave:?}");
    let steady = cancels(Scenario::Steady);
    let ratio = steady[1] as f64 / steady[0] as f64;
    assert!((0.6..1.6).contains(&ratio), "{steady:?}");
}

#[test]
fn streams_a_huge_run_without_materialising_it() {
    let o = GenerateOptions {
        rate: 1_000_000.0,
        duration_ms: 3_600_000,
        ..GenerateOptions::default()
    };
    let started = Instant::now();
    let mut g = Generator::new(o.clone());
    let first: Vec<GeneratedRecord> = g.by_ref().take(1_000).collect();
    let elapsed = started.elapsed();
    assert_eq!(first.len(), 1_000);
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert!(first.iter().all(|r| r.ts_ms < o.start_ms + 60_000));
    // Only a sliding window is held: a few seconds of events at most.
    assert!(g.open_entities() < 100_000, "{}", g.open_entities());
    assert!(
        g.queued_deliveries() < 2_000_000,
        "{}",
        g.queued_deliveries()
    );
}

#[test]
fn empty_and_tiny_runs() {
    let empty = collect(&opts(1, 200.0, 0));
    assert!(empty.is_empty());
    let tiny = collect(&opts(1, 1.0, 10_000));
    assert!(tiny.len() < 100);
    for r in tiny.iter().filter(|r| is_valid_kind(r)) {
        validate(&r.payload).unwrap();
    }
}

#[test]
fn scenario_names_round_trip() {
    for s in Scenario::ALL {
        assert_eq!(s.to_string().parse::<Scenario>(), Ok(s));
    }
    assert_eq!("wait-spike".parse(), Ok(Scenario::WaitSpike));
    assert_eq!("churn-wave".parse(), Ok(Scenario::ChurnWave));
    assert_eq!("steady".parse(), Ok(Scenario::Steady));
    assert_eq!("Wait_Spike".parse(), Ok(Scenario::WaitSpike));
    let err = "spiky".parse::<Scenario>().unwrap_err();
    assert_eq!(err.input(), "spiky");
    let msg = err.to_string();
    for name in ["spiky", "steady", "wait-spike", "churn-wave"] {
        assert!(msg.contains(name), "{msg}");
    }
    assert_eq!(Scenario::default(), Scenario::Steady);
}

#[test]
fn streams_and_kinds_have_names() {
    let names: Vec<&str> = Stream::all().iter().map(|s| s.name()).collect();
    assert_eq!(names, ["tickets", "chats", "surveys", "checkouts"]);
    assert_eq!(Stream::Checkouts.default_topic(), "cx.checkouts");
    assert_eq!(Stream::Tickets.to_string(), "tickets");
    assert_eq!(MalformedKind::ALL.len(), 10);
}

#[test]
fn defaults_and_validation() {
    let d = GenerateOptions::default();
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-02T00:00:00Z").unwrap();
    assert_eq!(d.start_ms, start.timestamp_millis());
    assert_eq!(d.start_ms, DEFAULT_START_MS);
    assert_eq!(
        (d.seed, d.rate, d.duration_ms, d.disorder_ms, d.late_by_ms),
        (42, 200.0, 3_600_000, 20_000, 240_000)
    );
    assert_eq!(
        (d.late_fraction, d.duplicate_fraction, d.malformed_fraction),
        (0.002, 0.002, 0.001)
    );
    assert_eq!((d.scenario, d.agents), (Scenario::Steady, 40));
    assert!(d.validate().is_ok());
    assert_eq!(d.end_ms(), d.start_ms + 3_600_000);

    let bad = [
        GenerateOptions {
            rate: 0.0,
            ..d.clone()
        },
        GenerateOptions {
            rate: f64::NAN,
            ..d.clone()
        },
        GenerateOptions {
            duration_ms: -1,
            ..d.clone()
        },
        GenerateOptions {
            disorder_ms: -5,
            ..d.clone()
        },
        GenerateOptions {
            late_fraction: 1.5,
            ..d.clone()
        },
        GenerateOptions {
            duplicate_fraction: -0.1,
            ..d.clone()
        },
        GenerateOptions {
            malformed_fraction: f64::INFINITY,
            ..d.clone()
        },
        GenerateOptions {
            agents: 0,
            ..d.clone()
        },
        GenerateOptions {
            start_ms: i64::MAX - 10,
            ..d.clone()
        },
    ];
    for o in bad {
        let err = Generator::try_new(o.clone()).expect_err("rejected");
        assert!(err.to_string().contains("invalid generate option"), "{err}");
        assert_eq!(o.validate(), Err(err));
    }
}

#[test]
fn agent_count_is_respected() {
    let o = GenerateOptions {
        agents: 3,
        ..opts(31, 100.0, 10 * MINUTE)
    };
    let agents: HashSet<String> = valid_events(&collect(&o))
        .iter()
        .filter_map(|c| c.str("agent_id").map(str::to_string))
        .collect();
    let expected: HashSet<String> = ["a-1", "a-2", "a-3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(agents, expected);
}
