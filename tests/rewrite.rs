//! The optimizer never changes what a graph computes: every rule has a structural test (it
//! fires, the pattern is gone) and a value test with only that rule on; random graphs give the
//! same values and gradients with all rewrites as with none; stabilized forms stay finite.

#![allow(clippy::eq_op)] // x - x and x * x are the patterns some rewrites look for

use gradus::Conv2d;
use gradus::prelude::*;
use gradus::rewrite::{PASSES, RULES, StopReason};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One node of a compiled program's listing: its op and the ops of its operands.
struct Listed {
    op: String,
    operands: Vec<String>,
}

/// The nodes of `f`'s program, read from its listing (`%k = op(%i, %j) : type  [loc]`).
fn program(f: &Function) -> Vec<Listed> {
    let mut ops: Vec<String> = Vec::new();
    let mut args: Vec<Vec<usize>> = Vec::new();
    for line in f.debugprint().lines().filter(|l| l.starts_with('%')) {
        let (_, rhs) = line.split_once(" = ").expect("a node line");
        let close = rhs.rfind(") : ").expect("operands end before the type");
        let open = rhs[..close].rfind('(').expect("operands start");
        ops.push(rhs[..open].to_string());
        args.push(
            rhs[open + 1..close]
                .split(", ")
                .filter(|a| !a.is_empty())
                .map(|a| a.trim_start_matches('%').parse().expect("an operand index"))
                .collect(),
        );
    }
    args.iter()
        .zip(&ops)
        .map(|(a, op)| Listed {
            op: op.clone(),
            operands: a.iter().map(|&i| ops[i].clone()).collect(),
        })
        .collect()
}

/// Is the node's op `name` (with or without parameters, as in `sum{axes=[0]}`)?
fn is(op: &str, name: &str) -> bool {
    op == name || op.starts_with(&format!("{name}{{")) || op.starts_with(&format!("{name}["))
}

/// The pattern each rule rewrites, as a test on a node of the program: it must match no node
/// once the rule has run.
fn pattern(rule: &str) -> fn(&Listed) -> bool {
    match rule {
        // An op whose operands are all constants.
        "constant_fold" => |n| !n.operands.is_empty() && n.operands.iter().all(|o| o == "constant"),
        "drop_stop_gradient" => |n| is(&n.op, "stop_gradient"),
        "mul_by_one" | "mul_self_to_square" => |n| is(&n.op, "mul"),
        "add_zero" | "gemm_bias" | "conv_bias" => |n| is(&n.op, "add"),
        "sub_zero" | "sub_self" | "exp_minus_one_to_expm1" => |n| is(&n.op, "sub"),
        "div_by_one" => |n| is(&n.op, "div"),
        // (g / s) * (s * (1 - s)) with s = sigmoid(x)
        "log_sigmoid_grad" => |n| is(&n.op, "div") && is(&n.operands[1], "sigmoid"),
        "pow_one" | "pow_two_to_square" => |n| is(&n.op, "pow"),
        "double_neg" => |n| is(&n.op, "neg") && is(&n.operands[0], "neg"),
        "double_transpose" => |n| is(&n.op, "transpose") && is(&n.operands[0], "transpose"),
        "log_exp" => |n| is(&n.op, "log") && is(&n.operands[0], "exp"),
        "log_sigmoid_to_softplus" => |n| is(&n.op, "log") && is(&n.operands[0], "sigmoid"),
        "log_one_minus_sigmoid" => |n| is(&n.op, "log") && is(&n.operands[0], "sub"),
        "log_one_plus_to_log1p" => |n| is(&n.op, "log") && is(&n.operands[0], "add"),
        "log_softmax" => |n| is(&n.op, "log") && is(&n.operands[0], "softmax"),
        // log(sum(exp(x))) with x not shifted by its maximum.
        "log_sum_exp" => |n| is(&n.op, "exp") && !is(&n.operands[0], "sub"),
        // The size read through the exp instead of from the input itself.
        "shape_from_operand" => |n| is(&n.op, "dim_size") && is(&n.operands[0], "exp"),
        "matmul_to_gemm" => |n| is(&n.op, "matmul"),
        "slice_grads_to_concat" => |n| is(&n.op, "slice_grad"),
        "flatten_concat" => |n| is(&n.op, "concat") && is(&n.operands[0], "concat"),
        "gemm_alpha" => |n| is(&n.op, "mul") || is(&n.op, "neg"),
        // A difference whose second operand is a product.
        "gemm_sub" => {
            |n| is(&n.op, "sub") && (is(&n.operands[1], "gemm") || is(&n.operands[1], "matmul"))
        }
        other => panic!("no pattern for rule {other}"),
    }
}

