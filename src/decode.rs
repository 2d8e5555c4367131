//! Decoding and validation of the event contract (contract §1).
//!
//! A line or message value is parsed once into [`RawEvent`], whose fields
//! borrow from the input and accept any JSON type, so that validation can
//! name the offending field instead of reporting a serde position. Then the
//! type-specific rules run and produce an [`Event`] or a [`DecodeError`].

use crate::event::{fingerprint, Author, Body, Event, SurveyKind};
use crate::intern::{Interner, Sym};
use crate::time::{from_epoch_millis, parse_rfc3339, Micros};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// Largest accepted `checkout.completed` value. The contract only asks for a
/// number ≥ 0; without a bound, a few values near `f64::MAX` would overflow
/// revenue sums to infinity (not representable in JSON). 10^15 is far above
/// any real order in any currency, and no realistic number of such orders
/// sums to anything near `f64::MAX`.
pub const MAX_ORDER_VALUE: f64 = 1e15;

/// Every field of the event contract (any other field is ignored), in the
/// order of the fast parser's duplicate mask.
pub const FIELDS: [&str; 17] = [
    "event_id",
    "type",
    "ts",
    "region",
    "channel",
    "ticket_id",
    "customer_id",
    "author",
    "public",
    "agent_id",
    "chat_id",
    "survey",
    "score",
    "checkout_id",
    "order_id",
    "value",
    "subscription_id",
];

/// Why an input was rejected. The reason names the field where there is one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("not valid JSON: {0}")]
    NotJson(String),
    #[error("not a JSON object")]
    NotAnObject,
    #[error("field `{0}`: duplicate field")]
    DuplicateField(String),
    #[error("field `{field}`: missing")]
    Missing { field: &'static str },
    #[error("field `{field}`: expected {expected}, got {got}")]
    Mistyped {
        field: &'static str,
        expected: &'static str,
        got: &'static str,
    },
    #[error("field `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// Live pipeline only (`pipeline.max_future`): an event time too far
    /// ahead of the wall clock, which would drag its partition's watermark
    /// into the future and make every later event on it late.
    #[error("field `ts`: {ts} is more than {limit} ahead of the wall clock ({wall})")]
    Future {
        ts: String,
        limit: String,
        wall: String,
    },
}

impl DecodeError {
    /// The field the error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            DecodeError::NotJson(_) | DecodeError::NotAnObject => None,
            DecodeError::DuplicateField(f) => Some(f),
            DecodeError::Missing { field }
            | DecodeError::Mistyped { field, .. }
            | DecodeError::Invalid { field, .. } => Some(field),
            DecodeError::Future { .. } => Some("ts"),
        }
    }

    /// A short, stable label for metrics (`invalid_events_total{reason=…}`).
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::NotJson(_) => "not_json",
            DecodeError::NotAnObject => "not_object",
            DecodeError::DuplicateField(_) => "duplicate_field",
            DecodeError::Missing { .. } => "missing_field",
            DecodeError::Mistyped { .. } => "mistyped_field",
            DecodeError::Invalid { field: "type", .. } => "unknown_type",
            DecodeError::Invalid { .. } => "invalid_value",
            DecodeError::Future { .. } => "future_ts",
        }
    }
}

/// A JSON value as seen by validation: scalars kept (strings borrowed when
/// unescaped), arrays and objects skipped.
#[derive(Debug, Default, Clone, PartialEq)]
pub enum Field<'a> {
    #[default]
    Absent,
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Array,
    Object,
}

impl Field<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Field::Absent => "nothing",
            Field::Null => "null",
            Field::Bool(_) => "a boolean",
            Field::Int(_) | Field::UInt(_) => "an integer",
            Field::Float(_) => "a non-integer number",
            Field::Str(_) => "a string",
            Field::Array => "an array",
            Field::Object => "an object",
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Field::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Field::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(match i64::try_from(v) {
                    Ok(i) => Field::Int(i),
                    Err(_) => Field::UInt(v),
                })
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Field::Float(v))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Owned(v)))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Field::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Field::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field::Array)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::Object)
            }
        }
        d.deserialize_any(V)
    }
}

/// A field of the contract: its index in [`FIELDS`] and in a [`RawEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Key {
    EventId,
    Type,
    Ts,
    Region,
    Channel,
    TicketId,
    CustomerId,
    Author,
    Public,
    AgentId,
    ChatId,
    Survey,
    Score,
    CheckoutId,
    OrderId,
    Value,
    SubscriptionId,
}

/// Every field of every event type, by [`Key`]; unknown fields are
/// ignored. An array, not a struct, so that the fast path stores a value by
/// the key's index instead of branching on it.
#[derive(Debug, Default)]
pub struct RawEvent<'a>([Field<'a>; FIELDS.len()]);

impl<'a> std::ops::Index<Key> for RawEvent<'a> {
    type Output = Field<'a>;
    fn index(&self, key: Key) -> &Field<'a> {
        &self.0[key as usize]
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawEvent<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let e = SerdeEvent::deserialize(d)?;
        // In `FIELDS` order (a test checks every key lands in its slot).
        Ok(RawEvent([
            e.event_id,
            e.kind,
            e.ts,
            e.region,
            e.channel,
            e.ticket_id,
            e.customer_id,
            e.author,
            e.public,
            e.agent_id,
            e.chat_id,
            e.survey,
            e.score,
            e.checkout_id,
            e.order_id,
            e.value,
            e.subscription_id,
        ]))
    }
}

