//! SCTP common headers (RFC 9260): ports, verification tag, the CRC32c checksum over the
//! whole packet (no pseudo-header, so address rewrites leave it valid), and the chunk
//! type that drives IPVS's SCTP state machine.

use super::{get_u16, get_u8, set_u16, WireError};

pub const HEADER_LEN: usize = 12;
const CHUNK_HEADER_LEN: usize = 4;

/// Chunk types (RFC 9260 section 3.2).
pub mod chunk {
    pub const DATA: u8 = 0;
    pub const INIT: u8 = 1;
    pub const INIT_ACK: u8 = 2;
    pub const SACK: u8 = 3;
    pub const HEARTBEAT: u8 = 4;
    pub const HEARTBEAT_ACK: u8 = 5;
    pub const ABORT: u8 = 6;
    pub const SHUTDOWN: u8 = 7;
    pub const SHUTDOWN_ACK: u8 = 8;
    pub const ERROR: u8 = 9;
    pub const COOKIE_ECHO: u8 = 10;
    pub const COOKIE_ACK: u8 = 11;
    pub const SHUTDOWN_COMPLETE: u8 = 14;
}

#[derive(Debug, Clone, Copy)]
pub struct SctpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> SctpPacket<T> {
    /// `buf` is the SCTP packet (common header and chunks) up to the end of the datagram.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(SctpPacket { buf })
    }

    pub fn src_port(&self) -> u16 {
        get_u16(self.buf.as_ref(), 0)
    }

    pub fn dst_port(&self) -> u16 {
        get_u16(self.buf.as_ref(), 2)
    }

    /// The checksum field as sent (RFC 9260 appendix A: the CRC's bytes least significant
    /// first).
    pub fn checksum(&self) -> u32 {
        let b = self.buf.as_ref();
        u32::from_le_bytes([get_u8(b, 8), get_u8(b, 9), get_u8(b, 10), get_u8(b, 11)])
    }

    /// The checksum the packet should carry.
    pub fn compute_checksum(&self) -> u32 {
        let b = self.buf.as_ref();
        let crc = crc32c_update(!0, b.get(..8).unwrap_or(&[]));
        let crc = crc32c_update(crc, &[0; 4]);
        !crc32c_update(crc, b.get(HEADER_LEN..).unwrap_or(&[]))
    }

    pub fn verify_checksum(&self) -> bool {
        self.checksum() == self.compute_checksum()
    }

    /// The type of the first chunk, or None for a packet without one.
    pub fn first_chunk(&self) -> Option<u8> {
        let b = self.buf.as_ref();
        (b.len() >= HEADER_LEN + CHUNK_HEADER_LEN).then(|| get_u8(b, HEADER_LEN))
    }

    /// The chunk type IPVS's state machine reads: the first chunk's, except that a
    /// COOKIE ECHO or COOKIE ACK bundled with a following ABORT counts as the ABORT.
    pub fn state_chunk(&self) -> Option<u8> {
        let first = self.first_chunk()?;
        if first != chunk::COOKIE_ECHO && first != chunk::COOKIE_ACK {
            return Some(first);
        }
        let b = self.buf.as_ref();
        let len = usize::from(get_u16(b, HEADER_LEN + 2));
        if len < CHUNK_HEADER_LEN {
            return Some(first);
        }
        let next = HEADER_LEN + len.next_multiple_of(4);
        match b.get(next) {
            Some(&chunk::ABORT) if b.len() >= next + CHUNK_HEADER_LEN => Some(chunk::ABORT),
            _ => Some(first),
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> SctpPacket<T> {
    /// Sets a port; the checksum is the caller's ([`SctpPacket::fill_checksum`]), once
    /// after all changes, as a CRC has no incremental update worth having.
    pub fn set_src_port(&mut self, port: u16) {
        set_u16(self.buf.as_mut(), 0, port);
    }

    pub fn set_dst_port(&mut self, port: u16) {
        set_u16(self.buf.as_mut(), 2, port);
    }

    pub fn fill_checksum(&mut self) {
        let c = self.compute_checksum().to_le_bytes();
        if let Some(field) = self.buf.as_mut().get_mut(8..HEADER_LEN) {
            field.copy_from_slice(&c);
        }
    }
}

/// The length of a packet holding only an INIT chunk without parameters.
pub const INIT_PACKET_LEN: usize = HEADER_LEN + 20;

/// Writes an SCTP packet opening an association: an INIT (verification tag 0, the given
/// initiate tag, 64 KiB window, 10 streams each way), checksum filled.
pub fn emit_init(buf: &mut [u8], ports: (u16, u16), initiate_tag: u32) -> Result<(), WireError> {
    let b = buf.get_mut(..INIT_PACKET_LEN).ok_or(WireError::Truncated)?;
    b.fill(0);
    set_u16(b, 0, ports.0);
    set_u16(b, 2, ports.1);
    let chunk = b.get_mut(HEADER_LEN..).ok_or(WireError::Truncated)?;
    chunk.copy_from_slice(&[
        chunk::INIT,
        0,
        0,
        20,
        0,
        0,
        0,
        0,
        0,
        1,
        0,
        0,
        0,
        10,
        0,
        10,
        0,
        0,
        0,
        1,
    ]);
    if let Some(tag) = chunk.get_mut(4..8) {
        tag.copy_from_slice(&initiate_tag.max(1).to_be_bytes());
    }
    SctpPacket::new_checked(b)?.fill_checksum();
    Ok(())
}

/// CRC32c (Castagnoli, reflected polynomial 0x82F63B78), eight bytes a step.
const CRC32C_TABLES: [[u32; 256]; 8] = crc32c_tables();

// Evaluated at compile time: an index out of range fails the build, not a packet.
#[allow(clippy::indexing_slicing)]
const fn crc32c_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        s += 1;
    }
    t
}

