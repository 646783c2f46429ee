"""Command line: ``python -m ssl_train {tasks,pretrain,finetune,evaluate,protocol,report,export,bench,release,budget,finetune-lr,rotation-limits,runs,learning-map,replay,render} ...``.

Bad input ends with a one-line ``error: ...`` naming the problem and the fix, exit code 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from .cli_options import (
    CHECKPOINT_HELP,
    D,
    _add_data,
    _add_encoder,
    _add_finetune,
    _add_per_task_flags,
    _add_protocol,
    _add_train,
    _checked_tasks,
    _command_line,
    _data_cfg,
    _DocAndDefaults,
    _enc_cfg,
    _floats,
    _ft_cfg,
    _per_task_tables,
    _strs,
    _train_cfg,
)
from .errors import UserError
from .paths import REPO
from .studies import cli as studies_cli


def _task_options(pairs: list[str]) -> dict[str, str]:
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise UserError(f"--task-opt {p!r} must look like key=value, e.g. --task-opt color_jitter=0")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _next(*commands: str) -> None:
    """End a command by naming the next useful one (stderr: stdout stays the command's JSON)."""
    print("next: " + "\n  or: ".join(commands), file=sys.stderr)


def cmd_tasks(a) -> int:
    from .tasks import load_all, task_names

    load_all()
    print("\n".join(task_names()))
    return 0


def cmd_pretrain(a) -> int:
    from .data import load_split_data
    from .tasks import get_task
    from .train import pretrain

    task = get_task(a.task, _task_options(a.task_opt))
    enc, tcfg, dcfg = _enc_cfg(a), _train_cfg(a), _data_cfg(a)
    task.config.validate(dcfg.image_size)
    from .snapshots import parse_schedule

    snaps = parse_schedule(a.snapshots, tcfg.epochs)
    out = Path(a.out or REPO / "runs" / a.task)
    from .paths import check_output
    from .train import CHECKPOINT_NAME, check_resume

    check_output(out, "--out", folder=True)
    if a.resume:
        check_resume(out, task, enc, tcfg, dcfg, a.holdout)
    elif (out / CHECKPOINT_NAME).exists():
        raise UserError(f"{out / CHECKPOINT_NAME} already exists; pass --resume to continue that run, or --out NEW_DIR to start another")
    data = load_split_data(dcfg)
    from .distributed import shutdown

    summary = pretrain(task, data, out, enc, tcfg, resume=a.resume, progress=not a.quiet, stop_after_epoch=a.stop_after_epoch, holdout=a.holdout,
                       snapshots=snaps)
    shutdown()  # on an error torchrun stops the other ranks; a barrier then would only hang
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    print(json.dumps({k: summary[k] for k in ("task", "completed_epochs", "train_seconds_total", "device", "peak_rss_mb", "checkpoint") if k in summary} | {f"pretext_{a.holdout}": summary.get(f"pretext_{a.holdout}")}, indent=1))
    if summary.get("finished"):
        ck = summary["checkpoint"]
        _next(f"python -m ssl_train finetune --checkpoint {ck} --fraction 0.1   # what it buys with 10 % of the labels",
              f"python -m ssl_train export --checkpoint {ck} --name {a.task} --out models   # for the app")
    else:
        _next("python -m ssl_train pretrain " + " ".join([x for x in a.argv[1:] if x != "--resume"] + ["--resume"]) + "   # continue this run")
    return 0


def _load_encoder_from(a, enc_cfg):
    """(encoder state or None, encoder config, name) of ``--checkpoint``: a training checkpoint, a
    model folder or its weights.safetensors (``pretrained.load_pretrained``); scratch without one."""
    from .pretrained import load_pretrained

    if not a.checkpoint:
        return None, enc_cfg, "scratch"
    pre = load_pretrained(a.checkpoint, task=a.task or None)
    return pre.state, pre.enc_cfg, pre.name


def cmd_finetune(a) -> int:
    import numpy as np
    import torch

    from .data import check_fraction, labelled_subset, load_split_data
    from .evaluate import finetune, predict, scores
    from .runtime import resolve_device

    check_fraction(a.fraction)
    ft = _ft_cfg(a)
    if a.out:  # before the training it would be lost after
        from .paths import check_output

        check_output(a.out, "--out", overwrite=a.overwrite)
    state, enc_cfg, name = _load_encoder_from(a, _enc_cfg(a))
    data = load_split_data(_data_cfg(a))
    sub = labelled_subset(data.train_idx, data.ds.labels, a.fraction, a.seed)
    imgs = data.ds.images
    from tqdm import tqdm

    bar = tqdm(total=ft.steps_for(len(sub)), desc=f"fine-tune {name} on {len(sub)} labelled photos", unit="step", disable=None, leave=False)

    def progress(step: int, total: int, loss: float) -> bool:
        bar.n = step
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        bar.refresh()
        return False  # never stops the run

    model, log = finetune(state, enc_cfg, imgs[torch.as_tensor(sub)], data.ds.labels[sub], len(data.ds.classes), ft, a.seed, on_step=progress)
    bar.close()
    pred = predict(model, imgs[torch.as_tensor(data.test_idx)], resolve_device(a.device)).argmax(1)
    res = {"encoder": name, "fraction": a.fraction, "seed": a.seed, "n_labelled": len(sub), **scores(pred, data.ds.labels[data.test_idx], len(data.ds.classes)), **log}
    if a.out:
        from .checkpoint import save_checkpoint

        out = Path(a.out)
        save_checkpoint(out, model.encoder, model.fc, {"task": "classifier", "source": name, "encoder": enc_cfg.to_dict(), "config": {"finetune": ft.to_dict()}, "classes": data.ds.classes, "epoch": 0, "result": {k: v for k, v in res.items() if k != "confusion"}})
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items() if k not in ("confusion", "per_class_accuracy")} | {"per_class_accuracy": dict(zip(data.ds.classes, np.round(res["per_class_accuracy"], 3).tolist()))}, indent=1))
    _next("python -m ssl_train finetune --fraction %g --seed %d   # the same labels from scratch, to compare" % (a.fraction, a.seed) if a.checkpoint else
          "python -m ssl_train finetune --checkpoint models/simclr --fraction %g --seed %d   # the same labels, pretrained" % (a.fraction, a.seed),
          "python -m ssl_train protocol --tasks TASK   # every fraction and seed, scratch beside it")
    return 0