/// [`RawEvent`] as serde reads it, field by field (the general path).
#[derive(Default, Deserialize)]
#[serde(default)]
struct SerdeEvent<'a> {
    #[serde(borrow)]
    event_id: Field<'a>,
    #[serde(borrow, rename = "type")]
    kind: Field<'a>,
    #[serde(borrow)]
    ts: Field<'a>,
    #[serde(borrow)]
    region: Field<'a>,
    #[serde(borrow)]
    channel: Field<'a>,
    #[serde(borrow)]
    ticket_id: Field<'a>,
    #[serde(borrow)]
    customer_id: Field<'a>,
    #[serde(borrow)]
    author: Field<'a>,
    #[serde(borrow)]
    public: Field<'a>,
    #[serde(borrow)]
    agent_id: Field<'a>,
    #[serde(borrow)]
    chat_id: Field<'a>,
    #[serde(borrow)]
    survey: Field<'a>,
    #[serde(borrow)]
    score: Field<'a>,
    #[serde(borrow)]
    checkout_id: Field<'a>,
    #[serde(borrow)]
    order_id: Field<'a>,
    #[serde(borrow)]
    value: Field<'a>,
    #[serde(borrow)]
    subscription_id: Field<'a>,
}

/// Parses one line or message value into a [`RawEvent`].
pub fn parse(bytes: &[u8]) -> Result<RawEvent<'_>, DecodeError> {
    let mut raw = RawEvent::default();
    match flat::parse(bytes, &mut raw) {
        Some(()) => Ok(raw),
        None => parse_with_serde(bytes),
    }
}

/// The general path of [`parse`]: anything the fast path declines,
/// errors included, is serde's to read.
#[cold]
fn parse_with_serde(bytes: &[u8]) -> Result<RawEvent<'_>, DecodeError> {
    // serde would read a struct from an array too: only objects are events.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return match serde_json::from_slice::<IgnoredAny>(bytes) {
            Ok(_) => Err(DecodeError::NotAnObject),
            Err(e) => Err(DecodeError::NotJson(e.to_string())),
        };
    }
    serde_json::from_slice::<RawEvent>(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => {
                let msg = e.to_string();
                match msg.strip_prefix("duplicate field `") {
                    Some(rest) => DecodeError::DuplicateField(
                        rest.split('`').next().unwrap_or_default().to_owned(),
                    ),
                    None => DecodeError::NotAnObject,
                }
            }
            _ => DecodeError::NotJson(e.to_string()),
        }
    })
}

/// The fast path of [`parse`] for the shape nearly every input has: one flat
/// JSON object whose values are scalars, strings without escapes, no
/// duplicate field. It answers only when serde would answer the same
/// [`RawEvent`]; on anything else (escapes, nested values, odd numbers,
/// duplicates, any syntax error) it declines and serde decides, so errors
/// and their messages are serde's. Short unsigned integers and short plain
/// decimals are read here; other numbers are handed to serde token by token.
mod flat {
    use super::{Field, RawEvent, FIELDS as KEYS};
    use std::borrow::Cow;

