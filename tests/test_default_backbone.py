"The real default backbone, in a few bounded tests: it loads offline and learns."
import os, pytest, torch
from fmcombo.backbone import resolve_backbone, load_tokenizer, backbone_max_len
from fmcombo.learner import load_backbone

def test_default_loads_offline():
    m = load_backbone(None, num_labels=3)
    assert sum(p.numel() for p in m.backbone.parameters()) == pytest.approx(22.7e6, rel=0.01)
    assert backbone_max_len(None) == 512
    tok = load_tokenizer(None)
    enc = tok(['fmcombo works offline'], return_tensors='pt')
    m.eval()
    with torch.no_grad(): assert m(enc['input_ids'], enc['attention_mask']).shape == (1, 3)

def test_default_learns_a_few_examples(bbc):
    from fmcombo.data import sample_per_class, fm_dls
    from fmcombo.learner import fm_learner
    few = sample_per_class(bbc['train'], 2, seed=0)
    dls = fm_dls(few, bs=10, max_len=64, seed=0)
    learn = fm_learner(dls)
    x, m, y = dls.one_batch()
    with torch.no_grad(): before = learn.loss_func(learn.model.eval()(x, m), y).item()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(3, 1e-3)
    with torch.no_grad(): after = learn.loss_func(learn.model.eval()(x, m), y).item()
    assert after < before
