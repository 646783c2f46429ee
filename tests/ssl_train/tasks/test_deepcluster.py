"""DeepCluster: k-means, empty-cluster re-seeding, balanced weights, epoch start, k > N refusal."""
from __future__ import annotations

import pytest
import torch

from ssl_train.encoders import EncoderConfig, build_encoder
from ssl_train.errors import UserError
from ssl_train.tasks import get_task
from ssl_train.tasks.base import EncoderInfo, EpochContext
from ssl_train.tasks.deepcluster import balanced_weights, kmeans, match_ids, pca_whiten, reseed_empty, whiten
from ssl_train.train import embed_images


def _blobs(g, per=10):
    centres = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    return torch.cat([c + 0.05 * torch.randn(per, 2, generator=g) for c in centres])


def test_deepcluster__kmeans_finds_separated_blobs_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    x = _blobs(g)
    c1, l1, _ = kmeans(x, 3, torch.Generator().manual_seed(1))
    c2, l2, _ = kmeans(x, 3, torch.Generator().manual_seed(1))
    assert torch.equal(l1, l2) and torch.equal(c1, c2)
    for b in range(3):  # every blob is one cluster
        assert len(set(l1[b * 10 : (b + 1) * 10].tolist())) == 1
    assert len(set(l1.tolist())) == 3


def test_deepcluster__empty_cluster_reseeded():
    g = torch.Generator().manual_seed(0)
    x = _blobs(g)
    # a centroid far from everything gets no point in the first assignment
    init = torch.tensor([[1.0, 0.0], [-0.1, 0.6], [9.0, 9.0]])
    c, labels, reseeded = kmeans(x, 3, g, n_iter=10, init=init)
    assert reseeded >= 1
    assert (torch.bincount(labels, minlength=3) > 0).all()
    # the rule itself: the empty cluster becomes a slightly perturbed copy of a populated one
    cents = torch.tensor([[1.0, 2.0], [5.0, 5.0], [3.0, 3.0]])
    new, counts, n_empty = reseed_empty(cents, torch.tensor([8, 0, 1]), torch.Generator().manual_seed(0))
    assert n_empty == 1 and counts.tolist() == [4, 4, 1]
    assert torch.allclose(new[1], cents[0], rtol=2e-3) and not torch.equal(new[1], new[0])
    assert torch.equal(new[2], cents[2])


def test_deepcluster__weights_make_clusters_equally_heavy():
    labels = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 2, 2])
    w = balanced_weights(labels, 4)  # cluster 3 is empty
    assert torch.allclose(w.mean(), torch.tensor(1.0))
    per_cluster = torch.zeros(4).index_add_(0, labels, w)
    assert torch.allclose(per_cluster[:3], per_cluster[0].expand(3)) and per_cluster[3] == 0


def test_deepcluster__pca_whitening_gives_unit_variance():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 8, generator=g) * torch.tensor([10.0, 5, 2, 1, 1, 1, 0.5, 0.1])
    mean, proj = pca_whiten(x, 4)
    z = (x - mean) @ proj
    assert torch.allclose(z.var(0), torch.ones(4), atol=1e-3)
    assert torch.allclose(whiten(x, mean, proj).norm(dim=1), torch.ones(500), atol=1e-5)
    _, proj_big = pca_whiten(x[:3], 4)  # rank 2: the extra axes are zero columns
    assert proj_big[:, 2:].abs().sum() == 0


def _ctx(epoch, imgs, enc, head, seed=0):
    return EpochContext(epoch, imgs, lambda u: embed_images(enc, u, channels_last=False), torch.Generator().manual_seed(seed), head)


def test_match_ids__recovers_a_renumbering_and_agrees_most_when_clusters_changed():
    old = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3, 3])
    perm_true = torch.tensor([2, 0, 3, 1])  # new id j was old id perm_true[j]
    inverse = torch.argsort(perm_true)
    new = inverse[old]
    assert torch.equal(match_ids(new, old, 4), perm_true)
    assert torch.equal(match_ids(new, old, 4)[new], old)
    # two photos moved cluster: the renumbering still maps every cluster to its old id
    moved = new.clone()
    moved[0], moved[5] = new[3], new[8]
    perm = match_ids(moved, old, 4)
    assert sorted(perm.tolist()) == [0, 1, 2, 3] and int((perm[moved] == old).sum()) == 8