def cmd_evaluate(a) -> int:
    import torch

    from .data import labelled_subset, load_split_data
    from .encoders import build_encoder
    from .evaluate import extract_features, knn_eval, linear_probe
    from .runtime import resolve_device

    state, enc_cfg, name = _load_encoder_from(a, _enc_cfg(a))
    data = load_split_data(_data_cfg(a))
    torch.manual_seed(a.seed)
    enc = build_encoder(enc_cfg)
    if state is not None:
        enc.load_state_dict(state)
    feats = extract_features(enc, data.ds.images, resolve_device(a.device))
    y, te = data.ds.labels, data.test_idx
    rows = []
    for f in a.fractions:
        sub = labelled_subset(data.train_idx, y, f, a.seed)
        k = knn_eval(feats[-1][sub], y[sub], feats[-1][te], y[te], len(data.ds.classes))
        lin = [linear_probe(s[sub], y[sub], s[te], y[te], len(data.ds.classes), a.seed)["test_accuracy"] for s in feats]
        rows.append({"encoder": name, "fraction": f, "seed": a.seed, "knn": round(k["test_accuracy"], 4), "linear_per_stage": [round(v, 4) for v in lin]})
    print("\n".join(json.dumps(r) for r in rows))
    _next("python -m ssl_train finetune --checkpoint %s --fraction %g   # fine-tune instead of freezing" % (a.checkpoint or "models/simclr", a.fractions[0]))
    return 0