/// Compile `outputs` of `inputs` three ways (all rewrites, only `rule`, none) and compare.
fn check_rule(rule: &str, inputs: &[&Expr], outputs: &[&Expr], feed: &[Tensor]) {
    let all = function(inputs, outputs).compile().unwrap();
    assert!(
        all.rewrite_stats().hits.get(rule).copied().unwrap_or(0) > 0,
        "{rule} did not fire:\n{}",
        all.rewrite_stats()
    );
    // The gemm rules refine a gemm node, which only matmul_to_gemm makes.
    let needs: &[&str] = if rule.starts_with("gemm_") {
        &["matmul_to_gemm"]
    } else {
        &[]
    };
    let others: Vec<&str> = RULES
        .iter()
        .map(|r| r.name)
        .filter(|n| *n != rule && !needs.contains(n))
        .chain(PASSES.iter().map(|p| p.name))
        .collect();
    let only = function(inputs, outputs)
        .exclude(&others)
        .compile()
        .unwrap();
    assert!(
        only.rewrite_stats().hits.get(rule).copied().unwrap_or(0) > 0,
        "{rule} alone did not fire"
    );
    assert!(
        only.rewrite_stats()
            .hits
            .keys()
            .all(|k| *k == rule || needs.contains(k)),
        "{}",
        only.rewrite_stats()
    );
    let none = function(inputs, outputs)
        .mode(Mode::Reference)
        .compile()
        .unwrap();
    let expect = none.call(feed).unwrap();
    for f in [&all, &only] {
        for (a, b) in f.call(feed).unwrap().iter().zip(&expect) {
            let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
            for (x, y) in a.iter().zip(&b) {
                assert!(
                    (x - y).abs() <= 1e-9 * (1.0 + y.abs()),
                    "{rule}: {x} vs {y}"
                );
            }
        }
    }
    // The pattern is there as written, and gone once the rule has run.
    let matches = pattern(rule);
    assert!(
        program(&none).iter().any(matches),
        "{rule}: the test graph lacks the pattern:\n{}",
        none.debugprint()
    );
    assert!(
        !program(&only).iter().any(matches),
        "{rule}: the pattern is still there:\n{}",
        only.debugprint()
    );
}

fn vec3() -> Tensor {
    vec![0.3f64, -1.2, 2.0].into()
}

