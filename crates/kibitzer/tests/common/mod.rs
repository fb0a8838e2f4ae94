//! Running the `kibitzer` binary from the integration tests.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;
use std::process::{Command, Output};

pub fn kibitzer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kibitzer"))
        .args(args)
        .output()
        .expect("the kibitzer binary runs")
}

pub fn ok(args: &[&str]) -> String {
    let out = kibitzer(args);
    assert!(
        out.status.success(),
        "kibitzer {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn fails(args: &[&str]) -> String {
    let out = kibitzer(args);
    assert!(
        !out.status.success(),
        "kibitzer {args:?} should have failed"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

pub fn p(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// `kibitzer gpt eval --json` of a model on a games file.
pub fn gpt_eval_json(model: &Path, games: &Path) -> serde_json::Value {
    let out = ok(&[
        "gpt",
        "eval",
        "--model",
        p(model),
        "--games",
        p(games),
        "--json",
    ]);
    serde_json::from_str(&out).expect("gpt eval --json prints JSON")
}

/// The (example, position) of every row of a harvested store: (game,
/// token) for a GPT's store.
pub fn store_refs(store: &kibitzer_store::Store) -> Vec<(i64, i64)> {
    let column = |name: &str| match store.column(name).unwrap() {
        kibitzer_store::ColumnData::I64(v) => v,
        other => panic!("column {name} is {:?}, expected i64", other.dtype()),
    };
    column("example")
        .into_iter()
        .zip(column("position"))
        .collect()
}

/// The (game, token) of every line of a `bsp labels` file.
pub fn label_refs(labels: &Path) -> Vec<(i64, i64)> {
    std::fs::read_to_string(labels)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            (v["game"].as_i64().unwrap(), v["token"].as_i64().unwrap())
        })
        .collect()
}
