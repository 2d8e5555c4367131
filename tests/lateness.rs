//! Event time, order and lateness (contract §2) and duplicates (§1).
//!
//! Defaults: max_out_of_orderness 30s, allowed_lateness 5m, dedup_horizon
//! 1h. Times are seconds after B = 2026-11-23T10:00:00Z; with a tumbling 10m
//! window, window 0 is [B, B+600) and window 1 is [B+600, B+1200).

mod common;

use common::*;
use serde_json::json;

fn opened(ev: &mut Events, t: i64, id: &str) -> String {
    ev.add(
        "ticket.opened",
        t,
        json!({"ticket_id": id, "customer_id": "c", "channel": "email"}),
    )
}

/// Rows of `kpi` for the window at `start`, in emission order:
/// (revision, count, value).
fn history(out: &cxpulse::replay::ReplayOutput, kpi: &str, start: i64) -> Vec<(u32, u64, f64)> {
    out.records
        .iter()
        .filter(|r| r.kpi == kpi && r.window_start == us(start) && r.group.is_empty())
        .map(|r| (r.revision, r.count, r.value.as_f64()))
        .collect()
}

/// Events spanning a window boundary and several KPIs, all within 30 s
/// (B+590 … B+619), at distinct times.
fn tight_burst() -> Vec<String> {
    let mut ev = Events::new();
    opened(&mut ev, 590, "t1");
    ev.add(
        "chat.requested",
        591,
        json!({"chat_id": "c1", "customer_id": "c", "region": "eu"}),
    );
    ev.add(
        "checkout.started",
        592,
        json!({"checkout_id": "k1", "customer_id": "c", "channel": "web"}),
    );
    ev.add(
        "subscription.started",
        593,
        json!({"subscription_id": "s1", "customer_id": "c", "region": "eu"}),
    );
    ev.add(
        "ticket.replied",
        595,
        json!({"ticket_id": "t1", "author": "agent", "agent_id": "a1"}),
    );
    ev.add(
        "chat.agent_joined",
        599,
        json!({"chat_id": "c1", "agent_id": "a2"}),
    );
    ev.add(
        "survey.submitted",
        600,
        json!({"survey": "csat", "score": 4, "customer_id": "c"}),
    );
    ev.add(
        "checkout.completed",
        601,
        json!({"checkout_id": "k1", "order_id": "o1", "value": 12.5}),
    );
    ev.add("ticket.resolved", 603, json!({"ticket_id": "t1"}));
    ev.add(
        "subscription.cancelled",
        605,
        json!({"subscription_id": "s1"}),
    );
    ev.add("chat.ended", 610, json!({"chat_id": "c1"}));
    opened(&mut ev, 612, "t2");
    ev.add("ticket.reopened", 615, json!({"ticket_id": "t1"}));
    ev.add(
        "survey.submitted",
        619,
        json!({"survey": "nps", "score": 3, "customer_id": "c"}),
    );
    ev.lines
}

#[test]
fn any_arrival_order_within_the_bound_gives_identical_rows() {
    let cfg = tumbling10(ALL_SETS);
    let lines = tight_burst();
    let reference = run(&cfg, &lines);
    let want = canon_final(&reference);
    // Hand-checked anchors of the in-order result.
    let r = Rows::of(&reference);
    assert_count(r.get("tickets_opened", 0, &[]), 1);
    assert_count(r.get("tickets_opened", 600, &[]), 1);
    assert_dist(r.get("first_reply_time_seconds", 0, &[]), 1, 5.0, [5.0; 3]);
    assert_dist(r.get("chat_wait_time_seconds", 0, &[]), 1, 8.0, [8.0; 3]);
    assert_dist(
        r.get("chat_handle_time_seconds", 600, &[]),
        1,
        11.0,
        [11.0; 3],
    );
    assert_dist(
        r.get("first_resolution_time_seconds", 600, &[]),
        1,
        13.0,
        [13.0; 3],
    );
    assert_ratio(r.get("reopen_rate", 600, &[]), 1, 1);
    assert_ratio(r.get("checkout_conversion_rate", 0, &[]), 0, 1);
    assert_ratio(r.get("cart_abandonment_rate", 600, &[]), 0, 1);
    assert_ratio(r.get("churn_rate", 600, &[]), 1, 1);
    assert!(reference.records.iter().all(|x| x.revision == 0));

    let mut orders: Vec<Vec<String>> = Vec::new();
    let mut rev = lines.clone();
    rev.reverse();
    orders.push(rev);
    for k in 1..lines.len() {
        let mut rot = lines.clone();
        rot.rotate_left(k);
        orders.push(rot);
    }
    for seed in 1..=40u64 {
        let mut v = lines.clone();
        Rng(seed * 7919).shuffle(&mut v);
        orders.push(v);
    }
    for (i, o) in orders.iter().enumerate() {
        let out = run(&cfg, o);
        assert_eq!(out.counters.late, 0, "order {i}");
        assert_same_rows(&canon_final(&out), &want, &format!("arrival order {i}"));
        assert!(out.records.iter().all(|x| x.revision == 0), "order {i}");
    }
}

