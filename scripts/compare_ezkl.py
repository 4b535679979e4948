#!/usr/bin/env python3
"""EZKL and zkinfer side by side on the same ONNX files and the same inputs.

Run through scripts/compare-ezkl, which makes the virtual environment (target/ezkl-venv) this needs: ezkl,
onnxruntime, numpy, matplotlib. See `scripts/compare-ezkl --help`.

Per model directory (model.onnx, calibration.json, input.json, test.json):

  prepare (not timed for the table; its own durations are recorded):
    EZKL     gen_settings (EZKL's default run args) -> calibrate_settings(target="resources") on calibration.json
             -> compile_circuit -> gen_srs (locally, logrows from the calibrated settings) -> setup
    zkinfer  compile --json (with --test and the variant's flags) -> setup --insecure-dev-srs --json, once per
             variant (default: int8, and 10-bit weights with 16-bit outputs)
    accuracy float (onnxruntime) vs EZKL (gen_witness per test sample, "pretty_elements"."rescaled_outputs")
             vs zkinfer (compile's accuracy report) on the first N test samples

  measure (alternating EZKL prove, zkinfer prove of each variant, EZKL prove, ...; every prove is its own process
  under /usr/bin/time -v, whose wall time is taken around it):
    EZKL     one Python process: import ezkl, gen_witness(input.json), prove -> proof.json
    zkinfer  one `zkinfer prove` process: load pk, quantize input.json, infer, witness, prove, self-check
    verify   EZKL: ezkl.verify() calls in one process (each call reads the proof, settings, vk and SRS);
             zkinfer: `zkinfer verify --json` processes, in-process `verify_ms`

Writes target/compare-ezkl/results.{md,json} and the plot (default docs/compare-ezkl.png); the Markdown table also
goes to stdout, progress to stderr.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZKINFER = ROOT / "target" / "release" / "zkinfer"
NONCE = "0x1234abcd"
SALT = "0x5a17"
CALIBRATION_TARGET = "resources"  # EZKL's default for calibrate_settings (and the CLI's)
# zkinfer variants measured by default: label -> extra `zkinfer compile` flags.
DEFAULT_VARIANTS = ["int8=", "w10-o16=--weight-bits 10 --output-bits 16"]


def log(*a):
    print("compare-ezkl:", *a, file=sys.stderr, flush=True)


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


def prep_ezkl(model_dir, work, srs_dir, reuse):
    import ezkl

    work.mkdir(parents=True, exist_ok=True)
    prep_file = work / "prep.json"
    if reuse and prep_file.exists() and (work / "pk.key").exists():
        log(f"{model_dir.name}: EZKL: reusing {work.relative_to(ROOT)}")
        return json.loads(prep_file.read_text())
    onnx = str(model_dir / "model.onnx")
    cal = json.loads((model_dir / "calibration.json").read_text())["input_data"]
    # EZKL takes one flat list per model input; calibration splits a longer list into batches of the input size.
    (work / "calibration.json").write_text(json.dumps({"input_data": [[x for r in cal for x in r]]}))
    inp = json.loads((model_dir / "input.json").read_text())["input_data"]
    (work / "input.json").write_text(json.dumps({"input_data": [inp[0]]}))
    prep = {}
    t = time.perf_counter()
    if not ezkl.gen_settings(onnx, str(work / "settings.json")):  # default PyRunArgs
        sys.exit("ezkl.gen_settings failed")
    prep["gen_settings_s"] = time.perf_counter() - t
    log(f"{model_dir.name}: EZKL: calibrate_settings(target={CALIBRATION_TARGET!r}) on {len(cal)} samples")
    t = time.perf_counter()
    if not ezkl.calibrate_settings(
        str(work / "calibration.json"), onnx, str(work / "settings.json"), CALIBRATION_TARGET
    ):
        sys.exit("ezkl.calibrate_settings failed")
    prep["calibrate_s"] = time.perf_counter() - t
    t = time.perf_counter()
    if not ezkl.compile_circuit(onnx, str(work / "model.compiled"), str(work / "settings.json")):
        sys.exit("ezkl.compile_circuit failed")
    prep["compile_s"] = time.perf_counter() - t
    settings = json.loads((work / "settings.json").read_text())
    k = settings["run_args"]["logrows"]
    srs = srs_dir / f"kzg{k}.srs"
    if not srs.exists():
        log(f"{model_dir.name}: EZKL: gen_srs(logrows={k}) (local, insecure: its toxic waste is not destroyed)")
        srs_dir.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        ezkl.gen_srs(str(srs), k)
        prep["gen_srs_s"] = time.perf_counter() - t
    link = work / "kzg.srs"
    if link.exists() or link.is_symlink():
        link.unlink()
    link.symlink_to(srs.resolve())
    log(f"{model_dir.name}: EZKL: setup (k = {k})")
    t = time.perf_counter()
    if not ezkl.setup(str(work / "model.compiled"), str(work / "vk.key"), str(work / "pk.key"), str(link)):
        sys.exit("ezkl.setup failed")
    prep["setup_s"] = time.perf_counter() - t
    prep["pk_bytes"] = (work / "pk.key").stat().st_size
    prep["vk_bytes"] = (work / "vk.key").stat().st_size
    ra = settings["run_args"]
    prep["settings"] = {
        "logrows": k,
        "num_rows": settings.get("num_rows"),
        "input_scale": ra["input_scale"],
        "param_scale": ra["param_scale"],
        "scale_rebase_multiplier": ra.get("scale_rebase_multiplier"),
        "lookup_range": ra.get("lookup_range"),
        "input_visibility": ra["input_visibility"],
        "output_visibility": ra["output_visibility"],
        "param_visibility": ra["param_visibility"],
        "check_mode": ra.get("check_mode"),
        "num_inner_cols": ra.get("num_inner_cols"),
    }
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
            log(f"{model_dir.name}: zkinfer {flags or '(int8)'}: reusing {work.relative_to(ROOT)}")
            return prep
        log(f"{model_dir.name}: zkinfer: {work.relative_to(ROOT)} comes from another build or flags; redoing it")
    log(f"{model_dir.name}: zkinfer {flags or '(int8)'}: compile, setup --insecure-dev-srs")
    wall, _, out = timed(
        [ZKINFER, "--json", "compile", model_dir / "model.onnx", "--calibration", model_dir / "calibration.json",
         "--test", test_file, "-o", work / "model.zkm", *flags.split()],
        work / "compile.time", work / "compile.json")
    c = json.loads(out)
    prep = {"compile_s": wall / 1e3, "layout": c["layout"], "accuracy": c["accuracy"], "flags": flags,
            "build": zkinfer_build()}
    wall, rss, out = timed([ZKINFER, "--json", "setup", work / "model.zkm", "--insecure-dev-srs", "-o", work / "keys"],
                           work / "setup.time", work / "setup.json")
    s = json.loads(out)
    prep.update(setup_s=wall / 1e3, setup_rss_kib=rss, model_id=s["model_id"],
                pk_bytes=(work / "keys" / "pk.bin").stat().st_size, vk_bytes=(work / "keys" / "vk.bin").stat().st_size)
    prep_file.write_text(json.dumps(prep, indent=1))
    return prep


def accuracy(model_dir, ezkl_work, rows, labels, reuse):
    """Float (onnxruntime) and EZKL (witness rescaled outputs) top-1 on rows; EZKL's agreement with float."""
    import numpy as np

    acc_file = ezkl_work / f"accuracy-{len(rows)}.json"
    if reuse and acc_file.exists():
        return json.loads(acc_file.read_text())
    import ezkl

    log(f"{model_dir.name}: accuracy on {len(rows)} test samples (onnxruntime float, EZKL gen_witness per sample)")
    fl, _ = float_outputs(model_dir, rows)
    ez = []
    t = time.perf_counter()
    tmp_in, tmp_w = ezkl_work / "acc-input.json", ezkl_work / "acc-witness.json"
    for r in rows:
        tmp_in.write_text(json.dumps({"input_data": [r]}))
        w = ezkl.gen_witness(str(tmp_in), str(ezkl_work / "model.compiled"), str(tmp_w))
        if not isinstance(w, dict) or "pretty_elements" not in w:
            w = json.loads(tmp_w.read_text())
        ez.append([float(v) for v in w["pretty_elements"]["rescaled_outputs"][0]])
    witness_s = time.perf_counter() - t
    ez = np.asarray(ez)
    labels = np.asarray(labels)
    fa, ea = fl.argmax(axis=1), ez.argmax(axis=1)
    res = {
        "samples": len(rows),
        "float_top1": float((fa == labels).mean()),
        "ezkl_top1": float((ea == labels).mean()),
        "ezkl_float_agreement": float((ea == fa).mean()),
        "ezkl_mean_abs_error": float(np.abs(ez - fl).mean()),
        "ezkl_max_abs_error": float(np.abs(ez - fl).max()),
        "ezkl_witness_s_total": witness_s,
    }
    acc_file.write_text(json.dumps(res, indent=1))
    return res


