//! The BFD control packet (RFC 5880 section 4.1), without authentication: 24 bytes.

/// RFC 5880's session states, with their wire values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BfdState {
    AdminDown = 0,
    Down = 1,
    Init = 2,
    Up = 3,
}

impl BfdState {
    fn from_bits(b: u8) -> BfdState {
        match b & 3 {
            0 => BfdState::AdminDown,
            1 => BfdState::Down,
            2 => BfdState::Init,
            _ => BfdState::Up,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BfdState::AdminDown => "AdminDown",
            BfdState::Down => "Down",
            BfdState::Init => "Init",
            BfdState::Up => "Up",
        }
    }
}

/// The diagnostic codes (RFC 5880 section 4.1), as keepalived names them.
pub fn diag_name(d: u8) -> &'static str {
    match d {
        0 => "No Diagnostic",
        1 => "Control Detection Time Expired",
        2 => "Echo Function Failed",
        3 => "Neighbor Signaled Session Down",
        4 => "Forwarding Plane Reset",
        5 => "Path Down",
        6 => "Concatenated Path Down",
        7 => "Administratively Down",
        8 => "Reverse Concatenated Path Down",
        _ => "Unknown",
    }
}

pub const DIAG_EXPIRED: u8 = 1;
pub const DIAG_NEIGHBOR_DOWN: u8 = 3;

pub const LEN: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    pub diag: u8,
    pub state: BfdState,
    pub poll: bool,
    pub final_: bool,
    pub demand: bool,
    pub detect_mult: u8,
    pub my_discr: u32,
    pub your_discr: u32,
    /// Microseconds.
    pub min_tx: u32,
    pub min_rx: u32,
}

/// Why a packet is discarded (keepalived's bfd_check_packet, in its order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bogus {
    TooShort,
    LengthMismatch,
    Version,
    ZeroMultiplier,
    Multipoint,
    ZeroMyDiscriminator,
    ZeroYourDiscriminator,
    PollAndFinal,
    Diagnostic,
    Authenticated,
}

impl Bogus {
    pub fn describe(self) -> &'static str {
        match self {
            Bogus::TooShort => "packet too small",
            Bogus::LengthMismatch => "length field differs from the datagram's",
            Bogus::Version => "not version 1",
            Bogus::ZeroMultiplier => "detection multiplier zero",
            Bogus::Multipoint => "multipoint flag set",
            Bogus::ZeroMyDiscriminator => "my discriminator zero",
            Bogus::ZeroYourDiscriminator => "your discriminator zero while not Down",
            Bogus::PollAndFinal => "both poll and final set",
            Bogus::Diagnostic => "invalid diagnostic",
            Bogus::Authenticated => "authentication set (none is configured)",
        }
    }
}

