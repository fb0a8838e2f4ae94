//! File helpers shared by checkpoints and saved dictionaries: atomic writes
//! and f32 tensors in safetensors.

use std::collections::HashMap;

/// Writes `bytes` to `path` atomically (temporary file in the same
/// directory, fsync, rename, directory fsync): kibitzer-store's, shared so
/// that every file kibitzer writes goes through one implementation.
/// Refuses (naming the path) to replace anything that exists and is not a
/// regular file: a symlink, a device such as `/dev/null`, a FIFO.
pub use kibitzer_store::{atomic_write, check_replaceable};

/// A named f32 tensor on the host, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Name in the file.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

/// Serialises f32 tensors (and string metadata) to safetensors bytes.
pub fn f32_safetensors(
    tensors: &[HostTensor],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>, String> {
    let views = tensors
        .iter()
        .map(|t| {
            safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                t.shape.clone(),
                bytemuck::cast_slice(&t.data),
            )
            .map(|v| (t.name.clone(), v))
            .map_err(|e| format!("tensor {}: {e}", t.name))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::tensor::serialize(views, metadata).map_err(|e| e.to_string())
}

/// The values of a safetensors tensor as f32 (f32, f16, bf16 and f64 are
/// converted; little-endian, as safetensors stores them), or `None` for a
/// tensor that is not floating point.
pub fn float_values(view: &safetensors::tensor::TensorView<'_>) -> Option<Vec<f32>> {
    let raw = view.data();
    Some(match view.dtype() {
        safetensors::Dtype::F32 => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        safetensors::Dtype::F16 => raw
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        safetensors::Dtype::BF16 => raw
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        safetensors::Dtype::F64 => raw
            .chunks_exact(8)
            .map(|c| {
                f64::from_le_bytes(c.try_into().expect("chunks_exact(8) yields 8 bytes")) as f32
            })
            .collect(),
        _ => return None,
    })
}

/// Reads every tensor of a safetensors buffer as f32 (f32, f16, bf16 and f64
/// are accepted and converted), with the file's metadata.
pub fn read_f32_safetensors(
    bytes: &[u8],
) -> Result<(Vec<HostTensor>, HashMap<String, String>), String> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let Some(data) = float_values(&view) else {
            return Err(format!(
                "tensor {name}: dtype {:?} is not a float type",
                view.dtype()
            ));
        };
        out.push(HostTensor {
            name,
            shape: view.shape().to_vec(),
            data,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safetensors_round_trip_and_atomic_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let t = vec![
            HostTensor {
                name: "a".into(),
                shape: vec![2, 3],
                data: vec![1., 2., 3., 4., 5., -6.],
            },
            HostTensor {
                name: "b".into(),
                shape: vec![1],
                data: vec![0.5],
            },
        ];
        let meta: HashMap<String, String> = [("k".to_string(), "v".to_string())].into();
        atomic_write(&path, &f32_safetensors(&t, Some(meta.clone())).unwrap()).unwrap();
        let (back, m) = read_f32_safetensors(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back, t);
        assert_eq!(m, meta);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(read_f32_safetensors(&[1, 2, 3]).is_err());
    }
}