/// Continues a CRC32c over `data` (start from `!0`, finish with `!`).
// Every table index is masked to 0..=255 on 256-entry tables.
#[allow(clippy::indexing_slicing)]
pub fn crc32c_update(mut crc: u32, data: &[u8]) -> u32 {
    let t = &CRC32C_TABLES;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
        let lo = crc ^ v as u32;
        let hi = (v >> 32) as u32;
        crc = t[7][(lo & 0xff) as usize]
            ^ t[6][(lo >> 8 & 0xff) as usize]
            ^ t[5][(lo >> 16 & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xff) as usize]
            ^ t[2][(hi >> 8 & 0xff) as usize]
            ^ t[1][(hi >> 16 & 0xff) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in words.remainder() {
        crc = (crc >> 8) ^ t[0][((crc ^ u32::from(b)) & 0xff) as usize];
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_values() {
        // The standard check value, and RFC 3720 B.4's 32 bytes of zeros and of 0xff.
        assert_eq!(!crc32c_update(!0, b"123456789"), 0xE306_9283);
        assert_eq!(!crc32c_update(!0, &[0u8; 32]), 0x8A91_36AA);
        assert_eq!(!crc32c_update(!0, &[0xffu8; 32]), 0x62A8_AB43);
        // Split anywhere, same result.
        let data: Vec<u8> = (0..=255u8).collect();
        let whole = crc32c_update(!0, &data);
        for cut in [1, 7, 8, 9, 100] {
            let (a, b) = data.split_at(cut);
            assert_eq!(crc32c_update(crc32c_update(!0, a), b), whole);
        }
    }

    /// An INIT as Linux sends it (ports 40000 -> 5000, tag 0), checksum filled here.
    fn init() -> Vec<u8> {
        let mut p = vec![0x9c, 0x40, 0x13, 0x88, 0, 0, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(&[chunk::INIT, 0, 0, 20]);
        p.extend_from_slice(&[0x11, 0x22, 0x33, 0x44, 0, 1, 0, 0, 0, 10, 0, 10]);
        p.extend_from_slice(&[0xa1, 0xb2, 0xc3, 0xd4]);
        let mut s = SctpPacket::new_checked(&mut p[..]).unwrap();
        s.fill_checksum();
        p
    }

    #[test]
    fn ports_checksum_and_chunks() {
        let mut p = init();
        let s = SctpPacket::new_checked(&p[..]).unwrap();
        assert_eq!((s.src_port(), s.dst_port()), (40000, 5000));
        assert!(s.verify_checksum());
        assert_eq!(s.first_chunk(), Some(chunk::INIT));
        assert_eq!(s.state_chunk(), Some(chunk::INIT));
        let mut s = SctpPacket::new_checked(&mut p[..]).unwrap();
        s.set_dst_port(8080);
        assert!(!s.verify_checksum());
        s.fill_checksum();
        assert!(s.verify_checksum());
        assert_eq!(s.dst_port(), 8080);
        assert!(SctpPacket::new_checked(&p[..11]).is_err());
        assert_eq!(
            SctpPacket::new_checked(&p[..12]).unwrap().first_chunk(),
            None
        );
    }

    #[test]
    fn a_cookie_echo_bundled_with_abort_is_the_abort() {
        let mut p = vec![0; 12];
        p.extend_from_slice(&[chunk::COOKIE_ECHO, 0, 0, 6, 1, 2, 0, 0]);
        p.extend_from_slice(&[chunk::ABORT, 0, 0, 4]);
        let s = SctpPacket::new_checked(&p[..]).unwrap();
        assert_eq!(s.state_chunk(), Some(chunk::ABORT));
        p.truncate(22);
        let s = SctpPacket::new_checked(&p[..]).unwrap();
        assert_eq!(s.state_chunk(), Some(chunk::COOKIE_ECHO));
        let mut q = vec![0; 12];
        q.extend_from_slice(&[chunk::DATA, 0, 0, 4, chunk::ABORT, 0, 0, 4]);
        let s = SctpPacket::new_checked(&q[..]).unwrap();
        assert_eq!(s.state_chunk(), Some(chunk::DATA));
    }
}
