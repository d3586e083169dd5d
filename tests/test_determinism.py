"The same seed on the same machine gives bit-identical weights on the CPU, for plain training and for each technique."
import pytest, torch
import fingerprints as fp

def _state(model): return {k: v.detach().clone() for k, v in model.state_dict().items()}

def _run(name, tiny, data): return _state(fp.train(name, tiny, data))
def _distill(tiny, data): return _state(fp.train_distill(tiny, data))

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
