//! CPU operations for convolutional networks in NHWC layout, with their backward passes.
//!
//! candle's own convolution computes its backward passes with transposed convolutions that are
//! slow on CPUs, and computes an input gradient even for the image itself. Here a convolution is
//! written as "gather patches, then one matrix multiply": [`patches`] turns every output
//! position into a row of its receptive field (im2col), the multiply runs on candle's tuned
//! GEMM, and the backward pass of the gather is a scatter-add (col2im). [`conv2d`] fuses the
//! gather, the multiply and the bias into one op whose backward pass computes exactly the
//! gradients that training needs: none for the image, no zero-filled buffers to accumulate
//! patch gradients into, and the bias gradient as a plain column sum. Max pooling gets the
//! same treatment. All ops are verified against candle's reference operations in the tests.

use std::mem::MaybeUninit;
use std::sync::{Mutex, PoisonError};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Gathers `kernel x kernel` patches of a `(batch, height, width, channels)` tensor, padded by
/// `padding` zeros on each side, into `(batch, out_h, out_w, kernel * kernel * channels)`.
/// The last dimension is ordered (row, column, channel) of the patch.
pub fn patches(x: &Tensor, kernel: usize, padding: usize) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd_if_constant(Im2Col { kernel, padding })
}

/// A convolution with bias of a `(batch, height, width, channels)` tensor, padded by `padding`
/// zeros on each side: `weight` is `(filters, kernel * kernel * channels)` with each row ordered
/// like a row of [`patches`], `bias` is `(filters)`, and the result is
/// `(batch, out_h, out_w, filters)`.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    kernel: usize,
    padding: usize,
) -> candle_core::Result<Tensor> {
    let (x, weight, bias) = (x.contiguous()?, weight.contiguous()?, bias.contiguous()?);
    let gather = Im2Col { kernel, padding };
    if x.track_op() || weight.track_op() || bias.track_op() {
        let op = Conv { gather, saved_patches: Some(Mutex::new(None)) };
        x.apply_op3(&weight, &bias, op)
    } else {
        x.apply_op3_no_bwd(&weight, &bias, &Conv { gather, saved_patches: None })
    }
}

/// 2x2 max pooling with stride 2 of a `(batch, height, width, channels)` tensor; odd trailing
/// rows and columns are dropped.
pub fn max_pool_2x2(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd_if_constant(MaxPool2x2)
}

/// Skips recording a backward pass for tensors that need no gradient (the input images).
trait ApplyOp {
    fn apply_op1_no_bwd_if_constant<C>(&self, op: C) -> candle_core::Result<Tensor>
    where
        C: CustomOp1 + Send + Sync + 'static;
}

impl ApplyOp for Tensor {
    fn apply_op1_no_bwd_if_constant<C>(&self, op: C) -> candle_core::Result<Tensor>
    where
        C: CustomOp1 + Send + Sync + 'static,
    {
        if self.track_op() { self.apply_op1(op) } else { self.apply_op1_no_bwd(&op) }
    }
}

/// The slice of `f32` data that a contiguous layout covers.
fn contiguous_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: only f32 tensors are supported");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: input must be contiguous");
    };
    Ok(&data[start..end])
}

#[derive(Debug, Clone, Copy)]
struct Im2Col {
    kernel: usize,
    padding: usize,
}

/// Sizes of one patch gather.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    batch: usize,
    height: usize,
    width: usize,
    channels: usize,
    out_h: usize,
    out_w: usize,
    kernel: usize,
    padding: usize,
}

impl Geometry {
    fn new(op: Im2Col, shape: &Shape) -> candle_core::Result<Self> {
        let (batch, height, width, channels) = shape.dims4()?;
        let (padded_h, padded_w) = (height + 2 * op.padding, width + 2 * op.padding);
        if op.kernel == 0 || padded_h < op.kernel || padded_w < op.kernel {
            candle_core::bail!(
                "patches: kernel {} does not fit a {height}x{width} input",
                op.kernel
            );
        }
        Ok(Self {
            batch,
            height,
            width,
            channels,
            out_h: padded_h - op.kernel + 1,
            out_w: padded_w - op.kernel + 1,
            kernel: op.kernel,
            padding: op.padding,
        })
    }

    fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    fn row_len(&self) -> usize {
        self.kernel * self.kernel * self.channels
    }