def cmd_protocol(a) -> int:
    from .data import load_split_data
    from .protocol import ProtocolConfig, run_protocol
    from .report import write_reports

    pcfg = ProtocolConfig(tasks=a.tasks, fractions=a.fractions, seeds=a.seeds, modes=a.modes, reuse=a.reuse, keep=a.keep,
                          **_per_task_tables(a, a.tasks))
    enc, tcfg, ft = _enc_cfg(a), _train_cfg(a), _ft_cfg(a)
    from .tasks import get_task

    opts = dict(pcfg.task_options)
    for t in pcfg.tasks:
        get_task(t, dict(opts.get(t, ())) or None).config.validate(a.image_size)
    data = load_split_data(_data_cfg(a))
    out = Path(a.out)
    ft_lrs = None
    if a.ft_lrs:
        from .studies.finetune_lr import chosen_lrs

        ft_lrs = chosen_lrs(Path(a.ft_lrs))
    report = run_protocol(data, pcfg, enc, tcfg, ft, out, Path(a.runs), progress=not a.quiet, command=_command_line(a), ft_lrs=ft_lrs)
    readme = None if a.no_readme else REPO / "README.md"
    written = write_reports(out, readme)
    print(f"wrote {out}, " + ", ".join(str(p) for p in written.values()) + f" in {report['wall_seconds'] / 60:.1f} min")
    _next(f"open {written['table']} (the tables) and {written['figure']} (the figure)", "streamlit run app/streamlit_app.py   # the Few-shot lab draws these curves")
    return 0


def cmd_report(a) -> int:
    from .report import write_reports

    path = Path(a.json)
    if not path.is_file():
        raise UserError(f"{path} does not exist; run `python -m ssl_train protocol` first")
    written = write_reports(path, None if a.no_readme else REPO / "README.md")
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0


def cmd_release(a) -> int:
    from .data import load_split_data
    from .protocol import ProtocolConfig
    from .release import ReleaseConfig, run_release

    tasks = tuple(_checked_tasks(a.tasks, a.image_size))
    rcfg = ReleaseConfig(tasks=tasks, models_dir=a.models, report=a.out, runs_dir=a.runs, weights=a.weights,
                         protocol=not a.no_protocol, precompute=not a.no_precompute, readme=not a.no_readme,
                         ft_lr_search="" if a.no_ft_lr_search else a.ft_lr_search)
    pcfg = ProtocolConfig(tasks=tasks, fractions=a.fractions, seeds=a.seeds, modes=a.modes, reuse=a.reuse,
                          **_per_task_tables(a, tasks, shipped_default=True))
    enc, tcfg, ft = _enc_cfg(a), _train_cfg(a), _ft_cfg(a)
    data = load_split_data(_data_cfg(a))
    if a.dry_run:
        from .release import plan_lines, release_plan

        lines, ok = plan_lines(release_plan(rcfg, data, enc, tcfg, ft, pcfg))
        print("\n".join(lines))
        return 0 if ok else 1
    out = run_release(rcfg, data, enc, tcfg, ft, pcfg, REPO, command=_command_line(a))
    print(json.dumps(out, indent=1))
    return 0


def cmd_learning_map(a) -> int:
    from .snapshots import SNAPSHOT_FILE, snapshot_image_size, snapshot_test_idx, write_learning

    run, model = Path(a.run), Path(a.model)
    if not (run / SNAPSHOT_FILE).is_file():
        raise UserError(f"{run / SNAPSHOT_FILE} does not exist: pretrain with --snapshots auto --out {run} first")
    if not (model / "model.json").is_file():
        raise UserError(f"{model} is not a model folder (no model.json); export the run first (python -m ssl_train export)")
    from .data import load_split_data

    a.image_size = snapshot_image_size(run / SNAPSHOT_FILE)
    data = load_split_data(_data_cfg(a))
    idx = snapshot_test_idx(run / SNAPSHOT_FILE)
    if not (len(idx) == len(data.test_idx) and (idx == data.test_idx).all()):
        raise UserError(f"{run}'s snapshots were taken on another test split than {a.data}'s; use the run's --data")
    out = write_learning(model, run, data.ds.labels[idx], data.ds.classes, [data.ds.files[i] for i in idx])
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} KB); the talk's 'watch it learn' slide shows it: streamlit run app/streamlit_app.py")
    return 0


