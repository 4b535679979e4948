//! Running a forged witness the way a cheating prover would: the public outputs claimed are the ones the forged
//! witness computes (only the input commitment and the nonce are the honest client's), and the mock prover's
//! complaints are sorted by what caught the forgery.

use std::collections::HashMap;

use halo2_proofs::dev::{MockProver, VerifyFailure};
use rayon::prelude::*;
use zkinfer_circuits::assign::{trace_cells, CellKind, Forgery, Tamper, TracedCell};
use zkinfer_circuits::layout::{freivalds_candidates, plan};
use zkinfer_circuits::public_inputs::{COMMITMENT_ROW, NONCE_ROW};
use zkinfer_circuits::{CircuitParams, Fr, ModelCircuit, PublicInputs, QuantizedModel, Witness};

/// A model with a layout, synthesized once honestly (the cell counts do not depend on the input).
#[derive(Clone)]
pub struct Subject {
    /// The model.
    pub model: QuantizedModel,
    /// Its layout.
    pub params: CircuitParams,
    /// The circuit size.
    pub k: u32,
    /// Advice cells by kind.
    pub counts: HashMap<CellKind, usize>,
}

impl Subject {
    /// Plans `model` with `params` and checks that the honest witness of [`super::witness_for`] is accepted.
    pub fn new(model: QuantizedModel, params: CircuitParams) -> Self {
        let k = plan(&model, &params).expect("plan").k;
        let honest = Honest::of(&model, params.clone(), k, super::witness_for(&model).input);
        let prover = MockProver::run(k, &honest.circuit, vec![honest.public.to_instance()]).expect("synthesis");
        assert_eq!(prover.verify(), Ok(()), "{}: honest witness rejected", model.name);
        let counts = honest.circuit.assigned_cell_counts();
        Self {
            model,
            params,
            k,
            counts,
        }
    }

    /// How many cells of `kind` the circuit assigns.
    pub fn count(&self, kind: CellKind) -> usize {
        self.counts.get(&kind).copied().unwrap_or(0)
    }

    /// The circuit on `input` (with the fixed salt and nonce).
    pub fn on(&self, input: Vec<i64>) -> Honest {
        Honest::of(&self.model, self.params.clone(), self.k, input)
    }

    /// A short name: the model's, with `×B` for a batch of `B` inputs and `/freivalds` for a layout with Freivalds
    /// layers.
    pub fn name(&self) -> String {
        let layout = if !self.params.freivalds_layers.is_empty() {
            "/freivalds"
        } else {
            ""
        };
        let batch = match self.model.batch() {
            1 => String::new(),
            b => format!("×{b}"),
        };
        format!("{}{batch}{layout}", self.model.name)
    }
}

/// The circuit of a model on one witness, with its honest public inputs.
#[derive(Clone)]
pub struct Honest {
    /// The honest circuit (clone it to tamper with it).
    pub circuit: ModelCircuit,
    /// Its public inputs (commitment and nonce of the client, the honest outputs).
    pub public: PublicInputs,
    /// The circuit size.
    pub k: u32,
}

impl Honest {
    /// `model` with `params` on `input`, with the fixed salt and nonce.
    pub fn of(model: &QuantizedModel, params: CircuitParams, k: u32, input: Vec<i64>) -> Self {
        let witness = witness_with(model, input);
        let public = PublicInputs {
            input_commitment: super::commitment_of(model, &witness),
            nonce: witness.nonce,
            outputs: super::reference_outputs(model, &witness.input)
                .pop()
                .unwrap_or_default(),
        };
        Self {
            circuit: ModelCircuit::new(model.clone(), params, witness),
            public,
            k,
        }
    }

    /// `model` with `params` on its fixed witness ([`super::witness_for`]) at its planned `k`, checked to be
    /// satisfied and to compute the reference's outputs.
    pub fn checked(model: &QuantizedModel, params: CircuitParams) -> Self {
        let k = zkinfer_circuits::layout::plan(model, &params).expect("plan").k;
        let honest = Self::of(model, params, k, super::witness_for(model).input);
        assert!(
            super::satisfied(&honest.circuit, honest.public.to_instance()),
            "honest witness rejected"
        );
        let outputs: Vec<i64> = (honest.circuit.last_synthesis().outputs.iter())
            .map(|f| zkinfer_circuits::field::to_i64(f).expect("small"))
            .collect();
        assert_eq!(outputs, honest.public.outputs, "circuit and reference differ");
        honest
    }

