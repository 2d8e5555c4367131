//! Every KPI of the contract (§4) on small scenarios whose expected rows are
//! computed by hand from the contract, plus the rules of §3 (windows,
//! grouping sets, "unknown", zero denominators).
//!
//! Times are seconds after B = 2026-11-23T10:00:00Z. Unless said otherwise
//! the window is a tumbling 10m one, so window 0 is [B, B+600), window 1 is
//! [B+600, B+1200), and so on.

mod common;

use common::*;
use serde_json::json;

const W0: i64 = 0;
const W1: i64 = 600;
const W2: i64 = 1200;
const W3: i64 = 1800;
const W4: i64 = 2400;

// ---------------------------------------------------------------- tickets

#[test]
fn tickets_opened_counts_by_channel_and_region() {
    let mut ev = Events::new();
    let open = |ev: &mut Events, t, id: &str, ch: &str, region: Option<&str>| {
        let mut f = json!({"ticket_id": id, "customer_id": "c1", "channel": ch});
        if let Some(r) = region {
            f["region"] = json!(r);
        }
        ev.add("ticket.opened", t, f);
    };
    open(&mut ev, 5, "t1", "email", Some("eu"));
    open(&mut ev, 100, "t2", "email", Some("eu"));
    open(&mut ev, 599, "t3", "phone", None);
    open(&mut ev, 600, "t4", "phone", Some("us")); // first instant of window 1
    let out = ev.run(&tumbling10(ALL_SETS));
    let r = Rows::of(&out);
    assert_count(r.get("tickets_opened", W0, &[]), 3);
    assert_count(r.get("tickets_opened", W0, &[("channel", "email")]), 2);
    assert_count(r.get("tickets_opened", W0, &[("channel", "phone")]), 1);
    assert_count(r.get("tickets_opened", W0, &[("region", "eu")]), 2);
    assert_count(r.get("tickets_opened", W0, &[("region", "unknown")]), 1);
    assert_count(r.get("tickets_opened", W1, &[]), 1);
    assert_count(r.get("tickets_opened", W1, &[("region", "us")]), 1);
    // tickets_opened has no agent_id dimension.
    assert!(r
        .kpi("tickets_opened")
        .iter()
        .all(|x| x.group.iter().all(|(d, _)| *d != "agent_id")));
    assert_eq!(r.kpi("tickets_opened").len(), 5 + 3);
    assert_eq!(out.counters.invalid, 0);
}

/// T1: bot, customer and a private agent note come before the first public
/// agent reply; T5: a private note by a1, then a3's public reply; T2: no
/// region, `public` absent (default true); T4: only a bot replies.
fn first_reply_scenario() -> Events {
    let mut ev = Events::new();
    let open = |ev: &mut Events, t, id: &str, ch: &str, region: Option<&str>| {
        let mut f = json!({"ticket_id": id, "customer_id": "c", "channel": ch});
        if let Some(r) = region {
            f["region"] = json!(r);
        }
        ev.add("ticket.opened", t, f);
    };
    open(&mut ev, 0, "t1", "email", Some("eu"));
    ev.add(
        "ticket.replied",
        10,
        json!({"ticket_id": "t1", "author": "bot"}),
    );
    ev.add(
        "ticket.replied",
        20,
        json!({"ticket_id": "t1", "author": "customer"}),
    );
    ev.add(
        "ticket.replied",
        30,
        json!({"ticket_id": "t1", "author": "agent", "agent_id": "a2", "public": false}),
    );
    open(&mut ev, 60, "t2", "phone", None);
    ev.add(
        "ticket.replied",
        100,
        json!({"ticket_id": "t1", "author": "agent", "agent_id": "a1", "public": true}),
    );
    open(&mut ev, 120, "t5", "email", Some("eu"));
    ev.add(
        "ticket.replied",
        130,
        json!({"ticket_id": "t5", "author": "agent", "agent_id": "a1", "public": false}),
    );
    ev.add(
        "ticket.replied",
        200,
        json!({"ticket_id": "t1", "author": "agent", "agent_id": "a3"}),
    );
    ev.add(
        "ticket.replied",
        250,
        json!({"ticket_id": "t5", "author": "agent", "agent_id": "a3", "public": true}),
    );
    ev.add(
        "ticket.replied",
        360,
        json!({"ticket_id": "t2", "author": "agent", "agent_id": "a2"}),
    );
    open(&mut ev, 400, "t4", "web", Some("eu"));
    ev.add(
        "ticket.replied",
        450,
        json!({"ticket_id": "t4", "author": "bot", "agent_id": "bot-7"}),
    );
    ev.add(
        "ticket.resolved",
        500,
        json!({"ticket_id": "t4", "agent_id": "a1"}),
    );
    open(&mut ev, 590, "t3", "email", Some("eu"));
    // Observed at the reply: B+610 is in window 1.
    ev.add(
        "ticket.replied",
        610,
        json!({"ticket_id": "t3", "author": "agent", "agent_id": "a1"}),
    );
    ev
}

#[test]
fn first_reply_time_counts_only_public_agent_replies() {
    let out = first_reply_scenario().run(&tumbling10(ALL_SETS));
    let r = Rows::of(&out);
    let k = "first_reply_time_seconds";
    // t1: 100 s (a1), t5: 130 s (a3), t2: 300 s (a2); t4 none.
    assert_dist(
        r.get(k, W0, &[]),
        3,
        530.0 / 3.0,
        [130.0, 300.0, 300.0], // nearest rank of [100, 130, 300]
    );
    assert_dist(
        r.get(k, W0, &[("channel", "email")]),
        2,
        115.0,
        [100.0, 130.0, 130.0],
    );
    assert_dist(r.get(k, W0, &[("channel", "phone")]), 1, 300.0, [300.0; 3]);
    r.none(k, W0, &[("channel", "web")]);
    assert_dist(
        r.get(k, W0, &[("region", "eu")]),
        2,
        115.0,
        [100.0, 130.0, 130.0],
    );
    assert_dist(r.get(k, W0, &[("region", "unknown")]), 1, 300.0, [300.0; 3]);
    // The replying agent: never the author of a private note or a bot.
    assert_dist(r.get(k, W0, &[("agent_id", "a1")]), 1, 100.0, [100.0; 3]);
    assert_dist(r.get(k, W0, &[("agent_id", "a2")]), 1, 300.0, [300.0; 3]);
    assert_dist(r.get(k, W0, &[("agent_id", "a3")]), 1, 130.0, [130.0; 3]);
    assert_eq!(
        r.groups(k, W0)
            .iter()
            .filter(|g| g.first().is_some_and(|d| d.0 == "agent_id"))
            .count(),
        3
    );
    // t3: opened B+590, replied B+610 → 20 s, observed in window 1.
    assert_dist(r.get(k, W1, &[]), 1, 20.0, [20.0; 3]);
    assert_dist(r.get(k, W1, &[("agent_id", "a1")]), 1, 20.0, [20.0; 3]);
}

