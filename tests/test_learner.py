"The learner: training, prediction, saving and loading, and bad input."
import json, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from fmcombo.data import fm_dls
from fmcombo.backbone import resolve_backbone
from fmcombo.learner import fm_learner, load_fm_learner, load_backbone

@pytest.fixture
def learn(tiny, few, bbc):
    return fm_learner(fm_dls(few, valid=bbc['test'].select(range(20)), backbone=tiny, bs=8, seed=0))

def test_training_lowers_loss(tiny, few):
    dls = fm_dls(few, backbone=tiny, bs=4, seed=0)
    learn = fm_learner(dls)
    x, m, y = dls.one_batch()
    with torch.no_grad(): before = learn.loss_func(learn.model.eval()(x, m), y).item()
    learn.fit_one_cycle(8, 1e-2)
    with torch.no_grad(): after = learn.loss_func(learn.model.eval()(x, m), y).item()
    assert after < before

def test_same_seed_same_model(tiny, few):
    def run():
        learn = fm_learner(fm_dls(few, backbone=tiny, bs=4, seed=3))
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-3)
        return learn.predict_texts(['stocks and shares'])[1]
    np.testing.assert_array_equal(run(), run())

def test_get_preds_in_dataset_order(learn, bbc):
    probs, targs = learn.get_preds()
    assert targs.tolist() == bbc['test'].select(range(20))['label']
    labels, P = learn.predict_texts(bbc['test'].select(range(20))['text'])
    np.testing.assert_allclose(P, probs.numpy(), atol=1e-5)

def test_predict_contract(learn):
    label, idx, probs = learn.predict('A new film opens on Friday.')
    assert label == learn.dls.vocab[idx] and probs.shape == (5,)
    with pytest.raises(TypeError, match='predict_texts'): learn.predict(['a list'])
    with pytest.raises(TypeError, match='not one string'): learn.predict_texts('one string')
    with pytest.raises(TypeError, match=r'rows \[1\]'): learn.predict_texts(['fine', None])

def test_save_fm_is_atomic(learn, tmp_path, monkeypatch):
    target = tmp_path/'model'
    learn.save_fm(target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    import fmcombo.learner as L
    def boom(*a, **k): raise RuntimeError('disk full')
    monkeypatch.setattr(learn.dls.tokenizer, 'save_pretrained', boom)
    with pytest.raises(RuntimeError, match='disk full'): learn.save_fm(target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before     # the older folder is intact
    assert [p.name for p in tmp_path.iterdir()] == ['model']                 # nothing half-written left
    with pytest.raises(RuntimeError): learn.save_fm(tmp_path/'new')
    assert not (tmp_path/'new').exists()

def test_save_fm_refuses_to_clobber(learn, tmp_path):
    (tmp_path/'f').write_text('x')
    with pytest.raises(FileExistsError, match='is a file'): learn.save_fm(tmp_path/'f')
    (tmp_path/'data').mkdir(); (tmp_path/'data'/'precious.txt').write_text('x')
    with pytest.raises(FileExistsError, match='not an fmcombo model'): learn.save_fm(tmp_path/'data')
    assert (tmp_path/'data'/'precious.txt').read_text() == 'x'

def test_load_in_fresh_process(learn, tmp_path):
    learn.save_fm(tmp_path/'m')
    texts = ['Parliament votes on the budget today.', 'The striker scored twice.']
    expected = learn.predict_texts(texts)[1]
    code = ("import json,sys; from fmcombo.learner import load_fm_learner; l=load_fm_learner(sys.argv[1]); "
            "print(json.dumps(l.predict_texts(json.loads(sys.argv[2]))[1].tolist()))")
    out = subprocess.run([sys.executable, '-c', code, str(tmp_path/'m'), json.dumps(texts)], capture_output=True, text=True, check=True)
    np.testing.assert_allclose(np.array(json.loads(out.stdout.strip().splitlines()[-1])), expected, atol=1e-6)

def test_load_fm_learner_bad_folder(tmp_path, tiny):
    with pytest.raises(FileNotFoundError): load_fm_learner(tmp_path/'missing')
    with pytest.raises(ValueError, match='not a folder written by save_fm'): load_fm_learner(tiny)

def test_backbone_errors(tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'): resolve_backbone('/no/such/model')
    (tmp_path/'empty').mkdir()
    with pytest.raises(ValueError, match='not a model folder'): resolve_backbone(tmp_path/'empty')
    with pytest.raises(ValueError, match='num_labels'): load_backbone(tiny, num_labels=1)

def test_learner_refuses_other_backbone(tiny, few):
    dls = fm_dls(few, backbone=tiny, bs=4)
    with pytest.raises(ValueError, match='tokenised for'): fm_learner(dls, backbone='sentence-transformers/all-MiniLM-L6-v2')

def test_fastai_tools_work(learn):
    from fastai.interpret import ClassificationInterpretation
    with learn.no_bar(), learn.no_logging(): learn.fine_tune(1, 1e-3)
    interp = ClassificationInterpretation.from_learner(learn)
    assert interp.confusion_matrix().shape == (5, 5)
    with learn.no_bar(), learn.no_logging(): res = learn.lr_find(show_plot=False, num_it=10)
    assert res.valley > 0

def _loaders_freed_without_gc(learner, predict, monkeypatch) -> list:
    "Weak references to every prediction loader `predict()` made, taken with the garbage collector off"
    import gc, weakref
    made, test_dl = [], learner.dls.test_dl
    def recording(*args, **kwargs):
        dl = test_dl(*args, **kwargs); made.append(weakref.ref(dl)); return dl
    monkeypatch.setattr(learner.dls, 'test_dl', recording)
    gc.collect(); gc.disable()
    try: predict()
    finally: gc.enable()
    return made

def test_prediction_frees_each_loader_at_once(learn, bbc, monkeypatch):
    "fastai's loaders are reference cycles: streamed prediction must break each chunk's, or chunks pile up until a full collection"
    texts = bbc['test'].select(range(40))['text']
    made = _loaders_freed_without_gc(learn, lambda: list(learn.predict_batches(texts, bs=8, chunk=10)), monkeypatch)
    assert len(made) == 4 and all(r() is None for r in made), [r() is None for r in made]
    assert learn.dl is None

def test_norm_pooling_trains_saves_and_loads(tiny, few, tmp_path):
    "pooling='norm': the scale is in the optimiser's last group, moves when trained, and survives save_fm/load_fm_learner"
    learn = fm_learner(fm_dls(few, backbone=tiny, bs=4, seed=0), pooling='norm')
    scale = learn.model.norm_scale
    start = scale.item()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 1e-2)
    assert any(p is scale for p in learn.opt.param_groups[-1]['params']) and scale.item() != start
    labels, probs = learn.predict_texts(['stocks and shares', 'a new film'])
    learn.save_fm(tmp_path/'m')
    back = load_fm_learner(tmp_path/'m')
    assert back.model.pooling == 'norm' and back.model.norm_scale.item() == scale.item()
    np.testing.assert_allclose(back.predict_texts(['stocks and shares', 'a new film'])[1], probs, atol=1e-5)