    /// Parses a flat object into `raw` (fresh: every field absent), or
    /// declines (`None`, leaving `raw` partly filled).
    pub(super) fn parse<'a>(bytes: &'a [u8], raw: &mut RawEvent<'a>) -> Option<()> {
        match Quotes::scan(bytes) {
            // A plain line: each string ends at the next quote.
            Some(quotes) => object::<true>(bytes, raw, |from| quotes.next(from)),
            None => {
                // Not UTF-8: serde reports where. Validated once, up front
                // (one pass is far cheaper than one call per string field).
                std::str::from_utf8(bytes).ok()?;
                object::<false>(bytes, raw, |from| {
                    let end = from + string_end(&bytes[from..])?;
                    // An escape or a control character: serde's job.
                    (bytes[end] == b'"').then_some(end)
                })
            }
        }
    }

    /// Index after the JSON whitespace (exactly serde_json's set) at `i`.
    /// In a plain line (`PLAIN`) the only whitespace byte there can be is
    /// the space: the others are control characters.
    #[inline(always)]
    fn ws<const PLAIN: bool>(b: &[u8], mut i: usize) -> usize {
        if PLAIN {
            while b.get(i) == Some(&b' ') {
                i += 1;
            }
        } else {
            while matches!(b.get(i), Some(b' ' | b'\n' | b'\t' | b'\r')) {
                i += 1;
            }
        }
        i
    }

    /// The text between `start` and `end` of a line known to be UTF-8,
    /// where both ends are next to a quote.
    #[inline(always)]
    fn text(b: &[u8], start: usize, end: usize) -> &str {
        let bytes = &b[start..end];
        // SAFETY: [`parse`] takes this path only for a line that is UTF-8
        // (all ASCII, or checked), and a quote is ASCII, so `start` and
        // `end`, each next to one, are character boundaries.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// The object loop. `closing_quote(i)` is the index of the quote that
    /// ends a string whose text starts at `i`, or `None` to decline (an
    /// escape, a control character, the end of the line).
    #[inline(always)]
    fn object<'a, const PLAIN: bool>(
        b: &'a [u8],
        raw: &mut RawEvent<'a>,
        closing_quote: impl Fn(usize) -> Option<usize>,
    ) -> Option<()> {
        let mut i = ws::<PLAIN>(b, 0);
        if b.get(i) != Some(&b'{') {
            return None;
        }
        i = ws::<PLAIN>(b, i + 1);
        if b.get(i) == Some(&b'}') {
            return (ws::<PLAIN>(b, i + 1) == b.len()).then_some(());
        }
        let mut seen = 0u32;
        loop {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let end = closing_quote(i + 1)?;
            let key = key_index(b, i + 1, end);
            // `": "` is how nearly every writer separates a key from its
            // value: one compare instead of a whitespace scan on each side.
            i = match b.get(end + 1..end + 3) {
                Some(b": ") => ws::<PLAIN>(b, end + 3),
                _ => {
                    let colon = ws::<PLAIN>(b, end + 1);
                    if b.get(colon) != Some(&b':') {
                        return None;
                    }
                    ws::<PLAIN>(b, colon + 1)
                }
            };
            let value;
            (value, i) = match *b.get(i)? {
                b'"' => {
                    let end = closing_quote(i + 1)?;
                    (Field::Str(Cow::Borrowed(text(b, i + 1, end))), end + 1)
                }
                b't' => literal(b, i, b"true", Field::Bool(true))?,
                b'f' => literal(b, i, b"false", Field::Bool(false))?,
                b'n' => literal(b, i, b"null", Field::Null)?,
                b'-' | b'0'..=b'9' => number(b, i)?,
                _ => return None, // an array or an object: serde's job
            };
            if let Some(k) = key {
                let bit = 1u32 << k;
                if seen & bit != 0 {
                    return None; // serde reports the duplicate
                }
                seen |= bit;
                raw.0[k] = value;
            }
            // Likewise `, ` between a value and the next key.
            if b.get(i..i + 2) == Some(b", ") {
                i = ws::<PLAIN>(b, i + 2);
                continue;
            }
            i = ws::<PLAIN>(b, i);
            match b.get(i) {
                Some(b',') => i = ws::<PLAIN>(b, i + 1),
                Some(b'}') => break,
                _ => return None,
            }
        }
        (ws::<PLAIN>(b, i + 1) == b.len()).then_some(())
    }

    /// `text` at `i` as `value`, and the index after it.
    fn literal<'a>(
        b: &[u8],
        i: usize,
        text: &[u8],
        value: Field<'a>,
    ) -> Option<(Field<'a>, usize)> {
        let end = i.checked_add(text.len())?;
        (b.get(i..end)? == text).then_some((value, end))
    }

    /// The number at `i` and the index after it. The token is every
    /// following byte a JSON number can hold. Read here: an unsigned
    /// integer of up to 18 digits (no overflow) and a plain decimal
    /// `int.frac` of up to 15 digits in all. The latter's digits are below
    /// 2^53 and its power of ten is exact, so one division gives the
    /// correctly rounded value, which is what serde_json computes too.
    /// A leading zero before more digits is serde's error. Anything else
    /// (signs, exponents, longer numbers) serde reads from the token.
    fn number(b: &[u8], i: usize) -> Option<(Field<'_>, usize)> {
        // The common case first, an integer of up to 18 digits: its digits
        // are read in the same pass that finds its end. A fraction or an
        // exponent sends the token to the general path (without that test
        // the object loop would decline the line at the `.` and serde
        // would read it: the same answer, slower; any other byte after the
        // digits is the object loop's to judge).
        let mut end = i;
        let mut n = 0i64;
        while let Some(d) = b.get(end).map(|c| c.wrapping_sub(b'0')).filter(|&d| d < 10) {
            // Wrapping: a longer integer's value is not used.
            n = n.wrapping_mul(10).wrapping_add(i64::from(d));
            end += 1;
        }
        let len = end - i;
        if (1..=18).contains(&len)
            && (len == 1 || b[i] != b'0')
            && !matches!(b.get(end), Some(b'.' | b'e' | b'E'))
        {
            return Some((Field::Int(n), end));
        }
        number_general(b, i)
    }

    /// [`number`] for every other token.
    fn number_general(b: &[u8], i: usize) -> Option<(Field<'_>, usize)> {
        let mut end = i;
        let mut dot = None;
        let mut plain = true;
        while let Some(&c) = b.get(end) {
            match c {
                b'0'..=b'9' => {}
                b'.' if dot.is_none() => dot = Some(end),
                b'-' | b'+' | b'.' | b'e' | b'E' => plain = false,
                _ => break,
            }
            end += 1;
        }
        let token = &b[i..end];
        let digits = |s: &[u8]| s.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
        let int_len = dot.map_or(token.len(), |d| d - i);
        if plain && int_len > 0 && (int_len == 1 || token[0] != b'0') {
            match dot {
                None if token.len() <= 18 => return Some((Field::Int(digits(token)), end)),
                Some(d) if end > d + 1 && token.len() <= 16 => {
                    let frac = &b[d + 1..end];
                    let mantissa = digits(&token[..int_len]) * POW10[frac.len()] + digits(frac);
                    let value = mantissa as f64 / POW10[frac.len()] as f64;
                    return Some((Field::Float(value), end));
                }
                _ => {}
            }
        }
        serde_json::from_slice::<Field>(token)
            .ok()
            .filter(|f| matches!(f, Field::Int(_) | Field::UInt(_) | Field::Float(_)))
            .map(|f| (f, end))
    }

    /// 10^k for the fraction digits of a plain decimal (at most 15).
    const POW10: [i64; 16] = {
        let mut p = [1i64; 16];
        let mut k = 1;
        while k < 16 {
            p[k] = p[k - 1] * 10;
            k += 1;
        }
        p
    };

    /// Index of the first `"`, `\\` or control character (< 0x20) in `b`.
    ///
    /// Eight bytes at a time (SWAR): for each byte of a little-endian word,
    /// `(x - 0x01…) & !x & 0x80…` sets the byte's top bit when the byte is
    /// zero, and a borrow can only set it wrongly in bytes *after* a true
    /// match, so the lowest set bit is exact. Applied to `w ^ '"'`,
    /// `w ^ '\\'` and (with `0x20` instead of `0x01`) to `w` for bytes
    /// below 0x20. Used for lines that are not plain ([`Quotes`]).
    pub(super) fn string_end(b: &[u8]) -> Option<usize> {
        const LO: u64 = 0x0101_0101_0101_0101;
        const HI: u64 = 0x8080_8080_8080_8080;
        let mut i = 0;
        while let Some(chunk) = b.get(i..i + 8) {
            let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            let quote = w ^ (LO * u64::from(b'"'));
            let backslash = w ^ (LO * u64::from(b'\\'));
            let hits = (quote.wrapping_sub(LO) & !quote)
                | (backslash.wrapping_sub(LO) & !backslash)
                | (w.wrapping_sub(LO * 0x20) & !w);
            let hits = hits & HI;
            if hits != 0 {
                return Some(i + (hits.trailing_zeros() / 8) as usize);
            }
            i += 8;
        }
        b[i..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .map(|j| i + j)
    }

    /// Where the quotes of a *plain* line are: one no longer than
    /// [`Quotes::MAX_LINE`] bytes, all of them ASCII, with no backslash and no
    /// control character (so no escapes and no whitespace but spaces).
    /// Nearly every event line is plain; for one, each string's end is the
    /// next quote, found with a bit scan instead of a byte scan, and the
    /// line needs no UTF-8 decoding. Lines that are not plain take the
    /// byte-by-byte path ([`string_end`]).
    #[derive(Clone, Copy)]
    pub(super) struct Quotes([u64; Quotes::WORDS]);

    /// Bit `i` set for each quote among the 16 bytes, and for each byte
    /// that is a control character, not ASCII, or a backslash.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn sse2_chunk(chunk: &[u8]) -> (u16, u16) {
        use std::arch::x86_64::*;
        assert_eq!(chunk.len(), 16);
        // SAFETY: the load reads the 16 bytes of `chunk` (checked above;
        // unaligned loads are allowed), and SSE2 is part of the x86-64
        // baseline, so every x86-64 CPU runs these instructions.
        unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast());
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            // Signed: bytes >= 0x80 are negative, so `< 0x20` also finds
            // every byte that is not ASCII.
            let control_or_wide = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            (
                _mm_movemask_epi8(quote) as u16,
                _mm_movemask_epi8(_mm_or_si128(control_or_wide, backslash)) as u16,
            )
        }
    }

    impl Quotes {
        const WORDS: usize = 8;
        pub(super) const MAX_LINE: usize = 64 * Self::WORDS;

        /// The quotes of `b`, or `None` if `b` is not plain. Sixteen bytes
        /// at a time with SSE2 (every x86-64 has it), byte by byte elsewhere
        /// and for lines shorter than 16 bytes.
        pub(super) fn scan(b: &[u8]) -> Option<Quotes> {
            if b.len() > Self::MAX_LINE {
                return None;
            }
            let mut quotes = [0u64; Self::WORDS];
            #[cfg(target_arch = "x86_64")]
            if b.len() >= 16 {
                // Chunks at 0, 16, 32, … and a last one ending with the
                // line (it may overlap the one before: its quote bits land
                // on the same positions, so or-ing them in twice is harmless).
                let last = b.len() - 16;
                let mut odd = 0;
                let mut at = 0;
                while at < last {
                    let (quote, bad) = sse2_chunk(&b[at..at + 16]);
                    odd |= bad;
                    quotes[at / 64] |= u64::from(quote) << (at % 64);
                    at += 16;
                }
                // The last chunk, unaligned unless the length is a multiple
                // of 16: may span two words.
                let (quote, bad) = sse2_chunk(&b[last..]);
                odd |= bad;
                let bits = u128::from(quote) << (last % 64);
                quotes[last / 64] |= bits as u64;
                if let Some(next) = quotes.get_mut(last / 64 + 1) {
                    *next |= (bits >> 64) as u64;
                }
                return (odd == 0).then_some(Quotes(quotes));
            }
            for (i, &c) in b.iter().enumerate() {
                if !(0x20..0x80).contains(&c) || c == b'\\' {
                    return None;
                }
                quotes[i / 64] |= u64::from(c == b'"') << (i % 64);
            }
            Some(Quotes(quotes))
        }

        /// Index of the first quote at or after `from`.
        pub(super) fn next(&self, from: usize) -> Option<usize> {
            let mut w = from / 64;
            let mut bits = self.0.get(w)? & (!0u64 << (from % 64));
            while bits == 0 {
                w += 1;
                bits = *self.0.get(w)?;
            }
            Some(w * 64 + bits.trailing_zeros() as usize)
        }
    }

    /// A key's first bytes as two little-endian words, zero past its end
    /// (every key of the contract is at most 16 bytes), and its length.
    #[derive(Clone, Copy)]
    struct KeyPattern {
        words: [u64; 2],
        len: usize,
    }

    const fn pattern(name: &str) -> KeyPattern {
        let b = name.as_bytes();
        let mut p = KeyPattern {
            words: [0; 2],
            len: b.len(),
        };
        let mut i = 0;
        while i < b.len() {
            p.words[i / 8] |= (b[i] as u64) << (8 * (i % 8));
            i += 1;
        }
        p
    }

    const PATTERNS: [KeyPattern; KEYS.len()] = {
        let mut out = [pattern(""); KEYS.len()];
        let mut k = 0;
        while k < KEYS.len() {
            assert!(KEYS[k].len() <= 16);
            out[k] = pattern(KEYS[k]);
            k += 1;
        }
        out
    };

    /// Multiplier of the perfect hash of a key's first word (found by a
    /// search; [`BY_HASH`] fails to compile if it stops being perfect).
    const HASH_MUL: u64 = 0xe544_6dd4_552b_82f7;
    const NO_KEY: u8 = u8::MAX;

    const fn hash(word: u64) -> usize {
        (word.wrapping_mul(HASH_MUL) >> 59) as usize
    }

    /// Index in `KEYS` by the hash of the first word, `NO_KEY` where no key
    /// hashes to.
    const BY_HASH: [u8; 32] = {
        let mut table = [NO_KEY; 32];
        let mut k = 0;
        while k < KEYS.len() {
            let h = hash(PATTERNS[k].words[0]);
            assert!(table[h] == NO_KEY, "HASH_MUL is not a perfect hash of KEYS");
            table[h] = k as u8;
            k += 1;
        }
        table
    };

    /// The index in `KEYS` of the key whose text is `b[start..end]`, if it
    /// is one: the only candidate is found by hashing the key's first
    /// word, then its words and length are compared.
    #[inline(always)]
    pub(super) fn key_index(b: &[u8], start: usize, end: usize) -> Option<usize> {
        let len = end - start;
        if len > 16 {
            return None;
        }
        let word =
            |c: &[u8], at: usize| u64::from_le_bytes(c[at..at + 8].try_into().expect("8 bytes"));
        // Sixteen bytes from the key's start: nearly always in the line
        // (a value and a brace follow), else a copy.
        let (w0, w1) = match b.get(start..start + 16) {
            Some(c) => (word(c, 0), word(c, 8)),
            None => {
                let mut c = [0u8; 16];
                c[..len].copy_from_slice(&b[start..end]);
                (word(&c, 0), word(&c, 8))
            }
        };
        // Keep the key's own bytes: the low `len` bytes of the two words.
        let keep = |n: usize| match n {
            0 => 0,
            8.. => u64::MAX,
            n => (1u64 << (8 * n)) - 1,
        };
        let (w0, w1) = (w0 & keep(len), w1 & keep(len.saturating_sub(8)));
        let k = BY_HASH[hash(w0)];
        let p = PATTERNS.get(usize::from(k))?;
        (p.len == len && p.words == [w0, w1]).then_some(usize::from(k))
    }
}

