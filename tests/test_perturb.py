"perturb: the one mechanism that edits embeddings and hidden states; hooks, masks, norms, exit paths, bad input."
import pytest, torch
from torch import nn
from fastai.callback.core import CancelBatchException
from fmcombo.learner import load_backbone
from fmcombo.perturb import perturb, Perturb, new_delta, masked_norm, normalize, project, embedding_dim

@pytest.fixture(scope='module')
def model(tiny): return load_backbone(tiny, num_labels=3).eval()

@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 900, (3, 7), generator=g)
    mask = torch.tensor([[1]*7, [1]*5 + [0]*2, [1]*2 + [0]*5])
    return ids, mask, torch.tensor([0, 1, 2])

def no_hooks(m): return all(not x._forward_hooks and not x._forward_pre_hooks for x in m.modules())

def grad_wrt_delta(model, ids, mask, y, **kw):
    delta = new_delta(model, mask)
    with perturb(model, mask, delta=delta, **kw) as p: loss = nn.functional.cross_entropy(model(ids, mask), y)
    return torch.autograd.grad(loss, p.delta)[0], loss

def test_delta_gradient_masked_and_params_untouched(model, batch):
    ids, mask, y = batch
    for p in model.parameters(): p.grad = None
    g, _ = grad_wrt_delta(model, ids, mask, y)
    assert g.shape == (3, 7, embedding_dim(model))
    assert g[mask == 0].abs().sum() == 0 and (masked_norm(g, mask) > 0).all()
    assert all(p.grad is None for p in model.parameters())      # autograd.grad on delta writes no parameter .grad
    assert no_hooks(model)

def test_zero_delta_is_identity_and_padding_edit_ignored(model, batch):
    ids, mask, _ = batch
    with torch.no_grad():
        clean = model(ids, mask)
        with perturb(model, mask, delta=torch.zeros(3, 7, 16)): torch.testing.assert_close(model(ids, mask), clean, rtol=0, atol=0)
        big = torch.zeros(3, 7, 16); big[mask == 0] = 100.              # only on padding: masked out
        with perturb(model, mask, delta=big): torch.testing.assert_close(model(ids, mask), clean)

def test_ascent_raises_loss(model, batch):
    ids, mask, y = batch
    g, loss = grad_wrt_delta(model, ids, mask, y)
    with torch.no_grad(), perturb(model, mask, delta=project(normalize(g, mask), mask, 0.5)):
        adv = nn.functional.cross_entropy(model(ids, mask), y)
    assert adv > loss

def test_frozen_embeddings(model, batch):
    ids, mask, y = batch
    g0, _ = grad_wrt_delta(model, ids, mask, y)
    model.get_input_embeddings().weight.requires_grad_(False)
    try: g1, _ = grad_wrt_delta(model, ids, mask, y)
    finally: model.get_input_embeddings().weight.requires_grad_(True)
    torch.testing.assert_close(g0, g1)

def test_autocast_bf16(model, batch):
    ids, mask, y = batch
    delta = new_delta(model, mask)
    with torch.autocast('cpu', dtype=torch.bfloat16), perturb(model, mask, delta=delta):
        loss = nn.functional.cross_entropy(model(ids, mask).float(), y)
    (g,) = torch.autograd.grad(loss, delta)
    assert g.dtype == torch.float32 and torch.isfinite(g).all() and g[mask == 0].abs().sum() == 0

@pytest.mark.parametrize('exc', [RuntimeError, CancelBatchException, KeyboardInterrupt])
@pytest.mark.parametrize('layer', [None, 1])
def test_hooks_removed_on_every_exit(model, batch, exc, layer):
    ids, mask, _ = batch
    with pytest.raises(exc):
        with perturb(model, delta=new_delta(model, mask, mag=1., layer=layer), layer=layer):
            model(ids, mask); raise exc()
    assert no_hooks(model)

def test_exception_inside_hook_fn(model, batch):
    ids, mask, _ = batch
    def bad(h, m): raise ValueError('broken fn')
    with pytest.raises(ValueError, match='broken fn'):
        with perturb(model, mask, fn=bad): model(ids, mask)
    assert no_hooks(model)

def test_mask_read_from_call(model, batch):
    ids, mask, _ = batch
    seen = []
    def spy(h, m): seen.append(m); return h
    with perturb(model, fn=spy): model(ids, attention_mask=mask); model(ids, mask); model(ids)
    assert torch.equal(seen[0], mask) and torch.equal(seen[1], mask) and torch.equal(seen[2], torch.ones_like(ids))
    assert no_hooks(model)

