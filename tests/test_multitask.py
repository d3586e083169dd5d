"Multi-task: joint training, missing labels, saving and loading, TaskSet, callbacks, and bad input."
import json, math, random, subprocess, sys
import numpy as np, pandas as pd, pytest, torch
from fmcombo.data import fm_dls
from fmcombo.learner import fm_learner
from fmcombo.multitask import mt_dls, mt_learner, load_mt_learner, TaskSet, MTLoss, MISSING
from fmcombo.adversarial import FGM, FreeLB, SMART
from fmcombo.augment import EmbedMix, RDrop, NEFTune
from fastai.callback.core import Callback

def toy(n=96, seed=0, missing_every=3):
    "Two tasks on the same texts: which animal (cat/dog), which mood (good/bad); every 3rd row has no mood"
    rng = random.Random(seed)
    filler = 'the a my our this that one old new big small quiet loud morning evening house garden street park'.split()
    rows = []
    for i in range(n):
        animal, mood = rng.choice(['cat', 'dog']), rng.choice(['good', 'bad'])
        words = rng.sample(filler, 6) + [animal, animal, mood, mood]
        rng.shuffle(words)
        rows.append((' '.join(words), animal, mood if (not missing_every or i % missing_every) else None))
    return pd.DataFrame(rows, columns=['text', 'animal', 'mood'])

@pytest.fixture(scope='module')
def trained(tiny):
    learn = mt_learner(mt_dls(toy(), label_cols=['animal', 'mood'], valid=toy(64, seed=1, missing_every=0), backbone=tiny, bs=8, seed=0))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(6, 1e-2)
    return learn

def test_joint_training_learns_both_tasks(trained):
    names = trained.recorder.metric_names[1:-1]
    assert 'animal_accuracy' in names and 'mood_accuracy' in names
    vals = dict(zip(names[2:], trained.recorder.values[-1][2:]))
    assert vals['animal_accuracy'] > 0.7 and vals['mood_accuracy'] > 0.7, vals   # chance: 0.5
    test = toy(64, seed=1, missing_every=0)
    table = trained.predict_texts(test.text)
    assert (table.animal == test.animal).mean() > 0.7 and (table.mood == test.mood).mean() > 0.7

def test_missing_label_adds_no_loss_and_no_gradient(tiny):
    dls = mt_dls(toy(16), label_cols=['animal', 'mood'], backbone=tiny, bs=8, seed=0)
    learn = mt_learner(dls)
    x, m, _ = dls.one_batch()
    y = torch.stack([torch.tensor([0, 1]*4), torch.full((8,), MISSING)], 1)
    learn.model.train()
    loss = learn.loss_func(learn.model(x, m), y)
    loss.backward()
    mood = learn.model.head.heads[1][1]
    assert torch.count_nonzero(mood.weight.grad) == 0 and torch.count_nonzero(mood.bias.grad) == 0
    assert torch.count_nonzero(learn.model.head.heads[0][1].weight.grad) > 0
    # a row without a mood label leaves the mood loss what the labelled rows make it
    pred = torch.randn(8, 4)
    y2 = torch.stack([torch.tensor([0, 1]*4), torch.tensor([0, 1, MISSING, MISSING, 1, 0, MISSING, 1])], 1)
    lf = MTLoss(learn.model.slices, weights={'animal': 0.})
    keep = y2[:, 1] != MISSING
    ref = torch.nn.functional.cross_entropy(pred[keep][:, 2:], y2[keep, 1])
    torch.testing.assert_close(lf(pred, y2), ref)
    torch.testing.assert_close(MTLoss(learn.model.slices)(pred, torch.full((8, 2), MISSING)), torch.tensor(0.))

