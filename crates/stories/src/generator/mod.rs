//! The seeded story generator.
//!
//! A story is a hero (a child or an animal, he or she), a friend, a grown-up
//! of the hero's family, a place and a thing; one of fourteen kinds of
//! trouble (a lost or broken thing, not sharing, fear, a stuck animal, rain,
//! a spill, a hungry animal, getting lost, a race, something out of reach,
//! waiting for a seed, unkind words, someone left out) with its resolution
//! and moral. Sentences come from templates ([`TEMPLATE_COUNT`] of them),
//! optional ones are drawn in and out, descriptions are shuffled, and the
//! story is lengthened or shortened until it has [`MIN_WORDS`] to
//! [`MAX_WORDS`] words.

mod render;
mod templates;
mod vocab;

use std::collections::HashSet;
use std::ops::Range;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use render::indefinite_article;
use render::{Ctx, render};
use templates::*;
use vocab::*;

/// The fewest words a story has.
pub const MIN_WORDS: usize = 80;
/// The most words a story has.
pub const MAX_WORDS: usize = 200;

/// Number of sentence templates across all story parts (conflict sentences
/// counted one by one).
pub const TEMPLATE_COUNT: usize = {
    let mut n = OPENINGS.len()
        + DESCRIPTIONS.len()
        + SETTINGS.len()
        + SCENES.len()
        + FRIENDS.len()
        + PLAYS.len()
        + AFTERS.len()
        + LESSON_LEADS.len()
        + ENDINGS.len()
        + FILLERS.len();
    let mut c = 0;
    while c < CONFLICTS.len() {
        let k = &CONFLICTS[c];
        n += k.reactions.len() + k.morals.len();
        let mut i = 0;
        while i < k.problems.len() {
            n += k.problems[i].len();
            i += 1;
        }
        i = 0;
        while i < k.resolutions.len() {
            n += k.resolutions[i].len();
            i += 1;
        }
        c += 1;
    }
    n
};

/// Makes children's stories in the TinyStories register from a seed.
///
/// [`story`](Self::story)`(index)` depends on `(seed, index)` alone: a
/// ChaCha8 generator seeded with `seed` is moved to stream `index`, so any
/// story can be made on its own, in any order, on any thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoryGenerator {
    seed: u64,
}

/// Where a sentence stands in the plan, and how readily it is dropped when a
/// story is too long (lower goes first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Scene,
    Play,
    Filler,
    Description,
    After,
    Lead,
    Ending,
    Reaction,
    Required,
}

impl StoryGenerator {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> StoryGenerator {
        StoryGenerator { seed }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Story `index`: its sentences joined by single spaces, on one line.
    pub fn story(&self, index: u64) -> String {
        self.sentences(index).join(" ")
    }

    /// Stories `range.start..range.end`, in order.
    pub fn stories(&self, range: Range<u64>) -> Vec<String> {
        range.map(|i| self.story(i)).collect()
    }

    /// The sentences of story `index`. Each starts with a capital letter or
    /// an opening quotation mark followed by one, and ends with `.`, `!` or
    /// `?` (then a closing quotation mark when it ends in speech). The first
    /// introduces the hero and holds no quotation.
    pub fn sentences(&self, index: u64) -> Vec<String> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(index);
        let mut ctx = cast(&mut rng);
        let conflict = &CONFLICTS[rng.random_range(0..CONFLICTS.len())];

