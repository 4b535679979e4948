#!/usr/bin/env python3
"""EZKL and zkinfer side by side on the same ONNX files and the same inputs.

Run through scripts/compare-ezkl, which makes the virtual environment (target/ezkl-venv, or --venv) this needs:
ezkl, onnxruntime, numpy, matplotlib, and passes the zkinfer binary (--zkinfer). See `scripts/compare-ezkl --help`.

Per model directory (model.onnx, calibration.json, test.json with "labels" or real-valued "targets", and
input.json; without one, the first test sample is written to the work directory and used):

  prepare (not timed for the table; its own durations are recorded):
    EZKL     per calibration target (--ezkl-targets, default "resources"), in a process of its own (a circuit too
             large to set up is a recorded failure, not the end of the run): gen_settings (default run args) ->
             calibrate_settings(target) on calibration.json -> compile_circuit -> gen_srs (local) -> setup
    zkinfer  compile --json (with --test and the variant's flags) -> setup --insecure-dev-srs --json, once per
             variant (always "balanced": no precision flag, the default precision search; plus --variant ones,
             default 10-bit weights with 16-bit outputs)
    accuracy float (onnxruntime) vs EZKL (gen_witness per test sample, "pretty_elements"."rescaled_outputs", each
             target whose circuit compiled) vs zkinfer (compile's accuracy report) on the first N test samples:
             top-1 for classifiers, R² and mean |error| for regression (see scores())

  measure (EZKL at the first target only; alternating EZKL prove, zkinfer prove of each variant, EZKL prove, ...;
  every prove is its own process under /usr/bin/time -v, whose wall time is taken around it):
    EZKL     one Python process: import ezkl, gen_witness(input.json), prove -> proof.json
    zkinfer  one `zkinfer prove` process: load pk, quantize input.json, infer, witness, prove, self-check
    verify   EZKL: ezkl.verify() calls in one process (each call reads the proof, settings, vk and SRS);
             zkinfer: `zkinfer verify --json` processes, in-process `verify_ms`

Writes results.{md,json} to the work directory (--out, default target/compare-ezkl) and the plot (--plot, default
docs/compare-ezkl.png; none with --prepare-only, whose report is the accuracy table alone); the Markdown tables also go
to stdout, progress to stderr. Paths given are relative to the current directory, the defaults in the repository.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZKINFER = ROOT / "target" / "release" / "zkinfer"  # the default; main() sets the one given with --zkinfer
NONCE = "0x1234abcd"
SALT = "0x5a17"
CALIBRATION_TARGETS = ("resources", "accuracy")  # what EZKL's calibrate_settings offers; "resources" is its default
# zkinfer variants: label -> extra `zkinfer compile` flags. The first, no flags (the precision search to its default
# target), is always measured; the others are the default for --variant.
BASE_VARIANT = "balanced="
DEFAULT_VARIANTS = ["w10-o16=--weight-bits 10 --output-bits 16"]


def log(*a):
    print("compare-ezkl:", *a, file=sys.stderr, flush=True)


def shown(path):
    """path for a log line: relative to the repository when inside it, absolute otherwise."""
    p = Path(path).resolve()
    return p.relative_to(ROOT) if p.is_relative_to(ROOT) else p


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def wait_for_load(limit, poll_s):
    if limit is None:
        return
    while True:
        one = float(load().split()[0])
        if one < limit:
            log(f"load average {load()} (1-min below {limit}); measuring")
            return
        log(f"load average {load()}; waiting until the 1-min figure is below {limit}")
        time.sleep(poll_s)


def timed(cmd, time_file, stdout_file=None):
    """Runs cmd under /usr/bin/time -v; returns (wall ms, peak RSS KiB, stdout text). Fails loudly."""
    start = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", "-o", str(time_file), *map(str, cmd)], capture_output=True, text=True)
    wall = (time.perf_counter() - start) * 1000
    if stdout_file:
        Path(stdout_file).write_text(p.stdout)
    if p.returncode != 0:
        sys.exit(f"compare-ezkl: `{' '.join(map(str, cmd))}` failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    rss = None
    for line in Path(time_file).read_text().splitlines():
        if "Maximum resident set size" in line:
            rss = int(line.split(":")[1])
    return wall, rss, p.stdout


def median(xs):
    return statistics.median(xs) if xs else float("nan")


# --- child processes for EZKL (each prove/verify is its own process, so /usr/bin/time sees only it) -------------


def child_ezkl_prove(work, proof):
    t0 = time.perf_counter()
    import ezkl

    t1 = time.perf_counter()
    w = work / "witness-prove.json"
    ezkl.gen_witness(str(work / "input.json"), str(work / "model.compiled"), str(w))
    t2 = time.perf_counter()
    ok = ezkl.prove(str(w), str(work / "model.compiled"), str(work / "pk.key"), str(proof), str(work / "kzg.srs"))
    t3 = time.perf_counter()
    if not ok:
        sys.exit("ezkl.prove returned a falsy value")
    print(json.dumps({"import_ms": (t1 - t0) * 1e3, "witness_ms": (t2 - t1) * 1e3, "prove_ms": (t3 - t2) * 1e3}))


def child_ezkl_verify(work, proof, n):
    import ezkl

    ms = []
    for _ in range(n):
        t = time.perf_counter()
        ok = ezkl.verify(str(proof), str(work / "settings.json"), str(work / "vk.key"), str(work / "kzg.srs"))
        ms.append((time.perf_counter() - t) * 1e3)
        if not ok:
            sys.exit("ezkl.verify rejected the proof")
    print(json.dumps({"verify_ms": ms}))


# --- preparation -------------------------------------------------------------------------------------------------


def float_outputs(model_dir, rows):
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    out = []
    for r in rows:
        x = np.asarray(r, dtype=np.float32).reshape(shape)
        out.append(np.asarray(sess.run(None, {inp.name: x})[0]).reshape(-1))
    return np.asarray(out), shape


def child_ezkl_prep(model_dir, work, srs_dir, target, input_file):
    """gen_settings -> calibrate_settings(target) -> compile_circuit -> gen_srs -> setup, in a process of its own.
    Writes prep.json after each stage, "stage" naming the one under way, so that a crash leaves a record of it."""
    import ezkl

    try:  # on memory exhaustion, the kernel ends this process first, not the caller or a neighbour's build
        Path("/proc/self/oom_score_adj").write_text("1000")
    except OSError:
        pass
    prep_file = work / "prep.json"
    prep = {"target": target}

    def stage(name, call, fail=None):
        prep["stage"] = name
        prep_file.write_text(json.dumps(prep, indent=1))
        t = time.perf_counter()
        if not call() and fail:
            sys.exit(f"ezkl.{fail} returned a falsy value")
        prep[f"{name}_s"] = time.perf_counter() - t

    onnx = str(model_dir / "model.onnx")
    cal = json.loads((model_dir / "calibration.json").read_text())["input_data"]
    # EZKL takes one flat list per model input; calibration splits a longer list into batches of the input size.
    (work / "calibration.json").write_text(json.dumps({"input_data": [[x for r in cal for x in r]]}))
    inp = json.loads(input_file.read_text())["input_data"]
    (work / "input.json").write_text(json.dumps({"input_data": [inp[0]]}))
    settings = str(work / "settings.json")
    stage("gen_settings", lambda: ezkl.gen_settings(onnx, settings), "gen_settings")  # default PyRunArgs
    log(f"{model_dir.name}: EZKL: calibrate_settings(target={target!r}) on {len(cal)} samples")
    stage("calibrate", lambda: ezkl.calibrate_settings(str(work / "calibration.json"), onnx, settings, target),
          "calibrate_settings")
    stage("compile", lambda: ezkl.compile_circuit(onnx, str(work / "model.compiled"), settings), "compile_circuit")
    js = json.loads((work / "settings.json").read_text())
    ra, k = js["run_args"], js["run_args"]["logrows"]
    prep["settings"] = {"logrows": k, "num_rows": js.get("num_rows")} | {
        key: ra.get(key) for key in ("input_scale", "param_scale", "scale_rebase_multiplier", "lookup_range",
                                     "input_visibility", "output_visibility", "param_visibility", "check_mode",
                                     "num_inner_cols")}
    srs = srs_dir / f"kzg{k}.srs"
    if not srs.exists():
        log(f"{model_dir.name}: EZKL: gen_srs(logrows={k}) (local, insecure: its toxic waste is not destroyed)")
        srs_dir.mkdir(parents=True, exist_ok=True)
        stage("gen_srs", lambda: ezkl.gen_srs(str(srs) + ".part", k))
        os.replace(str(srs) + ".part", srs)
    link = work / "kzg.srs"
    if link.exists() or link.is_symlink():
        link.unlink()
    link.symlink_to(srs.resolve())
    log(f"{model_dir.name}: EZKL: setup (k = {k})")
    stage("setup", lambda: ezkl.setup(str(work / "model.compiled"), str(work / "vk.key"), str(work / "pk.key"),
                                      str(link)), "setup")
    prep.update(stage="done", pk_bytes=(work / "pk.key").stat().st_size, vk_bytes=(work / "vk.key").stat().st_size)
    prep_file.write_text(json.dumps(prep, indent=1))


def prep_ezkl(model_dir, work, srs_dir, target, input_file, reuse, py):
    """Runs child_ezkl_prep under /usr/bin/time -v. Returns its record; on failure with "error" (the stage, how the
    process ended, its last lines) and, where the circuit compiled, still usable for accuracy."""
    work.mkdir(parents=True, exist_ok=True)
    prep_file = work / "prep.json"
    if reuse and prep_file.exists():
        prep = json.loads(prep_file.read_text())
        if prep.get("stage") == "done" and (work / "pk.key").exists() or "error" in prep:
            log(f"{model_dir.name}: EZKL {target}: reusing {shown(work)}")
            return prep
    for f in ("prep.json", "pk.key", "vk.key", "model.compiled"):
        (work / f).unlink(missing_ok=True)
    start = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", "-o", str(work / "prep.time"), py, __file__, "_ezkl_prep",
                        *map(str, (model_dir, work, srs_dir, target, input_file))], capture_output=True, text=True)
    (work / "prep.log").write_text(p.stdout + p.stderr)
    sys.stderr.write("".join(ln + "\n" for ln in p.stderr.splitlines() if ln.startswith("compare-ezkl:")))
    prep = json.loads(prep_file.read_text()) if prep_file.exists() else {"target": target, "stage": "start"}
    timing = (work / "prep.time").read_text().splitlines() if (work / "prep.time").exists() else []
    prep["wall_s"] = time.perf_counter() - start
    prep["peak_rss_kib"] = next((int(ln.split(":")[1]) for ln in timing if "Maximum resident set size" in ln), None)
    if p.returncode != 0 or prep.get("stage") != "done":
        how = next((ln.strip() for ln in timing if ln.startswith("Command ")),
                   f"signal {-p.returncode}" if p.returncode < 0 else f"exit status {p.returncode}")
        last = [ln for ln in p.stderr.splitlines()  # the exception or panic, not the traceback's source lines
                if ln.strip() and not ln.startswith((" ", "\t", "|", "+", "compare-ezkl:", "Traceback"))][-2:]
        if how.endswith("signal 9"):
            how += ": killed, out of memory?"
        prep["error"] = f"{prep.get('stage')} failed ({how})" + (": " + " / ".join(last)[-400:] if last else "")
        log(f"{model_dir.name}: EZKL {target}: {prep['error']}; peak RSS {(prep['peak_rss_kib'] or 0) / 1024:.0f} MiB")
    prep_file.write_text(json.dumps(prep, indent=1))
    return prep


def zkinfer_build():
    """Identifies the zkinfer binary, so that --reuse never reuses keys an older build made."""
    st = ZKINFER.stat()
    return f"{st.st_size}-{st.st_mtime_ns}"


def prep_zkinfer(model_dir, work, test_file, flags, reuse):
    work.mkdir(parents=True, exist_ok=True)
    prep_file = work / "prep.json"
    if reuse and prep_file.exists() and (work / "keys" / "pk.bin").exists():
        prep = json.loads(prep_file.read_text())
        if prep.get("build") == zkinfer_build() and prep.get("flags") == flags:
            log(f"{model_dir.name}: zkinfer {flags or '(no flags)'}: reusing {shown(work)}")
            return prep
        log(f"{model_dir.name}: zkinfer: {shown(work)} comes from another build or flags; redoing it")
    log(f"{model_dir.name}: zkinfer {flags or '(no flags)'}: compile, setup --insecure-dev-srs")
    wall, _, out = timed(
        [ZKINFER, "--json", "compile", model_dir / "model.onnx", "--calibration", model_dir / "calibration.json",
         "--test", test_file, "-o", work / "model.zkm", *flags.split()],
        work / "compile.time", work / "compile.json")
    c = json.loads(out)
    prep = {"compile_s": wall / 1e3, "layout": c["layout"], "accuracy": c["accuracy"], "flags": flags,
            "precision": c.get("precision"), "build": zkinfer_build()}
    wall, rss, out = timed([ZKINFER, "--json", "setup", work / "model.zkm", "--insecure-dev-srs", "-o", work / "keys"],
                           work / "setup.time", work / "setup.json")
    s = json.loads(out)
    prep.update(setup_s=wall / 1e3, setup_rss_kib=rss, model_id=s["model_id"],
                pk_bytes=(work / "keys" / "pk.bin").stat().st_size, vk_bytes=(work / "keys" / "vk.bin").stat().st_size)
    prep_file.write_text(json.dumps(prep, indent=1))
    return prep


def scores(out, fl, labels, targets):
    """One system's outputs (samples x outputs) against the float outputs, the labels and the targets: top-1 for
    classifiers (more than one output), R² and mean |error| for regression (targets, or one output), each over all
    samples and outputs as zkinfer's report computes them."""
    import numpy as np

    def r2(t, y):
        total = ((t - t.mean()) ** 2).sum()
        return float(1 - ((t - y) ** 2).sum() / total) if total > 0 else None

    s = {"mean_abs_error_vs_float": float(np.abs(out - fl).mean())}
    if out.shape[1] > 1:
        s["top1_agreement"] = float((out.argmax(axis=1) == fl.argmax(axis=1)).mean())
        if labels is not None:
            s["top1"] = float((out.argmax(axis=1) == labels).mean())
    if targets is not None or out.shape[1] == 1:
        s["r2_vs_float"] = r2(fl, out)
        s["mean_relative_error"] = float(np.abs(out - fl).sum() / max(np.abs(fl).sum(), 1e-30))
        if targets is not None and targets.shape == out.shape:
            s["r2"] = r2(targets, out)
            s["mean_abs_error"] = float(np.abs(out - targets).mean())
    return s