#[test]
fn every_rule_fires_and_keeps_values() {
    let g = Graph::new();
    let x = g.vector("x", DType::F64);
    let m = g.input("m", DType::F64, &[Some(2), Some(3)]);
    let mv: Tensor = ndarray::arr2(&[[0.1f64, 0.2, -0.3], [1.0, -2.0, 0.5]]).into();
    // Images [2, 4, 5, 5] for the convolutions, with filters of two groups and a bias.
    let im = g.input("im", DType::F64, &[None, Some(4), Some(5), Some(5)]);
    let imv: Tensor = ndarray::Array4::from_shape_fn((2, 4, 5, 5), |(n, c, i, j)| {
        ((n * 100 + c * 25 + i * 5 + j) % 17) as f64 * 0.1 - 0.8
    })
    .into();
    let filters = g.constant(ndarray::Array4::from_shape_fn(
        (6, 2, 3, 3),
        |(o, c, i, j)| ((o * 18 + c * 9 + i * 3 + j) % 7) as f64 * 0.2 - 0.6,
    ));
    let bias = g.constant(ndarray::arr1(&[0.5f64, -1.0, 0.25, 2.0, 0.0, -0.75]));
    let conv = Conv2d::default()
        .with_stride(2)
        .with_padding(1)
        .with_groups(2);
    let one = |e: &Expr| vec![e.clone()];
    let cases: Vec<(&str, Vec<Expr>)> = vec![
        (
            "constant_fold",
            one(&(&x + &(g.scalar_constant(2.0, DType::F64) * 3.0))),
        ),
        ("drop_stop_gradient", one(&x.stop_gradient().exp())),
        ("mul_by_one", one(&(&x * 1.0).exp())),
        ("add_zero", one(&(&x + 0.0).exp())),
        ("sub_zero", one(&(&x - 0.0).exp())),
        ("div_by_one", one(&(&x / 1.0).exp())),
        ("pow_one", one(&x.pow(1.0).exp())),
        ("sub_self", one(&((&x - &x) + &x.exp()))),
        ("double_neg", one(&(-(-&x)).exp())),
        ("shape_from_operand", one(&x.exp().mean())),
        ("double_transpose", one(&m.t().t().exp())),
        ("log_exp", one(&x.exp().log().sin())),
        ("log_sigmoid_to_softplus", one(&x.sigmoid().log())),
        ("log_one_minus_sigmoid", one(&(1.0 - &x.sigmoid()).log())),
        (
            // The gradient of log(sigmoid(x)) as the rules of log and sigmoid give it, written
            // out (grad itself sends that gradient through its stable form).
            "log_sigmoid_grad",
            one(&{
                let s = x.sigmoid();
                (&x.exp() / &s) * (&s * &(1.0 - &s))
            }),
        ),
        ("log_one_plus_to_log1p", one(&(1.0 + &x.square()).log())),
        ("exp_minus_one_to_expm1", one(&(x.exp() - 1.0))),
        ("log_softmax", one(&m.softmax(1).log())),
        ("log_sum_exp", one(&m.exp().sum_axes(&[1], false).log())),
        (
            // The gradients of three adjacent slices of m along its columns, each by its own
            // grad and added (one grad of their sum already assembles them by a concat).
            "slice_grads_to_concat",
            one(&{
                let part = |start: isize, f: fn(&Expr) -> Expr| {
                    let cost = f(&m.slice(1, start, Some(start + 1))).sum();
                    grad(&cost, &[&m]).unwrap().remove(0)
                };
                part(0, |x| x.exp()) + part(1, |x| x.sin()) + part(2, |x| x.square())
            }),
        ),
        (
            "flatten_concat",
            one(&gradus::concat(&[&gradus::concat(&[&m, &m.exp()], 1), &m], 1).sin()),
        ),
        ("mul_self_to_square", one(&(&x * &x))),
        ("pow_two_to_square", one(&x.pow(2.0))),
        ("matmul_to_gemm", one(&m.t().matmul(&m))),
        (
            "gemm_bias",
            one(&(m.matmul(&m.t()) + &m.sum_axes(&[1], true))),
        ),
        ("gemm_alpha", one(&((-&m).matmul(&m.t()) * 0.5))),
        (
            // W - xᵀ·g (alone), and an update as a step writes it, W - lr * (xᵀ·g0 + x1ᵀ·g1):
            // the second product onto the first (gemm_bias), the rate folded into both
            // (gemm_alpha), and both onto W.
            "gemm_sub",
            {
                let w = m.t().matmul(&m).exp();
                vec![
                    &w - m.t().matmul(&m.cos()),
                    &w - (m.t().matmul(&m.sin()) + m.cos().t().matmul(&m)) * 0.1,
                ]
            },
        ),
        (
            "conv_bias",
            one(&(im.conv2d(&filters, conv) + bias.reshape(&[6, 1, 1])).relu()),
        ),
    ];
    let names: Vec<&str> = cases.iter().map(|c| c.0).collect();
    for r in RULES {
        assert!(names.contains(&r.name), "rule {} has no test here", r.name);
    }
    for (rule, outs) in &cases {
        let refs: Vec<&Expr> = outs.iter().collect();
        let uses_m = [
            "double_transpose",
            "slice_grads_to_concat",
            "flatten_concat",
            "log_softmax",
            "log_sum_exp",
            "matmul_to_gemm",
            "gemm_bias",
            "gemm_alpha",
            "gemm_sub",
        ]
        .contains(rule);
        if *rule == "conv_bias" {
            check_rule(rule, &[&im], &refs, std::slice::from_ref(&imv));
        } else if uses_m {
            check_rule(rule, &[&m], &refs, std::slice::from_ref(&mv));
        } else {
            check_rule(rule, &[&x], &refs, &[vec3()]);
        }
    }
}

