//! Properties over small random valid event sets (a few tickets, chats,
//! checkouts, surveys and subscriptions in a 30-minute span):
//!
//! - disorder within `max_out_of_orderness` never changes the final rows;
//! - duplicate deliveries never change any emission;
//! - the timestamp format (epoch ms, RFC 3339 with any offset) changes nothing;
//! - a 10m/5m hopping window's rows are the merge of the two tumbling 5m
//!   windows it covers, for everything additive.

mod common;

use common::*;
use cxpulse::engine::lookahead::Lookahead;
use cxpulse::engine::Engine;
use cxpulse::record::KpiRecord;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value as J};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const CHANNELS: [&str; 3] = ["email", "chat", "web"];
const REGIONS: [&str; 3] = ["eu", "us", "apac"];

#[derive(Debug, Clone)]
enum Ent {
    Ticket {
        open: i64,
        ch: u8,
        region: Option<u8>,
        /// (delay s, author 0 agent / 1 customer / 2 bot, public, agent)
        replies: Vec<(i64, u8, bool, u8)>,
        resolve: Option<(i64, Option<u8>)>,
        reopen: Option<i64>,
        resolve2: Option<i64>,
    },
    Chat {
        req: i64,
        region: Option<u8>,
        join: Option<(i64, u8)>,
        join2: Option<(i64, u8)>,
        end: Option<i64>,
    },
    Checkout {
        start: i64,
        ch: Option<u8>,
        region: Option<u8>,
        complete: Option<(i64, u32, Option<u8>)>,
    },
    Survey {
        t: i64,
        kind: u8,
        score: u8,
        agent: Option<u8>,
        ch: Option<u8>,
        region: Option<u8>,
    },
    Sub {
        start: i64,
        region: Option<u8>,
        renew: Option<i64>,
        cancel: Option<i64>,
    },
}

fn ent() -> impl Strategy<Value = Ent> {
    let t0 = 0i64..1800;
    prop_oneof![
        (
            t0.clone(),
            0u8..3,
            prop::option::of(0u8..3),
            prop::collection::vec((1i64..120, 0u8..3, any::<bool>(), 0u8..4), 0..4),
            prop::option::of((1i64..300, prop::option::of(0u8..4))),
            prop::option::of(1i64..200),
            prop::option::of(1i64..200),
        )
            .prop_map(|(open, ch, region, replies, resolve, reopen, resolve2)| {
                Ent::Ticket {
                    open,
                    ch,
                    region,
                    replies,
                    resolve,
                    reopen,
                    resolve2,
                }
            }),
        (
            t0.clone(),
            prop::option::of(0u8..3),
            prop::option::of((1i64..150, 0u8..4)),
            prop::option::of((1i64..60, 0u8..4)),
            prop::option::of(prop_oneof![1i64..8, 1i64..400]),
        )
            .prop_map(|(req, region, join, join2, end)| Ent::Chat {
                req,
                region,
                join,
                join2,
                end
            }),
        (
            t0.clone(),
            prop::option::of(0u8..3),
            prop::option::of(0u8..3),
            prop::option::of((
                prop_oneof![1i64..600, 1700i64..1900],
                0u32..50_000,
                prop::option::of(0u8..3)
            )),
        )
            .prop_map(|(start, ch, region, complete)| Ent::Checkout {
                start,
                ch,
                region,
                complete
            }),
        (
            t0.clone(),
            0u8..3,
            any::<u8>(),
            prop::option::of(0u8..4),
            prop::option::of(0u8..3),
            prop::option::of(0u8..3),
        )
            .prop_map(|(t, kind, score, agent, ch, region)| Ent::Survey {
                t,
                kind,
                score,
                agent,
                ch,
                region
            }),
        (
            t0,
            prop::option::of(0u8..3),
            prop::option::of(1i64..700),
            prop::option::of(1i64..900),
        )
            .prop_map(|(start, region, renew, cancel)| Ent::Sub {
                start,
                region,
                renew,
                cancel
            }),
    ]
}

/// One event: time in ms after B, and its fields (without `ts`).
struct Ev {
    ms: i64,
    id: String,
    kind: &'static str,
    fields: J,
}

fn set(f: &mut J, key: &str, v: Option<&str>) {
    if let Some(v) = v {
        f[key] = json!(v);
    }
}

