"""What limits rotation prediction on these photos: ``python -m ssl_train rotation-limits``.

Rotation prediction (Gidaris et al. 2018) assumes photos have a canonical "up". A flower head shot
from above — a daisy, a dandelion clock, a sunflower — looks nearly the same turned by 90° or 180°,
and then no encoder can read the angle from the pixels. This module measures how much of the
rotation model's error that explains, on the test split only:

- the 4×4 confusion of true vs predicted angle (quarter-turn mistakes vs 180° flips);
- pretext accuracy per flower class;
- pretext accuracy against each photo's *rotational self-similarity*: the Pearson correlation of its
  grey pixels with the same pixels turned by 90° (and 180°), the larger of the two. At 1 the pixels
  carry no angle at all; photos are split into quartiles of it.

It reads a model folder (``models/rotation`` by default, the shipped weights as stored) and writes
``reports/rotation-limits.json`` and ``.md``. Photos are decoded at the size the model or run was
trained at (``model_image_size``; a differing ``--image-size`` is refused): scored at another size, a model
trained at 128 px loses several points and the report would blame the photos for it.
``--judge-sizes`` asks the other question on purpose: the same weights judging the photos decoded at other sizes
(``judge_sizes``) → ``reports/rotation-judge-sizes[-RUNNAME].json`` and ``.md``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..data import check_same_photos
from ..errors import UserError
from ..paths import portable
from ..tasks.rotation import Rotation

ANGLES = (0, 90, 180, 270)


def self_similarity(images_u8: torch.Tensor) -> torch.Tensor:
    """(N, 3, S, S) uint8 square photos → (N,) float: max over k ∈ {1, 2} of the Pearson correlation
    between the grey photo and the photo turned by k·90°. (Turning by 270° gives the same value as
    90°: corr(g, rot270 g) = corr(rot90 g, g).)"""
    g = images_u8.float().mean(1)  # (N, S, S)
    g = g - g.mean((1, 2), keepdim=True)
    norm = g.flatten(1).norm(dim=1).clamp_min(1e-6)
    out = []
    for k in (1, 2):
        r = torch.rot90(g, k, dims=(1, 2))
        out.append((g * r).flatten(1).sum(1) / (norm * norm))
    return torch.stack(out).amax(0)


@torch.no_grad()
def rotation_log_probs(encoder, head, images_u8: torch.Tensor, batch: int = 128) -> np.ndarray:
    """(N, 3, S, S) uint8 → (N, 4, 4) float: row k the log-probabilities of the photo turned k·90°
    (the task's own deterministic test-time inputs), column j "turned j·90°"."""
    from ..tasks import get_task
    from ..runtime import as_float

    task = get_task(Rotation.name)
    gen = torch.Generator()
    gen.manual_seed(0)
    rows = []
    for i in range(0, len(images_u8), batch):
        x = as_float(images_u8[i : i + batch], False)
        inputs, _ = task.eval_batch(x, gen, torch.arange(i, i + len(x)))
        lp = task.forward(encoder, head, inputs).float().log_softmax(1)  # (4B, 4) in the order [all 0°, all 90°, ...]
        rows.append(lp.view(4, len(x), 4).transpose(0, 1).cpu().numpy())
    return np.concatenate(rows) if rows else np.zeros((0, 4, 4), np.float32)


def with_mirror_log_probs(log_probs: np.ndarray, log_probs_mirrored: np.ndarray) -> np.ndarray:
    """``log_probs`` (N, 4, 4) of each photo's four turns and ``log_probs_mirrored`` (N, 4, 4) of its
    mirror image's four turns (both from ``rotation_log_probs``) → (N, 4, 4) joint scores of each
    view with its own mirror image (``tasks.rotation.with_mirror_scores``). The mirror of the photo
    turned k·90° is the mirror image turned (−k)·90° (``tasks.rotation.turns_with_mirror_scores``)."""
    from ..tasks.rotation import turns_with_mirror_scores

    return turns_with_mirror_scores(torch.as_tensor(log_probs), torch.as_tensor(log_probs_mirrored)).numpy()


def four_view_estimate(log_probs: np.ndarray) -> np.ndarray:
    """(N, 4, 4) log-probabilities of each upright photo's four rotations → (N,) the turn the
    four-view judgement (``tasks.rotation.four_view_turn_scores``) gives the upright photo; 0 is right.
    Turning the input only shifts the answer by the same turn, so this one number per photo is
    its four-view result at every angle."""
    from ..tasks.rotation import four_view_turn_scores

    return four_view_turn_scores(torch.as_tensor(log_probs)).argmax(1).numpy()


def analyse(pred: np.ndarray, labels: np.ndarray, classes: list[str], similarity: np.ndarray, four_view: np.ndarray | None = None,
            mirror_pred: np.ndarray | None = None, eight_view: np.ndarray | None = None) -> dict[str, Any]:
    """``pred`` (N, 4) predicted angle index per true angle index, ``labels`` (N,) flower classes,
    ``similarity`` (N,), ``four_view`` (N,) the four-view estimate per photo (0 = right),
    ``mirror_pred`` (N, 4) like ``pred`` but judged from each view with its mirror image,
    ``eight_view`` (N,) like ``four_view`` from the four turns and their mirror images →
    confusion, per-class and per-similarity-quartile accuracy, one view, with its mirror, four views."""
    n = len(pred)
    fv = np.zeros(n, dtype=bool) if four_view is None else (np.asarray(four_view) == 0)
    truth = np.tile(np.arange(4), (n, 1))
    mv = np.zeros((n, 4), dtype=bool) if mirror_pred is None else (np.asarray(mirror_pred) == truth)

    def fv_acc(mask: np.ndarray) -> float | None:
        return float(fv[mask].mean()) if four_view is not None and mask.any() else None

    def mv_acc(mask: np.ndarray) -> float | None:
        return float(mv[mask].mean()) if mirror_pred is not None and mask.any() else None

    correct = pred == truth
    conf = np.zeros((4, 4), dtype=int)
    np.add.at(conf, (truth.ravel(), pred.ravel()), 1)
    wrong = ~correct
    offset = (pred - truth) % 4  # 1, 3: a quarter turn off; 2: upside down
    edges = np.quantile(similarity, [0.25, 0.5, 0.75]) if n else np.zeros(3)
    quart = np.searchsorted(edges, similarity, side="right")
    return {
        "n_photos": int(n),
        "accuracy": float(correct.mean()) if n else 0.0,
        "accuracy_four_view": fv_acc(np.ones(n, dtype=bool)),
        "accuracy_with_mirror": mv_acc(np.ones(n, dtype=bool)),
        "accuracy_eight_view": float((np.asarray(eight_view) == 0).mean()) if eight_view is not None and n else None,
        "accuracy_per_angle": {f"{a}°": float(correct[:, i].mean()) for i, a in enumerate(ANGLES)} if n else {},
        "confusion_true_by_predicted": conf.tolist(),
        "errors_quarter_turn": float(((offset == 1) | (offset == 3))[wrong].mean()) if wrong.any() else 0.0,
        "errors_half_turn": float((offset == 2)[wrong].mean()) if wrong.any() else 0.0,
        "photos_all_four_right": float(correct.all(1).mean()) if n else 0.0,
        "per_class": {c: {"n": int((labels == i).sum()), "accuracy": float(correct[labels == i].mean()) if (labels == i).any() else None,
                          "accuracy_four_view": fv_acc(labels == i), "accuracy_with_mirror": mv_acc(labels == i),
                          "median_self_similarity": float(np.median(similarity[labels == i])) if (labels == i).any() else None}
                      for i, c in enumerate(classes)},
        "by_self_similarity_quartile": [
            {"quartile": q + 1, "self_similarity_range": [float(similarity[quart == q].min()), float(similarity[quart == q].max())] if (quart == q).any() else None,
             "n": int((quart == q).sum()), "accuracy": float(correct[quart == q].mean()) if (quart == q).any() else None,
             "accuracy_four_view": fv_acc(quart == q), "accuracy_with_mirror": mv_acc(quart == q)}
            for q in range(4)
        ],
        "correlation_similarity_vs_photo_accuracy": float(np.corrcoef(similarity, correct.mean(1))[0, 1]) if n > 2 and correct.mean(1).std() > 0 else None,
    }


def score(encoder, head, data, idx: np.ndarray) -> dict[str, Any]:
    """``analyse`` of the rotation model (encoder, head) on the photos ``data.ds`` rows ``idx``: each
    photo in its four turns, one look, with its mirror image, and four (eight) views at once."""
    from ..tasks.rotation import mirror

    imgs = data.ds.images[torch.as_tensor(idx)]
    sim = self_similarity(imgs).numpy()
    lp = rotation_log_probs(encoder, head, imgs)
    both = with_mirror_log_probs(lp, rotation_log_probs(encoder, head, mirror(imgs)))
    return analyse(lp.argmax(2), data.ds.labels[idx], list(data.ds.classes), sim, four_view_estimate(lp),
                   mirror_pred=both.argmax(2), eight_view=four_view_estimate(both))


def model_image_size(model_dir: Path | None = None, run_dir: Path | None = None) -> int:
    """The side in px a rotation model folder (its model.json) or pretraining run (its checkpoint's
    recorded config) was trained at — the size its photos must be scored at. One-line ``UserError``
    when the file is missing or records none."""
    from ..train import CHECKPOINT_NAME

    if run_dir is not None:
        from ..checkpoint import load_checkpoint_model

        return int(load_checkpoint_model(Path(run_dir) / CHECKPOINT_NAME)[4])
    from ..model_files import read_card

    card = read_card(model_dir)  # its own one-line errors for a missing or unreadable card
    try:
        return int(card["input"]["image_size"])
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{Path(model_dir) / 'model.json'} records no input image size (input.image_size); re-export the model") from None


def _refuse_other_size(source: Path, image_size: int, data) -> None:
    """One-line ``UserError`` when ``data``'s photos are not at the size ``source`` was trained at."""
    if data.cfg.image_size != image_size:
        raise UserError(f"{source} was trained on {image_size}-px photos, these are {data.cfg.image_size} px; "
                        f"load the data with image_size={image_size} (`rotation-limits` does so itself)")


def _refuse_other_split(source: Path, recorded_sha256: str | None, data) -> None:
    """One-line ``UserError`` when ``source`` records a split other than ``data``'s."""
    if recorded_sha256 and recorded_sha256 != data.split_sha256:
        raise UserError(f"{source} was trained on another split (sha256 {recorded_sha256[:12]}, this data's is {data.split_sha256[:12]}); "
                        "its held-out photos may have been training photos — pass the --data/--split it was trained with")


def load_run_model(run_dir: Path, data) -> tuple[Any, Any, np.ndarray, dict[str, Any]]:
    """A rotation pretraining run's (encoder, head) in eval mode, the rows of ``data`` it held out
    (its validation photos for ``pretrain --holdout validation``, else the test split) and what the
    report says of it. Refuses another task, split or photo size in one line."""
    from ..data import validation_split
    from ..checkpoint import load_checkpoint_model
    from ..train import CHECKPOINT_NAME

    ckpt = Path(run_dir) / CHECKPOINT_NAME
    ck, task, encoder, head, image_size = load_checkpoint_model(ckpt)
    if task.name != Rotation.name:
        raise UserError(f"{ckpt} is a {task.name!r} run; pass a rotation run, e.g. --run runs/rotation")
    _refuse_other_split(ckpt, ck.meta.get("split_sha256"), data)
    _refuse_other_size(ckpt, image_size, data)
    holdout = ck.meta.get("holdout", "test")
    idx = validation_split(data)[1] if holdout == "validation" else data.test_idx
    info = dict(model=str(run_dir), weights="float32 (checkpoint)", epochs=int(ck.meta.get("epoch", -1)) + 1, holdout=holdout,
                split_sha256=data.split_sha256, image_size=image_size)
    return encoder.eval(), head.eval(), idx, info


def load_folder_model(model_dir: Path, data) -> tuple[Any, Any, np.ndarray, dict[str, Any]]:
    """``model_dir``'s rotation model as stored (files verified first), ``data``'s test rows and what
    the report says of it. Refuses a model of another task, or one trained on another split (its test
    photos may have been training photos) or at another photo size."""
    from ..model_files import load_model_weights, verify_model_dir

    card = verify_model_dir(model_dir)  # refuses altered files before any weight is read
    if card.get("task") != Rotation.name:
        raise UserError(f"{model_dir} holds a {card.get('task')!r} model; pass a rotation model, e.g. --model models/rotation")
    _refuse_other_split(model_dir, card.get("split_sha256"), data)
    _refuse_other_size(model_dir, int(card["input"]["image_size"]), data)
    encoder, head, _ = load_model_weights(model_dir, card)
    wfile = card.get("weights", {}).get("file")
    dtypes = card.get("weights", {}).get("storage_dtype")
    try:
        shown = model_dir.resolve().relative_to(Path.cwd())
    except ValueError:
        shown = model_dir
    info = dict(model=str(shown), weights=" + ".join(dtypes) if isinstance(dtypes, list) else dtypes, epochs=card.get("epochs"),
                split_sha256=data.split_sha256, image_size=data.cfg.image_size, recorded_pretext_test=card.get("pretext_test"),
                weights_sha256=card["files"].get(wfile) if wfile else None)  # the app shows this report only beside these weights
    return encoder, head, data.test_idx, info


def judge_sizes(encoder, head, idx: np.ndarray, sizes: list[int], load_data: Callable[[int], Any], like) -> list[dict[str, Any]]:
    """The model's judgement of the photos ``idx`` decoded at each side in ``sizes`` (px) instead of the
    size it was trained at: one look, with the mirror image, and four views, each as a share of views
    (of photos for four views). ``load_data(size)`` gives the data at that size; it must hold the very
    photos and split of ``like`` (the data at the trained size), else ``UserError``.

    A model trained on random crops sees a flower larger than the whole photo shows it, and judging the
    photo a little larger can undo that ("FixRes", Touvron et al. 2019); this measures whether it does."""
    rows = []
    for size in sizes:
        d = load_data(size)
        check_same_photos(d, like)
        r = score(encoder, head, d, idx)  # the full report's judgement, at this size
        rows.append({"judge_size": int(size)} | {k: r[k] for k in ("accuracy", "accuracy_with_mirror", "accuracy_four_view")})
    return rows


def judge_sizes_markdown(r: dict[str, Any], command: str) -> str:
    """``judge_sizes``' rows (in ``r["sizes"]``) as a short Markdown report."""
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    lines = [
        "# Rotation judged at other photo sizes",
        "",
        f"Made by `{command}` — model `{r['model']}` ({r['epochs']} epochs, {r['weights']} weights, trained at {r['image_size']} px), "
        f"{r['n_photos']} {r.get('holdout', 'test')} photos × 4 angles, each decoded at the size in the first column.",
        "",
        "| judged at | one look | with mirror | four views |",
        "|---:|---:|---:|---:|",
    ]
    for row in r["sizes"]:
        mark = " (trained)" if row["judge_size"] == r["image_size"] else ""
        lines.append(f"| {row['judge_size']} px{mark} | {pct(row['accuracy'])} | {pct(row['accuracy_with_mirror'])} | {pct(row['accuracy_four_view'])} |")
    lines += ["", "One look and with mirror: shares of views; four views: share of photos put upright.", ""]
    return "\n".join(lines)


def to_markdown(r: dict[str, Any], command: str) -> str:
    """The analysis as a short Markdown report."""
    pct = lambda v: "–" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    lines = [
        "# What limits rotation prediction on these photos",
        "",
        f"Made by `{command}` — model `{r['model']}` ({r['epochs']} epochs, {r['weights']} weights"
        f"{', %d px' % r['image_size'] if r.get('image_size') else ''}), "
        f"{r['n_photos']} {r.get('holdout', 'test')} photos × 4 angles.",
        "",
        f"Pretext accuracy **{pct(r['accuracy'])}**; all four angles right for {pct(r['photos_all_four_right'])} of photos. "
        f"Of the mistakes, {pct(r['errors_quarter_turn'])} are a quarter turn off and {pct(r['errors_half_turn'])} upside down.",
        "",
        *([f"Judged from all four turns of a photo at once (which of the four views is upright? — "
           f"`ssl_train.tasks.rotation.four_view_turn_scores`, what the app's auto-upright does): **{pct(r['accuracy_four_view'])}** "
           "of photos put upright, at every input angle alike.", ""] if r.get("accuracy_four_view") is not None else []),
        *([f"Judged from one view and its mirror image together (a mirrored upright flower is still upright — "
           f"`ssl_train.tasks.rotation.with_mirror_scores`, what the app's rotation page shows): **{pct(r['accuracy_with_mirror'])}** "
           f"of views; from all four turns and their mirror images at once: {pct(r.get('accuracy_eight_view'))} of photos put upright.", ""]
          if r.get("accuracy_with_mirror") is not None else []),
        "| true \\ predicted | " + " | ".join(f"{a}°" for a in ANGLES) + " |",
        "|---|" + "---:|" * 4,
    ]
    for i, row in enumerate(r["confusion_true_by_predicted"]):
        lines.append(f"| {ANGLES[i]}° | " + " | ".join(str(v) for v in row) + " |")
    lines += ["", "| class | photos | pretext accuracy | with mirror | four views | median self-similarity |", "|---|---:|---:|---:|---:|---:|"]
    for c, v in r["per_class"].items():
        med = "–" if v["median_self_similarity"] is None else f"{v['median_self_similarity']:.2f}"
        lines.append(f"| {c} | {v['n']} | {pct(v['accuracy'])} | {pct(v.get('accuracy_with_mirror'))} | {pct(v.get('accuracy_four_view'))} | {med} |")
    lines += ["", "| self-similarity quartile | range | photos | pretext accuracy | with mirror | four views |", "|---|---|---:|---:|---:|---:|"]
    for q in r["by_self_similarity_quartile"]:
        rng = "–" if q["self_similarity_range"] is None else f"{q['self_similarity_range'][0]:.2f} – {q['self_similarity_range'][1]:.2f}"
        lines.append(f"| {q['quartile']} | {rng} | {q['n']} | {pct(q['accuracy'])} | {pct(q.get('accuracy_with_mirror'))} | {pct(q.get('accuracy_four_view'))} |")
    c = r.get("correlation_similarity_vs_photo_accuracy")
    lines += ["", "Self-similarity: the larger Pearson correlation of a photo's grey pixels with itself turned by 90° or 180° "
              "(1: the pixels carry no angle)." + ("" if c is None else f" Its correlation with a photo's share of right angles: {c:+.2f}."), ""]
    return "\n".join(lines)


def write(r: dict[str, Any], out_dir: Path, command: str, stem: str = "rotation-limits",
          markdown: Callable[[dict[str, Any], str], str] | None = None) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    js.write_text(json.dumps(portable(r | {"command": command}), indent=1) + "\n")
    md.write_text((markdown or to_markdown)(r, command))
    return js, md
