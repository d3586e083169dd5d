"Ensembles: combination methods, training several members, snapshot, SWA, soups, distillation and ECE, on the tiny backbone."
import json, shutil
from functools import partial
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from fastai.callback.core import Callback
from fastai.losses import CrossEntropyLossFlat
from fmcombo.data import fm_dls, sample_per_class
from fmcombo.learner import fm_learner
from fmcombo.ensemble import (Ensemble, METHODS, train_ensemble, SnapshotEnsemble, SWA, soup, Distill, ece,
                              reliability_diagram, learner_like, transfer_set)

def _train(tiny, few, seed, epochs=1, cbs=None, **kw):
    learn = fm_learner(fm_dls(few, backbone=tiny, bs=8, seed=seed), cbs=cbs, **kw)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, 1e-2)
    return learn

@pytest.fixture(scope='module')
def members(tiny, few):
    return [_train(tiny, few, s) for s in range(3)]

@pytest.fixture(scope='module')
def valid(bbc):
    return sample_per_class(bbc['train'], 4, seed=1)

@pytest.fixture(scope='module')
def texts(bbc):
    return bbc['test']['text'][:24]

def test_mean_of_identical_members_is_the_member(members, texts):
    P = members[0].predict_texts(texts)[1]
    for m in ('mean_probs', 'mean_logits', 'vote'):
        np.testing.assert_allclose(Ensemble([members[0]]*3, m).predict_texts(texts)[1].argmax(1), P.argmax(1))
    np.testing.assert_allclose(Ensemble([members[0]]*3).predict_texts(texts)[1], P, atol=1e-6)

def test_mean_probs_is_the_mean_of_member_probs(members, texts):
    mean = np.mean([m.predict_texts(texts)[1] for m in members], 0)
    np.testing.assert_allclose(Ensemble(members).predict_texts(texts)[1], mean, atol=1e-5)
    L = Ensemble(members).member_logits(texts)
    np.testing.assert_allclose(Ensemble(members, 'mean_logits').combine(L).numpy(), L.mean(0).softmax(-1).numpy(), atol=1e-6)

def test_vote_counts_and_breaks_ties_by_mean_probability(members):
    e = Ensemble(members, 'vote')
    L = torch.tensor([[[3., 0, 0]], [[0, 3., 0]], [[2.9, 0, 0]]])   # votes: class 0 twice
    assert e.combine(L).argmax(-1).item() == 0
    L = torch.tensor([[[3., 0, 0]], [[0, 5., 0]]])                    # a tie: class 1 has the larger mean probability
    assert e.combine(L).argmax(-1).item() == 1
    torch.testing.assert_close(e.combine(L).sum(-1), torch.ones(1))

def test_weighted_and_stacking_fit_on_valid(members, valid, bbc):
    test = bbc['test'].select(range(40))
    w = Ensemble(members, 'weighted', valid=valid).weights
    assert (w >= 0).all() and abs(w.sum() - 1) < 1e-6
    st = Ensemble(members, 'stacking', valid=valid)
    assert st.stacker.coef_.shape == (5, 15)    # classes x (members * classes)
    P = st.predict_texts(test['text'])[1]
    np.testing.assert_allclose(P.sum(1), 1, atol=1e-5)
    for m in ('weighted', 'stacking'):
        with pytest.raises(ValueError, match='pass valid='): Ensemble(members, m)

def test_evaluate_reports_metrics_members_and_disagreement(members, bbc):
    test = bbc['test'].select(range(40))
    r = Ensemble(members).evaluate(test)
    assert set(r) == {'accuracy', 'macro_f1', 'log_loss', 'ece', 'member_accuracy', 'disagreement'}
    y = np.array(test['label'])
    assert r['member_accuracy'] == [pytest.approx(float((m.predict_texts(test['text'])[1].argmax(1) == y).mean())) for m in members]
    assert Ensemble([members[0]]*2).evaluate(test)['disagreement'] == 0

