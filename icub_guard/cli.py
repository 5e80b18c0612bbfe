"""`icub-guard`: the command line.

  icub-guard demo       the ROS 2 demo: a robot learns objects from a teacher, then is attacked
  icub-guard teach      be the teacher: answer the guard's questions at this terminal
  icub-guard train      fit a classifier on a dataset and save the model file
  icub-guard evaluate   the paper's security evaluation: accuracy vs d_max, plots, report
  icub-guard evaluate-teaching   teaching under lying teachers, with and without label screening
  icub-guard defences   the guard's defences and their parameters (what --defences takes)
  icub-guard record     write a simulated camera session (frames, regions, ground truth) to an MCAP recording
  icub-guard replay     publish a recording into a running ROS graph (its own pace, or as fast as the guard)
  icub-guard sweep      run / status / report a declarative sweep of evaluations on Ray
  icub-guard evaluate-openset   taught vs untaught, look-alike and far-OOD crops: AUROC per score, attacked
  icub-guard pretrain   train the project's own backbone (SimNet) on renders of procedural shapes
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .core import Recognizer, RecognizerConfig
from .core.errors import GuardError
from .core.features import BACKBONES, SHIPPED_WEIGHTS, FeatureExtractor, build_extractor, default_input_size
from .core.svm import CLASSIFIERS
from .pretrain.shapes import POSES
from .sim.datasets import DATASET_HELP, load_dataset
from .topology import argument_choices

log = logging.getLogger("icub_guard")


def add_backbone_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone", default="alexnet", choices=sorted(BACKBONES))
    p.add_argument("--weights", default="auto",
                   help="imagenet | simworld2, simworld (SimNet's shipped weights, backbone simnet) | random | "
                        "PATH to a checkpoint | auto (imagenet if available, else random; simnet: simworld2)")
    p.add_argument("--input-size", type=int, default=None,
                   help="network input size in pixels (default: the backbone's own: 224, simnet 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")


def make_extractor(args) -> FeatureExtractor:
    """Build the backbone; `--weights auto` falls back to random weights, loudly."""
    fx, _ = build_extractor(args.backbone, args.weights, args.seed, args.input_size, args.device)
    args.weights = fx.spec.weights
    return fx


def config_from(args, **overrides) -> RecognizerConfig:
    return RecognizerConfig(backbone=args.backbone, weights=args.weights, seed=args.seed, input_size=args.input_size,
                            device=args.device, **overrides)


def add_dataset_args(p: argparse.ArgumentParser, default: str = "simworld7", help: str = DATASET_HELP) -> None:
    """--dataset, and the topics of a `bag:` recording (folded into its spec: the spec is what travels)."""
    p.add_argument("--dataset", default=default, help=help)
    g = p.add_argument_group("recordings (--dataset bag:FILE)")
    g.add_argument("--image-topic", help="the camera's sensor_msgs/Image topic (default: /camera/image)")
    g.add_argument("--region-topic", help="its sensor_msgs/RegionOfInterest topic (default: /roi)")
    g.add_argument("--label-topic", help="the ground truth: std_msgs/String, JSON {label} or a bare label "
                   "(default: /ground_truth)")
    g.add_argument("--labels", metavar="DIR", help="labels from a folder naming frames instead: DIR/<class>/<frame "
                   "number>.png")


def dataset_spec(args) -> str:
    """The dataset spec with the recording options folded in; a bad spec or a misplaced option exits 2."""
    from .recordings.dataset import is_recording, with_options
    from .sim.datasets import check_dataset

    opts = (args.image_topic, args.region_topic, args.label_topic, args.labels)
    if not is_recording(args.dataset) and any(opts):
        raise GuardError("--image-topic, --region-topic, --label-topic and --labels apply to --dataset bag:FILE")
    return check_dataset(with_options(args.dataset, *opts))  # refused here, before a backbone is loaded


def cmd_demo(args) -> int:
    if not args.in_process:
        from .demo import print_summary, run_demo

        arguments = {"weights": args.weights, "input_size": args.input_size, "attack": args.attack, "eps": args.eps,
                     "steps": args.attack_steps, "rate": args.rate, "teacher": args.teacher,
                     "web_port": args.web_port}
        summary = run_demo(arguments, args.duration, args.attack_fraction, args.quiet, args.workdir)
        print_summary(summary)
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2))
        return 0
    return cmd_demo_in_process(args)


def cmd_teach(args) -> int:
    from .ros.common import run_node
    from .ros.teacher_node import TeacherNode

    ros_args = ["--ros-args", "-p", "mode:=interactive", "-p", f"guard:={args.guard}",
                *(a for r in args.remap for a in ("-r", r))]
    return run_node(TeacherNode, ros_args)


def cmd_demo_in_process(args) -> int:
    from .core.guard import Guard, GuardConfig
    from .defaults import node_defaults
    from .defences.online import parse_specs
    from .sim.datasets import simworld
    from .sim.teachers import make_teacher
    from .sim.teaching import teach_from_stream

    print("icub_guard demo: a robot that starts knowing nothing learns SimWorld objects from a teacher.")
    guard = node_defaults("guard.yaml")
    args.weights = args.weights or guard["weights"]
    args.input_size = args.input_size or guard["input_size"]
    if args.teacher in ("interactive", "web"):
        raise GuardError(f"the in-process demo has no {args.teacher} teacher: use the ROS demo "
                         "(`icub-guard demo --teacher web`) or `icub-guard teach`")
    teacher_cfg = node_defaults("teacher.yaml")
    teacher = make_teacher(args.teacher or teacher_cfg["mode"], teacher_cfg["correct_mistakes"],
                           teacher_cfg["flip_fraction"], args.seed)
    try:  # refused before anything is loaded
        specs = parse_specs(guard["defences"] if args.defences is None else args.defences)
    except ValueError as exc:
        raise GuardError(f"--defences: {exc}") from exc
    extractor = make_extractor(args)
    rec_cfg = config_from(args, classifier="svm-adv")
    g = Guard.build(GuardConfig(rec_cfg, defences=specs), extractor=extractor)
    rec = g.rec
    n_obj = 7 if args.dataset == "simworld7" else 28
    bar = tqdm(total=args.rounds * n_obj * args.frames_per_object, desc="teaching", unit="frame",
               disable=args.quiet)

    def on_frame(s):
        bar.update(1)
        bar.set_postfix(acc=f"{s.tally.accuracy:.2f}", rej=s.tally.counts["rejected"], asked=s.queries,
                        corrected=s.corrections, classes=s.classes)

    t0 = time.perf_counter()
    result = teach_from_stream(g, args.dataset.removeprefix("simworld"), args.rounds, args.frames_per_object,
                               args.seed, on_frame, teacher=teacher, rate=args.rate)
    bar.close()
    print(f"\n{'round':>5} {'frames':>6} {'accuracy':>8} {'rejected':>8} {'asked':>5} {'corrected':>9} "
          f"{'classes':>7} {'ms/frame':>8}")
    for i, r in enumerate(result["rounds"], 1):
        print(f"{i:>5} {r['frames']:>6} {r['accuracy']:>8.2f} {r['reject_rate']:>8.2f} {r['queries']:>5} "
              f"{r['corrections']:>9} {r['classes']:>7} {r['latency_ms_p50']:>8.1f}")
    # A held-out check of what was learned, and of the reject option on noise images
    test = simworld(args.dataset.removeprefix("simworld"), "test", args.test_per_class, seed=args.seed)
    decisions = g.decide(test.images)  # through the guard's defences, as the robot decides
    labels = np.array([d.label for d in decisions], dtype=object)
    accepted = np.array([d.accepted for d in decisions])
    rng = np.random.default_rng(args.seed)
    noise = np.clip(128 + 40 * rng.normal(size=(50, 64, 64, 3)), 0, 255).astype(np.uint8)
    noise_rej = np.mean([not d.accepted for d in g.decide(noise)])
    summary = {
        "backbone": extractor.spec.id, "device": str(extractor.device), "defences": list(g.defences.specs),
        "teaching": result,
        "held_out": {"samples": len(test), "accuracy": float(np.mean(labels == test.labels)),
                     "reject_rate": float(np.mean(~accepted)),
                     "accuracy_when_accepted": float(np.mean(labels[accepted] == test.labels[accepted]))
                     if accepted.any() else None},
        "noise_images_rejected": float(noise_rej), "seconds": time.perf_counter() - t0,
    }
    h = summary["held_out"]
    print(f"\nheld-out {args.dataset} test ({h['samples']} crops): accuracy {h['accuracy']:.3f}, "
          f"rejected {h['reject_rate']:.3f}, accuracy when accepted {h['accuracy_when_accepted']:.3f}")
    print(f"Gaussian-noise images rejected as unknown: {noise_rej:.2f}")
    t = result["total"]
    print(f"taught {len(rec.classes)} classes from {t['queries']} answers to questions and {t['corrections']} "
          f"corrections in {summary['seconds']:.1f} s")
    if args.save:
        rec.save(args.save)
        print(f"model saved to {args.save}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


def cmd_train(args) -> int:
    args.dataset = dataset_spec(args)
    extractor = make_extractor(args)
    rec = Recognizer(config_from(args, classifier=args.classifier), extractor=extractor)
    train = load_dataset(args.dataset, "train", args.n_per_class, seed=args.seed)
    log.info("extracting features of %d crops", len(train))
    feats = np.concatenate([rec.features(train.images[i : i + 64])
                            for i in tqdm(range(0, len(train), 64), desc="features", disable=args.quiet)])
    hp = rec.fit(feats, train.labels, "auto" if args.cv else "config")
    msg = f"trained {args.classifier} on {len(train)} crops of {len(train.classes)} classes {hp or ''}"
    if args.calibrate > 0:
        val = load_dataset(args.dataset, "val", max(10, args.n_per_class // 2), seed=args.seed)
        rec.calibrate(val.images, val.labels, args.calibrate)
        msg += f"; thresholds calibrated for +{args.calibrate:.0%} false rejects"
    rec.save(args.out)
    print(f"{msg}\nmodel saved to {args.out}")
    return 0


def with_progress(args, total: int, desc: str, unit: str, run):
    """`run(progress)` under a progress bar that `progress(message)` advances one step at a time."""
    bar = tqdm(total=total, desc=desc, unit=unit, disable=args.quiet)

    def progress(msg: str) -> None:
        bar.set_postfix_str(msg)
        bar.update(1)

    try:
        return run(progress)
    finally:
        bar.update(max(0, bar.total - bar.n))
        bar.close()


def _checks_given(args) -> dict:
    """The ensemble's and the checks' options given on the command line (the rest: the evaluation's defaults,
    which differ between `evaluate` and `evaluate --defences`)."""
    return {k: getattr(args, k) for k in ("ensemble_steps", "ensemble_targets", "binarization", "square_queries")
            if getattr(args, k) is not None}


def cmd_evaluate(args) -> int:
    from .evaluation import EvalConfig, run_security_evaluation, sanity_lines, write_report

    args.dataset = dataset_spec(args)
    weights = args.weights
    if weights == "auto":
        weights = make_extractor(args).spec.weights  # imagenet when available, else random (warned)
    if args.defences is not None:
        return cmd_evaluate_defences(args, weights)
    try:
        cfg = EvalConfig(dataset=args.dataset, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
                         d_max=tuple(args.d_max or ()), norm=args.norm, steps=args.steps, backbone=args.backbone,
                         weights=weights, input_size=args.input_size, seed=args.seed, device=args.device,
                         target_false_reject=args.false_reject, adaptive=not args.no_adaptive, attack=args.attack,
                         fmn_steps=args.fmn_steps, precision=args.precision, **_checks_given(args))
    except ValueError as exc:
        raise GuardError(f"evaluate: {exc}") from exc
    result = with_progress(args, 6 + (2 if cfg.adaptive else 0) + 2, "evaluate", "stage",
                           lambda progress: run_security_evaluation(cfg, progress))
    files = write_report(result, args.out)
    print("\naccuracy vs d_max (" + ", ".join(f"{d:g}" for d in result.d_max) + ")")
    for mode, per in result.accuracy.items():
        for name, accs in per.items():
            print(f"  {mode:8s} {name:24s} " + " ".join(f"{a:.2f}" for a in accs))
    a = result.analysis
    print(f"feature shift at input l2 {a['input_l2']:g}: noise {a['feature_shift_noise_mean']:.4f} ± "
          f"{a['feature_shift_noise_std']:.4f}, attack {a['feature_shift_attack_mean']:.4f} ± "
          f"{a['feature_shift_attack_std']:.4f} (ratio {a['ratio_attack_over_noise']:.1f})")
    print("sanity checks:\n  " + "\n  ".join(sanity_lines(result)))
    print(f"wrote {args.out}/: {', '.join(files.values())} in {result.timing['total_s']:.0f} s")
    return 0 if all(c["passed"] for c in result.sanity) or not args.strict else 1


def cmd_evaluate_defences(args, weights: str) -> int:
    """`evaluate --defences`: every defence against a non-adaptive and an adaptive attacker."""
    from .evaluation import DefenceEvalConfig, run_defence_evaluation, write_defence_report
    from .evaluation.defences import ALL

    specs = ALL if args.defences == "all" else tuple(s for s in args.defences.split(",") if s.strip())
    try:  # an unknown defence or a bad parameter is said before any data is loaded
        cfg = DefenceEvalConfig(defences=specs, dataset=args.dataset, n_train=args.n_train, n_val=args.n_val,
                                n_test=args.n_test, d_max=tuple(args.d_max or ()), norm=args.norm, steps=args.steps,
                                eot=args.eot, table_d_max=args.table_d_max or 0.0, backbone=args.backbone,
                                weights=weights,
                                input_size=args.input_size, seed=args.seed, device=args.device,
                                false_reject=args.false_reject, precision=args.precision, **_checks_given(args))
    except ValueError as exc:
        raise GuardError(f"evaluate --defences: {exc}") from exc
    result = with_progress(args, 2 + len(specs), "evaluate --defences", "stage",
                           lambda progress: run_defence_evaluation(cfg, progress))
    files = write_defence_report(result, args.out)
    print(f"\naccuracy vs d_max ({', '.join(f'{d:g}' for d in result.d_max)}): non-adaptive | adaptive")
    print(f"  {'none':28s} " + " ".join(f"{a:.2f}" for a in result.undefended["accuracy"]))
    for r in result.defences:
        print(f"  {r.name:28s} " + " ".join(f"{a:.2f}" for a in r.accuracy["non_adaptive"]) + " | "
              + " ".join(f"{a:.2f}" for a in r.accuracy["adaptive"]))
    print("sanity checks:\n  " + "\n  ".join(f"[{'PASS' if c['passed'] else 'FAIL'}] {c['check']}: {c['detail']}"
                                             for c in result.sanity))
    print(f"wrote {args.out}/: {', '.join(files.values())} in {result.timing['total_s']:.0f} s")
    return 0 if all(c["passed"] for c in result.sanity) or not args.strict else 1


def cmd_evaluate_teaching(args) -> int:
    from .evaluation import TeachingEvalConfig, run_teaching_evaluation, write_teaching_report
    from .evaluation.report import teaching_markdown
    from .evaluation.teaching import scenarios

    spec = dataset_spec(args)
    if spec not in ("simworld7", "simworld28") and not spec.startswith("bag:"):
        raise GuardError(f"evaluate-teaching: --dataset must be simworld7, simworld28 or bag:FILE, not {spec!r}")
    weights = args.weights
    if weights == "auto":
        weights = make_extractor(args).spec.weights
    recording = spec if spec.startswith("bag:") else ""
    cfg = TeachingEvalConfig(variant="7" if recording else spec.removeprefix("simworld"), recording=recording,
                             rounds=args.rounds,
                             frames_per_object=args.frames_per_object, test_per_class=args.test_per_class,
                             seeds=tuple(args.seeds), flips=tuple(args.flips), backbone=args.backbone,
                             weights=weights, input_size=args.input_size, device=args.device)
    n_runs = len(cfg.seeds) * 2 * len(scenarios(cfg.flips))
    result = with_progress(args, n_runs, "evaluate-teaching", "run",
                           lambda progress: run_teaching_evaluation(cfg, progress))
    files = write_teaching_report(result, args.out)
    print()
    print(teaching_markdown(result))
    print(f"wrote {args.out}/: {', '.join(files.values())} in {result.timing['total_s']:.0f} s")
    return 0


def _sweep_of(args):
    """The sweep file and its checked grid (a bad file is refused here, before anything runs)."""
    from .sweep import expand, load_spec

    spec = load_spec(args.file)
    return spec, expand(spec)


def cmd_sweep_run(args) -> int:
    from .sweep.runner import run_sweep

    spec, cells = _sweep_of(args)
    if args.workers is not None and args.workers < 1:
        raise GuardError("sweep run: --workers must be >= 1")
    print(f"sweep {spec.path}: {len(cells)} cells of {spec.evaluation} -> {spec.results}")
    try:
        s = run_sweep(spec, cells, args.address, args.workers, quiet=args.quiet)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (`runner.Stopped`)
        print("interrupted: finished cells are in the table; run the same command again to resume", file=sys.stderr)
        return 128 + getattr(exc, "signum", signal.SIGINT)
    print(f"{s['done']} done, {s['failed']} failed, {s['skipped_done']} already done; "
          f"{s['prepare_tasks']} shared preparation(s); {s['wall_s']:.1f} s")
    return 0 if s["failed"] == 0 else 1


def cmd_sweep_status(args) -> int:
    from .sweep import ResultsTable
    from .sweep.report import status_lines

    spec, cells = _sweep_of(args)
    if not spec.results.exists():
        print(f"{len(cells)} cells: 0 done, 0 running, 0 failed, {len(cells)} left (no results table yet)")
        return 0
    table = ResultsTable(spec.results)
    try:
        hashes = [c.hash for c in cells]
        if args.watch:  # a progress bar until nothing is running
            bar = tqdm(total=len(cells), desc="done", unit="cell")
            while True:
                counts = table.counts(hashes)
                bar.n = counts["done"] + counts["failed"]
                bar.set_postfix(running=counts["running"], failed=counts["failed"], left=counts["pending"])
                bar.refresh()
                if counts["running"] == 0:
                    break
                time.sleep(args.watch)
            bar.close()
        print("\n".join(status_lines(cells, table)))
    finally:
        table.close()
    return 0


def cmd_sweep_report(args) -> int:
    from .sweep import ResultsTable
    from .sweep.report import write_report

    spec, cells = _sweep_of(args)
    if not spec.results.exists():
        raise GuardError(f"sweep report: no results table {spec.results} yet (run `icub-guard sweep run` first)")
    out = Path(args.out) if args.out else spec.results.with_name(spec.results.stem + "-report")
    table = ResultsTable(spec.results)
    try:
        files = write_report(spec, cells, table, out)
    finally:
        table.close()
    print(f"wrote {out}/: {', '.join(files.values())}")
    return 0


def cmd_evaluate_openset(args) -> int:
    from .evaluation.openset import (
        OpensetConfig,
        backbone_choices,
        merge_into,
        openset_markdown,
        run_openset_evaluation,
        write_openset_report,
    )

    cfg = OpensetConfig(dataset=dataset_spec(args), taught=tuple(args.taught), n_train=args.n_train,
                        n_val=args.n_val, n_test=args.n_test,
                        n_far=args.n_far, n_adv=args.n_adv, d_max=tuple(args.d_max), fmn_steps=args.fmn_steps,
                        recognition_train=args.recognition_train, recognition_test=args.recognition_test,
                        analysis_n=args.analysis_n, seed=args.seed, device=args.device)
    choices = backbone_choices(args.weights, args.backbone, args.input_size)
    steps = 1 + 5 * len(choices)
    result = with_progress(args, steps, "evaluate-openset", "step",
                           lambda progress: run_openset_evaluation(cfg, choices, progress))
    previous = Path(args.out) / "results.json"
    if args.add and previous.is_file():
        result = merge_into(result, json.loads(previous.read_text()))
    files = write_openset_report(result, args.out)
    print()
    print(openset_markdown(result))
    print(f"wrote {args.out}/: {', '.join(files.values())} in {result.timing['total_s']:.0f} s")
    return 0


def cmd_pretrain(args) -> int:
    from .pretrain.train import PretrainConfig, pretrain

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    cfg = PretrainConfig(n_classes=args.classes, per_class=args.per_class, val_per_class=args.val_per_class,
                         crop_size=args.crop_size, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         seed=args.seed, pose=args.pose, noise=args.noise)
    t0 = time.perf_counter()
    result = pretrain(cfg, Path(args.out), Path(args.workdir), progress=not args.quiet, stop_after=args.stop_after)
    last = result.history[-1] if result.history else {}
    print(json.dumps({"out": str(result.out) if result.out else None, "file_sha256": result.file_sha256,
                      "epochs_run": result.epochs_run, "last_epoch": last,
                      "seconds": round(time.perf_counter() - t0, 1)}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="icub-guard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="the ROS 2 demo: camera, guard, teacher and attack nodes as processes")
    add_backbone_args(demo)
    # defaults: config/demo.yaml and the nodes' files (the launch files read the same)
    demo.set_defaults(weights=None, input_size=None)
    demo.add_argument("--duration", type=float, help="seconds (ROS demo; default: config/demo.yaml)")
    demo.add_argument("--attack-fraction", type=float,
                      help="final share of the run under attack; 0: no attack node (default: config/demo.yaml)")
    demo.add_argument("--attack", help="attack the man-in-the-middle node runs (default: config/attack.yaml)")
    demo.add_argument("--eps", type=float,
                      help="attack d_max: norm of the change to the frame's ROI box (pixel values 0..255)")
    demo.add_argument("--attack-steps", type=int, help="gradient steps of iterative attacks")
    demo.add_argument("--rate", type=float, help="camera frames per second (default: config/sim_camera.yaml)")
    demo.add_argument("--teacher", choices=argument_choices()["teacher"],
                      help="who answers the robot; web: the teacher page, its URL printed (default: config/demo.yaml)")
    demo.add_argument("--web-port", type=int, help="the teacher page's port (default: config/teacher_web.yaml)")
    demo.add_argument("--workdir", help="where the model and the node logs go (default: a temp dir)")
    demo.add_argument("--in-process", action="store_true",
                      help="no ROS: the core teaching loop in one process (rounds over SimWorld objects)")
    demo.add_argument("--dataset", default="simworld7", choices=["simworld7", "simworld28"])
    demo.add_argument("--rounds", type=int, default=3)
    demo.add_argument("--frames-per-object", type=int, default=8)
    demo.add_argument("--test-per-class", type=int, default=20)
    demo.add_argument("--defences", help="in-process: the guard's defences, comma-separated (default: "
                      "config/guard.yaml's `defences`; `icub-guard defences` lists them)")
    demo.add_argument("--save", help="save the learned model here")
    demo.add_argument("--json", help="write the summary as JSON here")
    demo.set_defaults(func=cmd_demo)

    teach = sub.add_parser("teach", help="answer the guard's questions at this terminal (interactive teacher)")
    teach.add_argument("--remap", action="append", default=[], help="ROS remapping FROM:=TO, repeatable")
    teach.add_argument("--guard", default="/guard_node", help="the guard node whose teach service gets the labels")
    teach.set_defaults(func=cmd_teach)

    train = sub.add_parser("train", help="fit a classifier on a dataset and save it")
    add_backbone_args(train)
    add_dataset_args(train)
    train.add_argument("--classifier", default="svm-adv", choices=sorted(CLASSIFIERS))
    train.add_argument("--n-per-class", type=int, default=100)
    train.add_argument("--cv", action="store_true", help="choose C and gamma by 3-fold cross-validation")
    train.add_argument("--calibrate", type=float, default=0.05,
                       help="raise each class's false rejects by this fraction on validation data (0: off)")
    train.add_argument("--out", default="model.npz")
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="the paper's security evaluation (accuracy vs d_max)",
                        epilog=defences_text(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_backbone_args(ev)
    add_dataset_args(ev)
    ev.add_argument("--n-train", type=int, default=50, help="training crops per class")
    ev.add_argument("--n-val", type=int, default=20, help="validation crops per class (threshold calibration)")
    ev.add_argument("--n-test", type=int, default=5, help="attacked test crops per class")
    ev.add_argument("--d-max", type=float, nargs="+", help="the budgets, in crop pixels 0..255 (default: l2 and l1 "
                    "0 250 500 1000 2000 4000, --defences 0 500 1000 2000; linf, a bound per pixel, 0 2 4 8 16 32, "
                    "--defences 0 4 8 16)")
    ev.add_argument("--norm", default="l2", choices=["l1", "l2", "linf"])
    ev.add_argument("--attack", default="auto", choices=["auto", "fmn", "algorithm1"],
                    help="what draws the curves: one fast minimum-norm run for every d_max (fmn, l2 only), or "
                         "Algorithm 1 per d_max as in the paper (algorithm1); auto: fmn in l2")
    ev.add_argument("--steps", type=int, default=20, help="Algorithm 1's gradient steps per d_max")
    ev.add_argument("--fmn-steps", type=int, default=20, help="the minimum-norm attack's steps (once, all d_max)")
    ev.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"],
                    help="the attacks' gradient passes (judging is always float32); auto: bfloat16 on a CPU with "
                         "AMX or a CUDA GPU with bf16, else float32")
    ev.add_argument("--false-reject", type=float, default=0.05, help="calibration target of SVM-adv +5%%")
    ev.add_argument("--no-adaptive", action="store_true", help="skip the reject-aware attacker")
    ev.add_argument("--square-queries", type=int, metavar="N",
                    help="the gradient-masking check: a score-based search's queries per crop the curve left "
                         "unbroken (default 200; --defences: 100, against each defence); 0: no check")
    ev.add_argument("--binarization", type=int, metavar="N",
                    help="crops of the binarization test (Zimmermann et al. 2022) among the sanity checks (default 7; "
                         "--defences: 3, against each defence); 0: none")
    ev.add_argument("--ensemble-steps", type=int,
                    help="APGD-CE and APGD-T steps on every crop the curve's attack left unbroken, per d_max "
                         "(the per-crop worst case is reported; default 20; --defences: 10, with EOT / BPDA, on "
                         "what the adaptive attack left); 0: the curve's attack alone")
    ev.add_argument("--ensemble-targets", type=int, metavar="N",
                    help="APGD-T's target classes per crop: the best-scoring wrong ones (reject-aware: those nearest "
                         "acceptance, score minus threshold); default 3")
    ev.add_argument("--strict", action="store_true", help="exit 1 if a sanity check fails")
    ev.add_argument("--defences", nargs="?", const="all", metavar="LIST",
                    help="evaluate the guard's defences instead: a comma-separated list (a+b composes; "
                         "name:key=value sets a parameter), or all (the default when given without a list)")
    ev.add_argument("--eot", type=int, default=8, help="--defences: EOT draws per step against randomised defences")
    ev.add_argument("--table-d-max", type=float, help="--defences: the d_max of the Günther-style table")
    ev.add_argument("--out", default="runs/evaluate")
    ev.set_defaults(func=cmd_evaluate)

    eo = sub.add_parser("evaluate-openset", help="open-set evaluation: taught vs untaught, look-alike and far-OOD "
                        "crops, AUROC / FPR@95 per score, untaught crops under a reject-aware attack")
    eo.add_argument("--weights", nargs="+", help="one column each: random | simworld | simworld2 | imagenet | PATH (a "
                    "checkpoint of --backbone); default: random, simworld, simworld2, and imagenet when cached")
    eo.add_argument("--backbone", default="alexnet", choices=sorted(BACKBONES),
                    help="the architecture of random, imagenet and checkpoint columns (simworld, simworld2: simnet)")
    eo.add_argument("--input-size", type=int, default=None, help="default: each backbone's own (224, simnet 64)")
    add_dataset_args(eo, help="simworld7 (default: its look-alike SimWorld28 instances are a near-OOD set too) | "
                     "simworld28 | an image folder | bag:FILE.mcap: --taught names some of its classes, the rest "
                     "are the untaught ones")
    eo.add_argument("--taught", nargs="+", default=["mug", "duck", "teddy", "lego"],
                    help="the classes taught (in-distribution); the data set's others are the untaught ones")
    eo.add_argument("--n-train", type=int, default=30)
    eo.add_argument("--n-val", type=int, default=20)
    eo.add_argument("--n-test", type=int, default=30)
    eo.add_argument("--n-far", type=int, default=120)
    eo.add_argument("--n-adv", type=int, default=4, help="attacked crops per untaught object (0: no attack column)")
    eo.add_argument("--d-max", type=float, nargs="+", default=[0, 250, 500, 1000, 2000, 4000])
    eo.add_argument("--fmn-steps", type=int, default=20)
    eo.add_argument("--recognition-train", type=int, default=20, help="SimWorld28 examples per class")
    eo.add_argument("--recognition-test", type=int, default=10)
    eo.add_argument("--analysis-n", type=int, default=2, help="Sect. 5: taught test crops per class (0: none)")
    eo.add_argument("--seed", type=int, default=0)
    eo.add_argument("--device", default="auto")
    eo.add_argument("--out", default="runs/evaluate-openset")
    eo.add_argument("--add", action="store_true", help="add these columns to --out's earlier report (same settings)")
    eo.set_defaults(func=cmd_evaluate_openset)

    pt = sub.add_parser("pretrain", help="train SimNet, the project's own backbone, on renders of procedural shapes")
    pt.add_argument("--out", default="simnet.pt", help="where the trunk's state dict goes")
    pt.add_argument("--workdir", default="runs/pretrain", help="the render cache and the per-epoch checkpoint "
                    "(a second run with the same settings resumes there)")
    pt.add_argument("--classes", type=int, default=100, help="procedural shape classes")
    pt.add_argument("--per-class", type=int, default=100, help="training renders per class")
    pt.add_argument("--val-per-class", type=int, default=10, help="held-out renders per class (accuracy per epoch)")
    pt.add_argument("--crop-size", type=int, default=64)
    pt.add_argument("--pose", default=POSES[0], choices=POSES,
                    help="upright: each shape in its own rest orientation, turned about the vertical (as "
                    "SimWorld's objects stand); free: a full 3-D orientation per frame")
    pt.add_argument("--noise", type=float, default=0.0, help="a camera's pixel noise: each training crop gets "
                    "Gaussian noise of σ drawn from U(0, NOISE), on the 0..1 pixel scale (0: none, as simworld2)")
    pt.add_argument("--epochs", type=int, default=40)
    pt.add_argument("--batch-size", type=int, default=128)
    pt.add_argument("--lr", type=float, default=2e-3)
    pt.add_argument("--seed", type=int, default=0)
    pt.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    pt.add_argument("--stop-after", type=int, help="run at most this many epochs now; the next run resumes")
    pt.set_defaults(func=cmd_pretrain)

    sub.add_parser("defences", help="list the guard's defences and their parameters").set_defaults(func=cmd_defences)

    et = sub.add_parser("evaluate-teaching", help="teaching under a lying teacher, with and without label screening")
    add_backbone_args(et)
    et.set_defaults(func=cmd_evaluate_teaching)
    add_dataset_args(et, help="simworld7 | simworld28 | bag:FILE.mcap (teaching from the recording's frames in "
                     "order, its last 20%% per class held out)")
    et.add_argument("--rounds", type=int, default=5, help="times every object is shown (a recording: its frames "
                    "cut into this many parts)")
    et.add_argument("--frames-per-object", type=int, default=8)
    et.add_argument("--test-per-class", type=int, default=20, help="held-out crops per class")
    et.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    et.add_argument("--flips", type=float, nargs="+", default=[0.0, 0.1, 0.3, 0.5],
                    help="flip fractions of the random liar (0: an honest teacher)")
    et.add_argument("--out", default="runs/evaluate-teaching")

    rec = sub.add_parser("record", help="write a simulated camera session to an MCAP recording (ROS 2 messages)")
    rec.add_argument("out", metavar="OUT.mcap")
    rec.add_argument("--variant", default="7", choices=["7", "28"], help="SimWorld7 or SimWorld28")
    rec.add_argument("--rounds", type=int, default=2, help="times every object is shown")
    rec.add_argument("--frames-per-object", type=int, default=5)
    rec.add_argument("--rate", type=float, default=5.0, help="frames per second of the recorded clock")
    rec.add_argument("--image-size", type=int, default=128, help="rendered frame side (px)")
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument("--decisions", metavar="MODEL.npz",
                     help="also record the decisions of a guard running this model file (`icub-guard train`)")
    rec.add_argument("--device", default="cpu", help="--decisions: cpu | cuda | auto")
    rec.set_defaults(func=cmd_record)

    rp = sub.add_parser("replay", help="publish a recording into a running ROS graph (the guard sees it live)")
    rp.add_argument("file", metavar="FILE.mcap")
    # defaults: config/replay.yaml (the node's parameters)
    rp.add_argument("--rate", type=float, help="speed relative to the recording (2.0: twice as fast; default 1.0)")
    rp.add_argument("--as-fast-as-guard", action="store_true", default=None,
                    help="publish each frame once the guard has decided about the one before")
    rp.add_argument("--topics", help="comma-separated topics to publish (default: all but the graph's own "
                    "outputs, /decision and /attack/info)")
    rp.add_argument("--decision-timeout", type=float, help="--as-fast-as-guard: seconds to wait for a decision "
                    "(default 30)")
    rp.add_argument("--remap", action="append", default=[], help="ROS remapping FROM:=TO, repeatable")
    rp.set_defaults(func=cmd_replay)
    sw = sub.add_parser("sweep", help="a grid of evaluations from a sweep file, on Ray (docs/sweeps.md)")
    sws = sw.add_subparsers(dest="sweep_command", required=True)
    run = sws.add_parser("run", help="run every cell not yet done (Ray in this process, or --address)")
    run.add_argument("file", help="the sweep file (YAML)")
    run.add_argument("--address", help="an existing Ray cluster (default: RAY_ADDRESS, else Ray in this process)")
    run.add_argument("--workers", type=int, help="in-process Ray: CPUs to use (default: all)")
    run.set_defaults(func=cmd_sweep_run)
    st = sws.add_parser("status", help="done / running / failed / left")
    st.add_argument("file")
    st.add_argument("--watch", type=float, nargs="?", const=2.0, metavar="S",
                    help="a progress bar, refreshed every S seconds, until nothing is running")
    st.set_defaults(func=cmd_sweep_status)
    rpt = sws.add_parser("report", help="summary table, failed checks and cells, figures")
    rpt.add_argument("file")
    rpt.add_argument("--out", help="folder (default: <results file stem>-report beside the results table)")
    rpt.set_defaults(func=cmd_sweep_report)
    return parser


def cmd_record(args) -> int:
    from .recordings.record import record_simworld

    guard = None
    if args.decisions:
        from .core.guard import Guard

        guard = Guard(Recognizer.load(args.decisions, device=args.device))
    total = args.rounds * (7 if args.variant == "7" else 28) * args.frames_per_object
    bar = tqdm(total=max(total, 0), desc="record", unit="frame", disable=args.quiet)
    try:
        s = record_simworld(args.out, args.variant, args.rounds, args.frames_per_object, args.seed, args.rate,
                            args.image_size, guard, progress=lambda n: bar.update(1))
    except ValueError as exc:
        raise GuardError(f"record: {exc}") from exc
    finally:
        bar.close()
    print(f"recorded {s.frames} frames of {len(s.classes)} classes ({s.messages} messages, {s.bytes / 1e6:.2f} MB) "
          f"to {s.path} in {s.seconds:.1f} s")
    return 0


def cmd_replay(args) -> int:
    from .ros.common import run_node
    from .ros.replay_node import ReplayNode
    from .topology import param_text

    given = {"path": args.file, "rate": args.rate, "as_fast_as_guard": args.as_fast_as_guard,
             "topics": args.topics, "decision_timeout": args.decision_timeout}
    params = {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in given.items()
              if v is not None}
    ros_args = ["--ros-args", *(a for k, v in params.items() for a in ("-p", f"{k}:={param_text(v)}")),
                *(a for r in args.remap for a in ("-r", r))]
    return run_node(ReplayNode, ros_args)


def defences_text() -> str:
    """The defences `--defences` takes, one per line with its parameters and their defaults."""
    from .defences import catalogue

    lines = ["defences (--defences LIST; name:key=value sets a parameter, a+b composes):"]
    for name, doc, params in catalogue():
        lines += [f"  {name:12s} {doc}", f"  {'':12s} parameters: {', '.join(params) or 'none'}"]
    return "\n".join(lines)


def cmd_defences(args) -> int:
    print(defences_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # the demo reads its defaults from config files; evaluate-openset resolves each of its columns
    if args.command not in ("demo", "evaluate-openset") and hasattr(args, "backbone"):
        if args.weights in SHIPPED_WEIGHTS:
            args.backbone = "simnet"
        if args.input_size is None:
            args.input_size = default_input_size(args.backbone)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="[%(levelname)s] %(name)s: %(message)s")
    try:
        return args.func(args)
    except GuardError as exc:
        # on stderr itself, not only through logging: a test runner (launch_testing's pytest
        # plugin) or an application may have reconfigured the loggers
        print(f"icub-guard: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
