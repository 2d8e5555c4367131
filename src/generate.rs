//! Synthetic customer-experience traffic.
//!
//! This module owns `cxpulse`'s traffic generator: a deterministic, seedable,
//! streaming source of realistic CX events in the shapes of the KPI contract
//! (section 1) — support tickets, live chats, surveys, checkouts and
//! subscriptions — delivered the way a real pipeline receives them:
//!
//! - in **arrival order**, shuffled within a bounded out-of-orderness
//!   ([`GenerateOptions::disorder_ms`]);
//! - with a fraction of **late** deliveries (well past the disorder bound),
//!   **duplicate** deliveries (same bytes, same `event_id`, a bit later) and
//!   extra **malformed** lines of every invalid kind the contract lists
//!   ([`MalformedKind`]);
//! - with `ts` written half as integer epoch milliseconds and half as RFC 3339
//!   strings with various offsets (`Z`, `+02:00`, `-05:00`, `+05:30`, …).
//!
//! The traffic model (entity life cycles, delays, mixes, scenarios) is
//! described on [`Generator`].
//!
//! # Determinism
//!
//! A seed and a set of options give byte-identical output on every platform
//! and with every Rust version: the module uses its own PRNG (xoshiro256**
//! seeded through SplitMix64), its own `ln`/`exp` built from IEEE basic
//! operations only (no platform `libm`), its own calendar arithmetic, and
//! total orders (time, then creation sequence) for every priority queue.
//! Independent random streams drive the traffic, the delivery (timestamp
//! style, disorder, lateness, duplicates) and the malformed lines, so changing
//! e.g. `late_fraction` changes which events are late but not the traffic.
//!
//! # Memory
//!
//! Nothing is materialised up front and memory does not grow with the
//! duration of the run, only with `rate ×` how long entities stay open:
//!
//! - one small state (about 56 bytes) per entity that still has a future
//!   event before the end of the run — an open ticket, a chat, a pending
//!   checkout. Tickets stay open for up to hours, so an hour-long run peaks at
//!   about 180 open entities per event/s of `rate` (≈ 10 KB per event/s:
//!   2 MB at the default 200/s, but ~10 GB at 1,000,000/s for a full hour);
//! - the deliveries waiting for their arrival time, about
//!   `rate × (0.12 s + 0.04 × disorder + late_fraction × late delay)` events;
//! - O(1) for subscriptions (the initial base is a counter plus a keyed
//!   pseudo-random permutation).
//!
//! The first records of any run, even `rate = 1_000_000` for an hour, come out
//! at once; [`Generator::open_entities`] and [`Generator::queued_deliveries`]
//! report the two buffers.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt::{self, Write as _};
use std::iter::FusedIterator;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// `2026-11-02T00:00:00Z` in epoch milliseconds: the default start of the
/// generated event time.
pub const DEFAULT_START_MS: i64 = 1_793_577_600_000;

/// `9999-12-31T00:00:00Z`: the last event time an RFC 3339 timestamp (4-digit
/// year) can still carry with any of the offsets used.
const MAX_TS_MS: i64 = 253_402_214_400_000;

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// The shape of the traffic over the run.
///
/// The "middle third" is event time in
/// `[start + duration/3, start + 2·duration/3)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Stationary traffic for the whole run.
    #[default]
    Steady,
    /// Chats requested in the middle third wait about 5× longer for an agent,
    /// so more customers give up (higher abandonment, lower service level,
    /// lower chat CSAT).
    WaitSpike,
    /// Subscription cancellations are about 5× more frequent in the middle
    /// third.
    ChurnWave,
}

impl Scenario {
    /// Every scenario, in declaration order.
    pub const ALL: [Scenario; 3] = [Scenario::Steady, Scenario::WaitSpike, Scenario::ChurnWave];

    /// The name used on the command line and in config: `"steady"`,
    /// `"wait-spike"`, `"churn-wave"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Steady => "steady",
            Scenario::WaitSpike => "wait-spike",
            Scenario::ChurnWave => "churn-wave",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scenario {
    type Err = ParseScenarioError;

    /// Parses `"steady"`, `"wait-spike"` or `"churn-wave"` (ASCII case and
    /// `_` for `-` are tolerated).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.as_str() == norm)
            .ok_or_else(|| ParseScenarioError {
                input: s.to_string(),
            })
    }
}

/// The error of [`Scenario::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scenario {input:?}: expected one of \"steady\", \"wait-spike\", \"churn-wave\"")]
pub struct ParseScenarioError {
    input: String,
}

impl ParseScenarioError {
    /// The text that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }
}

/// Errors of [`GenerateOptions::validate`] and [`Generator::try_new`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    /// An option is out of its domain.
    #[error("invalid generate option `{field}`: {reason}")]
    InvalidOption {
        /// The option's field name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// What to generate. See [`Generator`] for the traffic model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerateOptions {
    /// Seed of every random choice; the same seed and options give the same
    /// bytes forever.
    pub seed: u64,
    /// Mean events per second of event time, all types together, before
    /// duplicates and malformed lines. Averaged over the run: the generator
    /// calibrates entity arrival rates so that the whole run holds about
    /// `rate × duration` valid events even though follow-up events (replies,
    /// resolves, joins, completions) only build up after the start.
    pub rate: f64,
    /// Event-time span of the run, in milliseconds.
    pub duration_ms: i64,
    /// Event time (epoch ms) of the start of the run; every valid event has
    /// `start_ms <= ts < start_ms + duration_ms`.
    pub start_ms: i64,
    /// Arrival order is shuffled within this bound: an on-time event arrives
    /// less than `disorder_ms` of event time after events stamped later.
    pub disorder_ms: i64,
    /// Fraction of events delivered late: `(disorder_ms, disorder_ms +
    /// late_by_ms]` of event time after their `ts`.
    pub late_fraction: f64,
    /// How far (event time) beyond the disorder bound late events are
    /// delayed, at most.
    pub late_by_ms: i64,
    /// Fraction of events delivered twice (same bytes); the second copy
    /// arrives up to `max(disorder_ms, 1s)` after the first.
    pub duplicate_fraction: f64,
    /// Extra invalid lines, as a fraction of the valid events, spread over
    /// every [`MalformedKind`].
    pub malformed_fraction: f64,
    /// The shape of the traffic over the run.
    pub scenario: Scenario,
    /// Number of distinct agent ids (`a-1` … `a-N`).
    pub agents: usize,
}

impl Default for GenerateOptions {
    /// Seed 42, 200 events/s for one hour from 2026-11-02T00:00:00Z, 20 s of
    /// disorder, 0.2 % late by up to 4 min more, 0.2 % duplicates, 0.1 %
    /// malformed, steady, 40 agents.
    fn default() -> Self {
        GenerateOptions {
            seed: 42,
            rate: 200.0,
            duration_ms: 3_600_000,
            start_ms: DEFAULT_START_MS,
            disorder_ms: 20_000,
            late_fraction: 0.002,
            late_by_ms: 240_000,
            duplicate_fraction: 0.002,
            malformed_fraction: 0.001,
            scenario: Scenario::Steady,
            agents: 40,
        }
    }
}

impl GenerateOptions {
    /// The end of the run's event time (exclusive): `start_ms + duration_ms`.
    pub fn end_ms(&self) -> i64 {
        self.start_ms.saturating_add(self.duration_ms)
    }

    /// Checks every option's domain.
    pub fn validate(&self) -> Result<(), GenerateError> {
        fn bad(field: &'static str, reason: impl Into<String>) -> Result<(), GenerateError> {
            Err(GenerateError::InvalidOption {
                field,
                reason: reason.into(),
            })
        }
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1e9) {
            return bad(
                "rate",
                format!("must be events per second in (0, 1e9], got {}", self.rate),
            );
        }
        for (field, v) in [
            ("duration_ms", self.duration_ms),
            ("disorder_ms", self.disorder_ms),
            ("late_by_ms", self.late_by_ms),
            ("start_ms", self.start_ms),
        ] {
            if v < 0 {
                return bad(field, format!("must not be negative, got {v}"));
            }
        }
        for (field, v) in [
            ("late_fraction", self.late_fraction),
            ("duplicate_fraction", self.duplicate_fraction),
            ("malformed_fraction", self.malformed_fraction),
        ] {
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                return bad(field, format!("must be a fraction in [0, 1], got {v}"));
            }
        }
        if self.agents == 0 || self.agents > u32::MAX as usize {
            return bad(
                "agents",
                format!("must be in 1..={}, got {}", u32::MAX, self.agents),
            );
        }
        let end = self.start_ms.checked_add(self.duration_ms);
        if end.is_none_or(|e| e > MAX_TS_MS) {
            return bad(
                "duration_ms",
                "start_ms + duration_ms must be before 9999-12-31T00:00:00Z",
            );
        }
        let latest_arrival = end
            .and_then(|e| e.checked_add(self.disorder_ms))
            .and_then(|e| e.checked_add(self.late_by_ms))
            .and_then(|e| e.checked_add(self.disorder_ms.max(1_000)))
            .and_then(|e| e.checked_add(2));
        if latest_arrival.is_none() {
            return bad("late_by_ms", "arrival times overflow i64");
        }
        Ok(())
    }
}

/// The input stream (Kafka topic) a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// `ticket.*` events.
    Tickets,
    /// `chat.*` events.
    Chats,
    /// `survey.*` events.
    Surveys,
    /// `checkout.*` and `subscription.*` events.
    Checkouts,
}

impl Stream {
    /// Every stream, in declaration order.
    pub fn all() -> [Stream; 4] {
        [
            Stream::Tickets,
            Stream::Chats,
            Stream::Surveys,
            Stream::Checkouts,
        ]
    }

