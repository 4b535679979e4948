//! The importer's one list of ONNX operators: dispatch, the unsupported-operator message and the README's list (a
//! test compares them) all come from [`OPERATORS`].

use super::{Node, Walker};
use crate::error::Result;

/// How the walker reads one operator.
type Read = for<'g, 'n> fn(&mut Walker<'g>, &Node<'n>) -> Result<()>;

/// One ONNX operator the importer reads: its name, what of it is supported, and the walker's method that reads it.
pub(super) struct Operator {
    /// The ONNX op type.
    pub(super) op: &'static str,
    /// Limits worth naming in the error message (empty when none).
    note: &'static str,
    /// Named among the supported operators; the others are read only as parts of a pattern.
    listed: bool,
    /// The walker's method for it.
    pub(super) read: Read,
}

/// An operator users may put in a model.
const fn op(op: &'static str, note: &'static str, read: Read) -> Operator {
    Operator {
        op,
        note,
        listed: true,
        read,
    }
}

/// An operator read only as part of a pattern (not named as supported on its own).
const fn part(op: &'static str, read: Read) -> Operator {
    Operator {
        op,
        note: "",
        listed: false,
        read,
    }
}

/// Every operator the importer reads.
pub(super) const OPERATORS: &[Operator] = &[
    op("Gemm", "", |w, n| w.gemm(n)),
    op(
        "MatMul",
        "(by a constant weight, +Add; every token of a sequence)",
        |w, n| w.matmul(n),
    ),
    op("Conv", "(2-D, group 1 or depthwise)", |w, n| w.conv(n)),
    op("BatchNormalization", "(after Conv/Gemm)", |w, n| w.batch_norm(n)),
    op("Relu", "", |w, n| w.relu(n)),
    op("LeakyRelu", "", |w, n| w.activation(n)),
    op("Clip", "", |w, n| w.activation(n)),
    op("Sigmoid", "", |w, n| w.activation(n)),
    op("Tanh", "", |w, n| w.activation(n)),
    op("HardSwish", "", |w, n| w.activation(n)),
    op("Gelu", "", |w, n| w.activation(n)),
    op("Sqrt", "", |w, n| w.activation(n)),
    op("Reciprocal", "", |w, n| w.activation(n)),
    op("Pow", "(by the constant 2)", |w, n| w.pow(n)),
    op("MaxPool", "", |w, n| w.pool(n)),
    op("AveragePool", "", |w, n| w.pool(n)),
    op("GlobalAveragePool", "", |w, n| w.pool(n)),
    op("ReduceMean", "", |w, n| w.reduce_mean(n)),
    op("Add", "", |w, n| w.add(n)),
    op("Sub", "(of two tensors, broadcast, or by a constant)", |w, n| w.sub(n)),
    op("Mul", "(of two tensors, broadcast, or by a constant)", |w, n| w.mul(n)),
    op(
        "Div",
        "(by a constant, or by a tensor through a reciprocal table)",
        |w, n| w.div(n),
    ),
    op("Concat", "", |w, n| w.concat(n)),
    op("Flatten", "", |w, n| w.reshape(n)),
    op("Reshape", "", |w, n| w.reshape(n)),
    op("Transpose", "", |w, n| w.transpose(n)),
    op("Slice", "(constant bounds)", |w, n| w.slice(n)),
    op("Split", "", |w, n| w.split(n)),
    op("Identity", "", |w, n| w.alias(n)),
    op("Dropout", "(inference)", |w, n| w.dropout(n)),
    op("Softmax", "(last axis; after a causal mask)", |w, n| w.softmax(n)),
    op("LayerNormalization", "(exact integer inverse square root)", |w, n| {
        w.layer_norm(n)
    }),
    op("Where", "(a constant mask of −∞ before Softmax)", |w, n| {
        w.where_mask(n)
    }),
    op("ArgMax", "(last axis)", |w, n| w.argmax(n)),
    op(
        "Gather",
        "(a constant embedding table by the integer input's token ids, or by constant indices)",
        |w, n| w.gather(n),
    ),
    part("Constant", |w, n| w.constant_node(n)),
];

/// The operators a model may use, as the unsupported-operator error lists them.
pub fn supported_operators() -> String {
    let named = OPERATORS.iter().filter(|o| o.listed).map(|o| match o.note {
        "" => o.op.to_string(),
        note => format!("{} {note}", o.op),
    });
    named.collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_and_the_error_list_every_supported_operator() {
        let readme = include_str!("../../../README.md");
        let list = readme
            .split("- **Operators**:")
            .nth(1)
            .and_then(|rest| rest.split("\n- **").next())
            .expect("the README's operator list");
        let message = crate::ProverError::operator("LSTM", "lstm1").to_string();
        for operator in OPERATORS.iter().filter(|o| o.listed) {
            assert!(
                list.contains(operator.op),
                "the README's operator list lacks {}",
                operator.op
            );
            assert!(
                message.contains(operator.op),
                "the error message lacks {}: {message}",
                operator.op
            );
        }
        let mut names: Vec<&str> = OPERATORS.iter().map(|o| o.op).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OPERATORS.len(), "an operator is listed twice");
    }
}