/// Turns entities into events with distinct timestamps: second-resolution
/// times plus a distinct millisecond per event (< 1000 events), so that no
/// two events tie and each entity's events stay in order.
fn events(ents: &[Ent]) -> Vec<Ev> {
    let mut out: Vec<Ev> = Vec::new();
    let push = |out: &mut Vec<Ev>, secs: i64, kind: &'static str, fields: J| {
        let n = out.len() as i64;
        out.push(Ev {
            ms: secs * 1000 + n,
            id: format!("p{n}"),
            kind,
            fields,
        });
    };
    let ch = |i: Option<u8>| i.map(|i| CHANNELS[i as usize % 3]);
    let rg = |i: Option<u8>| i.map(|i| REGIONS[i as usize % 3]);
    for (e, ent) in ents.iter().enumerate() {
        match ent {
            Ent::Ticket {
                open,
                ch: c,
                region,
                replies,
                resolve,
                reopen,
                resolve2,
            } => {
                let id = format!("t{e}");
                let mut t = *open;
                let mut f =
                    json!({"ticket_id": id, "customer_id": "c", "channel": CHANNELS[*c as usize]});
                set(&mut f, "region", rg(*region));
                push(&mut out, t, "ticket.opened", f);
                for &(d, author, public, agent) in replies {
                    t += d;
                    let a = ["agent", "customer", "bot"][author as usize % 3];
                    let mut f = json!({"ticket_id": id, "author": a, "public": public});
                    if a == "agent" {
                        f["agent_id"] = json!(format!("a{agent}"));
                    }
                    push(&mut out, t, "ticket.replied", f);
                }
                if let Some((d, agent)) = resolve {
                    t += d;
                    let mut f = json!({"ticket_id": id});
                    if let Some(a) = agent {
                        f["agent_id"] = json!(format!("a{a}"));
                    }
                    push(&mut out, t, "ticket.resolved", f);
                }
                if let Some(d) = reopen {
                    t += d;
                    push(&mut out, t, "ticket.reopened", json!({"ticket_id": id}));
                    if let Some(d) = resolve2 {
                        t += d;
                        push(&mut out, t, "ticket.resolved", json!({"ticket_id": id}));
                    }
                }
            }
            Ent::Chat {
                req,
                region,
                join,
                join2,
                end,
            } => {
                let id = format!("c{e}");
                let mut t = *req;
                let mut f = json!({"chat_id": id, "customer_id": "c"});
                set(&mut f, "region", rg(*region));
                push(&mut out, t, "chat.requested", f);
                if let Some((d, a)) = join {
                    t += d;
                    push(
                        &mut out,
                        t,
                        "chat.agent_joined",
                        json!({"chat_id": id, "agent_id": format!("a{a}")}),
                    );
                    if let Some((d, a)) = join2 {
                        t += d;
                        push(
                            &mut out,
                            t,
                            "chat.agent_joined",
                            json!({"chat_id": id, "agent_id": format!("a{a}")}),
                        );
                    }
                }
                if let Some(d) = end {
                    t += d;
                    push(&mut out, t, "chat.ended", json!({"chat_id": id}));
                }
            }
            Ent::Checkout {
                start,
                ch: c,
                region,
                complete,
            } => {
                let id = format!("k{e}");
                let mut f = json!({"checkout_id": id, "customer_id": "c"});
                set(&mut f, "channel", ch(*c));
                set(&mut f, "region", rg(*region));
                push(&mut out, *start, "checkout.started", f);
                if let Some((d, cents, c2)) = complete {
                    let mut f = json!({"checkout_id": id, "order_id": format!("o{e}"),
                                       "value": *cents as f64 / 100.0});
                    set(&mut f, "channel", ch(*c2));
                    set(&mut f, "region", rg(*region));
                    push(&mut out, start + d, "checkout.completed", f);
                }
            }
            Ent::Survey {
                t,
                kind,
                score,
                agent,
                ch: c,
                region,
            } => {
                let (survey, score) = match kind % 3 {
                    0 => ("csat", 1 + score % 5),
                    1 => ("nps", score % 11),
                    _ => ("ces", 1 + score % 7),
                };
                let mut f = json!({"survey": survey, "score": score, "customer_id": "c"});
                if let Some(a) = agent {
                    f["agent_id"] = json!(format!("a{a}"));
                }
                set(&mut f, "channel", ch(*c));
                set(&mut f, "region", rg(*region));
                push(&mut out, *t, "survey.submitted", f);
            }
            Ent::Sub {
                start,
                region,
                renew,
                cancel,
            } => {
                let id = format!("s{e}");
                let mut t = *start;
                let mut f = json!({"subscription_id": id, "customer_id": "c"});
                set(&mut f, "region", rg(*region));
                push(&mut out, t, "subscription.started", f);
                if let Some(d) = renew {
                    t += d;
                    push(
                        &mut out,
                        t,
                        "subscription.renewed",
                        json!({"subscription_id": id}),
                    );
                }
                if let Some(d) = cancel {
                    t += d;
                    push(
                        &mut out,
                        t,
                        "subscription.cancelled",
                        json!({"subscription_id": id}),
                    );
                }
            }
        }
    }
    assert!(out.len() < 1000);
    out.sort_by_key(|e| e.ms);
    out
}

