//! Open-addressing tables keyed by id fingerprints: the dedup table and the
//! entity tables, the engine's largest state, each probed at a random place
//! once or twice per event.
//!
//! A general-purpose map (hashbrown's Swiss table) reads a control-byte
//! group and then the entry: two cache misses per probe, and no way to
//! start a probe early. Here:
//!
//! - a slot is the whole entry (fingerprint and value), so a probe reads
//!   one or two cache lines, and [`OpenTable::prefetch`] can start both
//!   early: the engine prefetches the slots of a batch of coming events
//!   while it works on the ones before;
//! - linear probing from the slot the fingerprint hashes to (its high bits,
//!   [`fold`]), with the table at most 5/8 full, so a probe for an absent
//!   id reads about 4 slots, mostly in one or two adjacent cache lines;
//! - backward-shift deletion: no tombstones, lookups never slow down;
//! - the high bits place an entry, so doubling sends an entry at slot
//!   `i` to about `2i`: growing walks the old table and fills the new one
//!   in order ([`OpenTable::grow`]).
//!
//! What a slot holds, and how a vacant slot looks, is up to its [`Slot`]
//! type: [`FpTable`] stores `Option<(FpKey, V)>` (the value's niche makes
//! the `Option` free); the dedup table packs its own 24-byte slot.

use super::fpmap::{fold, FpKey};
use crate::event::Fp;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::marker::PhantomData;

/// One slot of an [`OpenTable`].
pub trait Slot: Clone {
    /// An empty slot.
    const VACANT: Self;
    /// The fingerprint held, or `None` if vacant.
    fn key(&self) -> Option<Fp>;
}

/// The smallest table allocated.
const MIN_SLOTS: usize = 256;

/// Starts loading the cache line `slot` starts in (see
/// [`OpenTable::prefetch`]).
#[inline]
fn prefetch_slot<S>(slot: &S) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint to the cache; it never faults,
    // does not change memory, and the address is that of a live slot.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((slot as *const S).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = slot;
}

/// The probing, growth and deletion shared by every table (see the module
/// docs).
#[derive(Debug, Clone)]
pub struct OpenTable<S> {
    /// A power of two long, or empty before the first insert.
    slots: Vec<S>,
    len: usize,
}

impl<S: Slot> Default for OpenTable<S> {
    fn default() -> Self {
        OpenTable {
            slots: Vec::new(),
            len: 0,
        }
    }
}

