"The same seed on the same machine gives bit-identical weights on the CPU, for plain training and for each technique."
import pytest, torch
import fingerprints as fp

def _state(model): return {k: v.detach().clone() for k, v in model.state_dict().items()}

def _run(name, tiny, data):
    from fmcombo.data import fm_dls
    from fmcombo.learner import fm_learner
    tfms, cbs, epochs = fp._runs()[name]
    torch.manual_seed(0)
    learn = fm_learner(fm_dls(data, backbone=tiny, bs=8, max_len=64, seed=0, text_tfms=tfms or None), cbs=cbs())
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, 1e-3)
    return _state(learn.model)

def _distill(tiny, data):
    from fmcombo.data import fm_dls
    from fmcombo.learner import fm_learner
    from fmcombo.ensemble import Ensemble, Distill
    teacher = fm_learner(fm_dls(data, backbone=tiny, bs=8, max_len=64, seed=1))
    with teacher.no_bar(), teacher.no_logging(): teacher.fit_one_cycle(1, 1e-3)
    learn = fm_learner(fm_dls(data, backbone=tiny, bs=8, max_len=64, seed=0), cbs=[Distill(Ensemble([teacher]))])
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 1e-3)
    return _state(learn.model)

@pytest.fixture(scope='module')
def data(): return fp._data()

@pytest.mark.parametrize('name', list(fp._runs()) + ['Distill'])
def test_same_seed_same_weights(name, tiny, data):
    torch.set_num_threads(1)
    run = (lambda: _distill(tiny, data)) if name == 'Distill' else (lambda: _run(name, tiny, data))
    a, b = run(), run()
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"{name}: {len(diff)} tensors differ between two runs with the same seed, e.g. {diff[:3]}"