#[test]
fn merge_removes_duplicates_and_can_be_switched_off() {
    let g = Graph::new();
    let x = g.vector("x", DType::F64);
    // Two equal constants built apart are two nodes in the user's graph; merge makes one.
    let a = &x * &g.constant(vec![2.0f64, 2.0, 2.0]);
    let b = &x * &g.constant(vec![2.0f64, 2.0, 2.0]);
    let y = (&a.exp() + &b.exp()).sum();
    let f = function(&[&x], &[&y]).compile().unwrap();
    assert!(
        f.rewrite_stats().hits["merge"] >= 2,
        "{}",
        f.rewrite_stats()
    );
    let off = function(&[&x], &[&y])
        .exclude(&["merge"])
        .compile()
        .unwrap();
    assert!(!off.rewrite_stats().hits.contains_key("merge"));
    assert!(f.len() < off.len());
    assert_eq!(f.call(&[vec3()]).unwrap(), off.call(&[vec3()]).unwrap());
    let err = function(&[&x], &[&y])
        .exclude(&["no_such_rule"])
        .compile()
        .err()
        .unwrap();
    assert!(err.to_string().contains("no_such_rule"), "{err}");
}

#[test]
fn stabilized_forms_are_finite_and_correct_with_their_gradients() {
    let g = Graph::new();
    let x = g.vector("x", DType::F64);
    let far: Tensor = vec![-1000.0f64, 0.0, 1000.0].into();

    // log(sigmoid(x)) at -1000 is -1000; its gradient sigmoid(-x) is 1.
    let ls = x.sigmoid().log();
    let gx = grad(&ls.sum(), &[&x]).unwrap().remove(0);
    let out = function(&[&x], &[&ls, &gx])
        .compile()
        .unwrap()
        .call(std::slice::from_ref(&far))
        .unwrap();
    let (v, d) = (out[0].to_f64_vec(), out[1].to_f64_vec());
    assert_eq!(v[0], -1000.0);
    assert!(
        (v[1] + 2f64.ln()).abs() < 1e-12 && v[2].abs() < 1e-12,
        "{v:?}"
    );
    assert_eq!(d, vec![1.0, 0.5, 0.0]);
    // Without the optimizer the value is the graph as written, log(0) = -inf (so the test can
    // fail); the gradient is finite all the same, as grad built it in its stable form.
    let raw = function(&[&x], &[&ls, &gx])
        .mode(Mode::Reference)
        .compile()
        .unwrap()
        .call(&[far])
        .unwrap();
    assert!(raw[0].to_f64_vec()[0].is_infinite());
    assert_eq!(raw[1].to_f64_vec(), vec![1.0, 0.5, 0.0]);

    // Softmax cross-entropy on logits of 1e4 and its gradient.
    let logits = g.input("logits", DType::F32, &[None, Some(3)]);
    let labels = g.input("labels", DType::I64, &[None]);
    let ce = logits.softmax_cross_entropy(&labels).mean();
    let gl = grad(&ce, &[&logits]).unwrap().remove(0);
    let f = function(&[&logits, &labels], &[&ce, &gl])
        .compile()
        .unwrap();
    let out = f
        .call(&[
            ndarray::arr2(&[[1e4f32, 0.0, -1e4]]).into(),
            vec![1i64].into(),
        ])
        .unwrap();
    assert!((out[0].item().unwrap() - 1e4).abs() < 1.0, "{}", out[0]);
    assert_eq!(out[1].to_f64_vec(), vec![1.0, -1.0, 0.0]);

    // logsumexp of 1e4 and its gradient (softmax weights).
    let m = g.input("m", DType::F64, &[Some(1), Some(2)]);
    let lse = m.logsumexp_axes(&[1], false).sum();
    let gm = grad(&lse, &[&m]).unwrap().remove(0);
    let out = function(&[&m], &[&lse, &gm])
        .compile()
        .unwrap()
        .call(&[ndarray::arr2(&[[1e4f64, 1e4]]).into()])
        .unwrap();
    assert!((out[0].item().unwrap() - (1e4 + 2f64.ln())).abs() < 1e-9);
    assert_eq!(out[1].to_f64_vec(), vec![0.5, 0.5]);
}