def test_different_labels_are_refused_by_name(members, tiny, few):
    other = fm_learner(fm_dls(few.filter(lambda r: r['label'] != 4), backbone=tiny, bs=8, seed=0))
    with pytest.raises(ValueError, match=r"only in member 0: \['tech'\]"): Ensemble([members[0], other])
    with pytest.raises(ValueError, match='method must be one of'): Ensemble(members, 'median')
    with pytest.raises(TypeError, match='member 1 must be'): Ensemble([members[0], 3])

def test_label_order_is_aligned(members, tiny, few, texts):
    from fastai.data.transforms import CategoryMap
    m = members[0]
    perm = [4, 0, 1, 2, 3]                                     # the flipped learner's class i is the original's class perm[i]
    flipped = learner_like(m)
    flipped.dls = fm_dls(few, backbone=tiny, bs=8)
    flipped.dls.train.dataset.vocab = CategoryMap([m.dls.vocab[i] for i in perm], sort=False)
    with torch.no_grad():
        flipped.model.head[1].weight.copy_(m.model.head[1].weight[perm]); flipped.model.head[1].bias.copy_(m.model.head[1].bias[perm])
    np.testing.assert_allclose(Ensemble([m, flipped]).predict_texts(texts)[1], m.predict_texts(texts)[1], atol=1e-5)

def test_members_from_folders_and_other_backbones(members, tiny, few, texts, tmp_path):
    from fmcombo.testing import tiny_backbone
    members[0].save_fm(tmp_path/'m0')
    np.testing.assert_allclose(Ensemble([tmp_path/'m0']).predict_texts(texts)[1], members[0].predict_texts(texts)[1], atol=1e-6)
    other = fm_learner(fm_dls(few, backbone=tiny_backbone(vocab_size=500), bs=8, seed=0))
    e = Ensemble([members[0], other])
    L = e.member_logits(texts)
    np.testing.assert_allclose(L[1].softmax(-1).numpy(), other.predict_texts(texts)[1], atol=1e-5)

def test_batched_inference_equals_the_loop(members, texts):
    torch.testing.assert_close(Ensemble(members, batched=True).member_logits(texts), Ensemble(members).member_logits(texts), atol=1e-5, rtol=1e-4)

def test_train_ensemble_saves_and_resumes(tiny, few, tmp_path, monkeypatch):
    dls = fm_dls(few, backbone=tiny, bs=8)
    e = train_ensemble(dls, n=2, epochs=1, lr=1e-2, out=tmp_path)
    assert len(e) == 2 and (tmp_path/'member0'/'fm.json').exists() and (tmp_path/'member1'/'fm.json').exists()
    assert not torch.equal(e.members[0].model.head[1].weight, e.members[1].model.head[1].weight)
    shutil.rmtree(tmp_path/'member1')
    fits = []
    import fmcombo.learner
    orig = fmcombo.learner.FMLearner.fit
    monkeypatch.setattr(fmcombo.learner.FMLearner, 'fit', lambda self, *a, **k: (fits.append(1), orig(self, *a, **k))[1])
    e2 = train_ensemble(dls, n=2, epochs=1, lr=1e-2, out=tmp_path)
    assert len(fits) == 1                                   # only the missing member was trained
    torch.testing.assert_close(e2.member_logits(['a goal']), e.member_logits(['a goal']), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match='another recipe'): train_ensemble(dls, n=3, epochs=1, out=tmp_path)

def test_snapshot_keeps_one_member_per_cycle(tiny, few):
    snap = SnapshotEnsemble(cycles=2)
    learn = fm_learner(fm_dls(few, backbone=tiny, bs=8, seed=0), cbs=[snap])
    with learn.no_bar(), learn.no_logging(): learn.fit(4, 1e-2)
    assert len(snap.snapshots) == 2
    lrs = np.array(learn.recorder.lrs)
    half = len(lrs)//2
    assert lrs[0] == pytest.approx(1e-2) and lrs[half] == pytest.approx(1e-2) and lrs[half-1] < 2e-3   # restart
    assert not torch.equal(snap.snapshots[0]['head.1.weight'], snap.snapshots[1]['head.1.weight'])
    torch.testing.assert_close(snap.snapshots[1]['head.1.weight'], learn.model.head[1].weight.detach())
    assert len(snap.ensemble()) == 2