fn word(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Control {
    /// Reads and checks a datagram's payload.
    pub fn parse(b: &[u8]) -> Result<Control, Bogus> {
        if b.len() < LEN {
            return Err(Bogus::TooShort);
        }
        if usize::from(b[3]) != b.len() {
            return Err(Bogus::LengthMismatch);
        }
        if b[0] >> 5 != 1 {
            return Err(Bogus::Version);
        }
        let flags = b[1];
        let c = Control {
            diag: b[0] & 0x1f,
            state: BfdState::from_bits(flags >> 6),
            poll: flags & 0x20 != 0,
            final_: flags & 0x10 != 0,
            demand: flags & 0x02 != 0,
            detect_mult: b[2],
            my_discr: word(b, 4),
            your_discr: word(b, 8),
            min_tx: word(b, 12),
            min_rx: word(b, 16),
        };
        if c.detect_mult == 0 {
            return Err(Bogus::ZeroMultiplier);
        }
        if flags & 0x01 != 0 {
            return Err(Bogus::Multipoint);
        }
        if c.my_discr == 0 {
            return Err(Bogus::ZeroMyDiscriminator);
        }
        if c.your_discr == 0 && !matches!(c.state, BfdState::Down | BfdState::AdminDown) {
            return Err(Bogus::ZeroYourDiscriminator);
        }
        if c.poll && c.final_ {
            return Err(Bogus::PollAndFinal);
        }
        if c.diag > 8 {
            return Err(Bogus::Diagnostic);
        }
        if flags & 0x04 != 0 {
            return Err(Bogus::Authenticated);
        }
        Ok(c)
    }

    pub fn bytes(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0] = (1 << 5) | (self.diag & 0x1f);
        b[1] = ((self.state as u8) << 6)
            | (u8::from(self.poll) << 5)
            | (u8::from(self.final_) << 4)
            | (u8::from(self.demand) << 1);
        b[2] = self.detect_mult;
        b[3] = LEN as u8;
        b[4..8].copy_from_slice(&self.my_discr.to_be_bytes());
        b[8..12].copy_from_slice(&self.your_discr.to_be_bytes());
        b[12..16].copy_from_slice(&self.min_tx.to_be_bytes());
        b[16..20].copy_from_slice(&self.min_rx.to_be_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet as keepalived's BFD process sends it on start (Down, your discriminator
    /// unknown, idle 1 s transmit, 10 ms receive, multiplier 5).
    const KEEPALIVED_DOWN: [u8; 24] = [
        0x20, 0x40, 0x05, 0x18, 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0, 0x00, 0x0f, 0x42, 0x40, 0x00,
        0x00, 0x27, 0x10, 0, 0, 0, 0,
    ];

    #[test]
    fn control_packets_read_and_write_as_rfc_5880_lays_them_out() {
        let c = Control::parse(&KEEPALIVED_DOWN).unwrap();
        assert_eq!(
            c,
            Control {
                diag: 0,
                state: BfdState::Down,
                poll: false,
                final_: false,
                demand: false,
                detect_mult: 5,
                my_discr: 0x1234_5678,
                your_discr: 0,
                min_tx: 1_000_000,
                min_rx: 10_000,
            }
        );
        assert_eq!(c.bytes(), KEEPALIVED_DOWN);
        let up = Control {
            diag: DIAG_EXPIRED,
            state: BfdState::Up,
            poll: true,
            your_discr: 9,
            ..c
        };
        let b = up.bytes();
        assert_eq!((b[0], b[1]), (0x21, 0xe0));
        assert_eq!(Control::parse(&b), Ok(up));
    }

    #[test]
    fn bogus_packets_are_refused_as_keepalived_checks_them() {
        let with = |at: usize, v: u8| {
            let mut b = KEEPALIVED_DOWN;
            b[at] = v;
            Control::parse(&b)
        };
        assert_eq!(Control::parse(&KEEPALIVED_DOWN[..20]), Err(Bogus::TooShort));
        assert_eq!(with(3, 26), Err(Bogus::LengthMismatch));
        assert_eq!(with(0, 0x40), Err(Bogus::Version));
        assert_eq!(with(2, 0), Err(Bogus::ZeroMultiplier));
        assert_eq!(with(1, 0x41), Err(Bogus::Multipoint));
        assert_eq!(with(1, 0xc0), Err(Bogus::ZeroYourDiscriminator));
        assert_eq!(with(1, 0x70), Err(Bogus::PollAndFinal));
        assert_eq!(with(0, 0x29), Err(Bogus::Diagnostic));
        assert_eq!(with(1, 0x44), Err(Bogus::Authenticated));
        let mut b = KEEPALIVED_DOWN;
        b[4..8].fill(0);
        assert_eq!(Control::parse(&b), Err(Bogus::ZeroMyDiscriminator));
        let mut long = KEEPALIVED_DOWN.to_vec();
        long.extend([0; 4]);
        long[3] = 28;
        assert!(
            Control::parse(&long).is_ok(),
            "a longer length that matches is read"
        );
    }
}