#[test]
fn block_shuffled_half_hour_gives_identical_rows() {
    // Tickets opened every 7 s with a reply 20 s later; shuffling within
    // aligned 30 s blocks keeps every event at or above the watermark.
    let mut ev = Events::new();
    let mut t = 0;
    let mut n = 0;
    while t < 1800 {
        n += 1;
        opened(&mut ev, t, &format!("t{n}"));
        ev.add(
            "ticket.replied",
            t + 20 + (n % 3),
            json!({"ticket_id": format!("t{n}"), "author": "agent", "agent_id": format!("a{}", n % 4)}),
        );
        t += 7;
    }
    let mut lines = ev.lines.clone();
    let ts = |l: &String| -> i64 {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        cxpulse::time::parse_rfc3339(v["ts"].as_str().unwrap()).unwrap()
    };
    lines.sort_by_key(ts);
    let cfg = tumbling10(ALL_SETS);
    let reference = run(&cfg, &lines);
    let want = canon_final(&reference);
    let r = Rows::of(&reference);
    // Tickets at 0, 7, …, 595 → 86 in window 0.
    assert_count(r.get("tickets_opened", 0, &[]), 86);
    for seed in 1..=10u64 {
        let mut shuffled: Vec<String> = Vec::new();
        let mut rng = Rng(seed);
        let mut i = 0;
        while i < lines.len() {
            let block = (ts(&lines[i]) - B_US).div_euclid(30_000_000);
            let mut j = i;
            while j < lines.len() && (ts(&lines[j]) - B_US).div_euclid(30_000_000) == block {
                j += 1;
            }
            let mut b = lines[i..j].to_vec();
            rng.shuffle(&mut b);
            shuffled.extend(b);
            i = j;
        }
        assert_ne!(shuffled, lines);
        let out = run(&cfg, &shuffled);
        assert_eq!(out.counters.late, 0);
        assert_same_rows(&canon_final(&out), &want, &format!("seed {seed}"));
    }
}

#[test]
fn late_event_within_allowed_lateness_revises_the_row() {
    let mut ev = Events::new();
    opened(&mut ev, 0, "t1");
    ev.add(
        "ticket.replied",
        100,
        json!({"ticket_id": "t1", "author": "agent", "agent_id": "a"}),
    );
    // Watermark B+670: window 0 (end B+600) fires.
    opened(&mut ev, 700, "t9");
    // Late (below B+670), window 0's end + 5m = B+900 is above: revises.
    opened(&mut ev, 50, "t2");
    ev.add(
        "ticket.replied",
        250,
        json!({"ticket_id": "t2", "author": "agent", "agent_id": "a"}),
    );
    let out = ev.run(&tumbling10(OVERALL));
    assert_eq!(
        history(&out, "tickets_opened", 0),
        vec![(0, 1, 1.0), (1, 2, 2.0)]
    );
    assert_eq!(
        history(&out, "first_reply_time_seconds", 0),
        vec![(0, 1, 100.0), (1, 2, 150.0)]
    );
    let r = Rows::of(&out);
    assert_eq!(r.get("tickets_opened", 0, &[]).revision, 1);
    assert_dist(
        r.get("first_reply_time_seconds", 0, &[]),
        2,
        150.0,
        [100.0, 200.0, 200.0],
    );
    assert_eq!(history(&out, "tickets_opened", 600), vec![(0, 1, 1.0)]);
    assert_eq!(out.counters.late, 2);
    assert_eq!(out.counters.late_dropped, 0);
    // The revision comes after revision 0 in emission order.
    let pos = |rev| {
        out.records
            .iter()
            .position(|x| x.kpi == "tickets_opened" && x.window_start == us(0) && x.revision == rev)
            .unwrap()
    };
    assert!(pos(0) < pos(1));
}

