"Adversarial callbacks: the method's defining properties, exceptions, composition with fastai, bad input."
import numpy as np, pandas as pd, pytest, torch
from torch import nn
from fastai.callback.core import Callback, CancelFitException
from fastai.callback.training import GradientAccumulation
from fastai.callback.tracker import SaveModelCallback
from fastai.learner import Learner
from fmcombo.data import fm_dls
from fmcombo.learner import fm_learner, symmetric_kl, CPUMixedPrecision
from fmcombo.perturb import masked_norm
from fmcombo.testing import no_dropout
from fmcombo.adversarial import FGM, PGD, FreeLB, SMART, AWP, AdversarialCallback

ALL = [lambda: FGM(), lambda: PGD(), lambda: FreeLB(), lambda: SMART(), lambda: AWP(start_epoch=0)]
IDS = ['FGM', 'PGD', 'FreeLB', 'SMART', 'AWP']

@pytest.fixture(scope='module')
def short(few):
    "16 texts of 4 to 34 words, so that batches have padding"
    tr = few.select(range(16))
    return pd.DataFrame(dict(text=[' '.join(t.split()[:4 + 2*i]) for i, t in enumerate(tr['text'])], label=tr['label']))

def make_learn(tiny, data, cbs=(), bs=8, **kw):
    learn = fm_learner(fm_dls(data, backbone=tiny, bs=bs, max_len=64, seed=0), cbs=list(cbs), head_dropout=0., **kw)
    no_dropout(learn.model)
    return learn

def fit(learn, n=1, lr=1e-3, **kw):
    with learn.no_bar(), learn.no_logging(): learn.fit(n, lr, **kw)

def no_hooks(model): return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())

class Grab(Callback):
    "The gradients of the first optimizer step, then stop"
    order = 90
    def before_step(self):
        self.g = {n: p.grad.clone() for n, p in self.learn.model.named_parameters() if p.grad is not None}
        raise CancelFitException()

def first_grads(tiny, data, cbs, bs=8, freeze_to=None):
    learn = make_learn(tiny, data, list(cbs) + [Grab()], bs=bs)
    if freeze_to is not None: learn.freeze_to(freeze_to)
    fit(learn)
    return learn.grab.g

@pytest.mark.parametrize('alpha', [1.0, 0.3])
def test_fgm_eps0_doubles_gradient(tiny, short, alpha):
    plain, fgm = first_grads(tiny, short, []), first_grads(tiny, short, [FGM(eps=0., weight=alpha)])
    assert plain.keys() == fgm.keys()
    for n in plain: torch.testing.assert_close(fgm[n], (1 + alpha)*plain[n], rtol=1e-4, atol=1e-7)

def test_fgm_eps_changes_gradient(tiny, short):
    plain, fgm = first_grads(tiny, short, [FGM(eps=0.)]), first_grads(tiny, short, [FGM(eps=1.)])
    assert any(not torch.allclose(plain[n], fgm[n]) for n in plain)

class Spy(Callback):
    "Records, after the adversarial callback, its δ, the batch's mask, the clean loss and the adversarial loss"
    order = AdversarialCallback.order + 1
    def __init__(self, cb): self.cb, self.rec = cb, []
    def after_backward(self):
        self.rec.append((self.cb.delta.detach().clone(), self.learn.xb[1].clone(), float(self.learn.loss.detach()), self.cb.losses[-1]))

@pytest.mark.parametrize('make,eps', [(lambda: FGM(eps=0.7), 0.7), (lambda: PGD(eps=0.7, step_size=0.3), 0.7),
                                      (lambda: FreeLB(max_norm=0.4, step_size=0.3), 0.4), (lambda: SMART(eps=0.2), 0.2)],
                         ids=['FGM', 'PGD', 'FreeLB', 'SMART'])
def test_perturbation_norm_and_padding(tiny, short, make, eps):
    cb = make(); spy = Spy(cb)
    fit(make_learn(tiny, short, [cb, spy]), n=2)
    assert len(spy.rec) == 4
    padded = 0
    for delta, mask, _, _ in spy.rec:
        n = masked_norm(delta, mask)
        assert (n <= eps*(1 + 1e-5)).all(), n
        assert (n > 0).all()
        assert delta[mask == 0].abs().sum() == 0
        padded += int((mask == 0).any())
    assert padded > 0                                   # the check saw padding
    if isinstance(cb, FGM):
        for delta, mask, _, _ in spy.rec: torch.testing.assert_close(masked_norm(delta, mask), torch.full((len(mask),), eps))

@pytest.mark.parametrize('make', [lambda: FGM(eps=1.), lambda: PGD(eps=1.), lambda: AWP(start_epoch=0, rel_eps=0.05)], ids=['FGM', 'PGD', 'AWP'])
def test_attack_raises_loss(tiny, short, make):
    cb = make()
    class Clean(Callback):
        order = AdversarialCallback.order + 1
        def __init__(self): self.clean = []
        def after_backward(self): self.clean.append(float(self.learn.loss.detach()))
    clean = Clean()
    fit(make_learn(tiny, short, [cb, clean]), n=3)
    assert np.mean(cb.losses) > np.mean(clean.clean), (cb.losses, clean.clean)

