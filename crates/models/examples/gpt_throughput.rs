//! Tokens per second of a GPT forward pass and of activation harvesting
//! (the forward pass stopped right after a site, the rows copied to the
//! host), on the CPU, printed as one JSON object.
//!
//! `cargo run --release -p kibitzer-models --example gpt_throughput -- [n_layers d_model n_heads d_mlp d_vocab n_ctx batch seconds harvest_layer]`
//!
//! Defaults: OthelloGPT (8 layers, d_model 512, 8 heads, d_mlp 2048, 61
//! tokens, n_ctx 59), batches of 32 sequences, about 5 seconds per
//! measurement, harvesting `blocks.5.hook_resid_post`.
//! `scripts/compare_torch.py` runs this beside TransformerLens.

use burn::tensor::{Device, Int, Tensor, TensorData};
use kibitzer_hooks::{HookSite, HookedModel, Hooks};
use kibitzer_models::{Gpt, GptConfig};
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let arg = |i: usize, default: usize| args.get(i).copied().unwrap_or(default);
    let (n_layers, d_model, n_heads, d_mlp, d_vocab, n_ctx) = (
        arg(0, 8),
        arg(1, 512),
        arg(2, 8),
        arg(3, 2048),
        arg(4, 61),
        arg(5, 59),
    );
    let (batch, seconds, harvest_layer) = (arg(6, 32), arg(7, 5), arg(8, 5));
    let device = Device::flex();
    let model = Gpt::new(
        GptConfig::new(n_layers, d_model, n_heads, d_mlp, d_vocab, n_ctx),
        &device,
    )?;
    let tokens: Vec<i64> = (0..batch * n_ctx)
        .map(|i| ((i * 7919) % (d_vocab - 1) + 1) as i64)
        .collect();
    let input = Tensor::<2, Int>::from_data(TensorData::new(tokens, [batch, n_ctx]), &device);
    let site = HookSite::resid_post(harvest_layer.min(n_layers - 1));

    let measure = |f: &mut dyn FnMut()| -> f64 {
        f(); // warm-up
        let start = Instant::now();
        let mut runs = 0usize;
        while start.elapsed().as_secs_f64() < seconds as f64 {
            f();
            runs += 1;
        }
        (runs * batch * n_ctx) as f64 / start.elapsed().as_secs_f64()
    };
    let forward = measure(&mut || {
        let logits = model
            .run_with_hooks(&input, &mut Hooks::new())
            .expect("valid input");
        // Read a reduction of every logit back, so that the whole pass is
        // done on any backend (lazy or asynchronous ones included).
        let _ = logits.sum().into_scalar::<f32>();
    });
    let harvest = measure(&mut || {
        let cache = model.collect(&input, &[site]).expect("the site exists");
        let rows = kibitzer_sae::ops::to_host(cache.get(site).expect("collected").position_rows());
        assert_eq!(rows.len(), batch * n_ctx * d_model);
    });
    println!(
        "{}",
        serde_json::json!({
            "config": {"n_layers": n_layers, "d_model": d_model, "n_heads": n_heads, "d_mlp": d_mlp, "d_vocab": d_vocab, "n_ctx": n_ctx, "batch": batch},
            "harvest_site": site.to_string(),
            "forward_tokens_per_s": forward,
            "harvest_tokens_per_s": harvest,
            "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        })
    );
    Ok(())
}