def cmd_replay(a) -> int:
    from .data import check_fraction, load_split_data
    from .pretrained import load_pretrained
    from .replay import arm_lrs, check_out, run_replay, write_replay

    check_fraction(a.fraction)
    if a.points < 1:
        raise UserError(f"--points {a.points} must be at least 1, e.g. --points 30")
    out = Path(a.out)
    check_out(out, a.overwrite)  # before minutes of training
    ft = _ft_cfg(a)
    pre = load_pretrained(a.model)
    lrs = arm_lrs(pre.card, pre.task, a.ft_lrs, ft.lr)
    data = load_split_data(_data_cfg(a))
    doc = run_replay(pre, data, a.fraction, a.seed, ft, lrs, _command_line(a), n_points=a.points, progress=not a.quiet)
    write_replay(doc, out)
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} KB): " + ", ".join(f"{arm['name']} {arm['final_test_accuracy']:.3f}" for arm in doc["arms"])
          + " final test accuracy; replay it in talk mode: streamlit run app/streamlit_app.py (slide 'Fine-tuning, replayed')")
    return 0


def _add_training_parsers(sub) -> None:
    """tasks, pretrain, finetune, evaluate: one encoder at a time."""
    from .tasks import DEFAULT_TASK

    s = sub.add_parser("tasks", help="print the registered pretext tasks, one per line", formatter_class=D)
    s.set_defaults(fn=cmd_tasks)

    s = sub.add_parser("pretrain", help="pretrain an encoder with a pretext task on the training split (labels unused)", formatter_class=D)
    s.add_argument("--task", default=DEFAULT_TASK, help="pretext task name (see `python -m ssl_train tasks`)")
    s.add_argument("--task-opt", action="append", metavar="KEY=VALUE", help="override a field of the task's config; repeatable")
    s.add_argument("--out", default="", help="run directory for checkpoint.safetensors, metrics.jsonl, summary.json. Default: runs/TASK")
    s.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    s.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    s.add_argument("--stop-after-epoch", type=int, default=None, help="end after this epoch (0-based) as a kill would; resume later with --resume")
    s.add_argument("--snapshots", default="", help="save the test photos' features after these numbers of epochs (0 = before training), or 'auto'; "
                   "`learning-map` turns them into the talk's 'watch it learn' map. Training is unchanged")
    s.add_argument("--holdout", choices=("test", "validation"), default="test",
                   help="test: train on the training split, score the pretext task on the test split. validation: train on the fit part of the "
                        "training split and score on its validation part (the budget study's split), to choose a task's settings without the test photos")
    _add_data(s), _add_encoder(s), _add_train(s)
    s.set_defaults(fn=cmd_pretrain)

    s = sub.add_parser("finetune", help="fine-tune an encoder (or scratch) on a labelled fraction, score on the test split", formatter_class=D)
    s.add_argument("--checkpoint", default="", help=CHECKPOINT_HELP + "; omit for a randomly initialised encoder (scratch)")
    s.add_argument("--task", default="", help="if given, refuse a checkpoint of another task")
    s.add_argument("--fraction", type=float, default=0.1, help="labelled fraction of the training split, in (0, 1]")
    s.add_argument("--seed", type=int, default=0, help="seed of the labelled subset and of training")
    s.add_argument("--out", default="", help="save the fine-tuned classifier here (safetensors)")
    s.add_argument("--overwrite", action="store_true", help="allow --out to replace an existing file")
    _add_data(s), _add_encoder(s), _add_finetune(s)
    s.set_defaults(fn=cmd_finetune)

    s = sub.add_parser("evaluate", help="kNN and per-stage linear probe of a frozen encoder at given fractions", formatter_class=D)
    s.add_argument("--checkpoint", default="", help=CHECKPOINT_HELP + "; omit for a randomly initialised encoder")
    s.add_argument("--task", default="", help="if given, refuse a checkpoint of another task")
    s.add_argument("--fractions", type=_floats, default=(0.1,), help="labelled fractions, comma-separated")
    s.add_argument("--seed", type=int, default=0, help="seed of the labelled subsets")
    _add_data(s), _add_encoder(s)
    s.set_defaults(fn=cmd_evaluate)