def test_smart_regulariser_positive(tiny, short):
    cb = SMART(eps=0.5)
    fit(make_learn(tiny, short, [cb]), n=2)
    assert all(l > 0 for l in cb.losses)
    p = torch.randn(4, 3)
    torch.testing.assert_close(symmetric_kl(p, p), torch.tensor(0.))
    q = torch.randn(4, 3)
    torch.testing.assert_close(symmetric_kl(p, q), symmetric_kl(q, p))

class Boom(Exception): pass

@pytest.mark.parametrize('exc', [Boom, KeyboardInterrupt])
@pytest.mark.parametrize('make', ALL, ids=IDS)
def test_exception_in_adversarial_pass(tiny, short, make, exc):
    cb = make()
    learn = make_learn(tiny, short, [cb])
    before = {n: p.detach().clone() for n, p in learn.model.named_parameters()}
    calls = []
    def second_call_raises(mod, args):
        if mod.training:
            calls.append(1)
            if len(calls) == 2: raise exc('in the adversarial pass')
    spy = learn.model.head.register_forward_pre_hook(second_call_raises)
    try:
        with pytest.raises(exc): fit(learn)
    finally: spy.remove()
    assert len(calls) == 2
    assert no_hooks(learn.model)
    for n, p in learn.model.named_parameters(): assert torch.equal(p, before[n]), n

def test_awp_restores_weights_bit_identically(tiny, short):
    class Check(Callback):
        order = AdversarialCallback.order + 1
        def before_batch(self): self.w = [p.detach().clone() for p in self.learn.model.parameters()]
        def after_backward(self):
            assert all(torch.equal(p, w) for p, w in zip(self.learn.model.parameters(), self.w))
            self.n = getattr(self, 'n', 0) + 1
    cb, check = AWP(start_epoch=0, rel_eps=0.1), Check()
    fit(make_learn(tiny, short, [cb, check]), n=2)
    assert check.n == 4 and np.isfinite(cb.losses).all()

def test_awp_waits_for_start_epoch(tiny, short):
    cb = AWP(start_epoch=1)
    fit(make_learn(tiny, short, [cb]), n=2)
    assert np.isnan(cb.losses[:2]).all() and np.isfinite(cb.losses[2:]).all()

@pytest.mark.parametrize('make', [lambda: None, lambda: FGM(), lambda: PGD(), lambda: FreeLB(init_mag=0.)], ids=['plain', 'FGM', 'PGD', 'FreeLB'])
def test_gradient_accumulation_equals_big_batch(tiny, short, make):
    data = short.iloc[:8]
    big = first_grads(tiny, data, [c for c in [make()] if c is not None], bs=8)
    acc = first_grads(tiny, data, [c for c in [make()] if c is not None] + [GradientAccumulation(8)], bs=4)
    for n in big: torch.testing.assert_close(acc[n], big[n], rtol=2e-3, atol=1e-6)

def test_frozen_embeddings_still_perturbed(tiny, short):
    plain = first_grads(tiny, short, [FGM(eps=0.)], freeze_to=1)
    fgm = first_grads(tiny, short, [FGM(eps=1.)], freeze_to=1)
    assert not any('embeddings' in n for n in fgm)                 # the embedding layer is frozen
    assert any(not torch.allclose(plain[n], fgm[n]) for n in fgm)  # and the perturbation still acts

@pytest.mark.parametrize('amp', ['bf16', 'fp16'])
@pytest.mark.parametrize('make', ALL, ids=IDS)
def test_mixed_precision(tiny, short, make, amp):
    cb = make()
    dtypes, scales = [], []
    class Watch(Callback):
        order = CPUMixedPrecision.order + 0.5
        def before_fit(self):
            scale = self.learn.scaler.scale
            self.learn.scaler.scale = lambda x: (scales.append(1), scale(x))[1]
    learn = make_learn(tiny, short, [CPUMixedPrecision(amp), cb, Watch()])
    h = learn.model.head[1].register_forward_hook(lambda m, a, o: dtypes.append(o.dtype) if m.training else None)
    try: fit(learn)
    finally: h.remove()
    want = torch.bfloat16 if amp == 'bf16' else torch.float16
    assert len(dtypes) > 2 and set(dtypes) == {want}          # the extra passes ran under the learner's autocast
    assert len(scales) > 2                                     # clean and extra backward passes went through learn.scaler
    assert np.isfinite(cb.losses).all() and no_hooks(learn.model)

@pytest.mark.parametrize('make', ALL, ids=IDS)
def test_idle_in_lr_find_get_preds_validate(tiny, short, bbc, make):
    cb = make()
    learn = fm_learner(fm_dls(short, valid=short.iloc[8:], backbone=tiny, bs=8, max_len=64, seed=0), cbs=[cb])
    with learn.no_bar(), learn.no_logging():
        learn.lr_find(num_it=4, show_plot=False)
        assert getattr(cb, 'losses', []) == []
        learn.get_preds()
        assert len(learn.validate()) == 2
    assert getattr(cb, 'losses', []) == [] and no_hooks(learn.model) and len(learn.metrics) == 1

