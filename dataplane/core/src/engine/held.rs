//! Frames waiting for a neighbour: a packet to a next hop whose MAC is not known yet is
//! rewritten as usual and kept (a few per next hop, a fixed arena per worker) while an ARP
//! request / neighbour solicitation goes out in its place; once any worker learns the MAC
//! the worker sends the kept frames with it, and after [`HELD_TIMEOUT_S`] they are dropped
//! as "no neighbour", as Linux's unresolved queue does. Only a worker that can allocate
//! buffers of its own to send them ([`Engine::set_holding`]) holds anything.

use super::*;

/// Frames one worker keeps at most.
pub const HELD_FRAMES: usize = 32;
/// Frames kept per next hop (Linux's historical unres_qlen).
pub const HELD_PER_HOP: usize = 3;
/// How long a frame waits for its neighbour (seconds).
pub const HELD_TIMEOUT_S: u32 = 3;

/// What a held frame waits for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Waiting {
    hop: IpAddr,
    port: u16,
    fit: Fit,
    since: u32,
}

pub(super) type HeldFrames = super::frame_arena::FrameArena<Waiting>;

/// Keeps a copy of `bytes` for `hop` out of `port`; false when it cannot (disabled, too
/// large, the hop or the arena full).
fn keep(
    held: &mut HeldFrames,
    (port, fit): (u16, Fit),
    hop: IpAddr,
    bytes: &[u8],
    now: u32,
) -> bool {
    let for_hop = held.waiting().filter(|w| w.hop == hop).count();
    for_hop < HELD_PER_HOP
        && held.keep(
            Waiting {
                hop,
                port,
                fit,
                since: now,
            },
            bytes,
        )
}

impl Engine {
    /// Lets this engine keep frames for unresolved neighbours (its worker can send them
    /// later from buffers of its own).
    pub fn set_holding(&mut self, on: bool) {
        self.held.enabled = on;
    }

    /// Whether a frame could wait for its neighbour now.
    pub(super) fn held_room(&self) -> bool {
        self.held.has_room()
    }

    /// Frames waiting for a neighbour now.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }

    /// The frame (rewritten, its destination MAC still to fill) waits for `hop`; the frame
    /// itself becomes the request for the hop's MAC. Without room, as before: the request
    /// goes out in its place and the packet counts as dropped for want of a neighbour.
    pub(super) fn hold_and_solicit<F: Frame>(
        &mut self,
        snap: &Snapshot,
        now: u32,
        (port, fit): (u16, Fit),
        hop: IpAddr,
        frame: &mut F,
    ) -> Verdict {
        if !keep(&mut self.held, (port, fit), hop, frame.bytes(), now) {
            return self.resolve(snap, now, port, hop, frame);
        }
        if self.solicit(snap, now, port, hop, frame) {
            Verdict::Forward { port }
        } else {
            // Asked this second already: nothing to send now; the frame waits.
            Verdict::Drop(DropReason::Held)
        }
    }

    /// Sends (through `emit(port, frame, split)`, false if it could not) the frames whose
    /// neighbour is now known, with its MAC (`split`: in fragments of at most that many
    /// bytes, and the identification an IPv6 datagram's fragment headers take); drops those
    /// that waited too long. Cheap when nothing waits.
    pub fn release_held(
        &mut self,
        snap: &Snapshot,
        now: u32,
        mut emit: impl FnMut(u16, &[u8], Option<(u16, u32)>) -> bool,
    ) {
        if self.held.len() == 0 {
            return;
        }
        for i in 0..self.held.slots() {
            let Some(w) = self.held.get(i) else {
                continue;
            };
            let mac = self.neighbour(snap, w.hop);
            let expired = now.saturating_sub(w.since) > HELD_TIMEOUT_S;
            if mac.is_none() && !expired {
                continue;
            }
            let split = match w.fit {
                Fit::Whole => None,
                Fit::Split(mtu) => Some((mtu, self.fragment_ident6())),
            };
            let sent = match (mac, self.held.frame_mut(i)) {
                (Some(mac), Some(frame)) => {
                    if let Some(dst) = frame.get_mut(..6) {
                        dst.copy_from_slice(&mac);
                    }
                    emit(w.port, frame, split)
                }
                _ => false,
            };
            if !sent {
                self.counters.dropped(DropReason::NoNeighbour);
            }
            self.held.free(i);
        }
    }
}
