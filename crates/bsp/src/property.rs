//! Board-state properties (BSPs): the [`BoardProperty`] trait, families of
//! properties evaluated together ([`PropertyFamily`]), sets of families
//! ([`BspSet`]) with their [`Catalog`], and the labels of many positions as a
//! bit matrix ([`BspLabels`]).
//!
//! # Groups, categories and slots
//!
//! Every property belongs to a **group**, the unit reference 002 averages
//! over and picks a threshold for (one `custom_function` of its code: the
//! Othello board, the chess pieces, "in check", ...). Groups belong to a
//! **category** ("low_level", "high_level", ...) for the aggregate rows of a
//! report. Properties that are mutually exclusive classes of one variable —
//! mine / yours / empty of one Othello square, the piece types of one chess
//! square — share a **slot**; board reconstruction's per-square correction
//! and the linear probes (one multinomial per slot) use it.

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bits::{BitMatrix, BitSink, WORD};
use crate::error::{BspError, Result};

/// One measurable fact of a board: "is one of my knights on f3?", "is the
/// side to move in check?".
pub trait BoardProperty<P>: Send + Sync {
    /// A unique, stable name (`"mine@c4"`, `"in_check"`).
    fn name(&self) -> &str;
    /// The group the property is averaged in (see the module docs).
    fn group(&self) -> &str;
    /// Whether the property holds in `position`.
    fn holds(&self, position: &P) -> bool;
}

/// What a report and a label file need to know about a property.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BspInfo {
    /// Unique name.
    pub name: String,
    /// Group (reference 002's unit of averaging and threshold choice).
    pub group: String,
    /// Category of the group, for aggregate rows.
    pub category: String,
    /// The categorical variable the property is one class of (a square),
    /// `None` for a property that stands alone.
    pub slot: Option<String>,
}

impl BspInfo {
    /// A property description.
    pub fn new(
        name: impl Into<String>,
        group: impl Into<String>,
        category: impl Into<String>,
        slot: Option<String>,
    ) -> BspInfo {
        BspInfo {
            name: name.into(),
            group: group.into(),
            category: category.into(),
            slot,
        }
    }
}

/// Properties evaluated together because they share work (all squares of a
/// board from one bitboard, all high-level chess facts from one move
/// generation). A family has a fixed list of properties and writes all of
/// their values for a position at once.
pub trait PropertyFamily<P>: Send + Sync {
    /// The properties, in the order of their bits.
    fn properties(&self) -> &[BspInfo];

    /// Checks that `position` fits the family (an Othello board of the
    /// family's size, ...). Called once per position before [`evaluate`].
    ///
    /// [`evaluate`]: PropertyFamily::evaluate
    fn check(&self, position: &P) -> Result<()> {
        let _ = position;
        Ok(())
    }

    /// Sets bit `i` of `out` for every property `i` that holds in `position`.
    fn evaluate(&self, position: &P, out: &mut BitSink<'_>);
}

/// A single [`BoardProperty`] as a family of one, for user-defined
/// properties.
pub struct SingleProperty<T> {
    property: T,
    info: [BspInfo; 1],
}

impl<T> SingleProperty<T> {
    /// Wraps `property`, placing its group in `category`.
    pub fn new<P>(property: T, category: impl Into<String>) -> SingleProperty<T>
    where
        T: BoardProperty<P>,
    {
        let info = BspInfo::new(property.name(), property.group(), category, None);
        SingleProperty {
            property,
            info: [info],
        }
    }
}

impl<P, T: BoardProperty<P>> PropertyFamily<P> for SingleProperty<T> {
    fn properties(&self) -> &[BspInfo] {
        &self.info
    }

    fn evaluate(&self, position: &P, out: &mut BitSink<'_>) {
        out.put(0, self.property.holds(position));
    }
}

/// A group of a catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// The group name.
    pub name: String,
    /// Its category.
    pub category: String,
    /// Its properties (indices into the catalog), ascending.
    pub bsps: Vec<usize>,
}

/// A slot (categorical variable) of a catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotInfo {
    /// The slot name.
    pub name: String,
    /// The group of its properties.
    pub group: usize,
    /// Its properties (the classes), ascending.
    pub bsps: Vec<usize>,
}