#[derive(Clone, Copy)]
enum TsFormat {
    /// Alternate epoch ms and RFC 3339 `Z`.
    Mixed,
    EpochMs,
    /// RFC 3339 with a +05:30 offset.
    Offset,
}

fn render(evs: &[Ev], fmt: TsFormat) -> Vec<String> {
    evs.iter()
        .enumerate()
        .map(|(i, e)| {
            let ts = match fmt {
                TsFormat::EpochMs => json!(B_MS + e.ms),
                TsFormat::Mixed if i % 2 == 0 => json!(B_MS + e.ms),
                TsFormat::Mixed => json!(iso_ms(e.ms)),
                TsFormat::Offset => {
                    let t = chrono::DateTime::from_timestamp_millis(B_MS + e.ms)
                        .unwrap()
                        .with_timezone(&chrono::FixedOffset::east_opt(5 * 3600 + 1800).unwrap());
                    json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, false))
                }
            };
            event_line(&e.id, e.kind, ts, e.fields.clone())
        })
        .collect()
}

/// Shuffles within aligned 30 s blocks: the max ts seen is below the end of
/// the current block, so the watermark (max − 30 s) stays below every
/// event of the block: no event is late.
fn block_shuffle(evs: &[Ev], lines: &[String], seed: u64) -> Vec<String> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < evs.len() {
        let block = evs[i].ms.div_euclid(30_000);
        let mut j = i;
        while j < evs.len() && evs[j].ms.div_euclid(30_000) == block {
            j += 1;
        }
        let mut b = lines[i..j].to_vec();
        rng.shuffle(&mut b);
        out.extend(b);
        i = j;
    }
    out
}

