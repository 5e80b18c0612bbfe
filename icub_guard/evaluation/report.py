"""Writing an evaluation: Fig. 6/7-style plots (PNG+SVG), JSON, CSV, Markdown summary."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from .defences import DefenceEvalResult
from .security import ACCURACY_RULE, EvalResult
from .teaching import TeachingEvalResult

#: (classifier, adaptive attacker) → colour, marker, legend
STYLE = {("svm", False): ("tab:blue", "o", "SVM"), ("svm-rbf", False): ("tab:orange", "s", "SVM-RBF"),
         ("svm-adv", False): ("tab:green", "^", "SVM-adv"),
         ("svm-adv+5%", False): ("tab:red", "v", "SVM-adv (+5% FRR)"),
         ("svm-adv+5%", True): ("tab:purple", "x", "SVM-adv (+5% FRR), adaptive attack")}


def _save(fig, out: Path, stem: str) -> list[str]:
    names = []
    for ext in ("png", "svg"):
        fig.savefig(out / f"{stem}.{ext}", dpi=130, bbox_inches="tight")
        names.append(f"{stem}.{ext}")
    plt.close(fig)
    return names


def plot_security(res: EvalResult, out: Path) -> list[str]:
    """Fig. 6 style: accuracy vs d_max, error-generic and error-specific side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, mode in zip(axes, ("generic", "specific"), strict=True):
        for c in res.curves_of(mode):
            color, marker, label = STYLE.get((c.key.classifier, c.key.adaptive), ("k", ".", c.key.label))
            ax.plot(res.d_max, c.accuracy, marker=marker, color=color, label=label,
                    linestyle="--" if c.key.adaptive else "-")
        ax.set_title(f"error-{mode} attack")
        ax.set_xlabel(f"d_max ({res.config['norm']}, pixel units 0..255)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (rejected attack = correct)")
    axes[1].legend(loc="upper right", fontsize=8)
    fig.suptitle(f"Security evaluation on {res.config['dataset']} ({res.config['backbone']}, "
                 f"{res.config['weights']} weights)")
    return _save(fig, out, "security_accuracy")


ROBUST_ERROR = ("confidence-thresholded robust error (Stutz et al. 2020) at the operating threshold: a crop is an "
                "error if its clean or attacked version is accepted with a wrong label; a crop whose clean version is "
                "rejected is left out unless its attacked version is accepted wrongly (lower is better)")


