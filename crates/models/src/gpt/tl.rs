//! TransformerLens state dicts in safetensors: the weights of a
//! `HookedTransformer` exported from Python open here, and a model trained
//! here opens in Python (`model.load_state_dict(safetensors.torch.load_file(...))`).

use super::{Gpt, GptConfig, Positional};
use crate::error::ModelError;
use crate::params::{Parameterized, TensorFile, read_json, write_json, write_tensors};
use crate::transformer::TlLayout;
use burn::tensor::{Device, Tensor, TensorData};
use kibitzer_sae::io::HostTensor;
use kibitzer_sae::ops::to_host;
use std::path::Path;

/// File name of the weights in a saved model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// File name of the config in a saved model directory.
pub const CONFIG_FILE: &str = "config.json";

/// TransformerLens buffers that are not weights (the causal mask, the
/// masking constant) and may appear in a state dict.
fn is_tl_buffer(name: &str) -> bool {
    name.ends_with(".attn.mask")
        || name.ends_with(".attn.IGNORE")
        || name.ends_with(".attn.rotary_sin")
        || name.ends_with(".attn.rotary_cos")
}

fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("blocks.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

impl Gpt {
    /// Loads TransformerLens weights (`embed.W_E`, `pos_embed.W_pos`,
    /// `blocks.{l}.attn.W_Q` as `[n_heads, d_model, d_head]`, ...) from a
    /// safetensors file for a model of shape `config`. Every tensor the
    /// config needs must be there with the right shape, and every tensor
    /// there must be one the config needs (apart from TransformerLens's
    /// attention buffers); otherwise the error names the tensor.
    pub fn load_transformer_lens(
        config: GptConfig,
        weights: impl AsRef<Path>,
        device: &Device,
    ) -> Result<Gpt, ModelError> {
        let path = weights.as_ref();
        let mut file = TensorFile::open(path)?;
        let template = Gpt::new(
            GptConfig {
                seed: Some(0),
                ..config.clone()
            },
            device,
        )?;
        let n_layers = config.n_layers;
        let hint = |name: &str| -> String {
            match layer_of(name) {
                Some(l) if l >= n_layers => format!(" (the config has n_layers = {n_layers})"),
                _ => " (check d_model, n_heads, d_head, d_mlp, d_vocab, d_vocab_out and n_ctx in the config)".into(),
            }
        };
        let mut loaded = Vec::new();
        for (name, t) in template.named_params() {
            let [rows, cols] = t.dims();
            let layout = TlLayout::of(&name, config.n_heads);
            let data = file.take_with_hint(&name, &layout.file_shape(rows, cols), &hint(&name))?;
            let data = layout.internal_from_file(data, rows, cols);
            loaded.push(Tensor::from_data(
                TensorData::new(data, [rows, cols]),
                device,
            ));
        }
        let mut model = template.with_params(loaded);
        if config.positional_embedding_type == Positional::Sinusoidal
            && file.contains("pos_embed.W_pos")
        {
            // A sinusoidal model saved here carries its table; use it as saved.
            let (n, d) = (config.n_ctx, config.d_model);
            let data = file.take("pos_embed.W_pos", &[n, d])?;
            model.w_pos = Tensor::from_data(TensorData::new(data, [n, d]), device);
        }
        file.finish(is_tl_buffer, |name| match layer_of(name) {
            Some(l) if l >= n_layers => {
                format!("the file has block {l}, but the config has n_layers = {n_layers}")
            }
            _ if name.starts_with("ln_final.") => {
                "the file has a final LayerNorm but the config says final_ln = false".into()
            }
            _ => "no such weight in a GPT of this config".into(),
        })?;
        Ok(model)
    }

    /// Loads a directory written by [`Gpt::save_transformer_lens`] (or by
    /// the Python exporter): `config.json` and `model.safetensors`.
    pub fn load_dir(dir: impl AsRef<Path>, device: &Device) -> Result<Gpt, ModelError> {
        let dir = dir.as_ref();
        let config: GptConfig = read_json(&dir.join(CONFIG_FILE))?;
        config
            .validate()
            .map_err(|e| ModelError::format(dir.join(CONFIG_FILE), e.to_string()))?;
        Gpt::load_transformer_lens(config, dir.join(WEIGHTS_FILE), device)
    }

    /// The weights as TransformerLens names and shapes, on the host.
    pub fn transformer_lens_state_dict(&self) -> Vec<HostTensor> {
        let mut out: Vec<HostTensor> = self
            .named_params()
            .into_iter()
            .map(|(name, t)| {
                let [rows, cols] = t.dims();
                let layout = TlLayout::of(&name, self.config.n_heads);
                let shape = layout.file_shape(rows, cols);
                HostTensor {
                    data: layout.file_from_internal(to_host(t), rows, cols),
                    shape,
                    name,
                }
            })
            .collect();
        if self.config.positional_embedding_type == Positional::Sinusoidal {
            out.push(HostTensor {
                name: "pos_embed.W_pos".into(),
                shape: vec![self.config.n_ctx, self.config.d_model],
                data: to_host(self.w_pos.clone()),
            });
        }
        out
    }

    /// Writes `config.json` (TransformerLens field names) and
    /// `model.safetensors` (TransformerLens state dict) into `dir`, each
    /// atomically, creating the directory if needed.
    pub fn save_transformer_lens(&self, dir: impl AsRef<Path>) -> Result<(), ModelError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let meta =
            serde_json::json!({"format": "transformer_lens_state_dict", "config": self.config});
        write_tensors(
            &dir.join(WEIGHTS_FILE),
            &self.transformer_lens_state_dict(),
            &meta,
        )?;
        write_json(&dir.join(CONFIG_FILE), &self.config)
    }
}