# --- measurement -------------------------------------------------------------------------------------------------


def measure(name, model_dir, ezw, variants, runs, verify_runs, py):
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
                 model_dir / "input.json", "--nonce", NONCE, "--salt", SALT, "-o", zkw / "proof.bundle"],
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
    return f"{100 * x:.1f} %"


def write_report(res, args, out_dir):
    lines = [
        "| model | system | k | prove s (median of {n}, min–max) | verify ms (median of {v}) | proof bytes "
        "| peak RSS MiB (prove, max) | top-1 (n = {a}) | top-1 agreement with float |".format(
            n=args.runs, v=args.verify_runs, a=args.acc_samples),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ratios = []
    for r in res["models"]:
        ez, acc = r["ezkl"], r["accuracy"]
        lines.append(
            f"| {r['model']} | float (onnxruntime) | – | – | – | – | – | {pct(acc['float_top1'])} | – |")
        lines.append(
            f"| {r['model']} | EZKL {res['ezkl_version']} | {r['ezkl_prep']['settings']['logrows']} "
            f"| **{median(ez['wall_ms']) / 1e3:.2f}** ({min(ez['wall_ms']) / 1e3:.2f}–{max(ez['wall_ms']) / 1e3:.2f}) "
            f"| {median(ez['verify_ms']):.1f} | {ez['proof_bytes']} | {max(ez['rss_kib']) / 1024:.1f} "
            f"| {pct(acc['ezkl_top1'])} | {pct(acc['ezkl_float_agreement'])} |")
        for label, zk in r["zkinfer"].items():
            zp = r["zkinfer_prep"][label]
            za = zp["accuracy_n"]
            lines.append(
                f"| {r['model']} | zkinfer {label} | {zp['layout']['k']} "
                f"| **{median(zk['wall_ms']) / 1e3:.2f}** ({min(zk['wall_ms']) / 1e3:.2f}–"
                f"{max(zk['wall_ms']) / 1e3:.2f}) "
                f"| {median(zk['verify_ms']):.1f} | {zk['proof_bytes']} | {max(zk['rss_kib']) / 1024:.1f} "
                f"| {pct(za['int8_top1'])} | {pct(za['top1_agreement'])} |")
            ratios.append((r["model"], label, median(ez["wall_ms"]) / median(zk["wall_ms"]),
                           median(ez["prove_ms"]) / median(zk["proving_ms"])))
    lines += ["", "| model | zkinfer variant | EZKL / zkinfer prove wall (process) "
              "| EZKL prove() / zkinfer proving_ms (in-process) |", "|---|---|---|---|"]
    lines += [f"| {m} | {label} | **{a:.2f}×** | {b:.2f}× |" for m, label, a, b in ratios]
    lines += ["", "| model | system | prove: in-process parts, medians | setup (keygen) s | pk / vk bytes "
              "| settings |", "|---|---|---|---|---|---|"]
    for r in res["models"]:
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
                f"10 outputs; zkinfer verify CLI wall {median(zk['verify_wall_ms']):.1f} ms |")
    md = "\n".join(lines) + "\n"
    head = (f"EZKL {res['ezkl_version']} vs zkinfer, {res['date_utc']}; {res['machine']}; load average "
            f"{res['load_start']} before, {res['load_end']} after; calibration target {CALIBRATION_TARGET!r}.\n\n")
    (out_dir / "results.md").write_text(head + md)
    return head + md