    /// `"tickets"`, `"chats"`, `"surveys"` or `"checkouts"`.
    pub fn name(&self) -> &'static str {
        match self {
            Stream::Tickets => "tickets",
            Stream::Chats => "chats",
            Stream::Surveys => "surveys",
            Stream::Checkouts => "checkouts",
        }
    }

    /// The contract's default topic: `"cx.tickets"`, `"cx.chats"`,
    /// `"cx.surveys"` or `"cx.checkouts"`.
    pub fn default_topic(&self) -> &'static str {
        match self {
            Stream::Tickets => "cx.tickets",
            Stream::Chats => "cx.chats",
            Stream::Surveys => "cx.surveys",
            Stream::Checkouts => "cx.checkouts",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a record is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// A valid event arriving within the disorder bound.
    Normal,
    /// A valid event arriving more than `disorder_ms` after its `ts`.
    Late,
    /// The second delivery of a valid event (same bytes as the first, which is
    /// `Normal` or `Late`).
    Duplicate,
    /// An invalid line; see [`GeneratedRecord::malformed`].
    Malformed,
}

impl RecordKind {
    /// `"normal"`, `"late"`, `"duplicate"` or `"malformed"`.
    pub fn name(&self) -> &'static str {
        match self {
            RecordKind::Normal => "normal",
            RecordKind::Late => "late",
            RecordKind::Duplicate => "duplicate",
            RecordKind::Malformed => "malformed",
        }
    }
}

/// The kinds of invalid lines the contract lists (section 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MalformedKind {
    /// Not JSON at all (garbage, truncated, single quotes, trailing comma…).
    NotJson,
    /// JSON, but not an object (array, string, number, null).
    NotObject,
    /// A `type` the contract does not know.
    UnknownType,
    /// A required field is missing (`event_id`, `type`, `ts`, or a type's own).
    MissingField,
    /// A field has the wrong JSON type (`ts: true`, `score: 7.5`, …).
    MistypedField,
    /// A survey score outside its scale.
    ScoreOutOfRange,
    /// A negative checkout value.
    NegativeValue,
    /// A `ts` string that is not RFC 3339 with an offset.
    UnparseableTs,
    /// `event_id: ""`.
    EmptyEventId,
    /// `ticket.replied` with `author: "agent"` and no `agent_id`.
    AgentReplyWithoutAgentId,
}

impl MalformedKind {
    /// Every kind, in declaration order.
    pub const ALL: [MalformedKind; 10] = [
        MalformedKind::NotJson,
        MalformedKind::NotObject,
        MalformedKind::UnknownType,
        MalformedKind::MissingField,
        MalformedKind::MistypedField,
        MalformedKind::ScoreOutOfRange,
        MalformedKind::NegativeValue,
        MalformedKind::UnparseableTs,
        MalformedKind::EmptyEventId,
        MalformedKind::AgentReplyWithoutAgentId,
    ];

    /// A snake_case name, e.g. `"score_out_of_range"`.
    pub fn name(&self) -> &'static str {
        match self {
            MalformedKind::NotJson => "not_json",
            MalformedKind::NotObject => "not_object",
            MalformedKind::UnknownType => "unknown_type",
            MalformedKind::MissingField => "missing_field",
            MalformedKind::MistypedField => "mistyped_field",
            MalformedKind::ScoreOutOfRange => "score_out_of_range",
            MalformedKind::NegativeValue => "negative_value",
            MalformedKind::UnparseableTs => "unparseable_ts",
            MalformedKind::EmptyEventId => "empty_event_id",
            MalformedKind::AgentReplyWithoutAgentId => "agent_reply_without_agent_id",
        }
    }
}

impl fmt::Display for MalformedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedRecord {
    /// The input stream (topic) it belongs to.
    pub stream: Stream,
    /// The message key: the entity id (`ticket_id`, `chat_id`, `checkout_id`,
    /// `subscription_id`; `customer_id` for surveys). For malformed lines an
    /// arbitrary string.
    pub key: String,
    /// Event time of the event (for malformed lines: when they were emitted).
    pub ts_ms: i64,
    /// Arrival time on the same clock as `ts_ms`; records come out in
    /// non-decreasing `arrival_ms` order. Useful to pace a live producer.
    pub arrival_ms: i64,
    /// How the record is delivered.
    pub kind: RecordKind,
    /// For `RecordKind::Malformed`, which rule the line breaks.
    pub malformed: Option<MalformedKind>,
    /// One JSON object (or the malformed text), no trailing newline.
    pub payload: String,
}

/// Counters of the records emitted so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenerateStats {
    /// Valid events delivered within the disorder bound.
    pub normal: u64,
    /// Valid events delivered late.
    pub late: u64,
    /// Second deliveries.
    pub duplicates: u64,
    /// Invalid lines.
    pub malformed: u64,
}

impl GenerateStats {
    /// All records emitted.
    pub fn total(&self) -> u64 {
        self.normal + self.late + self.duplicates + self.malformed
    }
}

/// The streaming traffic generator: an iterator of [`GeneratedRecord`]s in
/// arrival order.
///
/// # Traffic model
///
/// Entities open as Poisson processes; each then lives through a small state
/// machine whose delays are lognormal. Any follow-up that would fall at or
/// after the end of the run is cut off. Of the valid events about 28 % are
/// ticket events, 27 % chat, 10 % survey, 34 % checkout and 1 % subscription
/// events, plus an initial base of subscriptions.
///
/// - **Tickets** (`t-N`): `ticket.opened` with a channel (email, phone, web,
///   social, chat), a region (us, eu, apac; 8 % without), a priority (an
///   extra field the contract ignores) and a customer. Web/chat/social (and
///   some email) tickets get an instant bot reply; some get a private agent
///   note or a customer nudge before the first public agent reply, which
///   comes after minutes (phone, chat) to hours (email), faster for urgent
///   tickets. Then either a resolve (about 60 % one-touch) or customer/agent
///   rounds. Agent replies always carry `agent_id` (usually the assigned
///   agent, sometimes a hand-off); `public` is sometimes omitted (default
///   true). About 8 % of resolves carry no agent (auto-close), 5 % of tickets
///   are closed without any agent reply, and 8 % of resolved tickets are
///   reopened later and resolved again.
/// - **Chats** (`chat-N`): `chat.requested`, then `chat.agent_joined` after a
///   wait of seconds to minutes unless the customer's patience runs out first
///   (`chat.ended` without a join: an abandon); 4 % are very short abandons
///   under 5 s. Handle times are minutes; 3 % are transferred to a second
///   agent.
/// - **Surveys** (`survey.submitted`, key = customer): csat 1–5 (60 %), nps
///   0–10 (25 %), ces 1–7 (15 %), mostly with `agent_id`; each agent has a
///   quality that shifts its scores. `channel` about half the time.
/// - **Checkouts** (`co-N`): `checkout.started` (web/app), completed for about
///   45–58 % within minutes with an `order_id` (`o-N`) and a two-decimal
///   `value` (some zero); 3 % of completions come after more than 30 min.
/// - **Subscriptions** (`sub-N`, on the checkouts stream): a base of
///   `subscription.started` events in the first `min(2 min, duration/4)`
///   (about `0.5 × rate` per second), then renewals and cancellations of base
///   subscriptions (never of a cancelled one), new starts, and a few trial
///   cancellations of new subscriptions.
///
/// Scenarios: see [`Scenario`].
#[derive(Debug)]
pub struct Generator {
    opts: GenerateOptions,
    world: World,
    actors: BinaryHeap<Scheduled>,
    actor_seq: u64,
    arrivals: BinaryHeap<Pending>,
    arrival_seq: u64,
    delivery: Rng,
    next_event_id: u64,
    stats: GenerateStats,
}

impl Generator {
    /// A generator for `opts`.
    ///
    /// # Panics
    ///
    /// If the options are invalid (see [`GenerateOptions::validate`]); use
    /// [`Generator::try_new`] to get the error instead.
    pub fn new(opts: GenerateOptions) -> Self {
        match Self::try_new(opts) {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        }
    }

    /// A generator for `opts`, or why the options are invalid.
    pub fn try_new(opts: GenerateOptions) -> Result<Self, GenerateError> {
        opts.validate()?;
        let world = World::new(&opts);
        let mut g = Generator {
            world,
            actors: BinaryHeap::new(),
            actor_seq: 0,
            arrivals: BinaryHeap::new(),
            arrival_seq: 0,
            delivery: Rng::new(opts.seed, STREAM_DELIVERY),
            next_event_id: 1,
            stats: GenerateStats::default(),
            opts,
        };
        if g.opts.duration_ms > 0 {
            for what in Spawn::ALL {
                if let Some(t) = g.world.next_arrival(what, 0.0) {
                    let ts = g.world.p.ts_of(t);
                    g.schedule(ts, Actor::Spawner { what, t });
                }
            }
            if g.world.p.base_subs > 0 {
                g.schedule(g.world.p.start, Actor::BaseSubs { next: 0 });
            }
        }
        Ok(g)
    }

    /// The options this generator runs with.
    pub fn options(&self) -> &GenerateOptions {
        &self.opts
    }

    /// Counters of the records emitted so far.
    pub fn stats(&self) -> GenerateStats {
        self.stats
    }

    /// Entities (and arrival processes) that still have a future event: the
    /// part of the state that grows with `rate ×` entity lifetimes.
    pub fn open_entities(&self) -> usize {
        self.actors.len()
    }

    /// Deliveries generated but not emitted yet (waiting for their arrival
    /// time): about `rate × (mean disorder + late_fraction × late delay)`.
    pub fn queued_deliveries(&self) -> usize {
        self.arrivals.len()
    }

    fn schedule(&mut self, ts: i64, actor: Actor) {
        if ts < self.world.p.end {
            self.actor_seq += 1;
            self.actors.push(Scheduled {
                ts,
                seq: self.actor_seq,
                actor,
            });
        }
    }

    fn enqueue(&mut self, arrival: i64, kind: RecordKind, ev: LogicalEvent) {
        self.arrival_seq += 1;
        self.arrivals.push(Pending {
            arrival,
            seq: self.arrival_seq,
            kind,
            ev,
        });
    }

