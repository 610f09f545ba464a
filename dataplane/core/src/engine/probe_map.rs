//! A small open-addressing map for the snapshot's per-packet lookups (what an address is to
//! the appliance, the service of an address and port, the next hops): the keys are words,
//! a lookup is a fold, a multiply and nearly always one probe. At most a quarter full, so a
//! probe for an absent key (most source addresses) meets an empty slot at once. Built on the
//! control side, read by the workers; the multiplier's seed is random per map, so which keys
//! share a run of slots cannot be known from outside.

use std::hash::BuildHasher;

/// A key folded to one word before it is hashed.
pub(super) trait ProbeKey: Copy + Eq {
    fn fold(self) -> u64;
}

impl ProbeKey for u128 {
    #[inline]
    fn fold(self) -> u64 {
        (self as u64) ^ ((self >> 64) as u64).rotate_left(29)
    }
}

impl ProbeKey for (u128, u32) {
    #[inline]
    fn fold(self) -> u64 {
        self.0.fold() ^ u64::from(self.1).rotate_left(40)
    }
}

#[derive(Debug, Clone)]
pub(super) struct ProbeMap<K, V> {
    slots: Box<[Option<(K, V)>]>,
    /// 64 minus log2 of the slot count: the product's top bits pick the slot.
    shift: u32,
    /// Odd.
    multiplier: u64,
    len: usize,
}

impl<K: ProbeKey, V: Copy> Default for ProbeMap<K, V> {
    fn default() -> Self {
        ProbeMap::with_slots(4)
    }
}

impl<K: ProbeKey, V: Copy> FromIterator<(K, V)> for ProbeMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(items: I) -> Self {
        let mut map = ProbeMap::default();
        for (k, v) in items {
            map.update(k, v, |old| *old = v);
        }
        map
    }
}

impl<K: ProbeKey, V: Copy> ProbeMap<K, V> {
    fn with_slots(n: usize) -> Self {
        debug_assert!(n.is_power_of_two() && n >= 4);
        let seed = std::collections::hash_map::RandomState::new().hash_one(n);
        ProbeMap {
            slots: vec![None; n].into_boxed_slice(),
            shift: 64 - n.trailing_zeros(),
            multiplier: seed | 1,
            len: 0,
        }
    }

    #[inline]
    fn home(&self, k: K) -> usize {
        (k.fold().wrapping_mul(self.multiplier) >> self.shift) as usize
    }

    /// The slot holding `k`, or the empty one where it would go.
    #[inline]
    fn slot_of(&self, k: K) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = self.home(k);
        // Never full (at most a quarter), so an empty slot ends every probe.
        loop {
            match self.slots.get(i) {
                Some(Some((key, _))) if *key != k => i = (i + 1) & mask,
                _ => return i,
            }
        }
    }

    #[inline]
    pub(super) fn get(&self, k: &K) -> Option<&V> {
        let mask = self.slots.len() - 1;
        let mut i = self.home(*k);
        loop {
            match self.slots.get(i)? {
                Some((key, v)) if key == k => return Some(v),
                Some(_) => i = (i + 1) & mask,
                None => return None,
            }
        }
    }

    #[inline]
    pub(super) fn contains_key(&self, k: &K) -> bool {
        self.get(k).is_some()
    }

    /// Changes `k`'s value by `change`, or inserts `new` when `k` is absent.
    pub(super) fn update(&mut self, k: K, new: V, change: impl FnOnce(&mut V)) {
        let i = self.slot_of(k);
        match self.slots.get_mut(i) {
            Some(Some((_, v))) => change(v),
            None => {}
            Some(empty) => {
                *empty = Some((k, new));
                self.len += 1;
                if self.len * 4 > self.slots.len() {
                    self.rebuild(self.slots.len() * 2);
                }
            }
        }
    }

    /// Keeps the entries for which `keep` holds (it may change their values).
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        let kept: Vec<(K, V)> = self
            .slots
            .iter_mut()
            .filter_map(|s| s.as_mut())
            .filter_map(|(k, v)| keep(k, v).then_some((*k, *v)))
            .collect();
        if kept.len() != self.len {
            *self = Self::placed(self.slots.len(), kept);
        }
    }

    fn rebuild(&mut self, n: usize) {
        let all: Vec<(K, V)> = self.slots.iter().filter_map(|s| *s).collect();
        *self = Self::placed(n, all);
    }

    fn placed(n: usize, entries: Vec<(K, V)>) -> Self {
        let mut map = Self::with_slots(n);
        for (k, v) in entries {
            let i = map.slot_of(k);
            if let Some(slot) = map.slots.get_mut(i) {
                *slot = Some((k, v));
                map.len += 1;
            }
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn an_empty_map_finds_nothing() {
        let map: ProbeMap<u128, u8> = ProbeMap::default();
        assert_eq!(map.get(&0), None);
        assert_eq!(map.get(&u128::MAX), None);
    }

    proptest! {
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((0u8..3, 0u32..300, any::<u8>()), 1..1500)) {
            let mut map: ProbeMap<(u128, u32), u8> = ProbeMap::default();
            let mut model: HashMap<(u128, u32), u8> = HashMap::new();
            // Keys alike but for a few bits, as IPv4-mapped addresses and ports are.
            let key = |k: u32| ((0xffff_u128 << 32) | u128::from(k % 37), k / 37);
            for (op, k, v) in ops {
                match op {
                    0 => {
                        map.update(key(k), v, |old| *old |= v);
                        *model.entry(key(k)).or_insert(0) |= v;
                    }
                    1 => {
                        map.retain(|_, old| { *old &= !v; *old != 0 });
                        model.retain(|_, old| { *old &= !v; *old != 0 });
                    }
                    _ => prop_assert_eq!(map.get(&key(k)), model.get(&key(k))),
                }
                prop_assert_eq!(map.len, model.len());
                prop_assert!(map.len * 4 <= map.slots.len());
            }
            for (k, v) in &model {
                prop_assert_eq!(map.get(k), Some(v));
            }
        }
    }
}