/// T1 one-touch, resolved, reopened, resolved again; T2 no reply, resolved
/// without agent, resolved again while resolved; T3 two public agent
/// replies; T4 one public agent reply plus private, bot and customer
/// replies; T5 reopened while still open; T6 in windows 1 and 2.
fn resolution_scenario() -> Events {
    let mut ev = Events::new();
    let open = |ev: &mut Events, t, id: &str, ch: &str, region: &str| {
        ev.add(
            "ticket.opened",
            t,
            json!({"ticket_id": id, "customer_id": "c", "channel": ch, "region": region}),
        );
    };
    let reply = |ev: &mut Events, t, id: &str, author: &str, agent: Option<&str>, public: bool| {
        let mut f = json!({"ticket_id": id, "author": author, "public": public});
        if let Some(a) = agent {
            f["agent_id"] = json!(a);
        }
        ev.add("ticket.replied", t, f);
    };
    let resolve = |ev: &mut Events, t, id: &str, agent: Option<&str>| {
        let mut f = json!({"ticket_id": id});
        if let Some(a) = agent {
            f["agent_id"] = json!(a);
        }
        ev.add("ticket.resolved", t, f);
    };
    let reopen = |ev: &mut Events, t, id: &str| {
        ev.add("ticket.reopened", t, json!({"ticket_id": id}));
    };
    open(&mut ev, 0, "t1", "email", "eu");
    open(&mut ev, 10, "t2", "phone", "us");
    open(&mut ev, 20, "t3", "email", "eu");
    reply(&mut ev, 30, "t1", "agent", Some("a1"), true);
    open(&mut ev, 31, "t4", "web", "eu");
    reply(&mut ev, 40, "t3", "agent", Some("a1"), true);
    open(&mut ev, 41, "t5", "email", "eu");
    reply(&mut ev, 50, "t3", "agent", Some("a2"), true);
    reply(&mut ev, 60, "t4", "agent", Some("a1"), true);
    resolve(&mut ev, 70, "t2", None);
    reply(&mut ev, 71, "t4", "agent", Some("a1"), false);
    reply(&mut ev, 80, "t4", "bot", None, true);
    resolve(&mut ev, 90, "t2", Some("a9")); // already resolved: nothing
    reply(&mut ev, 91, "t4", "customer", None, true);
    reopen(&mut ev, 100, "t5"); // not resolved: not a reopen
    resolve(&mut ev, 120, "t1", Some("a1"));
    resolve(&mut ev, 140, "t3", Some("a2"));
    reopen(&mut ev, 180, "t1");
    reply(&mut ev, 200, "t1", "agent", Some("a1"), true);
    resolve(&mut ev, 231, "t4", Some("a1"));
    resolve(&mut ev, 300, "t1", Some("a2")); // second resolve of t1
    open(&mut ev, 700, "t6", "email", "eu");
    resolve(&mut ev, 800, "t6", None);
    reopen(&mut ev, 1300, "t6"); // window 2 has no resolve
    ev
}

#[test]
fn first_resolution_time_uses_only_the_first_resolve() {
    let out = resolution_scenario().run(&tumbling10(ALL_SETS));
    let r = Rows::of(&out);
    let k = "first_resolution_time_seconds";
    // t1 120 (a1), t2 60 (no agent), t3 120 (a2), t4 200 (a1).
    assert_dist(r.get(k, W0, &[]), 4, 125.0, [120.0, 200.0, 200.0]);
    assert_dist(
        r.get(k, W0, &[("agent_id", "a1")]),
        2,
        160.0,
        [120.0, 200.0, 200.0],
    );
    assert_dist(r.get(k, W0, &[("agent_id", "a2")]), 1, 120.0, [120.0; 3]);
    assert_dist(r.get(k, W0, &[("agent_id", "unknown")]), 1, 60.0, [60.0; 3]);
    r.none(k, W0, &[("agent_id", "a9")]);
    assert_dist(r.get(k, W0, &[("channel", "email")]), 2, 120.0, [120.0; 3]);
    assert_dist(r.get(k, W0, &[("channel", "phone")]), 1, 60.0, [60.0; 3]);
    assert_dist(r.get(k, W0, &[("channel", "web")]), 1, 200.0, [200.0; 3]);
    assert_dist(
        r.get(k, W0, &[("region", "eu")]),
        3,
        440.0 / 3.0,
        [120.0, 200.0, 200.0],
    );
    assert_dist(r.get(k, W0, &[("region", "us")]), 1, 60.0, [60.0; 3]);
    // t6: opened B+700, resolved B+800.
    assert_dist(r.get(k, W1, &[]), 1, 100.0, [100.0; 3]);
    r.none(k, W2, &[]);
}

#[test]
fn fcr_rate_is_one_touch_first_resolves() {
    let out = resolution_scenario().run(&tumbling10(ALL_SETS));
    let r = Rows::of(&out);
    let k = "fcr_rate";
    // First resolves: t1 (1 reply ✓), t2 (0 ✓), t3 (2 ✗), t4 (1 public
    // agent reply; private, bot, customer do not count ✓).
    assert_ratio(r.get(k, W0, &[]), 3, 4);
    assert_ratio(r.get(k, W0, &[("channel", "email")]), 1, 2);
    assert_ratio(r.get(k, W0, &[("channel", "phone")]), 1, 1);
    assert_ratio(r.get(k, W0, &[("channel", "web")]), 1, 1);
    assert_ratio(r.get(k, W0, &[("region", "eu")]), 2, 3);
    assert_ratio(r.get(k, W0, &[("region", "us")]), 1, 1);
    assert_ratio(r.get(k, W0, &[("agent_id", "a1")]), 2, 2);
    assert_ratio(r.get(k, W0, &[("agent_id", "a2")]), 0, 1);
    assert_ratio(r.get(k, W0, &[("agent_id", "unknown")]), 1, 1);
    assert_ratio(r.get(k, W1, &[]), 1, 1);
    r.none(k, W2, &[]);
}

#[test]
fn reopen_rate_counts_reopens_of_resolved_over_resolves_of_open() {
    let out = resolution_scenario().run(&tumbling10(ALL_SETS));
    let r = Rows::of(&out);
    let k = "reopen_rate";
    // Resolves of an open ticket: t2@70, t1@120, t3@140, t4@231, t1@300
    // (t1 was reopened); t2@90 was already resolved. Reopens of a resolved
    // ticket: t1@180; t5@100 was open.
    assert_ratio(r.get(k, W0, &[]), 1, 5);
    assert_ratio(r.get(k, W0, &[("channel", "email")]), 1, 3);
    assert_ratio(r.get(k, W0, &[("channel", "phone")]), 0, 1);
    assert_ratio(r.get(k, W0, &[("channel", "web")]), 0, 1);
    assert_ratio(r.get(k, W0, &[("region", "eu")]), 1, 4);
    assert_ratio(r.get(k, W0, &[("region", "us")]), 0, 1);
    assert_eq!(r.groups(k, W0).len(), 1 + 3 + 2, "no agent_id rows");
    assert_ratio(r.get(k, W1, &[]), 0, 1);
    // Window 2 has t6's reopen but no resolve: zero denominator, no row.
    assert!(r.kpi(k).iter().all(|x| x.window_start != us(W2)));
}

// ---------------------------------------------------------------- chats

/// C1 eu: joins a1@40, a2@100, ends @400. C2 eu: wait 50 (a2), ends @190.
/// C3 us: abandons after 3 s (short). C4 us: abandons after exactly 5 s.
/// C5 eu: abandons after 100 s. C6 us: wait exactly 60 s (a1), ends @500.
/// C7 eu: wait 61 s (a3), never ends. C8 no region: wait 120 s (a3), ends
/// @700 (window 1).
fn chat_scenario() -> Events {
    let mut ev = Events::new();
    let req = |ev: &mut Events, t, id: &str, region: Option<&str>| {
        let mut f = json!({"chat_id": id, "customer_id": "c", "channel": "chat"});
        if let Some(r) = region {
            f["region"] = json!(r);
        }
        ev.add("chat.requested", t, f);
    };
    let join = |ev: &mut Events, t, id: &str, agent: &str| {
        ev.add(
            "chat.agent_joined",
            t,
            json!({"chat_id": id, "agent_id": agent}),
        );
    };
    let end = |ev: &mut Events, t, id: &str| {
        ev.add("chat.ended", t, json!({"chat_id": id}));
    };
    req(&mut ev, 0, "c1", Some("eu"));
    req(&mut ev, 10, "c2", Some("eu"));
    req(&mut ev, 20, "c6", Some("us"));
    req(&mut ev, 30, "c7", Some("eu"));
    join(&mut ev, 40, "c1", "a1");
    join(&mut ev, 60, "c2", "a2");
    join(&mut ev, 80, "c6", "a1");
    join(&mut ev, 91, "c7", "a3");
    join(&mut ev, 100, "c1", "a2");
    end(&mut ev, 190, "c2");
    req(&mut ev, 200, "c3", Some("us"));
    end(&mut ev, 203, "c3");
    req(&mut ev, 300, "c4", Some("us"));
    end(&mut ev, 305, "c4");
    req(&mut ev, 320, "c5", Some("eu"));
    end(&mut ev, 400, "c1");
    end(&mut ev, 420, "c5");
    req(&mut ev, 440, "c8", None);
    end(&mut ev, 500, "c6");
    join(&mut ev, 560, "c8", "a3");
    end(&mut ev, 700, "c8");
    ev
}