def zkinfer_scores(a, outputs):
    """The same figures from `zkinfer compile --json`'s "accuracy" object."""
    s = {"mean_abs_error_vs_float": a["mean_abs_error"]}
    if outputs > 1:
        s["top1_agreement"] = a["top1_agreement"]
        if a.get("int8_top1") is not None:
            s["top1"] = a["int8_top1"]
    reg = a.get("regression")
    if reg:
        s.update(r2_vs_float=reg["fidelity_r2"], mean_relative_error=reg["mean_relative_error"])
        if reg.get("quantized_r2") is not None:
            s.update(r2=reg["quantized_r2"], mean_abs_error=reg.get("quantized_mean_abs_error"))
    return s


def ezkl_outputs(model_dir, ezkl_work, rows, reuse):
    """EZKL's outputs (the witness's rescaled outputs) on rows, one gen_witness call per sample."""
    import numpy as np

    out_file = ezkl_work / f"outputs-{len(rows)}.json"
    if reuse and out_file.exists():
        return np.asarray(json.loads(out_file.read_text()))
    import ezkl

    log(f"{model_dir.name}: EZKL {ezkl_work.name}: gen_witness on {len(rows)} test samples")
    ez = []
    tmp_in, tmp_w = ezkl_work / "acc-input.json", ezkl_work / "acc-witness.json"
    for r in rows:
        tmp_in.write_text(json.dumps({"input_data": [r]}))
        w = ezkl.gen_witness(str(tmp_in), str(ezkl_work / "model.compiled"), str(tmp_w))
        if not isinstance(w, dict) or "pretty_elements" not in w:
            w = json.loads(tmp_w.read_text())
        ez.append([float(v) for v in w["pretty_elements"]["rescaled_outputs"][0]])
    out_file.write_text(json.dumps(ez))
    return np.asarray(ez)


