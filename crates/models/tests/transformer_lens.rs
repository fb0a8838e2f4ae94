//! TransformerLens fixtures (written by fixtures/make_transformer_lens_fixture.py
//! from a random `HookedTransformer`): the weights load, and the logits and
//! cached activations match TransformerLens's within 1e-4.
#![cfg(feature = "flex")]

use burn::tensor::{Device, Int, Tensor, TensorData};
use kibitzer_hooks::{HookSite, HookedModel};
use kibitzer_models::Gpt;
use kibitzer_sae::io::read_f32_safetensors;
use std::path::PathBuf;

/// Every fixture directory (one with a `model.safetensors`). The fixtures
/// are committed with the crate, so a missing folder or an empty one fails
/// the test rather than letting it pass having checked nothing.
fn fixture_dirs() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/transformer_lens");
    let entries = std::fs::read_dir(&root).unwrap_or_else(|e| {
        panic!(
            "no TransformerLens fixtures at {}: {e} (they are committed with the crate; \
             fixtures/make_transformer_lens_fixture.py writes them again)",
            root.display()
        )
    });
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.safetensors").exists())
        .collect();
    dirs.sort();
    assert!(
        !dirs.is_empty(),
        "{} holds no fixture (a folder with model.safetensors): \
         run fixtures/make_transformer_lens_fixture.py",
        root.display()
    );
    dirs
}

#[test]
fn transformer_lens_weights_reproduce_its_logits_and_cache() {
    let device = Device::flex();
    let dirs = fixture_dirs();
    for dir in &dirs {
        let model =
            Gpt::load_dir(dir, &device).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let bytes = std::fs::read(dir.join("activations.safetensors")).unwrap();
        let (tensors, _) = read_f32_safetensors(&bytes).unwrap();
        let get = |name: &str| {
            tensors
                .iter()
                .find(|t| t.name == name)
                .unwrap_or_else(|| panic!("{}: no {name}", dir.display()))
        };
        let tokens = get("tokens");
        let ids: Vec<i64> = tokens.data.iter().map(|&t| t as i64).collect();
        let input = Tensor::<2, Int>::from_data(
            TensorData::new(ids, [tokens.shape[0], tokens.shape[1]]),
            &device,
        );
        let sites: Vec<HookSite> = tensors
            .iter()
            .filter(|t| t.name != "tokens" && t.name != "logits")
            .map(|t| t.name.parse().unwrap_or_else(|e| panic!("{e}")))
            .collect();
        assert!(
            sites.len() >= 10,
            "{}: the fixture caches {} sites",
            dir.display(),
            sites.len()
        );
        let (logits, cache) = model.run_with_cache(&input, &sites).unwrap();
        let worst = std::cell::Cell::new(0f32);
        let compare = |name: &str, ours: Vec<f32>, shape: Vec<usize>| {
            let theirs = get(name);
            assert_eq!(shape, theirs.shape, "{}: {name} shape", dir.display());
            let diff = ours
                .iter()
                .zip(&theirs.data)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                diff < 1e-4,
                "{}: {name} differs from TransformerLens by {diff}",
                dir.display()
            );
            worst.set(worst.get().max(diff));
        };
        compare(
            "logits",
            logits.to_data().convert::<f32>().try_into_vec().unwrap(),
            logits.dims().to_vec(),
        );
        for site in sites {
            let act = cache.get(site).unwrap();
            compare(&site.to_string(), act.to_host(), act.shape().to_vec());
        }
        eprintln!(
            "{}: logits and {} cached sites within {:e} of TransformerLens",
            dir.display(),
            cache.len(),
            worst.get()
        );
        // And back out: saving and reloading changes nothing.
        let out = tempfile::tempdir().unwrap();
        model.save_transformer_lens(out.path()).unwrap();
        let again = Gpt::load_dir(out.path(), &device).unwrap();
        let host = |t: Tensor<3>| t.to_data().convert::<f32>().try_into_vec::<f32>().unwrap();
        assert_eq!(
            host(again.forward(&input).unwrap()),
            host(model.forward(&input).unwrap())
        );
    }
    eprintln!("checked {} TransformerLens fixtures", dirs.len());
}
