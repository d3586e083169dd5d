"fmcombo.experiment on the tiny backbone: recipes, compare, resume, the report."
import dataclasses, json
from pathlib import Path
import pandas as pd, pytest
from fmcombo.data import fm_dls
from fmcombo.learner import FMLearner
from fmcombo.ensemble import Ensemble
from fmcombo.experiment import Recipe, BUILTIN_RECIPES, get_recipe, list_recipes, compare, read_table, sample_frame

QUICK = dict(epochs=2, lr=1e-3)

@pytest.fixture(scope='module')
def csv(tmp_path_factory, bbc):
    f = tmp_path_factory.mktemp('data')/'bbc.csv'
    read_table(bbc['train'].select(range(0, 1700, 10))).to_csv(f, index=False)
    return str(f)

def quick_recipes(): return [Recipe('plain', **QUICK), Recipe('fgm', cbs=['FGM'], **QUICK)]

def test_recipe_round_trips_yaml_and_json(tmp_path):
    for name in BUILTIN_RECIPES:
        r = get_recipe(name)
        for suffix in ('.yaml', '.json'):
            assert Recipe.load(r.save(tmp_path/f'{name}{suffix}')) == r
    assert list(list_recipes().index) == list(BUILTIN_RECIPES)
    assert 'yaml' in (tmp_path/'plain.yaml').suffix and 'name: plain' in (tmp_path/'plain.yaml').read_text()

def small(r:Recipe) -> Recipe:
    "The recipe at one epoch, with small ensembles and few unlabelled texts"
    kw = dict(epochs=1, lr=1e-3)
    if r.ensemble: kw['ensemble'] = {**r.ensemble, 'k': 2}
    if r.tapt: kw['tapt'] = {**r.tapt, 'texts': 16}
    if r.self_train: kw['self_train'] = {**r.self_train, 'texts': 16, 'rounds': 1, 'threshold': 0.0}
    if r.distill: kw['distill'] = {**r.distill, 'texts': 8, 'epochs': 1}
    if any('SWA' in c for c in r.cbs): kw['cbs'] = [{'SWA': {'start_epoch': 0}}]
    return dataclasses.replace(r, **kw)

@pytest.mark.parametrize('name', list(BUILTIN_RECIPES))
def test_every_builtin_recipe_trains(name, few, tiny, bbc):
    res = small(get_recipe(name)).train(fm_dls(few, backbone=tiny, bs=8, seed=0), seed=0, unlabelled=bbc['train']['text'][:40])
    # the tiny random model predicts two or three of the five classes, so self-training (balanced per class) adds nothing, and says so
    expected = ['self_train added no pseudo-labels'] if name == 'self_train' else []
    assert isinstance(res.model, (FMLearner, Ensemble)) and res.seconds['train'] > 0 and [n[:33] for n in res.notes] == expected
    labels, probs = res.model.predict_texts(['Shares fell.', 'The striker scored twice.'])
    assert len(labels) == 2 and probs.shape == (2, 5)

def table_numbers(res): return res.table.drop(columns=['train s/run', '× plain', 'inference s/1k texts'])

def test_compare_table_plots_report_resume_and_determinism(csv, tiny, tmp_path, capsys):
    out = tmp_path/'a'
    res = compare(quick_recipes(), csv, n_per_class=4, seeds=[0, 1], backbone=tiny, out=out, progress=False)
    assert list(res.table.index) == ['plain', 'fgm'] and (res.table['seeds'] == 2).all()
    assert res.table.loc['fgm', 'Δ vs plain, points [95% CI]'].count('[') == 1
    for f in ('results.json', 'report.md', 'report.html', 'accuracy.png', 'gain_vs_cost.png'): assert (out/f).stat().st_size > 0
    assert (out/'report.html').read_text().count('data:image/png;base64,') == 2
    info = json.loads((out/'results.json').read_text())
    assert len(info['runs']) == 4 and info['environment']['torch'] and info['seeds'] == [0, 1]
    lines = capsys.readouterr().out
    assert 'epoch 2/2' in lines and '\r' not in lines   # one plain line per epoch and run when not a terminal
    # the same seeds give the same table (timings aside)
    res2 = compare(quick_recipes(), csv, n_per_class=4, seeds=[0, 1], backbone=tiny, out=tmp_path/'b', progress=False)
    pd.testing.assert_frame_equal(table_numbers(res), table_numbers(res2))

def test_an_interrupted_compare_resumes(csv, tiny, tmp_path, monkeypatch, capsys):
    out = tmp_path/'c'
    calls = []
    orig = Recipe.train
    def stop_after_first(self, *a, **k):
        if calls: raise KeyboardInterrupt
        calls.append(self.name); return orig(self, *a, **k)
    monkeypatch.setattr(Recipe, 'train', stop_after_first)
    with pytest.raises(KeyboardInterrupt): compare(quick_recipes(), csv, n_per_class=4, seeds=[0], backbone=tiny, out=out, progress=False)
    assert [p.name for p in (out/'runs').iterdir()] == ['plain-seed0.json']
    monkeypatch.setattr(Recipe, 'train', lambda self, *a, **k: (calls.append(self.name), orig(self, *a, **k))[1])
    calls.clear(); capsys.readouterr()
    res = compare(quick_recipes(), csv, n_per_class=4, seeds=[0], backbone=tiny, out=out, progress=False)
    assert calls == ['fgm'] and '1 of 2 runs done earlier' in capsys.readouterr().out
    assert list(res.table.index) == ['plain', 'fgm']

def test_sample_frame_is_seeded(bbc):
    train = read_table(bbc['train'])
    a, pool = sample_frame(train, 4, seed=3)
    b, _ = sample_frame(train, 4, seed=3)
    assert a.equals(b) and len(a) == 20 and len(pool) == len(train) - 20
