//! [`Activation`]: the tensor at a hook site, whatever its rank, with named axes.
//!
//! Sites have different ranks (a residual stream is `[batch, pos, d_model]`,
//! an attention pattern `[batch, head, query_pos, key_pos]`, the AlphaZero
//! net's residual `[batch, d]`), and burn's tensors carry their rank in the
//! type. An activation therefore keeps its values as a rank-4 tensor with
//! leading axes of size 1 (a reshape, free for contiguous tensors) plus its
//! true shape and the meaning of each axis, which is what interventions need
//! to find "the head axis" or "the position axis" on any site.

use crate::error::HookError;
use burn::tensor::{Bool, Device, Tensor, TensorData};
use std::fmt;

/// What an axis of an activation indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Axis {
    /// Examples of the batch.
    Batch,
    /// Token (or square) positions.
    Pos,
    /// Attention heads.
    Head,
    /// Query positions of an attention pattern.
    QueryPos,
    /// Key positions of an attention pattern.
    KeyPos,
    /// The hidden (feature) dimension: `d_model`, `d_head`, `d_mlp`, logits...
    Hidden,
}

impl fmt::Display for Axis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Axis::Batch => "batch",
            Axis::Pos => "pos",
            Axis::Head => "head",
            Axis::QueryPos => "query_pos",
            Axis::KeyPos => "key_pos",
            Axis::Hidden => "hidden",
        })
    }
}

/// The tensor at a hook site, of rank 1 to 4, with the meaning of each axis.
#[derive(Clone, Debug)]
pub struct Activation {
    /// The values, reshaped to rank 4 with leading axes of size 1.
    data: Tensor<4>,
    /// The true shape.
    shape: Vec<usize>,
    /// What each axis of `shape` indexes.
    axes: Vec<Axis>,
}

/// Joins axis names for error messages: `[batch, pos, hidden]`.
pub(crate) fn axes_string(axes: &[Axis]) -> String {
    let names: Vec<String> = axes.iter().map(Axis::to_string).collect();
    format!("[{}]", names.join(", "))
}

fn padded_shape(shape: &[usize]) -> [usize; 4] {
    let mut out = [1usize; 4];
    out[4 - shape.len()..].copy_from_slice(shape);
    out
}

impl Activation {
    /// Wraps a tensor of rank 1 to 4 with the meaning of its axes.
    ///
    /// # Panics
    /// If the rank is 0 or above 4 (a model's own invariant: no site has such a tensor).
    pub fn new<const D: usize>(tensor: Tensor<D>, axes: [Axis; D]) -> Activation {
        assert!(
            (1..=4).contains(&D),
            "hook activations have rank 1 to 4, got {D}"
        );
        let shape = tensor.dims().to_vec();
        Activation {
            data: tensor.reshape(padded_shape(&shape)),
            shape,
            axes: axes.to_vec(),
        }
    }

    /// An activation from host values (row-major) with the given shape and axes.
    pub fn from_host(
        values: Vec<f32>,
        shape: &[usize],
        axes: &[Axis],
        device: &Device,
    ) -> Result<Activation, HookError> {
        let count: usize = shape.iter().product();
        if shape.is_empty() || shape.len() > 4 || shape.len() != axes.len() || count != values.len()
        {
            return Err(HookError::Shape {
                site: "(host activation)".into(),
                what: format!("{} values with axes {}", values.len(), axes_string(axes)),
                expected: "a shape of rank 1 to 4, one axis per dimension, holding every value"
                    .into(),
                found: shape.to_vec(),
            });
        }
        let data = Tensor::<4>::from_data(TensorData::new(values, padded_shape(shape)), device);
        Ok(Activation {
            data,
            shape: shape.to_vec(),
            axes: axes.to_vec(),
        })
    }

