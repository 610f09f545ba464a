//! A worker's fixed arena of frame copies, each with what it waits for: frames held for a
//! neighbour ([`super::held`]) and later fragments kept for their first
//! ([`super::fragments`]). Made once at start; keeping and releasing a frame copies bytes,
//! nothing is allocated.

/// The largest frame an arena keeps (bytes); a larger one is not kept.
pub const FRAME_BYTES: usize = 2048;

#[derive(Debug)]
pub(super) struct FrameArena<M: Copy> {
    /// Off until the worker can send kept frames from buffers of its own.
    pub(super) enabled: bool,
    waiting: Vec<Option<(M, u16)>>,
    bufs: Vec<[u8; FRAME_BYTES]>,
    count: usize,
}

impl<M: Copy> FrameArena<M> {
    pub(super) fn new(slots: usize) -> FrameArena<M> {
        FrameArena {
            enabled: false,
            waiting: vec![None; slots],
            bufs: vec![[0u8; FRAME_BYTES]; slots],
            count: 0,
        }
    }

    /// Frames kept now.
    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// Whether a frame could be kept now.
    pub(super) fn has_room(&self) -> bool {
        self.enabled && self.count < self.waiting.len()
    }

    /// What the kept frames wait for.
    pub(super) fn waiting(&self) -> impl Iterator<Item = &M> {
        self.waiting.iter().flatten().map(|(m, _)| m)
    }

    /// Keeps a copy of `bytes` with `meta`; false when it cannot (disabled, too large, the
    /// arena full).
    pub(super) fn keep(&mut self, meta: M, bytes: &[u8]) -> bool {
        if !self.has_room() || bytes.len() > FRAME_BYTES {
            return false;
        }
        let Some(i) = self.waiting.iter().position(Option::is_none) else {
            return false;
        };
        let (Some(slot), Some(dst)) = (
            self.waiting.get_mut(i),
            self.bufs.get_mut(i).and_then(|b| b.get_mut(..bytes.len())),
        ) else {
            return false;
        };
        dst.copy_from_slice(bytes);
        *slot = Some((meta, bytes.len() as u16));
        self.count += 1;
        true
    }

    /// Slots to visit with [`FrameArena::get`].
    pub(super) fn slots(&self) -> usize {
        self.waiting.len()
    }

    /// What slot `i`'s frame waits for, if one is kept there.
    pub(super) fn get(&self, i: usize) -> Option<M> {
        self.waiting.get(i).copied().flatten().map(|(m, _)| m)
    }

    /// Slot `i`'s kept frame.
    pub(super) fn frame_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        let len = self.waiting.get(i).copied().flatten()?.1;
        self.bufs.get_mut(i)?.get_mut(..usize::from(len))
    }

    /// Lets slot `i`'s frame go.
    pub(super) fn free(&mut self, i: usize) {
        if let Some(slot @ Some(_)) = self.waiting.get_mut(i) {
            *slot = None;
            self.count -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_kept_until_freed_within_the_arena() {
        let mut a: FrameArena<u8> = FrameArena::new(2);
        assert!(!a.keep(1, b"x"), "disabled");
        a.enabled = true;
        assert!(a.keep(1, b"one"));
        assert!(!a.keep(9, &[0; FRAME_BYTES + 1]), "too large");
        assert!(a.keep(2, &[7; FRAME_BYTES]));
        assert!(!a.has_room() && !a.keep(3, b"three"), "full");
        assert_eq!(
            (a.len(), a.waiting().copied().collect::<Vec<_>>()),
            (2, vec![1, 2])
        );
        assert_eq!(a.frame_mut(0).map(|f| f.to_vec()), Some(b"one".to_vec()));
        a.free(0);
        a.free(0);
        assert_eq!((a.len(), a.get(0), a.frame_mut(0)), (1, None, None));
        assert!(a.keep(3, b"three"));
        assert_eq!((a.get(0), a.get(1)), (Some(3), Some(2)));
        assert_eq!(a.frame_mut(1).map(|f| f.len()), Some(FRAME_BYTES));
    }
}
