//! One progress-bar style for every long job, on stderr: elapsed time, a
//! bar, the count, the rate, the time left and a message.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar over `total` items of which `done` are done (a resumed job starts
/// part-way; the rate counts only this run's items), counting `unit`s
/// (`"steps"`, `"games"`). Hidden when `show` is false, so callers need no
/// second code path.
pub fn bar(show: bool, total: u64, done: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), target(show));
    bar.set_style(style(&format!(
        "{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{per_sec}}, {{eta}} left) {{msg}}"
    )));
    bar.set_position(done.min(total));
    bar.reset_eta();
    bar
}

/// A count of `unit`s without a known end (rows harvested until a source
/// runs dry), with its rate; hidden unless `show`.
pub fn counter(show: bool, unit: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, target(show));
    bar.set_style(style(&format!(
        "{{spinner}} {{elapsed_precise}} {{human_pos}} {unit} ({{per_sec}}) {{msg}}"
    )));
    bar
}

fn target(show: bool) -> ProgressDrawTarget {
    if show {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("the templates are fixed, valid indicatif templates")
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bar_starts_where_the_job_is() {
        let b = super::bar(false, 10, 4, "steps");
        assert_eq!((b.position(), b.length()), (4, Some(10)));
        assert!(b.is_hidden());
        assert_eq!(super::bar(false, 3, 9, "steps").position(), 3);
        let c = super::counter(false, "rows");
        c.inc(5);
        assert_eq!((c.position(), c.length()), (5, None));
    }
}