    pub(crate) fn from_raw(data: Tensor<4>, shape: Vec<usize>, axes: Vec<Axis>) -> Activation {
        debug_assert_eq!(data.dims(), padded_shape(&shape));
        Activation { data, shape, axes }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// What each axis indexes.
    pub fn axes(&self) -> &[Axis] {
        &self.axes
    }

    /// The rank (1 to 4).
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The device the values live on.
    pub fn device(&self) -> Device {
        self.data.device()
    }

    /// The index of `axis` in [`Activation::shape`], if the activation has it.
    pub fn axis(&self, axis: Axis) -> Option<usize> {
        self.axes.iter().position(|a| *a == axis)
    }

    /// The values as a rank-4 tensor, with leading axes of size 1.
    pub fn padded(&self) -> &Tensor<4> {
        &self.data
    }

    /// The values as a tensor of rank `D`, which must be the activation's rank.
    pub fn tensor<const D: usize>(&self) -> Result<Tensor<D>, HookError> {
        self.clone().into_tensor()
    }

    /// Like [`Activation::tensor`], consuming the activation.
    pub fn into_tensor<const D: usize>(self) -> Result<Tensor<D>, HookError> {
        if D != self.rank() {
            return Err(HookError::Rank {
                site: "activation".into(),
                expected: D,
                found: self.rank(),
                shape: self.shape,
            });
        }
        let mut dims = [0usize; D];
        dims.copy_from_slice(&self.shape);
        Ok(self.data.reshape(dims))
    }

    /// The values on the host, row-major in [`Activation::shape`] order.
    pub fn to_host(&self) -> Vec<f32> {
        self.data
            .to_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("a float tensor converted to f32 reads back as f32")
    }

    /// The same activation with `f` applied to its rank-4 values (padded
    /// with leading axes of size 1). `f` may change the sizes of the
    /// activation's own axes (the hook machinery then refuses the result
    /// with an error naming the site) but must keep the padding axes at 1.
    ///
    /// # Panics
    /// If `f` grows a padding axis: the result has no meaning as this site's activation.
    pub fn map(&self, f: impl FnOnce(Tensor<4>) -> Tensor<4>) -> Activation {
        let data = f(self.data.clone());
        let dims = data.dims();
        let pad = 4 - self.rank();
        assert!(
            dims[..pad].iter().all(|&d| d == 1),
            "a map over a rank-{} activation returned padded dims {dims:?}: the first {pad} must stay 1",
            self.rank()
        );
        Activation {
            data,
            shape: dims[pad..].to_vec(),
            axes: self.axes.clone(),
        }
    }

    /// Zeros of the same shape.
    pub fn zeros_like(&self) -> Activation {
        self.map(|t| t.zeros_like())
    }

    /// The permutation of the padded rank-4 axes that puts the size-1
    /// padding first, then the batch axis, then the (query) position axis,
    /// then the rest in order; and how many leading axes (of the permuted
    /// tensor) make up a row index.
    fn position_major(&self) -> ([usize; 4], usize) {
        let pad = 4 - self.rank();
        let mut order: Vec<usize> = (0..pad).collect();
        let mut leading = pad;
        for wanted in [Axis::Batch, Axis::Pos, Axis::QueryPos] {
            if let Some(i) = self.axis(wanted) {
                order.push(pad + i);
                leading += 1;
            }
        }
        for i in 0..self.rank() {
            if !order.contains(&(pad + i)) {
                order.push(pad + i);
            }
        }
        let mut perm = [0usize; 4];
        perm.copy_from_slice(&order);
        (perm, leading)
    }

    /// One row per (example, position), the remaining axes flattened into
    /// the row: `[batch, pos, d]` gives `[batch * pos, d]`, the per-head
    /// `[batch, pos, head, d_head]` gives `[batch * pos, head * d_head]`
    /// (heads concatenated, as attention-output dictionaries read them), a
    /// pattern `[batch, head, q, k]` gives `[batch * q, head * k]`, and an
    /// activation without a position axis one row per example.
    pub fn position_rows(&self) -> Tensor<2> {
        let (perm, leading) = self.position_major();
        let permuted = self.data.clone().permute(perm);
        let dims = permuted.dims();
        let rows: usize = dims[..leading].iter().product();
        let width: usize = dims[leading..].iter().product();
        permuted.reshape([rows, width])
    }

    /// The number of rows and the width of [`Activation::position_rows`].
    pub fn position_rows_shape(&self) -> (usize, usize) {
        let (perm, leading) = self.position_major();
        let dims = padded_shape(&self.shape);
        let rows = perm[..leading].iter().map(|&i| dims[i]).product();
        let width = perm[leading..].iter().map(|&i| dims[i]).product();
        (rows, width)
    }

    /// The inverse of [`Activation::position_rows`]: an activation shaped
    /// like `self` from rows laid out as `position_rows` lays them out.
    pub fn with_position_rows(&self, rows: Tensor<2>) -> Activation {
        let (perm, _) = self.position_major();
        let dims = padded_shape(&self.shape);
        let permuted_dims = perm.map(|i| dims[i]);
        let mut inverse = [0usize; 4];
        for (to, &from) in perm.iter().enumerate() {
            inverse[from] = to;
        }
        let data = rows.reshape(permuted_dims).permute(inverse);
        Activation::from_raw(data, self.shape.clone(), self.axes.clone())
    }

    /// A boolean mask of the activation's shape (padded to rank 4): true
    /// where the example, position and head are all selected.
    pub(crate) fn selection_mask(
        &self,
        site: &str,
        selection: &crate::hooks::Selection,
    ) -> Result<Option<Tensor<4, Bool>>, HookError> {
        if selection.is_all() {
            return Ok(None);
        }
        let padded = padded_shape(&self.shape);
        let pad = 4 - self.rank();
        let mut per_axis: [Option<Vec<bool>>; 4] = [None, None, None, None];
        // (the selected indices, the axes they may index, what they are)
        type Wanted<'s> = (&'s Option<Vec<usize>>, &'static [Axis], &'static str);
        let wanted: [Wanted<'_>; 3] = [
            (&selection.examples, &[Axis::Batch], "example"),
            (
                &selection.positions,
                &[Axis::Pos, Axis::QueryPos],
                "position",
            ),
            (&selection.heads, &[Axis::Head], "head"),
        ];
        for (indices, axes, what) in wanted {
            let Some(indices) = indices else { continue };
            let Some(axis) = axes.iter().find_map(|a| self.axis(*a)) else {
                return Err(HookError::NoAxis {
                    site: site.into(),
                    what: format!("selecting by {what}"),
                    axis: axes[0].to_string(),
                    axes: axes_string(&self.axes),
                });
            };
            let len = self.shape[axis];
            let mut keep = vec![false; len];
            for &i in indices {
                if i >= len {
                    return Err(HookError::IndexOutOfRange {
                        site: site.into(),
                        what: what.into(),
                        index: i,
                        len,
                    });
                }
                keep[i] = true;
            }
            per_axis[pad + axis] = Some(keep);
        }
        // The mask as the outer product of per-axis indicators, built on the
        // host at the broadcast shape (small) and expanded on the device.
        let small: [usize; 4] = std::array::from_fn(|i| per_axis[i].as_ref().map_or(1, Vec::len));
        let count: usize = small.iter().product();
        let mut values = Vec::with_capacity(count);
        for flat in 0..count {
            let mut rest = flat;
            let mut on = true;
            for axis in (0..4).rev() {
                let i = rest % small[axis];
                rest /= small[axis];
                if let Some(keep) = &per_axis[axis] {
                    on &= keep[i];
                }
            }
            values.push(on);
        }
        let mask =
            Tensor::<4, Bool>::from_data(TensorData::new(values, small), &self.data.device());
        Ok(Some(mask.expand(padded)))
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;

    fn dev() -> Device {
        Device::flex()
    }

    #[test]
    fn round_trips_ranks_and_rejects_the_wrong_one() {
        let t = Tensor::<3>::from_data(
            TensorData::new((0..24).map(|v| v as f32).collect::<Vec<_>>(), [2, 3, 4]),
            &dev(),
        );
        let act = Activation::new(t, [Axis::Batch, Axis::Pos, Axis::Hidden]);
        assert_eq!(act.shape(), &[2, 3, 4]);
        let back: Tensor<3> = act.tensor().unwrap();
        assert_eq!(back.dims(), [2, 3, 4]);
        assert_eq!(act.to_host(), (0..24).map(|v| v as f32).collect::<Vec<_>>());
        let err = act.tensor::<2>().unwrap_err().to_string();
        assert!(err.contains("rank 3") && err.contains("rank 2"), "{err}");
    }

    #[test]
    fn position_rows_concatenate_heads_and_invert() {
        // [batch 2, pos 3, head 2, d_head 2]: value encodes its indices.
        let mut values = Vec::new();
        for b in 0..2 {
            for p in 0..3 {
                for h in 0..2 {
                    for d in 0..2 {
                        values.push((b * 1000 + p * 100 + h * 10 + d) as f32);
                    }
                }
            }
        }
        let act = Activation::from_host(
            values.clone(),
            &[2, 3, 2, 2],
            &[Axis::Batch, Axis::Pos, Axis::Head, Axis::Hidden],
            &dev(),
        )
        .unwrap();
        let rows = act.position_rows();
        assert_eq!(rows.dims(), [6, 4]);
        assert_eq!(act.position_rows_shape(), (6, 4));
        let host = rows.clone().into_data().try_into_vec::<f32>().unwrap();
        // Row (b=1, p=2): heads concatenated.
        assert_eq!(&host[5 * 4..6 * 4], &[1200.0, 1201.0, 1210.0, 1211.0]);
        assert_eq!(act.with_position_rows(rows).to_host(), values);

        // A pattern [batch, head, q, k]: rows are (batch, query).
        let pattern: Vec<f32> = (0..2 * 2 * 3 * 3).map(|v| v as f32).collect();
        let act = Activation::from_host(
            pattern.clone(),
            &[2, 2, 3, 3],
            &[Axis::Batch, Axis::Head, Axis::QueryPos, Axis::KeyPos],
            &dev(),
        )
        .unwrap();
        let rows = act.position_rows();
        assert_eq!(rows.dims(), [6, 6]);
        let host = rows.clone().into_data().try_into_vec::<f32>().unwrap();
        // Row (b=0, q=1) = head 0 keys then head 1 keys.
        assert_eq!(&host[6..12], &[3.0, 4.0, 5.0, 12.0, 13.0, 14.0]);
        assert_eq!(act.with_position_rows(rows).to_host(), pattern);
    }

    #[test]
    fn selection_masks_pick_positions_and_heads() {
        use crate::hooks::Selection;
        let act = Activation::from_host(
            vec![0.0; 2 * 3 * 2],
            &[2, 3, 2, 1],
            &[Axis::Batch, Axis::Pos, Axis::Head, Axis::Hidden],
            &dev(),
        )
        .unwrap();
        let sel = Selection::all().positions([1]).heads([0]);
        let mask = act.selection_mask("x", &sel).unwrap().unwrap();
        let on: Vec<bool> = mask.into_data().try_into_vec::<bool>().unwrap();
        let expected: Vec<bool> = (0..12).map(|i| (i / 2) % 3 == 1 && i % 2 == 0).collect();
        assert_eq!(on, expected);
        let err = act
            .selection_mask("x", &Selection::all().heads([2]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("head 2 is out of range"), "{err}");
        let flat =
            Activation::from_host(vec![0.0; 4], &[2, 2], &[Axis::Batch, Axis::Hidden], &dev())
                .unwrap();
        assert!(
            flat.selection_mask("r", &Selection::all().heads([0]))
                .unwrap_err()
                .to_string()
                .contains("head axis")
        );
    }
}