def plot_robust_error(res: EvalResult, out: Path) -> list[str]:
    """Stutz et al.'s robust error vs d_max for every error-generic curve: what a reject option is judged by."""
    curves = [c for c in res.curves_of("generic") if c.robust_error is not None]
    if not curves:
        return []
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for c in curves:
        color, marker, label = STYLE.get((c.key.classifier, c.key.adaptive), ("k", ".", c.key.label))
        ax.plot(res.d_max, c.robust_error, marker=marker, color=color, label=label,
                linestyle="--" if c.key.adaptive else "-")
    ax.set_xlabel(f"d_max ({res.config['norm']}, pixel units 0..255)")
    ax.set_ylabel("robust error (Stutz et al. 2020)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("error-generic attack: confidence-thresholded robust error")
    return _save(fig, out, "robust_error")


def plot_examples(res: EvalResult, out: Path) -> list[str]:
    """Fig. 7 style: original, amplified perturbation, adversarial — per d_max, and a sticker."""
    ex = res.examples
    if not ex:
        return []
    cols = len(ex["adversarial"]) + 1
    fig, axes = plt.subplots(3, cols, figsize=(1.9 * cols, 6))
    orig = ex["original"].astype(np.float32)

    def show(ax, img, title=""):
        ax.imshow(np.clip(img, 0, 255).astype(np.uint8))
        ax.set_title(title, fontsize=8)
        ax.axis("off")

    def amplified(adv):
        d = adv.astype(np.float32) - orig
        m = np.abs(d).max()
        return 127.5 + 127.5 * d / m if m > 0 else np.full_like(d, 127.5)

    for j, (d_max, adv) in enumerate(zip(ex["d_max"], ex["adversarial"], strict=True)):
        show(axes[0, j], orig, "original" if j == 0 else "")
        show(axes[1, j], amplified(adv), f"perturbation ×amp\nd_max={d_max:g}")
        show(axes[2, j], adv, f"adversarial\nd_max={d_max:g}")
    show(axes[0, -1], orig, "original")
    show(axes[1, -1], amplified(ex["sticker"]), f"sticker mask\nd_max={ex['sticker_d_max']:g}")
    show(axes[2, -1], ex["sticker"], f"sticker adversarial\n{'fooled' if ex['sticker_success'] else 'not fooled'}")
    fig.suptitle("Error-generic attack on SVM-RBF: increasing d_max (left) and a sticker mask (right)")
    return _save(fig, out, "examples")


def write_report(res: EvalResult, out_dir: str | os.PathLike) -> dict[str, str]:
    """Everything into one folder; returns {kind: file name}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    figs = plot_security(res, out) + plot_robust_error(res, out) + plot_examples(res, out)
    files["figures"] = ", ".join(figs)
    (out / "results.json").write_text(json.dumps(res.to_json(), indent=2))
    (out / "config.json").write_text(json.dumps({"config": res.config, "timing": res.timing}, indent=2))
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["mode", "classifier", "d_max", "accuracy", "rejected", "mean_l2", "target_success",
                    "robust_error"])
        for c in res.curves:
            for i, d in enumerate(res.d_max):
                ts = None if c.target_success is None else c.target_success[i]
                re = None if c.robust_error is None else c.robust_error[i]
                w.writerow([c.key.mode, c.key.label, d, c.accuracy[i], c.rejected[i], c.mean_l2[i],
                            "" if ts is None else ts, "" if re is None else re])
    (out / "report.md").write_text(markdown(res))
    files.update(json="results.json", csv="results.csv", config="config.json", report="report.md")
    return files


def sanity_lines(res: EvalResult) -> list[str]:
    return [f"[{'PASS' if c['passed'] else 'FAIL'}] {c['check']}: {c['detail']}" for c in res.sanity]


def _ensemble_text(res: EvalResult) -> str:
    """Which member of the ensemble broke how many crop × d_max pairs, over every curve."""
    runs = res.attack.get("ensemble", {})
    if not runs or not res.attack.get("ensemble_steps"):
        return ""
    total = {m: sum(sum(w.get(m, [])) for w in runs.values()) for m in ("curve", "carried", "apgd-ce", "apgd-t")}
    return (f"; the per-crop worst case over an ensemble: where it left a crop unbroken, a crop broken at a smaller "
            f"d_max, then APGD-CE and APGD-T ({res.attack['ensemble_steps']} steps, "
            f"{res.attack['ensemble_targets']} targets) at that d_max — crop × d_max pairs broken: "
            f"{total['curve']} by the curve's attack, {total['carried']} carried, {total['apgd-ce']} by APGD-CE, "
            f"{total['apgd-t']} by APGD-T")


def _curve_attack_text(res: EvalResult) -> str:
    return _curve_attack_base(res) + _ensemble_text(res)


def _curve_attack_base(res: EvalResult) -> str:
    c, runs = res.config, res.attack.get("runs", {})
    prec = f" ({res.attack['precision']} gradients)" if res.attack.get("precision", "float32") != "float32" else ""
    if res.attack.get("curves", "algorithm1") == "algorithm1":
        return f"Algorithm 1 in {c['norm']}, {c['steps']} steps per d_max, warm-started{prec}"
    runs_, wins = (sum(r[k] for r in runs.values()) for k in ("fallback_runs", "fallback_wins"))
    return (f"one fast minimum-norm attack (l2, {c['fmn_steps']} steps{prec}) per attacker for every d_max; "
            f"Algorithm 1 ({res.attack['fallback_steps']} steps at one d_max, from its point) as the fallback where it "
            f"stopped short: {runs_} crop × d_max pairs, {wins} of them broken by it; for the crops other classifiers "
            f"judge (SVM-RBF's), {res.attack.get('polish_steps', 0)} Algorithm 1 steps per d_max from each published "
            f"success the strictest judge (SVM-adv +5%) does not count as fooled yet, "
            f"{sum(r.get('polish_wins', 0) for r in runs.values())} of them deeper")


def markdown(res: EvalResult) -> str:
    c = res.config
    lines = [f"# Security evaluation: {c['dataset']}", "",
             f"Backbone `{c['backbone']}` ({c['weights']} weights, {c['input_size']} px); {c['n_test']} attacked "
             f"crops per class; {_curve_attack_text(res)}; total time {res.timing['total_s']:.0f} s.", "",
             "![accuracy vs d_max](security_accuracy.png)", "", "## Accuracy against d_max", "",
             f"Accuracy rule: {ACCURACY_RULE}.", ""]
    for mode in ("generic", "specific"):
        lines += [f"### error-{mode}", "", "| classifier | " + " | ".join(f"{d:g}" for d in res.d_max) + " |",
                  "|---|" + "---|" * len(res.d_max)]
        for c in res.curves_of(mode):
            lines.append(f"| {c.key.label} | " + " | ".join(f"{a:.2f}" for a in c.accuracy) + " |")
        lines.append("")
    targeted = [c for c in res.curves if c.target_success is not None]
    if targeted:
        lines += ["Error-specific: fraction of samples classified as their target", "",
                  "| classifier | " + " | ".join(f"{d:g}" for d in res.d_max) + " |", "|---|" + "---|" * len(res.d_max)]
        lines += [f"| {c.key.label} | " + " | ".join(f"{a:.2f}" for a in c.target_success) + " |" for c in targeted]
        lines.append("")
    robust = [c for c in res.curves_of("generic") if c.robust_error is not None]
    if robust:
        lines += ["### Robust error at the operating threshold (error-generic)", "", f"The {ROBUST_ERROR}.", "",
                  "![robust error vs d_max](robust_error.png)", "",
                  "| classifier | " + " | ".join(f"{d:g}" for d in res.d_max) + " |", "|---|" + "---|" * len(res.d_max)]
        lines += [f"| {c.key.label} | " + " | ".join(f"{v:.2f}" for v in c.robust_error) + " |" for c in robust]
        lines.append("")
    if res.pass_mean:
        lines += ["PASS (aligned SSIM) of the error-generic SVM-RBF adversarial crops: " +
                  ", ".join(f"d_max {d:g}: {p:.3f}" for d, p in zip(res.d_max, res.pass_mean["svm-rbf"], strict=True)),
                  ""]
    a = res.analysis
    lines += ["## Why deep features are fooled (Sect. 5)", "",
              f"At input l2 distance {a['input_l2']:g}: feature shift of random noise "
              f"{a['feature_shift_noise_mean']:.4f} ± {a['feature_shift_noise_std']:.4f}, of the attack "
              f"{a['feature_shift_attack_mean']:.4f} ± {a['feature_shift_attack_std']:.4f} "
              f"(ratio {a['ratio_attack_over_noise']:.1f}; the paper saw 0.022 ± 0.002 vs 2.386 ± 0.386).", "",
              "![examples](examples.png)", "", "## Sanity checks", ""]
    lines += [f"- {line}" for line in sanity_lines(res)]
    lines += ["", "## Clean test accuracy (same rule)", ""] + [f"- {k}: {v:.3f}" for k, v in res.test_accuracy.items()]
    lines += ["", "## Rejected (error-generic), per d_max", ""] + [
        f"- {c.key.label}: " + " ".join(f"{v:.2f}" for v in c.rejected) for c in res.curves_of("generic")]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ teaching
def plot_teaching(res: TeachingEvalResult, out: Path) -> list[str]:
    """Held-out accuracy after each round, per scenario: screening off (dashed) and on (solid)."""
    rows = res.summary()
    names = list(dict.fromkeys(r["scenario"] for r in rows))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(names):
        for r in rows:
            if r["scenario"] == name:
                x = np.arange(1, len(r["curve"]) + 1)
                ax.plot(x, r["curve"], color=colors[i % len(colors)], marker="o" if r["screening"] == "on" else ".",
                        linestyle="-" if r["screening"] == "on" else ":",
                        label=f"{name} ({'screening' if r['screening'] == 'on' else 'no screening'})")
    ax.set_xticks(np.arange(1, len(rows[0]["curve"]) + 1))
    ax.set_xlabel("teaching round (every object shown once per round)")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    ax.set_title(f"Teaching with a lying teacher (mean of {len(res.config['seeds'])} seeds)")
    return _save(fig, out, "teaching_accuracy")


def teaching_markdown(res: TeachingEvalResult) -> str:
    rows = res.summary()
    by = {(r["scenario"], r["screening"]): r for r in rows}
    lines = ["| scenario | accuracy, no screening | accuracy, screening | questions (off → on) | "
             "lies learned (off → on) | right labels lost to screening |", "|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["scenario"] for r in rows):
        off, on = by[(name, "off")], by[(name, "on")]

        def lies(r):
            return sum(v for k, v in r["labels"].items() if k.startswith("lie_learned") and not k.endswith("right"))

        lost = sum(v for k, v in on["labels"].items() if k.startswith("right_") and k != "right_learned")
        lines.append(f"| {name} | {off['final_accuracy']:.3f} ± {off['final_accuracy_std']:.3f} | "
                     f"{on['final_accuracy']:.3f} ± {on['final_accuracy_std']:.3f} | {off['queries']:.1f} → "
                     f"{on['queries']:.1f} | {lies(off):.1f} → {lies(on):.1f} | {lost:.1f} |")
    lines += ["", "Per seed (final accuracy / questions; the gap to the honest teacher's run on the same stream "
              "with the same screening in brackets):", "",
              "| scenario | screening | " + " | ".join(f"seed {s}" for s in res.config["seeds"]) + " |",
              "|---|---|" + "---|" * len(res.config["seeds"])]
    for name, by_screening in res.runs.items():
        for screening, runs in by_screening.items():
            honest = res.runs.get("honest", {}).get(screening)
            cells = []
            for k, r in enumerate(runs):
                gap = f" ({honest[k].final_accuracy - r.final_accuracy:+.3f})" if honest and name != "honest" else ""
                cells.append(f"{r.final_accuracy:.3f}{gap} / {r.queries}")
            lines.append(f"| {name} | {screening} | " + " | ".join(cells) + " |")
    undo = [r for r in rows if r["after_forget"] is not None]
    if undo:
        lines += ["", "| scenario | screening | after forget_teacher(liar) half-way | liar never heard | "
                  "max score gap to a refit |", "|---|---|---|---|---|"]
        for r in undo:
            gap = "-" if r["refit_gap"] is None else f"{r['refit_gap']:.1e}"
            lines.append(f"| {r['scenario']} | {r['screening']} | {r['after_forget']:.3f} | {r['never_heard']:.3f} "
                         f"| {gap} |")
    return "\n".join(lines) + "\n"


def write_teaching_report(res: TeachingEvalResult, out: str | os.PathLike) -> dict[str, str]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"figure": ", ".join(plot_teaching(res, out))}
    (out / "teaching.json").write_text(json.dumps({"config": res.config, "summary": res.summary(),
                                                   "timing": res.timing}, indent=2))
    (out / "teaching.md").write_text(teaching_markdown(res))
    files.update(json="teaching.json", markdown="teaching.md")
    return files


def plot_defences(res: DefenceEvalResult, out: Path) -> list[str]:
    """Every defence's accuracy vs d_max (non-adaptive dashed, adaptive solid), and certified accuracy."""
    smooth = [r for r in res.defences if r.certified is not None]
    robust = [r for r in res.defences if r.robust_error]
    panels = 1 + bool(robust) + bool(smooth)
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.8), squeeze=False)
    ax = axes[0, 0]
    ax.plot(res.d_max, res.undefended["accuracy"], color="k", marker="o", linewidth=2, label="undefended")
    colors = plt.cm.tab20(np.linspace(0, 1, max(len(res.defences), 2)))
    for r, c in zip(res.defences, colors, strict=False):
        ax.plot(res.d_max, r.accuracy["non_adaptive"], color=c, linestyle="--", marker=".")
        ax.plot(res.d_max, r.accuracy["adaptive"], color=c, linestyle="-", marker=".", label=r.name)
    ax.set_xlabel("d_max (l2, pixel values 0..255)")
    ax.set_ylabel("accuracy (a rejection is not an error)")
    ax.set_title("dashed: attacker unaware of the defence; solid: adaptive (EOT / BPDA / joint)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    colors_of = dict(zip((r.name for r in res.defences), colors, strict=False))
    if robust:
        ax = axes[0, 1]
        if "robust_error" in res.undefended:
            ax.plot(res.d_max, res.undefended["robust_error"], color="k", marker="o", linewidth=2, label="undefended")
        for r in robust:
            ax.plot(res.d_max, r.robust_error["adaptive"], color=colors_of[r.name], marker=".", label=r.name)
        ax.set_xlabel("d_max (l2, pixel values 0..255)")
        ax.set_ylabel("robust error (Stutz et al. 2020), lower is better")
        ax.set_title("adaptive attacker: confidence-thresholded robust error")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    if smooth:
        ax = axes[0, panels - 1]
        for r in smooth:
            ax.plot(res.config["radii"], r.certified, marker="o", label=r.name)
        ax.set_xlabel("certified l2 radius (pixel values 0..255)")
        ax.set_ylabel("certified accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, out, "defences")


def defences_markdown(res: DefenceEvalResult) -> str:
    c = res.config
    d = " | ".join(f"{v:g}" for v in res.d_max)
    lines = [f"# Defences on {c['dataset']} ({c['backbone']}, {c['weights']} weights, {c['input_size']} px)", "",
             f"{c['n_test']} test crops per class; Algorithm 1 (reject-aware, {c['steps']} steps, l2, "
             f"{c.get('precision', 'float32')} gradients); adaptive: "
             f"EOT {c['eot']} draws per step for randomised defences, BPDA for JPEG, and against detectors "
             f"orthogonal PGD ({c['steps']} steps; accepted with a wrong label and undetected)"
             + (f"; then, per crop and d_max where that left the crop correct, the ensemble's APGD-CE and APGD-T "
                f"({c['ensemble_steps']} steps, {c['ensemble_targets']} targets, on the same EOT / BPDA model): the "
                "adaptive column is the per-crop worst case" if c.get("ensemble_steps") else "")
             + f". Accuracy rule: {res.rule}.", "",
             f"## Accuracy vs d_max ({d}): non-adaptive, adaptive (best of two starts), adaptive from clean", "",
             "| defence | clean acc. | clean rejected | non-adaptive | adaptive | adaptive, clean start |",
             "|---|---|---|---|---|---|",
             f"| none | {res.undefended['accuracy'][0]:.2f} | {res.undefended['rejected'][0]:.2f} | "
             + " ".join(f"{a:.2f}" for a in res.undefended["accuracy"]) + " | | |"]
    for r in res.defences:
        lines.append(f"| {r.name} | {r.clean_accuracy:.2f} | {r.clean_rejected:.2f} | "
                     + " | ".join(" ".join(f"{a:.2f}" for a in r.accuracy[k])
                                  for k in ("non_adaptive", "adaptive", "adaptive_cold_start")) + " |")
    robust = [r for r in res.defences if r.robust_error]
    if robust:
        lines += ["", f"## Robust error at the operating threshold, d_max {d}: non-adaptive, adaptive", "",
                  f"The {ROBUST_ERROR}.", "", "| defence | non-adaptive | adaptive |", "|---|---|---|"]
        if "robust_error" in res.undefended:
            lines.append("| none | " + " ".join(f"{v:.2f}" for v in res.undefended["robust_error"]) + " | |")
        lines += [f"| {r.name} | " + " | ".join(" ".join(f"{v:.2f}" for v in r.robust_error[k])
                                                  for k in ("non_adaptive", "adaptive")) + " |" for r in robust]
    won = [r for r in res.defences if r.ensemble_wins.get("apgd-ce") is not None]
    if won:
        lines += ["", f"## Which attack fooled the defence, per d_max ({d})", "",
                  "Crops fooled by the adaptive attack (both starts, the unaware crop, a smaller d_max's), then of "
                  "those it left correct, by APGD-CE and by APGD-T.", "",
                  "| defence | adaptive attack | APGD-CE | APGD-T |", "|---|---|---|---|"]
        lines += [f"| {r.name} | " + " | ".join(" ".join(str(v) for v in r.ensemble_wins[k])
                                                  for k in ("adaptive", "apgd-ce", "apgd-t")) + " |" for r in won]
    lines += ["", f"## Günther et al.'s table, at d_max {c['table_d_max']:g} (non-adaptive attacks that fooled the "
              "undefended guard)", "", "| defence | clean accuracy | corrected (right label) | caught (rejected) | "
              "detector ROC AUC |", "|---|---|---|---|---|"]
    for r in res.defences:
        auc = "" if r.roc_auc is None else f"{r.roc_auc:.3f}"
        lines.append(f"| {r.name} | {r.clean_accuracy:.2f} | {r.corrected:.2f} | {r.caught:.2f} | {auc} |")
    for r in res.defences:
        if r.certified is not None:
            lines += ["", f"## Certified accuracy ({r.name})", "",
                      "| radius | " + " | ".join(f"{v:g}" for v in c["radii"]) + " |",
                      "|---" * (len(c["radii"]) + 1) + "|",
                      "| certified accuracy | " + " | ".join(f"{v:.2f}" for v in r.certified) + " |"]
    notes = [f"* {r.name}: {n}" for r in res.defences for n in r.notes]
    if notes:
        lines += ["", "## Notes", "", *notes]
    lines += ["", "## Sanity checks", "", *[f"* [{'PASS' if s['passed'] else 'FAIL'}] {s['check']}: {s['detail']}"
                                            for s in res.sanity],
              "", f"Run time {res.timing['total_s']:.0f} s."]
    return "\n".join(lines) + "\n"


def write_defence_report(res: DefenceEvalResult, out: str | os.PathLike) -> dict[str, str]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"figure": ", ".join(plot_defences(res, out))}
    (out / "defences.json").write_text(json.dumps(res.to_json(), indent=2))
    (out / "defences.md").write_text(defences_markdown(res))
    files.update(json="defences.json", markdown="defences.md")
    return files