/// The properties of a [`BspSet`], their groups and slots, by index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    bsps: Vec<BspInfo>,
    groups: Vec<GroupInfo>,
    slots: Vec<SlotInfo>,
    group_of: Vec<usize>,
    slot_of: Vec<Option<usize>>,
}

impl Catalog {
    /// A catalog of `bsps` (in bit order). Names must be unique and a slot
    /// must not span groups.
    pub fn new(bsps: Vec<BspInfo>) -> Result<Catalog> {
        if bsps.is_empty() {
            return Err(BspError::EmptySet);
        }
        let mut names = HashMap::with_capacity(bsps.len());
        let mut group_index: HashMap<&str, usize> = HashMap::new();
        let mut slot_index: HashMap<&str, usize> = HashMap::new();
        let mut groups: Vec<GroupInfo> = Vec::new();
        let mut slots: Vec<SlotInfo> = Vec::new();
        let mut group_of = Vec::with_capacity(bsps.len());
        let mut slot_of = Vec::with_capacity(bsps.len());
        for (i, info) in bsps.iter().enumerate() {
            if names.insert(info.name.as_str(), i).is_some() {
                return Err(BspError::DuplicateName {
                    name: info.name.clone(),
                });
            }
            let g = *group_index.entry(info.group.as_str()).or_insert_with(|| {
                groups.push(GroupInfo {
                    name: info.group.clone(),
                    category: info.category.clone(),
                    bsps: Vec::new(),
                });
                groups.len() - 1
            });
            groups[g].bsps.push(i);
            group_of.push(g);
            let slot = match &info.slot {
                None => None,
                Some(name) => {
                    let s = *slot_index.entry(name.as_str()).or_insert_with(|| {
                        slots.push(SlotInfo {
                            name: name.clone(),
                            group: g,
                            bsps: Vec::new(),
                        });
                        slots.len() - 1
                    });
                    if slots[s].group != g {
                        return Err(BspError::SlotAcrossGroups {
                            slot: name.clone(),
                            first: groups[slots[s].group].name.clone(),
                            second: info.group.clone(),
                        });
                    }
                    slots[s].bsps.push(i);
                    Some(s)
                }
            };
            slot_of.push(slot);
        }
        Ok(Catalog {
            bsps,
            groups,
            slots,
            group_of,
            slot_of,
        })
    }

    /// Number of properties.
    pub fn len(&self) -> usize {
        self.bsps.len()
    }

    /// Whether the catalog is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.bsps.is_empty()
    }

    /// All properties, in bit order.
    pub fn bsps(&self) -> &[BspInfo] {
        &self.bsps
    }

    /// The groups, in order of first appearance.
    pub fn groups(&self) -> &[GroupInfo] {
        &self.groups
    }

    /// The slots, in order of first appearance.
    pub fn slots(&self) -> &[SlotInfo] {
        &self.slots
    }

    /// The group index of property `bsp`.
    pub fn group_of(&self, bsp: usize) -> usize {
        self.group_of[bsp]
    }

    /// The slot index of property `bsp`, if it has one.
    pub fn slot_of(&self, bsp: usize) -> Option<usize> {
        self.slot_of[bsp]
    }

    /// The index of the property called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.bsps.iter().position(|b| b.name == name)
    }

    /// The index of the group called `name`.
    pub fn group_index(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.name == name)
    }
}

/// A set of property families over positions of type `P`, with the catalog
/// of all their properties.
pub struct BspSet<P> {
    families: Vec<Box<dyn PropertyFamily<P>>>,
    offsets: Vec<usize>,
    catalog: Arc<Catalog>,
}