# --- measurement -------------------------------------------------------------------------------------------------


def measure(name, input_file, ezw, variants, runs, verify_runs, py):
    """Alternating prove runs (EZKL, then each zkinfer variant), then verify runs. `variants`: list of
    (label, work dir, prep). Returns EZKL's figures, each variant's (by label), and the load before and after."""
    ez = {"wall_ms": [], "rss_kib": [], "witness_ms": [], "prove_ms": [], "import_ms": []}
    zks = {label: {"wall_ms": [], "rss_kib": [], "proving_ms": []} for label, _, _ in variants}
    load_before = load()
    for i in range(1, runs + 1):
        wall, rss, out = timed([py, __file__, "_ezkl_prove", ezw, ezw / "proof.json"], ezw / f"prove-{i}.time",
                               ezw / f"prove-{i}.out")
        j = json.loads(out.strip().splitlines()[-1])
        ez["wall_ms"].append(wall)
        ez["rss_kib"].append(rss)
        for key in ("witness_ms", "prove_ms", "import_ms"):
            ez[key].append(j[key])
        log(f"{name}: EZKL prove {i}/{runs}: {wall / 1e3:.2f} s wall (prove() {j['prove_ms'] / 1e3:.2f} s), "
            f"{rss / 1024:.0f} MiB")
        for label, zkw, _ in variants:
            zk = zks[label]
            wall, rss, out = timed(
                [ZKINFER, "--json", "prove", zkw / "model.zkm", "--keys", zkw / "keys", "--input",
                 input_file, "--nonce", NONCE, "--salt", SALT, "-o", zkw / "proof.bundle"],
                zkw / f"prove-{i}.time", zkw / f"prove-{i}.json")
            j = json.loads(out)
            zk["wall_ms"].append(wall)
            zk["rss_kib"].append(rss)
            zk["proving_ms"].append(j["proving_ms"])
            zk["proof_bytes"] = j["proof_bytes"]
            zk["commitment"] = j["input_commitment"]
            log(f"{name}: zkinfer {label} prove {i}/{runs}: {wall / 1e3:.2f} s wall, {rss / 1024:.0f} MiB")
    proof = json.loads((ezw / "proof.json").read_text())
    ez["proof_bytes"] = len(proof["proof"])
    ez["proof_json_bytes"] = (ezw / "proof.json").stat().st_size
    ez["instances"] = sum(len(x) for x in proof["instances"])
    # verify
    _, _, out = timed([py, __file__, "_ezkl_verify", ezw, ezw / "proof.json", verify_runs], ezw / "verify.time")
    ez["verify_ms"] = json.loads(out.strip().splitlines()[-1])["verify_ms"]
    for label, zkw, zprep in variants:
        zk = zks[label]
        zk["verify_ms"], zk["verify_wall_ms"] = [], []
        for i in range(verify_runs):
            wall, _, out = timed(
                [ZKINFER, "--json", "verify", zkw / "proof.bundle", "--keys", zkw / "keys", "--model-id",
                 zprep["model_id"], "--nonce", NONCE, "--input-commitment", zk["commitment"],
                 "--allow-insecure-dev-srs"],
                zkw / "verify.time")
            j = json.loads(out)
            if not j.get("accepted"):
                sys.exit(f"compare-ezkl: {name}: zkinfer {label} verify rejected the proof: {out}")
            zk["verify_ms"].append(j["verify_ms"])
            zk["verify_wall_ms"].append(wall)
        log(f"{name}: verify: EZKL {median(ez['verify_ms']):.1f} ms, zkinfer {label} "
            f"{median(zk['verify_ms']):.1f} ms (medians of {verify_runs})")
    return ez, zks, load_before, load()