def test_deepcluster__epoch_start_keeps_the_classifier_and_carries_cluster_ids_over(monkeypatch):
    from ssl_train.tasks import deepcluster

    torch.manual_seed(0)
    enc = build_encoder(EncoderConfig(widths=(8, 16, 16, 32), blocks=(1, 1, 1, 1)))
    task = get_task("deepcluster", {"k": "4"})
    head = task.build_head(EncoderInfo(32, (8, 16, 16, 32), 32, 32))
    imgs = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(16) % 4
    centroids = torch.eye(4, 32)  # (k, whitened dims)
    renumber = torch.tensor([3, 0, 1, 2])  # the second clustering: the same partition, ids drawn afresh
    results = iter([(centroids, labels, 0), (centroids[torch.argsort(renumber)], renumber[labels], 0)])
    monkeypatch.setattr(deepcluster, "kmeans", lambda *a, **k: next(results))
    task.on_epoch_start(_ctx(0, imgs, enc, head))
    with torch.no_grad():
        head.classifier.weight.add_(1.0)
    learnt = head.classifier.weight.clone()
    reset = []
    ctx = _ctx(1, imgs, enc, head, seed=5)
    ctx.reset_optimizer_state = lambda params: reset.append(list(params))
    task.on_epoch_start(ctx)
    assert torch.equal(head.classifier.weight, learnt) and not reset  # what it learnt is kept
    assert torch.equal(head.labels, labels)  # every photo keeps its id
    assert torch.equal(head.centroids, centroids)  # and every centroid moved with its id


def test_deepcluster__epoch_start_labels_and_reinitialises_classifier():
    torch.manual_seed(0)
    enc = build_encoder(EncoderConfig(widths=(8, 16, 16, 32), blocks=(1, 1, 1, 1)))
    task = get_task("deepcluster", {"k": "4", "match_clusters": "false"})  # the paper's rule
    head = task.build_head(EncoderInfo(32, (8, 16, 16, 32), 32, 32))
    imgs = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    w_param = head.classifier.weight
    task.on_epoch_start(_ctx(0, imgs, enc, head))
    assert head.labels.shape == (16,) and head.labels.max() < 4 and (torch.bincount(head.labels, minlength=4) > 0).all()
    assert torch.allclose(head.weights.mean(), torch.tensor(1.0))
    assert head.classifier.weight is w_param and head.classifier.bias.abs().sum() == 0  # in place: optimizer still holds it
    first = head.classifier.weight.clone()
    with torch.no_grad():
        head.classifier.weight.add_(1.0)
    task.on_epoch_start(_ctx(1, imgs, enc, head, seed=1))
    assert head.classifier.weight.abs().max() < 0.1 and not torch.equal(head.classifier.weight, first)
    # a fresh head loads the trained one (per-photo buffers are resized on load)
    fresh = task.build_head(EncoderInfo(32, (8, 16, 16, 32), 32, 32))
    fresh.load_state_dict(head.state_dict())
    assert torch.equal(fresh.labels, head.labels)
    # held-out photos: target = nearest centroid, computed by the head
    inputs, targets = task.eval_batch(imgs[:4].float() / 255, torch.Generator(), torch.arange(4))
    enc.eval()
    fresh.eval()
    out = task.forward(enc, fresh, inputs)
    assert "labels" not in out and out["assigned"].shape == (4,) and torch.isfinite(task.loss(out, targets))


def test_deepcluster__reinitialised_classifier_loses_its_optimizer_momentum():
    torch.manual_seed(0)
    enc = build_encoder(EncoderConfig(widths=(8, 16, 16, 32), blocks=(1, 1, 1, 1)))
    task = get_task("deepcluster", {"k": "4", "match_clusters": "false"})
    head = task.build_head(EncoderInfo(32, (8, 16, 16, 32), 32, 32))
    imgs = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    opt = torch.optim.SGD(head.parameters(), lr=0.1, momentum=0.9)
    task.on_epoch_start(_ctx(0, imgs, enc, head))
    head.classifier.weight.sum().backward()
    opt.step()
    assert head.classifier.weight in opt.state
    ctx = _ctx(1, imgs, enc, head, seed=1)
    ctx.reset_optimizer_state = lambda params: [opt.state.pop(p, None) for p in params]
    task.on_epoch_start(ctx)
    assert head.classifier.weight not in opt.state and head.classifier.bias not in opt.state


def test_deepcluster__more_clusters_than_photos_is_a_user_error():
    enc = build_encoder(EncoderConfig(widths=(8, 16, 16, 32), blocks=(1, 1, 1, 1)))
    task = get_task("deepcluster")  # k = 50
    head = task.build_head(EncoderInfo(32, (8, 16, 16, 32), 32, 32))
    with pytest.raises(UserError, match="k=50 is more than the 10 training photos"):
        task.on_epoch_start(_ctx(0, torch.zeros(10, 3, 32, 32, dtype=torch.uint8), enc, head))
    with pytest.raises(UserError, match="k=1"):
        get_task("deepcluster", {"k": "1"}).config.validate(96)