    /// Produces the next logical event (in event-time order) and queues its
    /// deliveries.
    fn step(&mut self) {
        let Some(Scheduled { ts, actor, .. }) = self.actors.pop() else {
            return;
        };
        let fired = self.world.fire(actor, ts);
        for (t, a) in [fired.next, fired.spawned].into_iter().flatten() {
            debug_assert!(t >= ts, "actors must not schedule into the past");
            self.schedule(t, a);
        }
        let Some(body) = fired.body else {
            return;
        };
        if matches!(body, Body::Malformed(_)) {
            self.enqueue(
                ts,
                RecordKind::Malformed,
                LogicalEvent {
                    ts,
                    id: 0,
                    style: 0,
                    body,
                },
            );
            return;
        }
        // A fixed number of draws per event keeps the delivery stream aligned
        // whatever the fractions are.
        let d = &mut self.delivery;
        let (u_form, u_offset, u_micros) = (d.f64(), d.f64(), d.f64());
        let (u_late, u_far, u_delay) = (d.f64(), d.f64(), d.f64());
        let (u_dup, u_dup_delay) = (d.f64(), d.f64());
        let style = if u_form < 0.5 {
            0
        } else {
            let idx = pick_weighted(&TS_OFFSET_WEIGHTS, u_offset) as u8 + 1;
            idx | if u_micros < 0.15 { STYLE_MICROS } else { 0 }
        };
        let id = self.next_event_id;
        self.next_event_id += 1;
        let ev = LogicalEvent {
            ts,
            id,
            style,
            body,
        };
        let disorder = self.opts.disorder_ms;
        let (kind, delay) = if u_late < self.opts.late_fraction {
            let extra = (u_delay * self.opts.late_by_ms as f64) as i64;
            (RecordKind::Late, disorder + 1 + extra)
        } else {
            // Most events arrive within a fraction of a second of their ts;
            // some (a lagging partition, a retried batch) up to the bound.
            let bound = if u_far < FAR_JITTER_P {
                disorder
            } else {
                disorder.min(NEAR_JITTER_MS)
            };
            let jitter = (bound as f64 * u_delay) as i64;
            (RecordKind::Normal, jitter.min((disorder - 1).max(0)))
        };
        let arrival = ts + delay;
        if u_dup < self.opts.duplicate_fraction {
            let again = 1 + (u_dup_delay * disorder.max(1_000) as f64) as i64;
            self.enqueue(arrival + again, RecordKind::Duplicate, ev.clone());
        }
        self.enqueue(arrival, kind, ev);
    }

    fn emit(&mut self, p: Pending) -> GeneratedRecord {
        match p.kind {
            RecordKind::Normal => self.stats.normal += 1,
            RecordKind::Late => self.stats.late += 1,
            RecordKind::Duplicate => self.stats.duplicates += 1,
            RecordKind::Malformed => self.stats.malformed += 1,
        }
        let ts_ms = p.ev.ts;
        if let Body::Malformed(line) = p.ev.body {
            let MalformedLine {
                kind,
                stream,
                key,
                payload,
            } = *line;
            return GeneratedRecord {
                stream,
                key,
                ts_ms,
                arrival_ms: p.arrival,
                kind: RecordKind::Malformed,
                malformed: Some(kind),
                payload,
            };
        }
        let (stream, key, payload) = render(&p.ev);
        GeneratedRecord {
            stream,
            key,
            ts_ms,
            arrival_ms: p.arrival,
            kind: p.kind,
            malformed: None,
            payload,
        }
    }
}

impl Iterator for Generator {
    type Item = GeneratedRecord;

    fn next(&mut self) -> Option<GeneratedRecord> {
        loop {
            // Every event still to be generated has ts >= horizon, hence
            // arrival >= horizon and a larger sequence number.
            let horizon = self.actors.peek().map(|s| s.ts);
            match (self.arrivals.peek(), horizon) {
                (Some(top), h) if h.is_none_or(|h| top.arrival <= h) => {
                    let p = self.arrivals.pop().expect("peeked");
                    return Some(self.emit(p));
                }
                (None, None) => return None,
                _ => self.step(),
            }
        }
    }
}

impl FusedIterator for Generator {}

// ---------------------------------------------------------------------------
// Traffic model constants
// ---------------------------------------------------------------------------

const MINUTE: f64 = 60_000.0;
const HOUR: f64 = 60.0 * MINUTE;
const DAY: f64 = 24.0 * HOUR;

const REGIONS: [&str; 3] = ["us", "eu", "apac"];
/// us, eu, apac, no region field.
const REGION_WEIGHTS: [f64; 4] = [0.45, 0.30, 0.17, 0.08];

const CHANNELS: [&str; 5] = ["email", "phone", "web", "social", "chat"];
const CH_CHAT: u8 = 4;
const TICKET_CHANNEL_WEIGHTS: [f64; 5] = [0.36, 0.14, 0.26, 0.09, 0.15];
const SURVEY_CHANNEL_WEIGHTS: [f64; 5] = [0.30, 0.12, 0.20, 0.08, 0.30];
const FIRST_REPLY_MEDIAN_MIN: [f64; 5] = [45.0, 3.0, 30.0, 20.0, 4.0];
const BOT_REPLY_P: [f64; 5] = [0.25, 0.0, 0.55, 0.45, 0.6];

const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];
const PRIORITY_WEIGHTS: [f64; 4] = [0.20, 0.55, 0.20, 0.05];
const PRIORITY_SPEED: [f64; 4] = [1.8, 1.0, 0.6, 0.25];

const CHECKOUT_CHANNELS: [&str; 2] = ["web", "app"];
/// web, app, no channel field.
const CHECKOUT_CHANNEL_WEIGHTS: [f64; 3] = [0.58, 0.37, 0.05];
const CHECKOUT_COMPLETE_P: [f64; 3] = [0.45, 0.58, 0.50];

const SURVEYS: [&str; 3] = ["csat", "nps", "ces"];
const SURVEY_WEIGHTS: [f64; 3] = [0.60, 0.25, 0.15];
const SURVEY_AGENT_P: [f64; 3] = [0.92, 0.55, 0.90];

const CANCEL_REASONS: [&str; 5] = ["price", "not_using", "switched", "support", "other"];

/// Offsets (minutes) of RFC 3339 timestamps; index 0 is written `Z`.
const TS_OFFSETS_MIN: [i32; 8] = [0, 0, 120, -300, 60, 330, 540, -480];
const TS_OFFSET_WEIGHTS: [f64; 8] = [0.40, 0.03, 0.15, 0.15, 0.08, 0.07, 0.07, 0.05];
const STYLE_MICROS: u8 = 0x10;
/// Share of on-time events whose arrival jitter spans the whole disorder
/// bound; the others arrive within `NEAR_JITTER_MS`.
const FAR_JITTER_P: f64 = 0.08;
const NEAR_JITTER_MS: i64 = 250;

const SHARE_TICKETS: f64 = 0.28;
const SHARE_CHATS: f64 = 0.27;
const SHARE_SURVEYS: f64 = 0.10;
const SHARE_CHECKOUTS: f64 = 0.34;
const SUB_RENEW_SHARE: f64 = 0.006;
const SUB_CANCEL_SHARE: f64 = 0.0015;
const SUB_NEW_SHARE: f64 = 0.0015;
const TRIAL_CANCEL_P: f64 = 0.15;
const SPIKE_FACTOR: f64 = 5.0;

const STREAM_TRAFFIC: u64 = 1;
const STREAM_DELIVERY: u64 = 2;
const STREAM_MALFORMED: u64 = 3;
const STREAM_AGENTS: u64 = 4;
const STREAM_PERMUTATION: u64 = 5;
const CALIBRATION_SEED: u64 = 0x00C0_FFEE_5EED;
const CALIBRATION_SAMPLES: u32 = 4096;

// ---------------------------------------------------------------------------
// Deterministic randomness and math
// ---------------------------------------------------------------------------

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    mix64(*state)
}

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256** seeded through SplitMix64.
#[derive(Debug, Clone)]
struct Rng {
    s: [u64; 4],
}

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        let mut sm = seed ^ mix64(stream.wrapping_add(0x5851_F42D_4C95_7F2D));
        let mut s = [0u64; 4];
        for x in &mut s {
            *x = splitmix64(&mut sm);
        }
        if s == [0; 4] {
            s[0] = 1;
        }
        Rng { s }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 bits.
    fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Uniform in `[0, n)`; `n > 0`.
    fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform integer in `[lo, hi)`; `hi > lo`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64) as i64
    }

    fn pick(&mut self, weights: &[f64]) -> usize {
        let u = self.f64();
        pick_weighted(weights, u)
    }

    /// Exponential with mean 1.
    fn exp1(&mut self) -> f64 {
        -det_ln(1.0 - self.f64())
    }

    /// Standard normal (Marsaglia's polar method).
    fn normal(&mut self) -> f64 {
        loop {
            let u = 2.0 * self.f64() - 1.0;
            let v = 2.0 * self.f64() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                return u * (-2.0 * det_ln(s) / s).sqrt();
            }
        }
    }

    /// Lognormal delay in ms with the given median, clamped to `[lo, hi]`.
    fn delay(&mut self, median_ms: f64, sigma: f64, lo_ms: f64, hi_ms: f64) -> i64 {
        (median_ms * det_exp(sigma * self.normal())).clamp(lo_ms, hi_ms) as i64
    }
}

/// Index of `u ∈ [0, 1)` in the cumulative `weights` (which need not sum to 1).
fn pick_weighted(weights: &[f64], u: f64) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = u * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// Natural logarithm from IEEE basic operations only (bit-identical
/// everywhere), accurate to a few ulps for positive finite inputs.
fn det_ln(x: f64) -> f64 {
    let x = if x < f64::MIN_POSITIVE {
        f64::MIN_POSITIVE
    } else {
        x
    };
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln m = 2·atanh(s), |s| <= 0.1716.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = s;
    let mut k = 3.0;
    for _ in 0..12 {
        term *= s2;
        sum += term / k;
        k += 2.0;
    }
    e as f64 * std::f64::consts::LN_2 + 2.0 * sum
}