#[test]
fn lateness_boundary_end_plus_allowed_lateness_must_be_above_watermark() {
    // Window 0 ends at B+600; + 5m = B+900.
    let case = |max_ms: i64| {
        let mut ev = Events::new();
        opened(&mut ev, 10, "t1");
        ev.add_epoch_ms(
            "ticket.opened",
            max_ms,
            json!({"ticket_id": "t2", "customer_id": "c", "channel": "email"}),
        );
        opened(&mut ev, 100, "late");
        ev.run(&tumbling10(OVERALL))
    };
    // Max ts B+929.999 → watermark B+899.999 < B+900: still revised.
    let out = case(929_999);
    assert_eq!(
        history(&out, "tickets_opened", 0),
        vec![(0, 1, 1.0), (1, 2, 2.0)]
    );
    assert_eq!(out.counters.late_dropped, 0);
    // Max ts B+930 → watermark B+900, not below B+900: dropped.
    let out = case(930_000);
    assert_eq!(history(&out, "tickets_opened", 0), vec![(0, 1, 1.0)]);
    assert_eq!(out.counters.late, 1);
    assert_eq!(out.counters.late_dropped, 1);
}

#[test]
fn event_exactly_at_the_watermark_is_not_late() {
    // Max ts B+630 → watermark B+600; an event at B+600 is at the watermark:
    // buffered, in window 1, no revision; one at B+599.999 is late.
    let mut ev = Events::new();
    opened(&mut ev, 0, "t0");
    opened(&mut ev, 630, "t1");
    opened(&mut ev, 600, "t2");
    let out = ev.run(&tumbling10(OVERALL));
    assert_eq!(out.counters.late, 0);
    assert_eq!(history(&out, "tickets_opened", 600), vec![(0, 2, 2.0)]);
    assert_eq!(history(&out, "tickets_opened", 0), vec![(0, 1, 1.0)]);

    let mut ev = Events::new();
    opened(&mut ev, 0, "t0");
    opened(&mut ev, 630, "t1");
    ev.add_epoch_ms(
        "ticket.opened",
        599_999,
        json!({"ticket_id": "t2", "customer_id": "c", "channel": "email"}),
    );
    let out = ev.run(&tumbling10(OVERALL));
    assert_eq!(out.counters.late, 1);
    assert_eq!(out.counters.late_dropped, 0);
    assert_eq!(
        history(&out, "tickets_opened", 0),
        vec![(0, 1, 1.0), (1, 2, 2.0)]
    );
}

#[test]
fn too_late_event_is_dropped_and_counted_but_updates_entity_state() {
    let mut ev = Events::new();
    opened(&mut ev, 5, "t0");
    opened(&mut ev, 1000, "filler"); // watermark B+970 > B+900
    opened(&mut ev, 60, "t1"); // beyond allowed lateness for window 0
    ev.add(
        "ticket.replied",
        1010,
        json!({"ticket_id": "t1", "author": "agent", "agent_id": "a"}),
    );
    let out = ev.run(&tumbling10(OVERALL));
    assert_eq!(out.counters.late, 1);
    assert_eq!(out.counters.late_dropped, 1);
    assert_eq!(
        out.counters.orphans, 0,
        "t1's state exists: the reply is no orphan"
    );
    assert_eq!(history(&out, "tickets_opened", 0), vec![(0, 1, 1.0)]);
    let r = Rows::of(&out);
    assert_count(r.get("tickets_opened", 600, &[]), 1);
    // opened B+60, replied B+1010 → 950 s, observed in window 1.
    assert_dist(
        r.get("first_reply_time_seconds", 600, &[]),
        1,
        950.0,
        [950.0; 3],
    );
}