fn all_sets() -> cxpulse::config::Config {
    config(r#"[ { size = "10m", step = "5m" } ]"#, ALL_SETS)
}

fn cases() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn disorder_within_the_bound_changes_no_final_row(
        ents in prop::collection::vec(ent(), 1..14),
        seed in any::<u64>(),
    ) {
        let evs = events(&ents);
        let lines = render(&evs, TsFormat::Mixed);
        let cfg = all_sets();
        let ordered = run(&cfg, &lines);
        prop_assert!(ordered.invalid.is_empty(), "{:?}", ordered.invalid);
        prop_assert_eq!(ordered.counters.late, 0);
        let shuffled_lines = block_shuffle(&evs, &lines, seed);
        let shuffled = run(&cfg, &shuffled_lines);
        prop_assert_eq!(shuffled.counters.late, 0);
        prop_assert_eq!(shuffled.counters.accepted, evs.len() as u64);
        prop_assert!(shuffled.records.iter().all(|r| r.revision == 0));
        let (a, b) = (canon_final(&shuffled), canon_final(&ordered));
        prop_assert!(a == b, "final rows differ:\n{}", diff(&a, &b));
    }

    #[test]
    fn duplicate_deliveries_change_no_emission(
        ents in prop::collection::vec(ent(), 1..14),
        seed in any::<u64>(),
        dups in prop::collection::vec((any::<Index>(), any::<Index>(), any::<bool>()), 1..12),
    ) {
        let evs = events(&ents);
        let lines = block_shuffle(&evs, &render(&evs, TsFormat::Mixed), seed);
        let cfg = all_sets();
        let base = run(&cfg, &lines);
        let mut with_dups = lines.clone();
        for (which, at, alter) in &dups {
            let original = &lines[which.index(lines.len())];
            let pos = with_dups.iter().position(|l| l == original).unwrap();
            let mut copy = original.clone();
            if *alter {
                // Same event_id, different content: still a duplicate.
                let mut v: J = serde_json::from_str(&copy).unwrap();
                v["region"] = json!("elsewhere");
                v["channel"] = json!("elsewhere");
                copy = v.to_string();
            }
            let insert_at = pos + 1 + at.index(with_dups.len() - pos);
            with_dups.insert(insert_at, copy);
        }
        let out = run(&cfg, &with_dups);
        prop_assert_eq!(out.counters.duplicates, dups.len() as u64);
        prop_assert_eq!(out.counters.accepted, base.counters.accepted);
        let (a, b) = (canon_all(&out), canon_all(&base));
        prop_assert!(a == b, "emissions differ:\n{}", diff(&a, &b));
    }

    /// `replay` feeds the engine one valid event behind decoding (so it can
    /// prefetch); that changes no emission, no emission order and no
    /// counter, with late events, duplicates and invalid lines mixed in.
    #[test]
    fn decoding_one_event_ahead_changes_nothing(
        ents in prop::collection::vec(ent(), 1..14),
        seed in any::<u64>(),
        extra in prop::collection::vec((any::<Index>(), 0u8..3), 0..10),
    ) {
        let evs = events(&ents);
        let mut lines = render(&evs, TsFormat::Mixed);
        // A full shuffle: many events arrive late, some beyond lateness.
        Rng(seed | 1).shuffle(&mut lines);
        for (at, kind) in &extra {
            let at = at.index(lines.len() + 1);
            let line = match kind {
                0 => "{\"event_id\": ".to_string(),
                1 => lines[at.min(lines.len() - 1)].clone(),
                _ => lines[at.min(lines.len() - 1)].replace("\"ts\"", "\"tz\""),
            };
            lines.insert(at, line);
        }
        let settings = all_sets().engine_settings().unwrap();
        let (mut direct, mut ahead_fed) = (Engine::new(settings.clone()), Engine::new(settings));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut ahead = Lookahead::default();
        let (mut invalid_a, mut invalid_b) = (Vec::new(), Vec::new());
        for (i, line) in lines.iter().enumerate() {
            if direct.ingest(0, line.as_bytes(), 0, &mut a).is_err() {
                invalid_a.push(i);
            }
            if ahead.ingest(&mut ahead_fed, 0, line.as_bytes(), 0, &mut b).is_err() {
                invalid_b.push(i);
            }
        }
        ahead.finish(&mut ahead_fed, &mut b);
        direct.finish(&mut a);
        ahead_fed.finish(&mut b);
        prop_assert_eq!(invalid_a, invalid_b);
        prop_assert_eq!(direct.counters(), ahead_fed.counters());
        let a: Vec<String> = a.iter().map(canon).collect();
        let b: Vec<String> = b.iter().map(canon).collect();
        prop_assert!(a == b, "emissions differ:\n{}", diff(&b, &a));
    }

    #[test]
    fn timestamp_format_changes_nothing(
        ents in prop::collection::vec(ent(), 1..14),
    ) {
        let evs = events(&ents);
        let cfg = all_sets();
        let a = run(&cfg, &render(&evs, TsFormat::EpochMs));
        let b = run(&cfg, &render(&evs, TsFormat::Offset));
        let c = run(&cfg, &render(&evs, TsFormat::Mixed));
        prop_assert!(a.invalid.is_empty() && b.invalid.is_empty(), "{:?} {:?}", a.invalid, b.invalid);
        prop_assert_eq!(canon_all(&a), canon_all(&b));
        prop_assert_eq!(canon_all(&a), canon_all(&c));
    }

    /// Windows whose panes are rolled up from another window's (equal
    /// steps, a chain 1m -> 5m -> 10m, a source smaller than its
    /// dependent's step) emit exactly what each window emits when it is
    /// configured alone, revisions and drops of late events included:
    /// arrival order is a full shuffle, so many events are late, some
    /// beyond `allowed_lateness`.
    #[test]
    fn rolled_up_windows_emit_what_each_window_emits_alone(
        ents in prop::collection::vec(ent(), 1..14),
        seed in any::<u64>(),
    ) {
        let evs = events(&ents);
        let mut lines = render(&evs, TsFormat::Mixed);
        Rng(seed | 1).shuffle(&mut lines);
        let windows = [
            r#"{ size = "2m", step = "1m" }"#,
            r#"{ size = "10m", step = "1m" }"#,
            r#"{ size = "20m", step = "5m" }"#,
            r#"{ size = "1h", step = "10m" }"#,
        ];
        let cfg = |w: &str| {
            let text = format!(
                "[engine]\nmax_out_of_orderness = \"30s\"\nallowed_lateness = \"10m\"\n\
                 windows = [{w}]\ngrouping_sets = {ALL_SETS}\n"
            );
            cxpulse::config::Config::from_toml(&text).unwrap()
        };
        let together = run(&cfg(&windows.join(", ")), &lines);
        for (i, w) in windows.iter().enumerate() {
            let alone = canon_all(&run(&cfg(w), &lines));
            let name = ["2m", "10m", "20m", "1h"][i];
            let mine: Vec<String> = together
                .records
                .iter()
                .filter(|r| &*r.window == name)
                .map(canon)
                .collect();
            prop_assert!(mine == alone, "window {}:\n{}", name, diff(&mine, &alone));
        }
    }

    #[test]
    fn hopping_rows_are_the_merge_of_tumbling_rows(
        ents in prop::collection::vec(ent(), 1..14),
    ) {
        let evs = events(&ents);
        let cfg = config(
            r#"[ { size = "5m" }, { size = "10m", step = "5m" } ]"#,
            ALL_SETS,
        );
        let out = run(&cfg, &render(&evs, TsFormat::Mixed));
        check_merge(&out.final_rows()).map_err(TestCaseError::fail)?;
    }
}