/// Written naively, `log(softmax(x))` and `log(sum(exp(x)))` have stable gradients too: `grad`
/// sends the cotangent past the softmax or the sum of exponentials in its stable form.
#[test]
fn naive_log_softmax_and_log_sum_exp_have_stable_gradients() {
    let g = Graph::new();
    let m = g.input("m", DType::F64, &[Some(2), Some(3)]);
    let huge: Tensor = ndarray::arr2(&[[1e4f64, 0.0, -1e4], [1e4, 1e4, 0.0]]).into();
    let run = |cost: &Expr, mode: Mode| {
        let gm = grad(cost, &[&m]).unwrap().remove(0);
        function(&[&m], &[cost, &gm])
            .mode(mode)
            .compile()
            .unwrap()
            .call(std::slice::from_ref(&huge))
            .unwrap()
    };
    // d/dx sum(log softmax(x)) = 1 - 3 softmax(x) per row.
    let ls = m.softmax(1).log().sum();
    for mode in [Mode::Fast, Mode::Reference] {
        let out = run(&ls, mode);
        assert_eq!(
            out[1].to_f64_vec(),
            vec![-2.0, 1.0, 1.0, -0.5, -0.5, 1.0],
            "{mode:?}"
        );
    }
    // d/dx sum(log sum(exp(x))) is the softmax of each row.
    let lse = m.exp().sum_axes(&[1], false).log().sum();
    let out = run(&lse, Mode::Fast);
    assert!(
        (out[0].item().unwrap() - (2e4 + 2f64.ln())).abs() < 1e-9,
        "{}",
        out[0]
    );
    assert_eq!(out[1].to_f64_vec(), vec![1.0, 0.0, 0.0, 0.5, 0.5, 0.0]);
    // Over both axes, with keepdims, weighted, and with the softmax read elsewhere too: the
    // gradients match finite differences at ordinary values.
    let w = g.constant(ndarray::arr2(&[[1.0f64, -2.0, 0.5], [0.25, 3.0, -1.0]]));
    let costs = [
        (&m.exp().sum_axes(&[0, 1], true).log() * 2.0).sum(),
        (&m.softmax(1).log() * &w).sum() + (&m.softmax(1) * &w).sum(),
        (&m.exp().sum_axes(&[0], false).log() * &w.sum_axes(&[0], false)).sum(),
    ];
    let at: Tensor = ndarray::arr2(&[[0.3f64, -1.2, 2.0], [0.7, 0.1, -0.4]]).into();
    for cost in &costs {
        let report = gradus::gradcheck::GradCheck::new(cost, &[&m])
            .at(std::slice::from_ref(&at))
            .elementwise()
            .run()
            .unwrap();
        assert!(report.passed(), "{report}");
    }
}

/// A random graph over a [3, 4] input, a [4] input and a [3, 1] input, mixing elementwise ops,
/// broadcasting, reductions, matmul and the patterns the rules look for.
fn random_graph(rng: &mut StdRng, dtype: DType) -> (Graph, Vec<Expr>, Expr) {
    let g = Graph::new();
    let x = g.input("x", dtype, &[Some(3), Some(4)]);
    let y = g.input("y", dtype, &[Some(4)]);
    let z = g.input("z", dtype, &[Some(3), Some(1)]);
    let w = g.constant(
        Tensor::from_f64(
            &[4, 4],
            (0..16)
                .map(|i| ((i * 7 % 11) as f64 - 5.0) / 10.0)
                .collect(),
            dtype,
        )
        .unwrap(),
    );
    let mut pool = vec![x.clone(), &x + &y, &x * &z];
    for _ in 0..rng.random_range(4..12) {
        let a = pool[rng.random_range(0..pool.len())].clone();
        let b = pool[rng.random_range(0..pool.len())].clone();
        let e = match rng.random_range(0..18) {
            0 => a.tanh(),
            1 => a.sigmoid().log(),
            2 => (1.0 - &a.sigmoid()).log(),
            3 => (1.0 + &a.square()).log(),
            4 => a.tanh().exp() - 1.0,
            5 => &a * &b,
            6 => &a + &(&b * 1.0),
            7 => &a - &(&b / &(b.square() + 1.0)),
            8 => a.matmul(&w).tanh(),
            9 => a.softmax(1).log(),
            10 => a.tanh().exp().sum_axes(&[1], true).log() + &a,
            11 => &a * &a + &a.pow(2.0),
            12 => (&a - &a) + &b.sin(),
            13 => a.max_axes(&[0], true) * &b,
            14 => a.mean_axes(&[1], true) - &b,
            15 => (-(-&a)).softplus(),
            16 => a.t().t().cos(),
            _ => &a + &y,
        };
        pool.push(e);
    }
    let cost = pool
        .iter()
        .skip(1)
        .fold(pool[0].sum(), |acc, e| acc + e.sum());
    (g, vec![x, y, z], cost)
}