/// Decodes and validates one event.
pub fn decode(bytes: &[u8], interner: &mut Interner) -> Result<Event, DecodeError> {
    // Filled in place, not returned by `parse`: a `RawEvent` is 17 fields
    // of 32 bytes, and moving it cost more than some of its fields' parsing.
    let mut raw = RawEvent::default();
    if flat::parse(bytes, &mut raw).is_none() {
        raw = parse_with_serde(bytes)?;
    }
    validate(&raw, interner)
}

fn mistyped(field: &'static str, expected: &'static str, got: &Field) -> DecodeError {
    DecodeError::Mistyped {
        field,
        expected,
        got: got.type_name(),
    }
}

/// At most 64 characters of an offending value, for error reasons (a huge
/// value must not make a huge dead-letter reason).
fn clip(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &s[..end]).into(),
        None => s.into(),
    }
}

/// A required string field (`null` counts as missing).
///
/// The string case is tested first and alone, and every other case is in
/// a cold function: a `match` on the field's type compiled to a jump table
/// per field, and indirect jumps predict worse than one well-taken branch.
#[inline]
fn req_str<'f>(field: &'static str, f: &'f Field) -> Result<&'f str, DecodeError> {
    if let Field::Str(s) = f {
        return Ok(s);
    }
    Err(not_a_string(field, f, true))
}