fn diff(a: &[String], b: &[String]) -> String {
    let sa: BTreeSet<&String> = a.iter().collect();
    let sb: BTreeSet<&String> = b.iter().collect();
    let mut s = String::new();
    for x in sa.difference(&sb).take(10) {
        s += &format!("- {x}\n");
    }
    for x in sb.difference(&sa).take(10) {
        s += &format!("+ {x}\n");
    }
    if s.is_empty() {
        s = "same rows, different order".into();
    }
    s
}

const STEP: i64 = 300 * 1_000_000;

/// What to compare between a 10m/5m window and its two 5m halves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Merge {
    /// count adds.
    Count,
    /// count adds, value × count adds (means, scores, distributions).
    Mean,
    /// count adds, value adds.
    Sum,
    /// count and numerator add (numerator ⊆ denominator).
    Ratio,
    /// count adds; numerators add when both halves have a row (a half
    /// without denominator has no row, and its numerator is not visible).
    LooseRatio,
    /// Denominator is the base at the window start: the first half's.
    Churn,
}

fn merge_kind(kpi: &str) -> Merge {
    match kpi {
        "tickets_opened" | "chats_requested" | "checkouts_started" | "orders_completed" => {
            Merge::Count
        }
        "first_reply_time_seconds"
        | "first_resolution_time_seconds"
        | "chat_wait_time_seconds"
        | "chat_handle_time_seconds"
        | "csat_mean"
        | "nps"
        | "ces_mean"
        | "average_order_value" => Merge::Mean,
        "revenue" => Merge::Sum,
        "fcr_rate"
        | "chat_abandonment_rate"
        | "chat_service_level"
        | "csat_rate"
        | "cart_abandonment_rate"
        | "renewal_rate" => Merge::Ratio,
        "reopen_rate" | "checkout_conversion_rate" => Merge::LooseRatio,
        "churn_rate" => Merge::Churn,
        other => panic!("unknown kpi {other}"),
    }
}

type Series<'a> = HashMap<(String, Vec<(String, String)>), BTreeMap<i64, &'a KpiRecord>>;

