"fmcombo.transfer beyond the notebook's examples: composition with other callbacks, mixed precision, accumulation, bad input"
import pytest, torch
from fastai.callback.training import GradientAccumulation
from fmcombo.data import fm_dls
from fmcombo.learner import fm_learner, CPUMixedPrecision
from fmcombo.augment import RDrop
from fmcombo.transfer import (SupCon, PrototypeHead, ContrastiveStage, ReinitTop, LayerLRDecay, prototype_head, contrastive_stage,
                              reinit_top_layers, llrd_lrs, head_inputs)

def learner(few, tiny, cbs=(), **kw):
    return fm_learner(fm_dls(few, backbone=tiny, bs=8, seed=0), cbs=list(cbs), seed=0, **kw)

def fit(learn, n=1, lr=1e-3):
    with learn.no_bar(), learn.no_logging(): learn.fit(n, lr)
    return learn

def no_hooks(learn): return all(not m._forward_hooks and not m._forward_pre_hooks for m in learn.model.modules())

def test_all_together(few, tiny):
    "the five techniques in one fit, with R-Drop (stacked batch) and bf16 mixed precision"
    learn = learner(few, tiny, [ReinitTop(1), ContrastiveStage(lr=1e-3, pairs_per_text=2), PrototypeHead(), SupCon(), LayerLRDecay(0.8),
                                RDrop(), CPUMixedPrecision()])
    fit(learn, 2)
    assert no_hooks(learn) and torch.isfinite(torch.tensor(learn.recorder.losses)).all()
    for t in ('ReinitTop', 'ContrastiveStage', 'PrototypeHead'):
        assert [c for c in learn.cbs if type(c).__name__ == t][0].done

def test_supcon_with_gradient_accumulation(few, tiny):
    learn = fit(learner(few, tiny, [SupCon(), GradientAccumulation(16)]))
    assert no_hooks(learn) and len(learn.recorder.losses) > 0

def test_supcon_exception_leaves_no_hook(few, tiny):
    learn = learner(few, tiny, [SupCon()])
    learn.loss_func = lambda *a: (_ for _ in ()).throw(RuntimeError('boom'))
    with pytest.raises(RuntimeError, match='boom'): fit(learn)
    assert no_hooks(learn)

def test_native_pooling_is_refused(few, tiny):
    learn = learner(few, tiny, pooling='native')
    with pytest.raises(ValueError, match="pooling 'mean', 'cls' or 'norm'"): prototype_head(learn)
    with pytest.raises(ValueError, match='pooling native'):
        with head_inputs(learn.model): pass

def test_cls_pooling_works(few, tiny):
    learn = learner(few, tiny, pooling='cls')
    prototype_head(learn)
    assert contrastive_stage(learn, lr=1e-3, pairs_per_text=1)

def test_prototype_head_needs_every_class(few, tiny):
    learn = learner(few, tiny)
    learn.dls.train.dataset.labels = [0]*len(learn.dls.train.dataset.labels)
    with pytest.raises(ValueError, match='needs a training text of every class'): prototype_head(learn)

@pytest.mark.parametrize('make, msg', [
    (lambda: SupCon(weight=-0.1), 'weight must be a number between 0 and 1; got -0.1'),
    (lambda: SupCon(temperature='0.3'), "temperature must be a number > 0; got '0.3'"),
    (lambda: ReinitTop(n=-1), 'n must be an integer >= 0; got -1'),
    (lambda: ReinitTop(n=1.5), 'n must be an integer >= 0; got 1.5'),
    (lambda: LayerLRDecay(decay=2), 'decay must be a number > 0 and <= 1; got 2'),
    (lambda: ContrastiveStage(lr=-1), 'lr=-1'),
    (lambda: ContrastiveStage(bs=0), 'bs must be an integer >= 1; got 0'),
])
def test_bad_arguments(make, msg):
    with pytest.raises((TypeError, ValueError), match=msg.replace('(', r'\(').replace('[', r'\[')): make()

def test_llrd_and_reinit_bad_input(few, tiny):
    learn = learner(few, tiny)
    with pytest.raises(ValueError, match='lr=0'): llrd_lrs(learn, 0)
    with pytest.raises(ValueError, match='n must be an integer between 0 and 2; got 5'): reinit_top_layers(learn, 5)

def test_reinit_clears_optimizer_state(few, tiny):
    learn = fit(learner(few, tiny))
    top = list(learn.model.encoder_layers[-1].parameters())
    assert all(p in learn.opt.state for p in top[:1])
    reinit_top_layers(learn, 1, seed=0)
    assert not any(p in learn.opt.state and learn.opt.state[p] for p in top)
    fit(learn)   # trains on from the fresh layer

def test_norm_pooling_works(few, tiny):
    "the transfer techniques see the normalised, scaled embedding that the head sees"
    learn = learner(few, tiny, pooling='norm')
    lin = prototype_head(learn)
    with head_inputs(learn.model) as seen: learn.model.eval()(*learn.dls.one_batch()[:2])
    torch.testing.assert_close(seen[0].norm(dim=-1), learn.model.norm_scale.detach().expand(len(seen[0])))
    assert torch.isfinite(lin.weight).all() and contrastive_stage(learn, lr=1e-3, pairs_per_text=1)