def test_save_load_in_fresh_process(trained, tmp_path):
    trained.save_fm(tmp_path/'m')
    assert json.loads((tmp_path/'m'/'fm.json').read_text())['vocabs'] == {'animal': ['cat', 'dog'], 'mood': ['bad', 'good']}
    assert not list((tmp_path/'m').glob('*.bin')) and not list((tmp_path/'m').glob('*.pkl'))
    texts = toy(10, seed=5).text.tolist()
    here = trained.predict_texts(texts, all_probs=True)
    code = ("import sys, json; from fmcombo.multitask import load_mt_learner; "
            "l = load_mt_learner(sys.argv[1]); print(l.predict_texts(json.loads(sys.argv[2]), all_probs=True).to_json())")
    out = subprocess.run([sys.executable, '-c', code, str(tmp_path/'m'), json.dumps(texts)], capture_output=True, text=True, check=True)
    there = pd.read_json(__import__('io').StringIO(out.stdout.strip().splitlines()[-1]))
    assert (there.animal == here.animal).all() and (there.mood == here.mood).all()
    np.testing.assert_allclose(there.filter(like='_prob').to_numpy(), here.filter(like='_prob').to_numpy(), atol=1e-5)
    with pytest.raises(ValueError, match='not a folder written by save_fm'): load_mt_learner(tmp_path)

def test_taskset_answers_joint_and_single(trained, tiny, tmp_path):
    test = toy(40, seed=3, missing_every=0)
    single = fm_learner(fm_dls(test[['text', 'mood']].rename(columns={'mood': 'label'}), backbone=tiny, bs=8, seed=0))
    ts = TaskSet({'pets': trained, 'sentiment': single})
    assert len(ts.groups) == 2   # different backbone weights: two passes
    table = ts.predict_texts(test.text)
    assert list(table.columns) == ['text', 'animal', 'animal_prob', 'mood', 'mood_prob', 'sentiment', 'sentiment_prob']
    np.testing.assert_allclose(ts.task_probs(test.text)['sentiment'], single.predict_texts(test.text)[1], atol=1e-5)
    np.testing.assert_allclose(table.mood_prob, trained.predict_texts(test.text).mood_prob, atol=1e-5)
    # a shared backbone: one pass, the same answers
    single.model.backbone.load_state_dict(trained.model.backbone.state_dict())
    trained.save_fm(tmp_path/'pets')
    shared = TaskSet({'pets': tmp_path/'pets', 'sentiment': single})
    assert shared.groups == [['pets', 'sentiment']]
    np.testing.assert_allclose(shared.task_probs(test.text)['sentiment'], single.predict_texts(test.text)[1], atol=1e-5)
    label, idx, probs = shared.predict(test.text[0])['sentiment']
    assert label in ('bad', 'good') and probs.shape == (2,)
    with pytest.raises(KeyError, match="unknown task 'colour'"): shared.predict_texts(test.text, tasks=['colour'])

def test_dls_per_task_take_turns(tiny):
    df = toy(96)
    a = fm_dls(df[['text', 'animal']].iloc[:16].rename(columns={'animal': 'label'}), backbone=tiny, bs=8, seed=0)
    b = fm_dls(df[['text', 'mood']].dropna().iloc[:48].rename(columns={'mood': 'label'}), backbone=tiny, bs=8, seed=0)
    dls = mt_dls({'animal': a, 'mood': b}, seed=0)
    seen = []
    for x, m, y in dls.train:
        have = (y != MISSING).all(0).tolist()
        assert have.count(True) == 1
        seen.append('animal' if have[0] else 'mood')
    assert sorted(seen) == ['animal']*2 + ['mood']*6
    hot = mt_dls({'animal': a, 'mood': b}, temperature=1e6, seed=0).train
    draws = [t for _ in range(50) for t in hot.schedule()]
    assert 0.4 < draws.count('animal')/len(draws) < 0.6   # temperature → ∞: equal turns, whatever the sizes
    learn = mt_learner(dls)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    probs, targs = learn.get_preds(ds_idx=0)   # every training text once, in order
    assert probs.shape == (64, 4) and ((targs != MISSING).sum(1) == 1).all()
    assert (targs[:16, 0] != MISSING).all() and (targs[16:, 1] != MISSING).all()

@pytest.mark.parametrize('cb', [FGM, FreeLB, SMART, EmbedMix, RDrop, NEFTune])
def test_technique_callbacks_train(tiny, cb):
    learn = mt_learner(mt_dls(toy(24), label_cols=['animal', 'mood'], valid=toy(8, seed=1), backbone=tiny, bs=8, seed=0), cbs=[cb()])
    before = [p.detach().clone() for p in learn.model.head.parameters()]
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert all(not torch.equal(a, b) for a, b in zip(before, learn.model.head.parameters()))
    assert np.isfinite(learn.recorder.losses[-1].item())