impl<S: Slot> OpenTable<S> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot `id` hashes to; the table must not be empty.
    #[inline]
    fn home(&self, id: Fp) -> usize {
        let shift = 64 - self.slots.len().trailing_zeros();
        (fold(id) >> shift) as usize
    }

    /// Starts loading the cache lines `id`'s probe most likely reads: the
    /// one its home slot starts in and the one after it (a probe reads
    /// about two slots, which often cross into the next line). A hint:
    /// never faults, changes nothing.
    #[inline]
    pub fn prefetch(&self, id: Fp) {
        if self.slots.is_empty() {
            return;
        }
        let home = self.home(id);
        let next = (home + Self::SLOTS_PER_LINE) & (self.slots.len() - 1);
        prefetch_slot(&self.slots[home]);
        prefetch_slot(&self.slots[next]);
    }

    /// Slots in a cache line (at least one).
    const SLOTS_PER_LINE: usize = if std::mem::size_of::<S>() >= 64 || std::mem::size_of::<S>() == 0
    {
        1
    } else {
        64 / std::mem::size_of::<S>()
    };

    /// Where `id` is (`Ok`), or the vacant slot where its probe ended
    /// (`Err`; `usize::MAX` while the table is empty).
    #[inline]
    pub fn probe(&self, id: Fp) -> Result<usize, usize> {
        if self.slots.is_empty() {
            return Err(usize::MAX);
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(id);
        loop {
            match self.slots[i].key() {
                None => return Err(i),
                Some(k) if k == id => return Ok(i),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    pub fn slot(&self, i: usize) -> &S {
        &self.slots[i]
    }

    pub fn slot_mut(&mut self, i: usize) -> &mut S {
        &mut self.slots[i]
    }

    /// Stores `slot`, whose key is absent and whose probe ended at
    /// `vacant` (or elsewhere, if the table has to grow first); returns
    /// where it went.
    #[inline]
    pub fn insert_at(&mut self, vacant: usize, slot: S) -> usize {
        debug_assert!(slot.key().is_some());
        self.len += 1;
        if self.len * 8 > self.slots.len() * 5 {
            self.grow();
            self.place(slot)
        } else {
            self.slots[vacant] = slot;
            vacant
        }
    }

    /// Stores `slot`, replacing the slot of the same key if there is one.
    pub fn put(&mut self, slot: S) {
        let id = slot.key().expect("putting an occupied slot");
        match self.probe(id) {
            Ok(i) => self.slots[i] = slot,
            Err(vacant) => {
                self.insert_at(vacant, slot);
            }
        }
    }

    /// Puts an entry in the first vacant slot from its home; returns it.
    fn place(&mut self, slot: S) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = self.home(slot.key().expect("placing an occupied slot"));
        while self.slots[i].key().is_some() {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
        i
    }

    /// Doubles the table: a new one, twice the size, into which the old
    /// entries are placed in table order.
    ///
    /// The high bits of the hash place an entry, so an entry at slot `i`
    /// goes to about `2i`: taken in order, the entries land front to back,
    /// each probe starting in or next to the cache line the last one
    /// wrote. Both tables are walked in order, and the old one is not
    /// copied first (as reallocating in place does unless the allocator
    /// can remap it). Moving entries in place, one to wherever it belongs
    /// and the one found there next, chased them across the table: a
    /// cache miss each.
    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(MIN_SLOTS);
        // Written, not allocated zeroed (as `vec![S::VACANT; size]` is when
        // `VACANT` is all zero bytes): placing reads a slot before it
        // writes it, and a first read of a fresh zeroed page maps the
        // shared zero page, so the write that follows faults a second
        // time to copy it. Writing every slot first costs one fault a page.
        let mut fresh = huge_capacity::<S>(size);
        fresh.resize(size, S::VACANT);
        let old = std::mem::replace(&mut self.slots, fresh);
        // Start after a vacant slot: the slots before it are the tail of a
        // run that wraps past the end, placed last (they follow the end
        // in hash order).
        let start = old.iter().position(|s| s.key().is_none()).unwrap_or(0);
        for slot in old[start..].iter().chain(&old[..start]) {
            if slot.key().is_some() {
                self.place(slot.clone());
            }
        }
    }

    /// Keeps the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&S) -> bool) {
        if self.len == 0 {
            return;
        }
        let size = self.slots.len();
        // Start after a vacant slot: no run of occupied slots wraps past
        // it, so an entry shifted back by a removal lands at or after the
        // sweep's position and is still looked at, and entries already
        // looked at never move.
        let start = self
            .slots
            .iter()
            .position(|s| s.key().is_none())
            .expect("a table is never full");
        let mut k = 1;
        while k < size {
            let i = (start + k) & (size - 1);
            if self.slots[i].key().is_some() && !keep(&self.slots[i]) {
                // Slot i now holds the next entry of its run, or is vacant:
                // look at it again.
                self.remove_at(i);
            } else {
                k += 1;
            }
        }
    }

    /// Empties slot `hole`, shifting back the later entries of its run that
    /// may live there, so lookups stay correct without tombstones.
    pub fn remove_at(&mut self, mut hole: usize) {
        let mask = self.slots.len() - 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let Some(key) = self.slots[j].key() else {
                break;
            };
            // It may move to `hole` unless its home lies cyclically in
            // (hole, j].
            let from_home = j.wrapping_sub(self.home(key)) & mask;
            let from_hole = j.wrapping_sub(hole) & mask;
            if from_home >= from_hole {
                self.slots[hole] = self.slots[j].clone();
                hole = j;
            }
        }
        self.slots[hole] = S::VACANT;
        self.len -= 1;
    }

    /// The occupied slots, in table order.
    pub fn iter(&self) -> impl Iterator<Item = &S> {
        self.slots.iter().filter(|s| s.key().is_some())
    }

    /// Every slot from each entry's home to the entry is occupied (what
    /// a probe needs).
    #[cfg(test)]
    fn runs_unbroken(&self) -> bool {
        let mask = self.slots.len().wrapping_sub(1);
        (0..self.slots.len()).all(|i| match self.slots[i].key() {
            None => true,
            Some(key) => {
                let mut j = self.home(key);
                while j != i {
                    if self.slots[j].key().is_none() {
                        return false;
                    }
                    j = (j + 1) & mask;
                }
                true
            }
        })
    }

    /// How far each entry sits from its home slot.
    #[cfg(test)]
    fn displacements(&self) -> Vec<usize> {
        let mask = self.slots.len().wrapping_sub(1);
        (0..self.slots.len())
            .filter_map(|i| Some(i.wrapping_sub(self.home(self.slots[i].key()?)) & mask))
            .collect()
    }
}