#[test]
fn chats_requested_by_region_only() {
    let out = chat_scenario().run(&tumbling10(ALL_SETS));
    let r = Rows::of(&out);
    let k = "chats_requested";
    assert_count(r.get(k, W0, &[]), 8);
    assert_count(r.get(k, W0, &[("region", "eu")]), 4);
    assert_count(r.get(k, W0, &[("region", "us")]), 3);
    assert_count(r.get(k, W0, &[("region", "unknown")]), 1);
    assert_eq!(
        r.groups(k, W0),
        groups(&[
            &[],
            &[("region", "eu")],
            &[("region", "unknown")],
            &[("region", "us")]
        ]),
        "chats_requested has neither channel nor agent_id rows"
    );
    r.none(k, W1, &[]);
}

#[test]
fn chat_wait_time_is_request_to_first_join() {
    let out = chat_scenario().run(&tumbling10(ALL_SETS));
    let r = Rows::of(&out);
    let k = "chat_wait_time_seconds";
    // Waits: c1 40 (a1), c2 50 (a2), c6 60 (a1), c7 61 (a3), c8 120 (a3).
    assert_dist(r.get(k, W0, &[]), 5, 331.0 / 5.0, [60.0, 120.0, 120.0]);
    assert_dist(
        r.get(k, W0, &[("region", "eu")]),
        3,
        151.0 / 3.0,
        [50.0, 61.0, 61.0],
    );
    assert_dist(r.get(k, W0, &[("region", "us")]), 1, 60.0, [60.0; 3]);
    assert_dist(r.get(k, W0, &[("region", "unknown")]), 1, 120.0, [120.0; 3]);
    assert_dist(
        r.get(k, W0, &[("agent_id", "a1")]),
        2,
        50.0,
        [40.0, 60.0, 60.0],
    );
    // a2's second join of c1 (wait 100) is not a first join.
    assert_dist(r.get(k, W0, &[("agent_id", "a2")]), 1, 50.0, [50.0; 3]);
    assert_dist(
        r.get(k, W0, &[("agent_id", "a3")]),
        2,
        90.5,
        [61.0, 120.0, 120.0],
    );
    r.none(k, W0, &[("channel", "chat")]);
    r.none(k, W1, &[]);
}

#[test]
fn chat_abandonment_leaves_out_short_abandons() {
    let out = chat_scenario().run(&tumbling10(ALL_SETS));
    let r = Rows::of(&out);
    let k = "chat_abandonment_rate";
    // Joins: c1 c2 c6 c7 c8 (5). Abandons: c4 (5 s, not < 5 s) and c5; c3
    // (3 s) is left out of both.
    assert_ratio(r.get(k, W0, &[]), 2, 7);
    assert_ratio(r.get(k, W0, &[("region", "eu")]), 1, 4);
    assert_ratio(r.get(k, W0, &[("region", "us")]), 1, 2);
    assert_ratio(r.get(k, W0, &[("region", "unknown")]), 0, 1);
    assert_eq!(r.groups(k, W0).len(), 4, "region rows only");
    // c8 ends in window 1 after a join: not an abandonment observation.
    r.none(k, W1, &[]);
}

#[test]
fn chat_service_level_wait_equal_to_threshold_is_within() {
    let out = chat_scenario().run(&tumbling10(ALL_SETS));
    let r = Rows::of(&out);
    let k = "chat_service_level";
    // Within 60 s: c1 (40), c2 (50), c6 (exactly 60); c7 (61) and c8 (120)
    // are not. Denominator: 5 joins + 2 abandons (c3 short: left out).
    assert_ratio(r.get(k, W0, &[]), 3, 7);
    assert_ratio(r.get(k, W0, &[("region", "eu")]), 2, 4);
    assert_ratio(r.get(k, W0, &[("region", "us")]), 1, 2);
    assert_ratio(r.get(k, W0, &[("region", "unknown")]), 0, 1);
    assert_eq!(r.groups(k, W0).len(), 4, "region rows only");
    r.none(k, W1, &[]);
}

#[test]
fn chat_service_level_threshold_is_configurable_and_sub_second() {
    // Threshold 30s: a wait of 30.000 s is within, 30.001 s is not.
    let cfg = cxpulse::config::Config::from_toml(
        "[engine]\nwindows = [ { size = \"10m\" } ]\ngrouping_sets = [[]]\n\
         [kpi]\nservice_level_threshold = \"30s\"\nshort_abandon_threshold = \"10s\"\n",
    )
    .unwrap();
    let mut ev = Events::new();
    ev.add_epoch_ms(
        "chat.requested",
        0,
        json!({"chat_id": "x", "customer_id": "c"}),
    );
    ev.add_epoch_ms(
        "chat.requested",
        1_000,
        json!({"chat_id": "y", "customer_id": "c"}),
    );
    ev.add_epoch_ms(
        "chat.agent_joined",
        30_000,
        json!({"chat_id": "x", "agent_id": "a"}),
    );
    ev.add_epoch_ms(
        "chat.agent_joined",
        31_001,
        json!({"chat_id": "y", "agent_id": "a"}),
    );
    // z abandons after 9.999 s (short with a 10 s threshold), w after 10 s.
    ev.add_epoch_ms(
        "chat.requested",
        100_000,
        json!({"chat_id": "z", "customer_id": "c"}),
    );
    ev.add_epoch_ms("chat.ended", 109_999, json!({"chat_id": "z"}));
    ev.add_epoch_ms(
        "chat.requested",
        200_000,
        json!({"chat_id": "w", "customer_id": "c"}),
    );
    ev.add_epoch_ms("chat.ended", 210_000, json!({"chat_id": "w"}));
    let out = ev.run(&cfg);
    let r = Rows::of(&out);
    assert_ratio(r.get("chat_service_level", W0, &[]), 1, 3);
    assert_ratio(r.get("chat_abandonment_rate", W0, &[]), 1, 3);
    assert_dist(
        r.get("chat_wait_time_seconds", W0, &[]),
        2,
        30.0005,
        [30.0, 30.001, 30.001],
    );
}

#[test]
fn chat_handle_time_is_first_join_to_end() {
    let out = chat_scenario().run(&tumbling10(ALL_SETS));
    let r = Rows::of(&out);
    let k = "chat_handle_time_seconds";
    // Ends in window 0 after a join: c2 130 (a2), c1 360 (first join a1 at
    // 40, not a2's at 100), c6 420 (a1). Abandoned chats have none.
    assert_dist(r.get(k, W0, &[]), 3, 910.0 / 3.0, [360.0, 420.0, 420.0]);
    assert_dist(
        r.get(k, W0, &[("agent_id", "a1")]),
        2,
        390.0,
        [360.0, 420.0, 420.0],
    );
    assert_dist(r.get(k, W0, &[("agent_id", "a2")]), 1, 130.0, [130.0; 3]);
    assert_dist(
        r.get(k, W0, &[("region", "eu")]),
        2,
        245.0,
        [130.0, 360.0, 360.0],
    );
    assert_dist(r.get(k, W0, &[("region", "us")]), 1, 420.0, [420.0; 3]);
    r.none(k, W0, &[("agent_id", "a3")]);
    // c8: joined B+560, ended B+700 (observed at the end, window 1).
    assert_dist(r.get(k, W1, &[]), 1, 140.0, [140.0; 3]);
    assert_dist(r.get(k, W1, &[("agent_id", "a3")]), 1, 140.0, [140.0; 3]);
    assert_dist(r.get(k, W1, &[("region", "unknown")]), 1, 140.0, [140.0; 3]);
}

// ---------------------------------------------------------------- surveys