        let mut plan: Vec<(Part, &'static str)> = Vec::with_capacity(24);
        let opening = pick(&mut rng, OPENINGS);
        plan.push((Part::Required, opening));
        // Descriptions that would repeat what the opening said are left out.
        let descriptions: Vec<&'static str> = DESCRIPTIONS
            .iter()
            .copied()
            .filter(|d| {
                !["{o}", "{home}", "{act}"]
                    .iter()
                    .any(|k| opening.contains(k) && d.contains(k))
            })
            .collect();
        let n_desc = rng.random_range(0..=3usize);
        for t in pick_distinct(&mut rng, &descriptions, n_desc) {
            plan.push((Part::Description, t));
        }
        plan.push((Part::Required, pick(&mut rng, SETTINGS)));
        let n_scene = rng.random_range(0..=2usize);
        let scenes = pick_distinct(&mut rng, SCENES, n_scene);
        let scenes_first = rng.random_bool(0.5);
        if scenes_first {
            plan.extend(scenes.iter().map(|&t| (Part::Scene, t)));
        }
        plan.push((Part::Required, pick(&mut rng, FRIENDS)));
        if !scenes_first {
            plan.extend(scenes.iter().map(|&t| (Part::Scene, t)));
        }
        let n_play = rng.random_range(0..=2usize);
        for t in pick_distinct(&mut rng, PLAYS, n_play) {
            plan.push((Part::Play, t));
        }
        let filler_at = plan.len();
        for &t in pick(&mut rng, conflict.problems).iter() {
            plan.push((Part::Required, t));
        }
        if rng.random_bool(0.75) {
            plan.push((Part::Reaction, pick(&mut rng, conflict.reactions)));
        }
        for &t in pick(&mut rng, conflict.resolutions).iter() {
            plan.push((Part::Required, t));
        }
        let n_after = rng.random_range(0..=2usize);
        for t in pick_distinct(&mut rng, AFTERS, n_after) {
            plan.push((Part::After, t));
        }
        if rng.random_bool(0.3) {
            plan.push((Part::Lead, pick(&mut rng, LESSON_LEADS)));
        }
        plan.push((Part::Required, pick(&mut rng, conflict.morals)));
        if rng.random_bool(0.6) {
            plan.push((Part::Ending, pick(&mut rng, ENDINGS)));
        }
        let fillers = pick_distinct(&mut rng, FILLERS, FILLERS.len());

        let mut sentences: Vec<(Part, String)> = Vec::with_capacity(plan.len() + FILLERS.len());
        sentences.push((Part::Required, render(opening, &ctx)));
        // A time named in the opening is not named again.
        if opening.contains("{time}") {
            ctx.set("time", pick(&mut rng, LATER_TIMES));
        }
        sentences.extend(plan[1..].iter().map(|&(part, t)| (part, render(t, &ctx))));
        let count = |s: &[(Part, String)]| -> usize {
            s.iter().map(|(_, t)| t.split_whitespace().count()).sum()
        };
        let mut fillers = fillers.into_iter();
        let mut at = filler_at;
        while count(&sentences) < MIN_WORDS {
            let Some(t) = fillers.next() else { break };
            sentences.insert(at, (Part::Filler, render(t, &ctx)));
            at += 1;
        }
        while count(&sentences) > MAX_WORDS {
            let lowest = sentences
                .iter()
                .enumerate()
                .filter(|(_, (p, _))| *p != Part::Required)
                .min_by_key(|(i, (p, _))| (*p, std::cmp::Reverse(*i)))
                .map(|(i, _)| i);
            match lowest {
                Some(i) => {
                    sentences.remove(i);
                }
                None => break,
            }
        }
        sentences.into_iter().map(|(_, s)| s).collect()
    }
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

/// `n` different items, in a random order.
fn pick_distinct<T: Copy>(rng: &mut ChaCha8Rng, items: &[T], n: usize) -> Vec<T> {
    let mut idx: Vec<usize> = (0..items.len()).collect();
    let n = n.min(items.len());
    for i in 0..n {
        let j = rng.random_range(i..idx.len());
        idx.swap(i, j);
    }
    idx[..n].iter().map(|&i| items[i]).collect()
}

struct Pronouns {
    he: &'static str,
    him: &'static str,
    his: &'static str,
    self_: &'static str,
}

const HE: Pronouns = Pronouns {
    he: "he",
    him: "him",
    his: "his",
    self_: "himself",
};
const SHE: Pronouns = Pronouns {
    he: "she",
    him: "her",
    his: "her",
    self_: "herself",
};

/// Adjectives that suit an animal but not a child.
const ANIMAL_ONLY_ADJ: &[&str] = &["fluffy", "fuzzy", "spotted", "striped", "old"];

/// Draws a character into `ctx` under `role` (`h` or `f`); returns its name.
fn character(rng: &mut ChaCha8Rng, ctx: &mut Ctx, role: Role, avoid: Option<&str>) -> String {
    let female = rng.random_bool(0.5);
    let names = if female { GIRL_NAMES } else { BOY_NAMES };
    let name = loop {
        let n = pick(rng, names);
        if Some(n) != avoid {
            break n;
        }
    };
    let animal = rng.random_bool(0.4);
    let kind = if animal {
        pick(rng, ANIMALS)
    } else if female {
        "girl"
    } else {
        "boy"
    };
    let adj = loop {
        let a = pick(rng, CHARACTER_ADJ);
        if animal || !ANIMAL_ONLY_ADJ.contains(&a) {
            break a;
        }
    };
    let p = if female { &SHE } else { &HE };
    let k = role.keys();
    ctx.set(k[0], name);
    ctx.set(k[1], kind);
    ctx.set(k[2], adj);
    ctx.set(k[3], p.he);
    ctx.set(k[4], p.him);
    ctx.set(k[5], p.his);
    ctx.set(k[6], p.self_);
    name.to_string()
}

#[derive(Clone, Copy)]
enum Role {
    Hero,
    Friend,
}

impl Role {
    fn keys(self) -> [&'static str; 7] {
        match self {
            Role::Hero => ["h", "h.kind", "h.adj", "h.he", "h.him", "h.his", "h.self"],
            Role::Friend => ["f", "f.kind", "f.adj", "f.he", "f.him", "f.his", "f.self"],
        }
    }
}

/// Draws every placeholder's value for one story.
fn cast(rng: &mut ChaCha8Rng) -> Ctx {
    let mut ctx = Ctx::default();
    let hero = character(rng, &mut ctx, Role::Hero, None);
    character(rng, &mut ctx, Role::Friend, Some(&hero));
    let his = ctx.get("h.his").unwrap_or("their").to_string();

    let fam = pick(rng, FAMILY);
    let fp = if fam.female { &SHE } else { &HE };
    ctx.set("m", format!("{his} {}", fam.kind));
    ctx.set("m.kind", fam.kind);
    ctx.set("m.call", fam.call);
    ctx.set("m.he", fp.he);
    ctx.set("m.him", fp.him);
    ctx.set("m.his", fp.his);

    let objects = pick_distinct(rng, OBJECTS, 2);
    ctx.set("o", objects[0]);
    ctx.set("o2", objects[1]);
    ctx.set("o.adj", pick(rng, OBJECT_ADJ));

    let place = pick(rng, PLACES);
    ctx.set("p.the", format!("the {}", place.noun));
    ctx.set("p.in", format!("{} the {}", place.prep, place.noun));
    ctx.set("p.to", format!("to the {}", place.noun));

    let acts = pick_distinct(rng, ACTIVITIES, 2);
    for (act, keys) in acts.iter().zip([
        ["act", "act.ed", "act.ing"],
        ["act2", "act2.ed", "act2.ing"],
    ]) {
        ctx.set(keys[0], act.base);
        ctx.set(keys[1], act.past);
        ctx.set(keys[2], act.ing);
    }
    let indoor = pick(rng, INDOOR);
    ctx.set("indoor", indoor.base);
    ctx.set("indoor.ed", indoor.past);

    let time_adj = pick(rng, TIME_ADJ);
    let daypart = pick(rng, DAY_PARTS);
    let season = pick(rng, SEASONS);
    let weekday = pick(rng, WEEKDAYS);
    let time = match rng.random_range(0..6u32) {
        0 => format!("One {time_adj} {daypart}"),
        1 => format!("One {season} {daypart}"),
        2 => format!("Early one {time_adj} morning"),
        3 => format!("One {weekday} {daypart}"),
        4 => "One day".to_string(),
        _ => format!(
            "On {} {time_adj} {season} {daypart}",
            indefinite_article(time_adj)
        ),
    };
    ctx.set("time", time);
    ctx.set("daypart", pick(rng, DAY_PARTS));
    ctx.set("season", season);
    ctx.set("weekday", weekday);
    ctx.set("weather", pick(rng, WEATHER_ADJ));

    let spots = pick_distinct(rng, HIDING_SPOTS, 2);
    ctx.set("spot", spots[0]);
    ctx.set("spot2", spots[1]);
    let (spill, container) = pick(rng, SPILLS);
    ctx.set("spill", spill);
    ctx.set("spill.box", container);

    let simple: [(&'static str, &'static [&'static str]); 45] = [
        ("town", TOWNS),
        ("town.adj", TOWN_ADJ),
        ("home", HOMES),
        ("color", COLORS),
        ("food", FOODS),
        ("meal", MEALS),
        ("dream", DREAMS),
        ("job", JOBS),
        ("sky", SKIES),
        ("smell", SMELLS),
        ("songbird", SONGBIRDS),
        ("far_sound", FAR_SOUNDS),
        ("scene.adj", SCENE_ADJ),
        ("adv", ADVERBS),
        ("crowd", CROWDS),
        ("game", GAMES),
        ("build", BUILDS),
        ("build.adj", BUILD_ADJ),
        ("material", MATERIALS),
        ("role", PRETEND_ROLES),
        ("pretend_place", PRETEND_PLACES),
        ("feel", GOOD_FEELINGS),
        ("sad", BAD_FEELINGS),
        ("scared", SCARED),
        ("crash", CRASH_SOUNDS),
        ("fix", FIXES),
        ("fear", FEAR_ACTS),
        ("pet", SMALL_CREATURES),
        ("stuck", STUCK_PLACES),
        ("tool", TOOLS),
        ("plan", PLANS),
        ("rain_gear", RAIN_GEAR),
        ("cloth", CLOTHS),
        ("cleaner", CLEANERS),
        ("creature", HUNGRY_CREATURES),
        ("sight", SIGHTS),
        ("sight.adj", SIGHT_ADJ),
        ("helper", HELPERS),
        ("finish", FINISH_LINES),
        ("body", BODY_PARTS),
        ("high", HIGH_PLACES),
        ("stool", STOOLS),
        ("plant", PLANTS),
        ("picture", ANIMALS),
        ("skill", SKILLS),
    ];
    for (key, list) in simple {
        ctx.set(key, pick(rng, list));
    }
    ctx
}

/// A type/token summary of a set of texts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TextStats {
    /// Number of texts.
    pub texts: usize,
    /// Words over all texts (tokens, in the linguist's sense).
    pub words: usize,
    /// Distinct words (types), after [`words`] folds case.
    pub distinct_words: usize,
    /// Mean words per text.
    pub mean_words: f64,
    /// Fewest words in one text.
    pub min_words: usize,
    /// Most words in one text.
    pub max_words: usize,
}

impl TextStats {
    /// Types over tokens.
    pub fn type_token_ratio(&self) -> f64 {
        if self.words == 0 {
            0.0
        } else {
            self.distinct_words as f64 / self.words as f64
        }
    }
}

/// The words of `text`, lower-cased: maximal runs of letters and inner
/// apostrophes, a final possessive `'s` dropped (`Lily's` is `lily`,
/// `don't` stays `don't`).
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphabetic() || c == '\''))
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty())
        .map(|w| {
            let w = w.to_lowercase();
            match w.strip_suffix("'s") {
                Some(stem) if !stem.is_empty() => stem.to_string(),
                _ => w,
            }
        })
}

