//! The buffer the engine works on: a DPDK mbuf in the workers (`rvs_worker::MbufFrame`),
//! a plain vector in tests and tools.

/// A frame with room to grow at the front (tunnel headers) and to shrink.
pub trait Frame {
    fn bytes(&self) -> &[u8];
    fn bytes_mut(&mut self) -> &mut [u8];
    /// Grows the frame by `n` bytes at the front; false (unchanged) without headroom.
    fn prepend(&mut self, n: usize) -> bool;
    /// Cuts the frame to `len` bytes.
    fn truncate(&mut self, len: usize);
    /// Grows the frame by `n` bytes at the end; false (unchanged) without tailroom.
    fn append(&mut self, n: usize) -> bool;
    /// Asks the port to compute the IPv4 header checksum on transmit; false when the
    /// buffer cannot carry the request (the caller then computes it).
    fn offload_ipv4_checksum(&mut self, _l2_len: usize, _l3_len: usize) -> bool {
        false
    }
}

/// A frame over a vector with fixed headroom, for tests and tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecFrame {
    buf: Vec<u8>,
    start: usize,
    /// The IPv4 checksum offload requested (l2 and l3 lengths), as a NIC would see it.
    pub ipv4_checksum_offload: Option<(usize, usize)>,
}

impl VecFrame {
    pub const HEADROOM: usize = 128;

    pub fn new(bytes: &[u8]) -> VecFrame {
        let mut buf = vec![0u8; Self::HEADROOM];
        buf.extend_from_slice(bytes);
        VecFrame {
            buf,
            start: Self::HEADROOM,
            ipv4_checksum_offload: None,
        }
    }
}

impl VecFrame {
    /// Refills the frame with `bytes`, reusing the buffer (benchmarks).
    pub fn reset(&mut self, bytes: &[u8]) {
        self.buf.truncate(Self::HEADROOM);
        self.buf.resize(Self::HEADROOM, 0);
        self.buf.extend_from_slice(bytes);
        self.start = Self::HEADROOM;
        self.ipv4_checksum_offload = None;
    }
}

impl Frame for VecFrame {
    fn bytes(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.start..).unwrap_or_default()
    }

    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }

    fn truncate(&mut self, len: usize) {
        self.buf.truncate(self.start + len);
    }

    fn append(&mut self, n: usize) -> bool {
        self.buf.resize(self.buf.len() + n, 0);
        true
    }

    fn offload_ipv4_checksum(&mut self, l2_len: usize, l3_len: usize) -> bool {
        self.ipv4_checksum_offload = Some((l2_len, l3_len));
        true
    }
}
