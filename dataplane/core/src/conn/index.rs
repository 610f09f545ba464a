//! A hash index of slab ids for the connection table: buckets of eight (tag, id) pairs, one
//! cache line each, and two candidate buckets per key (partial-key cuckoo hashing: a key's
//! second bucket is a function of its first and its tag alone, so an entry can be moved
//! without its key). A lookup reads at most two lines, nearly always one, and the bucket a key
//! starts in is known from its hash alone, so a burst can prefetch its buckets before it
//! is processed. Fixed size: it never grows after creation.

/// Entries per bucket (one 64-byte line: eight u32 tags, eight u32 ids).
const WAYS: usize = 8;
/// Most moves one insertion makes before it gives up (and undoes them).
const MAX_MOVES: usize = 96;
/// An empty way.
const EMPTY: u32 = 0;

#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Bucket {
    tags: [u32; WAYS],
    ids: [u32; WAYS],
}

/// Why [`FlowIndex::insert_unique`] placed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// An entry with the same key is there.
    Present,
    /// Too full to place it (practically never at the index's sizing).
    Full,
}

pub struct FlowIndex {
    buckets: Vec<Bucket>,
}

fn tag_of(hash: u64) -> u32 {
    // Never EMPTY.
    (hash >> 32) as u32 | 1
}

/// The ways of `bucket` holding `tag`, lowest first (all eight compared at once).
#[inline]
fn ways_with(bucket: &Bucket, tag: u32) -> impl Iterator<Item = usize> {
    ways_of(rvs_cpu::lanes_equal(&bucket.tags, tag))
}

/// The ways whose bits are set in `mask`, lowest first; always below [`WAYS`].
#[inline]
fn ways_of(mut mask: u32) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let w = mask.trailing_zeros() as usize & (WAYS - 1);
            mask &= mask - 1;
            w
        })
    })
}

impl Bucket {
    #[inline]
    fn id(&self, way: usize) -> Option<u32> {
        self.ids.get(way).copied()
    }

    /// Writes a way; the ways [`ways_of`] gives are always in range.
    #[inline]
    fn set(&mut self, way: usize, tag: u32, id: u32) {
        if let (Some(t), Some(i)) = (self.tags.get_mut(way), self.ids.get_mut(way)) {
            (*t, *i) = (tag, id);
        }
    }

    /// Exchanges a way's tag and id with `tag` and `id`.
    #[inline]
    fn swap(&mut self, way: usize, tag: &mut u32, id: &mut u32) {
        if let (Some(t), Some(i)) = (self.tags.get_mut(way), self.ids.get_mut(way)) {
            std::mem::swap(tag, t);
            std::mem::swap(id, i);
        }
    }
}

impl FlowIndex {
    /// An index for `capacity` entries, at most 85% full when they are all in.
    pub fn new(capacity: usize) -> FlowIndex {
        FlowIndex {
            buckets: rvs_cpu::huge_page_vec(Self::buckets_for(capacity), |_| Bucket::default()),
        }
    }

    fn buckets_for(capacity: usize) -> usize {
        (capacity * 20 / 17)
            .div_ceil(WAYS)
            .clamp(2, u32::MAX as usize)
    }

