//! Record member names to column positions: a collision-free hash table of the column names.

use super::*;

/// The column named `name`: one slot of a table without collisions among the column names,
/// then one comparison (a record has about twenty members, each looked up once).
pub(super) fn column_position(name: &str) -> Option<usize> {
    static TABLE: std::sync::OnceLock<NameTable> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| NameTable::new(COLUMNS.iter().map(|c| c.name)));
    table
        .get(name)
        .filter(|&i| same_name(COLUMNS[i].name.as_bytes(), name.as_bytes()))
}

/// Names to their positions by a hash of their length and five of their bytes, with the
/// first multiplier under which no two names share a slot.
pub(super) struct NameTable {
    multiplier: u32,
    slots: [u8; 256],
}

impl NameTable {
    const EMPTY: u8 = u8::MAX;

    fn slot(multiplier: u32, name: &str) -> usize {
        let b = name.as_bytes();
        let Some(&last) = b.last() else {
            return 0;
        };
        let mut h = b.len() as u32;
        let n = b.len();
        for byte in [b[0], b[n / 2], b[n * 3 / 4], b[n.saturating_sub(2)], last] {
            h = h.wrapping_mul(multiplier).wrapping_add(u32::from(byte));
        }
        ((h ^ (h >> 8)) & 0xff) as usize
    }

    fn new<'n>(names: impl Iterator<Item = &'n str> + Clone) -> Self {
        'multipliers: for multiplier in (1..10_000).map(|k| 2 * k + 1) {
            let mut slots = [Self::EMPTY; 256];
            for (i, name) in names.clone().enumerate() {
                let slot = &mut slots[Self::slot(multiplier, name)];
                if *slot != Self::EMPTY {
                    continue 'multipliers;
                }
                *slot = u8::try_from(i).expect("fewer than 255 names");
            }
            return NameTable { multiplier, slots };
        }
        unreachable!("a multiplier without collisions exists for the column names")
    }

    /// The position of the only name that may be `name` (the caller compares).
    fn get(&self, name: &str) -> Option<usize> {
        let i = self.slots[Self::slot(self.multiplier, name)];
        (i != Self::EMPTY).then_some(usize::from(i))
    }
}
