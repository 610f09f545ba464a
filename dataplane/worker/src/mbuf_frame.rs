//! The engine's [`Frame`] over a DPDK mbuf.

use rvs_wire::Frame;

/// An mbuf lent to the engine for one call.
pub struct MbufFrame<'a>(pub &'a mut dpdk::Mbuf);

impl Frame for MbufFrame<'_> {
    fn bytes(&self) -> &[u8] {
        self.0.data()
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        self.0.data_mut()
    }

    fn prepend(&mut self, n: usize) -> bool {
        u16::try_from(n).is_ok_and(|n| self.0.prepend(n).is_some())
    }

    fn truncate(&mut self, len: usize) {
        let cut = self.0.len().saturating_sub(len);
        if let Ok(cut) = u16::try_from(cut) {
            self.0.trim(cut);
        }
    }

    fn append(&mut self, n: usize) -> bool {
        u16::try_from(n).is_ok_and(|n| self.0.append(n).is_some())
    }

    fn offload_ipv4_checksum(&mut self, l2_len: usize, l3_len: usize) -> bool {
        match (u16::try_from(l2_len), u16::try_from(l3_len)) {
            (Ok(l2), Ok(l3)) => {
                self.0.offload_ipv4_checksum(l2, l3);
                true
            }
            _ => false,
        }
    }
}
