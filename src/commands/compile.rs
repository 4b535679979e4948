//! `zkinfer compile`: import → calibrate/quantize → accuracy report → circuit plan → `.zkm`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use zkinfer_circuits::layout::{Goal, Objective};
use zkinfer_prover::{save_compiled, Compiled, Dataset, InputScales, Precision, PrecisionChoice, Target};

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
    /// How to choose the precision: `accuracy` (the most faithful candidate), `balanced` (the cheapest circuit
    /// within half a point of the most faithful), `resources` (within two points), or a fidelity between 0 and 1
    /// (top-1 agreement with the float model; R² for one output). Every candidate is measured on the calibration
    /// samples and listed. The default when no precision flag is given: balanced.
    #[arg(long, value_name = "TARGET", conflicts_with_all = ["weight_bits", "output_bits", "input_scales", "activation_bits", "clip_ranges"])]
    pub target: Option<Target>,
    /// Fixed precision instead of a search: bits of the Gemm/MatMul/Conv weights (2 to 16; activations stay int8).
    /// Wider weights cost one more range-check limb per output for each 8 bits.
    #[arg(long, value_name = "BITS")]
    pub weight_bits: Option<u32>,
    /// Fixed precision: bits of the model's outputs (8 or 16) when its last layer is linear: 16-bit logits keep
    /// near ties apart.
    #[arg(long, value_name = "BITS")]
    pub output_bits: Option<u32>,
    /// Fixed precision: input scales `channel` (one per feature of a [1, F] input, per colour channel of an image;
    /// features of different ranges each keep 8 bits) or `tensor` (one for the whole input).
    #[arg(long, value_name = "GRANULARITY", value_parser = parse_input_scales)]
    pub input_scales: Option<InputScales>,
    /// Fixed precision: bits of the activations between layers (8 or 16). With 16, the outputs of linear layers and
    /// layer norms that only linear layers (Gemm/MatMul/Conv/Add) and layer norms read are 16-bit, a transformer's
    /// residual stream among them (two range-check limbs each instead of one).
    #[arg(long, value_name = "BITS")]
    pub activation_bits: Option<u32>,
    /// Fixed precision: clip each int8 activation's range to the one with the smallest quantization error on the
    /// calibration samples (a few outliers saturate, every other value gets a finer step) instead of its largest
    /// value. Without a fixed precision the search tries this on its choice and keeps it when it is more faithful.
    #[arg(long)]
    pub clip_ranges: bool,
    /// What the circuit layout minimises: `time` (proving time, the default), `size` (proof bytes) or `memory`
    /// (the prover's memory). The chosen layout is written into the `.zkm` and `setup` uses it.
    #[arg(long, value_name = "OBJECTIVE", default_value = "time")]
    pub optimize: Objective,
    /// Largest acceptable proof, in bytes: layouts with larger proofs are not chosen (an error names the smallest
    /// proof there is when none fits). Default: any size.
    #[arg(long, value_name = "BYTES")]
    pub max_proof_bytes: Option<usize>,
    /// Inputs one proof covers (1 to 1024): the circuit runs the model on a batch of this many samples, which
    /// `prove` takes as the first rows of its input file, under one input commitment and one nonce. A layer's
    /// weights are then checked once per batch (Freivalds' test), so the proving time per sample falls.
    #[arg(long, value_name = "B", default_value_t = 1)]
    pub batch: usize,
}

/// `channel` or `tensor`.
fn parse_input_scales(s: &str) -> std::result::Result<InputScales, String> {
    match s {
        "channel" => Ok(InputScales::PerChannel),
        "tensor" => Ok(InputScales::PerTensor),
        _ => Err(format!("`{s}`: use `channel` or `tensor`")),
    }
}

impl CompileArgs {
    /// What the planner is asked for.
    pub fn goal(&self) -> Goal {
        Goal {
            objective: self.optimize,
            max_proof_bytes: self.max_proof_bytes,
        }
    }

    /// The precision the flags ask for: fixed when a precision flag is given (the others at their int8
    /// defaults), otherwise chosen to the target.
    pub fn precision(&self) -> PrecisionChoice {
        let fixed = [self.weight_bits, self.output_bits, self.activation_bits];
        if fixed.iter().all(Option::is_none) && self.input_scales.is_none() && !self.clip_ranges {
            return PrecisionChoice::Target(self.target.unwrap_or_default());
        }
        let default = Precision::default();
        PrecisionChoice::Fixed(Precision {
            weight_bits: self.weight_bits.unwrap_or(default.weight_bits),
            output_bits: self.output_bits.unwrap_or(default.output_bits),
            input: self.input_scales.unwrap_or(default.input),
            activation_bits: self.activation_bits.unwrap_or(default.activation_bits),
            int8_layers: default.int8_layers,
            clip_ranges: self.clip_ranges,
        })
    }
}