    fn patches_len(&self) -> usize {
        self.out_h * self.out_w * self.row_len()
    }

    /// The kernel columns `first..last` of a patch at output column `ox` that fall inside the
    /// image rather than its padding (`ox + kx - padding` in `0..width`); empty when none do.
    fn columns_inside(&self, ox: usize) -> (usize, usize) {
        let first = self.padding.saturating_sub(ox).min(self.kernel);
        let last = (self.width + self.padding).saturating_sub(ox).min(self.kernel);
        (first, last.max(first))
    }

    /// Writes every patch row of one image into `rows` (`patches_len` values): the image's
    /// values where the patch covers it, zeros where it covers the padding.
    fn write_patches(&self, image: &[f32], rows: &mut [MaybeUninit<f32>]) {
        let (kernel, channels, row_len) = (self.kernel, self.channels, self.row_len());
        if row_len == 0 {
            return;
        }
        for (position, row) in rows.chunks_exact_mut(row_len).enumerate() {
            let (oy, ox) = (position / self.out_w, position % self.out_w);
            let (first, last) = self.columns_inside(ox);
            for (ky, segment) in row.chunks_exact_mut(kernel * channels).enumerate() {
                let Some(iy) = (oy + ky).checked_sub(self.padding).filter(|&y| y < self.height)
                else {
                    write_zeros(segment);
                    continue;
                };
                let (left, rest) = segment.split_at_mut(first * channels);
                let (inside, right) = rest.split_at_mut((last - first) * channels);
                write_zeros(left);
                write_zeros(right);
                if !inside.is_empty() {
                    let start = (iy * self.width + ox + first - self.padding) * channels;
                    let source = &image[start..start + inside.len()];
                    inside.iter_mut().zip(source).for_each(|(value, &pixel)| {
                        value.write(pixel);
                    });
                }
            }
        }
    }

    /// Calls `visit(row_offset, image_offset, len)` for every run of channels that a patch row
    /// copies from the image, skipping positions that fall into the zero padding.
    fn for_each_run(&self, mut visit: impl FnMut(usize, usize, usize)) {
        let c = self.channels;
        for oy in 0..self.out_h {
            for ox in 0..self.out_w {
                let row = (oy * self.out_w + ox) * self.row_len();
                for ky in 0..self.kernel {
                    let Some(iy) = (oy + ky).checked_sub(self.padding).filter(|&y| y < self.height)
                    else {
                        continue;
                    };
                    let (first, last) = self.columns_inside(ox);
                    if first == last {
                        continue;
                    }
                    let ix = ox + first - self.padding;
                    visit(
                        row + (ky * self.kernel + first) * c,
                        (iy * self.width + ix) * c,
                        (last - first) * c,
                    );
                }
            }
        }
    }
}

/// The patch rows of every image of `input`, one image after another.
///
/// The buffer starts uninitialised instead of zero-filled: every value of it is written once,
/// either from the image or as padding, which spares a pass over the largest buffer of a
/// training step.
fn gather(input: &[f32], g: &Geometry) -> Vec<f32> {
    let (patches_len, image_len) = (g.patches_len(), g.image_len());
    let mut out = Box::<[f32]>::new_uninit_slice(g.batch * patches_len);
    if patches_len > 0 {
        out.par_chunks_mut(patches_len).enumerate().for_each(|(index, rows)| {
            g.write_patches(&input[index * image_len..(index + 1) * image_len], rows);
        });
    }
    // SAFETY: the chunks cover the whole buffer, one per image, and `write_patches` writes
    // every value of the chunk it is given.
    #[allow(unsafe_code)]
    unsafe { out.assume_init() }.into_vec()
}

/// Sets every value of `values` to zero.
fn write_zeros(values: &mut [MaybeUninit<f32>]) {
    values.iter_mut().for_each(|v| {
        v.write(0.0);
    });
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col-nhwc"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let input = contiguous_f32(storage, layout, self.name())?;
        let g = Geometry::new(*self, layout.shape())?;
        let shape = Shape::from((g.batch, g.out_h, g.out_w, g.row_len()));
        Ok((CpuStorage::F32(gather(input, &g)), shape))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let geometry = Geometry::new(*self, arg.shape())?;
        let grad = grad_res.contiguous()?.apply_op1_no_bwd(&Col2Im(geometry))?;
        Ok(Some(grad))
    }
}

