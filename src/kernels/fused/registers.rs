//! Registers of a fused kernel, assigned by liveness: a value's register is free again after
//! its last reader, so a chain of any length runs in a few registers.

use super::Instr;

/// Elements of the register file (a per-thread scratch buffer): a kernel with many live values
/// runs shorter blocks.
pub(super) const REG_ELEMS: usize = 4096;

/// Registers of a kernel: one per value (inputs, then instructions), and how many there are.
pub(super) struct Assignment {
    pub slots: Vec<u16>,
    pub n_slots: usize,
}

/// Assign a register to every value. An instruction's destination is taken before its operands
/// are freed, so it never aliases them.
pub(super) fn assign(n_inputs: usize, instrs: &[Instr]) -> Assignment {
    let n_values = n_inputs + instrs.len();
    let mut last = vec![0usize; n_values];
    for (j, ins) in instrs.iter().enumerate() {
        for a in ins.operands() {
            last[a as usize] = j;
        }
    }
    let mut slots = vec![0u16; n_values];
    let mut free: Vec<u16> = Vec::new();
    let mut n_slots = 0usize;
    let mut alloc = |free: &mut Vec<u16>| {
        free.pop().unwrap_or_else(|| {
            n_slots += 1;
            (n_slots - 1) as u16
        })
    };
    for slot in slots.iter_mut().take(n_inputs) {
        *slot = alloc(&mut free);
    }
    for (j, ins) in instrs.iter().enumerate() {
        slots[n_inputs + j] = alloc(&mut free);
        let mut ops = ins.operands();
        ops.sort_unstable();
        ops.dedup();
        for a in ops {
            if last[a as usize] == j {
                free.push(slots[a as usize]);
            }
        }
    }
    Assignment { slots, n_slots }
}

/// Elements per block for a kernel of `n_slots` registers: the register file holds one block
/// per register, and blocks are a multiple of 16 (whole vectors).
pub(super) fn block_len(n_slots: usize) -> usize {
    (REG_ELEMS / n_slots.max(1)).min(super::BLOCK) / 16 * 16
}
