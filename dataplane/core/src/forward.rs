//! Frame-level forwarding decisions, pure over byte buffers.

use std::fmt;
use std::str::FromStr;

/// Ethernet header length (destination, source, ethertype).
pub const ETHER_HDR_LEN: usize = 14;

/// What a worker does with each frame. `Lb` is the load balancer (the engine); `Io` and
/// `MacSwap` are testpmd's diagnostic modes: frames received on a port go out of its peer
/// port unchanged, or with the Ethernet addresses swapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardMode {
    Lb,
    Io,
    MacSwap,
}

impl ForwardMode {
    pub const ALL: [ForwardMode; 3] = [ForwardMode::Lb, ForwardMode::Io, ForwardMode::MacSwap];

    /// The mode as it travels in a shared atomic (`set fwd` at run time).
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(c: u8) -> ForwardMode {
        ForwardMode::ALL
            .into_iter()
            .find(|m| m.code() == c)
            .unwrap_or(ForwardMode::Io)
    }

    pub fn name(self) -> &'static str {
        match self {
            ForwardMode::Lb => "lb",
            ForwardMode::Io => "io",
            ForwardMode::MacSwap => "macswap",
        }
    }
}

impl fmt::Display for ForwardMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ForwardMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        ForwardMode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = ForwardMode::ALL.iter().map(|m| m.name()).collect();
                format!(
                    "unknown forwarding mode {s:?} (one of {})",
                    names.join(", ")
                )
            })
    }
}

/// The verdict on one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Forward,
    /// Too short to be an Ethernet frame.
    DropMalformed,
}

/// Applies `mode` to one frame in place.
#[inline]
pub fn apply(mode: ForwardMode, frame: &mut [u8]) -> Verdict {
    match mode {
        ForwardMode::Io | ForwardMode::Lb => Verdict::Forward,
        ForwardMode::MacSwap => macswap(frame),
    }
}

/// Swaps the Ethernet destination and source addresses.
#[inline]
pub fn macswap(frame: &mut [u8]) -> Verdict {
    let Some(header) = frame.get_mut(..12) else {
        return Verdict::DropMalformed;
    };
    let (dst, src) = header.split_at_mut(6);
    dst.swap_with_slice(src);
    Verdict::Forward
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macswap_swaps_addresses_and_keeps_the_rest() {
        let mut frame = [
            1, 2, 3, 4, 5, 6, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 0x08, 0x00, 0x45, 0x00,
        ];
        assert_eq!(macswap(&mut frame), Verdict::Forward);
        assert_eq!(
            frame,
            [0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 1, 2, 3, 4, 5, 6, 0x08, 0x00, 0x45, 0x00]
        );
    }

    #[test]
    fn short_frames_are_malformed_not_a_panic() {
        for len in 0..12 {
            let mut frame = vec![0u8; len];
            assert_eq!(macswap(&mut frame), Verdict::DropMalformed, "len {len}");
        }
        assert_eq!(apply(ForwardMode::Io, &mut []), Verdict::Forward);
    }

    #[test]
    fn mode_names_round_trip() {
        for m in ForwardMode::ALL {
            assert_eq!(m.name().parse::<ForwardMode>(), Ok(m));
        }
        assert!("fast"
            .parse::<ForwardMode>()
            .unwrap_err()
            .contains("lb, io, macswap"));
    }
}