/// Counts words and distinct words over `texts` (see [`words`]).
pub fn text_stats<S: AsRef<str>>(texts: &[S]) -> TextStats {
    let mut types: HashSet<String> = HashSet::new();
    let (mut total, mut min, mut max) = (0usize, usize::MAX, 0usize);
    for t in texts {
        let mut n = 0;
        for w in words(t.as_ref()) {
            n += 1;
            if !types.contains(&w) {
                types.insert(w);
            }
        }
        total += n;
        min = min.min(n);
        max = max.max(n);
    }
    TextStats {
        texts: texts.len(),
        words: total,
        distinct_words: types.len(),
        mean_words: if texts.is_empty() {
            0.0
        } else {
            total as f64 / texts.len() as f64
        },
        min_words: if texts.is_empty() { 0 } else { min },
        max_words: max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_ctx() -> Ctx {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        cast(&mut rng)
    }

    /// Every template renders with no placeholder left over.
    #[test]
    fn every_template_has_its_keys() {
        let ctx = full_ctx();
        let mut all: Vec<&str> = Vec::new();
        for list in [
            OPENINGS,
            DESCRIPTIONS,
            SETTINGS,
            SCENES,
            FRIENDS,
            PLAYS,
            AFTERS,
            LESSON_LEADS,
            ENDINGS,
            FILLERS,
        ] {
            all.extend_from_slice(list);
        }
        for c in CONFLICTS {
            all.extend_from_slice(c.reactions);
            all.extend_from_slice(c.morals);
            for p in c.problems.iter().chain(c.resolutions.iter()) {
                all.extend_from_slice(p);
            }
        }
        assert_eq!(all.len(), TEMPLATE_COUNT);
        const { assert!(TEMPLATE_COUNT >= 40) };
        for t in all {
            let s = render(t, &ctx);
            assert!(!s.contains('{') && !s.contains('}'), "{t:?} -> {s:?}");
            assert!(
                s.ends_with('.')
                    || s.ends_with('!')
                    || s.ends_with('?')
                    || s.ends_with(".\"")
                    || s.ends_with("!\"")
                    || s.ends_with("?\""),
                "{t:?} -> {s:?}"
            );
        }
    }

    #[test]
    fn openings_are_one_plain_sentence() {
        let ctx = full_ctx();
        for t in OPENINGS {
            let s = render(t, &ctx);
            assert!(!s.contains('"'), "{s}");
            let body = &s[..s.len() - 1];
            assert!(!body.contains(['.', '!', '?']), "{s}");
        }
    }

    #[test]
    fn he_she_pronouns_agree() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for _ in 0..200 {
            let mut ctx = Ctx::default();
            character(&mut rng, &mut ctx, Role::Hero, None);
            let name = ctx.get("h").unwrap().to_string();
            let girl = GIRL_NAMES.contains(&name.as_str());
            let want = if girl {
                ["she", "her", "her", "herself"]
            } else {
                ["he", "him", "his", "himself"]
            };
            let got = ["h.he", "h.him", "h.his", "h.self"].map(|k| ctx.get(k).unwrap().to_string());
            assert_eq!(got, want.map(String::from), "{name}");
        }
    }
}
