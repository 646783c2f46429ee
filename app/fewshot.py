"""Few-shot lab compute: a linear probe on cached features, and fine-tuning in a background thread.

Both use the protocol's own pieces so the app and the report agree: the labelled subset is
``ssl_train.data.labelled_subset`` (same seed → same photos as the protocol), scores are
``ssl_train.evaluate.scores`` and fine-tuning is ``ssl_train.evaluate.finetune`` with its
``on_step`` callback (progress and the stop button). Results are plain objects the page keeps in
its own session state: nothing here is shared between two people.

The linear probe differs from the protocol's in one declared way: C is fixed at 1.0 (scikit-learn's
default, the protocol's value when cross-validation is impossible) instead of chosen by 3-fold CV
over four values, so it answers in well under a second even at 100% of the labels.
"""
from __future__ import annotations

import io
import threading
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

PROBE_C = 1.0
PROTOCOL_PERCENTS = (1, 5, 10, 25, 50, 100)  # = ssl_train.data.FRACTIONS × 100: where the reference curve has points
OTHER = "other"  # the fraction picker's "any other percent" choice
EVAL_CHUNK = 64  # test photos per forward pass when scoring a fine-tuned model
MAX_KEPT = 8  # trained models a session keeps (oldest dropped first)
_TRAIN_LOCK = threading.Lock()  # one fine-tune at a time on this server: the CPU has few cores
# When is a fine-tune's browser session over? (a closed tab used to train on for 10 minutes)
# 1. Streamlit's runtime knows: ``Runtime.is_active_session(session_id)`` turns False as soon as the
#    tab's websocket closes (tab closed, browser quit, navigated away). A dropped connection that comes
#    back (Wi-Fi blip, server-side reconnect) makes the same session active again, so the job stops only
#    after SESSION_GONE_AFTER seconds of continuous absence: a closed tab stops within ~10 s.
# 2. A heartbeat backstop: the page's polling fragment (every 2 s) refreshes ``last_seen``; with no
#    runtime to ask (AppTest, bare mode) or a session the runtime still lists but that has stopped
#    polling, the job stops after HEARTBEAT_TIMEOUT seconds. It is not 10 s because browsers throttle
#    hidden tabs' timers (Chrome: one wake-up a minute after 5 minutes hidden), so a person who switched
#    tabs while waiting would lose their fine-tune; the websocket of a hidden tab stays open, so (1) is
#    the fast path and is not fooled by throttling.
SESSION_GONE_AFTER = 10.0  # s the runtime must report the session gone before the job stops
HEARTBEAT_TIMEOUT = 150.0  # s without a poll from the page before the job stops (> Chrome's 60 s hidden-tab cadence, twice)
QUEUE_POLL = 0.5  # s between checks while waiting for another fine-tune (so a queued job of a closed tab leaves the queue)


@dataclass(eq=False)  # compared by identity: fields hold arrays and models
class Trained:
    """One classifier trained in this session, with its test-split scores."""

    mode: str  # "linear" | "finetune"
    encoder: str  # model name, or "scratch"
    fraction: float
    seed: int
    n_labelled: int
    classes: list[str]
    scores: dict[str, Any]  # test_accuracy, per_class_accuracy, confusion (ssl_train.evaluate.scores)
    test_files: list[str]
    test_true: np.ndarray
    test_pred: np.ndarray
    classifier: Any  # sklearn pipeline (linear) or ssl_train.evaluate.Classifier (finetune)
    feature_model: str | None = None  # linear: the model whose features it reads
    image_size: int = 96
    info: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)

    @property
    def accuracy(self) -> float:
        return float(self.scores["test_accuracy"])

    @property
    def title(self) -> str:
        how = "linear probe" if self.mode == "linear" else "fine-tune"
        return f"{self.encoder} · {how} · {self.fraction:.0%} labels · seed {self.seed}"


