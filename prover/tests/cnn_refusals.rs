//! CNN graphs the importer refuses, each with an error naming the operator, the node and (for attributes) the
//! attribute: dilated or grouped convolutions, SAME padding, ceil-mode pools, unsupported operators, additions
//! of shapes that do not broadcast, BatchNormalization or a constant Add that has no linear layer to fold into,
//! GELU look-alikes.

mod onnx;

use onnx::{attr_int, attr_ints, attr_str, model, node, random_values, scalar, tensor, write, Msg};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use zkinfer_prover::{import_onnx, ProverError};

fn conv_inits(rng: &mut ChaCha8Rng, name: &str, dims: [i64; 4], r: f32) -> Vec<Msg> {
    let n = dims.iter().product::<i64>() as usize;
    vec![
        tensor(&format!("{name}.w"), &dims, &random_values(rng, n, r)),
        tensor(
            &format!("{name}.b"),
            &[dims[0]],
            &random_values(rng, dims[0] as usize, 0.2),
        ),
    ]
}

fn import_err(nodes: Vec<Msg>, inits: Vec<Msg>, input: &[i64]) -> ProverError {
    import_onnx(write("bad.onnx", &model(nodes, inits, input))).unwrap_err()
}

fn bad_attr(err: &ProverError) -> (&str, &str, &str) {
    match err {
        ProverError::UnsupportedAttribute { op, node, attr, .. } => (op, node, attr),
        other => panic!("expected UnsupportedAttribute, got {other}"),
    }
}

#[test]
fn unsupported_attributes_ops_and_structures_are_refused() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let w = || conv_inits(&mut ChaCha8Rng::seed_from_u64(9), "c", [2, 2, 3, 3], 0.5);
    let conv = |attrs| vec![node("Conv", "my_conv", &["x", "c.w", "c.b"], &["y"], attrs)];
    let x = [1, 2, 6, 6];
    let err = import_err(conv(vec![attr_ints("dilations", &[2, 2])]), w(), &x);
    assert_eq!(bad_attr(&err), ("Conv", "my_conv", "dilations"));
    assert!(
        err.to_string().contains("my_conv") && err.to_string().contains("[2, 2]"),
        "{err}"
    );
    let err = import_err(conv(vec![attr_str("auto_pad", "SAME_UPPER")]), w(), &x);
    assert_eq!(bad_attr(&err), ("Conv", "my_conv", "auto_pad"));
    let grouped = vec![node("Conv", "g", &["x", "g.w"], &["y"], vec![attr_int("group", 2)])];
    let err = import_err(
        grouped,
        vec![tensor("g.w", &[4, 2, 1, 1], &random_values(&mut rng, 8, 1.0))],
        &[1, 4, 3, 3],
    );
    assert_eq!(bad_attr(&err), ("Conv", "g", "group"));
    let pool = |op: &str, attrs: Vec<Msg>| vec![node(op, "p", &["x"], &["y"], attrs)];
    let k = || attr_ints("kernel_shape", &[2, 2]);
    let err = import_err(pool("MaxPool", vec![k(), attr_int("ceil_mode", 1)]), vec![], &x);
    assert_eq!(bad_attr(&err), ("MaxPool", "p", "ceil_mode"));
    let err = import_err(pool("AveragePool", vec![k(), attr_int("ceil_mode", 1)]), vec![], &x);
    assert_eq!(bad_attr(&err), ("AveragePool", "p", "ceil_mode"));
    let err = import_err(pool("MaxPool", vec![k(), attr_ints("dilations", &[2, 2])]), vec![], &x);
    assert_eq!(bad_attr(&err), ("MaxPool", "p", "dilations"));

    let lstm = vec![node("LSTM", "rnn", &["x", "c.w", "c.b"], &["y"], vec![])];
    let err = import_err(lstm, w(), &x);
    assert!(
        matches!(&err, ProverError::UnsupportedOperator { op, node } if op == "LSTM" && node == "rnn"),
        "{err}"
    );

    // A per-channel mean added back to every pixel broadcasts (tests/sequence_layers.rs checks the arithmetic);
    // a pooled map added to the full-size one does not.
    let broadcast = vec![
        node("GlobalAveragePool", "gap", &["x"], &["g"], vec![]),
        node("Add", "channel_add", &["x", "g"], &["y"], vec![]),
    ];
    import_onnx(write("broadcast-add.onnx", &model(broadcast, vec![], &x))).expect("a broadcast Add imports");
    let mismatched = vec![
        node("MaxPool", "mp", &["x"], &["m"], vec![k()]),
        node("Add", "bad_add", &["x", "m"], &["y"], vec![]),
    ];
    let err = import_err(mismatched, vec![], &x);
    assert!(
        matches!(&err, ProverError::UnsupportedGraph { reason } if reason.contains("bad_add") && reason.contains("do not broadcast")),
        "{err}"
    );
    let bn_after_pool = vec![
        node("MaxPool", "mp", &["x"], &["m"], vec![k()]),
        node(
            "BatchNormalization",
            "bn",
            &["m", "c.b", "c.b", "c.b", "c.b"],
            &["y"],
            vec![],
        ),
    ];
    let err = import_err(bn_after_pool, w(), &x);
    assert!(
        matches!(&err, ProverError::UnsupportedGraph { reason } if reason.contains("BatchNormalization `bn`")),
        "{err}"
    );
    let shared_bias = vec![
        node("Conv", "c", &["x", "c.w", "c.b"], &["h"], vec![]),
        node("Add", "bias", &["h", "c.b"], &["k"], vec![]),
        node("Add", "res", &["k", "h"], &["y"], vec![]),
    ];
    let err = import_err(shared_bias, w(), &x);
    assert!(
        matches!(&err, ProverError::UnsupportedGraph { reason } if reason.contains("Add `bias`")),
        "{err}"
    );
}