/// An optional string field (`null` counts as absent).
#[inline]
fn opt_str<'f>(field: &'static str, f: &'f Field) -> Result<Option<&'f str>, DecodeError> {
    if let Field::Str(s) = f {
        return Ok(Some(s));
    }
    if let Field::Absent = f {
        return Ok(None);
    }
    match f {
        Field::Null => Ok(None),
        other => Err(not_a_string(field, other, false)),
    }
}

/// Why `f`, not a string, is rejected where a string is expected
/// (`required`: absence is an error too).
#[cold]
fn not_a_string(field: &'static str, f: &Field, required: bool) -> DecodeError {
    match f {
        Field::Absent | Field::Null if required => DecodeError::Missing { field },
        other => mistyped(field, "a string", other),
    }
}

fn req_id(field: &'static str, f: &Field) -> Result<u128, DecodeError> {
    req_str(field, f).map(fingerprint)
}

fn opt_sym(field: &'static str, f: &Field, interner: &mut Interner) -> Result<Sym, DecodeError> {
    Ok(match opt_str(field, f)? {
        Some(v) => interner.intern(v),
        None => Sym::UNKNOWN,
    })
}

fn parse_ts(f: &Field) -> Result<Micros, DecodeError> {
    const FIELD: &str = "ts";
    match f {
        Field::Str(s) => parse_rfc3339(s).ok_or_else(|| DecodeError::Invalid {
            field: FIELD,
            reason: format!("{:?} is not an RFC 3339 timestamp with offset", clip(s)),
        }),
        Field::Int(ms) => from_epoch_millis(*ms).ok_or_else(|| DecodeError::Invalid {
            field: FIELD,
            reason: format!("epoch milliseconds {ms} out of range"),
        }),
        Field::UInt(ms) => Err(DecodeError::Invalid {
            field: FIELD,
            reason: format!("epoch milliseconds {ms} out of range"),
        }),
        Field::Absent | Field::Null => Err(DecodeError::Missing { field: FIELD }),
        other => Err(mistyped(
            FIELD,
            "an RFC 3339 string or integer epoch milliseconds",
            other,
        )),
    }
}

