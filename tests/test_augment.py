"Augmentation: text transforms, embedding/hidden mixup, NEFTune, R-Drop, self-training and task-adaptive pretraining (tiny backbone)."
import math, warnings
from functools import partial
import numpy as np, pytest, torch
from torch import nn
from fastai.callback.core import Callback, CancelFitException
from fastai.torch_core import set_seed
from fmcombo.data import fm_dls
from fmcombo.learner import fm_learner, symmetric_kl
from fmcombo.edits import EmbeddingSynonyms
from fmcombo.testing import no_dropout
from fmcombo.augment import (EDA, AEDA, CharNoise, EmbedMix, TMix, NEFTune, RDrop, self_train, adapt_backbone,
                             pick_confident, tmix_layers)

@pytest.fixture(scope='module')
def syn(tiny): return EmbeddingSynonyms(tiny, min_sim=-1)

def _no_hooks(model): return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())

def _epochs(few, tiny, tfms, seed=0, n=2):
    dls = fm_dls(few, valid=few, backbone=tiny, bs=8, text_tfms=tfms, seed=seed, max_len=48)
    set_seed(seed)
    return [[b[0] for b in dls.train] for _ in range(n)], [b[0] for b in dls.valid]

@pytest.mark.parametrize('make', [lambda s: EDA(synonyms=s), lambda s: AEDA(), lambda s: CharNoise(p=0.2)], ids=['EDA', 'AEDA', 'CharNoise'])
def test_text_tfms_change_training_texts_only(few, tiny, syn, make):
    (p1, p2), pv = _epochs(few, tiny, None)
    (e1, e2), ev = _epochs(few, tiny, [make(syn)])
    assert all(torch.equal(a, b) for a, b in zip(ev, pv))                 # validation never transformed
    assert any(a.shape != b.shape or not torch.equal(a, b) for a, b in zip(e1, p1))   # training changed
    assert any(a.shape != b.shape or not torch.equal(a, b) for a, b in zip(e1, e2))   # fresh each epoch
    (f1, f2), _ = _epochs(few, tiny, [make(syn)])
    assert all(torch.equal(a, b) for a, b in zip(e1 + e2, f1 + f2))       # same seed, same batches
    (g1, _), _ = _epochs(few, tiny, [make(syn)], seed=1)
    (q1, _), _ = _epochs(few, tiny, None, seed=1)
    assert any(a.shape != b.shape or not torch.equal(a, b) for a, b in zip(g1, q1))

def test_predict_is_never_transformed(few, tiny):
    dls = fm_dls(few, backbone=tiny, bs=8, text_tfms=[CharNoise(p=1.)], seed=0)
    plain = fm_dls(few, backbone=tiny, bs=8, seed=0)
    t = ['Shares rose sharply on Monday.']
    assert torch.equal(dls.test_dl(t).one_batch()[0], plain.test_dl(t).one_batch()[0])

def test_same_seed_same_output(syn):
    text = "The government said on Tuesday that the economy grew by 2% last year."
    for cls in (lambda: EDA(synonyms=syn, seed=4), lambda: AEDA(seed=4), lambda: CharNoise(seed=4)):
        a, b = cls(), cls()
        outs = [a(text) for _ in range(10)]
        assert outs == [b(text) for _ in range(10)] and len(set(outs)) > 3
    random_state = __import__('random')
    random_state.seed(7); a = [EDA(synonyms=syn)(text) for _ in range(3)]
    random_state.seed(7); b = [EDA(synonyms=syn)(text) for _ in range(3)]
    assert a == b                                                          # seed=None: follows Python's global seed

def test_eda_identity_and_operations(syn):
    text = "Profits at the bank rose sharply, helped by strong trading."
    assert EDA(0, 0, 0, 0, seed=0)(text) == text
    for _ in range(20):
        out = EDA(p_swap=0, p_delete=0, p_insert=0, p_synonym=0.3, synonyms=syn, seed=_)(text)
        assert out.count(' ') == text.count(' ') and out.endswith('.') and ',' in out
        out = EDA(p_swap=0, p_delete=0.5, p_insert=0, p_synonym=0, seed=_)(text)
        assert '  ' not in out and len(out) < len(text) and out.endswith('.')
    assert EDA(p_delete=1, p_swap=0, p_insert=0, p_synonym=0, seed=0)("alpha beta gamma") in ('alpha', 'beta', 'gamma')