/// `e^x` from IEEE basic operations only (bit-identical everywhere).
fn det_exp(x: f64) -> f64 {
    if x > 700.0 {
        return f64::MAX;
    }
    if x < -700.0 {
        return 0.0;
    }
    let k = (x / std::f64::consts::LN_2).round();
    let r = x - k * std::f64::consts::LN_2;
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 1..=18 {
        term *= r / n as f64;
        sum += term;
    }
    sum * f64::from_bits(((k as i64 + 1023) as u64) << 52)
}

/// A keyed pseudo-random permutation of `[0, n)` (4-round Feistel network
/// with cycle walking): lets cancellations pick distinct base subscriptions
/// in random order with O(1) memory.
#[derive(Debug, Clone)]
struct Permutation {
    n: u64,
    half_bits: u32,
    keys: [u64; 4],
}

impl Permutation {
    fn new(n: u64, rng: &mut Rng) -> Permutation {
        let bits = 64 - n.saturating_sub(1).leading_zeros();
        let half_bits = bits.div_ceil(2).max(1);
        let keys = [
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
        ];
        Permutation { n, half_bits, keys }
    }

    fn apply(&self, x: u64) -> u64 {
        debug_assert!(x < self.n);
        let mask = (1u64 << self.half_bits) - 1;
        let mut y = x;
        loop {
            let (mut l, mut r) = (y >> self.half_bits, y & mask);
            for k in self.keys {
                let f = mix64(r ^ k) & mask;
                (l, r) = (r, l ^ f);
            }
            y = (l << self.half_bits) | r;
            if y < self.n {
                return y;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The world: entity state machines and arrival processes
// ---------------------------------------------------------------------------

/// Processes that open entities or emit standalone events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spawn {
    Ticket,
    Chat,
    Survey,
    Checkout,
    NewSub,
    Renew,
    Cancel,
    Malformed,
}

impl Spawn {
    const ALL: [Spawn; 8] = [
        Spawn::Ticket,
        Spawn::Chat,
        Spawn::Survey,
        Spawn::Checkout,
        Spawn::NewSub,
        Spawn::Renew,
        Spawn::Cancel,
        Spawn::Malformed,
    ];
}

#[derive(Debug, Clone, Copy)]
struct Params {
    start: i64,
    end: i64,
    dur_s: f64,
    scenario: Scenario,
    mid_lo: i64,
    mid_hi: i64,
    /// Seconds since start where the piecewise-constant rates change.
    breakpoints: [f64; 3],
    ramp_s: f64,
    ramp_ms: i64,
    base_subs: u64,
    customer_pool: u64,
    /// Base rates (per second of event time), indexed like `Spawn::ALL`.
    rates: [f64; 8],
}

impl Params {
    fn ts_of(&self, t_s: f64) -> i64 {
        self.start + (t_s * 1000.0) as i64
    }

    fn in_middle(&self, ts: i64) -> bool {
        ts >= self.mid_lo && ts < self.mid_hi
    }

    fn rate_at(&self, what: Spawn, t_s: f64) -> f64 {
        let base = self.rates[what as usize];
        match what {
            Spawn::Renew if t_s < self.ramp_s => 0.0,
            Spawn::Cancel if t_s < self.ramp_s => 0.0,
            Spawn::Cancel
                if self.scenario == Scenario::ChurnWave
                    && t_s >= self.breakpoints[1]
                    && t_s < self.breakpoints[2] =>
            {
                base * SPIKE_FACTOR
            }
            _ => base,
        }
    }
}

#[derive(Debug, Clone)]
struct Agents {
    weights: Vec<f64>,
    total: f64,
    quality: Vec<f64>,
}

impl Agents {
    fn new(n: usize, rng: &mut Rng) -> Agents {
        let mut weights = Vec::with_capacity(n);
        let mut quality = Vec::with_capacity(n);
        for _ in 0..n {
            weights.push(0.3 + 1.4 * rng.f64());
            quality.push(2.0 * rng.f64() - 1.0);
        }
        let total = weights.iter().sum();
        Agents {
            weights,
            total,
            quality,
        }
    }

    /// An agent, busier agents more often.
    fn pick(&self, rng: &mut Rng) -> u32 {
        let mut x = rng.f64() * self.total;
        for (i, w) in self.weights.iter().enumerate() {
            if x < *w {
                return i as u32;
            }
            x -= w;
        }
        (self.weights.len() - 1) as u32
    }

    /// An agent other than `not` (if there is another one).
    fn pick_other(&self, rng: &mut Rng, not: u32) -> u32 {
        let n = self.weights.len() as u32;
        let a = self.pick(rng);
        if a == not && n > 1 {
            (a + 1 + rng.below(u64::from(n - 1)) as u32) % n
        } else {
            a
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TicketStep {
    Bot,
    Note,
    Nudge,
    AgentReply,
    CustomerReply,
    Resolve { with_agent: bool },
    Reopen,
}

const PRE_NOTE: u8 = 1;
const PRE_NUDGE: u8 = 2;

#[derive(Debug, Clone, Copy)]
struct Ticket {
    id: u64,
    opened: i64,
    first_due: i64,
    agent: u32,
    channel: u8,
    priority: u8,
    pre: u8,
    agent_replies: u8,
    rounds: u8,
    reopens: u8,
    step: TicketStep,
}

impl Ticket {
    /// The next step before the first public agent reply.
    fn after_pre(&mut self, now: i64) -> (i64, TicketStep) {
        let span = self.first_due - self.opened;
        let (at, step) = if self.pre & PRE_NOTE != 0 {
            self.pre &= !PRE_NOTE;
            (self.opened + span / 2, TicketStep::Note)
        } else if self.pre & PRE_NUDGE != 0 {
            self.pre &= !PRE_NUDGE;
            (self.opened + span * 3 / 4, TicketStep::Nudge)
        } else {
            (self.first_due, TicketStep::AgentReply)
        };
        (at.max(now), step)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChatStep {
    Join,
    Transfer,
    End,
}

#[derive(Debug, Clone, Copy)]
struct Chat {
    id: u64,
    agent: u32,
    end_at: i64,
    step: ChatStep,
}

#[derive(Debug, Clone, Copy)]
struct Checkout {
    id: u64,
    channel: Option<u8>,
    region: Option<u8>,
}

#[derive(Debug, Clone)]
enum Actor {
    Spawner { what: Spawn, t: f64 },
    BaseSubs { next: u64 },
    Ticket(Ticket),
    Chat(Chat),
    Checkout(Checkout),
    TrialCancel { sub: u64 },
}

struct Fired {
    body: Option<Body>,
    /// The actor's own next step.
    next: Option<(i64, Actor)>,
    /// A new entity opened by a spawner.
    spawned: Option<(i64, Actor)>,
}

#[derive(Debug, Clone)]
struct World {
    p: Params,
    rng: Rng,
    mrng: Rng,
    agents: Agents,
    perm: Permutation,
    next_ticket: u64,
    next_chat: u64,
    next_checkout: u64,
    next_order: u64,
    next_new_sub: u64,
    base_cancelled: u64,
    next_bad: u64,
}

impl World {
    fn new(opts: &GenerateOptions) -> World {
        let dur_s = opts.duration_ms as f64 / 1000.0;
        let ramp_s = (dur_s / 4.0).min(120.0);
        let ramp_ms = (ramp_s * 1000.0) as i64;
        let base_subs = (0.5 * opts.rate * ramp_s) as u64;
        let third = opts.duration_ms / 3;
        let mid_lo = opts.start_ms + third;
        let mid_hi = opts.start_ms + 2 * third;
        let p = Params {
            start: opts.start_ms,
            end: opts.end_ms(),
            dur_s,
            scenario: opts.scenario,
            mid_lo,
            mid_hi,
            breakpoints: [ramp_s, third as f64 / 1000.0, (2 * third) as f64 / 1000.0],
            ramp_s,
            ramp_ms,
            base_subs,
            customer_pool: (opts.rate * 600.0).max(1000.0) as u64,
            rates: [0.0; 8],
        };
        let mut agent_rng = Rng::new(opts.seed, STREAM_AGENTS);
        let mut perm_rng = Rng::new(opts.seed, STREAM_PERMUTATION);
        let mut w = World {
            p,
            rng: Rng::new(opts.seed, STREAM_TRAFFIC),
            mrng: Rng::new(opts.seed, STREAM_MALFORMED),
            agents: Agents::new(opts.agents, &mut agent_rng),
            perm: Permutation::new(base_subs.max(1), &mut perm_rng),
            next_ticket: 1,
            next_chat: 1,
            next_checkout: 1,
            next_order: 1,
            next_new_sub: base_subs + 1,
            base_cancelled: 0,
            next_bad: 1,
        };
        let [per_ticket, per_chat, per_checkout] = w.calibrate();
        let r = opts.rate;
        // The base subscriptions are part of the run's events.
        let scale = if dur_s > 0.0 {
            (1.0 - base_subs as f64 / (r * dur_s)).max(0.5)
        } else {
            1.0
        };
        w.p.rates = [
            r * scale * SHARE_TICKETS / per_ticket,
            r * scale * SHARE_CHATS / per_chat,
            r * scale * SHARE_SURVEYS,
            r * scale * SHARE_CHECKOUTS / per_checkout,
            r * scale * SUB_NEW_SHARE,
            r * scale * SUB_RENEW_SHARE,
            r * scale * SUB_CANCEL_SHARE,
            r * opts.malformed_fraction,
        ];
        w
    }

    /// Mean number of in-run events of a ticket, a chat and a checkout opened
    /// uniformly over the run (with a fixed seed, so every seed gets the same
    /// rates).
    fn calibrate(&self) -> [f64; 3] {
        if self.p.end <= self.p.start {
            return [1.0; 3];
        }
        let mut w = self.clone();
        w.rng = Rng::new(CALIBRATION_SEED, 0);
        let span = (self.p.end - self.p.start) as f64;
        let mut out = [1.0; 3];
        for (slot, what) in [Spawn::Ticket, Spawn::Chat, Spawn::Checkout]
            .into_iter()
            .enumerate()
        {
            let mut total = 0u64;
            for i in 0..CALIBRATION_SAMPLES {
                let frac = (f64::from(i) + w.rng.f64()) / f64::from(CALIBRATION_SAMPLES);
                let ts = (self.p.start + (frac * span) as i64).min(self.p.end - 1);
                let fired = w.spawn(what, ts);
                total += 1;
                let mut next = fired.spawned;
                while let Some((t, actor)) = next {
                    if t >= self.p.end {
                        break;
                    }
                    total += 1;
                    next = w.fire(actor, t).next;
                }
            }
            out[slot] = total as f64 / f64::from(CALIBRATION_SAMPLES);
        }
        out
    }

    /// The next arrival (seconds since start) of a Poisson process with
    /// piecewise-constant rate, after `t`; `None` past the end of the run.
    fn next_arrival(&mut self, what: Spawn, mut t: f64) -> Option<f64> {
        loop {
            if t >= self.p.dur_s {
                return None;
            }
            let rate = self.p.rate_at(what, t);
            let next_bp = self
                .p
                .breakpoints
                .into_iter()
                .filter(|b| *b > t)
                .fold(self.p.dur_s, f64::min);
            let rng = if what == Spawn::Malformed {
                &mut self.mrng
            } else {
                &mut self.rng
            };
            if rate > 0.0 {
                let next = t + rng.exp1() / rate;
                if next < next_bp {
                    return Some(next);
                }
            }
            // Memoryless: restart at the breakpoint with the new rate.
            t = next_bp;
        }
    }

    fn region(&mut self) -> Option<u8> {
        let i = self.rng.pick(&REGION_WEIGHTS);
        (i < REGIONS.len()).then_some(i as u8)
    }

    fn customer(&mut self) -> u64 {
        1 + self.rng.below(self.p.customer_pool)
    }

    fn fire(&mut self, actor: Actor, ts: i64) -> Fired {
        match actor {
            Actor::Spawner { what, t } => {
                let mut fired = self.spawn(what, ts);
                fired.next = self
                    .next_arrival(what, t)
                    .map(|t2| (self.p.ts_of(t2).max(ts), Actor::Spawner { what, t: t2 }));
                fired
            }
            Actor::BaseSubs { next } => {
                let body = Body::SubscriptionStarted {
                    sub: next + 1,
                    customer: self.customer(),
                    region: self.region(),
                };
                let following = next + 1;
                let after = (following < self.p.base_subs).then(|| {
                    let off = (following as u128 * self.p.ramp_ms as u128
                        / self.p.base_subs as u128) as i64;
                    (
                        (self.p.start + off).max(ts),
                        Actor::BaseSubs { next: following },
                    )
                });
                Fired {
                    body: Some(body),
                    next: after,
                    spawned: None,
                }
            }
            Actor::Ticket(t) => self.fire_ticket(t, ts),
            Actor::Chat(c) => self.fire_chat(c, ts),
            Actor::Checkout(c) => self.fire_checkout(c),
            Actor::TrialCancel { sub } => Fired {
                body: Some(Body::SubscriptionCancelled {
                    sub,
                    reason: self.reason(),
                }),
                next: None,
                spawned: None,
            },
        }
    }

    fn reason(&mut self) -> Option<u8> {
        if self.rng.chance(0.7) {
            Some(self.rng.pick(&[1.0; CANCEL_REASONS.len()]) as u8)
        } else {
            None
        }
    }

    /// What a spawner emits at `ts`, and the entity it opens (in `spawned`).
    fn spawn(&mut self, what: Spawn, ts: i64) -> Fired {
        let mut spawned = None;
        let body = match what {
            Spawn::Ticket => {
                let (body, next) = self.open_ticket(ts);
                spawned = Some(next);
                Some(body)
            }
            Spawn::Chat => {
                let (body, next) = self.open_chat(ts);
                spawned = Some(next);
                Some(body)
            }
            Spawn::Survey => Some(self.survey(ts)),
            Spawn::Checkout => {
                let (body, next) = self.open_checkout(ts);
                spawned = next;
                Some(body)
            }
            Spawn::NewSub => {
                let sub = self.next_new_sub;
                self.next_new_sub += 1;
                let body = Body::SubscriptionStarted {
                    sub,
                    customer: self.customer(),
                    region: self.region(),
                };
                if self.rng.chance(TRIAL_CANCEL_P) {
                    let d = self.rng.delay(10.0 * MINUTE, 1.0, 30_000.0, 7.0 * DAY);
                    spawned = Some((ts + d, Actor::TrialCancel { sub }));
                }
                Some(body)
            }
            Spawn::Renew => {
                let (b, done) = (self.p.base_subs, self.base_cancelled);
                (done < b).then(|| {
                    let j = done + self.rng.below(b - done);
                    Body::SubscriptionRenewed {
                        sub: self.perm.apply(j) + 1,
                    }
                })
            }
            Spawn::Cancel => {
                let (b, done) = (self.p.base_subs, self.base_cancelled);
                (done < b).then(|| {
                    self.base_cancelled += 1;
                    Body::SubscriptionCancelled {
                        sub: self.perm.apply(done) + 1,
                        reason: self.reason(),
                    }
                })
            }
            Spawn::Malformed => {
                let n = self.next_bad;
                self.next_bad += 1;
                Some(Body::Malformed(Box::new(malformed_line(
                    &mut self.mrng,
                    n,
                    ts,
                ))))
            }
        };
        Fired {
            body,
            next: None,
            spawned,
        }
    }

    fn open_ticket(&mut self, ts: i64) -> (Body, (i64, Actor)) {
        let id = self.next_ticket;
        self.next_ticket += 1;
        let customer = self.customer();
        let channel = self.rng.pick(&TICKET_CHANNEL_WEIGHTS) as u8;
        let region = self.region();
        let priority = self.rng.pick(&PRIORITY_WEIGHTS) as u8;
        let agent = self.agents.pick(&mut self.rng);
        let body = Body::TicketOpened {
            ticket: id,
            customer,
            channel,
            region,
            priority,
        };
        let mut t = Ticket {
            id,
            opened: ts,
            first_due: ts,
            agent,
            channel,
            priority,
            pre: 0,
            agent_replies: 0,
            rounds: 0,
            reopens: 0,
            step: TicketStep::AgentReply,
        };
        let rng = &mut self.rng;
        let next = if rng.chance(0.05) {
            // Spam, duplicates, "never mind": closed without an agent reply.
            let d = rng.delay(25.0 * MINUTE, 1.0, MINUTE, 3.0 * DAY);
            t.step = TicketStep::Resolve { with_agent: false };
            ts + d
        } else {
            let median = FIRST_REPLY_MEDIAN_MIN[channel as usize]
                * MINUTE
                * PRIORITY_SPEED[priority as usize];
            t.first_due = ts + rng.delay(median, 1.0, 61_000.0, 3.0 * DAY);
            let bot = rng.chance(BOT_REPLY_P[channel as usize]);
            if rng.chance(0.12) {
                t.pre |= PRE_NOTE;
            }
            if rng.chance(0.10) {
                t.pre |= PRE_NUDGE;
            }
            if bot {
                t.step = TicketStep::Bot;
                ts + rng.range(1_000, 30_000)
            } else {
                let (at, step) = t.after_pre(ts);
                t.step = step;
                at
            }
        };
        (body, (next, Actor::Ticket(t)))
    }

    fn public_flag(&mut self) -> Option<bool> {
        self.rng.chance(0.75).then_some(true)
    }

    fn fire_ticket(&mut self, mut t: Ticket, ts: i64) -> Fired {
        let ticket = t.id;
        let reply = move |author, public, agent| Body::TicketReplied {
            ticket,
            author,
            public,
            agent,
        };
        let speed = PRIORITY_SPEED[t.priority as usize];
        let (body, next) = match t.step {
            TicketStep::Bot => {
                let body = reply(Author::Bot, self.public_flag(), None);
                (body, Some(t.after_pre(ts)))
            }
            TicketStep::Note => {
                let body = reply(Author::Agent, Some(false), Some(t.agent));
                (body, Some(t.after_pre(ts)))
            }
            TicketStep::Nudge => {
                let body = reply(Author::Customer, self.public_flag(), None);
                (body, Some(t.after_pre(ts)))
            }
            TicketStep::AgentReply => {
                if self.rng.chance(0.10) {
                    t.agent = self.agents.pick_other(&mut self.rng, t.agent);
                }
                t.agent_replies = t.agent_replies.saturating_add(1);
                let body = reply(Author::Agent, self.public_flag(), Some(t.agent));
                let p_resolve = if t.rounds >= 6 {
                    1.0
                } else if t.reopens > 0 {
                    0.7
                } else if t.agent_replies == 1 {
                    0.62
                } else {
                    0.5
                };
                let rng = &mut self.rng;
                let next = if rng.chance(p_resolve) {
                    let with_agent = rng.chance(0.92);
                    let d = rng.delay(8.0 * MINUTE, 1.0, 10_000.0, 2.0 * DAY);
                    (ts + d, TicketStep::Resolve { with_agent })
                } else {
                    let d = rng.delay(25.0 * MINUTE, 1.1, 20_000.0, 3.0 * DAY);
                    (ts + d, TicketStep::CustomerReply)
                };
                (body, Some(next))
            }
            TicketStep::CustomerReply => {
                let body = reply(Author::Customer, self.public_flag(), None);
                t.rounds = t.rounds.saturating_add(1);
                let median = FIRST_REPLY_MEDIAN_MIN[t.channel as usize] * MINUTE * speed * 0.7;
                let d = self.rng.delay(median, 1.0, 30_000.0, 3.0 * DAY);
                (body, Some((ts + d, TicketStep::AgentReply)))
            }
            TicketStep::Resolve { with_agent } => {
                let body = Body::TicketResolved {
                    ticket: t.id,
                    agent: with_agent.then_some(t.agent),
                };
                let next = (t.reopens < 2 && self.rng.chance(0.08)).then(|| {
                    let d = self.rng.delay(40.0 * MINUTE, 1.0, MINUTE, 7.0 * DAY);
                    (ts + d, TicketStep::Reopen)
                });
                (body, next)
            }
            TicketStep::Reopen => {
                t.reopens += 1;
                let d = self.rng.range(0, 90_000);
                (
                    Body::TicketReopened { ticket: t.id },
                    Some((ts + d, TicketStep::CustomerReply)),
                )
            }
        };
        Fired {
            body: Some(body),
            next: next.map(|(at, step)| (at, Actor::Ticket(Ticket { step, ..t }))),
            spawned: None,
        }
    }

    fn open_chat(&mut self, ts: i64) -> (Body, (i64, Actor)) {
        let id = self.next_chat;
        self.next_chat += 1;
        let body = Body::ChatRequested {
            chat: id,
            customer: self.customer(),
            region: self.region(),
        };
        let spike = if self.p.scenario == Scenario::WaitSpike && self.p.in_middle(ts) {
            SPIKE_FACTOR
        } else {
            1.0
        };
        let mut c = Chat {
            id,
            agent: 0,
            end_at: ts,
            step: ChatStep::End,
        };
        let rng = &mut self.rng;
        let at = if rng.chance(0.04) {
            // Wrong click, closed the widget at once.
            ts + rng.range(300, 4_900)
        } else {
            let wait = rng.delay(25_000.0 * spike, 0.9, 1_000.0, 2.0 * HOUR);
            let patience = rng.delay(150_000.0, 0.9, 6_000.0, 2.0 * HOUR);
            if wait <= patience {
                c.step = ChatStep::Join;
                ts + wait
            } else {
                ts + patience
            }
        };
        (body, (at, Actor::Chat(c)))
    }

    fn fire_chat(&mut self, mut c: Chat, ts: i64) -> Fired {
        let (body, next) = match c.step {
            ChatStep::Join => {
                c.agent = self.agents.pick(&mut self.rng);
                let handle = self.rng.delay(6.0 * MINUTE, 0.6, 20_000.0, 3.0 * HOUR);
                let next = if self.agent_count() > 1 && self.rng.chance(0.03) {
                    c.end_at = ts + handle;
                    let f = 0.2 + 0.4 * self.rng.f64();
                    (ts + (handle as f64 * f) as i64, ChatStep::Transfer)
                } else {
                    (ts + handle, ChatStep::End)
                };
                let body = Body::ChatAgentJoined {
                    chat: c.id,
                    agent: c.agent,
                };
                (body, Some(next))
            }
            ChatStep::Transfer => {
                c.agent = self.agents.pick_other(&mut self.rng, c.agent);
                let body = Body::ChatAgentJoined {
                    chat: c.id,
                    agent: c.agent,
                };
                (body, Some((c.end_at.max(ts), ChatStep::End)))
            }
            ChatStep::End => (Body::ChatEnded { chat: c.id }, None),
        };
        Fired {
            body: Some(body),
            next: next.map(|(at, step)| (at, Actor::Chat(Chat { step, ..c }))),
            spawned: None,
        }
    }

    fn agent_count(&self) -> usize {
        self.agents.weights.len()
    }

    fn survey(&mut self, ts: i64) -> Body {
        let rng = &mut self.rng;
        let survey = rng.pick(&SURVEY_WEIGHTS) as u8;
        let agent = rng
            .chance(SURVEY_AGENT_P[survey as usize])
            .then(|| self.agents.pick(rng));
        let channel = rng
            .chance(0.45)
            .then(|| rng.pick(&SURVEY_CHANNEL_WEIGHTS) as u8);
        let q = agent.map_or(0.0, |a| self.agents.quality[a as usize]);
        let penalty = if self.p.scenario == Scenario::WaitSpike
            && self.p.in_middle(ts)
            && channel == Some(CH_CHAT)
        {
            1.0
        } else {
            0.0
        };
        let z = rng.normal();
        let score = match survey {
            0 => (4.1 + 0.45 * q - 0.9 * penalty + 0.95 * z)
                .round()
                .clamp(1.0, 5.0),
            1 => (7.5 + 1.0 * q - 1.5 * penalty + 2.0 * z)
                .round()
                .clamp(0.0, 10.0),
            _ => (5.3 + 0.5 * q - 1.0 * penalty + 1.2 * z)
                .round()
                .clamp(1.0, 7.0),
        } as u8;
        let customer = self.customer();
        let region = self.region();
        Body::SurveySubmitted {
            survey,
            score,
            customer,
            agent,
            channel,
            region,
        }
    }

    fn open_checkout(&mut self, ts: i64) -> (Body, Option<(i64, Actor)>) {
        let id = self.next_checkout;
        self.next_checkout += 1;
        let customer = self.customer();
        let ch = self.rng.pick(&CHECKOUT_CHANNEL_WEIGHTS);
        let channel = (ch < CHECKOUT_CHANNELS.len()).then_some(ch as u8);
        let region = if self.rng.chance(0.95) {
            self.region()
        } else {
            None
        };
        let body = Body::CheckoutStarted {
            checkout: id,
            customer,
            channel,
            region,
        };
        let rng = &mut self.rng;
        let next = rng.chance(CHECKOUT_COMPLETE_P[ch]).then(|| {
            let d = if rng.chance(0.03) {
                rng.range(31 * 60_000, 90 * 60_000)
            } else {
                rng.delay(3.0 * MINUTE, 0.8, 5_000.0, 29.0 * MINUTE)
            };
            (
                ts + d,
                Actor::Checkout(Checkout {
                    id,
                    channel,
                    region,
                }),
            )
        });
        (body, next)
    }

    fn fire_checkout(&mut self, c: Checkout) -> Fired {
        let order = self.next_order;
        self.next_order += 1;
        let rng = &mut self.rng;
        let value_cents = if rng.chance(0.015) {
            0
        } else {
            (4_500.0 * det_exp(0.75 * rng.normal()))
                .clamp(50.0, 500_000.0)
                .round() as u64
        };
        let channel = c.channel.filter(|_| rng.chance(0.8));
        let region = c.region.filter(|_| rng.chance(0.8));
        Fired {
            body: Some(Body::CheckoutCompleted {
                checkout: c.id,
                order,
                value_cents,
                channel,
                region,
            }),
            next: None,
            spawned: None,
        }
    }
}

// ---------------------------------------------------------------------------
// Logical events, delivery queue, rendering
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Author {
    Agent,
    Customer,
    Bot,
}

/// A logical event in compact form; rendered to JSON only when delivered.
#[derive(Debug, Clone)]
enum Body {
    TicketOpened {
        ticket: u64,
        customer: u64,
        channel: u8,
        region: Option<u8>,
        priority: u8,
    },
    TicketReplied {
        ticket: u64,
        author: Author,
        public: Option<bool>,
        agent: Option<u32>,
    },
    TicketResolved {
        ticket: u64,
        agent: Option<u32>,
    },
    TicketReopened {
        ticket: u64,
    },
    ChatRequested {
        chat: u64,
        customer: u64,
        region: Option<u8>,
    },
    ChatAgentJoined {
        chat: u64,
        agent: u32,
    },
    ChatEnded {
        chat: u64,
    },
    SurveySubmitted {
        survey: u8,
        score: u8,
        customer: u64,
        agent: Option<u32>,
        channel: Option<u8>,
        region: Option<u8>,
    },
    CheckoutStarted {
        checkout: u64,
        customer: u64,
        channel: Option<u8>,
        region: Option<u8>,
    },
    CheckoutCompleted {
        checkout: u64,
        order: u64,
        value_cents: u64,
        channel: Option<u8>,
        region: Option<u8>,
    },
    SubscriptionStarted {
        sub: u64,
        customer: u64,
        region: Option<u8>,
    },
    SubscriptionRenewed {
        sub: u64,
    },
    SubscriptionCancelled {
        sub: u64,
        reason: Option<u8>,
    },
    Malformed(Box<MalformedLine>),
}

#[derive(Debug, Clone)]
struct MalformedLine {
    kind: MalformedKind,
    stream: Stream,
    key: String,
    payload: String,
}

#[derive(Debug, Clone)]
struct LogicalEvent {
    ts: i64,
    /// `e-<id>`; 0 for malformed lines.
    id: u64,
    /// 0: integer ms; else 1 + index into `TS_OFFSETS_MIN`, `| STYLE_MICROS`.
    style: u8,
    body: Body,
}

/// An actor due at `ts`; min-heap on `(ts, seq)`.
#[derive(Debug)]
struct Scheduled {
    ts: i64,
    seq: u64,
    actor: Actor,
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.ts, other.seq).cmp(&(self.ts, self.seq))
    }
}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.ts, self.seq) == (other.ts, other.seq)
    }
}

impl Eq for Scheduled {}

/// A delivery waiting for its arrival time; min-heap on `(arrival, seq)`.
#[derive(Debug)]
struct Pending {
    arrival: i64,
    seq: u64,
    kind: RecordKind,
    ev: LogicalEvent,
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.arrival, other.seq).cmp(&(self.arrival, self.seq))
    }
}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.arrival, self.seq) == (other.arrival, other.seq)
    }
}