/// Size of a transparent huge page (x86-64 and most aarch64 kernels).
const HUGE_PAGE: usize = 2 << 20;

/// An empty vector for `size` slots. A table that large is backed by
/// transparent huge pages where the kernel allows it (`madvise`): a table
/// is probed at random places, and with 4 KiB pages nearly every probe of
/// a big table missed the TLB, and filling a new table took a page fault
/// per 4 KiB. The capacity is a huge page larger than asked, so that the
/// aligned huge pages covering the first `size` slots (the only ones ever
/// written) lie inside the buffer, all but the part before the first
/// 2 MiB boundary.
fn huge_capacity<S>(size: usize) -> Vec<S> {
    let bytes = size * std::mem::size_of::<S>();
    if bytes < 2 * HUGE_PAGE {
        return Vec::with_capacity(size);
    }
    // Non-zero: a zero-sized slot has no bytes and returned above.
    let extra = HUGE_PAGE / std::mem::size_of::<S>() + 1;
    let v: Vec<S> = Vec::with_capacity(size + extra);
    #[cfg(target_os = "linux")]
    {
        let start = v.as_ptr() as usize;
        let first = start.next_multiple_of(HUGE_PAGE);
        // The huge page holding the last slot ends within the capacity.
        let last = (start + bytes).next_multiple_of(HUGE_PAGE);
        if last > first {
            // SAFETY: [first, last) lies inside the vector's allocation,
            // page-aligned; MADV_HUGEPAGE is only advice about how to back
            // it and changes no content (a failure is ignored: the memory
            // stays in small pages).
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    last - first,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
    v
}

impl<V: Clone> Slot for Option<(FpKey, V)> {
    const VACANT: Self = None;

    #[inline]
    fn key(&self) -> Option<Fp> {
        self.as_ref().map(|(k, _)| Fp::from(*k))
    }
}

/// A map from fingerprints to `V` on an [`OpenTable`] (the entity tables).
/// Serialized as a map from fingerprint to value.
#[derive(Debug, Clone)]
pub struct FpTable<V: Clone>(OpenTable<Option<(FpKey, V)>>);

impl<V: Clone> Default for FpTable<V> {
    fn default() -> Self {
        FpTable(OpenTable::default())
    }
}

impl<V: Clone> FpTable<V> {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[inline]
    pub fn prefetch(&self, id: Fp) {
        self.0.prefetch(id);
    }

    #[inline]
    pub fn get_mut(&mut self, id: Fp) -> Option<&mut V> {
        let i = self.0.probe(id).ok()?;
        self.0.slot_mut(i).as_mut().map(|(_, v)| v)
    }

    /// The value under `id`, first inserting `make()` if `id` is absent.
    #[inline]
    pub fn get_or_insert_with(&mut self, id: Fp, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.0.probe(id) {
            Ok(i) => i,
            Err(vacant) => self.0.insert_at(vacant, Some((id.into(), make()))),
        };
        match self.0.slot_mut(i) {
            Some((_, v)) => v,
            None => unreachable!("slot {i} was just found or filled"),
        }
    }

    /// Inserts or replaces.
    pub fn insert(&mut self, id: Fp, value: V) {
        self.0.put(Some((id.into(), value)));
    }

    /// The value under `id` unless `stale` holds for it, in which case it
    /// is removed as if it had been swept before; and whether it was.
    /// One probe for both.
    #[inline]
    pub fn get_fresh_mut(
        &mut self,
        id: Fp,
        stale: impl FnOnce(&V) -> bool,
    ) -> (Option<&mut V>, bool) {
        let Ok(i) = self.0.probe(id) else {
            return (None, false);
        };
        if self.0.slot(i).as_ref().is_some_and(|(_, v)| stale(v)) {
            self.0.remove_at(i);
            return (None, true);
        }
        (self.0.slot_mut(i).as_mut().map(|(_, v)| v), false)
    }

    /// Inserts `make()` under `id` unless `id` holds a value for which
    /// `stale` is false; a stale value is replaced in its slot. Returns
    /// whether it inserted, and whether it replaced a stale value.
    #[inline]
    pub fn insert_if_absent_or_stale(
        &mut self,
        id: Fp,
        stale: impl FnOnce(&V) -> bool,
        make: impl FnOnce() -> V,
    ) -> (bool, bool) {
        match self.0.probe(id) {
            Ok(i) => {
                let slot = self.0.slot_mut(i);
                if slot.as_ref().is_some_and(|(_, v)| stale(v)) {
                    *slot = Some((id.into(), make()));
                    (true, true)
                } else {
                    (false, false)
                }
            }
            Err(vacant) => {
                self.0.insert_at(vacant, Some((id.into(), make())));
                (true, false)
            }
        }
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        self.0.retain(|s| s.as_ref().is_some_and(|(_, v)| keep(v)));
    }

    pub fn iter(&self) -> impl Iterator<Item = (Fp, &V)> {
        self.0
            .iter()
            .filter_map(|s| s.as_ref())
            .map(|(k, v)| (Fp::from(*k), v))
    }
}

/// Serializes a table as the map from key (a fingerprint, or a window
/// pane's packed key unpacked) to value it stands for (the encoding of the
/// hash maps the tables replaced, so checkpoints do not depend on the
/// layout), with its length up front (postcard needs it).
pub fn serialize_map<S: Serializer, K: Serialize, V: Serialize>(
    serializer: S,
    len: usize,
    entries: impl Iterator<Item = (K, V)>,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(len))?;
    for (key, v) in entries {
        map.serialize_entry(&key, &v)?;
    }
    map.end()
}

/// Reads what [`serialize_map`] wrote into a `T`, one `set` per entry
/// (`set` may refuse an entry with a reason).
pub fn deserialize_map<'de, D, T, K, V>(
    deserializer: D,
    set: impl FnMut(&mut T, K, V) -> Result<(), &'static str>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default,
    K: Deserialize<'de>,
    V: Deserialize<'de>,
{
    struct Entries<T, K, V, F>(F, PhantomData<(T, K, V)>);
    impl<'de, T, K, V, F> Visitor<'de> for Entries<T, K, V, F>
    where
        T: Default,
        K: Deserialize<'de>,
        V: Deserialize<'de>,
        F: FnMut(&mut T, K, V) -> Result<(), &'static str>,
    {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map from id fingerprint to state")
        }
        fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<T, A::Error> {
            let mut table = T::default();
            while let Some((key, v)) = map.next_entry::<K, V>()? {
                (self.0)(&mut table, key, v).map_err(serde::de::Error::custom)?;
            }
            Ok(table)
        }
    }
    deserializer.deserialize_map(Entries(set, PhantomData))
}