def test_blank_texts_pass_and_bad_input_is_named(syn):
    for tfm in (EDA(synonyms=syn), AEDA(), CharNoise()):
        for blank in ('', ' ', '\n\t'): assert tfm(blank) == blank
        with pytest.raises(TypeError, match='transforms strings'): tfm(None)

# Out-of-range hyper-parameters: (callback or function, kwargs, error, what the message says). Feeds the bad-input table.
TWO_TEXTS = ['one text here', 'another text there']
BAD_HPARAMS = [
    (EDA, dict(p_swap=-0.1), ValueError, 'p_swap must be a number between 0 and 1; got -0.1'),
    (EDA, dict(p_delete=1.1), ValueError, 'p_delete must be a number between 0 and 1; got 1.1'),
    (EDA, dict(p_insert=float('nan')), ValueError, 'p_insert must be a number between 0 and 1; got nan'),
    (EDA, dict(p_synonym='0.5'), TypeError, "p_synonym must be a number between 0 and 1; got '0.5'"),
    (EDA, dict(p_swap=True), TypeError, 'p_swap must be a number between 0 and 1; got True'),
    (EDA, dict(seed='x'), TypeError, "seed must be an integer; got 'x'"),
    (AEDA, dict(ratio=-1), ValueError, 'ratio must be a number between 0 and 1; got -1'),
    (CharNoise, dict(p=1.5), ValueError, 'p must be a number between 0 and 1; got 1.5'),
    (EmbedMix, dict(alpha=0), ValueError, 'alpha must be a number > 0; got 0'),
    (EmbedMix, dict(alpha=float('inf')), ValueError, 'alpha must be a number > 0; got inf'),
    (TMix, dict(alpha=-1.), ValueError, 'alpha must be a number > 0; got -1.0'),
    (TMix, dict(layers=[]), ValueError, 'layers must be a non-empty list of 0-based encoder layer indices; got []'),
    (NEFTune, dict(noise_mag=0), ValueError, 'noise_mag must be a number > 0; got 0'),
    (NEFTune, dict(noise_mag=float('nan')), ValueError, 'noise_mag must be a number > 0; got nan'),
    (RDrop, dict(weight=-1), ValueError, 'weight must be a number > 0; got -1'),
    (partial(pick_confident, np.full((2, 2), 0.5)), dict(threshold=2), ValueError, 'threshold must be a number between 0 and 1; got 2'),
    (partial(pick_confident, np.full((2, 2), 0.5)), dict(max_per_class=0), ValueError, 'max_per_class must be an integer >= 1; got 0'),
    (partial(self_train, None, TWO_TEXTS), dict(threshold=1.2), ValueError, 'threshold must be a number between 0 and 1; got 1.2'),
    (partial(self_train, None, TWO_TEXTS), dict(rounds=0), ValueError, 'rounds must be an integer >= 1; got 0'),
    (partial(self_train, None, TWO_TEXTS), dict(max_per_class=2.5), TypeError, 'max_per_class must be an integer >= 1; got 2.5'),
    (partial(self_train, None, TWO_TEXTS), dict(epochs=0), ValueError, 'epochs must be an integer >= 1; got 0'),
    (partial(self_train, None, TWO_TEXTS), dict(lr=-1e-4), ValueError, 'lr must be a number > 0; got -0.0001'),
    (partial(self_train, None, TWO_TEXTS), dict(bs=0), ValueError, 'bs must be an integer >= 1; got 0'),
    (partial(adapt_backbone, TWO_TEXTS), dict(epochs=0), ValueError, 'epochs must be an integer >= 1; got 0'),
    (partial(adapt_backbone, TWO_TEXTS), dict(lr=0), ValueError, 'lr must be a number > 0; got 0'),
    (partial(adapt_backbone, TWO_TEXTS), dict(bs=-1), ValueError, 'bs must be an integer >= 1; got -1'),
    (partial(adapt_backbone, TWO_TEXTS), dict(max_len=1), ValueError, 'max_len must be an integer >= 2; got 1'),
    (partial(adapt_backbone, TWO_TEXTS), dict(mask_prob=0), ValueError, 'mask_prob must be a number > 0 and <= 1; got 0'),
    (partial(adapt_backbone, TWO_TEXTS), dict(valid_pct=1.5), ValueError, 'valid_pct must be a number between 0 and 1; got 1.5'),
    (partial(adapt_backbone, TWO_TEXTS), dict(seed=None), TypeError, 'seed must be an integer; got None'),
]