#[test]
fn hundreds_of_random_graphs_agree_with_and_without_rewrites() {
    let mut rng = StdRng::seed_from_u64(2024);
    let mut fired = std::collections::BTreeSet::new();
    for case in 0..300 {
        let dtype = if case % 2 == 0 {
            DType::F64
        } else {
            DType::F32
        };
        let (_g, ins, cost) = random_graph(&mut rng, dtype);
        let refs: Vec<&Expr> = ins.iter().collect();
        let grads = grad(&cost, &refs).unwrap();
        let mut outs = vec![&cost];
        outs.extend(grads.iter());
        let fast = function(&refs, &outs).compile().unwrap();
        let slow = function(&refs, &outs)
            .mode(Mode::Reference)
            .compile()
            .unwrap();
        fired.extend(fast.rewrite_stats().hits.keys().copied());
        let feed: Vec<Tensor> = [vec![3, 4], vec![4], vec![3, 1]]
            .iter()
            .map(|s: &Vec<usize>| {
                let n: usize = s.iter().product();
                Tensor::from_f64(
                    s,
                    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect(),
                    dtype,
                )
                .unwrap()
            })
            .collect();
        let (a, b) = (fast.call(&feed).unwrap(), slow.call(&feed).unwrap());
        // The stabilized forms are more accurate than the graph as written (1 - sigmoid(x) loses
        // digits as x grows), so the two may differ by more than rounding.
        let tol = if dtype == DType::F64 { 1e-7 } else { 2e-3 };
        for (k, (p, q)) in a.iter().zip(&b).enumerate() {
            for (u, v) in p.to_f64_vec().iter().zip(q.to_f64_vec()) {
                assert!(
                    (u - v).abs() <= tol * (1.0 + v.abs()) || (u.is_nan() && v.is_nan()),
                    "case {case} output {k}: {u} vs {v}\n{}",
                    fast.rewrite_stats()
                );
            }
        }
    }
    assert!(fired.len() >= 10, "only {fired:?} fired");
}

#[test]
fn a_deep_residual_stack_compiles_to_a_fixed_point() {
    // 250 stages of x + tanh(x W): the add chain that made PyTensor's distributor rewrite run
    // for more than 15 minutes. Every phase must stop at a fixed point, not at its pass limit,
    // and the program must stay linear in the depth.
    let g = Graph::new();
    let x0 = g.input("x", DType::F32, &[None, Some(8)]);
    let w = g.shared("w", ndarray::Array2::<f32>::eye(8) * 0.1);
    let mut x = x0.clone();
    for _ in 0..250 {
        x = &x + &x.matmul(&w).tanh();
    }
    let cost = x.sum();
    let gw = grad(&cost, &[&w]).unwrap().remove(0);
    let f = function(&[&x0], &[&cost, &gw]).compile().unwrap();
    let stats = f.rewrite_stats();
    assert!(
        stats
            .phases
            .iter()
            .all(|run| run.stop == StopReason::FixedPoint),
        "{stats}"
    );
    assert!(f.len() < 250 * 12, "{} nodes", f.len());
    let feed: Tensor = ndarray::Array2::<f32>::from_elem((2, 8), 0.01).into();
    let r = function(&[&x0], &[&cost, &gw])
        .mode(Mode::Reference)
        .compile()
        .unwrap();
    let (a, b) = (
        f.call(std::slice::from_ref(&feed)).unwrap(),
        r.call(&[feed]).unwrap(),
    );
    for (p, q) in a.iter().zip(&b) {
        for (u, v) in p.to_f64_vec().iter().zip(q.to_f64_vec()) {
            assert!((u - v).abs() <= 1e-3 * (1.0 + v.abs()), "{u} vs {v}");
        }
    }
}