impl<P> std::fmt::Debug for BspSet<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BspSet")
            .field("families", &self.families.len())
            .field("properties", &self.catalog.len())
            .field(
                "groups",
                &self
                    .catalog
                    .groups()
                    .iter()
                    .map(|g| g.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<P: Sync> BspSet<P> {
    /// A set of `families`; fails on duplicate names or an empty set.
    pub fn new(families: Vec<Box<dyn PropertyFamily<P>>>) -> Result<BspSet<P>> {
        let mut offsets = Vec::with_capacity(families.len());
        let mut infos = Vec::new();
        for family in &families {
            offsets.push(infos.len());
            infos.extend_from_slice(family.properties());
        }
        let catalog = Arc::new(Catalog::new(infos)?);
        Ok(BspSet {
            families,
            offsets,
            catalog,
        })
    }

    /// The catalog of the set's properties.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Number of properties.
    pub fn len(&self) -> usize {
        self.catalog.len()
    }

    /// Whether the set is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.catalog.is_empty()
    }

    /// Checks `position` against every family.
    pub fn check(&self, position: &P) -> Result<()> {
        self.families.iter().try_for_each(|f| f.check(position))
    }

    /// Writes the values of all properties for `position` into a cleared
    /// row of `words_per_row` words.
    fn evaluate_row(&self, position: &P, row: &mut [u64]) {
        for (family, &offset) in self.families.iter().zip(&self.offsets) {
            let mut sink = BitSink::new(row, offset, family.properties().len());
            family.evaluate(position, &mut sink);
        }
    }

    /// The values of all properties for one position.
    pub fn evaluate(&self, position: &P) -> Result<Vec<bool>> {
        self.check(position)?;
        let mut row = vec![0u64; self.len().div_ceil(WORD)];
        self.evaluate_row(position, &mut row);
        Ok((0..self.len())
            .map(|i| row[i / WORD] >> (i % WORD) & 1 == 1)
            .collect())
    }

    /// Whether property `index` holds in `position` (evaluates its family).
    pub fn holds(&self, index: usize, position: &P) -> bool {
        let family = self.offsets.partition_point(|&o| o <= index) - 1;
        let len = self.families[family].properties().len();
        let mut row = vec![0u64; len.div_ceil(WORD)];
        let mut sink = BitSink::new(&mut row, 0, len);
        self.families[family].evaluate(position, &mut sink);
        let local = index - self.offsets[family];
        row[local / WORD] >> (local % WORD) & 1 == 1
    }

    /// Property `index` as a [`BoardProperty`], or `None` past the end.
    pub fn property(&self, index: usize) -> Option<SetProperty<'_, P>> {
        (index < self.len()).then_some(SetProperty { set: self, index })
    }

    /// Labels `positions` (one row each) in parallel.
    pub fn label(&self, positions: &[P]) -> Result<BspLabels> {
        positions.par_iter().enumerate().try_for_each(|(i, p)| {
            self.check(p).map_err(|e| match e {
                BspError::Position { what, detail } => BspError::Position {
                    what: format!("{what} (position {i})"),
                    detail,
                },
                other => other,
            })
        })?;
        let mut bits = BitMatrix::zeros(positions.len(), self.len());
        let words_per_row = bits.words_per_row();
        if words_per_row > 0 {
            // Chunks of rows keep the per-task overhead small next to the
            // per-position evaluation.
            const ROWS_PER_TASK: usize = 256;
            bits.words_mut()
                .par_chunks_mut(words_per_row * ROWS_PER_TASK)
                .zip(positions.par_chunks(ROWS_PER_TASK))
                .for_each(|(rows, chunk)| {
                    for (row, position) in rows.chunks_mut(words_per_row).zip(chunk) {
                        self.evaluate_row(position, row);
                    }
                });
        }
        Ok(BspLabels {
            catalog: Arc::clone(&self.catalog),
            bits,
        })
    }
}

/// One property of a [`BspSet`] seen through the [`BoardProperty`] trait.
pub struct SetProperty<'a, P> {
    set: &'a BspSet<P>,
    index: usize,
}

impl<P: Sync> BoardProperty<P> for SetProperty<'_, P> {
    fn name(&self) -> &str {
        &self.set.catalog.bsps()[self.index].name
    }

    fn group(&self) -> &str {
        &self.set.catalog.bsps()[self.index].group
    }

    fn holds(&self, position: &P) -> bool {
        self.set.holds(self.index, position)
    }
}

/// The labels of many positions: which property holds where, as a bit
/// matrix (rows = labelled positions, columns = the catalog's properties).
#[derive(Clone, Debug, PartialEq)]
pub struct BspLabels {
    catalog: Arc<Catalog>,
    bits: BitMatrix,
}

