//! The customer-experience event as the engine sees it, after decoding.
//!
//! Events are small `Copy` values: entity and event ids are kept as 128-bit
//! fingerprints of their text (no allocation per event; a collision needs
//! ~2^64 ids), dimension values as interned [`Sym`]s. Fields that no KPI uses
//! (`customer_id`, `order_id`) are validated by the decoder but not kept.

use crate::intern::Sym;
use crate::time::Micros;
use serde::{Deserialize, Serialize};

/// Fingerprint of an id string (xxh3-128, stable across versions and platforms).
pub type Fp = u128;

/// Fingerprints an id.
pub fn fingerprint(id: &str) -> Fp {
    xxhash_rust::xxh3::xxh3_128(id.as_bytes())
}

/// One valid event.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: Fp,
    pub ts: Micros,
    pub region: Sym,
    pub channel: Sym,
    pub body: Body,
}

/// Who wrote a ticket reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Author {
    Agent,
    Customer,
    Bot,
}

/// Which survey a score belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SurveyKind {
    Csat,
    Nps,
    Ces,
}

impl SurveyKind {
    /// Inclusive score range of the survey.
    pub fn range(self) -> (i64, i64) {
        match self {
            SurveyKind::Csat => (1, 5),
            SurveyKind::Nps => (0, 10),
            SurveyKind::Ces => (1, 7),
        }
    }
}

/// The type-specific part of an event.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Body {
    TicketOpened {
        ticket: Fp,
    },
    TicketReplied {
        ticket: Fp,
        author: Author,
        public: bool,
        agent: Sym,
    },
    TicketResolved {
        ticket: Fp,
        agent: Sym,
    },
    TicketReopened {
        ticket: Fp,
    },
    ChatRequested {
        chat: Fp,
    },
    ChatAgentJoined {
        chat: Fp,
        agent: Sym,
    },
    ChatEnded {
        chat: Fp,
    },
    SurveySubmitted {
        survey: SurveyKind,
        score: u8,
        agent: Sym,
    },
    CheckoutStarted {
        checkout: Fp,
    },
    CheckoutCompleted {
        checkout: Fp,
        value: f64,
    },
    SubscriptionStarted {
        subscription: Fp,
    },
    SubscriptionRenewed {
        subscription: Fp,
    },
    SubscriptionCancelled {
        subscription: Fp,
    },
}

impl Body {
    /// The contract's `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            Body::TicketOpened { .. } => "ticket.opened",
            Body::TicketReplied { .. } => "ticket.replied",
            Body::TicketResolved { .. } => "ticket.resolved",
            Body::TicketReopened { .. } => "ticket.reopened",
            Body::ChatRequested { .. } => "chat.requested",
            Body::ChatAgentJoined { .. } => "chat.agent_joined",
            Body::ChatEnded { .. } => "chat.ended",
            Body::SurveySubmitted { .. } => "survey.submitted",
            Body::CheckoutStarted { .. } => "checkout.started",
            Body::CheckoutCompleted { .. } => "checkout.completed",
            Body::SubscriptionStarted { .. } => "subscription.started",
            Body::SubscriptionRenewed { .. } => "subscription.renewed",
            Body::SubscriptionCancelled { .. } => "subscription.cancelled",
        }
    }
}