/// Compiles `onnx` at the precision `choice` gives, batched to prove `batch` inputs at once, with a layout for
/// `goal` (the library's [`zkinfer_prover::compile`]) and writes the model and its layout to `output`.
pub fn compile(
    onnx: &Path,
    calibration: &Path,
    test: Option<&Path>,
    output: &Path,
    choice: PrecisionChoice,
    goal: &Goal,
    batch: usize,
) -> Result<Compiled> {
    let calibration = Dataset::load(calibration)?;
    let test = test.map(Dataset::load).transpose()?;
    let compiled = zkinfer_prover::compile(onnx, &calibration, test.as_ref(), choice, goal, batch)?;
    let params = compiled.params().context("the planner chose no layout")?;
    save_compiled(output, &compiled.model, params).with_context(|| format!("writing {}", output.display()))?;
    Ok(compiled)
}

/// How many of the planner's candidate layouts `compile` prints.
const SHOWN_CANDIDATES: usize = 6;

/// Text summary of a compiled model: the per-layer cost table, the circuit plan, the accuracy.
pub fn describe(c: &Compiled) -> String {
    let scales = &c.model.input.scales;
    let input_scales = match scales.as_slice() {
        [one] => format!("input scale {one:.6}"),
        many => format!(
            "input scales per channel ({} channels, {:.6} to {:.6})",
            many.len(),
            many.iter().copied().fold(f32::INFINITY, f32::min),
            c.model.input.max_scale()
        ),
    };
    let batch = match c.model.batch() {
        1 => String::new(),
        b => format!(", a batch of {b} per proof"),
    };
    let mut s = format!(
        "model `{}`: input {:?}{batch}, {input_scales}; {}-bit activations, {}-bit weights, {}-bit outputs\n",
        c.model.name,
        c.model.input_shape,
        c.precision.activation_bits,
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
        "  rows used: poseidon {}, linear {}, freivalds {}, requantize {} (x{} sets, sponge included), range checks {} \
         (x{} columns), max pool {}, tables {}, products {}, lookup table {}\n",
        p.poseidon_rows,
        p.linear_rows,
        p.freivalds_rows,
        p.requant_rows,
        c.params().map_or(1, |params| params.requant_sets),
        p.range_rows,
        c.params().map_or(1, |params| params.range_columns),
        p.pool_rows,
        p.table_rows,
        p.product_rows,
        p.lookup_table_rows
    );
    let cap = c.goal.max_proof_bytes.map_or("any proof size".to_string(), |max| {
        format!("proofs of at most {max} bytes")
    });
    s += &format!(
        "  plan: {} layouts tried, the best {} shown for --optimize {} and {cap} (estimated cost = (committed \
         polynomials + fixed/5) x rows;\n  est. memory = (committed + fixed + equality columns) x rows x 64 bytes; \
         the first is chosen; freivalds = layers checked as matrix products):\n",
        c.candidates.len(),
        c.candidates.len().min(SHOWN_CANDIDATES),
        c.goal.objective,
    );
    s += "    lanes x taps  range cols  requant sets  freivalds (pairs)     k  advice  fixed  lookups  equality  committed polys  est. cost  est. MiB  proof bytes\n";
    for (params, l) in c.candidates.iter().take(SHOWN_CANDIDATES) {
        let freivalds: Vec<String> = (0..c.model.layers.len())
            .filter(|&i| params.uses_freivalds(i))
            .map(|i| i.to_string())
            .collect();
        s += &format!(
            "    {:>12} {:>11} {:>13}  {:<17} {:>3} {:>7} {:>6} {:>8} {:>9} {:>16} {:>10} {:>9} {:>12}\n",
            format!("{} x {}", params.mac_lanes, params.mac_taps),
            params.range_columns,
            params.requant_sets,
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
            l.estimated_memory_bytes() >> 20,
            l.proof_bytes
        );
    }
    if let Some(search) = &c.search {
        s += &format!("{search}\n");
    }
    s += &format!("{}\n", c.diagnostics);
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
        "batch": c.model.batch(),
        "layout": c.layout,
        "goal": c.goal,
        "layouts_tried": c.candidates.len(),
        "candidates": c.candidates.iter().take(zkinfer_circuits::layout::DETAILED_CANDIDATES).map(|(p, l)| json!({"params": p, "layout": l, "estimated_cost": l.estimated_cost(), "estimated_memory_bytes": l.estimated_memory_bytes()})).collect::<Vec<_>>(),
        "precision": c.precision,
        "search": c.search,
        "diagnostics": c.diagnostics,
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
        &args.goal(),
        args.batch,
    )?;
    if json {
        print_json(&to_json(&compiled, &args.output));
    } else {
        print!("{}", describe(&compiled));
        println!("wrote {}", args.output.display());
    }
    Ok(ExitCode::SUCCESS)
}