fn survey_scenario() -> Events {
    let mut ev = Events::new();
    let mut t = 0;
    let mut add =
        |kind: &str, score: i64, agent: Option<&str>, ch: Option<&str>, region: Option<&str>| {
            t += 7;
            let mut f = json!({"survey": kind, "score": score, "customer_id": "c"});
            if let Some(a) = agent {
                f["agent_id"] = json!(a);
            }
            if let Some(c) = ch {
                f["channel"] = json!(c);
            }
            if let Some(r) = region {
                f["region"] = json!(r);
            }
            ev.add("survey.submitted", t, f);
        };
    add("csat", 5, Some("a1"), Some("chat"), Some("eu"));
    add("csat", 4, Some("a1"), Some("email"), Some("eu"));
    add("csat", 3, Some("a2"), Some("chat"), Some("us"));
    add("csat", 1, Some("a2"), None, Some("us"));
    add("csat", 5, None, Some("chat"), None);
    add("nps", 10, Some("a1"), Some("chat"), Some("eu"));
    add("nps", 9, Some("a1"), Some("chat"), Some("eu"));
    add("nps", 8, Some("a2"), Some("email"), Some("eu"));
    add("nps", 7, Some("a2"), Some("email"), Some("us"));
    add("nps", 6, Some("a3"), Some("chat"), Some("us"));
    add("nps", 0, Some("a3"), Some("chat"), Some("us"));
    add("nps", 10, None, Some("web"), Some("us"));
    add("ces", 1, Some("a1"), Some("chat"), Some("eu"));
    add("ces", 7, Some("a1"), Some("chat"), Some("eu"));
    add("ces", 5, Some("a2"), Some("email"), Some("us"));
    ev
}

#[test]
fn csat_rate_counts_scores_four_and_five() {
    let out = survey_scenario().run(&tumbling10(ALL_SETS));
    let r = Rows::of(&out);
    let k = "csat_rate";
    // Scores 5 4 3 1 5: 4–5 are 5, 4, 5.
    assert_ratio(r.get(k, W0, &[]), 3, 5);
    assert_ratio(r.get(k, W0, &[("agent_id", "a1")]), 2, 2);
    assert_ratio(r.get(k, W0, &[("agent_id", "a2")]), 0, 2);
    assert_ratio(r.get(k, W0, &[("agent_id", "unknown")]), 1, 1);
    assert_ratio(r.get(k, W0, &[("channel", "chat")]), 2, 3);
    assert_ratio(r.get(k, W0, &[("channel", "email")]), 1, 1);
    assert_ratio(r.get(k, W0, &[("channel", "unknown")]), 0, 1);
    assert_ratio(r.get(k, W0, &[("region", "eu")]), 2, 2);
    assert_ratio(r.get(k, W0, &[("region", "us")]), 0, 2);
    assert_ratio(r.get(k, W0, &[("region", "unknown")]), 1, 1);
}

#[test]
fn csat_mean_is_mean_score() {
    let out = survey_scenario().run(&tumbling10(ALL_SETS));
    let r = Rows::of(&out);
    let k = "csat_mean";
    assert_value(r.get(k, W0, &[]), 5, 18.0 / 5.0);
    assert_value(r.get(k, W0, &[("agent_id", "a1")]), 2, 4.5);
    assert_value(r.get(k, W0, &[("agent_id", "a2")]), 2, 2.0);
    assert_value(r.get(k, W0, &[("agent_id", "unknown")]), 1, 5.0);
    assert_value(r.get(k, W0, &[("channel", "chat")]), 3, 13.0 / 3.0);
    assert_value(r.get(k, W0, &[("channel", "unknown")]), 1, 1.0);
    assert_value(r.get(k, W0, &[("region", "us")]), 2, 2.0);
}

#[test]
fn nps_promoters_minus_detractors() {
    let out = survey_scenario().run(&tumbling10(ALL_SETS));
    let r = Rows::of(&out);
    let k = "nps";
    // 10 9 8 7 6 0 10: promoters 3 (9–10), passives 2 (7–8), detractors 2
    // (0–6): 100 × (3 − 2) / 7.
    assert_value(r.get(k, W0, &[]), 7, 100.0 / 7.0);
    assert_value(r.get(k, W0, &[("agent_id", "a1")]), 2, 100.0);
    assert_value(r.get(k, W0, &[("agent_id", "a2")]), 2, 0.0);
    assert_value(r.get(k, W0, &[("agent_id", "a3")]), 2, -100.0);
    assert_value(r.get(k, W0, &[("agent_id", "unknown")]), 1, 100.0);
    assert_value(r.get(k, W0, &[("channel", "chat")]), 4, 0.0);
    assert_value(r.get(k, W0, &[("channel", "email")]), 2, 0.0);
    assert_value(r.get(k, W0, &[("channel", "web")]), 1, 100.0);
    assert_value(r.get(k, W0, &[("region", "eu")]), 3, 200.0 / 3.0);
    assert_value(r.get(k, W0, &[("region", "us")]), 4, -25.0);
}

#[test]
fn ces_mean_is_mean_score() {
    let out = survey_scenario().run(&tumbling10(ALL_SETS));
    let r = Rows::of(&out);
    let k = "ces_mean";
    assert_value(r.get(k, W0, &[]), 3, 13.0 / 3.0);
    assert_value(r.get(k, W0, &[("agent_id", "a1")]), 2, 4.0);
    assert_value(r.get(k, W0, &[("agent_id", "a2")]), 1, 5.0);
    assert_value(r.get(k, W0, &[("channel", "chat")]), 2, 4.0);
    assert_value(r.get(k, W0, &[("region", "us")]), 1, 5.0);
    assert_eq!(r.groups(k, W0).len(), 1 + 2 + 2 + 2);
}

#[test]
fn survey_kinds_do_not_mix_and_missing_kinds_emit_no_row() {
    let mut ev = Events::new();
    ev.add(
        "survey.submitted",
        5,
        json!({"survey": "csat", "score": 2, "customer_id": "c"}),
    );
    let out = ev.run(&tumbling10(ALL_SETS));
    let r = Rows::of(&out);
    assert_ratio(r.get("csat_rate", W0, &[]), 0, 1);
    assert_value(r.get("csat_mean", W0, &[]), 1, 2.0);
    assert!(r.kpi("nps").is_empty());
    assert!(r.kpi("ces_mean").is_empty());
    // No agent_id or channel given: "unknown".
    assert_ratio(r.get("csat_rate", W0, &[("agent_id", "unknown")]), 0, 1);
    assert_ratio(r.get("csat_rate", W0, &[("channel", "unknown")]), 0, 1);
    assert_ratio(r.get("csat_rate", W0, &[("region", "unknown")]), 0, 1);
    // Exactly the two survey KPIs, 4 groups each.
    assert_eq!(out.final_rows().len(), 8);
}

// ---------------------------------------------------------------- checkouts

/// Window 0: K1 web/eu completed 10.5; K2 app/us completed 0; K3 web/eu
/// started. Window 1: K3 completed 20 (web/eu); K4 web/eu started (never
/// completed); K5 app, no region, completed 7.25 by an event without
/// channel or region.
fn checkout_scenario() -> Events {
    let mut ev = Events::new();
    let start = |ev: &mut Events, t, id: &str, ch: &str, region: Option<&str>| {
        let mut f = json!({"checkout_id": id, "customer_id": "c", "channel": ch});
        if let Some(r) = region {
            f["region"] = json!(r);
        }
        ev.add("checkout.started", t, f);
    };
    let complete =
        |ev: &mut Events, t, id: &str, value: serde_json::Value, dims: serde_json::Value| {
            let mut f = json!({"checkout_id": id, "order_id": format!("o-{id}"), "value": value});
            if let serde_json::Value::Object(m) = dims {
                for (k, v) in m {
                    f[k.as_str()] = v;
                }
            }
            ev.add("checkout.completed", t, f);
        };
    start(&mut ev, 0, "k1", "web", Some("eu"));
    start(&mut ev, 50, "k2", "app", Some("us"));
    complete(
        &mut ev,
        100,
        "k1",
        json!(10.5),
        json!({"channel": "web", "region": "eu"}),
    );
    complete(
        &mut ev,
        200,
        "k2",
        json!(0),
        json!({"channel": "app", "region": "us"}),
    );
    start(&mut ev, 300, "k3", "web", Some("eu"));
    start(&mut ev, 650, "k4", "web", Some("eu"));
    start(&mut ev, 660, "k5", "app", None);
    complete(&mut ev, 690, "k5", json!(7.25), json!({}));
    complete(
        &mut ev,
        700,
        "k3",
        json!(20),
        json!({"channel": "web", "region": "eu"}),
    );
    ev
}