def test_fn_keeps_padding_and_layer_hook(model, batch):
    ids, mask, _ = batch
    outs = []
    for layer in (None, 0, 1):
        with perturb(model, mask, fn=lambda h, m: h + 1., layer=layer) as p:
            h = p.module.register_forward_hook(lambda mod, a, o: outs.append(o[0] if isinstance(o, tuple) else o))
            try: model(ids, mask)
            finally: h.remove()
        with torch.no_grad():
            ref = []
            h = p.module.register_forward_hook(lambda mod, a, o: ref.append(o[0] if isinstance(o, tuple) else o))
            try: model(ids, mask)
            finally: h.remove()
        diff = (outs[-1] - ref[0]).detach()
        torch.testing.assert_close(diff[mask == 1], torch.ones_like(diff[mask == 1]))
        assert diff[mask == 0].abs().sum() == 0
    assert no_hooks(model)

def test_tuple_output_layer(batch):
    ids, mask, _ = batch
    class Layer(nn.Module):
        def forward(self, h): return (h*2, 'extra')
    class Toy(nn.Module):
        def __init__(self):
            super().__init__(); self.emb = nn.Embedding(1000, 4); self.encoder_layers = nn.ModuleList([Layer()])
        def get_input_embeddings(self): return self.emb
        def forward(self, ids, mask): return self.encoder_layers[0](self.emb(ids))
    toy = Toy()
    with perturb(toy, mask, delta=torch.ones(3, 7, 4), layer=0): out = toy(ids, mask)
    assert out[1] == 'extra'
    torch.testing.assert_close(out[0] - toy(ids, mask)[0], mask[..., None].float().expand(3, 7, 4))

def test_once(model, batch):
    ids, mask, _ = batch
    p = perturb(model, mask, delta=new_delta(model, mask, mag=1.), once=True).attach()
    with torch.no_grad(): a, b = model(ids, mask), model(ids, mask)
    assert not torch.equal(a, b) and p.calls == 1 and not p.active and no_hooks(model)

def test_norm_helpers():
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    x = torch.randn(2, 3, 5)*10
    p = project(x, mask, 2.)
    torch.testing.assert_close(masked_norm(p, mask), torch.tensor([2., 2.]))
    assert p[mask == 0].abs().sum() == 0
    small = x*1e-4*mask[..., None]
    torch.testing.assert_close(project(small, mask, 2.), small)
    n = normalize(torch.tensor([[[float('nan')]*5]*3]*2), mask)
    assert torch.isfinite(n).all()

def test_new_delta_scale(model):
    torch.manual_seed(0)
    mask = torch.ones(64, 100, dtype=torch.long); mask[:32, 10:] = 0
    d = new_delta(model, mask, mag=2.)
    assert d.requires_grad and d.is_leaf and d.dtype == torch.float32
    n = masked_norm(d, mask)
    assert abs(n[:32].mean() - 2/3**0.5) < 0.1 and abs(n[32:].mean() - 2/3**0.5) < 0.05   # independent of length
    assert d[mask == 0].abs().sum() == 0

def test_bad_input(model, batch):
    ids, mask, _ = batch
    with pytest.raises(TypeError, match='get_input_embeddings'): perturb(nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r'layer must be an int in \[0, 2\).*got 5'): perturb(model, layer=5)
    with pytest.raises(TypeError, match='fn must be callable'): perturb(model, fn=3)
    with pytest.raises(ValueError, match='mag must be a number >= 0'): new_delta(model, mask, mag=-1.)
    with pytest.raises(ValueError, match='eps must be a number >= 0'): project(torch.zeros(3, 7, 16), mask, -0.1)
    with pytest.raises(ValueError, match=r'delta has shape \(3, 6, 16\)'):
        with perturb(model, mask, delta=torch.zeros(3, 6, 16)): model(ids, mask)
    with pytest.raises(ValueError, match=r'mask has shape \(3, 5\)'):
        with perturb(model, mask[:, :5], delta=torch.zeros(3, 7, 16)): model(ids, mask)
    with pytest.raises(ValueError, match='fn must return a tensor of shape'):
        with perturb(model, mask, fn=lambda h, m: h[:, :2]): model(ids, mask)
    assert no_hooks(model)