    /// Every advice cell of the honest synthesis, in assignment order.
    pub fn trace(&self) -> Vec<TracedCell> {
        trace_cells(|| MockProver::run(self.k, &self.circuit, vec![self.public.to_instance()]).expect("synthesis")).1
    }
}

/// Every cell of each of `kinds` that `h` assigns, changed by +1 and by −1 with the chips carrying on from it (the
/// cells that follow re-solved), is rejected.
pub fn assert_every_cell_forged_by_one_is_rejected(h: &Honest, kinds: &[CellKind]) {
    let counts = h.circuit.assigned_cell_counts();
    let forgeries: Vec<Forgery> = (kinds.iter())
        .flat_map(|&kind| {
            (0..counts[&kind]).flat_map(move |index| [1, -1].map(|delta| Forgery::Cell { kind, index, delta }))
        })
        .collect();
    forgeries.into_par_iter().for_each(|f| {
        let v = verdict(h, Tamper::forge(&[f]).expect("one"));
        assert!(!v.accepted, "{f:?} accepted");
    });
}

/// Every kind of cell the honest circuit `h` assigns (padding aside; `required` among them), each tampered at its
/// first, a third, the middle and its last cell by 1 and by 2^8: every one must be rejected.
pub fn assert_every_kind_tampered_is_rejected(h: &Honest, required: &[CellKind]) {
    use rayon::prelude::*;
    let instance = h.public.to_instance();
    let counts = h.circuit.assigned_cell_counts();
    let kinds: Vec<CellKind> = (counts.iter())
        .filter(|(&k, &n)| n > 0 && k != CellKind::Padding)
        .map(|(&k, _)| k)
        .collect();
    for kind in required {
        assert!(kinds.contains(kind), "no {kind:?} in {kinds:?}");
    }
    let tampers: Vec<Tamper> = (kinds.iter())
        .flat_map(|&kind| {
            let n = counts[&kind];
            [0, n / 3, n / 2, n - 1]
                .into_iter()
                .flat_map(move |index| [1u64, 1 << 8].map(|delta| Tamper::Cell { kind, index, delta }))
        })
        .collect();
    tampers.into_par_iter().for_each(|tamper| {
        let tampered = h.circuit.clone().with_tamper(tamper);
        assert!(!super::satisfied(&tampered, instance.clone()), "{tamper:?} accepted");
    });
}

/// The small CNN's two layouts: every convolution on the multiply-accumulate chip with one range column, one
/// requantization set and byte limbs, or every convolution checked by Freivalds' test through its sliding windows
/// (stride gates, as the planner lays them out) with two range columns of 10-bit limbs and three requantization
/// sets (so the forgeries reach cells of every set and limbs of both widths).
pub fn cnn_params(model: &QuantizedModel) -> [CircuitParams; 2] {
    let mac = CircuitParams::with_chips_of(model);
    let freivalds_layers: std::collections::BTreeSet<usize> = freivalds_candidates(model).into_iter().collect();
    assert!(!freivalds_layers.is_empty(), "the model has no convolution");
    let freivalds_widths = zkinfer_circuits::layout::window_widths(model, &freivalds_layers);
    assert!(!freivalds_widths.is_empty(), "the model's convolutions have no windows");
    [
        mac.clone(),
        CircuitParams {
            freivalds_layers,
            freivalds_widths,
            range_columns: 2,
            limb_bits: 10,
            requant_sets: 3,
            ..mac
        },
    ]
}