# --- report ------------------------------------------------------------------------------------------------------


def pct(x):
    return "–" if x is None else f"{100 * x:.1f} %"


def num(x, digits=3):
    return "–" if x is None else f"{x:.{digits}f}"


def accuracy_table(res, n):
    """One row per model and system: float, each EZKL calibration target, each zkinfer variant."""
    lines = [
        f"| model (first ≤ {n} test samples) | system | precision | k | top-1 vs labels | top-1 agreement with float "
        "| R² vs targets | mean abs error vs targets | R² vs float | mean abs output error vs float | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def row(model, system, precision, k, s, notes=""):
        lines.append(f"| {model} | {system} | {precision} | {k} | {pct(s.get('top1'))} "
                     f"| {pct(s.get('top1_agreement'))} | {num(s.get('r2'))} | {num(s.get('mean_abs_error'), 2)} "
                     f"| {num(s.get('r2_vs_float'), 4)} | {num(s.get('mean_abs_error_vs_float'), 4)} | {notes} |")

    for r in res["models"]:
        m = f"{r['model']} ({r['samples']} samples, {r['outputs']} output{'s' if r['outputs'] > 1 else ''})"
        fs = r["float"]
        row(m, "float (onnxruntime)", "f32", "–", {k: fs.get(k) for k in ("top1", "r2", "mean_abs_error")})
        for t, e in r["ezkl_targets"].items():
            ep, st = e["prep"], e["prep"].get("settings") or {}
            precision = (f"input/param scale 2^{st['input_scale']}/2^{st['param_scale']}, rebase ×"
                         f"{st['scale_rebase_multiplier']}" if st else "–")
            notes = (f"calibrate {ep.get('calibrate_s', 0):.0f} s, prepare {ep['wall_s']:.0f} s, peak RSS "
                     f"{(ep.get('peak_rss_kib') or 0) / 1024:.0f} MiB")
            if "error" in ep:
                notes = f"**{ep['error'].replace('|', '/')}**; " + notes
            row(m, f"EZKL {res['ezkl_version']} calibrate `{t}`", precision, st.get("logrows", "–"),
                e["scores"] or {}, notes)
        for label, zs in r["zkinfer_scores"].items():
            zp, p = r["zkinfer_prep"][label], r["zkinfer_prep"][label].get("precision") or {}
            scales = {"PerChannel": "per channel", "PerTensor": "per tensor"}.get(p.get("input"), p.get("input"))
            precision = f"w{p['weight_bits']} o{p['output_bits']} a{p['activation_bits']}, input {scales}" if p else "?"
            row(m, f"zkinfer {label}" + (f" (`{zp['flags']}`)" if zp["flags"] else " (no flags)"), precision,
                zp["layout"]["k"], zs, f"compile {zp['compile_s'] * 1e3:.0f} ms, setup {zp['setup_s']:.1f} s")
    return lines


def write_report(res, args, out_dir):
    lines = []
    timed_models = [r for r in res["models"] if "ezkl" in r]
    if timed_models:
        lines += [f"Timing (EZKL calibrated to `{res['calibration_targets'][0]}`):", "",
                  "| model | system | k | prove s (median of {n}, min–max) | verify ms (median of {v}) | proof bytes "
                  "| peak RSS MiB (prove, max) |".format(n=args.runs, v=args.verify_runs),
                  "|---|---|---|---|---|---|---|"]
    ratios = []
    for r in timed_models:
        ez = r["ezkl"]
        lines.append(
            f"| {r['model']} | EZKL {res['ezkl_version']} | {r['ezkl_prep']['settings']['logrows']} "
            f"| **{median(ez['wall_ms']) / 1e3:.2f}** ({min(ez['wall_ms']) / 1e3:.2f}–{max(ez['wall_ms']) / 1e3:.2f}) "
            f"| {median(ez['verify_ms']):.1f} | {ez['proof_bytes']} | {max(ez['rss_kib']) / 1024:.1f} |")
        for label, zk in r["zkinfer"].items():
            zp = r["zkinfer_prep"][label]
            lines.append(
                f"| {r['model']} | zkinfer {label} | {zp['layout']['k']} "
                f"| **{median(zk['wall_ms']) / 1e3:.2f}** ({min(zk['wall_ms']) / 1e3:.2f}–"
                f"{max(zk['wall_ms']) / 1e3:.2f}) "
                f"| {median(zk['verify_ms']):.1f} | {zk['proof_bytes']} | {max(zk['rss_kib']) / 1024:.1f} |")
            ratios.append((r["model"], label, median(ez["wall_ms"]) / median(zk["wall_ms"]),
                           median(ez["prove_ms"]) / median(zk["proving_ms"])))
    if timed_models:
        lines += ["", "| model | zkinfer variant | EZKL / zkinfer prove wall (process) "
                  "| EZKL prove() / zkinfer proving_ms (in-process) |", "|---|---|---|---|"]
        lines += [f"| {m} | {label} | **{a:.2f}×** | {b:.2f}× |" for m, label, a, b in ratios]
        lines += ["", "| model | system | prove: in-process parts, medians | setup (keygen) s | pk / vk bytes "
                  "| settings |", "|---|---|---|---|---|---|"]
    for r in timed_models:
        ez, ep = r["ezkl"], r["ezkl_prep"]
        s = ep["settings"]
        lines.append(
            f"| {r['model']} | EZKL | import ezkl {median(ez['import_ms']):.0f} ms, gen_witness "
            f"{median(ez['witness_ms']):.0f} ms, prove() {median(ez['prove_ms']):.0f} ms | {ep['setup_s']:.1f} "
            f"| {ep['pk_bytes']} / {ep['vk_bytes']} | {s['num_rows']} rows, input/param scale {s['input_scale']}/"
            f"{s['param_scale']}, visibility input {s['input_visibility']} / params {s['param_visibility']} / "
            f"output {s['output_visibility']}; {ez['instances']} public instances; calibrate "
            f"{ep['calibrate_s']:.1f} s |")
        for label, zk in r["zkinfer"].items():
            zp = r["zkinfer_prep"][label]
            lines.append(
                f"| {r['model']} | zkinfer {label} | proving_ms {median(zk['proving_ms']):.0f} ms (witness + prover "
                f"+ self-check) | {zp['setup_s']:.1f} | {zp['pk_bytes']} / {zp['vk_bytes']} | compile flags "
                f"`{zp['flags'] or '(none)'}`, {zp['layout']['advice_columns']} advice / "
                f"{zp['layout']['fixed_columns']} fixed columns; public: Poseidon input commitment, nonce, "
                f"{r['outputs']} outputs; zkinfer verify CLI wall {median(zk['verify_wall_ms']):.1f} ms |")
    if lines:
        lines.append("")
    lines += ["Accuracy on the first test samples: top-1 for classifiers, R² and mean |error| for regression; "
              "EZKL's outputs are gen_witness's rescaled outputs, zkinfer's those of `compile --json`'s report.", ""]
    lines += accuracy_table(res, args.acc_samples)
    md = "\n".join(lines) + "\n"
    head = (f"EZKL {res['ezkl_version']} vs zkinfer, {res['date_utc']}; {res['machine']}; load average "
            f"{res['load_start']} before, {res['load_end']} after; EZKL calibration targets "
            f"{', '.join(res['calibration_targets'])}{'; accuracy only (--prepare-only)' if args.prepare_only else ''}"
            ".\n\n")
    (out_dir / "results.md").write_text(head + md)
    return head + md


def plot(res, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    timed = [r for r in res["models"] if "ezkl" in r]
    models = [r["model"] for r in timed]
    x = np.arange(len(models))
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    labels = list(timed[0]["zkinfer"])
    series = [(lambda r: r["ezkl"], f"EZKL {res['ezkl_version']}", "#d62728")]
    colors = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b"]
    series += [(lambda r, v=v: r["zkinfer"][v], f"zkinfer {v}", colors[i % len(colors)])
               for i, v in enumerate(labels)]
    width = 0.8 / len(series)
    for i, (get, label, color) in enumerate(series):
        off = (i - (len(series) - 1) / 2) * width
        med = np.array([median(get(r)["wall_ms"]) / 1e3 for r in timed])
        lo = med - np.array([min(get(r)["wall_ms"]) / 1e3 for r in timed])
        hi = np.array([max(get(r)["wall_ms"]) / 1e3 for r in timed]) - med
        bars = ax.bar(x + off, med, width * 0.95, yerr=[lo, hi], capsize=3, label=label, color=color)
        for b, v, h in zip(bars, med, hi):
            ax.annotate(f"{v:.2f} s", (b.get_x() + b.get_width() / 2, v + h), ha="center", va="bottom",
                        xytext=(0, 3), textcoords="offset points", fontsize=8)
    ks = [f"{m}\nk = {r['ezkl_prep']['settings']['logrows']} / "
          + " / ".join(str(p['layout']['k']) for p in r['zkinfer_prep'].values())
          for m, r in zip(models, timed)]
    ax.set_xticks(x, ks)
    ax.set_ylabel("prove wall time, s (median, min–max)")
    ax.set_title(f"Proving time, one sample, CPU ({res['machine_short']})", fontsize=10)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.text(0.01, 0.01, f"{res['date_utc']}; k = EZKL / zkinfer variants; KZG, BN254, locally generated SRS",
             fontsize=7, color="gray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main():
    global ZKINFER
    if len(sys.argv) > 1 and sys.argv[1] == "_ezkl_prove":
        return child_ezkl_prove(Path(sys.argv[2]), Path(sys.argv[3]))
    if len(sys.argv) > 1 and sys.argv[1] == "_ezkl_verify":
        return child_ezkl_verify(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
    if len(sys.argv) > 1 and sys.argv[1] == "_ezkl_prep":
        return child_ezkl_prep(*map(Path, sys.argv[2:5]), sys.argv[5], Path(sys.argv[6]))
    # No abbreviated options: the wrapper resolves --out, --plot, --zkinfer and --venv by their full names.
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("models", nargs="*", help="model directories (default: the three shipped digits models)")
    ap.add_argument("--zkinfer", default=str(ZKINFER), metavar="PATH",
                    help="the zkinfer binary (default target/release/zkinfer)")
    ap.add_argument("--runs", type=int, default=3, help="prove runs per system and model (default 3)")
    ap.add_argument("--verify-runs", type=int, default=10, help="verify runs per system and model (default 10)")
    ap.add_argument("--acc-samples", type=int, default=360, help="test samples for the accuracy columns (default 360)")
    ap.add_argument("--out", default=str(ROOT / "target" / "compare-ezkl"),
                    help="work directory: settings, keys, proofs, results.{md,json} (default target/compare-ezkl)")
    ap.add_argument("--plot", default=str(ROOT / "docs" / "compare-ezkl.png"),
                    help="PNG plot of proving times (default docs/compare-ezkl.png; none with --prepare-only)")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse settings, keys and accuracy results of an earlier run in the work directory")
    ap.add_argument("--prepare-only", action="store_true",
                    help="prepare (settings, keys) and report accuracy only; time nothing, plot nothing")
    ap.add_argument("--wait-load", type=float, default=None, metavar="L",
                    help="before measuring each model, wait until the 1-minute load average is below L")
    ap.add_argument("--ezkl-targets", default="resources", metavar="T[,T]",
                    help="EZKL calibrate_settings targets, comma-separated, from " + ", ".join(CALIBRATION_TARGETS)
                         + " (default resources); each is set up and scored, the first is also timed")
    ap.add_argument("--variant", action="append", metavar="LABEL=FLAGS",
                    help="a zkinfer variant besides " + BASE_VARIANT.rstrip("=") + " (no flags): LABEL=extra "
                         "`zkinfer compile` flags (repeatable; default: " + "; ".join(DEFAULT_VARIANTS) + ")")
    args = ap.parse_args()
    given = [v.split("=", 1) for v in (args.variant or DEFAULT_VARIANTS)]
    if any(len(v) != 2 or not v[0] for v in given):
        sys.exit("compare-ezkl: --variant takes LABEL=FLAGS, e.g. --variant 'w16=--weight-bits 16'")
    # the search with no flags always runs, unless a --variant already is that
    variants = ([] if any(not f.strip() for _, f in given) else [BASE_VARIANT.split("=", 1)]) + given
    if len({label for label, _ in variants}) != len(variants):
        sys.exit(f"compare-ezkl: variant labels must differ: {', '.join(label for label, _ in variants)}")
    targets = [t.strip() for t in args.ezkl_targets.split(",") if t.strip()]
    if not targets or any(t not in CALIBRATION_TARGETS for t in targets) or len(set(targets)) != len(targets):
        sys.exit(f"compare-ezkl: --ezkl-targets takes one or more of {', '.join(CALIBRATION_TARGETS)}, "
                 "comma-separated")

    ZKINFER = Path(args.zkinfer).resolve()
    if not ZKINFER.is_file() or not os.access(ZKINFER, os.X_OK):
        problem = "is not an executable file" if ZKINFER.exists() else "does not exist"
        sys.exit(f"compare-ezkl: zkinfer binary {ZKINFER} {problem}. Pass --zkinfer PATH to a built zkinfer, or build "
                 "target/release/zkinfer (the default) with: cargo build --release --bin zkinfer")
    models = [Path(m).resolve() for m in (args.models or [ROOT / "models" / n for n in ("digits-mlp", "digits-cnn",
                                                                                        "digits-resnet")])]
    for m in models:
        if not (m / "model.onnx").is_file():
            sys.exit(f"compare-ezkl: {m} is not a model directory: it has no model.onnx")

    import ezkl
    import numpy as np

    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    mem = next((int(ln.split()[1]) for ln in open("/proc/meminfo") if ln.startswith("MemTotal")), 0) / 1048576
    res = {
        "ezkl_version": ezkl.__version__,
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} vCPU {cpu}, {mem:.1f} GiB RAM, no GPU used",
        "machine_short": f"{os.cpu_count()} vCPU",
        "load_start": load(),
        "calibration_targets": targets,
        "args": vars(args),
        "models": [],
    }
    log(f"EZKL {ezkl.__version__}; zkinfer {shown(ZKINFER)}; load average {res['load_start']}")
    srs_dir = out_dir / "srs"
    for m in models:
        name = m.name
        test = json.loads((m / "test.json").read_text())
        n = min(args.acc_samples, len(test["input_data"]))
        sub = {key: test[key][:n] for key in ("input_data", "labels", "targets") if key in test}
        rows = sub["input_data"]
        labels = np.asarray(sub["labels"]) if "labels" in sub else None
        tgts = np.asarray(sub["targets"], dtype=float) if "targets" in sub else None
        input_file = m / "input.json"
        if not input_file.exists():  # the tabular fixtures have none: prove (and EZKL's settings) on a test sample
            input_file = out_dir / name / "input.json"
            input_file.parent.mkdir(parents=True, exist_ok=True)
            input_file.write_text(json.dumps({"input_data": [test["input_data"][0]]}))
        fl, _ = float_outputs(m, rows)
        outputs = fl.shape[1]
        r = {"model": name, "samples": n, "outputs": outputs, "float": scores(fl, fl, labels, tgts),
             "ezkl_targets": {}, "zkinfer_prep": {}, "zkinfer_scores": {}}
        for t in targets:
            ezw = out_dir / name / f"ezkl-{t}"
            ep = prep_ezkl(m, ezw, srs_dir, t, input_file, args.reuse, py)
            sc = None
            if "settings" in ep and (ezw / "model.compiled").exists():  # scored even when setup failed
                try:
                    sc = scores(ezkl_outputs(m, ezw, rows, args.reuse), fl, labels, tgts)
                except Exception as e:  # noqa: BLE001 (ezkl raises its own error types)
                    ep["error"] = (ep.get("error", "") + f"; gen_witness failed: {e}").lstrip("; ")
                    log(f"{name}: EZKL {t}: gen_witness failed: {e}")
            r["ezkl_targets"][t] = {"prep": ep, "scores": sc}
        zvariants = []
        for label, flags in variants:
            zkw = out_dir / name / f"zkinfer-{label}"
            zp = prep_zkinfer(m, zkw, m / "test.json", flags, args.reuse)
            # zkinfer's accuracy report on exactly the rows EZKL is scored on
            acc = zp["accuracy"]
            if n < len(test["input_data"]):
                part = zkw / f"test-{n}.json"
                part.write_text(json.dumps(sub))
                _, _, out = timed([ZKINFER, "--json", "compile", m / "model.onnx", "--calibration",
                                   m / "calibration.json", "--test", part, "-o", zkw / "model-acc.zkm",
                                   *flags.split()], zkw / "compile-acc.time")
                acc = json.loads(out)["accuracy"]
            r["zkinfer_prep"][label] = zp
            r["zkinfer_scores"][label] = zkinfer_scores(acc, outputs)
            zvariants.append((label, zkw, zp))
        res["models"].append(r)
        first = r["ezkl_targets"][targets[0]]["prep"]
        if args.prepare_only:
            continue
        if "error" in first:
            log(f"{name}: EZKL {targets[0]} was not set up; not timed")
            continue
        wait_for_load(args.wait_load, 30)
        log(f"{name}: measuring ({args.runs} prove runs per system, alternating; {args.verify_runs} verify runs)")
        ez, zks, lb, la = measure(name, input_file, out_dir / name / f"ezkl-{targets[0]}", zvariants, args.runs,
                                  args.verify_runs, py)
        r.update(ezkl_prep=first, ezkl=ez, zkinfer=zks, load_before=lb, load_after=la)
    res["load_end"] = load()
    (out_dir / "results.json").write_text(json.dumps(res, indent=1))
    md = write_report(res, args, out_dir)
    print(md)
    if args.prepare_only or not any("ezkl" in r for r in res["models"]):
        log(f"wrote {shown(out_dir / 'results.md')} and {shown(out_dir / 'results.json')} "
            "(accuracy only; nothing timed, no plot)")
        return
    plot(res, Path(args.plot))
    log(f"wrote {shown(out_dir / 'results.md')}, {shown(out_dir / 'results.json')} and {shown(args.plot)}")


if __name__ == "__main__":
    main()