    pub fn bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<Bucket>()
    }

    /// What [`FlowIndex::bytes`] will be for an index made for `capacity` entries.
    pub fn bytes_for(capacity: usize) -> usize {
        Self::buckets_for(capacity) * std::mem::size_of::<Bucket>()
    }

    /// `x` scaled into 0..buckets (a multiply, not a division).
    fn scale(&self, x: u32) -> usize {
        ((u64::from(x) * self.buckets.len() as u64) >> 32) as usize
    }

    fn first(&self, hash: u64) -> usize {
        self.scale(hash as u32)
    }

    /// The other bucket of an entry in `bucket`: (f(tag) - bucket) mod n, its own inverse.
    fn other(&self, bucket: usize, tag: u32) -> usize {
        let n = self.buckets.len();
        let s = self.scale(tag.wrapping_mul(0x9e37_79b1)) + n - bucket;
        if s >= n {
            s - n
        } else {
            s
        }
    }

    /// Asks the CPU to bring a key's first bucket into cache ahead of its lookup.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if let Some(b) = self.buckets.get(self.first(hash)) {
            rvs_cpu::prefetch(b);
        }
    }

    /// The ids in a key's first bucket whose tag matches (its bucket in cache after
    /// [`FlowIndex::prefetch`]), for the caller to prefetch their entries. With none there
    /// the lookup will read the key's second bucket (the key is absent, as for a new
    /// connection, or was placed there when its first was full): that line is asked for.
    #[inline]
    pub fn candidates(&self, hash: u64, each: impl FnMut(u32)) {
        let tag = tag_of(hash);
        let first = self.first(hash);
        let Some(b) = self.buckets.get(first) else {
            return;
        };
        let mask = rvs_cpu::lanes_equal(&b.tags, tag);
        if mask == 0 {
            return self.prefetch_second(first, tag);
        }
        ways_of(mask).filter_map(|w| b.id(w)).for_each(each);
    }

    #[cold]
    fn prefetch_second(&self, first: usize, tag: u32) {
        if let Some(second) = self.buckets.get(self.other(first, tag)) {
            rvs_cpu::prefetch(second);
        }
    }

    /// The id under `hash` for which `is_key` holds.
    #[inline]
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = tag_of(hash);
        let first = self.first(hash);
        // The second bucket only when the first has no match.
        match self.find_in(first, tag, &mut is_key) {
            None => self.find_in(self.other(first, tag), tag, &mut is_key),
            found => found,
        }
    }

    #[inline(always)]
    fn find_in(&self, b: usize, tag: u32, is_key: &mut impl FnMut(u32) -> bool) -> Option<u32> {
        let bucket = self.buckets.get(b)?;
        ways_with(bucket, tag)
            .filter_map(|w| bucket.id(w))
            .find(|&id| is_key(id))
    }

    /// Places `id` under `hash` unless an id for which `is_key` holds is there: the check
    /// for a clash and the placing in one pass over the key's two buckets.
    #[inline]
    pub fn insert_unique(
        &mut self,
        hash: u64,
        id: u32,
        mut is_key: impl FnMut(u32) -> bool,
    ) -> Result<(), Refused> {
        let tag = tag_of(hash);
        let first = self.first(hash);
        let mut free = None;
        for b in [first, self.other(first, tag)] {
            let Some(bucket) = self.buckets.get(b) else {
                continue;
            };
            if ways_with(bucket, tag).any(|w| bucket.id(w).is_some_and(&mut is_key)) {
                return Err(Refused::Present);
            }
            if free.is_none() {
                free = ways_with(bucket, EMPTY).next().map(|w| (b, w));
            }
        }
        match free.and_then(|(b, w)| Some((self.buckets.get_mut(b)?, w))) {
            Some((bucket, w)) => {
                bucket.set(w, tag, id);
                Ok(())
            }
            None => self.insert_moving(first, tag, id),
        }
    }

    /// Places `id` under `hash` for a key the caller knows is absent (it looked it up and
    /// placed nothing since): no check for a clash.
    #[inline]
    pub fn insert_absent(&mut self, hash: u64, id: u32) -> Result<(), Refused> {
        let tag = tag_of(hash);
        let first = self.first(hash);
        if self.place(first, tag, id) {
            return Ok(());
        }
        let second = self.other(first, tag);
        if self.place(second, tag, id) {
            return Ok(());
        }
        self.insert_moving(first, tag, id)
    }

    /// Both of a key's buckets full: entries move to their other buckets along a path,
    /// undone if it grows too long.
    #[cold]
    fn insert_moving(&mut self, first: usize, tag: u32, id: u32) -> Result<(), Refused> {
        let mut path = [(0usize, 0u8); MAX_MOVES];
        let (mut tag, mut id, mut b) = (tag, id, first);
        let mut moved = 0;
        for (step, way) in path.iter_mut().enumerate() {
            let w = (tag as usize ^ step) % WAYS;
            let Some(bucket) = self.buckets.get_mut(b) else {
                break;
            };
            bucket.swap(w, &mut tag, &mut id);
            *way = (b, w as u8);
            moved += 1;
            b = self.other(b, tag);
            if self.place(b, tag, id) {
                return Ok(());
            }
        }
        for &(b, w) in path.iter().take(moved).rev() {
            if let Some(bucket) = self.buckets.get_mut(b) {
                bucket.swap(usize::from(w), &mut tag, &mut id);
            }
        }
        Err(Refused::Full)
    }

    #[inline]
    fn place(&mut self, b: usize, tag: u32, id: u32) -> bool {
        let Some(bucket) = self.buckets.get_mut(b) else {
            return false;
        };
        match ways_with(bucket, EMPTY).next() {
            Some(w) => {
                bucket.set(w, tag, id);
                true
            }
            None => false,
        }
    }

    /// Ways in use (tests: a full scan).
    pub fn occupied(&self) -> usize {
        let used = |b: &Bucket| b.tags.iter().filter(|&&t| t != EMPTY).count();
        self.buckets.iter().map(used).sum()
    }

    /// Removes `id` filed under `hash`; false when it was not there.
    pub fn remove(&mut self, hash: u64, id: u32) -> bool {
        let tag = tag_of(hash);
        let first = self.first(hash);
        self.clear(first, tag, id) || self.clear(self.other(first, tag), tag, id)
    }

    /// Empties the way of bucket `b` holding `tag` and `id` (both compared at once).
    #[inline]
    fn clear(&mut self, b: usize, tag: u32, id: u32) -> bool {
        let Some(bucket) = self.buckets.get_mut(b) else {
            return false;
        };
        let m = rvs_cpu::lanes_equal(&bucket.ids, id) & rvs_cpu::lanes_equal(&bucket.tags, tag);
        match ways_of(m).next().and_then(|w| bucket.tags.get_mut(w)) {
            Some(t) => {
                *t = EMPTY;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::hash_map::Entry;
    use std::collections::HashMap;

    #[test]
    fn fills_to_capacity_and_finds_everything() {
        let cap = 100_000;
        let mut index = FlowIndex::new(cap);
        let hash = |i: u32| {
            (u64::from(i))
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(17)
        };
        for i in 0..cap as u32 {
            index.insert_unique(hash(i), i, |_| false).unwrap();
        }
        for i in 0..cap as u32 {
            assert_eq!(index.find(hash(i), |id| id == i), Some(i));
        }
        assert!(index.remove(hash(7), 7));
        assert!(!index.remove(hash(7), 7));
        assert_eq!(index.find(hash(7), |id| id == 7), None);
    }

    #[test]
    fn colliding_hashes_are_told_apart_by_the_key() {
        let mut index = FlowIndex::new(64);
        // Same hash, different ids: up to two buckets' worth.
        for id in 0..16 {
            index.insert_unique(42, id, |i| i == id).unwrap();
        }
        assert_eq!(
            index.insert_unique(42, 16, |_| false),
            Err(Refused::Full),
            "no third bucket"
        );
        assert_eq!(
            index.insert_unique(42, 99, |i| i == 9),
            Err(Refused::Present)
        );
        for id in 0..16 {
            assert_eq!(index.find(42, |i| i == id), Some(id));
        }
    }

    proptest! {
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((any::<bool>(), 0u32..400), 1..2000)) {
            let mut index = FlowIndex::new(400);
            let mut model: HashMap<u32, u64> = HashMap::new();
            // Few distinct hashes so buckets fill and entries move.
            let hash = |k: u32| u64::from(k % 97).wrapping_mul(0xff51_afd7_ed55_8ccd) ^ u64::from(k % 5) << 40;
            for (add, k) in ops {
                if add {
                    let placed = index.insert_unique(hash(k), k, |i| i == k);
                    match model.entry(k) {
                        Entry::Occupied(_) => prop_assert_eq!(placed, Err(Refused::Present)),
                        Entry::Vacant(v) => {
                            if placed.is_ok() {
                                v.insert(hash(k));
                            }
                        }
                    }
                } else {
                    prop_assert_eq!(index.remove(hash(k), k), model.remove(&k).is_some());
                }
                for (&k, &h) in &model {
                    prop_assert_eq!(index.find(h, |i| i == k), Some(k));
                }
            }
        }
    }
}