impl Eq for Pending {}

/// Builds `{"event_id": "e-1", "type": "…", "ts": …, …}` in the style of the
/// contract's example.
struct Obj(String);

impl Obj {
    fn event(id: u64, ty: &str, ts: i64, style: u8) -> Obj {
        let mut s = String::with_capacity(200);
        let _ = write!(
            s,
            "{{\"event_id\": \"e-{id}\", \"type\": \"{ty}\", \"ts\": "
        );
        write_ts(&mut s, ts, style);
        Obj(s)
    }

    fn str(&mut self, k: &str, v: &str) {
        let _ = write!(self.0, ", \"{k}\": \"{v}\"");
    }

    fn id(&mut self, k: &str, prefix: &str, n: u64) {
        let _ = write!(self.0, ", \"{k}\": \"{prefix}-{n}\"");
    }

    fn raw(&mut self, k: &str, v: impl fmt::Display) {
        let _ = write!(self.0, ", \"{k}\": {v}");
    }

    fn region(&mut self, r: Option<u8>) {
        if let Some(r) = r {
            self.str("region", REGIONS[r as usize]);
        }
    }

    fn done(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

fn agent_id(a: u32) -> String {
    format!("a-{}", u64::from(a) + 1)
}

/// Renders a valid event: its stream, key and JSON payload.
fn render(ev: &LogicalEvent) -> (Stream, String, String) {
    let ob = |ty: &str| Obj::event(ev.id, ty, ev.ts, ev.style);
    match &ev.body {
        Body::TicketOpened {
            ticket,
            customer,
            channel,
            region,
            priority,
        } => {
            let mut o = ob("ticket.opened");
            o.id("ticket_id", "t", *ticket);
            o.id("customer_id", "c", *customer);
            o.str("channel", CHANNELS[*channel as usize]);
            o.region(*region);
            o.str("priority", PRIORITIES[*priority as usize]);
            (Stream::Tickets, format!("t-{ticket}"), o.done())
        }
        Body::TicketReplied {
            ticket,
            author,
            public,
            agent,
        } => {
            let mut o = ob("ticket.replied");
            o.id("ticket_id", "t", *ticket);
            o.str(
                "author",
                match author {
                    Author::Agent => "agent",
                    Author::Customer => "customer",
                    Author::Bot => "bot",
                },
            );
            if let Some(p) = public {
                o.raw("public", p);
            }
            if let Some(a) = agent {
                o.str("agent_id", &agent_id(*a));
            }
            (Stream::Tickets, format!("t-{ticket}"), o.done())
        }
        Body::TicketResolved { ticket, agent } => {
            let mut o = ob("ticket.resolved");
            o.id("ticket_id", "t", *ticket);
            if let Some(a) = agent {
                o.str("agent_id", &agent_id(*a));
            }
            (Stream::Tickets, format!("t-{ticket}"), o.done())
        }
        Body::TicketReopened { ticket } => {
            let mut o = ob("ticket.reopened");
            o.id("ticket_id", "t", *ticket);
            (Stream::Tickets, format!("t-{ticket}"), o.done())
        }
        Body::ChatRequested {
            chat,
            customer,
            region,
        } => {
            let mut o = ob("chat.requested");
            o.id("chat_id", "chat", *chat);
            o.id("customer_id", "c", *customer);
            o.region(*region);
            (Stream::Chats, format!("chat-{chat}"), o.done())
        }
        Body::ChatAgentJoined { chat, agent } => {
            let mut o = ob("chat.agent_joined");
            o.id("chat_id", "chat", *chat);
            o.str("agent_id", &agent_id(*agent));
            (Stream::Chats, format!("chat-{chat}"), o.done())
        }
        Body::ChatEnded { chat } => {
            let mut o = ob("chat.ended");
            o.id("chat_id", "chat", *chat);
            (Stream::Chats, format!("chat-{chat}"), o.done())
        }
        Body::SurveySubmitted {
            survey,
            score,
            customer,
            agent,
            channel,
            region,
        } => {
            let mut o = ob("survey.submitted");
            o.str("survey", SURVEYS[*survey as usize]);
            o.raw("score", score);
            o.id("customer_id", "c", *customer);
            if let Some(a) = agent {
                o.str("agent_id", &agent_id(*a));
            }
            if let Some(c) = channel {
                o.str("channel", CHANNELS[*c as usize]);
            }
            o.region(*region);
            (Stream::Surveys, format!("c-{customer}"), o.done())
        }
        Body::CheckoutStarted {
            checkout,
            customer,
            channel,
            region,
        } => {
            let mut o = ob("checkout.started");
            o.id("checkout_id", "co", *checkout);
            o.id("customer_id", "c", *customer);
            if let Some(c) = channel {
                o.str("channel", CHECKOUT_CHANNELS[*c as usize]);
            }
            o.region(*region);
            (Stream::Checkouts, format!("co-{checkout}"), o.done())
        }
        Body::CheckoutCompleted {
            checkout,
            order,
            value_cents,
            channel,
            region,
        } => {
            let mut o = ob("checkout.completed");
            o.id("checkout_id", "co", *checkout);
            o.id("order_id", "o", *order);
            o.raw(
                "value",
                format_args!("{}.{:02}", value_cents / 100, value_cents % 100),
            );
            if let Some(c) = channel {
                o.str("channel", CHECKOUT_CHANNELS[*c as usize]);
            }
            o.region(*region);
            (Stream::Checkouts, format!("co-{checkout}"), o.done())
        }
        Body::SubscriptionStarted {
            sub,
            customer,
            region,
        } => {
            let mut o = ob("subscription.started");
            o.id("subscription_id", "sub", *sub);
            o.id("customer_id", "c", *customer);
            o.region(*region);
            (Stream::Checkouts, format!("sub-{sub}"), o.done())
        }
        Body::SubscriptionRenewed { sub } => {
            let mut o = ob("subscription.renewed");
            o.id("subscription_id", "sub", *sub);
            (Stream::Checkouts, format!("sub-{sub}"), o.done())
        }
        Body::SubscriptionCancelled { sub, reason } => {
            let mut o = ob("subscription.cancelled");
            o.id("subscription_id", "sub", *sub);
            if let Some(r) = reason {
                o.str("reason", CANCEL_REASONS[*r as usize]);
            }
            (Stream::Checkouts, format!("sub-{sub}"), o.done())
        }
        Body::Malformed(line) => (line.stream, line.key.clone(), line.payload.clone()),
    }
}

fn write_ts(out: &mut String, ts: i64, style: u8) {
    if style == 0 {
        let _ = write!(out, "{ts}");
    } else {
        out.push('"');
        write_rfc3339(out, ts, style);
        out.push('"');
    }
}

fn write_rfc3339(out: &mut String, ts: i64, style: u8) {
    let idx = usize::from((style & 0x0f).max(1) - 1);
    let offset = TS_OFFSETS_MIN[idx];
    let local = ts + i64::from(offset) * 60_000;
    let (y, m, d) = civil_from_days(local.div_euclid(86_400_000));
    let ms = local.rem_euclid(86_400_000);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1_000 % 60,
        ms % 1_000
    );
    if style & STYLE_MICROS != 0 {
        out.push_str("000");
    }
    if idx == 0 {
        out.push('Z');
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let a = offset.abs();
        let _ = write!(out, "{sign}{:02}:{:02}", a / 60, a % 60);
    }
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

// ---------------------------------------------------------------------------
// Malformed lines
// ---------------------------------------------------------------------------

fn q(s: &str) -> String {
    format!("\"{s}\"")
}

/// `{"k": v, …}` from already-encoded JSON values.
fn obj(fields: &[(&str, String)]) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "\"{k}\": {v}");
    }
    s.push('}');
    s
}