#[test]
fn late_event_is_dropped_only_from_windows_beyond_lateness() {
    // 10m every 5m: B+560 is in [B, B+600) and [B+300, B+900). Watermark
    // B+950: the first (end+5m = B+900) is beyond, the second (B+1200) not.
    let cfg = config(r#"[ { size = "10m", step = "5m" } ]"#, OVERALL);
    let mut ev = Events::new();
    opened(&mut ev, 400, "t0");
    opened(&mut ev, 980, "t1");
    opened(&mut ev, 560, "late");
    let out = ev.run(&cfg);
    assert_eq!(out.counters.late, 1);
    assert_eq!(out.counters.late_dropped, 1);
    assert_eq!(history(&out, "tickets_opened", 0), vec![(0, 1, 1.0)]);
    assert_eq!(
        history(&out, "tickets_opened", 300),
        vec![(0, 1, 1.0), (1, 2, 2.0)]
    );
    // [B+600, B+1200) fired? No: watermark B+950 < B+1200. Only t1.
    assert_eq!(history(&out, "tickets_opened", 600), vec![(0, 1, 1.0)]);
}

#[test]
fn very_late_checkout_start_fires_its_overdue_timer_at_once() {
    // K started at B+60 arrives when the watermark is B+2370: its timer
    // (B+1860) is already due and fires at once; the abandonment is
    // observed at B+1860, in window [B+1800, B+2400), which has not fired.
    let mut ev = Events::new();
    ev.add(
        "checkout.started",
        1700,
        json!({"checkout_id": "other", "customer_id": "c"}),
    );
    ev.add(
        "checkout.completed",
        1750,
        json!({"checkout_id": "other", "order_id": "o", "value": 1}),
    );
    ev.add(
        "survey.submitted",
        2400,
        json!({"survey": "ces", "score": 3, "customer_id": "c"}),
    );
    ev.add(
        "checkout.started",
        60,
        json!({"checkout_id": "k", "customer_id": "c"}),
    );
    let out = ev.run(&tumbling10(OVERALL));
    let r = Rows::of(&out);
    assert_eq!(out.counters.late_dropped, 1);
    r.none("checkouts_started", 0, &[]);
    assert_ratio(r.get("cart_abandonment_rate", 1800, &[]), 1, 1);
    // "other" completed at B+1750 (window 2).
    assert_ratio(r.get("cart_abandonment_rate", 1200, &[]), 0, 1);
    assert!(out.records.iter().all(|x| x.revision == 0));
}

#[test]
fn late_cancellation_revises_churn_and_late_start_changes_only_later_snapshots() {
    // S1, S2 start in window 0. Window 1's base (B+600) is 2. Processing
    // reaches B+1200 (event at B+1300). Then, late: S3 started at B+650
    // (within lateness for window 1: end B+1200 + 5m > watermark B+1270)
    // and S1 cancelled at B+700. Window 1's churn: 1 / 2 (the late start
    // is not in B+600's snapshot). Window 2's snapshot (B+1200) was taken
    // before the late events were processed: it stays 2.
    let mut ev = Events::new();
    for (t, id) in [(10, "s1"), (20, "s2")] {
        ev.add(
            "subscription.started",
            t,
            json!({"subscription_id": id, "customer_id": "c"}),
        );
    }
    ev.add(
        "subscription.renewed",
        900,
        json!({"subscription_id": "s2"}),
    );
    ev.add(
        "subscription.renewed",
        1300,
        json!({"subscription_id": "s2"}),
    );
    ev.add(
        "subscription.started",
        650,
        json!({"subscription_id": "s3", "customer_id": "c"}),
    );
    ev.add(
        "subscription.cancelled",
        700,
        json!({"subscription_id": "s1"}),
    );
    ev.add(
        "subscription.cancelled",
        1310,
        json!({"subscription_id": "s3"}),
    );
    let out = ev.run(&tumbling10(OVERALL));
    let r = Rows::of(&out);
    assert_eq!(out.counters.late, 2);
    assert_eq!(out.counters.late_dropped, 0);
    // Window 1: renewal first 1/1, then revised with the cancellation.
    assert_eq!(
        history(&out, "renewal_rate", 600),
        vec![(0, 1, 1.0), (1, 2, 0.5)]
    );
    assert_ratio(r.get("churn_rate", 600, &[]), 1, 2);
    // Window 2: base snapshotted at B+1200 before the late events: S1, S2.
    assert_ratio(r.get("churn_rate", 1200, &[]), 1, 2);
}

#[test]
fn duplicates_never_change_output_and_are_counted() {
    let mut ev = Events::new();
    let a = opened(&mut ev, 10, "t1");
    let b = ev.add(
        "ticket.replied",
        40,
        json!({"ticket_id": "t1", "author": "agent", "agent_id": "a"}),
    );
    let c = ev.add(
        "survey.submitted",
        300,
        json!({"survey": "csat", "score": 5, "customer_id": "c"}),
    );
    let d = ev.add(
        "checkout.started",
        590,
        json!({"checkout_id": "k", "customer_id": "c"}),
    );
    let e = opened(&mut ev, 700, "t2");
    let f = opened(&mut ev, 800, "t3");
    let cfg = tumbling10(ALL_SETS);
    let base = ev.run(&cfg);
    assert_eq!(base.counters.duplicates, 0);

    // Same id, same payload: right after, within the bound, and late (after
    // window 0 fired). Same id, different payload: still the same event.
    let mut altered: serde_json::Value = serde_json::from_str(&c).unwrap();
    altered["score"] = json!(1);
    let mut other_ticket: serde_json::Value = serde_json::from_str(&a).unwrap();
    other_ticket["ticket_id"] = json!("t-other");
    let with_dups = vec![
        a.clone(),
        a.clone(),
        b.clone(),
        c.clone(),
        a.clone(),
        d.clone(),
        b.clone(),
        e.clone(),
        c.clone(),
        altered.to_string(),
        d.clone(),
        f.clone(),
        other_ticket.to_string(),
        f.clone(),
        e.clone(),
    ];
    let out = run(&cfg, &with_dups);
    assert_eq!(out.counters.duplicates, 9);
    assert_eq!(out.counters.accepted, base.counters.accepted);
    assert_eq!(out.counters.late, 0, "duplicates are not late events");
    assert_same_rows(&canon_all(&out), &canon_all(&base), "all emissions");
    let r = Rows::of(&out);
    assert_count(r.get("tickets_opened", 0, &[]), 1);
    assert_ratio(r.get("csat_rate", 0, &[]), 1, 1);
}

#[test]
fn event_id_reused_beyond_the_dedup_horizon_is_a_new_event() {
    let line = |t: i64, ticket: &str| {
        event_line(
            "same-id",
            "ticket.opened",
            json!(iso(t)),
            json!({"ticket_id": ticket, "customer_id": "c", "channel": "email"}),
        )
    };
    // 2 h apart in event time (horizon 1h): both count.
    let out = run(&tumbling10(OVERALL), &[line(10, "t1"), line(7210, "t2")]);
    let r = Rows::of(&out);
    assert_count(r.get("tickets_opened", 0, &[]), 1);
    assert_count(r.get("tickets_opened", 7200, &[]), 1);
    assert_eq!(out.counters.duplicates, 0);
    // 10 min apart: the second is a duplicate.
    let out = run(&tumbling10(OVERALL), &[line(10, "t1"), line(610, "t2")]);
    assert_eq!(out.counters.duplicates, 1);
    Rows::of(&out).none("tickets_opened", 600, &[]);
}

#[test]
fn counters_account_for_every_line() {
    let mut ev = Events::new();
    let a = opened(&mut ev, 10, "t1");
    opened(&mut ev, 1000, "t2");
    opened(&mut ev, 20, "late-dropped");
    opened(&mut ev, 980, "late-kept"); // watermark 970: 980 is not late
    opened(&mut ev, 700, "late-in"); // late, window 1 within lateness
    ev.raw(a);
    ev.raw("not json");
    let out = ev.run(&tumbling10(OVERALL));
    let c = &out.counters;
    assert_eq!(c.accepted, 5);
    assert_eq!(c.duplicates, 1);
    assert_eq!(c.invalid, 1);
    assert_eq!(c.late, 2);
    assert_eq!(c.late_dropped, 1);
    let r = Rows::of(&out);
    assert_count(r.get("tickets_opened", 0, &[]), 1);
    assert_count(r.get("tickets_opened", 600, &[]), 3);
}

#[test]
fn late_completion_processed_after_the_timer_fired_leaves_the_cart_abandoned() {
    // K started B+0: timer at B+1800. Processing passes B+1800 (an event at
    // B+1840 → watermark B+1810), so the timer fires: abandoned at B+1800.
    // The completion at B+1790 arrives late: it is processed after the
    // timer, so the outcome stays abandoned; the order itself still counts
    // (window [B+1200, B+1800) has fired: a revision).
    let mut ev = Events::new();
    ev.add(
        "checkout.started",
        0,
        json!({"checkout_id": "k", "customer_id": "c"}),
    );
    ev.add(
        "checkout.started",
        1500,
        json!({"checkout_id": "j", "customer_id": "c"}),
    );
    ev.add(
        "checkout.completed",
        1510,
        json!({"checkout_id": "j", "order_id": "o1", "value": 1}),
    );
    ev.add(
        "survey.submitted",
        1840,
        json!({"survey": "ces", "score": 2, "customer_id": "c"}),
    );
    ev.add(
        "checkout.completed",
        1790,
        json!({"checkout_id": "k", "order_id": "o2", "value": 4}),
    );
    let out = ev.run(&tumbling10(OVERALL));
    let r = Rows::of(&out);
    assert_eq!(out.counters.late, 1);
    assert_ratio(r.get("cart_abandonment_rate", 1800, &[]), 1, 1);
    // Window 2: only j's completion is an outcome (k's came too late).
    assert_ratio(r.get("cart_abandonment_rate", 1200, &[]), 0, 1);
    assert_eq!(
        history(&out, "orders_completed", 1200),
        vec![(0, 1, 1.0), (1, 2, 2.0)]
    );
    assert_eq!(
        history(&out, "revenue", 1200),
        vec![(0, 1, 1.0), (1, 2, 5.0)]
    );
}

#[test]
fn pipeline_watermark_is_the_minimum_over_partitions_that_are_not_idle() {
    use cxpulse::engine::Engine;
    let cfg = tumbling10(OVERALL);
    let mut engine = Engine::new(cfg.engine_settings().unwrap());
    let mut out = Vec::new();
    let sec = 1_000_000i64; // wall time in µs
    let mut ev = Events::new();
    let mut send = |engine: &mut Engine, p: u32, t: i64, id: &str, wall: i64, out: &mut Vec<_>| {
        let line = opened(&mut ev, t, id);
        engine.ingest(p, line.as_bytes(), wall, out).unwrap()
    };
    send(&mut engine, 0, 0, "a", 0, &mut out);
    send(&mut engine, 1, 10, "b", 0, &mut out);
    // Partition 0 runs ahead to B+700; partition 1 (max B+10) holds the
    // pipeline watermark at B−20: window 0 must not fire.
    send(&mut engine, 0, 700, "c", sec, &mut out);
    send(&mut engine, 1, 50, "d", 2 * sec, &mut out);
    assert!(out.is_empty(), "window 0 fired early: {out:?}");
    assert_eq!(engine.watermark(), us(50 - 30));
    // Partition 0 stays active; partition 1 goes quiet for idle_timeout
    // (30 s of wall time): it stops holding the watermark back.
    send(&mut engine, 0, 710, "e", 31 * sec, &mut out);
    assert!(out.is_empty());
    engine.tick(32 * sec, &mut out);
    assert_eq!(engine.watermark(), us(710 - 30));
    let fired: Vec<_> = out
        .iter()
        .filter(|r| r.kpi == "tickets_opened" && r.window_start == us(0))
        .collect();
    assert_eq!(fired.len(), 1);
    assert_count(fired[0], 3);
    // Partition 1 wakes up with an event at B+100: window 0 already fired
    // and B+600 + 5m is above the watermark: the row is revised.
    out.clear();
    send(&mut engine, 1, 100, "f", 33 * sec, &mut out);
    engine.finish(&mut out);
    let w0: Vec<_> = out
        .iter()
        .filter(|r| r.kpi == "tickets_opened" && r.window_start == us(0))
        .collect();
    assert_eq!(w0.len(), 1, "{w0:?}");
    assert_count(w0[0], 4);
    assert_eq!(w0[0].revision, 1);
    let w1: Vec<_> = out
        .iter()
        .filter(|r| r.kpi == "tickets_opened" && r.window_start == us(600))
        .collect();
    assert_count(w1[0], 2);
}

/// A hopping window holding exactly the previous window's panes reuses its
/// accumulators; a late event in the previous window's oldest pane (which
/// the next window does not contain) must not leak into the next window.
/// 10m every 5m, out-of-orderness 10m, lateness 30m: A at 7m fires window
/// [0,10m) once D (22m) moves the watermark to 12m; B at 2m is late and
/// revises [0,10m); window [5m,15m) then holds A only.
#[test]
fn late_event_in_the_oldest_pane_stays_out_of_the_next_hopping_window() {
    let cfg = cxpulse::config::Config::from_toml(
        r#"[engine]
max_out_of_orderness = "10m"
allowed_lateness = "30m"
windows = [{ size = "10m", step = "5m" }]
grouping_sets = [[]]"#,
    )
    .unwrap();
    let mut ev = Events::new();
    opened(&mut ev, 7 * 60, "a");
    opened(&mut ev, 22 * 60, "d");
    opened(&mut ev, 2 * 60, "b");
    opened(&mut ev, 40 * 60, "e");
    let out = ev.run(&cfg);
    assert_eq!(out.counters.late, 1);
    assert_eq!(
        history(&out, "tickets_opened", 0),
        vec![(0, 1, 1.0), (1, 2, 2.0)],
        "[0,10m): A, then revised with B"
    );
    assert_eq!(
        history(&out, "tickets_opened", 5 * 60),
        vec![(0, 1, 1.0)],
        "[5m,15m): A only"
    );
}