class _Seen(Callback):
    order = SWA.order + 1
    def before_fit(self): self.seen, self.valid_w = [], []
    def after_train(self): self.seen.append(self.model.head[1].weight.detach().clone())
    def before_validate(self): self.valid_w.append(self.model.head[1].weight.detach().clone())

def test_swa_average_is_the_mean_of_what_it_saw(tiny, few, bbc):
    seen = _Seen()
    learn = fm_learner(fm_dls(few, valid=bbc['test'].select(range(16)), backbone=tiny, bs=8, seed=0), cbs=[SWA(start_epoch=1), seen])
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(4, 1e-2)
    mean = torch.stack(seen.seen[1:]).mean(0)
    torch.testing.assert_close(learn.model.head[1].weight.detach(), mean, atol=1e-6, rtol=1e-5)
    # validated on the average: at epoch 2 (0-based) the average of epochs 1 and 2, not the raw weights
    torch.testing.assert_close(seen.valid_w[2], torch.stack(seen.seen[1:3]).mean(0), atol=1e-6, rtol=1e-5)
    assert not torch.allclose(seen.valid_w[2], seen.seen[2])

def test_uniform_soup_of_identical_members_is_the_member(members):
    s = soup([members[0]]*3)
    for (k, a), b in zip(s.model.state_dict().items(), members[0].model.state_dict().values()):
        assert torch.equal(a, b), k

def test_uniform_soup_averages_and_greedy_keeps_the_best(members, valid):
    s = soup(members)
    mean = torch.stack([m.model.head[1].weight.detach() for m in members]).mean(0)
    torch.testing.assert_close(s.model.head[1].weight.detach(), mean, atol=1e-6, rtol=1e-5)
    g = soup(members, 'greedy', valid=valid)
    assert 1 <= len(g.soup_members) <= 3

def test_soup_refuses_other_architectures(members, tiny, few):
    cls = fm_learner(fm_dls(few, backbone=tiny, bs=8), pooling='cls')
    from fmcombo.testing import tiny_backbone
    small = fm_learner(fm_dls(few, backbone=tiny_backbone(vocab_size=500), bs=8))
    for other in (cls, small):
        with pytest.raises(ValueError, match='another architecture'): soup([members[0], other])

def test_distill_loss(members, tiny, few):
    dls = fm_dls(few, backbone=tiny, bs=8, seed=1)
    x, mask, y = dls.one_batch()
    for w in (0., 0.5, 1.):
        d = Distill(Ensemble(members), T=2., weight=w)
        learn = fm_learner(dls, cbs=[d])
        d.before_fit(); learn.xb = (x, mask); d.before_train(); d.before_batch()
        pred = learn.model(x, mask)
        plain = CrossEntropyLossFlat()(pred, y)
        if w == 0: assert torch.equal(d.lf(pred, y), plain)
        else:
            soft = Ensemble(members).combine(Ensemble(members).member_logits(dls.train.decode(x)) / 2.)
            kd = torch.nn.functional.kl_div(torch.log_softmax(pred / 2., -1), soft, reduction='batchmean') * 4
            torch.testing.assert_close(d.lf(pred, y), (1-w)*plain + w*kd, atol=1e-4, rtol=1e-3)
        d.after_train()
        assert isinstance(learn.loss_func, CrossEntropyLossFlat)
    with pytest.raises(ValueError, match='weight must be a number between 0 and 1; got 2'): Distill(members[0], weight=2)

def test_distill_trains(members, tiny, few):
    learn = fm_learner(fm_dls(few, backbone=tiny, bs=8, seed=1), cbs=[Distill(Ensemble(members))])
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-2)
    assert isinstance(learn.loss_func, CrossEntropyLossFlat) and np.isfinite(learn.recorder.losses[-1].item())

