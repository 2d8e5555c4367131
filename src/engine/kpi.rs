//! The KPI catalogue (contract §4): each KPI's name, kind and dimensions, and
//! how its accumulated state becomes a record value.
//!
//! The per-KPI *rules* (what an event contributes) live with the entity
//! state in [`super::entities`]; this module only says what a KPI is.

use super::accum::Acc;
use serde::{Deserialize, Serialize};

/// A dimension of a grouping set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Dim {
    Channel = 0,
    Region = 1,
    AgentId = 2,
}

impl Dim {
    pub const ALL: [Dim; 3] = [Dim::Channel, Dim::Region, Dim::AgentId];

    pub fn name(self) -> &'static str {
        match self {
            Dim::Channel => "channel",
            Dim::Region => "region",
            Dim::AgentId => "agent_id",
        }
    }

    pub fn parse(s: &str) -> Option<Dim> {
        Dim::ALL.into_iter().find(|d| d.name() == s)
    }

    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

const C: u8 = 1; // channel
const R: u8 = 2; // region
const A: u8 = 4; // agent_id

/// How a KPI aggregates and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KpiKind {
    /// Number of events; `value` = `count`.
    Count,
    /// Durations: `value` is the mean, plus p50/p90/p99.
    Distribution,
    /// `numerator ÷ count`, emitted when `count > 0`.
    Ratio,
    /// Mean of values.
    Mean,
    /// NPS: `100 × (promoters − detractors) ÷ responses`.
    Score,
    /// Sum of values; `count` is the number of values.
    Sum,
    /// Churn: numerator from events, denominator from the subscription base
    /// snapshotted at the window start.
    Churn,
}

macro_rules! kpis {
    ($($variant:ident => $name:literal, $kind:ident, $dims:expr;)*) => {
        /// Every KPI of the contract.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[repr(u8)]
        pub enum Kpi { $($variant),* }

        impl Kpi {
            pub const ALL: &'static [Kpi] = &[$(Kpi::$variant),*];

            /// The contract's name, as in the `kpi` field of a record.
            pub fn name(self) -> &'static str {
                match self { $(Kpi::$variant => $name),* }
            }

            pub fn kind(self) -> KpiKind {
                match self { $(Kpi::$variant => KpiKind::$kind),* }
            }

            /// Bit set of the dimensions this KPI can be grouped by.
            pub fn dims(self) -> u8 {
                match self { $(Kpi::$variant => $dims),* }
            }
        }
    };
}

kpis! {
    TicketsOpened => "tickets_opened", Count, C | R;
    FirstReplyTime => "first_reply_time_seconds", Distribution, C | R | A;
    FirstResolutionTime => "first_resolution_time_seconds", Distribution, C | R | A;
    FcrRate => "fcr_rate", Ratio, C | R | A;
    ReopenRate => "reopen_rate", Ratio, C | R;
    ChatsRequested => "chats_requested", Count, R;
    ChatWaitTime => "chat_wait_time_seconds", Distribution, R | A;
    ChatAbandonmentRate => "chat_abandonment_rate", Ratio, R;
    ChatServiceLevel => "chat_service_level", Ratio, R;
    ChatHandleTime => "chat_handle_time_seconds", Distribution, R | A;
    CsatRate => "csat_rate", Ratio, C | R | A;
    CsatMean => "csat_mean", Mean, C | R | A;
    Nps => "nps", Score, C | R | A;
    CesMean => "ces_mean", Mean, C | R | A;
    CheckoutsStarted => "checkouts_started", Count, C | R;
    OrdersCompleted => "orders_completed", Count, C | R;
    Revenue => "revenue", Sum, C | R;
    AverageOrderValue => "average_order_value", Mean, C | R;
    CheckoutConversionRate => "checkout_conversion_rate", Ratio, C | R;
    CartAbandonmentRate => "cart_abandonment_rate", Ratio, C | R;
    ChurnRate => "churn_rate", Churn, R;
    RenewalRate => "renewal_rate", Ratio, R;
}

impl Kpi {
    pub fn from_name(name: &str) -> Option<Kpi> {
        Kpi::ALL.iter().copied().find(|k| k.name() == name)
    }
}

/// A record's value: integers for counts, floats otherwise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

impl Value {
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Int(n) => n as f64,
            Value::Float(v) => v,
        }
    }
}

/// The reported numbers of one (kpi, window, group).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub value: Value,
    pub count: u64,
    pub numerator: Option<u64>,
    /// p50, p90, p99 for distributions.
    pub quantiles: Option<[f64; 3]>,
}

/// Turns accumulated state into a reading, or `None` when the contract says
/// no row is emitted (no observation, zero denominator, churn without
/// cancellations or without an active base).
pub fn read(kpi: Kpi, acc: &Acc, churn_base: u64) -> Option<Reading> {
    let n = acc.n;
    let reading = |value, count, numerator, quantiles| {
        Some(Reading {
            value,
            count,
            numerator,
            quantiles,
        })
    };
    match kpi.kind() {
        KpiKind::Churn => {
            if acc.num == 0 || churn_base == 0 {
                return None;
            }
            let v = acc.num as f64 / churn_base as f64;
            reading(Value::Float(v), churn_base, Some(acc.num), None)
        }
        _ if n == 0 => None,
        KpiKind::Count => reading(Value::Int(n), n, None, None),
        KpiKind::Ratio => reading(
            Value::Float(acc.num as f64 / n as f64),
            n,
            Some(acc.num),
            None,
        ),
        KpiKind::Mean => reading(Value::Float(acc.sum / n as f64), n, None, None),
        KpiKind::Score => reading(Value::Float(100.0 * acc.sum / n as f64), n, None, None),
        KpiKind::Sum => reading(Value::Float(acc.sum), n, None, None),
        KpiKind::Distribution => {
            let q = |p| {
                acc.sketch
                    .as_ref()
                    .and_then(|s| s.quantile(p))
                    .unwrap_or(f64::NAN)
            };
            reading(
                Value::Float(acc.sum / n as f64),
                n,
                None,
                Some([q(0.5), q(0.9), q(0.99)]),
            )
        }
    }
}
