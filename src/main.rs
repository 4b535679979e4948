//! `zkinfer`: compile an ONNX model to an int8 halo2 circuit, set up its keys, prove inferences and verify proofs.
//!
//! Exit codes: 0 accepted / success, 1 proof rejected, 2 usage or input error.

mod commands;
mod cpu;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Zero-knowledge proofs of neural-network inference (halo2, KZG over BN254).
#[derive(Parser)]
#[command(name = "zkinfer", version, about, long_about = None)]
struct Cli {
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Quantize an ONNX model to int8, report its accuracy against the float model, and write a .zkm file.
    Compile(commands::compile::CompileArgs),
    /// Generate the proving and verifying keys of a compiled model; prints the model id.
    Setup(commands::setup::SetupArgs),
    /// Run the quantized inference on an input and prove it.
    Prove(commands::prove::ProveArgs),
    /// Generate greedy tokens after a prompt with a causal language model and prove every step with one proof.
    Generate(commands::generate::GenerateArgs),
    /// Verify a proof bundle (or a generation bundle, with its prompt and salt) against a verifying key (and, optionally, a model id, nonce and input commitment).
    Verify(commands::verify::VerifyArgs),
    /// Verify many bundles (of one or several models) with accumulated pairing checks; names every rejected one.
    VerifyBatch(commands::verify_batch::VerifyBatchArgs),
    /// Serve models over HTTP for clients: outputs at once, proofs as jobs (SQLite), metrics and a dashboard.
    Serve(commands::serve::ServeArgs),
    /// Send inputs to a `zkinfer serve` and verify every answer locally (one request, or a timed test batch).
    #[command(subcommand)]
    Client(commands::client::ClientCommand),
    /// End to end on the shipped digits model: compile, setup (insecure SRS), prove one test digit, verify, tamper.
    Demo(DemoArgs),
    /// List the GPU adapters (Vulkan / Metal / DX12) and the one the GPU kernels would use.
    GpuInfo,
}

/// Arguments of `demo`.
#[derive(Args)]
struct DemoArgs {
    /// Directory with model.onnx, calibration.json and test.json: models/digits-mlp, models/digits-cnn,
    /// models/digits-resnet or models/cancer-mlp (30 raw tabular features), or a model of your own.
    #[arg(long, default_value = "models/digits-mlp")]
    model_dir: PathBuf,
    /// Which test sample to prove.
    #[arg(long, default_value_t = 0)]
    sample: usize,
    /// Where to write the compiled model, keys and proof.
    #[arg(long, default_value = "target/zkinfer-demo")]
    out: PathBuf,
    /// Where to prove: auto, cpu or gpu (as for `prove`).
    #[arg(long, default_value = "auto", value_name = "auto|cpu|gpu")]
    device: zkinfer_prover::Device,
}

/// Turns Mesa's Vulkan device-select layer off on a machine without a desktop session (`XDG_RUNTIME_DIR` unset:
/// servers, containers, CI). To find the default GPU the layer connects to a Wayland display, and libwayland then
/// prints `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` on every Vulkan instance zkinfer
/// creates, on a run that succeeds. zkinfer orders adapters itself (hardware first), so the layer changes nothing
/// it uses. `NODEVICE_SELECT` set by the user is kept. Called first in `main`, before any thread exists.
fn quiet_vulkan_device_select() {
    let session = std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|dir| std::path::Path::new(&dir).is_dir());
    if !session && std::env::var_os("NODEVICE_SELECT").is_none() {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

fn main() -> ExitCode {
    quiet_vulkan_device_select();
    let cli = Cli::parse();
    // The libraries report through `tracing` (a GPU falling back to the CPU, a failed job): warnings and errors go
    // to stderr; RUST_LOG adds more (RUST_LOG=tower_http=debug: one line per HTTP request of `serve`).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false)
        .init();
    // halo2 reads MAX_DEGREE while building constraint systems: another value would make keys, proofs and
    // verification disagree with the circuits zkinfer lays out.
    if let Err(e) = zkinfer_verifier::key::check_max_degree_env().and_then(|()| cpu::check()) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let outcome = match cli.command {
        Command::Compile(args) => commands::compile::run(&args, cli.json),
        Command::Setup(args) => commands::setup::run(&args, cli.json),
        Command::Prove(args) => commands::prove::run(&args, cli.json),
        Command::Generate(args) => commands::generate::run(&args, cli.json),
        Command::Verify(args) => commands::verify::run(&args, cli.json),
        Command::VerifyBatch(args) => commands::verify_batch::run(&args, cli.json),
        Command::Serve(args) => commands::serve::run(&args, cli.json),
        Command::Client(command) => commands::client::run(&command, cli.json),
        Command::Demo(args) => commands::demo::run(&args.model_dir, args.sample, &args.out, args.device, cli.json),
        Command::GpuInfo => commands::gpu_info::run(cli.json),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