def _add_protocol_parsers(sub) -> None:
    """protocol, report, bench: the labelled-fraction protocol, its report, the step timing."""
    from .tasks import DEFAULT_TASK

    s = sub.add_parser("protocol", help="the seven-step protocol: scratch vs pretrained over fractions, seeds and modes", formatter_class=D)
    s.add_argument("--tasks", type=_strs, default=(DEFAULT_TASK,), help="pretext tasks to pretrain and compare with scratch, comma-separated")
    s.add_argument("--quiet", action="store_true", help="less output")
    s.add_argument("--ft-lrs", default="", help="a `finetune-lr` report: fine-tune each encoder (and scratch) with the learning rate chosen for it on validation, instead of --ft-lr for all")
    s.add_argument("--keep", type=_strs, default=(), help="tasks among --tasks whose finished entries in --out are kept as they are, with the pretraining record they were "
                   "made from, without their runs' checkpoints (to add a new task to a report made on another machine); every entry must be there")
    _add_per_task_flags(s)
    _add_protocol(s), _add_data(s), _add_encoder(s), _add_train(s, epochs=30), _add_finetune(s)
    s.set_defaults(fn=cmd_protocol)

    s = sub.add_parser("report", help="regenerate figure, table and the README block from a protocol JSON", formatter_class=D)
    s.add_argument("--json", default=str(REPO / "reports" / "protocol.json"), help="protocol report to read")
    s.add_argument("--no-readme", action="store_true", help="do not rewrite the README's results block")
    s.set_defaults(fn=cmd_report)

    studies_cli.add_bench_parser(sub)


def _add_release_parsers(sub) -> None:
    """release and the studies that choose its settings on validation photos: budget, finetune-lr."""
    from .release import RELEASE_EPOCHS, shipped_tables
    from .release import __doc__ as release_doc

    s = sub.add_parser("release", help="pretrain every task, export models/, run the protocol, write reports/ (hours on this CPU; see --help)",
                       description=release_doc, formatter_class=_DocAndDefaults)
    s.add_argument("--tasks", type=_strs, default=("all",), help="pretext tasks to ship, comma-separated, or all")
    s.add_argument("--models", default=str(REPO / "models"), help="folder of model folders to write")
    s.add_argument("--weights", choices=("int8", "float16", "float32"), default="int8", help="storage of the exported weights")
    s.add_argument("--no-protocol", action="store_true", help="pretrain and export only; model cards take their metrics from an existing --out report that covers the tasks")
    s.add_argument("--no-precompute", action="store_true", help="skip the app's precomputed maps")
    s.add_argument("--ft-lr-search", default=str(REPO / "reports" / "finetune-lr.json"),
                   help="before the protocol, choose each encoder's fine-tuning learning rate on a validation split (`finetune-lr`, its default rates) into this report, and fine-tune with those rates")
    s.add_argument("--no-ft-lr-search", action="store_true", help="fine-tune every encoder with --ft-lr instead")
    s.add_argument("--dry-run", action="store_true", help="train and write nothing: list per task the run it would pretrain into, whether the "
                   "model card, the learning-rate search and the protocol report were made from it, and how many protocol entries it would reuse; "
                   "exit 1 unless everything is found finished")
    _add_per_task_flags(s, shipped_tables())  # every task's recipe (ssl_train/tasks/TASK.py)
    _add_protocol(s), _add_data(s), _add_encoder(s), _add_train(s, epochs=RELEASE_EPOCHS), _add_finetune(s)
    s.set_defaults(fn=cmd_release)

    studies_cli.add_budget_parser(sub)
    studies_cli.add_finetune_lr_parser(sub)