/// The models and layouts the forgery tests run on: the MLP (as planned, and with three taps per
/// multiply-accumulate row), its 16-bit variant, the gated model (products of activations), the small CNN in both
/// layouts, the MLP, the gated model and the Freivalds CNN with some of their int8 requantizations through a clamp
/// table (the narrowest any fits; the others keep the flag and slack), a model whose table activations are fused
/// into the clamp table, and a batch of three inputs of the MLP whose dense layers, matrix products then, are
/// checked by Freivalds' test.
pub fn subjects() -> Vec<Subject> {
    let cnn = super::small_cnn();
    let [mac, freivalds] = cnn_params(&cnn);
    let planned = |model: QuantizedModel| {
        let params = CircuitParams::for_model(&model);
        Subject::new(model, params)
    };
    let mlp = super::small_model();
    // Three taps per multiply-accumulate row: rows whose taps do not fill the last row leave padding slots; 11-bit
    // range-check limbs.
    let multi_tap = CircuitParams {
        mac_lanes: 2,
        mac_taps: 3,
        limb_bits: 11,
        ..CircuitParams::with_chips_of(&mlp)
    };
    // 16-bit values checked with 12-bit limbs below a signed 4-bit last limb.
    let wide_hidden = super::small_wide_hidden_model();
    let wide_limbs = CircuitParams {
        limb_bits: 12,
        ..CircuitParams::for_model(&wide_hidden)
    };
    // Rows of both requantization gates in one circuit, at a small `k`.
    let through_table = |model: &QuantizedModel, params: CircuitParams| {
        let clamp_bits = super::narrowest_used_clamp_bits(model, &params);
        Subject::new(model.clone(), CircuitParams { clamp_bits, ..params })
    };
    let clamped = vec![
        through_table(&mlp, CircuitParams::with_chips_of(&mlp)),
        through_table(
            &super::small_gated_model(),
            CircuitParams::with_chips_of(&super::small_gated_model()),
        ),
        through_table(&cnn, freivalds.clone()),
    ];
    let mut subjects = vec![
        planned(mlp.clone()),
        Subject::new(mlp, multi_tap),
        planned(super::small_wide_model()),
        Subject::new(wide_hidden, wide_limbs),
        planned(super::small_gated_model()),
        Subject::new(cnn.clone(), mac),
        Subject::new(cnn, freivalds),
    ];
    subjects.extend(clamped);
    // Table activations fused into the clamp table (after a dense layer with and without ReLU and after a
    // product), beside one that keeps its own lookup.
    let activated = super::small_activated_model();
    subjects.push(Subject::new(activated.clone(), super::fused_params(&activated)));
    let batch = super::small_model().batched(3).expect("a batch of the MLP");
    let dense: std::collections::BTreeSet<usize> = freivalds_candidates(&batch).into_iter().collect();
    assert!(!dense.is_empty(), "the batch's dense layers are not matrix products");
    let batched = CircuitParams {
        freivalds_layers: dense,
        ..CircuitParams::with_chips_of(&batch)
    };
    subjects.push(Subject::new(batch, batched));
    // Matrix products of two activations, planned and with two Freivalds pairs and a clamp table.
    let attention = super::small_attention_model();
    subjects.push(planned(attention.clone()));
    let two_pairs = CircuitParams {
        freivalds_pairs: 2,
        ..CircuitParams::with_chips_of(&attention)
    };
    subjects.push(through_table(&attention, two_pairs));
    // Softmax with masks, planned and with 10-bit limbs.
    let softmax = super::small_softmax_model();
    subjects.push(planned(softmax.clone()));
    let wide_limbs = CircuitParams {
        limb_bits: 10,
        ..CircuitParams::with_chips_of(&softmax)
    };
    subjects.push(Subject::new(softmax, wide_limbs));
    subjects.push(planned(super::small_argmax_model()));
    // Layer normalizations, a constant row among them, of int8 and of 16-bit rows.
    subjects.push(planned(super::small_layer_norm_model()));
    subjects.push(planned(super::small_wide_layer_norm_model()));
    // Token ids looked up in an embedding table.
    subjects.push(planned(super::small_token_model()));
    subjects
}

/// A witness with the fixed salt and nonce of [`super::witness_for`] and the given input (int8 values drawn for
/// any model: a token model reads each as the id `(x + 128) mod V`).
pub fn witness_with(model: &QuantizedModel, input: Vec<i64>) -> Witness {
    let input = match model.input.vocab {
        Some(vocab) => input.iter().map(|&x| (x + 128).rem_euclid(vocab as i64)).collect(),
        None => input,
    };
    Witness {
        input,
        ..super::witness_for(model)
    }
}

/// What the mock prover said about a forged witness.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// No complaint at all.
    pub accepted: bool,
    /// Custom gates not satisfied, by gate name.
    pub gates: Vec<String>,
    /// Lookups not satisfied, by lookup name.
    pub lookups: Vec<String>,
    /// Copy constraints broken (the instance column included).
    pub copies: usize,
    /// Anything else (unassigned or poisoned cells).
    pub other: usize,
    /// The outputs the forged witness claims.
    pub outputs: Vec<Fr>,
    /// The commitment the forged witness computes.
    pub commitment: Fr,
    /// The cells the forged synthesis wrote.
    pub trace: Vec<TracedCell>,
}

/// What a forged witness amounts to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The mock prover rejected it.
    Rejected,
    /// It wrote exactly the honest cells (e.g. the smaller of two equal operands as the maximum).
    NoOp,
    /// Accepted, proving the honest statement (the client's commitment and nonce, the honest outputs) with another
    /// witness that differs from the honest one only in cells of the kinds listed, all of them in [`MALLEABLE`]: a
    /// malleable witness, not a false statement.
    Equivalent(Vec<CellKind>),
    /// Accepted with another statement, or with a witness differing in kinds no known malleability explains.
    Forged,
}

