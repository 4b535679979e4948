//! Instantiates the Montgomery-arithmetic template `src/shaders/montgomery.wgsl` for the two BN254 fields: F_r (the
//! scalars, prefix `fr_`) and F_q (the G1 coordinates, prefix `fq_`). Each instance is the field's constants file
//! followed by the template with `field_` → `<prefix>_` and `FIELD_` → `<PREFIX>_`, written to `$OUT_DIR` and
//! included by `lib.rs` as `FR_WGSL` and `FQ_WGSL`. One template, so the two fields cannot drift apart.

use std::path::Path;

fn main() {
    let shaders = Path::new("src/shaders");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    println!("cargo:rerun-if-changed=build.rs");
    let template_path = shaders.join("montgomery.wgsl");
    println!("cargo:rerun-if-changed={}", template_path.display());
    let template = std::fs::read_to_string(&template_path).expect("read montgomery.wgsl");
    for prefix in ["fr", "fq"] {
        let constants_path = shaders.join(format!("{prefix}.wgsl"));
        println!("cargo:rerun-if-changed={}", constants_path.display());
        let constants = std::fs::read_to_string(&constants_path).expect("read the field's constants");
        let upper = prefix.to_uppercase();
        let body = template
            .replace("field_", &format!("{prefix}_"))
            .replace("FIELD_", &format!("{upper}_"));
        for name in ["P", "INV", "ONE"] {
            assert!(
                constants.contains(&format!("const {upper}_{name}")),
                "{prefix}.wgsl must define {upper}_{name}"
            );
        }
        let source = format!("{constants}\n{body}");
        std::fs::write(Path::new(&out_dir).join(format!("{prefix}.wgsl")), source).expect("write the instance");
    }
}