def _add_tool_parsers(sub) -> None:
    """render, learning-map, rotation-limits, runs, replay: the talk's and the reports' tools."""
    from .snapshots import __doc__ as snapshots_doc
    from .tasks import SHOWCASE_TASK

    # its options are ssl_train.render_cli's own (main() hands it the rest of the command line)
    sub.add_parser("render", help="render flower scenes with their depth, normals and outlines: --gallery OUT, --bench (see render --help)",
                   add_help=False, formatter_class=D)

    s = sub.add_parser("learning-map", help="turn a run's feature snapshots into the aligned 2-D layouts of 'watch it learn' (MODEL/learning.npz)",
                       description=snapshots_doc, formatter_class=_DocAndDefaults)
    s.add_argument("--run", required=True, help="pretraining run folder made with --snapshots")
    s.add_argument("--model", required=True, help="model folder to write learning.npz into, e.g. models/rotation")
    _add_data(s)
    s.set_defaults(fn=cmd_learning_map)

    studies_cli.add_rotation_limits_parser(sub)
    studies_cli.add_runs_parser(sub)

    from .replay import N_POINTS
    from .replay import __doc__ as replay_doc

    s = sub.add_parser("replay", help="record scratch and a pretrained model fine-tuning on the same labels, test accuracy along the way (the talk's replay slide)",
                       description=replay_doc, formatter_class=_DocAndDefaults)
    s.add_argument("--model", default=str(REPO / "models" / SHOWCASE_TASK), help="the pretrained arm: " + CHECKPOINT_HELP)
    s.add_argument("--fraction", type=float, default=0.1, help="labelled fraction of the training split, in (0, 1]")
    s.add_argument("--seed", type=int, default=0, help="seed of the labelled subset, the initialisation and the batch order (as the protocol's)")
    s.add_argument("--points", type=int, default=N_POINTS, help="recorded intervals per arm: the test split is scored at this many evenly spaced steps, and before the first")
    s.add_argument("--ft-lrs", default=str(REPO / "reports" / "finetune-lr.json"),
                   help="for a model whose card records no fine-tuning learning rates (a training checkpoint): the `finetune-lr` report to take them from; '' for --ft-lr")
    s.add_argument("--out", default=str(REPO / "reports" / "finetune-replay.json"), help="the recording (JSON)")
    s.add_argument("--overwrite", action="store_true", help="allow --out to replace an existing file")
    s.add_argument("--quiet", action="store_true", help="no per-arm lines")
    _add_data(s), _add_finetune(s)
    s.set_defaults(fn=cmd_replay)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ssl_train", description="Pretext-task self-supervised pretraining and the labelled-fraction protocol.", formatter_class=D)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{tasks,pretrain,finetune,evaluate,protocol,report,export,bench,release,budget,finetune-lr,rotation-limits,runs,learning-map,replay,render}")

    _add_training_parsers(sub)
    _add_protocol_parsers(sub)
    _add_release_parsers(sub)
    _add_tool_parsers(sub)

    from .export import add_export_parser

    add_export_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["render"]:
        from .render_cli import main as render_main

        return render_main(argv[1:], prog="python -m ssl_train render")
    a = parser.parse_args(argv)
    a.argv = argv  # what reports record as the command that made them
    warnings.filterwarnings("default", category=UserWarning)
    from .model_files import ModelFileError  # the app's error for a missing or altered model folder: one line too

    try:
        return a.fn(a)
    except (UserError, ModelFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; checkpoints already written are kept (use --resume)", file=sys.stderr)
        return 130


def console() -> None:
    """The ``pretext-lab`` command of ``pip install .`` (pyproject.toml): the same CLI."""
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main())
