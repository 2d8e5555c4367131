//! Entity state (tickets, chats, carts, subscriptions) and the KPI rules.
//!
//! Each event updates the state of its entity and yields [`Observation`]s;
//! this is the only place that knows what an event means for a KPI, one
//! small rule per event type. Events naming an entity with no state are
//! orphans. State idle for the TTL is gone: an event naming it finds no
//! state (checked as [`Entities::apply`] looks it up, so the answer never
//! depends on when the last sweep ran), and [`Entities::evict`]
//! sweeps it out of memory now and then.

use super::accum::Update;
use super::churn::SubscriptionBase;
use super::kpi::Kpi;
use super::table::FpTable;
use super::windows::{Dims, Observation};
use crate::event::{Author, Body, Event, Fp, SurveyKind};
use crate::intern::Sym;
use crate::time::{Micros, MICROS_PER_SEC};
use serde::{Deserialize, Serialize};

/// Thresholds of the KPI rules (`[kpi]` config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KpiRules {
    pub service_level_threshold: Micros,
    pub short_abandon_threshold: Micros,
    pub cart_abandon_after: Micros,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TicketState {
    opened_at: Micros,
    channel: Sym,
    region: Sym,
    /// Public agent replies before the first resolve (for FCR).
    agent_replies: u32,
    first_reply_seen: bool,
    ever_resolved: bool,
    resolved: bool,
    last_seen: Micros,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatState {
    requested_at: Micros,
    region: Sym,
    /// First join: time and agent.
    joined: Option<(Micros, Sym)>,
    ended: bool,
    last_seen: Micros,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CartOutcome {
    Pending,
    Completed,
    Abandoned,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CartState {
    channel: Sym,
    region: Sym,
    outcome: CartOutcome,
    last_seen: Micros,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriptionState {
    region: Sym,
    active: bool,
    last_seen: Micros,
}

/// Whether a state has been idle since before a point in event time and
/// may go: pending carts wait for their timer, active subscriptions are
/// the churn base and never go.
trait Idle {
    fn idle_before(&self, before: Micros) -> bool;
}

impl Idle for TicketState {
    fn idle_before(&self, before: Micros) -> bool {
        self.last_seen < before
    }
}

impl Idle for ChatState {
    fn idle_before(&self, before: Micros) -> bool {
        self.last_seen < before
    }
}

impl Idle for CartState {
    fn idle_before(&self, before: Micros) -> bool {
        self.last_seen < before && self.outcome != CartOutcome::Pending
    }
}

impl Idle for SubscriptionState {
    fn idle_before(&self, before: Micros) -> bool {
        !self.active && self.last_seen < before
    }
}

/// The state of `id` in `map`, unless there is none (an orphan) or it has
/// been idle since before `before` (dropped now, so an orphan too). One
/// probe of the table for both.
fn live<'a, S: Idle + Clone>(
    map: &'a mut FpTable<S>,
    before: Micros,
    applied: &mut Applied,
    id: Fp,
) -> Option<&'a mut S> {
    let (state, expired) = map.get_fresh_mut(id, |s| s.idle_before(before));
    applied.expired |= expired;
    applied.orphan = state.is_none();
    state
}

/// Starts the state of `id` in `map` with `make()` unless it has one
/// (state idle since before `before` does not count: it is replaced).
/// Returns whether it started one.
fn start<S: Idle + Clone>(
    map: &mut FpTable<S>,
    before: Micros,
    applied: &mut Applied,
    id: Fp,
    make: impl FnOnce() -> S,
) -> bool {
    let (started, expired) = map.insert_if_absent_or_stale(id, |s| s.idle_before(before), make);
    applied.expired |= expired;
    started
}

/// The entity an event names, by table (surveys name none).
enum Named {
    Ticket(Fp),
    Chat(Fp),
    Cart(Fp),
    Subscription(Fp),
}

impl Named {
    #[inline]
    fn by(body: &Body) -> Option<Named> {
        Some(match *body {
            Body::TicketOpened { ticket }
            | Body::TicketReplied { ticket, .. }
            | Body::TicketResolved { ticket, .. }
            | Body::TicketReopened { ticket } => Named::Ticket(ticket),
            Body::ChatRequested { chat }
            | Body::ChatAgentJoined { chat, .. }
            | Body::ChatEnded { chat } => Named::Chat(chat),
            Body::CheckoutStarted { checkout } | Body::CheckoutCompleted { checkout, .. } => {
                Named::Cart(checkout)
            }
            Body::SubscriptionStarted { subscription }
            | Body::SubscriptionRenewed { subscription }
            | Body::SubscriptionCancelled { subscription } => Named::Subscription(subscription),
            Body::SurveySubmitted { .. } => return None,
        })
    }
}

/// What applying an event did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// The event names an entity with no state; it changed nothing.
    pub orphan: bool,
    /// The entity's state had been idle for the TTL: it was dropped first
    /// (as a sweep at this moment would have).
    pub expired: bool,
}

/// All entity state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Entities {
    tickets: FpTable<TicketState>,
    chats: FpTable<ChatState>,
    carts: FpTable<CartState>,
    subscriptions: FpTable<SubscriptionState>,
}

