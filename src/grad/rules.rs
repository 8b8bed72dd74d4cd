//! One vector-Jacobian product rule per op: given the forward operands `x`, the output `y` and
//! the output's cotangent `dy`, the cotangent of each operand (`None`: no gradient flows).
//! Contributions may have the output's broadcast shape; the sweep un-broadcasts them.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::Expr;
use crate::graph::op::{Binary, Op, Reduce, Unary};

type Grads = Vec<Option<Expr>>;

/// 1 where the bool `cond` holds and 0 elsewhere, in the float dtype of `like`.
fn indicator(cond: Expr, like: &Expr) -> Expr {
    cond.cast(like.dtype())
}

/// `dy` of a reduction over `axes` with its reduced axes back (as size 1), so that it
/// broadcasts against the operand.
fn with_reduced_axes(dy: &Expr, axes: &[usize], keepdims: bool) -> Expr {
    if keepdims {
        dy.clone()
    } else {
        let axes: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
        dy.expand_dims(&axes)
    }
}

/// The rule for `op`. `needs[i]` says whether operand `i` is on a path to a variable of interest,
/// so rules skip terms nobody asked for (and never build `log(a)` for a constant exponent).
pub(crate) fn vjp(op: &Op, x: &[Expr], y: &Expr, dy: &Expr, needs: &[bool]) -> Result<Grads> {
    let one = |e: Expr| vec![Some(e)];
    Ok(match op {
        Op::Input { .. } | Op::Constant(_) | Op::Shared(_) | Op::StepValue { .. } => vec![],
        Op::Loop { .. } => {
            return Err(Error::NotDifferentiable {
                name: op.name(),
                detail: "the gradient of a loop is built by the sweep for all its results at once"
                    .into(),
                loc: y.location(),
            });
        }
        Op::Unary(u) => {
            let a = &x[0];
            match u {
                // y = -x: dx = -dy
                Unary::Neg => one(-dy),
                // y = exp(x): dx = dy * y
                Unary::Exp => one(dy * y),
                // y = log(x): dx = dy / x
                Unary::Log => one(dy / a),
                // y = log(1 + x): dx = dy / (1 + x)
                Unary::Log1p => one(dy / &(a + 1.0)),
                // y = exp(x) - 1: dx = dy * (y + 1)
                Unary::Expm1 => one(dy * &(y + 1.0)),
                // y = sqrt(x): dx = dy / (2 y)
                Unary::Sqrt => one(dy / &(y * 2.0)),
                // y = x^2: dx = 2 x dy
                Unary::Square => one(dy * &(a * 2.0)),
                // y = |x|: dx = sign(x) dy
                Unary::Abs => one(dy * &a.sign()),
                // y = sign(x): flat almost everywhere
                Unary::Sign | Unary::Not => vec![None],
                // y = floor(x), round(x), ceil(x): dx = 0 (flat between the steps). Zeros, not
                // no gradient, as Theano does: a loss through a rounding is connected to x.
                Unary::Floor | Unary::Round | Unary::Ceil => one(a.zeros_like()),
                // y = sin(x): dx = cos(x) dy
                Unary::Sin => one(dy * &a.cos()),
                // y = cos(x): dx = -sin(x) dy
                Unary::Cos => one(-(dy * &a.sin())),
                // y = tanh(x): dx = (1 - y^2) dy
                Unary::Tanh => one(dy * &(1.0 - &y.square())),
                // y = sigmoid(x): dx = y (1 - y) dy
                Unary::Sigmoid => one(dy * &(y * &(1.0 - y))),
                // y = softplus(x): dx = sigmoid(x) dy
                Unary::Softplus => one(dy * &a.sigmoid()),
                // y = log(sigmoid(x)): dx = sigmoid(-x) dy
                Unary::LogSigmoid => one(dy * &(-a).sigmoid()),
                // y = erf(x): dx = 2/sqrt(pi) exp(-x^2) dy
                Unary::Erf => one(dy * &((-a.square()).exp() * std::f64::consts::FRAC_2_SQRT_PI)),
                // y = relu(x): dx = [x > 0] dy
                Unary::Relu => one(dy * &indicator(a.gt(0.0), a)),
            }
        }
        Op::Binary(b) => {
            let (a, c) = (&x[0], &x[1]);
            match b {
                // y = a + b: da = dy, db = dy
                Binary::Add => vec![Some(dy.clone()), Some(dy.clone())],
                // y = a - b: da = dy, db = -dy
                Binary::Sub => vec![Some(dy.clone()), Some(-dy)],
                // y = a b: da = b dy, db = a dy
                Binary::Mul => vec![needs[0].then(|| dy * c), needs[1].then(|| dy * a)],
                // y = a / b: da = dy / b, db = -dy y / b
                Binary::Div => vec![needs[0].then(|| dy / c), needs[1].then(|| -(dy * y) / c)],
                // y = a^b: da = b a^(b-1) dy, db = log(a) y dy. At a = 0 (b > 0) y is 0 for
                // every nearby b, so db = 0; log(0) * 0 would be NaN, so log reads a zero base
                // as 1 (a select, so no derivative of it divides by zero either).
                Binary::Pow => vec![
                    needs[0].then(|| dy * &(c * &a.pow(&(c - 1.0)))),
                    needs[1].then(|| dy * &(&a.equal(0.0).select(1.0, a).log() * y)),
                ],
                // y = max(a, b): the larger operand gets dy (a on ties)
                Binary::Maximum => vec![
                    needs[0].then(|| dy * &indicator(a.ge(c), dy)),
                    needs[1].then(|| dy * &indicator(a.lt(c), dy)),
                ],
                // y = min(a, b): the smaller operand gets dy (a on ties)
                Binary::Minimum => vec![
                    needs[0].then(|| dy * &indicator(a.le(c), dy)),
                    needs[1].then(|| dy * &indicator(a.gt(c), dy)),
                ],
                Binary::And | Binary::Or => vec![None, None],
            }
        }
        Op::Compare(_) => vec![None, None],
        // y = where(c, a, b): da = where(c, dy, 0), db = where(c, 0, dy)
        Op::Where => {
            let c = &x[0];
            vec![
                None,
                needs[1].then(|| c.select(dy, 0.0)),
                needs[2].then(|| c.select(0.0, dy)),
            ]
        }
        // y = cast(x): dx = cast back (no gradient into integers)
        Op::Cast(_) => vec![x[0].dtype().is_float().then(|| dy.cast(x[0].dtype()))],
        Op::Reduce { op, axes, keepdims } => {
            let a = &x[0];
            let dy_full = with_reduced_axes(dy, axes, *keepdims).broadcast_like(a);
            one(match op {
                // y = sum(x): dx = dy broadcast
                Reduce::Sum => dy_full,
                // y = prod(x): dx_i = dy prod_{j != i} x_j, which is dy y / x_i for nonzero x_i.
                // At a zero, y / x is 0/0, so the product of the other factors is built from
                // P, the product of the lane's nonzero factors (zeros replaced by 1, so no
                // branch divides by zero): P if x_i is the lane's only zero; P x_k if there is
                // one other zero x_k (written P (sum of zeros - x_i): 0, but with the right
                // derivative); else 0. Exact to second order; with three or more zeros in a
                // lane, third derivatives are not.
                Reduce::Prod => {
                    let ax: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
                    let zero = a.equal(0.0);
                    let nonzero = zero.select(1.0, a);
                    let p = nonzero.prod_axes(&ax, true);
                    let zeros = indicator(zero.clone(), a).sum_axes(&ax, true);
                    let other_zero = &zero.select(a, 0.0).sum_axes(&ax, true) - a;
                    let rest = zeros
                        .equal(1.0)
                        .select(&p, zeros.equal(2.0).select(&(&p * &other_zero), 0.0));
                    let yk = with_reduced_axes(y, axes, *keepdims);
                    &dy_full * &zero.select(&rest, &(&yk / &nonzero))
                }
                // y = max(x): dx = dy where x attains the max, split evenly among ties. Giving
                // every tie the whole dy is no subgradient: max over [x, x] is x, yet each copy
                // would get dy, so dx = 2 dy. (The count is at least 1 unless the lane holds a
                // NaN, where nothing matches; max(count, 1) keeps that lane's gradient 0.)
                Reduce::Max | Reduce::Min => {
                    let ax: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
                    let hit = indicator(a.equal(with_reduced_axes(y, axes, *keepdims)), a);
                    let count = hit.sum_axes(&ax, true).maximum(1.0);
                    &dy_full * &(&hit / &count)
                }
            })
        }
        Op::Argmax { .. } => vec![None],
        Op::MatMul => {
            let (a, b) = (&x[0], &x[1]);
            let tr = |e: &Expr| {
                if e.ndim() == 3 {
                    e.permute(&[0, 2, 1])
                } else {
                    e.t()
                }
            };
            if a.ndim() == 3 && b.ndim() == 2 {
                // y = a b over the rows of a batch of sequences: da = dy b^T, db = sum_n a_n^T dy_n
                let db = || match b.shape().to_known() {
                    Some(k) => {
                        let rows = |e: &Expr, d: usize| e.reshape(&[-1, d as isize]);
                        rows(a, k[0]).t().matmul(&rows(dy, k[1]))
                    }
                    None => tr(a).matmul(dy).sum_axes(&[0], false),
                };
                return Ok(vec![needs[0].then(|| dy.matmul(&tr(b))), needs[1].then(db)]);
            }
            // y = a b: da = dy b^T, db = a^T dy
            vec![
                needs[0].then(|| dy.matmul(&tr(b))),
                needs[1].then(|| tr(a).matmul(dy)),
            ]
        }
        // y = transpose(x, p): dx = transpose(dy, p^-1)
        Op::Transpose(perm) => {
            let mut inv = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inv[p] = i;
            }
            one(dy.permute(&inv))
        }
        Op::Reshape(_) => one(dy.reshape_like(&x[0])),
        Op::ReshapeLike => vec![Some(dy.reshape_like(&x[0])), None],
        // broadcasting: the sweep sums the broadcast axes out
        Op::BroadcastTo(_) => one(dy.clone()),
        Op::BroadcastLike => vec![Some(dy.clone()), None],
        Op::ExpandDims(axes) => {
            one(dy.squeeze(&axes.iter().map(|&a| a as isize).collect::<Vec<_>>()))
        }
        Op::Squeeze(axes) => {
            one(dy.expand_dims(&axes.iter().map(|&a| a as isize).collect::<Vec<_>>()))
        }
        // y = concat(x_i): dx_i = the slice of dy where x_i landed
        Op::Concat(axis) => {
            let sizes: Option<Vec<usize>> = x.iter().map(|xi| xi.shape().dims()[*axis]).collect();
            match sizes {
                Some(sizes) => {
                    let mut start = 0isize;
                    let mut out = Vec::with_capacity(x.len());
                    for (i, len) in sizes.into_iter().enumerate() {
                        let end = start + len as isize;
                        out.push(needs[i].then(|| dy.slice(*axis as isize, start, Some(end))));
                        start = end;
                    }
                    out
                }
                // A size known only at run time: the part's place is read from the operands'
                // shapes when the gradient runs.
                None => {
                    let args: Vec<&Expr> = std::iter::once(dy).chain(x).collect();
                    (0..x.len())
                        .map(|part| {
                            needs[part]
                                .then(|| dy.apply(Op::ConcatPart { axis: *axis, part }, &args))
                        })
                        .collect()
                }
            }
        }
        // y = the part of dy where operand `part` landed: dy gets y's cotangent there and zeros
        // in the other parts (shaped like their operands); the operands give only sizes.
        Op::ConcatPart { axis, part } => {
            let zero = dy.graph().scalar_constant(0.0, dy.dtype());
            let parts: Vec<Expr> = x[1..]
                .iter()
                .enumerate()
                .map(|(i, xi)| {
                    if i == *part {
                        dy.clone()
                    } else {
                        zero.broadcast_like(xi)
                    }
                })
                .collect();
            let refs: Vec<&Expr> = parts.iter().collect();
            let mut out = vec![None; x.len()];
            out[0] = Some(crate::graph::concat(&refs, *axis as isize));
            out
        }
        Op::Slice {
            axis,
            start,
            end,
            step,
        } => {
            let op = Op::SliceGrad {
                axis: *axis,
                start: *start,
                end: *end,
                step: *step,
            };
            one(dy.apply(op, &[dy, &x[0]]))
        }
        Op::SliceGrad {
            axis,
            start,
            end,
            step,
        } => {
            let op = Op::Slice {
                axis: *axis,
                start: *start,
                end: *end,
                step: *step,
            };
            vec![Some(dy.apply(op, &[dy])), None]
        }
        // y = take(x, idx, axis): dx = scatter-add dy into zeros shaped like x at idx
        Op::Take { axis } => vec![
            Some(dy.apply(Op::ScatterAdd { axis: *axis }, &[dy, &x[1], &x[0]])),
            None,
        ],
        // y = zeros(like) with u added at idx: du = take(dy, idx, axis)
        Op::ScatterAdd { axis } => vec![
            Some(dy.apply(Op::Take { axis: *axis }, &[dy, &x[1]])),
            None,
            None,
        ],
        // y = cumsum(x): y_j = sum_{i <= j} x_i, so dx_i = sum_{j >= i} dy_j, the reverse
        // running sum (and the reverse's gradient is the forward one)
        Op::Cumsum { axis, reverse } => one(dy.apply(
            Op::Cumsum {
                axis: *axis,
                reverse: !*reverse,
            },
            &[dy],
        )),
        // y = conv(x, w), bilinear: dx = convᵀ_w(dy) (a transposed convolution), dw = the
        // correlation of x with dy
        Op::Conv2d(c) => {
            let (a, w) = (&x[0], &x[1]);
            vec![
                needs[0].then(|| dy.apply(Op::Conv2dInputGrad(*c), &[dy, w, a])),
                needs[1].then(|| dy.apply(Op::Conv2dFilterGrad(*c), &[a, dy, w])),
            ]
        }
        // y = convᵀ_w(u), linear in u and in w: <g, convᵀ_w(u)> = <conv(g, w), u>, so
        // du = conv(g, w) and dw = the correlation of g with u
        Op::Conv2dInputGrad(c) => {
            let (u, w) = (&x[0], &x[1]);
            vec![
                needs[0].then(|| dy.apply(Op::Conv2d(*c), &[dy, w])),
                needs[1].then(|| dy.apply(Op::Conv2dFilterGrad(*c), &[dy, u, w])),
                None,
            ]
        }
        // y = the correlation of a with u, i.e. <g, y> = <conv(a, g), u>: du = conv(a, g) and
        // da = convᵀ_g(u)
        Op::Conv2dFilterGrad(c) => {
            let (a, u) = (&x[0], &x[1]);
            vec![
                needs[0].then(|| dy.apply(Op::Conv2dInputGrad(*c), &[u, dy, a])),
                needs[1].then(|| dy.apply(Op::Conv2d(*c), &[a, dy])),
                None,
            ]
        }
        // y = the max of each window: dx = each window's dy at its first maximum
        Op::MaxPool2d(p) => one(dy.apply(Op::MaxPool2dGrad(*p), &[&x[0], dy])),
        Op::MaxPool2dGrad(_) => {
            return Err(Error::NotDifferentiable {
                name: op.name(),
                detail: "the gradient of max_pool2d has no gradient of its own (no second \
                         order through a max pool)"
                    .into(),
                loc: y.location(),
            });
        }
        // y = the mean of each window (a linear map A): dx = Aᵀ dy, spread over the windows
        Op::AvgPool2d(p) => one(dy.apply(Op::AvgPool2dGrad(*p), &[dy, &x[0]])),
        // y = Aᵀ u: du = A g
        Op::AvgPool2dGrad(p) => vec![Some(dy.apply(Op::AvgPool2d(*p), &[dy])), None],
        // y = x with cells around it: dx = the cells of dy where x landed
        Op::Pad(p) => one(p
            .widths
            .iter()
            .enumerate()
            .fold(dy.clone(), |d, (axis, &(b, a))| {
                if b == 0 && a == 0 {
                    d
                } else {
                    let end = (a > 0).then_some(-(a as isize));
                    d.slice(axis as isize, b as isize, end)
                }
            })),
        // Samples carry no gradient (use stop_gradient semantics, as CD needs).
        Op::OneHot { .. } | Op::StopGradient | Op::DimSize { .. } | Op::Random { .. } => {
            vec![None; x.len()]
        }
        // y = softmax(x): dx = y (dy - sum(dy y))
        Op::Softmax(axis) => {
            let a = [*axis as isize];
            one(y * &(dy - &(dy * y).sum_axes(&a, true)))
        }
        // y = log_softmax(x): dx = dy - exp(y) sum(dy)
        Op::LogSoftmax(axis) => one(dy - &(&y.exp() * &dy.sum_axes(&[*axis as isize], true))),
        Op::Custom(c) => {
            let g = c.0.vjp(x, y, dy)?;
            if g.len() != x.len() {
                return Err(Error::Invalid {
                    op: c.0.name().to_string(),
                    detail: format!("vjp returned {} gradients for {} inputs", g.len(), x.len()),
                    loc: y.location(),
                });
            }
            g
        }
    })
}

/// Does no gradient flow through `op` at all, so that the sweep never looks past it?
/// (`stop_gradient`, and custom ops that are not differentiable on purpose.)
pub(crate) fn stops_gradient(op: &Op) -> bool {
    match op {
        Op::StopGradient => true,
        Op::Custom(c) => c.op().stops_gradient(),
        _ => false,
    }
}

/// Float dtype check used by the sweep.
pub(crate) fn differentiable(d: DType) -> bool {
    d.is_float()
}