def test_ece():
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(3), 20_000)
    y = np.array([rng.choice(3, p=p) for p in P])
    assert ece(P, y) < 0.02
    sharp = P**6 / (P**6).sum(1, keepdims=True)
    assert ece(sharp, y) > 0.2
    assert ece(np.eye(3), [0, 1, 2]) == 0
    assert ece(np.eye(3)[[1, 2, 0]], [0, 1, 2]) == 1
    with pytest.raises(ValueError, match='one class index per row'): ece(P, y[:5])
    import matplotlib; matplotlib.use('Agg')
    ax = reliability_diagram(P, y)
    assert 'ECE' in ax.get_legend().get_texts()[0].get_text()

def test_train_ensemble_mixes_backbones(tiny, few):
    from fmcombo.testing import tiny_backbone
    e = train_ensemble(fm_dls(few, backbone=tiny, bs=8), backbones=[None, tiny_backbone(vocab_size=500)], epochs=1, lr=1e-2)
    assert len({m.dls.tokenizer_key for m in e.members}) == 2
    assert e.member_logits(['a goal']).shape == (2, 1, 5)
    with pytest.raises(ValueError, match='one entry per member'): train_ensemble(fm_dls(few, backbone=tiny, bs=8), seeds=[0, 1, 2], backbones=[None])

def test_learner_like_keeps_the_optimizer(tiny, few):
    from fmcombo.data import fm_dls
    from fmcombo.learner import fm_learner, FusedAdam
    from fmcombo.ensemble import learner_like
    from fastai.optimizer import Adam
    for opt in (FusedAdam, Adam):
        learn = fm_learner(fm_dls(few, backbone=tiny, bs=4, seed=0), opt_func=opt)
        assert learner_like(learn).opt_func is opt

# Out-of-range hyper-parameters: (callback or function, kwargs, error, what the message says). Feeds the bad-input table.
P, Y = np.full((4, 2), 0.5), np.array([0, 1, 0, 1])
BAD_HPARAMS = [
    (partial(ece, P, Y), dict(bins=0), ValueError, 'bins must be an integer >= 1; got 0'),
    (partial(reliability_diagram, P, Y), dict(bins=2.5), TypeError, 'bins must be an integer >= 1; got 2.5'),
    (partial(Ensemble, []), dict(bs=0), ValueError, 'bs must be an integer >= 1; got 0'),
    (partial(train_ensemble, None), dict(n=0), ValueError, 'n must be an integer >= 1; got 0'),
    (partial(train_ensemble, None), dict(epochs=0), ValueError, 'epochs must be an integer >= 1; got 0'),
    (partial(train_ensemble, None), dict(lr=-1), ValueError, 'lr must be a number > 0; got -1'),
    (SnapshotEnsemble, dict(cycles=0), ValueError, 'cycles must be an integer >= 1; got 0'),
    (SnapshotEnsemble, dict(cycles='5'), TypeError, "cycles must be an integer >= 1; got '5'"),
    (SWA, dict(start_epoch=-1), ValueError, 'start_epoch must be an integer >= 0; got -1'),
    (SWA, dict(lr=0), ValueError, 'lr must be a number > 0; got 0'),
    (partial(Distill, None), dict(T=0), ValueError, 'T must be a number > 0; got 0'),
    (partial(Distill, None), dict(weight=1.5), ValueError, 'weight must be a number between 0 and 1; got 1.5'),
    (partial(Distill, None), dict(weight=float('nan')), ValueError, 'weight must be a number between 0 and 1; got nan'),
    (partial(transfer_set, None, None, ['a text']), dict(bs=0), ValueError, 'bs must be an integer >= 1; got 0'),
]

def _name(f): return f.func.__name__ if isinstance(f, partial) else f.__name__

@pytest.mark.parametrize('make,kwargs,error,message', BAD_HPARAMS,
                         ids=[f"{_name(m)}-{','.join(f'{k}={v!r}' for k, v in kw.items())}" for m, kw, _, _ in BAD_HPARAMS])
def test_bad_hyper_parameters(make, kwargs, error, message):
    with pytest.raises(error) as e: make(**kwargs)
    assert message in str(e.value)