fn secs(d: Micros) -> f64 {
    d as f64 / MICROS_PER_SEC as f64
}

/// Collects observations of one event.
struct Emit<'a> {
    t: Micros,
    obs: &'a mut Vec<Observation>,
}

impl Emit<'_> {
    fn at(&mut self, kpi: Kpi, dims: Dims, update: Update) {
        self.obs.push(Observation {
            t: self.t,
            kpi,
            dims,
            update,
        });
    }
}

/// A cart-abandonment timer to schedule: `(due time, checkout)`.
pub type CartTimer = (Micros, Fp);

impl Entities {
    /// Applies one event. `clock` is the processing clock (the change point
    /// for the subscription base); new cart timers are pushed to `timers`.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        ev: &Event,
        clock: Micros,
        before: Micros,
        rules: &KpiRules,
        base: &mut SubscriptionBase,
        obs: &mut Vec<Observation>,
        timers: &mut Vec<CartTimer>,
    ) -> Applied {
        let t = ev.ts;
        let mut applied = Applied::default();
        let mut emit = Emit { t, obs };
        let u = Sym::UNKNOWN;
        match ev.body {
            Body::TicketOpened { ticket } => {
                emit.at(
                    Kpi::TicketsOpened,
                    [ev.channel, ev.region, u],
                    Update::Count,
                );
                start(&mut self.tickets, before, &mut applied, ticket, || {
                    TicketState {
                        opened_at: t,
                        channel: ev.channel,
                        region: ev.region,
                        agent_replies: 0,
                        first_reply_seen: false,
                        ever_resolved: false,
                        resolved: false,
                        last_seen: t,
                    }
                });
            }
            Body::TicketReplied {
                ticket,
                author,
                public,
                agent,
            } => {
                let Some(s) = live(&mut self.tickets, before, &mut applied, ticket) else {
                    return applied;
                };
                s.last_seen = s.last_seen.max(t);
                if author == Author::Agent && public {
                    if !s.first_reply_seen {
                        s.first_reply_seen = true;
                        let wait = secs(t - s.opened_at);
                        emit.at(
                            Kpi::FirstReplyTime,
                            [s.channel, s.region, agent],
                            Update::Sample(wait),
                        );
                    }
                    if !s.ever_resolved {
                        s.agent_replies += 1;
                    }
                }
            }
            Body::TicketResolved { ticket, agent } => {
                let Some(s) = live(&mut self.tickets, before, &mut applied, ticket) else {
                    return applied;
                };
                s.last_seen = s.last_seen.max(t);
                if !s.resolved {
                    s.resolved = true;
                    emit.at(Kpi::ReopenRate, [s.channel, s.region, u], Update::Count);
                    if !s.ever_resolved {
                        s.ever_resolved = true;
                        let dims = [s.channel, s.region, agent];
                        emit.at(
                            Kpi::FirstResolutionTime,
                            dims,
                            Update::Sample(secs(t - s.opened_at)),
                        );
                        emit.at(Kpi::FcrRate, dims, Update::Hit(s.agent_replies <= 1));
                    }
                }
            }
            Body::TicketReopened { ticket } => {
                let Some(s) = live(&mut self.tickets, before, &mut applied, ticket) else {
                    return applied;
                };
                s.last_seen = s.last_seen.max(t);
                if s.resolved {
                    s.resolved = false;
                    emit.at(Kpi::ReopenRate, [s.channel, s.region, u], Update::Numerator);
                }
            }
            Body::ChatRequested { chat } => {
                emit.at(Kpi::ChatsRequested, [u, ev.region, u], Update::Count);
                start(&mut self.chats, before, &mut applied, chat, || ChatState {
                    requested_at: t,
                    region: ev.region,
                    joined: None,
                    ended: false,
                    last_seen: t,
                });
            }
            Body::ChatAgentJoined { chat, agent } => {
                let Some(s) = live(&mut self.chats, before, &mut applied, chat) else {
                    return applied;
                };
                s.last_seen = s.last_seen.max(t);
                if s.joined.is_none() && !s.ended {
                    s.joined = Some((t, agent));
                    let wait = t - s.requested_at;
                    emit.at(
                        Kpi::ChatWaitTime,
                        [u, s.region, agent],
                        Update::Sample(secs(wait)),
                    );
                    emit.at(
                        Kpi::ChatAbandonmentRate,
                        [u, s.region, u],
                        Update::Hit(false),
                    );
                    let in_level = wait <= rules.service_level_threshold;
                    emit.at(
                        Kpi::ChatServiceLevel,
                        [u, s.region, u],
                        Update::Hit(in_level),
                    );
                }
            }
            Body::ChatEnded { chat } => {
                let Some(s) = live(&mut self.chats, before, &mut applied, chat) else {
                    return applied;
                };
                s.last_seen = s.last_seen.max(t);
                if !s.ended {
                    s.ended = true;
                    match s.joined {
                        Some((joined_at, agent)) => {
                            let handle = secs(t - joined_at);
                            emit.at(
                                Kpi::ChatHandleTime,
                                [u, s.region, agent],
                                Update::Sample(handle),
                            );
                        }
                        None if t - s.requested_at >= rules.short_abandon_threshold => {
                            emit.at(
                                Kpi::ChatAbandonmentRate,
                                [u, s.region, u],
                                Update::Hit(true),
                            );
                            emit.at(Kpi::ChatServiceLevel, [u, s.region, u], Update::Hit(false));
                        }
                        None => {} // short abandon: left out of both rates
                    }
                }
            }
            Body::SurveySubmitted {
                survey,
                score,
                agent,
            } => {
                let dims = [ev.channel, ev.region, agent];
                let score = f64::from(score);
                match survey {
                    SurveyKind::Csat => {
                        emit.at(Kpi::CsatRate, dims, Update::Hit(score >= 4.0));
                        emit.at(Kpi::CsatMean, dims, Update::Value(score));
                    }
                    SurveyKind::Nps => {
                        let s = if score >= 9.0 {
                            1.0
                        } else if score <= 6.0 {
                            -1.0
                        } else {
                            0.0
                        };
                        emit.at(Kpi::Nps, dims, Update::Value(s));
                    }
                    SurveyKind::Ces => emit.at(Kpi::CesMean, dims, Update::Value(score)),
                }
            }
            Body::CheckoutStarted { checkout } => {
                let dims = [ev.channel, ev.region, u];
                emit.at(Kpi::CheckoutsStarted, dims, Update::Count);
                emit.at(Kpi::CheckoutConversionRate, dims, Update::Count);
                let started = start(&mut self.carts, before, &mut applied, checkout, || {
                    CartState {
                        channel: ev.channel,
                        region: ev.region,
                        outcome: CartOutcome::Pending,
                        last_seen: t,
                    }
                });
                if started {
                    timers.push((t.saturating_add(rules.cart_abandon_after), checkout));
                }
            }
            Body::CheckoutCompleted { checkout, value } => {
                let Some(s) = live(&mut self.carts, before, &mut applied, checkout) else {
                    return applied;
                };
                s.last_seen = s.last_seen.max(t);
                let dims = [ev.channel, ev.region, u];
                emit.at(Kpi::OrdersCompleted, dims, Update::Count);
                emit.at(Kpi::Revenue, dims, Update::Value(value));
                emit.at(Kpi::AverageOrderValue, dims, Update::Value(value));
                emit.at(Kpi::CheckoutConversionRate, dims, Update::Numerator);
                if s.outcome == CartOutcome::Pending {
                    s.outcome = CartOutcome::Completed;
                    emit.at(
                        Kpi::CartAbandonmentRate,
                        [s.channel, s.region, u],
                        Update::Hit(false),
                    );
                }
            }
            Body::SubscriptionStarted { subscription } => {
                let started = start(
                    &mut self.subscriptions,
                    before,
                    &mut applied,
                    subscription,
                    || SubscriptionState {
                        region: ev.region,
                        active: true,
                        last_seen: t,
                    },
                );
                if started {
                    base.change(clock, ev.region, 1);
                }
            }
            Body::SubscriptionRenewed { subscription } => {
                let Some(s) = live(&mut self.subscriptions, before, &mut applied, subscription)
                else {
                    return applied;
                };
                s.last_seen = s.last_seen.max(t);
                if s.active {
                    emit.at(Kpi::RenewalRate, [u, s.region, u], Update::Hit(true));
                }
            }
            Body::SubscriptionCancelled { subscription } => {
                let Some(s) = live(&mut self.subscriptions, before, &mut applied, subscription)
                else {
                    return applied;
                };
                s.last_seen = s.last_seen.max(t);
                if s.active {
                    s.active = false;
                    let dims = [u, s.region, u];
                    emit.at(Kpi::ChurnRate, dims, Update::Numerator);
                    emit.at(Kpi::RenewalRate, dims, Update::Hit(false));
                    base.change(clock, s.region, -1);
                }
            }
        }
        applied
    }

    /// Fires a cart timer: a cart still pending is abandoned, observed at `due`.
    pub fn cart_timer(&mut self, due: Micros, checkout: Fp, obs: &mut Vec<Observation>) {
        if let Some(s) = self.carts.get_mut(checkout) {
            if s.outcome == CartOutcome::Pending {
                s.outcome = CartOutcome::Abandoned;
                s.last_seen = s.last_seen.max(due);
                obs.push(Observation {
                    t: due,
                    kpi: Kpi::CartAbandonmentRate,
                    dims: [s.channel, s.region, Sym::UNKNOWN],
                    update: Update::Hit(true),
                });
            }
        }
    }

    /// Starts loading the slot of the state `body` names (a hint, see
    /// [`FpTable::prefetch`]).
    #[inline]
    pub fn prefetch(&self, body: &Body) {
        match Named::by(body) {
            Some(Named::Ticket(id)) => self.tickets.prefetch(id),
            Some(Named::Chat(id)) => self.chats.prefetch(id),
            Some(Named::Cart(id)) => self.carts.prefetch(id),
            Some(Named::Subscription(id)) => self.subscriptions.prefetch(id),
            None => {}
        }
    }

    /// Starts loading the slot of cart `checkout` (its timer is next).
    #[inline]
    pub fn prefetch_cart(&self, checkout: Fp) {
        self.carts.prefetch(checkout);
    }

    /// Drops every state idle since before `before` (event time): pending
    /// carts stay until their timer has fired, active subscriptions stay.
    /// Returns how many were dropped.
    pub fn evict(&mut self, before: Micros) -> usize {
        let n = self.len();
        self.tickets.retain(|s| !s.idle_before(before));
        self.chats.retain(|s| !s.idle_before(before));
        self.carts.retain(|s| !s.idle_before(before));
        self.subscriptions.retain(|s| !s.idle_before(before));
        n - self.len()
    }

    /// Open entities: tickets, chats, carts, subscriptions.
    pub fn counts(&self) -> [usize; 4] {
        [
            self.tickets.len(),
            self.chats.len(),
            self.carts.len(),
            self.subscriptions.len(),
        ]
    }

    pub fn len(&self) -> usize {
        self.counts().iter().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
