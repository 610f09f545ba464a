//! Classic BPF, the instruction set libpcap compiles tcpdump's filter language into: the
//! control side compiles a filter (with libpcap), the workers run it here on each frame a
//! capture considers. A program is checked once ([`Program::new`]: known instructions,
//! jumps forward and inside it, a return at the end), so running one cannot loop or index
//! out of bounds; a load beyond the frame rejects it, as the kernel's interpreter does.

/// One instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// Longest program accepted (the kernel's BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;
/// Scratch memory words (BPF_MEMWORDS).
const MEM_WORDS: usize = 16;

// Instruction classes and fields (linux/bpf_common.h).
const CLASS: u16 = 0x07;
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;

const SIZE: u16 = 0x18;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;

const MODE: u16 = 0xe0;
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MEM: u16 = 0x60;
const LEN: u16 = 0x80;
const MSH: u16 = 0xa0;

const OP: u16 = 0xf0;
const SRC_X: u16 = 0x08;
const RVAL: u16 = 0x18;
const RVAL_A: u16 = 0x10;
const RVAL_X: u16 = 0x08;
const MISC_TXA: u16 = 0x80;

// ALU and jump operations.
const ADD: u16 = 0x00;
const SUB: u16 = 0x10;
const MUL: u16 = 0x20;
const DIV: u16 = 0x30;
const OR: u16 = 0x40;
const AND: u16 = 0x50;
const LSH: u16 = 0x60;
const RSH: u16 = 0x70;
const NEG: u16 = 0x80;
const MOD: u16 = 0x90;
const XOR: u16 = 0xa0;
const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const JGT: u16 = 0x20;
const JGE: u16 = 0x30;
const JSET: u16 = 0x40;

/// A checked program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    insns: Vec<Insn>,
}

fn check(i: usize, insn: &Insn, len: usize) -> Result<(), String> {
    let bad = |what: &str| Err(format!("instruction {i} ({:#06x}): {what}", insn.code));
    let c = insn.code;
    if c > 0xff {
        return bad("unknown instruction");
    }
    let mem_ok = (insn.k as usize) < MEM_WORDS;
    match c & CLASS {
        LD => match c & MODE {
            ABS | IND if matches!(c & SIZE, W | H | B) => Ok(()),
            IMM | LEN if c & SIZE == W => Ok(()),
            MEM if c & SIZE == W && mem_ok => Ok(()),
            MEM => bad("scratch word out of range"),
            _ => bad("unknown load"),
        },
        LDX => match (c & MODE, c & SIZE) {
            (IMM | LEN, W) | (MSH, B) => Ok(()),
            (MEM, W) if mem_ok => Ok(()),
            _ => bad("unknown index load"),
        },
        ST | STX if c & !CLASS == 0 && mem_ok => Ok(()),
        ST | STX => bad("bad store"),
        ALU => match c & OP {
            ADD | SUB | MUL | OR | AND | LSH | RSH | XOR => Ok(()),
            NEG if c & SRC_X == 0 => Ok(()),
            DIV | MOD if c & SRC_X != 0 || insn.k != 0 => Ok(()),
            DIV | MOD => bad("division by a zero constant"),
            _ => bad("unknown arithmetic"),
        },
        JMP => {
            let far = match c & OP {
                JA => insn.k as usize,
                JEQ | JGT | JGE | JSET => usize::from(insn.jt.max(insn.jf)),
                _ => return bad("unknown jump"),
            };
            if i + 1 + far >= len {
                return bad("jumps past the end");
            }
            Ok(())
        }
        RET => match c & RVAL {
            0 | RVAL_A | RVAL_X if c & !(CLASS | RVAL) == 0 => Ok(()),
            _ => bad("unknown return"),
        },
        MISC => match c & !CLASS {
            0 | MISC_TXA => Ok(()),
            _ => bad("unknown move"),
        },
        _ => bad("unknown class"),
    }
}

impl Program {
    /// Checks `insns`: each known, jumps forward and inside, the last a return.
    pub fn new(insns: Vec<Insn>) -> Result<Program, String> {
        if insns.is_empty() || insns.len() > MAX_INSNS {
            return Err(format!("a program has 1 to {MAX_INSNS} instructions"));
        }
        for (i, insn) in insns.iter().enumerate() {
            check(i, insn, insns.len())?;
        }
        if insns.last().is_none_or(|l| l.code & CLASS != RET) {
            return Err("a program ends with a return".into());
        }
        Ok(Program { insns })
    }