def plot(res, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = [r["model"] for r in res["models"]]
    x = np.arange(len(models))
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    labels = list(res["models"][0]["zkinfer"])
    series = [(lambda r: r["ezkl"], f"EZKL {res['ezkl_version']}", "#d62728")]
    colors = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b"]
    series += [(lambda r, v=v: r["zkinfer"][v], f"zkinfer {v}", colors[i % len(colors)])
               for i, v in enumerate(labels)]
    width = 0.8 / len(series)
    for i, (get, label, color) in enumerate(series):
        off = (i - (len(series) - 1) / 2) * width
        med = np.array([median(get(r)["wall_ms"]) / 1e3 for r in res["models"]])
        lo = med - np.array([min(get(r)["wall_ms"]) / 1e3 for r in res["models"]])
        hi = np.array([max(get(r)["wall_ms"]) / 1e3 for r in res["models"]]) - med
        bars = ax.bar(x + off, med, width * 0.95, yerr=[lo, hi], capsize=3, label=label, color=color)
        for b, v, h in zip(bars, med, hi):
            ax.annotate(f"{v:.2f} s", (b.get_x() + b.get_width() / 2, v + h), ha="center", va="bottom",
                        xytext=(0, 3), textcoords="offset points", fontsize=8)
    ks = [f"{m}\nk = {r['ezkl_prep']['settings']['logrows']} / "
          + " / ".join(str(p['layout']['k']) for p in r['zkinfer_prep'].values())
          for m, r in zip(models, res["models"])]
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
    if len(sys.argv) > 1 and sys.argv[1] == "_ezkl_prove":
        return child_ezkl_prove(Path(sys.argv[2]), Path(sys.argv[3]))
    if len(sys.argv) > 1 and sys.argv[1] == "_ezkl_verify":
        return child_ezkl_verify(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="model directories (default: the three shipped digits models)")
    ap.add_argument("--runs", type=int, default=3, help="prove runs per system and model (default 3)")
    ap.add_argument("--verify-runs", type=int, default=10, help="verify runs per system and model (default 10)")
    ap.add_argument("--acc-samples", type=int, default=360, help="test samples for the accuracy columns (default 360)")
    ap.add_argument("--out", default=str(ROOT / "target" / "compare-ezkl"), help="work directory")
    ap.add_argument("--plot", default=str(ROOT / "docs" / "compare-ezkl.png"), help="PNG plot of proving times")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse settings, keys and accuracy results of an earlier run in the work directory")
    ap.add_argument("--prepare-only", action="store_true", help="prepare (settings, keys, accuracy), measure nothing")
    ap.add_argument("--wait-load", type=float, default=None, metavar="L",
                    help="before measuring each model, wait until the 1-minute load average is below L")
    ap.add_argument("--variant", action="append", metavar="LABEL=FLAGS",
                    help="a zkinfer variant: LABEL=extra `zkinfer compile` flags (repeatable; default: "
                         + "; ".join(DEFAULT_VARIANTS) + ")")
    args = ap.parse_args()
    variants = [v.split("=", 1) for v in (args.variant or DEFAULT_VARIANTS)]
    if any(len(v) != 2 or not v[0] for v in variants):
        sys.exit("compare-ezkl: --variant takes LABEL=FLAGS, e.g. --variant 'w16=--weight-bits 16'")

    import ezkl

    models = [Path(m).resolve() for m in (args.models or ["models/digits-mlp", "models/digits-cnn",
                                                           "models/digits-resnet"])]
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
        "calibration_target": CALIBRATION_TARGET,
        "args": vars(args),
        "models": [],
    }
    log(f"EZKL {ezkl.__version__}; zkinfer {ZKINFER.relative_to(ROOT)}; load average {res['load_start']}")
    srs_dir = out_dir / "srs"
    for m in models:
        name = m.name
        ezw = out_dir / name / "ezkl"
        test = json.loads((m / "test.json").read_text())
        rows, labels = test["input_data"][: args.acc_samples], test["labels"][: args.acc_samples]
        ep = prep_ezkl(m, ezw, srs_dir, args.reuse)
        zvariants = []
        for label, flags in variants:
            zkw = out_dir / name / f"zkinfer-{label}"
            zp = prep_zkinfer(m, zkw, m / "test.json", flags, args.reuse)
            # zkinfer's accuracy report on exactly the rows EZKL is scored on
            if len(rows) == len(test["input_data"]):
                zp["accuracy_n"] = zp["accuracy"]
            else:
                sub = zkw / f"test-{len(rows)}.json"
                sub.write_text(json.dumps({"input_data": rows, "labels": labels}))
                _, _, out = timed([ZKINFER, "--json", "compile", m / "model.onnx", "--calibration",
                                   m / "calibration.json", "--test", sub, "-o", zkw / "model-acc.zkm",
                                   *flags.split()], zkw / "compile-acc.time")
                zp["accuracy_n"] = json.loads(out)["accuracy"]
            zvariants.append((label, zkw, zp))
        acc = accuracy(m, ezw, rows, labels, args.reuse)
        if args.prepare_only:
            continue
        wait_for_load(args.wait_load, 30)
        log(f"{name}: measuring ({args.runs} prove runs per system, alternating; {args.verify_runs} verify runs)")
        ez, zks, lb, la = measure(name, m, ezw, zvariants, args.runs, args.verify_runs, py)
        res["models"].append({"model": name, "ezkl_prep": ep,
                              "zkinfer_prep": {label: zp for label, _, zp in zvariants}, "accuracy": acc,
                              "ezkl": ez, "zkinfer": zks, "load_before": lb, "load_after": la})
    if args.prepare_only:
        log("prepared; nothing measured (--prepare-only)")
        return
    res["load_end"] = load()
    (out_dir / "results.json").write_text(json.dumps(res, indent=1))
    md = write_report(res, args, out_dir)
    plot(res, Path(args.plot))
    print(md)
    log(f"wrote {(out_dir / 'results.md').relative_to(ROOT)}, {out_dir.relative_to(ROOT)}/results.json and "
        f"{Path(args.plot).resolve().relative_to(ROOT) if Path(args.plot).resolve().is_relative_to(ROOT) else args.plot}")


if __name__ == "__main__":
    main()