impl<V: Clone + Serialize> Serialize for FpTable<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_map(serializer, self.len(), self.iter())
    }
}

impl<'de, V: Clone + Deserialize<'de>> Deserialize<'de> for FpTable<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_map(deserializer, |table: &mut FpTable<V>, id, v| {
            table.insert(id, v);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Fp, u32),
        /// `get_fresh_mut` with odd values stale.
        Fresh(Fp),
        /// `insert_if_absent_or_stale` with odd values stale.
        Start(Fp, u32),
        RetainBelow(u32),
    }

    /// Ids mostly from a small pool, so they repeat and runs form, wrap
    /// around the end of the table and lose entries in their middle.
    fn ops() -> impl Strategy<Value = Vec<Op>> {
        let id = prop_oneof![0u128..1500, any::<u128>()];
        let op = prop_oneof![
            12 => (id.clone(), any::<u32>()).prop_map(|(i, v)| Op::Insert(i, v)),
            3 => id.clone().prop_map(Op::Fresh),
            3 => (id, any::<u32>()).prop_map(|(i, v)| Op::Start(i, v)),
            1 => any::<u32>().prop_map(Op::RetainBelow),
        ];
        proptest::collection::vec(op, 1..3000)
    }

    /// Window pane keys are not hashes but packed fields (KPI, then three
    /// small interned numbers); the fold still spreads them, so probes stay
    /// short in a table of a busy pane's size.
    #[test]
    fn packed_pane_keys_probe_short() {
        let mut t: FpTable<u32> = FpTable::default();
        for kpi in 0..22u128 {
            for channel in 0..4u128 {
                for region in 0..6u128 {
                    for agent in 0..200u128 {
                        let key = (kpi << 96) | (channel << 64) | (region << 32) | agent;
                        t.insert(key, 0);
                    }
                }
            }
        }
        let d = t.0.displacements();
        assert_eq!(d.len(), 22 * 4 * 6 * 200);
        let mean = d.iter().sum::<usize>() as f64 / d.len() as f64;
        assert!(mean < 2.0, "mean displacement {mean}");
        assert!(
            *d.iter().max().unwrap() < 64,
            "max displacement {:?}",
            d.iter().max()
        );
    }

    /// Growing moves every entry, including a run wrapping past the end of
    /// the table (whose doubled homes run past the new end too) and the
    /// entries crowded behind it at the front.
    #[test]
    fn growing_keeps_wrapped_and_crowded_runs_findable() {
        // Ids by their home in a table of MIN_SLOTS slots.
        let home = |id: Fp| (fold(id) >> (64 - MIN_SLOTS.trailing_zeros())) as usize;
        let mut ids: Vec<Fp> = Vec::new();
        let wanted = |lo: usize, hi: usize, n: usize, ids: &mut Vec<Fp>| {
            let found: Vec<Fp> = (0u128..)
                .map(|i| i << 64 | (ids.len() as u128 + lo as u128 * 7919))
                .filter(|&id| (lo..hi).contains(&home(id)) && !ids.contains(&id))
                .take(n)
                .collect();
            ids.extend(found);
        };
        wanted(MIN_SLOTS - 4, MIN_SLOTS, 30, &mut ids); // wraps to the front
        wanted(0, 2, 30, &mut ids); // crowded behind the wrapped ones
        wanted(2, MIN_SLOTS - 4, 100, &mut ids);
        let mut t: FpTable<usize> = FpTable::default();
        for (n, &id) in ids.iter().enumerate() {
            t.insert(id, n);
        }
        assert_eq!(t.0.slots.len(), MIN_SLOTS, "not grown yet");
        assert!(t.0.slots[40].key().is_some(), "the front is crowded");
        // Past 5/8 full: the table doubles.
        let more: Vec<Fp> = (1u128..=60).map(|i| i << 100).collect();
        for (n, &id) in more.iter().enumerate() {
            t.insert(id, 1000 + n);
        }
        assert_eq!(t.0.slots.len(), 2 * MIN_SLOTS);
        assert!(t.0.runs_unbroken());
        assert_eq!(t.len(), ids.len() + more.len());
        for (n, &id) in ids.iter().enumerate() {
            assert_eq!(t.get_mut(id).copied(), Some(n));
        }
        for (n, &id) in more.iter().enumerate() {
            assert_eq!(t.get_mut(id).copied(), Some(1000 + n));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any sequence of inserts, removals and sweeps leaves the table
        /// holding exactly what a plain map holds, every entry findable.
        #[test]
        fn agrees_with_a_plain_map(ops in ops()) {
            let mut t: FpTable<u32> = FpTable::default();
            let mut m: HashMap<Fp, u32> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(id, v) => {
                        prop_assert_eq!(
                            t.insert_if_absent_or_stale(id, |_| false, || v).0,
                            !m.contains_key(&id)
                        );
                        m.entry(id).or_insert(v);
                        *t.get_mut(id).unwrap() = v;
                        m.insert(id, v);
                    }
                    Op::Fresh(id) => {
                        let odd = |v: &u32| v % 2 == 1;
                        let (got, stale) = t.get_fresh_mut(id, odd);
                        let got = got.map(|v| *v);
                        match m.get(&id).copied() {
                            Some(v) if odd(&v) => {
                                prop_assert_eq!((got, stale), (None, true));
                                m.remove(&id);
                            }
                            held => prop_assert_eq!((got, stale), (held, false)),
                        }
                    }
                    Op::Start(id, v) => {
                        let odd = |v: &u32| v % 2 == 1;
                        let done = t.insert_if_absent_or_stale(id, odd, || v);
                        match m.get(&id).copied() {
                            None => prop_assert_eq!(done, (true, false)),
                            Some(old) if odd(&old) => prop_assert_eq!(done, (true, true)),
                            Some(_) => prop_assert_eq!(done, (false, false)),
                        }
                        if done.0 {
                            m.insert(id, v);
                        }
                    }
                    Op::RetainBelow(x) => {
                        t.retain(|v| *v < x);
                        m.retain(|_, v| *v < x);
                    }
                }
                prop_assert_eq!(t.len(), m.len());
            }
            let held: HashMap<Fp, u32> = t.iter().map(|(k, v)| (k, *v)).collect();
            prop_assert_eq!(&held, &m);
            prop_assert!(t.0.runs_unbroken());
            for (&id, &v) in &m {
                prop_assert_eq!(t.get_mut(id).copied(), Some(v));
            }
        }
    }

    /// Past 4 MiB a new table's buffer is asked for with a huge page of
    /// spare capacity (see [`huge_capacity`]); entries land and are found
    /// in it as in a small one, across several doublings.
    #[test]
    fn tables_past_the_huge_page_threshold_keep_every_entry() {
        let small = huge_capacity::<[u64; 3]>(1000);
        assert_eq!(small.capacity(), 1000, "small tables get what they ask");
        let big = huge_capacity::<[u64; 3]>(1 << 18);
        assert!(big.capacity() * 24 >= (1 << 18) * 24 + HUGE_PAGE);
        let mut t: FpTable<u64> = FpTable::default();
        let n = 400_000u64; // 2^20 slots of 32 bytes at the end: 32 MiB
        for i in 0..n {
            t.insert(u128::from(i) * 0x9e37_79b9_7f4a_7c15_u128 + 11, i);
        }
        assert_eq!(t.0.slots.len(), 1 << 20);
        assert_eq!(t.len(), n as usize);
        for i in (0..n).step_by(7) {
            let id = u128::from(i) * 0x9e37_79b9_7f4a_7c15_u128 + 11;
            assert_eq!(t.get_mut(id).copied(), Some(i));
        }
        assert!(t.0.runs_unbroken());
    }

    #[test]
    fn serialized_as_the_map_it_stands_for() {
        let mut t: FpTable<(i64, bool)> = FpTable::default();
        for i in 0..3000u128 {
            t.insert(i << 70 | i, (i as i64, i % 3 == 0));
        }
        let bytes = postcard::to_stdvec(&t).unwrap();
        let map: HashMap<Fp, (i64, bool)> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(map.len(), 3000);
        assert_eq!(map[&(7u128 << 70 | 7)], (7, false));
        let back: FpTable<(i64, bool)> =
            postcard::from_bytes(&postcard::to_stdvec(&map).unwrap()).unwrap();
        assert_eq!(
            back.iter().map(|(k, v)| (k, *v)).collect::<HashMap<_, _>>(),
            map
        );
        // The `Option` around a slot with a niche costs nothing.
        assert_eq!(
            std::mem::size_of::<Option<(FpKey, (i64, bool))>>(),
            std::mem::size_of::<(FpKey, (i64, bool))>()
        );
    }
}