class _FailInBeforeFit(Callback):
    order = 100   # after every technique callback has set up its hooks or loss
    def before_fit(self): raise RuntimeError('stopped in before_fit')

def test_a_fit_stopped_in_before_fit_leaves_the_learner_clean(tiny):
    "FMLearner runs after_cancel_fit on any exception: the multi-task loss and model come back as they were, and train again"
    learn = mt_learner(mt_dls(toy(24), label_cols=['animal', 'mood'], backbone=tiny, bs=8, seed=0), cbs=[EmbedMix(), NEFTune(), FGM()])
    loss = learn.loss_func
    with learn.no_bar(), learn.no_logging():
        with pytest.raises(RuntimeError, match='stopped in before_fit'): learn.fit(1, 1e-3, cbs=[_FailInBeforeFit()])
        assert learn.loss_func is loss and all(not m._forward_hooks and not m._forward_pre_hooks for m in learn.model.modules())
        learn.fit(1, 1e-3)
    assert np.isfinite(learn.recorder.losses[-1].item())

def test_fastai_training_methods(tiny):
    learn = mt_learner(mt_dls(toy(24), label_cols=['animal', 'mood'], valid_pct=0.25, backbone=tiny, bs=8, seed=0))
    with learn.no_bar(), learn.no_logging():
        learn.fine_tune(1, 1e-3, freeze_epochs=1)
        learn.fit_one_cycle(1, slice(1e-4, 1e-3))
        learn.lr_find(num_it=5, show_plot=False)
    probs, targs = learn.get_preds()
    assert probs.shape == (len(learn.dls.valid.dataset), 4) and targs.shape[1] == 2
    torch.testing.assert_close(probs[:, :2].sum(1), torch.ones(len(probs)))

def test_bad_input(tiny, trained):
    df = toy(24)
    with pytest.raises(ValueError, match=r"\['animal'\] are used twice"): mt_dls(df, label_cols=['animal', 'animal'], backbone=tiny)
    with pytest.raises(KeyError, match="label column 'urgency' not found; columns are"): mt_dls(df, label_cols=['animal', 'urgency'], backbone=tiny)
    with pytest.raises(ValueError, match="task 'mood' has 1 class"): mt_dls(df.assign(mood='good'), label_cols=['animal', 'mood'], backbone=tiny)
    with pytest.raises(ValueError, match='needs label_cols'): mt_dls(df, backbone=tiny)
    with pytest.raises(TypeError, match='must come from fm_dls'): mt_dls({'a': df})
    with pytest.raises(ValueError, match='temperature must be a number > 0'):
        mt_dls({'a': fm_dls(df[['text', 'animal']].rename(columns={'animal': 'label'}), backbone=tiny)}, temperature=0)
    with pytest.raises(ValueError, match="task 'animal': labels \\['fish'\\] are not in the vocabulary"):
        mt_dls(df, label_cols=['animal', 'mood'], valid=df.assign(animal='fish'), backbone=tiny)
    with pytest.raises(KeyError, match="unknown task 'colour'; the tasks are"): trained.predict('a cat', tasks=['colour'])
    with pytest.raises(TypeError, match='predict_texts'): trained.predict(['a list'])
    with pytest.raises(TypeError, match='must come from mt_dls'): mt_learner(fm_dls(df[['text', 'animal']].rename(columns={'animal': 'label'}), backbone=tiny))
    with pytest.raises(ValueError, match='weights names unknown tasks'): mt_learner(trained.dls, weights={'colour': 1.})
    with pytest.raises(ValueError, match="task 'animal' is answered by two members"): TaskSet({'pets': trained, 'animal': trained})
    with pytest.raises(TypeError, match="member 'x' must be a learner"): TaskSet({'x': 3})

def test_prediction_frees_its_loader_at_once(trained, monkeypatch):
    "As for the single-task learner: the prediction loader's reference cycle is broken, so it is freed without a garbage collection"
    from test_learner import _loaders_freed_without_gc
    made = _loaders_freed_without_gc(trained, lambda: trained.predict_texts(toy(16, seed=2).text), monkeypatch)
    assert made and all(r() is None for r in made)