def test_composes_with_fine_tune_and_save_model(tiny, short, bbc, tmp_path):
    learn = fm_learner(fm_dls(short, valid=short.iloc[8:], backbone=tiny, bs=8, max_len=64, seed=0),
                       cbs=[FGM(), SMART(), SaveModelCallback(fname='best')], path=tmp_path)
    with learn.no_bar(), learn.no_logging(): learn.fine_tune(1, 1e-3, freeze_epochs=1)
    names = learn.recorder.metric_names
    assert 'fgm_loss' in names and 'smart_loss' in names
    assert len(learn.recorder.values[-1]) == len(names) - 2      # epoch and time are not values
    assert len(learn.fgm.losses) == len(learn.smart.losses) == 2
    assert (tmp_path/'models'/'best.pth').exists() and no_hooks(learn.model)

# Out-of-range hyper-parameters: (callback, kwargs, error, what the message says). Feeds the bad-input table.
BAD_HPARAMS = [
    (FGM, dict(eps=-1), ValueError, 'eps must be a number >= 0; got -1'),
    (FGM, dict(eps='1'), TypeError, "eps must be a number >= 0; got '1'"),
    (FGM, dict(weight=-0.5), ValueError, 'weight must be a number >= 0; got -0.5'),
    (FGM, dict(weight=float('nan')), ValueError, 'weight must be a number >= 0; got nan'),
    (PGD, dict(eps=-1), ValueError, 'eps must be a number >= 0; got -1'),
    (PGD, dict(step_size=0), ValueError, 'step_size must be a number > 0; got 0'),
    (PGD, dict(steps=0), ValueError, 'steps must be an integer >= 1; got 0'),
    (PGD, dict(steps=None), TypeError, 'steps must be an integer >= 1; got None'),
    (PGD, dict(weight=-1), ValueError, 'weight must be a number >= 0; got -1'),
    (FreeLB, dict(steps=0), ValueError, 'steps must be an integer >= 1; got 0'),
    (FreeLB, dict(step_size=-0.1), ValueError, 'step_size must be a number > 0; got -0.1'),
    (FreeLB, dict(init_mag=-1), ValueError, 'init_mag must be a number >= 0; got -1'),
    (FreeLB, dict(max_norm=-1), ValueError, 'max_norm must be a number >= 0; got -1'),
    (SMART, dict(eps=0), ValueError, 'eps must be a number > 0; got 0'),
    (SMART, dict(weight=-1), ValueError, 'weight must be a number >= 0; got -1'),
    (SMART, dict(steps=2.5), TypeError, 'steps must be an integer >= 1; got 2.5'),
    (SMART, dict(noise=-1e-5), ValueError, 'noise must be a number >= 0; got -1e-05'),
    (AWP, dict(rel_step=0), ValueError, 'rel_step must be a number > 0; got 0'),
    (AWP, dict(rel_eps=-0.1), ValueError, 'rel_eps must be a number >= 0; got -0.1'),
    (AWP, dict(start_epoch=-1), ValueError, 'start_epoch must be an integer >= 0; got -1'),
    (AWP, dict(start_epoch=True), TypeError, 'start_epoch must be an integer >= 0; got True'),
]

@pytest.mark.parametrize('make,kwargs,error,message', BAD_HPARAMS,
                         ids=[f"{m.__name__}-{','.join(f'{k}={v!r}' for k, v in kw.items())}" for m, kw, _, _ in BAD_HPARAMS])
def test_bad_hyper_parameters(make, kwargs, error, message):
    with pytest.raises(error) as e: make(**kwargs)
    assert message in str(e.value)

@pytest.mark.parametrize('make,old,new', [(FGM, 'alpha', 'weight'), (PGD, 'alpha', 'weight'), (FreeLB, 'adv_lr', 'step_size'),
                                          (AWP, 'adv_lr', 'rel_step'), (AWP, 'adv_eps', 'rel_eps')])
def test_old_argument_names_still_work_with_a_warning(make, old, new):
    with pytest.warns(DeprecationWarning, match=f'{old}=.*renamed {new}='): cb = make(**{old: 0.5})
    assert getattr(cb, new) == 0.5
    with pytest.raises(TypeError, match=f'pass only {new}='): make(**{old: 0.5, new: 0.5})

def test_model_without_input_embeddings(tiny, short):
    dls = fm_dls(short, backbone=tiny, bs=8, max_len=64, seed=0)
    class Bag(nn.Module):
        def __init__(self): super().__init__(); self.emb = nn.EmbeddingBag(1000, 5)
        def forward(self, ids, mask): return self.emb(ids)
    learn = Learner(dls, Bag(), loss_func=nn.CrossEntropyLoss(), cbs=[FGM()])
    with pytest.raises(TypeError, match='get_input_embeddings'): fit(learn)