impl BspLabels {
    /// Labels from a catalog and a matrix with one column per property.
    pub fn from_bits(catalog: Arc<Catalog>, bits: BitMatrix) -> Result<BspLabels> {
        if bits.cols() != catalog.len() {
            return Err(BspError::ColumnCount {
                what: "label matrix".into(),
                expected: catalog.len(),
                found: bits.cols(),
            });
        }
        Ok(BspLabels { catalog, bits })
    }

    /// The catalog.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The bit matrix.
    pub fn bits(&self) -> &BitMatrix {
        &self.bits
    }

    /// Number of labelled positions.
    pub fn rows(&self) -> usize {
        self.bits.rows()
    }

    /// Whether property `bsp` holds at row `row`.
    pub fn get(&self, row: usize, bsp: usize) -> bool {
        self.bits.get(row, bsp)
    }

    /// For every property, the rows where it holds.
    pub fn positives(&self) -> Vec<u64> {
        self.bits.column_counts()
    }

    /// The labels of the given rows, in that order.
    pub fn select_rows(&self, rows: &[usize]) -> BspLabels {
        BspLabels {
            catalog: Arc::clone(&self.catalog),
            bits: self.bits.select_rows(rows),
        }
    }

    /// One property's column as a vector of 0.0 / 1.0 (an oracle feature).
    pub fn column_f32(&self, bsp: usize) -> Vec<f32> {
        (0..self.rows())
            .map(|r| if self.get(r, bsp) { 1.0 } else { 0.0 })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Parity;
    impl BoardProperty<u32> for Parity {
        fn name(&self) -> &str {
            "even"
        }
        fn group(&self) -> &str {
            "parity"
        }
        fn holds(&self, position: &u32) -> bool {
            position.is_multiple_of(2)
        }
    }

    struct Digits;
    impl PropertyFamily<u32> for Digits {
        fn properties(&self) -> &[BspInfo] {
            static INFOS: std::sync::OnceLock<Vec<BspInfo>> = std::sync::OnceLock::new();
            INFOS.get_or_init(|| {
                (0..70)
                    .map(|d| {
                        BspInfo::new(format!("mod70={d}"), "mod70", "test", Some("mod70".into()))
                    })
                    .collect()
            })
        }
        fn evaluate(&self, position: &u32, out: &mut BitSink<'_>) {
            out.set((*position % 70) as usize);
        }
    }

    #[test]
    fn families_land_at_their_offsets_and_match_holds() {
        let set = BspSet::new(vec![
            Box::new(SingleProperty::new(Parity, "test")),
            Box::new(Digits),
        ])
        .expect("unique names");
        assert_eq!(set.len(), 71);
        let positions: Vec<u32> = (0..1000).collect();
        let labels = set.label(&positions).expect("labels");
        for (row, &p) in positions.iter().enumerate() {
            assert_eq!(labels.get(row, 0), p % 2 == 0);
            for d in 0..70 {
                assert_eq!(
                    labels.get(row, 1 + d),
                    p % 70 == d as u32,
                    "row {row} digit {d}"
                );
                let property = set.property(1 + d).expect("in range");
                assert_eq!(property.holds(&p), labels.get(row, 1 + d));
            }
        }
        assert_eq!(set.catalog().groups().len(), 2);
        assert_eq!(set.catalog().slots().len(), 1);
        assert_eq!(set.catalog().slots()[0].bsps.len(), 70);
        assert_eq!(labels.positives()[0], 500);
    }

    #[test]
    fn duplicate_names_and_split_slots_are_rejected() {
        let error = BspSet::new(vec![
            Box::new(SingleProperty::new(Parity, "test")) as Box<dyn PropertyFamily<u32>>,
            Box::new(SingleProperty::new(Parity, "test")),
        ])
        .expect_err("duplicate");
        assert!(matches!(error, BspError::DuplicateName { ref name } if name == "even"));
        let error = Catalog::new(vec![
            BspInfo::new("a", "g1", "c", Some("s".into())),
            BspInfo::new("b", "g2", "c", Some("s".into())),
        ])
        .expect_err("slot across groups");
        assert!(
            matches!(error, BspError::SlotAcrossGroups { .. }),
            "{error}"
        );
    }
}