/// The cell kinds whose malleability is known and harmless (see [`Outcome::Equivalent`]): padding cells, which no
/// constraint reads by design, and the clamp flag of a quotient exactly at the upper bound (`d = 0` with `f = 0`
/// or `f = 1` both give `q = y = hi`).
pub const MALLEABLE: [CellKind; 2] = [CellKind::Padding, CellKind::ClampFlag];

impl Verdict {
    /// Classifies the verdict against the honest run (which is synthesized again only if the forgery was accepted).
    pub fn outcome(&self, honest: &Honest) -> Outcome {
        if !self.accepted {
            return Outcome::Rejected;
        }
        let trace = honest.trace();
        let mut differing: Vec<CellKind> = trace
            .iter()
            .zip(&self.trace)
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.kind)
            .collect();
        differing.sort_by_key(|k| format!("{k:?}"));
        differing.dedup();
        let same_length = trace.len() == self.trace.len();
        let honest_outputs: Vec<Fr> = honest
            .public
            .outputs
            .iter()
            .map(|&y| zkinfer_circuits::field::from_i64(y))
            .collect();
        let same_statement = self.outputs == honest_outputs && self.commitment == honest.public.input_commitment;
        if same_length && differing.is_empty() {
            Outcome::NoOp
        } else if same_length && same_statement && differing.iter().all(|k| MALLEABLE.contains(k)) {
            Outcome::Equivalent(differing)
        } else {
            Outcome::Forged
        }
    }
}

/// Runs `tamper` on `honest` the way a cheating prover would: the instance holds the client's commitment and
/// nonce and the outputs the forged witness computes.
pub fn verdict(honest: &Honest, tamper: Tamper) -> Verdict {
    let circuit = honest.circuit.clone().with_tamper(tamper);
    let instance = honest.public.to_instance();
    // A first synthesis learns the outputs the forged witness computes; the second one claims them.
    MockProver::run(honest.k, &circuit, vec![instance.clone()]).expect("synthesis");
    let record = circuit.last_synthesis();
    let mut claimed = vec![Fr::from(0); 2];
    claimed[COMMITMENT_ROW] = instance[COMMITMENT_ROW];
    claimed[NONCE_ROW] = instance[NONCE_ROW];
    claimed.extend(zkinfer_circuits::public_inputs::pack_outputs(&record.outputs));
    let (prover, trace) = trace_cells(|| MockProver::run(honest.k, &circuit, vec![claimed]).expect("synthesis"));
    let mut v = Verdict {
        outputs: record.outputs,
        commitment: record.commitment,
        trace,
        ..Verdict::default()
    };
    match prover.verify() {
        Ok(()) => v.accepted = true,
        Err(failures) => {
            for failure in failures {
                match failure {
                    VerifyFailure::ConstraintNotSatisfied { constraint, .. } => v.gates.push(constraint.to_string()),
                    VerifyFailure::Lookup { name, .. } => v.lookups.push(name),
                    VerifyFailure::Permutation { .. } => v.copies += 1,
                    _ => v.other += 1,
                }
            }
        }
    }
    v
}

/// Tally of forgeries per class, printed at the end of a test (`--nocapture`).
#[derive(Default)]
pub struct Tally(std::sync::Mutex<std::collections::BTreeMap<String, [usize; 4]>>);

impl Tally {
    /// Counts one forgery of `class` by its outcome.
    pub fn count(&self, class: &str, outcome: &Outcome) {
        if let Ok(mut map) = self.0.lock() {
            let entry = map.entry(class.to_string()).or_default();
            entry[match outcome {
                Outcome::Rejected => 0,
                Outcome::Forged => 1,
                Outcome::NoOp => 2,
                Outcome::Equivalent(_) => 3,
            }] += 1;
        }
    }

    /// Prints the tally and returns `[rejected, forged (accepted), no-op, equivalent]` over all classes.
    pub fn report(&self, test: &str) -> [usize; 4] {
        let map = self.0.lock().map(|m| m.clone()).unwrap_or_default();
        let mut total = [0; 4];
        for (class, counts) in &map {
            let [rejected, forged, noop, equivalent] = counts;
            eprintln!(
                "{test}: {class}: {rejected} rejected, {forged} accepted, {noop} no-op, {equivalent} equivalent witness"
            );
            for (t, c) in total.iter_mut().zip(counts) {
                *t += c;
            }
        }
        total
    }
}