#[test]
fn fusion_alone_keeps_values_and_leaves_no_elementwise_node() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(2), Some(3)]);
    let b = g.vector("b", DType::F64);
    let y = ((&x + &b).tanh() * &x - x.exp() / 3.0)
        .sigmoid()
        .sum_axes(&[1], false);
    let gx = grad(&y.sum(), &[&x]).unwrap().remove(0);
    let rules: Vec<&str> = RULES.iter().map(|r| r.name).chain(["merge"]).collect();
    let only = function(&[&x, &b], &[&y, &gx])
        .exclude(&rules)
        .compile()
        .unwrap();
    let hits: Vec<&str> = only.rewrite_stats().hits.keys().copied().collect();
    assert_eq!(hits, ["fuse_elementwise"], "{}", only.rewrite_stats());
    let listing = only.debugprint();
    for op in [
        "= add(",
        "= mul(",
        "= tanh(",
        "= exp(",
        "= sigmoid(",
        "= sub(",
    ] {
        assert!(!listing.contains(op), "{op} left unfused:\n{listing}");
    }
    let none = function(&[&x, &b], &[&y, &gx])
        .mode(Mode::Reference)
        .compile()
        .unwrap();
    let feed = [
        Tensor::from_f64(&[2, 3], vec![0.1, -0.5, 1.2, 2.0, -1.0, 0.0], DType::F64).unwrap(),
        Tensor::from_f64(&[3], vec![0.3, -0.2, 0.1], DType::F64).unwrap(),
    ];
    for (p, q) in only
        .call(&feed)
        .unwrap()
        .iter()
        .zip(none.call(&feed).unwrap())
    {
        for (u, v) in p.to_f64_vec().iter().zip(q.to_f64_vec()) {
            assert!((u - v).abs() <= 1e-13 * (1.0 + v.abs()), "{u} vs {v}");
        }
    }
}

#[test]
fn the_pass_limit_is_the_callers() {
    // Canonicalizing -(-(-(-x))) * 1 takes more than one pass: at a limit of one, the phase
    // says it stopped at the limit; by default it reaches a fixed point with the same values.
    let g = Graph::new();
    let x = g.vector("x", DType::F64);
    let y = (-(-(-(-(&x * 1.0))))).exp();
    let phase = |f: &Function| {
        f.rewrite_stats()
            .phases
            .iter()
            .find(|r| r.phase == gradus::rewrite::Phase::Canonicalize)
            .copied()
            .expect("the phase ran")
    };
    let limited = function(&[&x], &[&y]).pass_limit(1).compile().unwrap();
    let run = phase(&limited);
    assert_eq!(
        (run.passes, run.stop),
        (1, StopReason::PassLimit),
        "{}",
        limited.rewrite_stats()
    );
    let full = function(&[&x], &[&y]).compile().unwrap();
    assert_eq!(phase(&full).stop, StopReason::FixedPoint);
    assert_eq!(
        limited.call(&[vec3()]).unwrap(),
        full.call(&[vec3()]).unwrap()
    );
}