def _name(f): return f.func.__name__ if isinstance(f, partial) else f.__name__

@pytest.mark.parametrize('make,kwargs,error,message', BAD_HPARAMS,
                         ids=[f"{_name(m)}-{','.join(f'{k}={v!r}' for k, v in kw.items())}" for m, kw, _, _ in BAD_HPARAMS])
def test_bad_hyper_parameters(make, kwargs, error, message, tmp_path):
    if _name(make) == 'adapt_backbone': kwargs = dict(kwargs, out=tmp_path/'never')
    with pytest.raises(error) as e: make(**kwargs)
    assert message in str(e.value)
    assert not (tmp_path/'never').exists()

@pytest.mark.parametrize('make,new', [(NEFTune, 'noise_mag'), (RDrop, 'weight')])
def test_old_argument_names_still_work_with_a_warning(make, new):
    with pytest.warns(DeprecationWarning, match=f'alpha=.*renamed {new}='): cb = make(alpha=3.)
    assert getattr(cb, new) == 3.

def _pairs(few):
    "Two copies each of two texts of different lengths: length-sorted batches of 2 are pairs of copies"
    import pandas as pd
    a, b = 'Shares fell sharply today.', 'The team won the cup final after extra time on Sunday.'
    return pd.DataFrame({'text': [a, a, b, b], 'label': ['business', 'business', 'sport', 'sport']})

def _train(data, tiny, cbs, epochs=2):
    learn = fm_learner(fm_dls(data, backbone=tiny, bs=2, seed=0, max_len=512), cbs=cbs)
    no_dropout(learn.model)
    with learn.no_bar(), learn.no_logging(): learn.fit(epochs, 1e-2)
    return torch.cat([p.detach().flatten() for p in learn.model.parameters()])

@pytest.mark.parametrize('cb', [EmbedMix, TMix], ids=['EmbedMix', 'TMix'])
def test_mixing_identical_pairs_is_plain_training(few, tiny, cb):
    data = _pairs(few)
    plain = _train(data, tiny, None)
    mixed = _train(data, tiny, [cb()])
    torch.testing.assert_close(mixed, plain, atol=1e-5, rtol=0)
    t = _titles(few)
    four = t[t.label.isin([0, 1])].groupby('label').head(2)
    other = _train(four, tiny, [cb()])                                     # and it does change training otherwise
    assert not torch.allclose(other, _train(four, tiny, None), atol=1e-5)

class _Record(Callback):
    "Records the word-embedding output (after EmbedMix's hook, registered before ours) of the first training batch"
    order = 1
    def before_batch(self):
        self.out, self.xb_seen = [], self.xb
        emb = self.model.get_input_embeddings()
        self.h = emb.register_forward_hook(lambda m, a, o: self.out.append(o.detach().clone()))
    def after_pred(self): self.h.remove(); raise CancelFitException()

def _titles(few):
    "The first lines of the articles: short texts of different lengths, so batches have padding"
    import pandas as pd
    return pd.DataFrame({'text': [t.split('\n')[0] for t in few['text']], 'label': few['label']})

