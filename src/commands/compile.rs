//! `zkinfer compile`: import → calibrate/quantize → accuracy report → circuit plan → `.zkm`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use zkinfer_circuits::layout;
use zkinfer_prover::{save_model, Compiled, Dataset, Precision};

use crate::report::print_json;

/// Arguments of `compile`.
#[derive(Args)]
pub struct CompileArgs {
    /// The float ONNX model.
    pub model: PathBuf,
    /// Calibration samples (EZKL input.json layout: {"input_data": [[f32, ...], ...]}).
    #[arg(long)]
    pub calibration: PathBuf,
    /// Held-out samples (with "labels") for the float vs int8 accuracy report.
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Output `.zkm` file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Bits of the Gemm/MatMul/Conv weights (2 to 16; activations stay int8). Wider weights cost one more
    /// range-check limb per output for each 8 bits.
    #[arg(long, default_value_t = 8, value_name = "BITS")]
    pub weight_bits: u32,
    /// Bits of the model's outputs (8 or 16) when its last layer is linear: 16-bit logits keep near ties apart.
    #[arg(long, default_value_t = 8, value_name = "BITS")]
    pub output_bits: u32,
}

impl CompileArgs {
    /// The precision the flags ask for.
    pub fn precision(&self) -> Precision {
        Precision {
            weight_bits: self.weight_bits,
            output_bits: self.output_bits,
        }
    }
}

/// Compiles `onnx` at `precision` (the library's [`zkinfer_prover::compile`]) and writes the model to `output`.
pub fn compile(
    onnx: &Path,
    calibration: &Path,
    test: Option<&Path>,
    output: &Path,
    precision: Precision,
) -> Result<Compiled> {
    let calibration = Dataset::load(calibration)?;
    let test = test.map(Dataset::load).transpose()?;
    let compiled = zkinfer_prover::compile(onnx, &calibration, test.as_ref(), precision)?;
    save_model(output, &compiled.model).with_context(|| format!("writing {}", output.display()))?;
    Ok(compiled)
}

/// How many of the planner's candidate layouts `compile` prints.
const SHOWN_CANDIDATES: usize = 6;

/// Text summary of a compiled model: the per-layer cost table, the circuit plan, the accuracy.
pub fn describe(c: &Compiled) -> String {
    let mut s = format!(
        "model `{}`: input {:?}, input scale {:.6}; int8 activations, {}-bit weights, {}-bit outputs\n",
        c.model.name,
        c.model.input_shape,
        c.model.input_scale,
        c.precision.weight_bits,
        c.model.tensor_bits(c.model.layers.len())
    );
    s += "  layer                      op                           output        layout       rows  requant  range rows  lookups  out scale\n";
    for (cost, layer) in c.layout.layers.iter().zip(&c.model.layers) {
        s += &format!(
            "  {:<26} {:<28} {:<12} {:<9} {:>6} {:>8} {:>11} {:>8}  {:.6}\n",
            cost.name,
            cost.op_type,
            format!("{:?}", cost.output_shape),
            cost.layout,
            cost.rows,
            cost.requant_rows,
            cost.range_rows,
            cost.lookups,
            layer.output_scale
        );
    }
    let p = &c.layout;
    s += &format!(
        "circuit: k = {} ({} rows), {} advice / {} fixed columns, {} lookup arguments, degree {}\n",
        p.k,
        1u64 << p.k,
        p.advice_columns,
        p.fixed_columns,
        p.lookups,
        p.degree
    );
    s += &format!(
        "  rows used: poseidon {}, linear {}, freivalds {}, requantize {}, range checks {} (x{} columns), max pool {}, \
         tables {}, products {}, lookup table {}\n",
        p.poseidon_rows,
        p.linear_rows,
        p.freivalds_rows,
        p.requant_rows,
        p.range_rows,
        c.params().map_or(1, |params| params.range_columns),
        p.pool_rows,
        p.table_rows,
        p.product_rows,
        p.lookup_table_rows
    );
    s += &format!(
        "  plan: {} layouts tried, the cheapest {} shown (estimated cost = (committed polynomials + fixed/5) x rows;\n  \
         the first is chosen: the cheapest whose proof fits in {} bytes; freivalds = layers checked as matrix \
         products):\n",
        c.candidates.len(),
        c.candidates.len().min(SHOWN_CANDIDATES),
        layout::MAX_PROOF_BYTES
    );
    s += "    lanes  range cols  freivalds (pairs)     k  advice  fixed  lookups  equality  committed polys  est. cost  proof bytes\n";
    for (params, l) in c.candidates.iter().take(SHOWN_CANDIDATES) {
        let freivalds: Vec<String> = (0..c.model.layers.len())
            .filter(|&i| params.uses_freivalds(i))
            .map(|i| i.to_string())
            .collect();
        s += &format!(
            "    {:>5} {:>11}  {:<17} {:>3} {:>7} {:>6} {:>8} {:>9} {:>16} {:>10} {:>12}\n",
            params.mac_lanes,
            params.range_columns,
            if freivalds.is_empty() {
                "-".into()
            } else {
                format!("{} ({})", freivalds.join(","), params.freivalds_pairs)
            },
            l.k,
            l.advice_columns,
            l.fixed_columns,
            l.lookups,
            l.equality_columns,
            l.committed_polynomials(),
            l.estimated_cost(),
            l.proof_bytes
        );
    }
    if let Some(a) = &c.accuracy {
        s += &format!("accuracy on {} held-out samples:\n{a}\n", a.samples);
    }
    s
}

/// JSON summary of a compiled model.
pub fn to_json(c: &Compiled, output: &Path) -> serde_json::Value {
    json!({
        "output": output,
        "name": c.model.name,
        "layout": c.layout,
        "candidates": c.candidates.iter().map(|(p, l)| json!({"params": p, "layout": l, "estimated_cost": l.estimated_cost()})).collect::<Vec<_>>(),
        "accuracy": c.accuracy,
    })
}

/// Runs `compile`.
pub fn run(args: &CompileArgs, json: bool) -> Result<ExitCode> {
    crate::report::ensure_writable(&args.output)?;
    let compiled = compile(
        &args.model,
        &args.calibration,
        args.test.as_deref(),
        &args.output,
        args.precision(),
    )?;
    if json {
        print_json(&to_json(&compiled, &args.output));
    } else {
        print!("{}", describe(&compiled));
        println!("wrote {}", args.output.display());
    }
    Ok(ExitCode::SUCCESS)
}