def chosen_percent(pick: int | str | None, other: int | float | None) -> int:
    """The labelled percent (1–100) from the fraction picker (a protocol percent, or OTHER) and the
    "other" number input; a missing or out-of-range value falls back to 10 / is clamped to 1–100."""
    value = other if pick == OTHER else pick
    try:
        return int(min(100, max(1, round(float(value)))))
    except (TypeError, ValueError):
        return 10


def labelled(train_idx: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    from ssl_train.data import labelled_subset

    return labelled_subset(train_idx, labels, fraction, seed)


# -- linear probe ------------------------------------------------------------------------------------
def linear_probe(layout, fraction: float, seed: int, encoder: str | None = None, C: float = PROBE_C) -> Trained:
    """Standardised features → logistic regression (C fixed in advance) on the labelled subset,
    scored on the test split. ``layout`` is an ``app.embedding.Layout`` (cached features)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    from ssl_train.evaluate import scores

    t0 = time.time()
    sub = labelled(layout.train_idx, layout.labels, fraction, seed)
    te = layout.test_idx
    x, y = layout.features, layout.labels
    # one BLAS thread: on a busy 2-core machine, threaded BLAS makes this 50× slower, not faster
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=500)).fit(x[sub], y[sub])
        pred = clf.predict(x[te])
    return Trained(
        mode="linear", encoder=encoder or layout.model, fraction=fraction, seed=seed, n_labelled=int(len(sub)),
        classes=list(layout.classes), scores=scores(pred, y[te], len(layout.classes)), test_files=[str(f) for f in layout.files[te]],
        test_true=y[te], test_pred=np.asarray(pred), classifier=clf, feature_model=layout.model,
        info={"C": C, "seconds": round(time.time() - t0, 3)},
    )


# -- fine-tuning ------------------------------------------------------------------------------------
def finetune_config(quick: bool):
    """The protocol's schedule (``FinetuneConfig()``: 30 epochs, at least 100 steps: 1320 for every
    training label here, ~2.5 min on 2 cores), or the quick one (same, clamped to 60–150 steps) for
    large fractions on a slow CPU."""
    from ssl_train.evaluate import FinetuneConfig

    return FinetuneConfig(min_steps=60, max_steps=150) if quick else FinetuneConfig()


def card_learning_rates(card: dict) -> tuple[float | None, float | None]:
    """(this encoder's, scratch's) fine-tuning learning rate from a model card's ``metrics.finetune_lr``
    (written by ``python -m ssl_train release``: the rates the report's numbers were made with),
    or None where the card has none."""
    lrs = ((card.get("metrics") or {}).get("finetune_lr") or {})

    def ok(v: Any) -> float | None:
        return float(v) if isinstance(v, (int, float)) and v > 0 else None

    return ok(lrs.get("lr")), ok(lrs.get("scratch_lr"))


def finetune_image_size(card: dict) -> int:
    """The photo size, px, the lab fine-tunes ``card``'s encoder and scratch at: the protocol's downstream
    size (``metrics.downstream_image_size``, written by ``release``), so the live result sits on the
    reference curve, even for an encoder pretrained on larger photos (rotation: 128 px, judged downstream
    at 96 like every arm); the encoder's own input size where the card has none."""
    own = int(card["input"]["image_size"])
    v = (card.get("metrics") or {}).get("downstream_image_size")
    return int(v) if isinstance(v, int) and v >= 16 else own


def arm_config(cfg, card: dict, arm: str):
    """``cfg`` (a ``FinetuneConfig``) with the learning rate ``card`` records for ``arm`` ("scratch" or
    the encoder), so the lab fine-tunes each arm as the report did; ``cfg`` itself where the card has none."""
    own, scratch_lr = card_learning_rates(card)
    lr = scratch_lr if arm == "scratch" else own
    return replace(cfg, lr=lr) if lr else cfg


class FinetuneJob:
    """Fine-tunes the chosen encoder and then scratch on the same labelled photos, in a thread.

    The page polls ``snapshot()``; ``stop()`` makes ``finetune``'s ``on_step`` return True, the
    model trained so far is scored and kept, and remaining phases are skipped. A job whose browser
    session has ended (``session_alive`` False for SESSION_GONE_AFTER s, or no ``heartbeat`` for
    ``heartbeat_timeout`` s) stops itself, is marked ``abandoned`` and is not scored: nobody will see it.

    ``session_alive``: a callable saying whether the page's session is still connected (from
    ``session_probe()``), or None where there is no Streamlit runtime (the heartbeat alone then decides).
    """

    def __init__(self, *, model_dir: Path | None, card: dict, data, fraction: float, seed: int, cfg, with_scratch: bool = True, encoder_name: str = "",
                 session_alive: Callable[[], bool] | None = None, heartbeat_timeout: float = HEARTBEAT_TIMEOUT,
                 session_grace: float = SESSION_GONE_AFTER) -> None:
        self.model_dir = Path(model_dir) if model_dir else None
        self.card = card
        self.data = data  # ssl_train.data.SplitData at the encoder's input size
        self.fraction, self.seed, self.cfg = float(fraction), int(seed), cfg
        self.phases = ([encoder_name or card.get("name") or "encoder"] if self.model_dir else []) + (["scratch"] if with_scratch or not self.model_dir else [])
        self.state = "queued"  # queued → waiting → running → done | stopped | error
        self.phase = 0
        self.step = 0
        self.total = cfg.steps_for(len(self._subset()))
        self.losses: dict[str, list[float]] = {p: [] for p in self.phases}
        self.results: list[Trained] = []
        self.error: str | None = None
        self.started = time.time()  # created (queued): the queue wait counts from here
        self.train_started: float | None = None  # s since epoch: got the trainer (end of the queue wait); ETA counts from here
        self.finished: float | None = None
        self.last_seen = time.time()  # s since epoch: updated by heartbeat()/snapshot(), i.e. by the page polling
        self.session_alive = session_alive
        self.heartbeat_timeout, self.session_grace = float(heartbeat_timeout), float(session_grace)
        self._gone_since: float | None = None  # s since epoch the runtime first said the session was gone
        self.abandoned = False
        self.abandon_reason = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pretext-lab-finetune", daemon=True)

    def _subset(self) -> np.ndarray:
        return labelled(self.data.train_idx, np.asarray(self.data.ds.labels), self.fraction, self.seed)

    def start(self) -> "FinetuneJob":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    @property
    def running(self) -> bool:
        return self.state in ("queued", "waiting", "running")

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def heartbeat(self) -> None:
        """The page is still looking (called by its polling fragment every 2 s)."""
        self.last_seen = time.time()

    def snapshot(self) -> dict[str, Any]:
        """Progress for the page (and a heartbeat). ``elapsed``/``eta`` are seconds of training, counted
        from ``train_started`` (None while queued: no estimate then); ``waited`` the queue wait, s."""
        self.heartbeat()
        now = self.finished or time.time()
        elapsed = None if self.train_started is None else now - self.train_started
        return {
            "state": self.state, "phase": self.phases[min(self.phase, len(self.phases) - 1)], "phase_index": self.phase,
            "phases": list(self.phases), "step": self.step, "total": self.total, "losses": {k: list(v) for k, v in self.losses.items()},
            "elapsed": elapsed, "waited": (self.train_started or now) - self.started,
            "eta": eta_seconds(elapsed, self.phase, len(self.phases), self.step, self.total), "error": self.error,
        }

    def check_session(self, now: float | None = None) -> bool:
        """True (and the job is told to stop, ``abandoned``) when its browser session has ended: the
        runtime has said "gone" for ``session_grace`` s in a row, or no heartbeat for ``heartbeat_timeout`` s."""
        now = time.time() if now is None else now
        if self.session_alive is not None:
            try:
                alive = bool(self.session_alive())
            except Exception:  # noqa: BLE001 — a probe that breaks (runtime shutting down) counts as gone
                alive = False
            self._gone_since = None if alive else (self._gone_since or now)
            if self._gone_since is not None and now - self._gone_since >= self.session_grace:
                return self._abandon(f"its browser session ended {now - self._gone_since:.0f} s ago")
        if now - self.last_seen > self.heartbeat_timeout:
            return self._abandon(f"the page has not asked for progress for {now - self.last_seen:.0f} s")
        return False

    def _abandon(self, reason: str) -> bool:
        if not self.abandoned:
            self.abandoned, self.abandon_reason = True, reason
            print(f"[pretext-lab] fine-tune {'/'.join(self.phases)} at {self.fraction:.0%} stopped at step {self.step}: {reason}",
                  file=sys.stderr, flush=True)  # the server log says why a job ended (the browser test reads it)
        self._stop.set()
        return True

    def _on_step(self, step: int, total: int, loss: float) -> bool:
        self.step, self.total = step, total
        self.losses[self.phases[self.phase]].append(float(loss))
        self.check_session()
        return self._stop.is_set()

    def _run(self) -> None:
        try:
            self.state = "waiting"
            # poll the lock instead of blocking on it: a queued job whose tab was closed leaves the queue
            while not _TRAIN_LOCK.acquire(timeout=QUEUE_POLL):
                if self._stop.is_set() or self.check_session():
                    self.state = "stopped"
                    return
            try:
                if self._stop.is_set():
                    self.state = "stopped"
                    return
                self.train_started = time.time()
                self.state = "running"
                self._train_all()
            finally:
                _TRAIN_LOCK.release()
            self.state = "stopped" if self._stop.is_set() else "done"
        except Exception as e:  # noqa: BLE001 — shown on the page, never raised into Streamlit
            self.error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            self.state = "error"
            traceback.print_exc()
        finally:
            self.finished = time.time()

    def _train_all(self) -> None:
        from ssl_train.encoders import EncoderConfig
        from ssl_train.evaluate import finetune, predict, scores
        from ssl_train.runtime import resolve_device

        enc_cfg = EncoderConfig.from_dict(self.card["encoder"])
        ds = self.data.ds
        labels = np.asarray(ds.labels)
        sub, te = self._subset(), self.data.test_idx
        n_classes = len(ds.classes)
        for i, name in enumerate(self.phases):
            self.phase, self.step = i, 0
            state = None
            if name != "scratch":
                from ssl_train.model_files import load_model_weights

                encoder, _, _ = load_model_weights(self.model_dir, self.card)
                state = encoder.state_dict()
            cfg = arm_config(self.cfg, self.card, "scratch" if name == "scratch" else "encoder")
            t0 = time.time()
            model, log = finetune(state, enc_cfg, ds.images[sub], labels[sub], n_classes, cfg, self.seed, on_step=self._on_step)
            if self.abandoned:
                break  # nobody is looking: scoring the test photos would only keep the CPU busy
            t1 = time.time()
            dev = resolve_device(self.cfg.device)
            # in chunks: predict's default batch of 256 photos at 96 px peaks at about 1 GB of activations
            probs = np.concatenate([predict(model, ds.images[te[i : i + EVAL_CHUNK]], dev) for i in range(0, len(te), EVAL_CHUNK)])
            pred = probs.argmax(1)
            model.to("cpu")
            self.results.append(Trained(
                mode="finetune", encoder=name, fraction=self.fraction, seed=self.seed, n_labelled=int(len(sub)), classes=list(ds.classes),
                scores=scores(pred, labels[te], n_classes), test_files=[ds.files[j] for j in te], test_true=labels[te], test_pred=pred,
                classifier=model, image_size=int(ds.images.shape[-1]),
                info={**log, "train_seconds": round(t1 - t0, 1), "eval_seconds": round(time.time() - t1, 1), "schedule": cfg.to_dict()},
            ))
            if self._stop.is_set():
                break


def session_probe() -> Callable[[], bool] | None:
    """A callable telling whether the calling script's browser session is still connected, for
    ``FinetuneJob(session_alive=...)``; None outside a ``streamlit run`` server (AppTest, bare mode).
    Must be called on the script thread (it reads the script-run context); the callable may run on any
    thread (``Runtime.is_active_session`` is thread-safe)."""
    try:
        from streamlit.runtime import Runtime
        from streamlit.runtime.scriptrunner import get_script_run_ctx
    except ImportError:
        return None
    ctx = get_script_run_ctx()
    if ctx is None or not Runtime.exists():
        return None
    runtime, session_id = Runtime.instance(), ctx.session_id
    if not runtime.is_active_session(session_id):  # AppTest gives a context but no session of this runtime
        return None
    return lambda: runtime.is_active_session(session_id)


def eta_seconds(elapsed: float | None, phase: int, n_phases: int, step: int, total: int, min_steps: int = 5) -> float | None:
    """Seconds left for a job in phase ``phase`` (0-based) of ``n_phases``, at ``step`` of ``total`` steps
    per phase, after ``elapsed`` seconds of training (None: still queued → no estimate). None too before
    ``min_steps`` steps: earlier estimates are mostly start-up time (imports, loading the encoder)."""
    done = phase * total + step
    if elapsed is None or done < min_steps or total <= 0:
        return None
    return max(0.0, elapsed / done * (n_phases * total - done))


# -- using a trained model -----------------------------------------------------------------------------
def classify(trained: Trained, images: list, onnx_model=None) -> np.ndarray:
    """Class probabilities (n, classes) for RGB photos with a classifier of this session. A linear
    probe reads features from ``onnx_model`` (its ``feature_model``)."""
    from ssl_train.images import square_resize, to_uint8_chw

    if not images:
        return np.zeros((0, len(trained.classes)), np.float32)
    if trained.mode == "linear":
        if onnx_model is None:
            raise ValueError(f"the linear probe on {trained.feature_model} needs that model's features")
        feats = onnx_model.features(np.stack([onnx_model.prepare(im) for im in images]))
        return trained.classifier.predict_proba(feats)
    import torch

    from ssl_train.evaluate import predict

    u8 = np.stack([to_uint8_chw(square_resize(im, trained.image_size)) for im in images])
    return predict(trained.classifier, torch.from_numpy(u8), torch.device("cpu"))


def results_csv(results: list[Trained]) -> bytes:
    """One row per trained model: settings and test accuracy (overall and per class)."""
    import pandas as pd

    rows = []
    for r in results:
        row = {"encoder": r.encoder, "mode": r.mode, "labelled_fraction": r.fraction, "seed": r.seed, "n_labelled": r.n_labelled, "test_accuracy": round(r.accuracy, 4)}
        row.update({f"accuracy_{c}": round(a, 4) for c, a in zip(r.classes, r.scores["per_class_accuracy"])})
        row.update({k: r.info.get(k) for k in ("C", "steps", "planned_steps", "stopped_early", "train_seconds")})
        rows.append(row)
    buf = io.StringIO()
    pd.DataFrame(rows).to_csv(buf, index=False)
    return buf.getvalue().encode()


def predictions_csv(results: list[Trained], uploads: list[tuple[str, np.ndarray]] | None = None) -> bytes:
    """Per-photo predictions of each model on the test split (and on uploaded photos: name, probs
    per model in ``uploads``, aligned with ``results``)."""
    import pandas as pd

    rows = []
    for r in results:
        for f, t, p in zip(r.test_files, r.test_true, r.test_pred):
            rows.append({"model": r.title, "photo": f, "split": "test", "true_class": r.classes[int(t)], "predicted": r.classes[int(p)], "correct": bool(t == p)})
    for name, probs_per_model in uploads or []:
        for r, probs in zip(results, probs_per_model):
            rows.append({"model": r.title, "photo": name, "split": "upload", "true_class": "", "predicted": r.classes[int(np.argmax(probs))], "correct": "",
                         "confidence": round(float(np.max(probs)), 4)})
    buf = io.StringIO()
    pd.DataFrame(rows).to_csv(buf, index=False)
    return buf.getvalue().encode()
