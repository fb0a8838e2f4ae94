//! Word lists the story templates draw from.
//!
//! Every entry is written out in full (no morphology is derived at run time):
//! verb phrases carry their base, past and `-ing` forms, places their
//! preposition, spills their container. Articles are never stored in front of
//! a sampled word; the renderer chooses `a` or `an` from the word that
//! follows (see [`super::render::indefinite_article`]).

/// A verb phrase in the three forms the templates use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Act {
    /// After "loved to", "wanted to": `fly kites`.
    pub base: &'static str,
    /// Narrative past: `flew kites`.
    pub past: &'static str,
    /// After "was": `flying kites`.
    pub ing: &'static str,
}

const fn act(base: &'static str, past: &'static str, ing: &'static str) -> Act {
    Act { base, past, ing }
}

/// A place and the preposition it takes ("at the park", "in the forest").
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place {
    pub noun: &'static str,
    pub prep: &'static str,
}

const fn place(noun: &'static str, prep: &'static str) -> Place {
    Place { noun, prep }
}

/// A grown-up of the hero's family.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Family {
    /// "her {kind}": `mom`.
    pub kind: &'static str,
    /// How the hero calls them: `Mom`.
    pub call: &'static str,
    pub female: bool,
}

const fn fam(kind: &'static str, call: &'static str, female: bool) -> Family {
    Family { kind, call, female }
}

mod characters;
mod scenes;
mod world;

pub(crate) use characters::*;
pub(crate) use scenes::*;
pub(crate) use world::*;