#[test]
fn checkouts_started_counts() {
    let out = checkout_scenario().run(&tumbling10(ALL_SETS));
    let r = Rows::of(&out);
    let k = "checkouts_started";
    assert_count(r.get(k, W0, &[]), 3);
    assert_count(r.get(k, W0, &[("channel", "web")]), 2);
    assert_count(r.get(k, W0, &[("channel", "app")]), 1);
    assert_count(r.get(k, W0, &[("region", "eu")]), 2);
    assert_count(r.get(k, W0, &[("region", "us")]), 1);
    assert_eq!(r.groups(k, W0).len(), 5, "no agent_id rows");
    assert_count(r.get(k, W1, &[]), 2);
    assert_count(r.get(k, W1, &[("region", "unknown")]), 1);
}

#[test]
fn orders_completed_uses_the_completed_events_dimensions() {
    let out = checkout_scenario().run(&tumbling10(ALL_SETS));
    let r = Rows::of(&out);
    let k = "orders_completed";
    assert_count(r.get(k, W0, &[]), 2);
    assert_count(r.get(k, W0, &[("channel", "web")]), 1);
    assert_count(r.get(k, W0, &[("channel", "app")]), 1);
    assert_count(r.get(k, W1, &[]), 2);
    assert_count(r.get(k, W1, &[("channel", "web")]), 1);
    // K5's completed event carries no channel or region (its start was app).
    assert_count(r.get(k, W1, &[("channel", "unknown")]), 1);
    assert_count(r.get(k, W1, &[("region", "unknown")]), 1);
    r.none(k, W1, &[("channel", "app")]);
}

#[test]
fn revenue_sums_values() {
    let out = checkout_scenario().run(&tumbling10(ALL_SETS));
    let r = Rows::of(&out);
    let k = "revenue";
    assert_value(r.get(k, W0, &[]), 2, 10.5);
    assert_value(r.get(k, W0, &[("channel", "web")]), 1, 10.5);
    // A zero-value order is an observation: the row exists with value 0.
    assert_value(r.get(k, W0, &[("channel", "app")]), 1, 0.0);
    assert_value(r.get(k, W1, &[]), 2, 27.25);
    assert_value(r.get(k, W1, &[("region", "eu")]), 1, 20.0);
}

#[test]
fn average_order_value_is_revenue_over_orders() {
    let out = checkout_scenario().run(&tumbling10(ALL_SETS));
    let r = Rows::of(&out);
    let k = "average_order_value";
    assert_value(r.get(k, W0, &[]), 2, 5.25);
    assert_value(r.get(k, W0, &[("region", "eu")]), 1, 10.5);
    assert_value(r.get(k, W0, &[("region", "us")]), 1, 0.0);
    assert_value(r.get(k, W1, &[]), 2, 13.625);
}

#[test]
fn checkout_conversion_in_the_same_window_from_different_events() {
    let out = checkout_scenario().run(&tumbling10(ALL_SETS));
    let r = Rows::of(&out);
    let k = "checkout_conversion_rate";
    assert_ratio(r.get(k, W0, &[]), 2, 3);
    assert_ratio(r.get(k, W0, &[("channel", "web")]), 1, 2);
    assert_ratio(r.get(k, W0, &[("channel", "app")]), 1, 1);
    assert_ratio(r.get(k, W0, &[("region", "eu")]), 1, 2);
    assert_ratio(r.get(k, W0, &[("region", "us")]), 1, 1);
    // Window 1: orders K3 (started in window 0) and K5 ÷ starts K4, K5.
    assert_ratio(r.get(k, W1, &[]), 2, 2);
    // web: K3's order ÷ K4's start.
    assert_ratio(r.get(k, W1, &[("channel", "web")]), 1, 1);
}

#[test]
fn conversion_with_orders_but_no_starts_emits_no_row() {
    let mut ev = Events::new();
    ev.add(
        "checkout.started",
        590,
        json!({"checkout_id": "k", "customer_id": "c"}),
    );
    ev.add(
        "checkout.completed",
        610,
        json!({"checkout_id": "k", "order_id": "o", "value": 3}),
    );
    let out = ev.run(&tumbling10(OVERALL));
    let r = Rows::of(&out);
    assert_ratio(r.get("checkout_conversion_rate", W0, &[]), 0, 1);
    assert_count(r.get("orders_completed", W1, &[]), 1);
    r.none("checkout_conversion_rate", W1, &[]);
    r.none("checkouts_started", W1, &[]);
    // The cart's outcome (completed) is observed at the completion.
    assert_ratio(r.get("cart_abandonment_rate", W1, &[]), 0, 1);
    r.none("cart_abandonment_rate", W0, &[]);
}

/// K1 completed before its timer (B+600). K2 never completed: abandoned by
/// the timer at B+1860. K3 completed at B+1980, after its timer at B+1920:
/// abandoned at B+1920. K4 completed exactly at its timer's time B+1980:
/// completed (by an event that says channel app; the cart is web). K5
/// never completed and input ends: the timer at B+2800 fires at the end.
fn cart_scenario() -> Events {
    let mut ev = Events::new();
    let start = |ev: &mut Events, t, id: &str, ch: &str, region: &str| {
        ev.add(
            "checkout.started",
            t,
            json!({"checkout_id": id, "customer_id": "c", "channel": ch, "region": region}),
        );
    };
    let complete = |ev: &mut Events, t, id: &str, ch: &str, region: &str| {
        ev.add(
            "checkout.completed",
            t,
            json!({"checkout_id": id, "order_id": format!("o-{id}"), "value": 1,
                   "channel": ch, "region": region}),
        );
    };
    start(&mut ev, 0, "k1", "web", "eu");
    start(&mut ev, 60, "k2", "app", "us");
    start(&mut ev, 120, "k3", "web", "eu");
    start(&mut ev, 180, "k4", "web", "eu");
    complete(&mut ev, 600, "k1", "web", "eu");
    start(&mut ev, 1000, "k5", "web", "us");
    complete(&mut ev, 1980, "k4", "app", "us");
    complete(&mut ev, 1980, "k3", "web", "eu");
    ev
}