/// The adjoint of [`Im2Col`]: sums every patch entry back onto the pixel it came from.
struct Col2Im(Geometry);

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im-nhwc"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.0;
        let rows = contiguous_f32(storage, layout, self.name())?;
        if rows.len() != g.batch * g.patches_len() {
            candle_core::bail!(
                "col2im: gradient has {} values, expected {}",
                rows.len(),
                g.batch * g.patches_len()
            );
        }
        let mut out = vec![0f32; g.batch * g.image_len()];
        out.par_chunks_mut(g.image_len().max(1))
            .zip(rows.par_chunks(g.patches_len().max(1)))
            .for_each(|(image, rows)| {
                g.for_each_run(|r, i, n| {
                    for (dst, src) in image[i..i + n].iter_mut().zip(&rows[r..r + n]) {
                        *dst += src;
                    }
                });
            });
        Ok((CpuStorage::F32(out), Shape::from((g.batch, g.height, g.width, g.channels))))
    }
}

/// Patches times transposed weights plus bias, as one op; see [`conv2d`].
#[derive(Debug)]
struct Conv {
    gather: Im2Col,
    /// Present when the op is recorded for a backward pass: the forward pass leaves its patch
    /// matrix here for the weight gradient, which would otherwise gather it again.
    saved_patches: Option<Mutex<Option<Vec<f32>>>>,
}

impl CustomOp3 for Conv {
    fn name(&self) -> &'static str {
        "conv2d-nhwc"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = Geometry::new(self.gather, x_layout.shape())?;
        let (filters, row_len) = weight_layout.shape().dims2()?;
        if row_len != g.row_len() {
            candle_core::bail!(
                "conv2d: weight rows hold {row_len} values, patches of {}x{}x{} hold {}",
                g.kernel,
                g.kernel,
                g.channels,
                g.row_len()
            );
        }
        let bias = contiguous_f32(bias, bias_layout, self.name())?;
        if bias.len() != filters {
            candle_core::bail!("conv2d: {} biases for {filters} filters", bias.len());
        }
        let rows = g.batch * g.out_h * g.out_w;
        let shape = Shape::from((g.batch, g.out_h, g.out_w, filters));
        if rows == 0 || filters == 0 {
            return Ok((CpuStorage::F32(Vec::new()), shape));
        }
        let patches = CpuStorage::F32(gather(contiguous_f32(x, x_layout, self.name())?, &g));
        let product = patches.matmul(
            weight,
            (1, rows, filters, row_len),
            &Layout::contiguous((rows, row_len)),
            &weight_layout.transpose(0, 1)?,
        )?;
        let (CpuStorage::F32(mut out), CpuStorage::F32(patches)) = (product, patches) else {
            candle_core::bail!("conv2d: only f32 tensors are supported");
        };
        if let Some(saved) = &self.saved_patches {
            *saved.lock().unwrap_or_else(PoisonError::into_inner) = Some(patches);
        }
        out.par_chunks_mut(filters * 256).for_each(|block| {
            for row in block.chunks_exact_mut(filters) {
                row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
            }
        });
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let filters = weight.dim(0)?;
        let rows = grad_res.elem_count() / filters.max(1);
        let grad = grad_res.detach().contiguous()?.reshape((rows, filters))?;
        let saved = self
            .saved_patches
            .as_ref()
            .and_then(|saved| saved.lock().unwrap_or_else(PoisonError::into_inner).take());
        let patches = match saved {
            Some(patches) => Tensor::from_vec(patches, (rows, weight.dim(1)?), x.device())?,
            None => x.detach().apply_op1_no_bwd(&self.gather)?.reshape((rows, ()))?,
        };
        let grad_weight = grad.t()?.matmul(&patches)?;
        let grad_bias = grad.apply_op1_no_bwd(&ColumnSums)?;
        // The input gradient costs as much as the forward pass; the image needs none.
        let grad_x = if x.track_op() {
            let grad_patches = grad.matmul(&weight.detach())?;
            let geometry = Geometry::new(self.gather, x.shape())?;
            Some(grad_patches.apply_op1_no_bwd(&Col2Im(geometry))?)
        } else {
            None
        };
        Ok((grad_x, Some(grad_weight), Some(grad_bias)))
    }
}

