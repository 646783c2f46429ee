"""The options and settings every ``python -m ssl_train`` command shares: the option groups
(data, encoder, pretraining, fine-tuning, protocol, the per-task tables), their parsers of
comma-separated lists, and the configs built from them. ``__main__`` and ``studies/cli.py`` build
their parsers from these; the names keep their leading underscore (the CLI's own helpers).
"""
from __future__ import annotations

import argparse

from .errors import UserError
from .paths import REPO

D = argparse.ArgumentDefaultsHelpFormatter
CHECKPOINT_HELP = ("pretrained encoder: a training checkpoint (runs/TASK/checkpoint.safetensors), a shipped model folder (models/NAME, "
                   "checked against its model.json's sha256) or that folder's weights.safetensors")


class _DocAndDefaults(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """A module docstring as the description, kept as written, and every option's default."""


def _floats(s: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in s.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a comma-separated list of numbers, e.g. 0.01,0.1,1") from None


def _ints(s: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in s.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a comma-separated list of integers, e.g. 0,1,2") from None


def _strs(s: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in s.split(",") if x.strip())


def _task_numbers(unit: str, example: str):
    """A parser of ``TASK=N`` lists, e.g. ``b=60,a=50`` → (("a", 50), ("b", 60)); empty → ()."""
    def parse(s: str) -> tuple[tuple[str, int], ...]:
        out = []
        for x in _strs(s):
            name, _, n = x.partition("=")
            try:
                out.append((name.strip(), int(n)))
            except ValueError:
                raise argparse.ArgumentTypeError(f"{x!r} is not TASK={unit}, e.g. {example}") from None
        return tuple(sorted(out))
    return parse


_task_epochs = _task_numbers("EPOCHS", "simclr=60")
_task_batch_sizes = _task_numbers("PHOTOS", "rotation=32")
_task_image_sizes = _task_numbers("PIXELS", "rotation=128")


def _add_per_task(p: argparse.ArgumentParser, flag: str, parse, metavar: str, what: str, shown: str | None) -> None:
    # a string default goes through ``type`` too, and the help shows it as it is typed ("%(default).0s"
    # prints nothing but stops the formatter from adding an empty "(default: )"); None: not given, so
    # that the command can tell it from '' (each task's recipe with --recipes, else none)
    default = "the tasks' recipes with --recipes, else none" if shown is None else (shown or "none")
    p.add_argument(flag, type=parse, default=shown, metavar=metavar, help=f"{what}; '' for none (default: {default})%(default).0s")


def _add_task_epochs(p: argparse.ArgumentParser, default: tuple[tuple[str, int], ...] | None = None) -> None:
    _add_per_task(p, "--task-epochs", _task_epochs, "TASK=N,...",
                  "pretraining epochs of the named tasks instead of --epochs (a per-task budget chosen on validation by `budget`)",
                  None if default is None else ",".join(f"{t}={n}" for t, n in default))


def _add_task_batch_sizes(p: argparse.ArgumentParser, default: tuple[tuple[str, int], ...] | None = None) -> None:
    _add_per_task(p, "--task-batch-sizes", _task_batch_sizes, "TASK=N,...",
                  "photos per pretraining step of the named tasks instead of --batch-size (chosen on validation with `pretrain --holdout validation`)",
                  None if default is None else ",".join(f"{t}={n}" for t, n in default))


def _add_task_image_sizes(p: argparse.ArgumentParser, default: tuple[tuple[str, int], ...] | None = None) -> None:
    _add_per_task(p, "--task-image-sizes", _task_image_sizes, "TASK=PX,...",
                  "pretrain the named tasks on photos decoded at this size instead of --image-size; downstream every arm sees "
                  "--image-size photos (chosen on validation with `pretrain --holdout validation --image-size PX`)",
                  None if default is None else ",".join(f"{t}={n}" for t, n in default))


def _task_options_arg(s: str) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    """``TASK.OPTION=VALUE`` lists, e.g. ``t.grid=2,t.hidden=0`` → (("t", (("grid", "2"), ("hidden", "0"))),); empty → ()."""
    by_task: dict[str, dict[str, str]] = {}
    for x in _strs(s):
        lhs, eq, value = x.partition("=")
        task, dot, key = lhs.strip().partition(".")
        if not (eq and dot and task and key.strip()):
            raise argparse.ArgumentTypeError(f"{x!r} is not TASK.OPTION=VALUE, e.g. rotation.grid=2")
        by_task.setdefault(task, {})[key.strip()] = value.strip()
    return tuple(sorted((t, tuple(sorted(o.items()))) for t, o in by_task.items()))


def _add_task_options(p: argparse.ArgumentParser, default: tuple | None = None) -> None:
    _add_per_task(p, "--task-options", _task_options_arg, "TASK.OPTION=VALUE,...",
                  "task config fields other than the defaults, per task (settings chosen on validation, e.g. with `pretrain --holdout validation`)",
                  None if default is None else ",".join(f"{t}.{k}={v}" for t, opts in default for k, v in opts))


def _add_per_task_flags(p: argparse.ArgumentParser, defaults: dict[str, tuple] | None = None, epochs: bool = True) -> None:
    """``--task-epochs``, ``--task-batch-sizes``, ``--task-image-sizes``, ``--task-options``: each a
    per-task table that overrides the tasks' recipes; ``defaults`` (release's: every recipe) or not
    given, and then ``--recipes`` decides (``_per_task_tables``)."""
    d = defaults or {}
    if epochs:
        _add_task_epochs(p, d.get("task_epochs") if defaults is not None else None)
    _add_task_batch_sizes(p, d.get("task_batch_sizes") if defaults is not None else None)
    _add_task_image_sizes(p, d.get("task_image_sizes") if defaults is not None else None)
    _add_task_options(p, d.get("task_options") if defaults is not None else None)
    if defaults is None:
        p.add_argument("--recipes", action="store_true",
                       help="pretrain each task with its recipe, as `release` does: its own epochs, photos per step, photo size and options, "
                            "each chosen on validation (ssl_train/tasks/TASK.py); a --task-* flag given replaces that part of every recipe")


def _per_task_tables(a, tasks: list[str] | tuple[str, ...], shipped_default: bool = False) -> dict[str, tuple]:
    """The per-task tables of this command (``ProtocolConfig``'s ``task_epochs`` …): each flag as
    given; one not given takes the recipes of ``tasks`` (with ``--recipes``, or always for release, whose
    default shows every recipe: ``shipped_default``), else none."""
    from .protocol import PER_TASK_FIELDS
    from .release import shipped_tables

    mine = shipped_tables(tasks) if shipped_default or getattr(a, "recipes", False) else {}
    every = shipped_tables() if shipped_default else {}
    out = {}
    for table, _ in PER_TASK_FIELDS:
        given = getattr(a, table, ())
        # release's default names tasks a smaller release may leave out: that default is its tasks' recipes
        out[table] = mine.get(table, ()) if given is None or (shipped_default and given == every.get(table)) else given
    return out


def _add_data(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", default=str(REPO / "data" / "flowers"), help="ImageFolder directory: one sub-folder of photos per class")
    g.add_argument("--split", default="", help="split CSV (file,class,split,group); made once if missing. Default: DATA/split.csv")
    g.add_argument("--image-size", type=int, default=96, help="side of the square training images, pixels")
    g.add_argument("--test-fraction", type=float, default=0.2, help="share of each class held out as test when a new split is made")
    g.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu, cuda or cuda:N")


def _add_encoder(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("encoder")
    g.add_argument("--encoder", default="resnet_compact", help="encoder name from the registry")
    g.add_argument("--widths", type=_ints, default=(32, 64, 128, 256), help="channels of the four stages")
    g.add_argument("--blocks", type=_ints, default=(1, 1, 2, 1), help="residual blocks per stage")


def _add_train(p: argparse.ArgumentParser, epochs: int = 30) -> None:
    g = p.add_argument_group("pretraining")
    g.add_argument("--epochs", type=int, default=epochs, help="passes over the training split")
    g.add_argument("--batch-size", type=int, default=128, help="photos per step (a task may expand each photo into several inputs)")
    g.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd", help="SGD (Nesterov momentum 0.9) or AdamW")
    g.add_argument("--lr", type=float, default=0.1, help="peak learning rate after warm-up; cosine decay to 0")
    g.add_argument("--weight-decay", type=float, default=5e-4, help="weight decay")
    g.add_argument("--warmup-epochs", type=float, default=1.0, help="linear warm-up length in epochs")
    g.add_argument("--seed", type=int, default=0, help="seed of initialisation, batch order and augmentation")
    g.add_argument("--no-amp", action="store_true", help="disable bf16 autocast on CUDA (no effect on CPU)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (slower start, faster steps)")
    g.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs to OUT/tb (needs tensorboard)")
    g.add_argument("--sync-bn", action="store_true", help="under torchrun: batch-norm statistics over the global batch (SyncBatchNorm)")


def _add_finetune(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("fine-tuning (schedule fixed in advance, the same for scratch and pretrained)")
    g.add_argument("--ft-epochs", type=int, default=30, help="passes over the labelled subset, clamped to [--ft-min-steps, --ft-max-steps] steps")
    g.add_argument("--ft-min-steps", type=int, default=100, help="fewest optimizer steps (small subsets)")
    g.add_argument("--ft-max-steps", type=int, default=2000, help="most optimizer steps (very large subsets; the full flowers split needs 1320)")
    g.add_argument("--ft-batch-size", type=int, default=64, help="photos per fine-tuning step")
    g.add_argument("--ft-lr", type=float, default=0.03, help="peak SGD learning rate for fine-tuning (protocol/release: unless a per-encoder rate is chosen on validation)")


def _add_protocol(p: argparse.ArgumentParser) -> None:
    """Options of the labelled-fraction protocol, shared by ``protocol`` and ``release``."""
    g = p.add_argument_group("protocol")
    g.add_argument("--fractions", type=_floats, default=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0), help="labelled fractions")
    g.add_argument("--seeds", type=_ints, default=(0, 1, 2), help="seeds (labelled subset, head init, fine-tuning order)")
    g.add_argument("--modes", type=_strs, default=("finetune", "linear", "knn"), help="downstream methods: finetune, linear, knn")
    g.add_argument("--out", default=str(REPO / "reports" / "protocol.json"), help="report JSON; figure and table are written beside it")
    g.add_argument("--reuse", type=_strs, default=(), help="earlier protocol JSONs, comma-separated: their entries made with the same settings count as done (scratch entries whenever the settings scratch depends on match)")
    g.add_argument("--runs", default=str(REPO / "runs"), help="where pretraining runs (checkpoints) are kept and reused")
    g.add_argument("--no-readme", action="store_true", help="do not rewrite the README's results block")


def _data_cfg(a):
    from .data import DataConfig

    return DataConfig(root=a.data, image_size=a.image_size, split_file=a.split, test_fraction=a.test_fraction)


def _enc_cfg(a):
    from .encoders import ENCODERS, EncoderConfig

    if a.encoder not in ENCODERS:
        raise UserError(f"unknown encoder {a.encoder!r}; registered: {', '.join(sorted(ENCODERS))}")
    try:
        return EncoderConfig(name=a.encoder, widths=tuple(a.widths), blocks=tuple(a.blocks))
    except ValueError as e:
        raise UserError(f"{e}; e.g. --widths 32,64,128,256 --blocks 1,1,2,1") from None


def _train_cfg(a):
    from .train import TrainConfig

    return TrainConfig(
        epochs=a.epochs, batch_size=a.batch_size, optimizer=a.optimizer, lr=a.lr, weight_decay=a.weight_decay,
        warmup_epochs=a.warmup_epochs, seed=a.seed, device=a.device, amp=not a.no_amp, compile=a.compile, tensorboard=a.tensorboard,
        sync_bn=a.sync_bn,
    )


def _ft_cfg(a):
    from .evaluate import FinetuneConfig

    return FinetuneConfig(epochs=a.ft_epochs, min_steps=a.ft_min_steps, max_steps=a.ft_max_steps, batch_size=a.ft_batch_size, lr=a.ft_lr, device=a.device)


def _checked_tasks(names: tuple[str, ...], image_size: int) -> list[str]:
    """``--tasks`` ("all": every registered task) → task names, each registered and valid at
    ``image_size``; a one-line error before any data is read otherwise."""
    from .release import resolve_tasks
    from .tasks import get_task

    tasks = resolve_tasks(() if names == ("all",) else names)
    for t in tasks:
        get_task(t).config.validate(image_size)
    return tasks


def _command_line(a) -> str:
    """How this command was given, for reports: ``python -m ssl_train <args>`` (paths as given)."""
    import shlex

    return "python -m ssl_train " + " ".join(shlex.quote(x) for x in a.argv)
