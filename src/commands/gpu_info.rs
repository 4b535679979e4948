//! `zkinfer gpu-info`: the GPU adapters wgpu finds and the one the GPU kernels would use. Informational: exit 0 even
//! when there is none.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use zkinfer_gpu::{list_adapters, AdapterSummary, GpuContext};

use crate::report::print_json;

/// Runs `gpu-info`: one line per adapter (or, with `--json`, an array of objects) and the adapter chosen.
pub fn run(json: bool) -> Result<ExitCode> {
    let adapters = list_adapters();
    let context = GpuContext::new();
    let chosen = context
        .as_ref()
        .ok()
        .and_then(|ctx| adapters.iter().position(|a| *a == ctx.info));
    if json {
        let list: Vec<_> = adapters
            .iter()
            .enumerate()
            .map(|(i, a)| {
                json!({"name": a.name, "vendor_id": a.vendor_id, "device_id": a.device_id,
                    "device_type": a.device_type_name(), "backend": a.backend_name(), "driver": a.driver,
                    "driver_info": a.driver_info, "software": a.is_software(), "chosen": chosen == Some(i)})
            })
            .collect();
        print_json(&json!(list));
        if let Err(e) = &context {
            eprintln!("{e}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if adapters.is_empty() {
        println!("No GPU adapters.");
    } else {
        println!("GPU adapters:");
        for (i, adapter) in adapters.iter().enumerate() {
            println!("{} {}", if chosen == Some(i) { "*" } else { " " }, describe(adapter));
        }
    }
    match &context {
        Ok(ctx) if ctx.info.is_software() => println!(
            "Chosen: {} (software rasterizer: correct but slow; no hardware GPU was found)",
            ctx.info.name
        ),
        Ok(ctx) => println!("Chosen: {}", ctx.info.name),
        Err(e) => println!("{e}"),
    }
    println!(
        "`zkinfer prove --device gpu` proves on the chosen adapter; --device auto uses it only when it is hardware."
    );
    Ok(ExitCode::SUCCESS)
}

fn describe(a: &AdapterSummary) -> String {
    format!(
        "{} — {}, {}, driver {} {} (vendor {:#x}, device {:#x})",
        a.name,
        a.device_type_name(),
        a.backend_name(),
        a.driver,
        a.driver_info,
        a.vendor_id,
        a.device_id
    )
}