def test_embedmix_mixes_embeddings_with_the_union_mask(few, tiny):
    dls = fm_dls(_titles(few), backbone=tiny, bs=10, seed=0, max_len=64)
    learn = fm_learner(dls, cbs=[EmbedMix(alpha=1.)])
    class Before(Callback):
        order = -5
        def before_batch(self): self.xb0 = self.xb
    rec, before = _Record(), Before(); learn.add_cbs([rec, before])
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    em = learn.embed_mix
    ids, mask = rec.xb_seen
    x, m = before.xb0
    assert torch.equal(ids, x)
    assert torch.equal(mask, torch.maximum(m, m[em.shuffle])) and (mask.sum() > m.sum())
    with torch.no_grad(): h = learn.model.get_input_embeddings()(ids)
    want = em.lam[:, None, None]*h + (1 - em.lam[:, None, None])*h[em.shuffle]
    want = torch.where(mask[..., None].bool(), want, h)
    assert len(rec.out) == 1 and (em.lam >= 0.5).all() and (em.lam <= 1).all()
    torch.testing.assert_close(rec.out[0], want)                           # our hook runs after EmbedMix's: it sees the mix
    assert _no_hooks(learn.model)
    assert learn.loss_func is not em.lf                                    # the loss is restored after a cancelled fit

def test_mix_callbacks_leave_no_hook_on_exceptions(few, tiny):
    class Boom(Callback):
        order = 50
        def after_pred(self): raise RuntimeError('boom')
    for cb in (EmbedMix(), TMix(), NEFTune()):
        learn = fm_learner(fm_dls(few, backbone=tiny, bs=4, seed=0, max_len=32), cbs=[cb, Boom()])
        with pytest.raises(RuntimeError, match='boom'), learn.no_bar(), learn.no_logging(): learn.fit(1)
        assert _no_hooks(learn.model)
        learn.remove_cb(learn.boom)
        with learn.no_bar(), learn.no_logging(): learn.fit(1)
        assert _no_hooks(learn.model)
        with learn.no_bar(): probs, _ = learn.get_preds(dl=learn.dls.test_dl(['a text'] * 3))
        assert torch.isfinite(probs).all()

def test_tmix_layers(few, tiny):
    assert tmix_layers(12) == [6, 8, 11] and tmix_layers(6) == [3, 5] and tmix_layers(1) == [0]
    learn = fm_learner(fm_dls(few, backbone=tiny, bs=4, seed=0, max_len=32), cbs=[TMix(layers=[5])])
    with pytest.raises(ValueError, match='valid layers are 0 to 1'), learn.no_bar(), learn.no_logging(): learn.fit(1)
    with pytest.raises(ValueError, match='non-empty list'): TMix(layers=[])
    with pytest.raises(ValueError, match='non-empty list'): TMix(layers=1)

def test_neftune_noise_follows_its_formula(few, tiny):
    dls = fm_dls(_titles(few), backbone=tiny, bs=10, seed=0, max_len=128)
    learn = fm_learner(dls, cbs=[NEFTune(noise_mag=5.)])
    class Check(Callback):
        order = 1
        def before_batch(self):
            self.mask = self.xb[1]
            self.seen = []
            self.h = self.model.get_input_embeddings().register_forward_hook(lambda m, a, o: self.seen.append(o.detach()))
        def after_pred(self): self.h.remove(); raise CancelFitException()
    learn.add_cb(Check())
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    d, mask = learn.nef_tune.delta, learn.check.mask
    L, dim = mask.sum(1).float(), 16
    assert (mask == 0).any() and d[mask == 0].abs().sum() == 0             # zero on padding
    bound = 5/torch.sqrt(L*dim)
    assert (d.abs().amax((1, 2)) <= bound + 1e-6).all() and (d.abs().amax((1, 2)) >= 0.9*bound).all()
    torch.testing.assert_close(d.flatten(1).norm(dim=1), torch.full_like(L, 5/math.sqrt(3)), atol=0.5, rtol=0)
    assert _no_hooks(learn.model)

