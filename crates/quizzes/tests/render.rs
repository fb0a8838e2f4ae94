//! SVG and HTML rendering.

use kibitzer_quizzes::render::{PALETTE, colour_hex, quiz_svg, quizzes_html};
use kibitzer_quizzes::{QuizGenerator, TaskKind};

/// Checks that tags nest: every opened element is closed in order.
fn well_formed(xml: &str) -> Result<usize, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut elements = 0;
    let mut rest = xml;
    while let Some(i) = rest.find('<') {
        let after = &rest[i + 1..];
        let j = after.find('>').ok_or("unclosed tag")?;
        let tag = &after[..j];
        rest = &after[j + 1..];
        if tag.starts_with('!') || tag.starts_with('?') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or(format!("</{name}> closes nothing"))?;
            if open != name.trim() {
                return Err(format!("<{open}> closed by </{name}>"));
            }
        } else {
            elements += 1;
            let name = tag
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_end_matches('/')
                .to_string();
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        if tag.contains('<') {
            return Err(format!("`<` inside a tag: {tag}"));
        }
    }
    if stack.is_empty() {
        Ok(elements)
    } else {
        Err(format!("unclosed: {stack:?}"))
    }
}

#[test]
fn svg_has_four_or_five_grids() {
    for size in [8, 10, 16] {
        let q = QuizGenerator::new(size, &TaskKind::ALL, 2).unwrap().quiz(3);
        let svg = quiz_svg(&q, None);
        well_formed(&svg).unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert_eq!(svg.matches("<g class=\"grid\"").count(), 4);
        assert_eq!(svg.matches("<rect").count(), 4 * (size * size + 1));
        for label in [">A<", ">f(A)<", ">B<", ">f(B)<"] {
            assert!(svg.contains(label), "{label}");
        }
        assert!(svg.contains(&format!(">{}</text>", q.task.name())));

        // A written answer with three wrong cells.
        let mut w = q.answer().clone();
        for c in 0..3 {
            w.set(1, c, (w.get(1, c) + 1) % 11);
        }
        let svg = quiz_svg(&q, Some(&w));
        well_formed(&svg).unwrap();
        assert_eq!(svg.matches("<g class=\"grid\"").count(), 5);
        assert_eq!(svg.matches("class=\"wrong\"").count(), 3);
        assert_eq!(svg.matches("<rect").count(), 5 * (size * size + 1) + 3);
        assert!(svg.contains("written (3 wrong)"));
        let svg = quiz_svg(&q, Some(q.answer()));
        assert!(svg.contains("written (correct)") && !svg.contains("class=\"wrong\""));
    }
}

#[test]
fn svg_colours_are_culture_s() {
    assert_eq!(colour_hex(0), "#ffffff");
    assert_eq!(colour_hex(1), "#ff0000");
    assert_eq!(colour_hex(2), "#00c000");
    assert_eq!(colour_hex(10), "#808080");
    assert_eq!(PALETTE.len(), 11);
    let q = QuizGenerator::new(10, &[TaskKind::HalfFill], 2)
        .unwrap()
        .quiz(0);
    let svg = quiz_svg(&q, None);
    for c in q.grids[0].colours() {
        assert!(svg.contains(&format!("fill=\"{}\"", colour_hex(c))));
    }
}

#[test]
fn html_escapes_and_holds_every_quiz() {
    let g = QuizGenerator::new(10, &TaskKind::ALL, 4).unwrap();
    let items: Vec<_> = (0..6)
        .map(|i| {
            let q = g.quiz(i);
            let w = (i % 2 == 0).then(|| q.grids[2].clone());
            (q, w)
        })
        .collect();
    let title = "<script>alert('x')</script> & \"quizzes\"";
    let html = quizzes_html(&items, title);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<script>"));
    assert!(
        html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quizzes&quot;")
    );
    assert_eq!(html.matches("<svg").count(), 6);
    assert_eq!(html.matches("<figure>").count(), 6);
    assert_eq!(
        html.matches("class=\"bad\"").count(),
        3,
        "B written as f(B) is wrong"
    );
    assert!(
        !html.contains("http://") || html.matches("http://").count() == 6,
        "only the SVG namespaces"
    );
    well_formed(html.trim_start_matches("<!DOCTYPE html>")).unwrap();
}
