//! Filling a sentence template: placeholders, articles, capitals.

use std::collections::HashMap;

/// Stands for "a" or "an" until the word after it is known.
const ARTICLE_MARK: char = '\u{1}';

/// The values of one story's placeholders, by key (`h`, `h.his`, `o.adj`...).
#[derive(Debug, Default)]
pub(crate) struct Ctx {
    values: HashMap<&'static str, String>,
}

impl Ctx {
    pub(crate) fn set(&mut self, key: &'static str, value: impl Into<String>) {
        self.values.insert(key, value.into());
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

/// `a` or `an` for the word that follows, by its sound: `an` before a vowel
/// sound (`an owl`, `an honest girl`), `a` before a consonant sound (`a
/// unicorn`, `a ukulele`, `a one`).
pub fn indefinite_article(next_word: &str) -> &'static str {
    let w = next_word.to_ascii_lowercase();
    const CONSONANT_SOUND: &[&str] = &["uni", "use", "usu", "uku", "ute", "eu", "one", "once"];
    const VOWEL_SOUND: &[&str] = &["hour", "honest", "honor", "heir"];
    if VOWEL_SOUND.iter().any(|p| w.starts_with(p)) {
        return "an";
    }
    if CONSONANT_SOUND.iter().any(|p| w.starts_with(p)) {
        return "a";
    }
    match w.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

/// Renders one sentence: `{key}` takes the context's value (a key the
/// context lacks is left as `{key}`, which the tests look for), `{a}` the
/// article the next word needs; then the sentence's first letter and the
/// first letter inside each opening quotation mark are capitalised.
pub(crate) fn render(template: &str, ctx: &Ctx) -> String {
    let mut out = String::with_capacity(template.len() + 48);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let key = &after[..close];
        if key == "a" {
            out.push(ARTICLE_MARK);
        } else if let Some(value) = ctx.get(key) {
            out.push_str(value);
        } else {
            out.push('{');
            out.push_str(key);
            out.push('}');
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    let out = resolve_articles(&out);
    capitalise(&out)
}

fn resolve_articles(text: &str) -> String {
    if !text.contains(ARTICLE_MARK) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for (i, c) in text.char_indices() {
        if c == ARTICLE_MARK {
            let next: String = text[i + c.len_utf8()..]
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphabetic())
                .collect();
            out.push_str(indefinite_article(&next));
        } else {
            out.push(c);
        }
    }
    out
}

fn capitalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // Capitalise the next letter: at the start, and after an opening quote.
    let mut pending = true;
    let mut inside_quote = false;
    for c in text.chars() {
        if c == '"' {
            inside_quote = !inside_quote;
            if inside_quote {
                pending = true;
            }
            out.push(c);
        } else if pending && c.is_alphabetic() {
            out.extend(c.to_uppercase());
            pending = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn articles_follow_the_sound() {
        for (word, want) in [
            ("owl", "an"),
            ("elephant", "an"),
            ("unicorn", "a"),
            ("ukulele", "a"),
            ("umbrella", "an"),
            ("honest", "an"),
            ("happy", "a"),
            ("Ice", "an"),
            ("dog", "a"),
        ] {
            assert_eq!(indefinite_article(word), want, "{word}");
        }
    }

    #[test]
    fn render_fills_articles_and_capitals() {
        let mut ctx = Ctx::default();
        ctx.set("h", "Lily");
        ctx.set("h.he", "she");
        ctx.set("x", "owl");
        let s = render(
            "{h.he} saw {a} {x}, and {h} said, \"{h.he} is {a} big one!\"",
            &ctx,
        );
        assert_eq!(s, "She saw an owl, and Lily said, \"She is a big one!\"");
        let s = render("{h.he} met {a} {missing}.", &ctx);
        assert_eq!(s, "She met a {missing}.");
    }
}