def test_rdrop_kl_is_zero_without_dropout_and_not_with(few, tiny):
    assert symmetric_kl(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0
    res = {}
    for drop in (False, True):
        learn = fm_learner(fm_dls(few, backbone=tiny, bs=10, seed=0, max_len=64), cbs=[RDrop(weight=1.)])
        if not drop: no_dropout(learn.model)
        class LossProbe(Callback):
            order = 100
            def after_loss(self):
                self.l, self.plain = self.loss_grad.item(), self.loss_func(self.pred, *self.yb).item()
                self.shapes = self.pred.shape[0], self.yb[0].shape[0]
        learn.add_cb(LossProbe())
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
        res[drop] = (learn.r_drop.kl.item(), learn.loss_probe.l, learn.loss_probe.plain, *learn.loss_probe.shapes)
    kl, l, plain, np_, ny = res[False]
    assert abs(kl) < 1e-6 and abs(l - plain) < 1e-6 and np_ == ny
    assert res[True][0] > 1e-6

def test_pick_confident_never_below_threshold():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(4, 0.3), size=500)
    for thr in (0.5, 0.8, 0.95):
        idx = pick_confident(probs, thr)
        assert (probs[idx].max(1) >= thr).all()
        counts = np.bincount(probs[idx].argmax(1), minlength=4)
        assert len(set(counts)) == 1 and counts[0] == min(((probs.argmax(1) == c) & (probs.max(1) >= thr)).sum() for c in range(4))
    assert len(pick_confident(probs, 0.5, max_per_class=3)) == 12

def test_self_train_never_adds_a_text_below_threshold(few, tiny, bbc):
    learn = fm_learner(fm_dls(few, backbone=tiny, bs=4, seed=0, max_len=32))
    pool = bbc['test'].select(range(40))
    rng = np.random.default_rng(1)
    fake = rng.dirichlet(np.full(5, 0.1), size=40)
    learn.predict_texts = lambda texts, bs=64: (None, fake)
    with learn.no_bar(), learn.no_logging(): rep = self_train(learn, pool['text'], threshold=0.9, rounds=1, epochs=1, labels=pool['label'])
    added = learn.dls.train.dataset.texts[len(few):]
    allowed = {pool['text'][i] for i in np.flatnonzero(fake.max(1) >= 0.9)}
    assert len(added) == rep['added'][0] and set(added) <= allowed
    labels = learn.dls.train.dataset.labels[len(few):]
    assert [int(fake[pool['text'].index(t)].argmax()) for t in added] == list(labels)
    assert 0 <= rep['pseudo_label_accuracy'][0] <= 1

def test_self_train_bad_input(few, tiny):
    learn = fm_learner(fm_dls(few, backbone=tiny, bs=4, seed=0, max_len=32))
    with pytest.raises(TypeError, match='unlabelled must be a list of strings'): self_train(learn, 'one text')
    with pytest.raises(TypeError, match=r'non-string values \(NoneType\) at rows \[1\]'): self_train(learn, ['a', None])
    with pytest.raises(ValueError, match='threshold'): self_train(learn, ['a'], threshold=-0.5)
    with pytest.raises(ValueError, match='rounds'): self_train(learn, ['a'], rounds=0)
    with pytest.raises(ValueError, match='labels has 1 values for 2'): self_train(learn, ['a', 'b'], labels=['business'])

def test_adapt_backbone_writes_a_backbone(few, tiny, bbc, tmp_path):
    texts = bbc['train'].select(range(30))['text']
    out = adapt_backbone(texts, backbone=tiny, out=tmp_path/'tapt', bs=8, max_len=32, lr=1e-3, show_progress=False)
    learn = fm_learner(fm_dls(few, backbone=out, bs=4, seed=0, max_len=32))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    out2 = adapt_backbone(texts, backbone=tiny, out=tmp_path/'tapt', bs=8, max_len=32, lr=1e-3, show_progress=False)  # overwrites its own folder
    assert out2 == out
    with pytest.raises(TypeError, match='texts must be a list of strings'): adapt_backbone('text', backbone=tiny, out=tmp_path/'x')
    with pytest.raises(ValueError, match='at least 2 non-empty texts'): adapt_backbone(['', ' '], backbone=tiny, out=tmp_path/'x')