fn check_merge(rows: &[&KpiRecord]) -> Result<(), String> {
    let mut tumbling: Series = HashMap::new();
    let mut hopping: Series = HashMap::new();
    for r in rows {
        let key = (r.kpi.to_string(), norm_group(&r.group));
        let series = match &*r.window {
            "5m" => &mut tumbling,
            "10m" => &mut hopping,
            w => return Err(format!("unexpected window {w}")),
        };
        if series
            .entry(key)
            .or_default()
            .insert(r.window_start, r)
            .is_some()
        {
            return Err(format!("two final rows for {}", r.to_json()));
        }
    }
    let keys: BTreeSet<_> = tumbling.keys().chain(hopping.keys()).cloned().collect();
    let empty = BTreeMap::new();
    for key in keys {
        let t = tumbling.get(&key).unwrap_or(&empty);
        let h = hopping.get(&key).unwrap_or(&empty);
        let mut starts: BTreeSet<i64> = h.keys().copied().collect();
        for s in t.keys() {
            starts.insert(*s);
            starts.insert(s - STEP);
        }
        let kind = merge_kind(&key.0);
        for s in starts {
            let (a, b, m) = (t.get(&s), t.get(&(s + STEP)), h.get(&s));
            let ctx = || {
                format!(
                    "{} {:?} at B{:+}s: halves {:?} / {:?}, hopping {:?}",
                    key.0,
                    key.1,
                    (s - B_US) / 1_000_000,
                    a.map(|r| r.to_json()),
                    b.map(|r| r.to_json()),
                    m.map(|r| r.to_json())
                )
            };
            let cnt = |r: Option<&&KpiRecord>| r.map_or(0, |r| r.count);
            let num = |r: Option<&&KpiRecord>| r.map_or(0, |r| r.numerator.unwrap_or(0));
            if kind == Merge::Churn {
                // Churn: rows need a cancellation and a base at the start.
                match (a, m) {
                    (Some(a), Some(m)) => {
                        if m.count != a.count || m.numerator.unwrap() < a.numerator.unwrap() {
                            return Err(ctx());
                        }
                        if b.is_some() && m.numerator != Some(num(Some(a)) + num(b)) {
                            return Err(ctx());
                        }
                    }
                    (Some(_), None) => return Err(ctx()),
                    _ => {}
                }
                continue;
            }
            let want_count = cnt(a) + cnt(b);
            let Some(m) = m else {
                if want_count > 0 {
                    return Err(format!("missing hopping row: {}", ctx()));
                }
                continue;
            };
            if m.count != want_count {
                return Err(format!("count: {}", ctx()));
            }
            match kind {
                Merge::Count => {}
                Merge::Ratio => {
                    if m.numerator != Some(num(a) + num(b)) {
                        return Err(format!("numerator: {}", ctx()));
                    }
                }
                Merge::LooseRatio => {
                    let n = m.numerator.unwrap_or(0);
                    let both = a.is_some() && b.is_some();
                    if n < num(a) + num(b) || (both && n != num(a) + num(b)) {
                        return Err(format!("numerator: {}", ctx()));
                    }
                }
                Merge::Mean | Merge::Sum => {
                    let total = |r: Option<&&KpiRecord>| {
                        r.map_or(0.0, |r| {
                            if kind == Merge::Sum {
                                r.value.as_f64()
                            } else {
                                r.value.as_f64() * r.count as f64
                            }
                        })
                    };
                    let want = total(a) + total(b);
                    let got = total(Some(m));
                    if (got - want).abs() > 1e-9 * got.abs().max(want.abs()) + 1e-9 {
                        return Err(format!("value: {got} vs {want}: {}", ctx()));
                    }
                }
                Merge::Churn => unreachable!(),
            }
        }
    }
    Ok(())
}

#[test]
fn merge_checker_detects_a_wrong_hopping_row() {
    // The checker itself must be able to fail: feed it rows from a real
    // run, then tamper with one hopping row.
    let mut ev = Events::new();
    for (t, id) in [(10, "a"), (320, "b"), (650, "c")] {
        ev.add(
            "ticket.opened",
            t,
            json!({"ticket_id": id, "customer_id": "c", "channel": "email"}),
        );
    }
    let cfg = config(
        r#"[ { size = "5m" }, { size = "10m", step = "5m" } ]"#,
        OVERALL,
    );
    let out = run(&cfg, &ev.lines);
    let rows = out.final_rows();
    check_merge(&rows).unwrap();
    // [B, B+600) holds a and b.
    let h = rows
        .iter()
        .find(|r| &*r.window == "10m" && r.window_start == us(0))
        .unwrap();
    assert_count(h, 2);
    let mut bad = (*h).clone();
    bad.count = 3;
    let tampered: Vec<&KpiRecord> = rows
        .iter()
        .map(|r| if std::ptr::eq(*r, *h) { &bad } else { *r })
        .collect();
    assert!(check_merge(&tampered).is_err());
    let dropped: Vec<&KpiRecord> = rows
        .iter()
        .copied()
        .filter(|r| !std::ptr::eq(*r, *h))
        .collect();
    assert!(check_merge(&dropped).is_err());
}