/// Sums the rows of a `(rows, columns)` tensor into `(columns)`, in a fixed order so that
/// training stays reproducible.
struct ColumnSums;

impl CustomOp1 for ColumnSums {
    fn name(&self) -> &'static str {
        "column-sums"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (_, columns) = layout.shape().dims2()?;
        let values = contiguous_f32(storage, layout, self.name())?;
        let block_sums: Vec<Vec<f32>> = values
            .par_chunks((columns * 1024).max(1))
            .map(|block| {
                let mut sums = vec![0f32; columns];
                for row in block.chunks_exact(columns) {
                    sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
                }
                sums
            })
            .collect();
        let mut sums = vec![0f32; columns];
        for block in &block_sums {
            sums.iter_mut().zip(block).for_each(|(s, v)| *s += v);
        }
        Ok((CpuStorage::F32(sums), Shape::from(columns)))
    }
}

#[derive(Debug, Clone, Copy)]
struct MaxPool2x2;

/// Sizes of one pooling.
struct PoolGeometry {
    batch: usize,
    height: usize,
    width: usize,
    channels: usize,
}

impl PoolGeometry {
    fn new(shape: &Shape) -> candle_core::Result<Self> {
        let (batch, height, width, channels) = shape.dims4()?;
        Ok(Self { batch, height, width, channels })
    }

    fn out_shape(&self) -> Shape {
        Shape::from((self.batch, self.height / 2, self.width / 2, self.channels))
    }

    /// Calls `visit(out_offset, [four input offsets])` for every output value of one image,
    /// with offsets relative to that image.
    fn for_each_window(&self, mut visit: impl FnMut(usize, [usize; 4])) {
        let (w, c) = (self.width, self.channels);
        for oy in 0..self.height / 2 {
            for ox in 0..self.width / 2 {
                let out = (oy * (w / 2) + ox) * c;
                let top = (2 * oy * w + 2 * ox) * c;
                let bottom = top + w * c;
                for ch in 0..c {
                    visit(out + ch, [top + ch, top + c + ch, bottom + ch, bottom + c + ch]);
                }
            }
        }
    }
}

impl CustomOp1 for MaxPool2x2 {
    fn name(&self) -> &'static str {
        "max-pool-2x2-nhwc"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let input = contiguous_f32(storage, layout, self.name())?;
        let g = PoolGeometry::new(layout.shape())?;
        let (in_len, out_len) =
            (g.height * g.width * g.channels, (g.height / 2) * (g.width / 2) * g.channels);
        let mut out = vec![0f32; g.batch * out_len];
        out.par_chunks_mut(out_len.max(1)).zip(input.par_chunks(in_len.max(1))).for_each(
            |(out, image)| {
                g.for_each_window(|o, [a, b, c, d]| {
                    out[o] = image[a].max(image[b]).max(image[c]).max(image[d])
                });
            },
        );
        Ok((CpuStorage::F32(out), g.out_shape()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let grad =
            arg.apply_op3_no_bwd(&res.contiguous()?, &grad_res.contiguous()?, &MaxPool2x2Backward)?;
        Ok(Some(grad))
    }
}

/// Routes each pooled gradient to the first input of its window that held the maximum.
struct MaxPool2x2Backward;

impl CustomOp3 for MaxPool2x2Backward {
    fn name(&self) -> &'static str {
        "max-pool-2x2-nhwc-backward"
    }