    pub fn len(&self) -> usize {
        self.insns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// Runs the program on `frame` (captured whole): the bytes to keep, 0 to reject.
    pub fn run(&self, frame: &[u8]) -> u32 {
        let load = |at: u32, size: u16| -> Option<u32> {
            let at = at as usize;
            match size {
                W => rvs_wire::array_at(frame, at).map(u32::from_be_bytes),
                H => rvs_wire::array_at(frame, at).map(|b| u32::from(u16::from_be_bytes(b))),
                _ => frame.get(at).map(|&b| u32::from(b)),
            }
        };
        let wire_len = frame.len() as u32;
        let (mut a, mut x) = (0u32, 0u32);
        let mut mem = [0u32; MEM_WORDS];
        let mut pc = 0usize;
        // Every step moves forward (checked in `new`): at most `len` steps.
        while let Some(insn) = self.insns.get(pc) {
            pc += 1;
            let (c, k) = (insn.code, insn.k);
            let slot = (k as usize) % MEM_WORDS;
            match c & CLASS {
                LD => {
                    a = match c & MODE {
                        ABS => match load(k, c & SIZE) {
                            Some(v) => v,
                            None => return 0,
                        },
                        IND => match x.checked_add(k).and_then(|at| load(at, c & SIZE)) {
                            Some(v) => v,
                            None => return 0,
                        },
                        IMM => k,
                        LEN => wire_len,
                        _ => mem.get(slot).copied().unwrap_or(0),
                    }
                }
                LDX => {
                    x = match c & MODE {
                        IMM => k,
                        LEN => wire_len,
                        MSH => match load(k, B) {
                            Some(v) => (v & 0x0f) << 2,
                            None => return 0,
                        },
                        _ => mem.get(slot).copied().unwrap_or(0),
                    }
                }
                ST | STX => {
                    if let Some(m) = mem.get_mut(slot) {
                        *m = if c & CLASS == ST { a } else { x };
                    }
                }
                ALU => {
                    let v = if c & SRC_X != 0 { x } else { k };
                    a = match c & OP {
                        ADD => a.wrapping_add(v),
                        SUB => a.wrapping_sub(v),
                        MUL => a.wrapping_mul(v),
                        DIV => match a.checked_div(v) {
                            Some(q) => q,
                            None => return 0,
                        },
                        MOD => match a.checked_rem(v) {
                            Some(r) => r,
                            None => return 0,
                        },
                        OR => a | v,
                        AND => a & v,
                        LSH => a.checked_shl(v).unwrap_or(0),
                        RSH => a.checked_shr(v).unwrap_or(0),
                        XOR => a ^ v,
                        _ => a.wrapping_neg(),
                    }
                }
                JMP => {
                    let v = if c & SRC_X != 0 { x } else { k };
                    let taken = match c & OP {
                        JA => {
                            pc += k as usize;
                            continue;
                        }
                        JEQ => a == v,
                        JGT => a > v,
                        JGE => a >= v,
                        _ => a & v != 0,
                    };
                    pc += usize::from(if taken { insn.jt } else { insn.jf });
                }
                RET => {
                    return match c & RVAL {
                        RVAL_A => a,
                        RVAL_X => x,
                        _ => k,
                    }
                }
                _ => {
                    if c & MISC_TXA != 0 {
                        a = x;
                    } else {
                        x = a;
                    }
                }
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    /// `tcpdump -d ip`: ldh [12]; jeq #0x800 jt 2 jf 3; ret #262144; ret #0.
    fn ip_only() -> Program {
        Program::new(vec![
            insn(LD | H | ABS, 0, 0, 12),
            insn(JMP | JEQ, 0, 1, 0x800),
            insn(RET, 0, 0, 262144),
            insn(RET, 0, 0, 0),
        ])
        .unwrap()
    }

    #[test]
    fn tcpdumps_ip_program_runs() {
        let mut frame = vec![0u8; 60];
        frame[12] = 0x08;
        assert_eq!(ip_only().run(&frame), 262144);
        frame[12] = 0x86;
        assert_eq!(ip_only().run(&frame), 0);
        // A load past the frame rejects it.
        assert_eq!(ip_only().run(&frame[..13]), 0);
    }

    #[test]
    fn bad_programs_are_refused() {
        assert!(Program::new(vec![]).is_err());
        // A jump past the end, a division by zero, no return at the end, a bad scratch word.
        assert!(Program::new(vec![insn(JMP | JA, 0, 0, 1), insn(RET, 0, 0, 0)]).is_err());
        assert!(Program::new(vec![insn(ALU | DIV, 0, 0, 0), insn(RET, 0, 0, 0)]).is_err());
        assert!(Program::new(vec![insn(LD | W | IMM, 0, 0, 1)]).is_err());
        assert!(Program::new(vec![insn(ST, 0, 0, 16), insn(RET, 0, 0, 0)]).is_err());
        assert!(Program::new(vec![insn(0xffff, 0, 0, 0), insn(RET, 0, 0, 0)]).is_err());
    }

    #[test]
    fn x_and_scratch_memory_and_division_by_x() {
        // x = 4*(frame[0] & 15); mem[3] = x; a = mem[3]; a /= x (x = 0: reject); ret a.
        let p = Program::new(vec![
            insn(LDX | B | MSH, 0, 0, 0),
            insn(STX, 0, 0, 3),
            insn(LD | W | MEM, 0, 0, 3),
            insn(ALU | DIV | SRC_X, 0, 0, 0),
            insn(RET | RVAL_A, 0, 0, 0),
        ])
        .unwrap();
        assert_eq!(p.run(&[0x45]), 1);
        assert_eq!(p.run(&[0x40]), 0);
    }

    proptest! {
        /// Any instructions: either refused, or run to an answer on any bytes.
        #[test]
        fn random_programs_never_panic(
            raw in proptest::collection::vec((any::<u16>(), 0u8..4, 0u8..4, 0u32..64), 1..24),
            frame in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let insns: Vec<Insn> = raw.into_iter().map(|(c, jt, jf, k)| insn(c & 0xff, jt, jf, k)).collect();
            if let Ok(p) = Program::new(insns) {
                let _ = p.run(&frame);
            }
        }
    }
}
