"""The study commands' options and handlers (``python -m ssl_train budget``, ``finetune-lr``,
``rotation-limits``, ``runs``, ``bench``): ``__main__.build_parser`` adds each parser where the
command has always been listed; a parser's ``fn`` is its handler here.
"""
from __future__ import annotations

from pathlib import Path

from ..cli_options import (
    D,
    _add_data,
    _add_encoder,
    _add_finetune,
    _add_per_task_flags,
    _add_train,
    _checked_tasks,
    _command_line,
    _data_cfg,
    _DocAndDefaults,
    _enc_cfg,
    _floats,
    _ft_cfg,
    _ints,
    _per_task_tables,
    _strs,
    _train_cfg,
)
from ..errors import UserError
from ..paths import REPO


def cmd_bench(a) -> int:
    from ..data import load_split_data
    from .bench import run_bench

    tasks = _checked_tasks(a.tasks, a.image_size)
    if a.steps < 1 or a.repeats < 1 or a.warmup < 0 or a.workers < 0:
        raise UserError("--steps and --repeats must be ≥ 1, --warmup and --workers ≥ 0")
    data = load_split_data(_data_cfg(a))
    path = run_bench(data, tasks, _enc_cfg(a), _train_cfg(a), a.steps, a.warmup, a.repeats, a.workers, Path(a.out))
    print(f"wrote {path}")
    return 0


def cmd_budget(a) -> int:
    from ..data import load_split_data
    from ..protocol import check_tables, own_recipes
    from .budget import run, write

    tasks = _checked_tasks(a.tasks, a.image_size)
    tables = _per_task_tables(a, tasks) | {"task_epochs": ()}  # --budgets sets the epochs
    check_tables(tables, tasks)
    own = own_recipes(tables, _train_cfg(a), a.image_size)
    reports = run(tasks, list(a.budgets), load_split_data(_data_cfg(a)), _enc_cfg(a), _train_cfg(a), _ft_cfg(a), Path(a.runs), a.fraction, list(a.seeds),
                  own=own)
    for r in reports:
        js, md = write(r, Path(a.out), _command_line(a))
        print(md.read_text())
        print(f"wrote {js}, {md}")
    return 0


def cmd_finetune_lr(a) -> int:
    from ..data import load_split_data
    from ..protocol import SCRATCH
    from .finetune_lr import run, write_markdown

    names = tuple(x for x in a.arms if x != SCRATCH)
    arms = ([SCRATCH] if SCRATCH in a.arms else []) + (_checked_tasks(names, a.image_size) if names else [])
    out = Path(a.out)
    r = run(arms, list(a.lrs), load_split_data(_data_cfg(a)), _enc_cfg(a), _train_cfg(a), _ft_cfg(a), Path(a.runs), a.fraction,
            list(a.seeds), out, _command_line(a), progress=not a.quiet, keep=tuple(a.keep), **_per_task_tables(a, [x for x in arms if x != SCRATCH]))
    md = write_markdown(r, out)
    print(md.read_text())
    print(f"wrote {out}, {md}")
    return 0


def cmd_runs(a) -> int:
    from .runs_table import collect, to_markdown, write

    rows = collect([Path(d) for d in a.dirs])
    if a.out:
        js, md = write(rows, Path(a.out), _command_line(a))
        print(md.read_text())
        print(f"wrote {js}, {md}")
    else:
        print(to_markdown(rows, _command_line(a)))
    return 0


def cmd_rotation_limits(a) -> int:
    from ..data import decoded_at, load_split_data
    from .rotation_limits import judge_sizes, judge_sizes_markdown, load_folder_model, load_run_model, model_image_size, score, to_markdown, write

    size = model_image_size(run_dir=Path(a.run)) if a.run else model_image_size(model_dir=Path(a.model))
    if a.image_size is not None and a.image_size != size:
        raise UserError(f"{a.run or a.model} was trained on {size}-px photos; drop --image-size {a.image_size} "
                        "(rotation-limits scores a model at the size it was trained at; --judge-sizes looks at others)")
    a.image_size = size  # scored at the size it was trained at
    sizes = _judge_sizes(a.judge_sizes) if a.judge_sizes else None  # checked before any photo is decoded
    data = load_split_data(_data_cfg(a))
    encoder, head, idx, info = load_run_model(Path(a.run), data) if a.run else load_folder_model(Path(a.model), data)
    if sizes:
        rows = judge_sizes(encoder, head, idx, sizes, lambda s: decoded_at(data, s), data)
        r, stem, markdown = {"n_photos": int(len(idx)), "sizes": rows} | info, "rotation-judge-sizes", judge_sizes_markdown
    else:
        r, stem, markdown = score(encoder, head, data, idx) | info, "rotation-limits", to_markdown
    js, md = write(r, Path(a.out), _command_line(a), stem=stem + (f"-{Path(a.run).name}" if a.run else ""), markdown=markdown)
    print(md.read_text())
    print(f"wrote {js}, {md}")
    return 0


def _judge_sizes(text: str) -> list[int]:
    """``--judge-sizes 96,112,128`` → [96, 112, 128]; one-line ``UserError`` otherwise."""
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(not 16 <= s <= 512 for s in sizes):
        raise UserError(f"--judge-sizes {text!r}: give comma-separated sides in px from 16 to 512, e.g. --judge-sizes 96,112,128")
    return sizes