/// One invalid line of a random [`MalformedKind`], emitted at `ts`.
fn malformed_line(rng: &mut Rng, n: u64, ts: i64) -> MalformedLine {
    let kind = MalformedKind::ALL[rng.below(MalformedKind::ALL.len() as u64) as usize];
    let id = q(&format!("bad-{n}"));
    let t = ts.to_string();
    let ticket = q(&format!("t-x{n}"));
    let chat = q(&format!("chat-x{n}"));
    let checkout = q(&format!("co-x{n}"));
    let order = q(&format!("o-x{n}"));
    let customer = q(&format!("c-x{n}"));
    let sub = q(&format!("sub-x{n}"));
    let agent = q("a-1");
    let ty = |s: &str| q(s);
    let mut variant = |k: u64| rng.below(k);
    // (stream, key, payload)
    let (stream, key, payload): (Stream, String, String) = match kind {
        MalformedKind::NotJson => {
            let payload = match variant(6) {
                0 => "not json at all".to_string(),
                1 => {
                    let full = obj(&[
                        ("event_id", id.clone()),
                        ("type", ty("ticket.opened")),
                        ("ts", t.clone()),
                        ("ticket_id", ticket.clone()),
                    ]);
                    full[..full.len() / 2].to_string()
                }
                2 => "<html><body><h1>502 Bad Gateway</h1></body></html>".to_string(),
                3 => format!("event_id=bad-{n} type=chat.ended ts={ts} chat_id=chat-x{n}"),
                4 => format!("{{'event_id': 'bad-{n}', 'type': 'chat.ended', 'ts': {ts}}}"),
                _ => format!(
                    "{{\"event_id\": \"bad-{n}\", \"type\": \"chat.ended\", \"ts\": {ts}, \"chat_id\": \"chat-x{n}\",}}"
                ),
            };
            (Stream::Chats, format!("bad-{n}"), payload)
        }
        MalformedKind::NotObject => {
            let payload = match variant(5) {
                0 => "[1, 2, 3]".to_string(),
                1 => q("chat.ended"),
                2 => t.clone(),
                3 => "null".to_string(),
                _ => format!(
                    "[{}]",
                    obj(&[
                        ("event_id", id.clone()),
                        ("type", ty("chat.ended")),
                        ("ts", t.clone()),
                        ("chat_id", chat.clone()),
                    ])
                ),
            };
            (Stream::Chats, format!("bad-{n}"), payload)
        }
        MalformedKind::UnknownType => {
            let unknown = [
                "ticket.teleported",
                "chat.transferred",
                "Ticket.Opened",
                "refund.issued",
                "",
            ][variant(5) as usize];
            let payload = obj(&[
                ("event_id", id.clone()),
                ("type", q(unknown)),
                ("ts", t.clone()),
                ("ticket_id", ticket.clone()),
                ("customer_id", customer.clone()),
                ("channel", q("email")),
            ]);
            (Stream::Tickets, format!("t-x{n}"), payload)
        }
        MalformedKind::MissingField => match variant(9) {
            0 => (
                Stream::Tickets,
                format!("t-x{n}"),
                obj(&[
                    ("event_id", id.clone()),
                    ("ts", t.clone()),
                    ("ticket_id", ticket.clone()),
                ]),
            ),
            1 => (
                Stream::Chats,
                format!("chat-x{n}"),
                obj(&[
                    ("event_id", id.clone()),
                    ("type", ty("chat.ended")),
                    ("chat_id", chat.clone()),
                ]),
            ),
            2 => (
                Stream::Chats,
                format!("chat-x{n}"),
                obj(&[
                    ("type", ty("chat.ended")),
                    ("ts", t.clone()),
                    ("chat_id", chat.clone()),
                ]),
            ),
            3 => (
                Stream::Tickets,
                format!("t-x{n}"),
                obj(&[
                    ("event_id", id.clone()),
                    ("type", ty("ticket.opened")),
                    ("ts", t.clone()),
                    ("ticket_id", ticket.clone()),
                    ("channel", q("email")),
                ]),
            ),
            4 => (
                Stream::Chats,
                format!("chat-x{n}"),
                obj(&[
                    ("event_id", id.clone()),
                    ("type", ty("chat.agent_joined")),
                    ("ts", t.clone()),
                    ("chat_id", chat.clone()),
                ]),
            ),
            5 => (
                Stream::Checkouts,
                format!("co-x{n}"),
                obj(&[
                    ("event_id", id.clone()),
                    ("type", ty("checkout.completed")),
                    ("ts", t.clone()),
                    ("checkout_id", checkout.clone()),
                    ("value", "12.50".to_string()),
                ]),
            ),
            6 => (
                Stream::Surveys,
                format!("c-x{n}"),
                obj(&[
                    ("event_id", id.clone()),
                    ("type", ty("survey.submitted")),
                    ("ts", t.clone()),
                    ("survey", q("csat")),
                    ("customer_id", customer.clone()),
                ]),
            ),
            7 => (
                Stream::Checkouts,
                format!("sub-x{n}"),
                obj(&[
                    ("event_id", id.clone()),
                    ("type", ty("subscription.started")),
                    ("ts", t.clone()),
                    ("customer_id", customer.clone()),
                ]),
            ),
            _ => (
                Stream::Tickets,
                format!("t-x{n}"),
                obj(&[
                    ("event_id", id.clone()),
                    ("type", ty("ticket.replied")),
                    ("ts", t.clone()),
                    ("ticket_id", ticket.clone()),
                ]),
            ),
        },
        MalformedKind::MistypedField => match variant(8) {
            0 => (
                Stream::Chats,
                format!("chat-x{n}"),
                obj(&[
                    ("event_id", id.clone()),
                    ("type", ty("chat.ended")),
                    ("ts", "true".to_string()),
                    ("chat_id", chat.clone()),
                ]),
            ),
            1 => (
                Stream::Checkouts,
                format!("co-x{n}"),
                obj(&[
                    ("event_id", id.clone()),
                    ("type", ty("checkout.started")),
                    ("ts", t.clone()),
                    ("checkout_id", n.to_string()),
                    ("customer_id", customer.clone()),
                ]),
            ),
            2 => (
                Stream::Surveys,
                format!("c-x{n}"),
                obj(&[
                    ("event_id", id.clone()),
                    ("type", ty("survey.submitted")),
                    ("ts", t.clone()),
                    ("survey", q("nps")),
                    ("score", "7.5".to_string()),
                    ("customer_id", customer.clone()),
                ]),
            ),
            3 => (
                Stream::Surveys,
                format!("c-x{n}"),
                obj(&[
                    ("event_id", id.clone()),
                    ("type", ty("survey.submitted")),
                    ("ts", t.clone()),
                    ("survey", q("csat")),
                    ("score", q("5")),
                    ("customer_id", customer.clone()),
                    ("agent_id", agent.clone()),
                ]),
            ),
            4 => (
                Stream::Tickets,
                format!("t-x{n}"),
                obj(&[
                    ("event_id", id.clone()),
                    ("type", ty("ticket.replied")),
                    ("ts", t.clone()),
                    ("ticket_id", ticket.clone()),
                    ("author", q("customer")),
                    ("public", q("yes")),
                ]),
            ),
            5 => (
                Stream::Checkouts,
                format!("co-x{n}"),
                obj(&[
                    ("event_id", id.clone()),
                    ("type", ty("checkout.completed")),
                    ("ts", t.clone()),
                    ("checkout_id", checkout.clone()),
                    ("order_id", order.clone()),
                    ("value", q("12.50")),
                ]),
            ),
            6 => (
                Stream::Chats,
                format!("chat-x{n}"),
                obj(&[
                    ("event_id", n.to_string()),
                    ("type", ty("chat.ended")),
                    ("ts", t.clone()),
                    ("chat_id", chat.clone()),
                ]),
            ),
            _ => (
                Stream::Tickets,
                format!("t-x{n}"),
                obj(&[
                    ("event_id", id.clone()),
                    ("type", ty("ticket.opened")),
                    ("ts", t.clone()),
                    ("ticket_id", ticket.clone()),
                    ("customer_id", customer.clone()),
                    ("channel", q("email")),
                    ("region", "3".to_string()),
                ]),
            ),
        },
        MalformedKind::ScoreOutOfRange => {
            let (survey, score) = [
                ("csat", 0),
                ("csat", 6),
                ("nps", 11),
                ("nps", -1),
                ("ces", 0),
                ("ces", 8),
            ][variant(6) as usize];
            (
                Stream::Surveys,
                format!("c-x{n}"),
                obj(&[
                    ("event_id", id.clone()),
                    ("type", ty("survey.submitted")),
                    ("ts", t.clone()),
                    ("survey", q(survey)),
                    ("score", score.to_string()),
                    ("customer_id", customer.clone()),
                    ("agent_id", agent.clone()),
                ]),
            )
        }
        MalformedKind::NegativeValue => {
            let value = ["-5.00", "-0.01", "-129.99"][variant(3) as usize];
            (
                Stream::Checkouts,
                format!("co-x{n}"),
                obj(&[
                    ("event_id", id.clone()),
                    ("type", ty("checkout.completed")),
                    ("ts", t.clone()),
                    ("checkout_id", checkout.clone()),
                    ("order_id", order.clone()),
                    ("value", value.to_string()),
                ]),
            )
        }
        MalformedKind::UnparseableTs => {
            let bad_ts = [
                "yesterday",
                "2026-13-45T25:61:00Z",
                "2026-11-02T10:00:00",
                "",
                "02/11/2026 10:00",
            ][variant(5) as usize];
            (
                Stream::Tickets,
                format!("t-x{n}"),
                obj(&[
                    ("event_id", id.clone()),
                    ("type", ty("ticket.opened")),
                    ("ts", q(bad_ts)),
                    ("ticket_id", ticket.clone()),
                    ("customer_id", customer.clone()),
                    ("channel", q("web")),
                ]),
            )
        }
        MalformedKind::EmptyEventId => match variant(3) {
            0 => (
                Stream::Chats,
                format!("chat-x{n}"),
                obj(&[
                    ("event_id", q("")),
                    ("type", ty("chat.ended")),
                    ("ts", t.clone()),
                    ("chat_id", chat.clone()),
                ]),
            ),
            1 => (
                Stream::Checkouts,
                format!("sub-x{n}"),
                obj(&[
                    ("event_id", q("")),
                    ("type", ty("subscription.renewed")),
                    ("ts", t.clone()),
                    ("subscription_id", sub.clone()),
                ]),
            ),
            _ => (
                Stream::Tickets,
                format!("t-x{n}"),
                obj(&[
                    ("event_id", q("")),
                    ("type", ty("ticket.reopened")),
                    ("ts", t.clone()),
                    ("ticket_id", ticket.clone()),
                ]),
            ),
        },
        MalformedKind::AgentReplyWithoutAgentId => {
            let mut fields = vec![
                ("event_id", id.clone()),
                ("type", ty("ticket.replied")),
                ("ts", t.clone()),
                ("ticket_id", ticket.clone()),
                ("author", q("agent")),
            ];
            match variant(3) {
                0 => fields.push(("public", "true".to_string())),
                1 => fields.push(("public", "false".to_string())),
                _ => {}
            }
            (Stream::Tickets, format!("t-x{n}"), obj(&fields))
        }
    };
    MalformedLine {
        kind,
        stream,
        key,
        payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn det_math_matches_std_closely() {
        for i in 1..2000 {
            let x = i as f64 / 997.0;
            assert!((det_ln(x) - x.ln()).abs() <= 1e-14 * x.ln().abs().max(1.0));
            let y = (i as f64 - 1000.0) / 50.0;
            assert!((det_exp(y) - y.exp()).abs() <= 1e-14 * y.exp());
        }
        assert_eq!(det_ln(1.0), 0.0);
        assert!((det_ln(1e-300) - 1e-300f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn permutation_is_a_bijection() {
        let mut rng = Rng::new(7, 9);
        for n in [1u64, 2, 3, 17, 1000, 4097] {
            let p = Permutation::new(n, &mut rng);
            let mut seen = vec![false; n as usize];
            for x in 0..n {
                let y = p.apply(x);
                assert!(y < n && !seen[y as usize]);
                seen[y as usize] = true;
            }
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(
            civil_from_days(DEFAULT_START_MS / 86_400_000),
            (2026, 11, 2)
        );
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        let mut s = String::new();
        write_rfc3339(&mut s, DEFAULT_START_MS + 250, 4);
        assert_eq!(s, "2026-11-01T19:00:00.250-05:00");
    }
}