#[test]
fn cart_abandonment_outcomes_and_timer_time() {
    let out = cart_scenario().run(&tumbling10(r#"[[], ["channel"], ["region"]]"#));
    let r = Rows::of(&out);
    let k = "cart_abandonment_rate";
    r.none(k, W0, &[]);
    // K1 completed, observed at B+600.
    assert_ratio(r.get(k, W1, &[]), 0, 1);
    assert_ratio(r.get(k, W1, &[("channel", "web")]), 0, 1);
    r.none(k, W2, &[]);
    // Window 3: K2 abandoned (1860), K3 abandoned (1920), K4 completed (1980).
    assert_ratio(r.get(k, W3, &[]), 2, 3);
    // Dimensions of the started event: K4 is web/eu, not app/us.
    assert_ratio(r.get(k, W3, &[("channel", "web")]), 1, 2);
    assert_ratio(r.get(k, W3, &[("channel", "app")]), 1, 1);
    assert_ratio(r.get(k, W3, &[("region", "eu")]), 1, 2);
    assert_ratio(r.get(k, W3, &[("region", "us")]), 1, 1);
    // K5's timer fires at end of input: B+2800, window 4.
    assert_ratio(r.get(k, W4, &[]), 1, 1);
    assert_ratio(r.get(k, W4, &[("channel", "web")]), 1, 1);
    assert_ratio(r.get(k, W4, &[("region", "us")]), 1, 1);
    assert_eq!(r.kpi(k).len(), 3 + 5 + 3);
}

#[test]
fn cart_completion_at_timer_time_counts_as_completed_even_if_it_arrives_after_later_events() {
    // The completion at exactly B+1800 (the timer's time) arrives after an
    // event at B+1810, still within the 30s out-of-orderness bound.
    let mut ev = Events::new();
    ev.add(
        "checkout.started",
        0,
        json!({"checkout_id": "k", "customer_id": "c"}),
    );
    ev.add(
        "checkout.started",
        1810,
        json!({"checkout_id": "other", "customer_id": "c"}),
    );
    ev.add(
        "checkout.completed",
        1800,
        json!({"checkout_id": "k", "order_id": "o", "value": 5}),
    );
    let out = ev.run(&tumbling10(OVERALL));
    let r = Rows::of(&out);
    // K completed at B+1800; "other" abandoned at B+3610 (end of input).
    assert_ratio(r.get("cart_abandonment_rate", W3, &[]), 0, 1);
    assert_ratio(r.get("cart_abandonment_rate", 3600, &[]), 1, 1);
    assert_eq!(r.kpi("cart_abandonment_rate").len(), 2);
}

#[test]
fn cart_abandon_after_is_configurable() {
    let cfg = cxpulse::config::Config::from_toml(
        "[engine]\nwindows = [ { size = \"10m\" } ]\ngrouping_sets = [[]]\n\
         [kpi]\ncart_abandon_after = \"5m\"\n",
    )
    .unwrap();
    let mut ev = Events::new();
    ev.add(
        "checkout.started",
        0,
        json!({"checkout_id": "a", "customer_id": "c"}),
    );
    ev.add(
        "checkout.started",
        10,
        json!({"checkout_id": "b", "customer_id": "c"}),
    );
    // a: completed 1 s after its timer (B+300) → abandoned at B+300.
    ev.add(
        "checkout.completed",
        301,
        json!({"checkout_id": "a", "order_id": "o", "value": 1}),
    );
    // b: completed at B+309, before its timer at B+310 → completed.
    ev.add(
        "checkout.completed",
        309,
        json!({"checkout_id": "b", "order_id": "o2", "value": 1}),
    );
    let out = ev.run(&cfg);
    let r = Rows::of(&out);
    assert_ratio(r.get("cart_abandonment_rate", W0, &[]), 1, 2);
}

// ---------------------------------------------------------------- subscriptions

/// S1 eu @10, S2 eu @20, S3 us @30; S2 cancelled @100, S1 renewed @200, S3
/// renewed @300; S4 eu starts exactly at B+600; S1 cancelled @700 by an
/// event that says region us; S3 renewed @800; S5 us @1250; S4 cancelled
/// @1300 (no region on the event).
fn subscription_scenario() -> Events {
    let mut ev = Events::new();
    let start = |ev: &mut Events, t, id: &str, region: &str| {
        ev.add(
            "subscription.started",
            t,
            json!({"subscription_id": id, "customer_id": "c", "region": region}),
        );
    };
    start(&mut ev, 10, "s1", "eu");
    start(&mut ev, 20, "s2", "eu");
    start(&mut ev, 30, "s3", "us");
    ev.add(
        "subscription.cancelled",
        100,
        json!({"subscription_id": "s2", "region": "eu"}),
    );
    ev.add(
        "subscription.renewed",
        200,
        json!({"subscription_id": "s1", "region": "eu"}),
    );
    ev.add(
        "subscription.renewed",
        300,
        json!({"subscription_id": "s3", "region": "us"}),
    );
    start(&mut ev, 600, "s4", "eu");
    ev.add(
        "subscription.cancelled",
        700,
        json!({"subscription_id": "s1", "region": "us"}),
    );
    ev.add(
        "subscription.renewed",
        800,
        json!({"subscription_id": "s3"}),
    );
    start(&mut ev, 1250, "s5", "us");
    ev.add(
        "subscription.cancelled",
        1300,
        json!({"subscription_id": "s4"}),
    );
    ev
}

#[test]
fn churn_rate_denominator_is_active_base_at_window_start() {
    let out = subscription_scenario().run(&tumbling10(r#"[[], ["region"]]"#));
    let r = Rows::of(&out);
    let k = "churn_rate";
    // Window 0: a cancellation but no active base at B → no row.
    r.none(k, W0, &[]);
    r.none(k, W0, &[("region", "eu")]);
    // Window 1: active at B+600 = S1, S3 (S4 starts at the boundary, after
    // the snapshot); S1 cancels.
    assert_ratio(r.get(k, W1, &[]), 1, 2);
    // Region of the started event (eu), not of the cancel event (us).
    assert_ratio(r.get(k, W1, &[("region", "eu")]), 1, 1);
    r.none(k, W1, &[("region", "us")]); // base 1 but no cancellation
                                        // Window 2: active at B+1200 = S3, S4 (S5 starts later); S4 cancels.
    assert_ratio(r.get(k, W2, &[]), 1, 2);
    assert_ratio(r.get(k, W2, &[("region", "eu")]), 1, 1);
    r.none(k, W2, &[("region", "us")]);
    assert_eq!(r.kpi(k).len(), 4);
}

#[test]
fn renewal_rate_is_renewals_over_renewals_and_cancellations() {
    let out = subscription_scenario().run(&tumbling10(r#"[[], ["region"]]"#));
    let r = Rows::of(&out);
    let k = "renewal_rate";
    assert_ratio(r.get(k, W0, &[]), 2, 3);
    assert_ratio(r.get(k, W0, &[("region", "eu")]), 1, 2);
    assert_ratio(r.get(k, W0, &[("region", "us")]), 1, 1);
    assert_ratio(r.get(k, W1, &[]), 1, 2);
    assert_ratio(r.get(k, W2, &[]), 0, 1);
}

#[test]
fn churn_with_events_exactly_at_boundary_and_long_gap() {
    // S1 starts at B+0 exactly. The first boundary processing crosses after
    // that is B+600 (S1 active). Nothing happens in window 1; window 2's
    // base (B+1200) is still S1; S1 cancels at B+1500.
    let mut ev = Events::new();
    ev.add(
        "subscription.started",
        0,
        json!({"subscription_id": "s1", "customer_id": "c"}),
    );
    ev.add(
        "subscription.cancelled",
        1500,
        json!({"subscription_id": "s1"}),
    );
    let out = ev.run(&tumbling10(r#"[[], ["region"]]"#));
    let r = Rows::of(&out);
    assert_ratio(r.get("churn_rate", W2, &[]), 1, 1);
    assert_ratio(r.get("churn_rate", W2, &[("region", "unknown")]), 1, 1);
    assert_eq!(r.kpi("churn_rate").len(), 2);
    assert_ratio(r.get("renewal_rate", W2, &[]), 0, 1);
}

// ---------------------------------------------------------------- §3 rules

#[test]
fn window_names_alignment_and_hopping_membership() {
    let cfg = config(
        r#"[ { size = "90s" }, { size = "5m", step = "1m" }, { size = "1h" },
             { size = "1h30m", step = "30m" }, { size = "24h", step = "1h" } ]"#,
        OVERALL,
    );
    let mut ev = Events::new();
    ev.add(
        "ticket.opened",
        150, // 10:02:30
        json!({"ticket_id": "t", "customer_id": "c", "channel": "email"}),
    );
    let out = ev.run(&cfg);
    let rows = Rows::of(&out);
    let mut got: Vec<(String, i64, i64)> = rows
        .kpi("tickets_opened")
        .iter()
        .map(|r| {
            assert_count(r, 1);
            (
                r.window.to_string(),
                (r.window_start - B_US) / 1_000_000,
                (r.window_end - B_US) / 1_000_000,
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, i64, i64)> = Vec::new();
    // 90s: B is a multiple of 90 s; 150 s is in [90, 180).
    want.push(("90s".into(), 90, 180));
    // 5m every 1m: starts −120, −60, 0, 60, 120.
    for s in [-120, -60, 0, 60, 120] {
        want.push(("5m".into(), s, s + 300));
    }
    want.push(("1h".into(), 0, 3600));
    // 90m every 30m: epoch-aligned starts 09:00 and 09:30 contain 10:02:30
    // (10:00 too).
    for s in [-3600, -1800, 0] {
        want.push(("90m".into(), s, s + 5400));
    }
    // 24h every 1h: 24 windows, starts 10:00 − 23h … 10:00.
    for h in 0..24 {
        let s = -h * 3600;
        want.push(("24h".into(), s, s + 86400));
    }
    want.sort();
    assert_eq!(got, want);
    // RFC 3339 rendering of window bounds.
    let one = rows
        .kpi("tickets_opened")
        .into_iter()
        .find(|r| &*r.window == "90s")
        .unwrap();
    let j: serde_json::Value = serde_json::from_str(&one.to_json()).unwrap();
    assert_eq!(j["window"], "90s");
    assert_eq!(j["window_start"], "2026-11-23T10:01:30Z");
    assert_eq!(j["window_end"], "2026-11-23T10:03:00Z");
    assert_eq!(j["group"], json!({}));
    assert_eq!(j["value"], json!(1));
    assert_eq!(j["count"], json!(1));
    assert!(j.get("numerator").is_none() && j.get("quantiles").is_none());
}

#[test]
fn record_json_shape_for_ratio_and_distribution() {
    let mut ev = Events::new();
    ev.add(
        "chat.requested",
        0,
        json!({"chat_id": "c", "customer_id": "x", "region": "eu"}),
    );
    ev.add(
        "chat.agent_joined",
        45,
        json!({"chat_id": "c", "agent_id": "a"}),
    );
    let out = ev.run(&tumbling10(r#"[["region"]]"#));
    let r = Rows::of(&out);
    let sl: serde_json::Value = serde_json::from_str(
        &r.get("chat_service_level", W0, &[("region", "eu")])
            .to_json(),
    )
    .unwrap();
    assert_eq!(sl["kpi"], "chat_service_level");
    assert_eq!(sl["window"], "10m");
    assert_eq!(sl["window_start"], "2026-11-23T10:00:00Z");
    assert_eq!(sl["window_end"], "2026-11-23T10:10:00Z");
    assert_eq!(sl["group"], json!({"region": "eu"}));
    assert_eq!(sl["value"].as_f64(), Some(1.0));
    assert_eq!(sl["count"], json!(1));
    assert_eq!(sl["numerator"], json!(1));
    assert_eq!(sl["revision"], json!(0));
    let wt: serde_json::Value = serde_json::from_str(
        &r.get("chat_wait_time_seconds", W0, &[("region", "eu")])
            .to_json(),
    )
    .unwrap();
    assert_eq!(wt["value"].as_f64(), Some(45.0));
    for q in ["p50", "p90", "p99"] {
        let v = wt["quantiles"][q].as_f64().unwrap();
        assert!(close(v, 45.0, 0.01), "{q} = {v}");
    }
    assert!(wt.get("numerator").is_none());
}

#[test]
fn grouping_set_applicability() {
    let cfg = tumbling10(
        r#"[[], ["channel"], ["region"], ["agent_id"], ["region", "agent_id"], ["channel", "region"]]"#,
    );
    let mut ev = Events::new();
    ev.add(
        "chat.requested",
        1,
        json!({"chat_id": "c", "customer_id": "x", "channel": "chat", "region": "eu", "agent_id": "a1"}),
    );
    ev.add(
        "ticket.opened",
        2,
        json!({"ticket_id": "t", "customer_id": "x", "channel": "email", "region": "eu"}),
    );
    ev.add(
        "survey.submitted",
        3,
        json!({"survey": "nps", "score": 10, "customer_id": "x", "agent_id": "a1",
               "channel": "chat", "region": "eu"}),
    );
    ev.add(
        "subscription.started",
        4,
        json!({"subscription_id": "s", "customer_id": "x", "region": "eu"}),
    );
    ev.add(
        "subscription.renewed",
        5,
        json!({"subscription_id": "s", "region": "eu", "channel": "web", "agent_id": "a1"}),
    );
    let out = ev.run(&cfg);
    let r = Rows::of(&out);
    assert_eq!(
        r.groups("chats_requested", W0),
        groups(&[&[], &[("region", "eu")]])
    );
    assert_eq!(
        r.groups("tickets_opened", W0),
        groups(&[
            &[],
            &[("channel", "email")],
            &[("region", "eu")],
            &[("channel", "email"), ("region", "eu")],
        ])
    );
    assert_eq!(
        r.groups("nps", W0),
        groups(&[
            &[],
            &[("channel", "chat")],
            &[("region", "eu")],
            &[("agent_id", "a1")],
            &[("region", "eu"), ("agent_id", "a1")],
            &[("channel", "chat"), ("region", "eu")],
        ])
    );
    assert_eq!(
        r.groups("renewal_rate", W0),
        groups(&[&[], &[("region", "eu")]])
    );
    assert_value(
        r.get("nps", W0, &[("region", "eu"), ("agent_id", "a1")]),
        1,
        100.0,
    );
    assert_eq!(out.final_rows().len(), 2 + 4 + 6 + 2);
}

#[test]
fn absent_dimensions_are_unknown() {
    let mut ev = Events::new();
    ev.add(
        "ticket.opened",
        1,
        json!({"ticket_id": "t", "customer_id": "x", "channel": "email"}),
    );
    ev.add("ticket.resolved", 61, json!({"ticket_id": "t"}));
    let out = ev.run(&tumbling10(ALL_SETS));
    let r = Rows::of(&out);
    assert_count(r.get("tickets_opened", W0, &[("region", "unknown")]), 1);
    assert_dist(
        r.get(
            "first_resolution_time_seconds",
            W0,
            &[("agent_id", "unknown")],
        ),
        1,
        60.0,
        [60.0; 3],
    );
    assert_ratio(r.get("fcr_rate", W0, &[("agent_id", "unknown")]), 1, 1);
    assert_ratio(r.get("fcr_rate", W0, &[("region", "unknown")]), 1, 1);
    assert_ratio(r.get("fcr_rate", W0, &[("channel", "email")]), 1, 1);
}

#[test]
fn epoch_millis_and_offsets_are_the_same_instant() {
    // B+59.5 s as epoch millis and as RFC 3339 with a +02:00 offset.
    let mut ev = Events::new();
    ev.add_epoch_ms(
        "ticket.opened",
        0,
        json!({"ticket_id": "t", "customer_id": "x", "channel": "email"}),
    );
    ev.add_ts(
        "ticket.replied",
        json!("2026-11-23T12:00:59.5+02:00"),
        json!({"ticket_id": "t", "author": "agent", "agent_id": "a"}),
    );
    ev.add_epoch_ms(
        "ticket.opened",
        599_999,
        json!({"ticket_id": "u", "customer_id": "x", "channel": "email"}),
    );
    let out = ev.run(&tumbling10(OVERALL));
    let r = Rows::of(&out);
    assert_dist(
        r.get("first_reply_time_seconds", W0, &[]),
        1,
        59.5,
        [59.5; 3],
    );
    assert_count(r.get("tickets_opened", W0, &[]), 2);
    r.none("tickets_opened", W1, &[]);
}

#[test]
fn orphans_are_counted_and_change_nothing() {
    let mut ev = Events::new();
    ev.add(
        "ticket.replied",
        10,
        json!({"ticket_id": "never-opened", "author": "agent", "agent_id": "a"}),
    );
    ev.add(
        "chat.agent_joined",
        20,
        json!({"chat_id": "never-requested", "agent_id": "a"}),
    );
    ev.add("ticket.resolved", 30, json!({"ticket_id": "never-opened"}));
    let out = ev.run(&tumbling10(ALL_SETS));
    assert!(out.records.is_empty(), "{:?}", out.records);
    assert_eq!(out.counters.orphans, 3);
    assert_eq!(out.counters.invalid, 0);
}

/// A 1h entity TTL, 10-minute tumbling windows, the overall group only.
fn one_hour_ttl() -> cxpulse::config::Config {
    cxpulse::config::Config::from_toml(
        "[engine]\nentity_ttl = \"1h\"\nwindows = [ { size = \"10m\", step = \"10m\" } ]\ngrouping_sets = [[]]\n",
    )
    .unwrap()
}

/// Entity TTL (README, "Entity TTL"): state idle for longer than
/// `entity_ttl` is gone for the next event, whenever the last sweep ran.
/// With a 1h TTL the sweeps run every 6 minutes of event time; t1's reply
/// comes 90 s past its TTL, before any sweep could have dropped it.
#[test]
fn entity_idle_past_its_ttl_is_gone_for_the_next_event() {
    let cfg = one_hour_ttl();
    let mut ev = Events::new();
    for id in ["t1", "t2"] {
        ev.add(
            "ticket.opened",
            0,
            json!({"ticket_id": id, "customer_id": "c", "channel": "email"}),
        );
    }
    ev.add(
        "subscription.started",
        0,
        json!({"subscription_id": "s1", "customer_id": "c"}),
    );
    let reply = json!({"author": "agent", "agent_id": "a"});
    let mut r2 = reply.clone();
    r2["ticket_id"] = json!("t2");
    ev.add("ticket.replied", 3600, r2); // idle exactly the TTL: still there
    let mut r1 = reply.clone();
    r1["ticket_id"] = json!("t1");
    ev.add("ticket.replied", 3690, r1); // idle 1h 1m 30s: gone
                                        // An active subscription is never dropped, however quiet.
    ev.add(
        "subscription.renewed",
        3700,
        json!({"subscription_id": "s1"}),
    );
    let out = ev.run(&cfg);
    assert!(out.invalid.is_empty(), "{:?}", out.invalid);
    assert_eq!(out.counters.orphans, 1);
    assert!(out.counters.evicted_entities >= 1);
    let r = Rows::of(&out);
    let first_reply = r.get("first_reply_time_seconds", 3600, &[]);
    assert_eq!(first_reply.count, 1, "only t2's reply: {first_reply:?}");
    r.none("first_reply_time_seconds", 3000, &[]);
    assert_ratio(r.get("renewal_rate", 3600, &[]), 1, 1);
}

/// An id whose state went past the TTL starts afresh when it is opened
/// (or started) again: a new ticket with its own open time, a new pending
/// cart with its own abandonment timer, not the stale state continued.
#[test]
fn entity_started_again_after_its_ttl_starts_afresh() {
    let cfg = one_hour_ttl();
    let mut ev = Events::new();
    let ticket = json!({"ticket_id": "t1", "customer_id": "c", "channel": "email"});
    let cart = json!({"checkout_id": "k", "customer_id": "c"});
    ev.add("ticket.opened", 0, ticket.clone());
    ev.add("checkout.started", 0, cart.clone());
    ev.add(
        "checkout.completed",
        60,
        json!({"checkout_id": "k", "order_id": "o", "value": 3}),
    );
    ev.add("ticket.opened", 3690, ticket); // idle 1h 1m 30s: a new ticket
    ev.add(
        "ticket.replied",
        3700,
        json!({"ticket_id": "t1", "author": "agent", "agent_id": "a"}),
    );
    ev.add("checkout.started", 3700, cart); // completed, idle past the TTL
    let out = ev.run(&cfg);
    assert!(out.invalid.is_empty(), "{:?}", out.invalid);
    assert_eq!(out.counters.late, 0);
    assert_eq!(out.counters.orphans, 0);
    assert_eq!(out.counters.evicted_entities, 2, "{:?}", out.counters);
    let r = Rows::of(&out);
    // Measured from the second open, not the first (3,700 s).
    assert_dist(
        r.get("first_reply_time_seconds", 3600, &[]),
        1,
        10.0,
        [10.0; 3],
    );
    assert_count(r.get("tickets_opened", 3600, &[]), 1);
    // The new cart's timer fires 30 minutes after its start, 5,500 s.
    assert_ratio(r.get("cart_abandonment_rate", 5400, &[]), 1, 1);
}

#[test]
fn every_kpi_name_is_covered_by_these_tests() {
    // A guard so that a renamed or missing KPI shows up here.
    let names = [
        "tickets_opened",
        "first_reply_time_seconds",
        "first_resolution_time_seconds",
        "fcr_rate",
        "reopen_rate",
        "chats_requested",
        "chat_wait_time_seconds",
        "chat_abandonment_rate",
        "chat_service_level",
        "chat_handle_time_seconds",
        "csat_rate",
        "csat_mean",
        "nps",
        "ces_mean",
        "checkouts_started",
        "orders_completed",
        "revenue",
        "average_order_value",
        "checkout_conversion_rate",
        "cart_abandonment_rate",
        "churn_rate",
        "renewal_rate",
    ];
    let mut seen: Vec<&str> = Vec::new();
    for s in [
        first_reply_scenario(),
        resolution_scenario(),
        chat_scenario(),
        survey_scenario(),
        checkout_scenario(),
        subscription_scenario(),
    ] {
        let out = s.run(&tumbling10(ALL_SETS));
        seen.extend(out.final_rows().iter().map(|x| x.kpi));
    }
    seen.sort();
    seen.dedup();
    let mut want = names.to_vec();
    want.sort();
    assert_eq!(seen, want);
}

#[test]
fn distribution_quantiles_are_within_one_percent_of_nearest_rank() {
    // 600 first-reply times spread over four orders of magnitude (0.25 s …
    // ~2,400 s) in one 24h window [2026-11-23T00:00Z, +24h); the expected
    // quantiles are exact nearest-rank values (rank ⌈q·n⌉) computed here.
    let cfg = config(r#"[ { size = "24h" } ]"#, OVERALL);
    let mut timed: Vec<(i64, i64, String)> = Vec::new(); // (ms, order, line)
    let mut waits = Vec::new();
    for i in 0..600i64 {
        // j: a permutation of 0..600, so waits do not grow with i.
        let j = (i * 7919) % 600;
        let wait_ms = (250.0 * 1.0154f64.powi(j as i32)).round() as i64;
        waits.push(wait_ms as f64 / 1000.0);
        let open_ms = i * 1000;
        timed.push((
            open_ms,
            0,
            event_line(
                &format!("o{i}"),
                "ticket.opened",
                json!(B_MS + open_ms),
                json!({"ticket_id": format!("t{i}"), "customer_id": "c", "channel": "web"}),
            ),
        ));
        timed.push((
            open_ms + wait_ms,
            1,
            event_line(
                &format!("r{i}"),
                "ticket.replied",
                json!(B_MS + open_ms + wait_ms),
                json!({"ticket_id": format!("t{i}"), "author": "agent", "agent_id": "a"}),
            ),
        ));
    }
    timed.sort_by_key(|p| (p.0, p.1));
    let lines: Vec<String> = timed.into_iter().map(|p| p.2).collect();
    let out = run(&cfg, &lines);
    let r = Rows::of(&out);
    let mean = waits.iter().sum::<f64>() / waits.len() as f64;
    let q = [
        nearest_rank(&waits, 0.5),
        nearest_rank(&waits, 0.9),
        nearest_rank(&waits, 0.99),
    ];
    // The test data spans a wide range: p99 / p50 is large.
    assert!(q[2] / q[0] > 10.0, "{q:?}");
    assert_eq!(r.kpi("first_reply_time_seconds").len(), 1);
    let row = r.get("first_reply_time_seconds", -10 * 3600, &[]);
    assert_dist(row, 600, mean, q);
}

#[test]
fn zero_durations_report_zero_quantiles() {
    let mut ev = Events::new();
    ev.add(
        "ticket.opened",
        5,
        json!({"ticket_id": "t", "customer_id": "c", "channel": "web"}),
    );
    ev.add(
        "ticket.replied",
        5,
        json!({"ticket_id": "t", "author": "agent", "agent_id": "a"}),
    );
    ev.add(
        "chat.requested",
        6,
        json!({"chat_id": "c", "customer_id": "c"}),
    );
    ev.add(
        "chat.agent_joined",
        6,
        json!({"chat_id": "c", "agent_id": "a"}),
    );
    let out = ev.run(&tumbling10(OVERALL));
    let r = Rows::of(&out);
    assert_dist(r.get("first_reply_time_seconds", W0, &[]), 1, 0.0, [0.0; 3]);
    assert_dist(r.get("chat_wait_time_seconds", W0, &[]), 1, 0.0, [0.0; 3]);
    assert_ratio(r.get("chat_service_level", W0, &[]), 1, 1);
}