#[test]
fn lookalikes_of_supported_patterns_are_refused() {
    let x = [1, 4];
    // x / 2 → Erf → … is not GELU (the divisor must be √2): the Div is a division by a constant, and the Erf is
    // reported as unsupported.
    let nodes = vec![
        node("Div", "/act/Div", &["x", "two"], &["d"], vec![]),
        node("Erf", "/act/Erf", &["d"], &["e"], vec![]),
        node("Add", "/act/Add", &["e", "one"], &["p"], vec![]),
        node("Mul", "/act/Mul", &["x", "p"], &["m"], vec![]),
        node("Mul", "/act/Mul_1", &["m", "half"], &["y"], vec![]),
    ];
    let inits = vec![scalar("two", 2.0), scalar("one", 1.0), scalar("half", 0.5)];
    let err = import_err(nodes, inits, &x);
    assert!(
        matches!(&err, ProverError::UnsupportedOperator { op, node } if op == "Erf" && node == "/act/Erf"),
        "{err}"
    );
    // Dropout in training mode is not inference.
    let nodes = vec![node("Dropout", "drop", &["x", "", "train"], &["y"], vec![])];
    let err = import_err(nodes, vec![Msg::default().int(2, 9).str(8, "train").bytes(9, &[1])], &x);
    assert_eq!(bad_attr(&err), ("Dropout", "drop", "training_mode"));
    // A Clip whose bound is not a constant.
    let nodes = vec![node("Clip", "clip", &["x", "x"], &["y"], vec![])];
    assert!(
        matches!(import_err(nodes, vec![], &x), ProverError::UnsupportedGraph { reason } if reason.contains("Clip `clip`"))
    );
    // Transpose of an unknown permutation.
    let nodes = vec![node("Transpose", "t", &["x"], &["y"], vec![attr_ints("perm", &[0, 0])])];
    assert_eq!(bad_attr(&import_err(nodes, vec![], &x)), ("Transpose", "t", "perm"));
}