    fn cpu_fwd(
        &self,
        arg: &CpuStorage,
        arg_layout: &Layout,
        res: &CpuStorage,
        res_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let input = contiguous_f32(arg, arg_layout, self.name())?;
        let pooled = contiguous_f32(res, res_layout, self.name())?;
        let grad = contiguous_f32(grad, grad_layout, self.name())?;
        let g = PoolGeometry::new(arg_layout.shape())?;
        let (in_len, out_len) =
            (g.height * g.width * g.channels, (g.height / 2) * (g.width / 2) * g.channels);
        let mut out = vec![0f32; g.batch * in_len];
        out.par_chunks_mut(in_len.max(1))
            .zip(input.par_chunks(in_len.max(1)))
            .zip(pooled.par_chunks(out_len.max(1)).zip(grad.par_chunks(out_len.max(1))))
            .for_each(|((out, image), (pooled, grad))| {
                g.for_each_window(|o, window| {
                    let winner =
                        window.into_iter().find(|&i| image[i] == pooled[o]).unwrap_or(window[0]);
                    out[winner] += grad[o];
                });
            });
        Ok((CpuStorage::F32(out), arg_layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    //! The reference is candle's own `conv2d` and `max_pool2d` (NCHW), run on the same values;
    //! forward values and gradients must agree to 1e-4, the rounding of summing a few hundred
    //! `f32` products in a different order.

    use candle_core::{DType, Device, Tensor, Var};

    use super::*;

    const TOLERANCE: f32 = 1e-4;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    fn nchw(x: &Tensor) -> Tensor {
        x.permute((0, 3, 1, 2)).unwrap().contiguous().unwrap()
    }

    /// candle's `conv2d` (NCHW, no bias) of NHWC `x` with weights in the layout of [`conv2d`],
    /// output in NHWC.
    fn reference_conv(x: &Tensor, w: &Tensor, kernel: usize, padding: usize) -> Tensor {
        let (cout, cin) = (w.dim(0).unwrap(), x.dim(3).unwrap());
        let w = w.reshape((cout, kernel, kernel, cin)).unwrap().permute((0, 3, 1, 2)).unwrap();
        let y = nchw(x).conv2d(&w.contiguous().unwrap(), padding, 1, 1, 1).unwrap();
        y.permute((0, 2, 3, 1)).unwrap()
    }

    /// Convolution through patches, as the networks compute it, output in NHWC.
    fn conv_by_patches(x: &Tensor, w: &Tensor, kernel: usize, padding: usize) -> Tensor {
        let p = patches(x, kernel, padding).unwrap();
        let (b, h, wd, row) = p.dims4().unwrap();
        let y = p.reshape((b * h * wd, row)).unwrap().matmul(&w.t().unwrap()).unwrap();
        y.reshape((b, h, wd, w.dim(0).unwrap())).unwrap()
    }

    #[test]
    fn convolution_by_patches_matches_candle_conv2d_forward_and_backward() {
        let dev = Device::Cpu;
        for (batch, side, cin, cout, kernel, padding) in
            [(3, 9, 2, 4, 5, 2), (2, 7, 3, 5, 3, 0), (1, 5, 1, 2, 5, 1), (2, 3, 2, 3, 3, 4)]
        {
            let x = Var::randn(0f32, 1., (batch, side, side, cin), &dev).unwrap();
            let w = Var::randn(0f32, 1., (cout, kernel * kernel * cin), &dev).unwrap();
            let ours = conv_by_patches(&x, &w, kernel, padding);
            let reference = reference_conv(&x, &w, kernel, padding);
            assert!(max_diff(&ours, &reference) < TOLERANCE);

            let weights = Tensor::randn(0f32, 1., ours.shape(), &dev).unwrap();
            let g_ours = (&ours * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            let g_ref = (&reference * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            for var in [&x, &w] {
                let (a, b) = (g_ours.get(var).unwrap(), g_ref.get(var).unwrap());
                assert!(max_diff(a, b) < TOLERANCE, "gradient differs by {}", max_diff(a, b));
            }
        }
    }

    #[test]
    fn fused_convolution_matches_candle_conv2d_with_bias_forward_and_backward() {
        let dev = Device::Cpu;
        for (batch, side, cin, cout, kernel, padding) in
            [(3, 9, 2, 4, 5, 2), (2, 7, 3, 5, 3, 0), (1, 14, 16, 32, 5, 0), (2, 4, 1, 3, 5, 6)]
        {
            let x = Var::randn(0f32, 1., (batch, side, side, cin), &dev).unwrap();
            let w = Var::randn(0f32, 1., (cout, kernel * kernel * cin), &dev).unwrap();
            let b = Var::randn(0f32, 1., cout, &dev).unwrap();
            let ours = conv2d(&x, &w, &b, kernel, padding).unwrap();
            let reference = reference_conv(&x, &w, kernel, padding)
                .broadcast_add(&b.reshape((1, 1, 1, cout)).unwrap())
                .unwrap();
            assert_eq!(ours.dims(), reference.dims());
            // Sums of up to 400 products of unit normals: compare relative to their size.
            assert!(max_diff(&ours, &reference) < 10.0 * TOLERANCE);

            let weights = Tensor::randn(0f32, 1., ours.shape(), &dev).unwrap();
            let g_ours = (&ours * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            let g_ref = (&reference * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            for var in [&x, &w, &b] {
                let (a, b) = (g_ours.get(var).unwrap(), g_ref.get(var).unwrap());
                let scale = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
                let scale: f32 = scale.to_scalar::<f32>().unwrap().max(1.0);
                assert!(
                    max_diff(a, b) < TOLERANCE * scale,
                    "gradient differs by {} (largest {scale})",
                    max_diff(a, b)
                );
            }
        }
    }

    #[test]
    fn fused_convolution_of_a_constant_image_trains_only_its_weights() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (2, 8, 8, 1), &dev).unwrap();
        let w = Var::randn(0f32, 1., (4, 9), &dev).unwrap();
        let b = Var::zeros(4, DType::F32, &dev).unwrap();
        let y = conv2d(&x, &w, &b, 3, 1).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(&x).is_none());
        // Every output position adds its bias once.
        let grad_b: Vec<f32> = grads.get(&b).unwrap().to_vec1().unwrap();
        assert_eq!(grad_b, vec![2.0 * 8.0 * 8.0; 4]);
        assert!(
            !conv2d(&x, &w.as_tensor().detach(), &b.as_tensor().detach(), 3, 1).unwrap().track_op()
        );
    }

    #[test]
    fn max_pooling_matches_candle_reductions_forward_and_backward() {
        // The reference is pooling written as reshapes and `max` reductions, whose gradient
        // goes to the maximum. candle's `max_pool2d` is not used: its backward pass divides
        // the gradient by the window size.
        let dev = Device::Cpu;
        for (batch, h, w, c) in [(2, 6, 6, 3), (1, 7, 5, 2)] {
            let x = Var::randn(0f32, 1., (batch, h, w, c), &dev).unwrap();
            let ours = max_pool_2x2(&x).unwrap();
            let even = x.narrow(1, 0, h / 2 * 2).unwrap().narrow(2, 0, w / 2 * 2).unwrap();
            let windows =
                even.contiguous().unwrap().reshape((batch, h / 2, 2, w / 2, 2, c)).unwrap();
            let reference = windows.max(4).unwrap().max(2).unwrap();
            assert_eq!(ours.dims(), reference.dims());
            assert!(max_diff(&ours, &reference) < TOLERANCE);

            let weights = Tensor::randn(0f32, 1., ours.shape(), &dev).unwrap();
            let g_ours = (&ours * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            let g_ref = (&reference * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            let (a, b) = (g_ours.get(&x).unwrap(), g_ref.get(&x).unwrap());
            assert!(max_diff(a, b) < TOLERANCE, "gradient differs by {}", max_diff(a, b));
        }
    }

    #[test]
    fn constant_inputs_record_no_backward_pass() {
        let x = Tensor::ones((1, 6, 6, 1), DType::F32, &Device::Cpu).unwrap();
        assert!(!patches(&x, 3, 1).unwrap().track_op());
        assert!(!max_pool_2x2(&x).unwrap().track_op());
    }

    #[test]
    fn wrong_inputs_are_errors_not_panics() {
        let dev = Device::Cpu;
        assert!(patches(&Tensor::ones((1, 3, 3, 1), DType::F32, &dev).unwrap(), 5, 0).is_err());
        assert!(patches(&Tensor::ones((1, 6, 6, 1), DType::F64, &dev).unwrap(), 3, 0).is_err());
        assert!(max_pool_2x2(&Tensor::ones((6, 6), DType::F32, &dev).unwrap()).is_err());
        let x = Tensor::ones((1, 6, 6, 2), DType::F32, &dev).unwrap();
        let w = Tensor::ones((3, 9), DType::F32, &dev).unwrap();
        let b = Tensor::ones(3, DType::F32, &dev).unwrap();
        assert!(conv2d(&x, &w, &b, 3, 0).is_err(), "weight rows must match the patches");
        let w = Tensor::ones((3, 18), DType::F32, &dev).unwrap();
        assert!(conv2d(&x, &w, &b.narrow(0, 0, 2).unwrap(), 3, 0).is_err());
        assert_eq!(conv2d(&x, &w, &b, 3, 0).unwrap().dims(), &[1, 4, 4, 3]);
    }
}
