//! The CPU instructions this build's field arithmetic needs.

/// Refuses an x86-64 CPU without BMI2 and ADX when the build does its field arithmetic in halo2curves' assembly
/// (the default `asm` feature): without this check the first field multiplication would stop the process with an
/// illegal instruction.
pub fn check() -> Result<(), String> {
    #[cfg(all(feature = "asm", target_arch = "x86_64"))]
    if !(std::is_x86_feature_detected!("bmi2") && std::is_x86_feature_detected!("adx")) {
        return Err(
            "this zkinfer build does its BN254 field arithmetic in x86-64 assembly, which needs the BMI2 and \
                    ADX instructions this CPU lacks; build it without: cargo build --release --no-default-features"
                .into(),
        );
    }
    Ok(())
}