/// Applies the contract's rules to a parsed event.
pub fn validate(raw: &RawEvent, interner: &mut Interner) -> Result<Event, DecodeError> {
    let event_id = req_str("event_id", &raw[Key::EventId])?;
    if event_id.is_empty() {
        return Err(DecodeError::Invalid {
            field: "event_id",
            reason: "must not be empty".into(),
        });
    }
    let kind = req_str("type", &raw[Key::Type])?;
    let ts = parse_ts(&raw[Key::Ts])?;
    // Dimensions are interned only once the whole event is valid: invalid
    // input must not grow the interner (it is engine state).
    let region = opt_str("region", &raw[Key::Region])?;
    let mut channel = opt_str("channel", &raw[Key::Channel])?;

    let body = match kind {
        "ticket.opened" => {
            let ticket = req_id("ticket_id", &raw[Key::TicketId])?;
            req_str("customer_id", &raw[Key::CustomerId])?;
            channel = Some(req_str("channel", &raw[Key::Channel])?);
            Body::TicketOpened { ticket }
        }
        "ticket.replied" => {
            let ticket = req_id("ticket_id", &raw[Key::TicketId])?;
            let author = match req_str("author", &raw[Key::Author])? {
                "agent" => Author::Agent,
                "customer" => Author::Customer,
                "bot" => Author::Bot,
                other => {
                    return Err(DecodeError::Invalid {
                        field: "author",
                        reason: format!("{:?} is not one of agent, customer, bot", clip(other)),
                    })
                }
            };
            let public = match &raw[Key::Public] {
                Field::Absent | Field::Null => true,
                Field::Bool(b) => *b,
                other => return Err(mistyped("public", "a boolean", other)),
            };
            let agent = if author == Author::Agent {
                interner.intern(req_str("agent_id", &raw[Key::AgentId])?)
            } else {
                opt_sym("agent_id", &raw[Key::AgentId], interner)?
            };
            Body::TicketReplied {
                ticket,
                author,
                public,
                agent,
            }
        }
        "ticket.resolved" => Body::TicketResolved {
            ticket: req_id("ticket_id", &raw[Key::TicketId])?,
            agent: opt_sym("agent_id", &raw[Key::AgentId], interner)?,
        },
        "ticket.reopened" => Body::TicketReopened {
            ticket: req_id("ticket_id", &raw[Key::TicketId])?,
        },
        "chat.requested" => {
            let chat = req_id("chat_id", &raw[Key::ChatId])?;
            req_str("customer_id", &raw[Key::CustomerId])?;
            Body::ChatRequested { chat }
        }
        "chat.agent_joined" => Body::ChatAgentJoined {
            chat: req_id("chat_id", &raw[Key::ChatId])?,
            agent: interner.intern(req_str("agent_id", &raw[Key::AgentId])?),
        },
        "chat.ended" => Body::ChatEnded {
            chat: req_id("chat_id", &raw[Key::ChatId])?,
        },
        "survey.submitted" => {
            let survey = match req_str("survey", &raw[Key::Survey])? {
                "csat" => SurveyKind::Csat,
                "nps" => SurveyKind::Nps,
                "ces" => SurveyKind::Ces,
                other => {
                    return Err(DecodeError::Invalid {
                        field: "survey",
                        reason: format!("{:?} is not one of csat, nps, ces", clip(other)),
                    })
                }
            };
            let score = match &raw[Key::Score] {
                Field::Int(n) => *n,
                Field::UInt(n) => i64::try_from(*n).unwrap_or(i64::MAX),
                Field::Absent | Field::Null => return Err(DecodeError::Missing { field: "score" }),
                other => return Err(mistyped("score", "an integer", other)),
            };
            let (lo, hi) = survey.range();
            if !(lo..=hi).contains(&score) {
                return Err(DecodeError::Invalid {
                    field: "score",
                    reason: format!("{score} is out of range {lo}..={hi} for this survey"),
                });
            }
            req_str("customer_id", &raw[Key::CustomerId])?;
            Body::SurveySubmitted {
                survey,
                score: score as u8,
                agent: opt_sym("agent_id", &raw[Key::AgentId], interner)?,
            }
        }
        "checkout.started" => {
            let checkout = req_id("checkout_id", &raw[Key::CheckoutId])?;
            req_str("customer_id", &raw[Key::CustomerId])?;
            Body::CheckoutStarted { checkout }
        }
        "checkout.completed" => {
            let checkout = req_id("checkout_id", &raw[Key::CheckoutId])?;
            req_str("order_id", &raw[Key::OrderId])?;
            let value = match &raw[Key::Value] {
                Field::Int(n) => *n as f64,
                Field::UInt(n) => *n as f64,
                Field::Float(v) => *v,
                Field::Absent | Field::Null => return Err(DecodeError::Missing { field: "value" }),
                other => return Err(mistyped("value", "a number", other)),
            };
            if value.is_nan() {
                return Err(DecodeError::Invalid {
                    field: "value",
                    reason: "is not a number".into(),
                });
            }
            if value < 0.0 {
                return Err(DecodeError::Invalid {
                    field: "value",
                    reason: format!("{value} is negative"),
                });
            }
            if value > MAX_ORDER_VALUE {
                return Err(DecodeError::Invalid {
                    field: "value",
                    reason: format!("{value} is above the maximum order value {MAX_ORDER_VALUE:e}"),
                });
            }
            Body::CheckoutCompleted { checkout, value }
        }
        "subscription.started" => {
            let subscription = req_id("subscription_id", &raw[Key::SubscriptionId])?;
            req_str("customer_id", &raw[Key::CustomerId])?;
            Body::SubscriptionStarted { subscription }
        }
        "subscription.renewed" => Body::SubscriptionRenewed {
            subscription: req_id("subscription_id", &raw[Key::SubscriptionId])?,
        },
        "subscription.cancelled" => Body::SubscriptionCancelled {
            subscription: req_id("subscription_id", &raw[Key::SubscriptionId])?,
        },
        other => {
            return Err(DecodeError::Invalid {
                field: "type",
                reason: format!("unknown event type {:?}", clip(other)),
            })
        }
    };
    let mut intern = |s: Option<&str>| s.map_or(Sym::UNKNOWN, |v| interner.intern(v));
    Ok(Event {
        id: fingerprint(event_id),
        ts,
        region: intern(region),
        channel: intern(channel),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: &str) -> DecodeError {
        decode(line.as_bytes(), &mut Interner::default()).unwrap_err()
    }

    #[test]
    fn top_level_shapes() {
        assert_eq!(err("[1, 2, 3]"), DecodeError::NotAnObject);
        assert_eq!(err("42"), DecodeError::NotAnObject);
        assert!(matches!(err("not json at all"), DecodeError::NotJson(_)));
        assert!(matches!(err("{\"event_id\": "), DecodeError::NotJson(_)));
        let dup = err(r#"{"event_id":"a","event_id":"b"}"#);
        assert_eq!(dup.field(), Some("event_id"));
    }

    #[test]
    fn names_the_field() {
        let base = r#""event_id":"e1","ts":1793577600000"#;
        let cases = [
            (format!(r#"{{{base},"type":"chat.ended"}}"#), "chat_id"),
            (
                format!(r#"{{{base},"type":"chat.ended","chat_id":7}}"#),
                "chat_id",
            ),
            (format!(r#"{{{base},"type":"x.y"}}"#), "type"),
            (
                format!(r#"{{{base},"type":"chat.ended","chat_id":"c","region":1}}"#),
                "region",
            ),
            (
                format!(
                    r#"{{{base},"type":"survey.submitted","survey":"nps","score":7.5,"customer_id":"c"}}"#
                ),
                "score",
            ),
            (
                format!(
                    r#"{{{base},"type":"survey.submitted","survey":"csat","score":9,"customer_id":"c"}}"#
                ),
                "score",
            ),
            (
                format!(
                    r#"{{{base},"type":"checkout.completed","checkout_id":"c","order_id":"o","value":-5}}"#
                ),
                "value",
            ),
            (
                format!(r#"{{{base},"type":"ticket.replied","ticket_id":"t","author":"agent"}}"#),
                "agent_id",
            ),
            (
                format!(r#"{{{base},"type":"ticket.replied","ticket_id":"t","author":"cat"}}"#),
                "author",
            ),
            (
                r#"{"event_id":"e","type":"chat.ended","chat_id":"c","ts":"2026-11-02T10:00:00"}"#
                    .to_string(),
                "ts",
            ),
            (
                r#"{"event_id":"","type":"chat.ended","chat_id":"c","ts":1}"#.to_string(),
                "event_id",
            ),
        ];
        for (line, field) in cases {
            let e = err(&line);
            assert_eq!(e.field(), Some(field), "{line}: {e}");
            assert!(e.to_string().contains(field), "{e}");
        }
    }

    /// The fast path alone (`None` where it declines).
    fn flat_parse(line: &[u8]) -> Option<RawEvent<'_>> {
        let mut raw = RawEvent::default();
        flat::parse(line, &mut raw).map(|()| raw)
    }

    #[test]
    fn every_key_and_nothing_else_is_found_by_its_hash() {
        for (k, key) in super::FIELDS.iter().enumerate() {
            // With sixteen bytes to load after the key's start, and without.
            let line = format!("\"{key}\": 1, \"{key}\"");
            let last = line.len() - 1 - key.len();
            assert_eq!(flat::key_index(line.as_bytes(), 1, 1 + key.len()), Some(k));
            assert_eq!(
                flat::key_index(line.as_bytes(), last, line.len() - 1),
                Some(k)
            );
            // Any one byte changed, one more or one less: not a key.
            let bytes = key.as_bytes();
            let mut misses: Vec<Vec<u8>> =
                vec![bytes[1..].to_vec(), bytes[..bytes.len() - 1].to_vec()];
            for at in 0..=bytes.len() {
                let mut longer = bytes.to_vec();
                longer.insert(at, b'_');
                misses.push(longer);
                if at < bytes.len() {
                    for flip in [0x01, 0x20, 0x80] {
                        let mut changed = bytes.to_vec();
                        changed[at] ^= flip;
                        misses.push(changed);
                    }
                }
            }
            for miss in misses {
                let found = flat::key_index(&miss, 0, miss.len());
                let text = String::from_utf8_lossy(&miss);
                assert!(
                    found.is_none() || super::FIELDS[found.unwrap()] == text,
                    "{text}"
                );
            }
        }
        assert_eq!(flat::key_index(b"", 0, 0), None);
        assert_eq!(flat::key_index(b"subscription_id_x", 0, 17), None);
    }

    #[test]
    fn every_key_and_its_near_misses_read_as_serde_reads_them() {
        let mut keys: Vec<String> = Vec::new();
        for k in super::FIELDS {
            keys.push(k.into());
            keys.push(format!("{k}x"));
            keys.push(k[..k.len() - 1].into());
            keys.push(format!("x{k}"));
            keys.push(k.to_uppercase());
        }
        for key in &keys {
            // Known or not, first or last, with room for the word compare or not.
            for line in [
                format!(r#"{{"{key}": "v", "zz": "e-1", "yy": "chat.ended", "xx": 1}}"#),
                format!(r#"{{"zz": 1, "{key}": 7}}"#),
                format!(r#"{{"{key}":1}}"#),
            ] {
                assert!(flat_parse(line.as_bytes()).is_some(), "{line}");
                assert_flat_agrees(line.as_bytes());
            }
        }
    }

    /// The fast path answers only what serde answers.
    fn assert_flat_agrees(line: &[u8]) {
        if let Some(fast) = flat_parse(line) {
            let slow = serde_json::from_slice::<RawEvent>(line);
            assert!(
                slow.is_ok(),
                "fast path accepted what serde rejects: {}",
                String::from_utf8_lossy(line)
            );
            assert_eq!(
                format!("{fast:?}"),
                format!("{:?}", slow.unwrap()),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn flat_path_agrees_with_serde_on_generated_lines() {
        let opts = crate::generate::GenerateOptions {
            rate: 50.0,
            duration_ms: 20 * 60 * 1000,
            malformed_fraction: 0.2,
            ..Default::default()
        };
        let mut accepted = 0;
        for rec in crate::generate::Generator::new(opts) {
            assert_flat_agrees(rec.payload.as_bytes());
            accepted += usize::from(flat_parse(rec.payload.as_bytes()).is_some());
        }
        assert!(accepted > 10_000, "the fast path takes the common case");
        for line in [
            r#"{}"#,
            r#" {"ts": -0, "value": 1.5e3, "score": 00} "#,
            r#"{"ts": 12345678901234567890, "value": -1e400}"#,
            r#"{"ts": 1, "ts": 2}"#,
            r#"{"x": 1, "x": 2, "value": -12.50}"#,
            r#"{"a": "é", "region": "ü\u00fc", "channel": "\t"}"#,
            r#"{"a": [1], "b": {"c": 2}}"#,
            "{\"a\": 1,}",
            "{\"a\": 1}\u{c}",
            "{\"a\":\"\x01\"}",
            r#"{"a": 1} x"#,
            r#"{"a": tru}"#,
            r#"{"a": 1.}"#,
            r#"{"a": 1.2.3}"#,
            r#"{"a" 1}"#,
        ] {
            assert_flat_agrees(line.as_bytes());
        }
    }

    proptest::proptest! {
        /// Random edits of a valid event never make the paths disagree.
        #[test]
        fn flat_path_agrees_with_serde_on_edits(
            edits in proptest::collection::vec((0usize..200, proptest::sample::select(
                b" \t\r\n\x0c\"\\,:{}[]-+.eE019aflnrstu\x01\xc3\xa9\xff".to_vec()), 0u8..3), 1..4),
        ) {
            let mut line = br#"{"event_id": "e-1", "type": "checkout.completed", "ts": 1793577600003, "checkout_id": "co-2", "order_id": "o", "value": 12.5, "public": true, "x": null}"#.to_vec();
            for (pos, byte, op) in edits {
                let pos = pos % (line.len() + 1);
                match op {
                    0 => line.insert(pos, byte),
                    1 if pos < line.len() => { line.remove(pos); }
                    _ if pos < line.len() => line[pos] = byte,
                    _ => {}
                }
            }
            assert_flat_agrees(&line);
        }

        /// Integers and decimals the fast path reads itself are the
        /// numbers serde reads (longer ones it hands to serde).
        #[test]
        fn plain_numbers_read_as_serde_reads_them(
            number in "(0|[1-9][0-9]{0,17})(\\.[0-9]{1,17})?",
            spaces in " {0,2}",
        ) {
            let line = format!(r#"{{"value":{spaces}{number}{spaces}, "ts": {number}}}"#);
            proptest::prop_assert!(flat_parse(line.as_bytes()).is_some(), "{}", line);
            assert_flat_agrees(line.as_bytes());
        }

        /// The eight-bytes-at-a-time scan finds what a byte loop finds.
        #[test]
        fn string_end_matches_a_byte_loop(
            bytes in proptest::collection::vec(proptest::prop_oneof![
                proptest::sample::select(b"\"\\\x00\x1f\x20\x21\x7f\x80\xa2\xdc\xffa".to_vec()),
                proptest::num::u8::ANY,
            ], 0..40),
        ) {
            let naive = bytes.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            proptest::prop_assert_eq!(super::flat::string_end(&bytes), naive);
        }

        /// The quote scan (SSE2 on x86-64) finds a line plain exactly when
        /// a byte loop does, every quote and nothing else.
        #[test]
        fn quote_scan_matches_a_byte_loop(
            mut bytes in proptest::collection::vec(
                proptest::sample::select(b"\"abc:,{} 0~".to_vec()), 0..600),
            odd in proptest::option::of((proptest::num::usize::ANY, proptest::bool::ANY, proptest::prop_oneof![
                proptest::sample::select(b"\\\x00\x09\x1f\x7f\x80\xa2\xff".to_vec()),
                proptest::num::u8::ANY,
            ])),
        ) {
            // Mostly plain lines, some with one odd byte anywhere (half of
            // them in the last 16 bytes: the unaligned last chunk, or the
            // byte loop of lines shorter than 16).
            if let Some((at, near_end, c)) = odd.filter(|_| !bytes.is_empty()) {
                let n = bytes.len();
                let at = if near_end { n - 1 - at % n.min(16) } else { at % n };
                bytes[at] = c;
            }
            let plain = bytes.len() <= super::flat::Quotes::MAX_LINE
                && bytes.iter().all(|&c| (0x20..0x80).contains(&c) && c != b'\\');
            let scan = super::flat::Quotes::scan(&bytes);
            proptest::prop_assert_eq!(scan.is_some(), plain);
            if let Some(q) = scan {
                for from in 0..=bytes.len() {
                    let naive = bytes[from..].iter().position(|&c| c == b'"').map(|j| from + j);
                    proptest::prop_assert_eq!(q.next(from), naive);
                }
            }
        }
    }

    #[test]
    fn accepts_optional_nulls_and_unknown_fields() {
        let mut i = Interner::default();
        let ev = decode(
            br#"{"event_id":"e","type":"chat.ended","chat_id":"c","ts":1,"region":null,"extra":[1,{"a":2}]}"#,
            &mut i,
        )
        .unwrap();
        assert_eq!(ev.region, Sym::UNKNOWN);
        assert_eq!(ev.ts, 1_000);
    }
}