#[test]
fn fused_kernels_read_slices_in_place_with_the_values_of_the_copies() {
    // Slices of a product's result, of an input (along either axis, from the end, to the end),
    // of a bool mask, and the whole operand beside a part of it (never overwritten in place),
    // each read by a kernel: no slice is left, and every value is the reference mode's, on
    // inputs of the declared and of other run-time sizes.
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[None, Some(8)]);
    let w = g.shared(
        "w",
        ndarray::Array2::from_shape_fn((8, 12), |(i, j)| ((i * 5 + j) % 7) as f64 * 0.1 - 0.3),
    );
    let gates = x.matmul(&w);
    let part = |k: isize| gates.slice(1, 3 * k, Some(3 * k + 3));
    let cell = &part(0).sigmoid() * &part(1).tanh() + &part(2).sigmoid() * &part(3);
    let rows = (x.slice(0, 1, None) * 2.0).exp() - &x.slice(0, 0, Some(-1)).tanh()
        + x.slice(1, -4, None).sum_axes(&[1], true).slice(0, 1, None);
    let mask = x.gt(0.0).slice(1, 2, Some(5));
    let masked = mask.select(x.slice(1, 0, Some(3)), &(x.slice(1, 5, None) * 0.5));
    let beside = (&x.exp() * 3.0).slice(1, 4, None) + &x.slice(1, 0, Some(4))
        - &(x.slice(1, 4, None) + &x.slice(1, 0, Some(4))).square();
    // A product's result read whole and, broadcast along its rows, its first column: the
    // kernel must not write over it in place (later rows would read a new first column).
    let other = x.matmul(&(&w * 0.5));
    let scaled = &other * &other.slice(1, 0, Some(1));
    let outs = [&cell, &rows, &masked, &beside, &scaled];
    let f = function(&[&x], &outs).compile().unwrap();
    let listing = f.debugprint();
    // The kernels read the parts of a product, an input and a mask; a part of what another
    // kernel makes, and a slice a sum reads, stay slices.
    for part in [
        "i1[axis 1, 3:6]",
        "i1[axis 0, 0:-1]",
        "i1[axis 1, 2:5]",
        "i0[axis 1, 5:]",
    ] {
        assert!(listing.contains(part), "no {part}:\n{listing}");
    }
    assert_eq!(listing.matches("= slice{").count(), 2, "{listing}");
    let none = function(&[&x], &outs)
        .mode(Mode::Reference)
        .compile()
        .unwrap();
    for n in [1, 3, 6, 70] {
        let feed = [Tensor::from(ndarray::Array2::from_shape_fn(
            (n, 8),
            |(i, j)| ((i * 3 + j * 7) % 11) as f64 * 0.2 - 1.0,
        ))];
        for (p, q) in f.call(&feed).unwrap().iter().zip(none.call(&feed).unwrap()) {
            assert_eq!(p.shape(), q.shape());
            for (u, v) in p.to_f64_vec().iter().zip(q.to_f64_vec()) {
                assert!(
                    (u - v).abs() <= 1e-13 * (1.0 + v.abs()),
                    "{u} vs {v} at {n} rows"
                );
            }
        }
    }
}

/// `c - x·B` with `c` of more rows than the product at run time (both `[?, 4]` to the types):
/// a mistake, which the subtraction reports (only a dim declared 1 broadcasts), and still
/// reports, at the user's line, once the product is accumulated onto `c` (gemm_sub).
#[test]
fn a_product_onto_a_matrix_of_other_rows_is_the_subtractions_error() {
    let g = Graph::new();
    let c = g.input("c", DType::F64, &[None, Some(4)]);
    let x = g.input("x", DType::F64, &[None, Some(3)]);
    let b = g.constant(ndarray::Array2::from_shape_fn((3, 4), |(i, j)| {
        (i * 4 + j) as f64 * 0.5
    }));
    let line = line!() + 1;
    let out = &c - x.matmul(&b);
    let feed: Vec<Tensor> = vec![
        ndarray::Array2::from_shape_fn((5, 4), |(i, j)| (i + j) as f64).into(),
        ndarray::arr2(&[[1.0f64, -1.0, 2.0]]).into(),
    ];
    for mode in [Mode::Reference, Mode::Fast] {
        let f = function(&[&c, &x], &[&out]).mode(mode).compile().unwrap();
        match f.call(&feed) {
            Err(Error::Runtime { op, loc, detail }) => {
                assert_eq!((op.as_str(), loc.line()), ("sub", line), "{mode:?}");
                let sources = "the inputs `c` (fed [5, 4]) and `x` (fed [1, 3])";
                assert!(detail.contains(sources), "{mode:?}: {detail}");
            }
            other => panic!("{mode:?}: {other:?}"),
        }
    }
}