def add_bench_parser(sub) -> None:
    """``bench``: images/s of the training step per task (``bench.py``)."""
    s = sub.add_parser("bench", help="images/s of the training step per task: device-resident path vs a DataLoader of PIL transforms", formatter_class=D)
    s.add_argument("--tasks", type=_strs, default=("all",), help="tasks to time, comma-separated, or all")
    s.add_argument("--steps", type=int, default=5, help="timed steps per repeat")
    s.add_argument("--warmup", type=int, default=2, help="untimed steps first (allocations, compilation)")
    s.add_argument("--repeats", type=int, default=3, help="timed repeats; the median is reported")
    s.add_argument("--workers", type=int, default=2, help="DataLoader worker processes of the conventional path")
    s.add_argument("--out", default=str(REPO / "reports"), help="folder for bench-<device>.json")
    _add_data(s), _add_encoder(s), _add_train(s)
    s.set_defaults(fn=cmd_bench)


def add_budget_parser(sub) -> None:
    """``budget``: pretraining epochs chosen on validation photos (``budget.py``)."""
    from ..tasks import DEFAULT_TASK
    from .budget import __doc__ as budget_doc

    s = sub.add_parser("budget", help="choose the pretraining epochs on a validation split of the training photos (never the test split)",
                       description=budget_doc, formatter_class=_DocAndDefaults)
    s.add_argument("--tasks", type=_strs, default=(DEFAULT_TASK,), help="pretext tasks, comma-separated, or all (one report each)")
    s.add_argument("--budgets", type=_ints, default=(15, 30, 50), help="pretraining epochs to compare, comma-separated")
    s.add_argument("--fraction", type=float, default=0.1, help="labelled fraction of the fit photos")
    s.add_argument("--seeds", type=_ints, default=(0, 1, 2), help="fine-tuning seeds")
    s.add_argument("--runs", default=str(REPO / "runs"), help="pretraining runs (reused when the settings match)")
    s.add_argument("--out", default=str(REPO / "reports"), help="folder for budget-TASK.json and .md")
    _add_per_task_flags(s, epochs=False)  # --budgets sets the epochs
    _add_data(s), _add_encoder(s), _add_train(s, epochs=30), _add_finetune(s)
    s.set_defaults(fn=cmd_budget)


def add_finetune_lr_parser(sub) -> None:
    """``finetune-lr``: each encoder's fine-tuning learning rate chosen on validation photos (``finetune_lr.py``)."""
    from .finetune_lr import DEFAULT_LRS, SEARCH_FRACTION
    from .finetune_lr import __doc__ as ftlr_doc

    s = sub.add_parser("finetune-lr", help="choose each encoder's fine-tuning learning rate on a validation split (never the test split)",
                       description=ftlr_doc, formatter_class=_DocAndDefaults)
    s.add_argument("--arms", type=_strs, default=("scratch", "all"), help="scratch and/or pretext tasks, comma-separated; all: every registered task")
    s.add_argument("--lrs", type=_floats, default=DEFAULT_LRS, help="peak learning rates to compare, comma-separated")
    s.add_argument("--fraction", type=float, default=SEARCH_FRACTION, help="labelled fraction of the fit photos")
    s.add_argument("--seeds", type=_ints, default=(0, 1, 2), help="fine-tuning seeds")
    s.add_argument("--runs", default=str(REPO / "runs"), help="pretraining runs (reused when the settings match)")
    s.add_argument("--out", default=str(REPO / "reports" / "finetune-lr.json"), help="the report (and .md beside it); entries already in it with the same settings are kept")
    s.add_argument("--quiet", action="store_true", help="no per-rate lines")
    s.add_argument("--keep", type=_strs, default=(), help="arms among --arms whose scores in --out are kept as they are, without their pretraining runs "
                   "(to add a new task to a search made on another machine); each must be there with the same settings, seeds and rates")
    _add_per_task_flags(s)
    _add_data(s), _add_encoder(s), _add_train(s, epochs=30), _add_finetune(s)
    s.set_defaults(fn=cmd_finetune_lr)


def add_rotation_limits_parser(sub) -> None:
    """``rotation-limits``: why rotation prediction errs (``rotation_limits.py``)."""
    from .rotation_limits import Rotation
    from .rotation_limits import __doc__ as limits_doc

    s = sub.add_parser("rotation-limits", help="why rotation prediction errs on these photos: angle confusion, per class, vs rotational self-similarity",
                       description=limits_doc, formatter_class=_DocAndDefaults)
    s.add_argument("--model", default=str(REPO / "models" / Rotation.name), help="rotation model folder (model.json + weights)")
    s.add_argument("--run", default="", help="score a rotation pretraining run's checkpoint instead, on the photos it held out "
                   "(its validation photos after `pretrain --holdout validation`); writes rotation-limits-RUNNAME.json and .md")
    s.add_argument("--out", default=str(REPO / "reports"), help="folder for rotation-limits.json and .md")
    s.add_argument("--judge-sizes", default="", help="instead: judge the photos decoded at each of these sides (px, e.g. 96,112,128; "
                   "the model is not retrained) and write rotation-judge-sizes[-RUNNAME].json and .md — does judging a photo "
                   "larger than the training size help (FixRes)?")
    _add_data(s)
    s.set_defaults(fn=cmd_rotation_limits, image_size=None)  # None: the size the model or run was trained at


def add_runs_parser(sub) -> None:
    """``runs``: pretraining runs side by side (``runs_table.py``)."""
    from .runs_table import __doc__ as runs_doc

    s = sub.add_parser("runs", help="pretraining runs side by side: options, epochs, pretext scores (validation or test), time",
                       description=runs_doc, formatter_class=_DocAndDefaults)
    s.add_argument("dirs", nargs="+", metavar="RUN_DIR", help="run folders (each with its summary.json), e.g. runs/rotval-*")
    s.add_argument("--out", default="", help="also write this markdown file and a .json beside it, e.g. reports/rotation-head.md")
    s.set_defaults(fn=cmd_runs)
