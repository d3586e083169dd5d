"""Every bad input the library meets, in one table: each case asserts the error type, that the message names the
offending value and what was expected, and that nothing was written (the test's folder, which is also the working
directory, is listed before and after). The command line's own bad inputs are tested with the command line."""
import math
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from safetensors.torch import save_file

from fmcombo.backbone import resolve_backbone
from fmcombo.data import load_corpus, sample_per_class, fm_dls
from fmcombo.learner import fm_learner, load_fm_learner, save_fm, FitCheckpoint, check_lr

def _df(**over):
    d = dict(text=['the match ended', 'shares fell', 'a new album', 'rain again', 'the vote', 'profits rose'],
             label=['sport', 'business', 'music', 'sport', 'business', 'music'])
    d.update(over)
    return pd.DataFrame(d)

@pytest.fixture(scope='module')
def env(tiny, tmp_path_factory):
    "What the cases use, built outside the folder they watch"
    d = tmp_path_factory.mktemp('bad_input_env')
    dls = fm_dls(_df(), backbone=tiny, bs=2, seed=0)
    learn = fm_learner(dls)
    learn.save_fm(d/'model')
    return dict(tiny=tiny, dls=dls, learn=learn, model=d/'model')

def _copy_model(e, dest):
    import shutil; shutil.copytree(e['model'], dest); return dest

def _corrupt(e, tmp):
    m = _copy_model(e, tmp/'m')
    b = (m/'model.safetensors').read_bytes(); (m/'model.safetensors').write_bytes(b[:len(b)//2])
def _pickled_model(e, tmp): _copy_model(e, tmp/'m'); (tmp/'m'/'pytorch_model.bin').write_bytes(b'\x80\x04N.')
def _pickled_backbone(e, tmp):
    import shutil; shutil.copytree(e['tiny'], tmp/'bb'); (tmp/'bb'/'pytorch_model.bin').write_bytes(b'\x80\x04N.')
def _bad_meta(e, tmp): _copy_model(e, tmp/'m'); (tmp/'m'/'fm.json').write_text('{"vocab": ')
def _other_weights(e, tmp):
    _copy_model(e, tmp/'m'); save_file({'x': torch.zeros(3)}, str(tmp/'m'/'model.safetensors'))
def _empty_dir(e, tmp): (tmp/'empty').mkdir()
def _not_model_dir(e, tmp): (tmp/'notes').mkdir(); (tmp/'notes'/'a.txt').write_text('keep me')
def _a_file(e, tmp): (tmp/'file').write_text('keep me')
def _csv(e, tmp): _df().rename(columns={'text': 'body'}).to_csv(tmp/'in.csv', index=False)

def _callbacks():
    from fmcombo.adversarial import FGM, PGD, FreeLB, SMART, AWP
    from fmcombo.augment import EmbedMix, TMix, NEFTune, RDrop, EDA, AEDA, CharNoise
    from fmcombo.ensemble import SWA, SnapshotEnsemble, Distill, train_ensemble, Ensemble
    from fmcombo.robustness import A2T, TypoCorrector, Corrected
    return locals()
CB = _callbacks()

# (id, setup or None, action, error type, substrings the message must contain: the value and what was expected)
CASES = [
    # data: columns, empty data, classes, texts, labels, sizes
    ('fm_dls-no-text-column', None, lambda e, t: fm_dls(_df().rename(columns={'text': 'body'}), backbone=e['tiny']), KeyError, ["'text'", "columns are ['body', 'label']"]),
    ('fm_dls-no-label-column', None, lambda e, t: fm_dls(_df().drop(columns='label'), backbone=e['tiny']), KeyError, ["'label'", "columns are ['text']"]),
    ('fm_dls-empty-table', None, lambda e, t: fm_dls(_df().iloc[:0], backbone=e['tiny']), ValueError, ['is empty', 'at least one row']),
    ('fm_dls-single-class', None, lambda e, t: fm_dls(_df(label=['a']*6), backbone=e['tiny']), ValueError, ["single class ['a']", 'at least two']),
    ('fm_dls-None-text', None, lambda e, t: fm_dls(_df(text=['a', None, 'b', 'c', 'd', 'e']), backbone=e['tiny']), TypeError, ['None, NaN', 'rows [1]', 'list of strings']),
    ('fm_dls-empty-text', None, lambda e, t: fm_dls(_df(text=['a', '  ', 'b', 'c', 'd', 'e']), backbone=e['tiny']), ValueError, ['empty texts at rows [1]']),
    ('fm_dls-non-string-text', None, lambda e, t: fm_dls(_df(text=['a', 5, 'b', 'c', 'd', 'e']), backbone=e['tiny']), TypeError, ['(int)', 'rows [1]', 'list of strings']),
    ('fm_dls-NaN-label', None, lambda e, t: fm_dls(_df(label=['a', np.nan, 'b', 'a', 'b', 'a']), backbone=e['tiny']), ValueError, ['missing (NaN/None) labels at rows [1]']),
    ('fm_dls-unknown-valid-label', None, lambda e, t: fm_dls(_df(), valid=_df(label=['zzz']*6), backbone=e['tiny']), ValueError, ["['zzz']", 'not in the vocabulary']),
    ('fm_dls-bs-0', None, lambda e, t: fm_dls(_df(), backbone=e['tiny'], bs=0), ValueError, ['got 0', 'positive integer']),
    ('fm_dls-bs-negative', None, lambda e, t: fm_dls(_df(), backbone=e['tiny'], bs=-4), ValueError, ['got -4', 'positive integer']),
    ('fm_dls-max_len-0', None, lambda e, t: fm_dls(_df(), backbone=e['tiny'], max_len=0), ValueError, ['got 0', 'integer ≥ 2']),
    ('fm_dls-max_len-too-long', None, lambda e, t: fm_dls(_df(), backbone=e['tiny'], max_len=10_000), ValueError, ['max_len=10000', 'allows (512 tokens)']),
    ('fm_dls-valid_pct-1.5', None, lambda e, t: fm_dls(_df(), backbone=e['tiny'], valid_pct=1.5), ValueError, ['got 1.5', 'between 0 and 1']),
    ('fm_dls-valid-and-valid_pct', None, lambda e, t: fm_dls(_df(), valid=_df(), valid_pct=0.2, backbone=e['tiny']), ValueError, ['valid_pct=0.2', 'not both']),
    ('fm_dls-missing-csv', None, lambda e, t: fm_dls('nope.csv', backbone=e['tiny']), FileNotFoundError, ["'nope.csv'", 'no CSV file']),
    ('fm_dls-train-int', None, lambda e, t: fm_dls(42, backbone=e['tiny']), TypeError, ['got int', 'DataFrame']),
    ('fm_dls-text_tfms-not-callable', None, lambda e, t: fm_dls(_df(), backbone=e['tiny'], text_tfms=[5]), TypeError, ['text_tfms=[5]', 'callables']),
    ('sample_per_class-n-0', None, lambda e, t: sample_per_class(load_corpus('bbc_news')['train'], 0), ValueError, ['got 0', 'positive integer']),
    ('sample_per_class-n-too-large', None, lambda e, t: sample_per_class(load_corpus('bbc_news')['train'], 10_000), ValueError, ['has only', 'asked for 10000']),
    ('sample_per_class-no-label-column', None, lambda e, t: sample_per_class(load_corpus('bbc_news')['train'], 2, label_col='topic'), KeyError, ["'topic'", 'columns are']),
    ('load_corpus-unknown', None, lambda e, t: load_corpus('imdb'), ValueError, ["'imdb'", "bundled corpora are ['bbc_news', 'tweet_sentiment']"]),
    # backbones: wrong paths, folders that are not models, unknown names, pickles
    ('backbone-missing-path', None, lambda e, t: fm_dls(_df(), backbone='/no/such/model'), FileNotFoundError, ["'/no/such/model'", 'expected a local model folder']),
    ('backbone-not-a-name', None, lambda e, t: resolve_backbone('not a model!'), FileNotFoundError, ["'not a model!'", "hub name such as 'org/model'"]),
    ('backbone-unknown-hub-name', None, lambda e, t: fm_dls(_df(), backbone='no-such-org/no-such-model'), OSError, ["'no-such-org/no-such-model'", 'pass backbone=None']),
    ('backbone-empty-folder', _empty_dir, lambda e, t: fm_dls(_df(), backbone=t/'empty'), ValueError, ['empty', 'expected a folder with config.json']),
    ('backbone-int', None, lambda e, t: resolve_backbone(123), TypeError, ['int 123', 'hub name, a folder path or None']),
    ('backbone-pickle-folder', _pickled_backbone, lambda e, t: fm_learner(e['dls'], backbone=t/'bb'), ValueError, ["['pytorch_model.bin']", 'allow_pickle=True']),
    # the learner and its training hyper-parameters
    ('fm_learner-dls-list', None, lambda e, t: fm_learner([1, 2]), TypeError, ['got list', 'fm_dls']),
    ('fm_learner-other-backbone', None, lambda e, t: fm_learner(e['dls'], backbone='sentence-transformers/all-MiniLM-L6-v2'), ValueError, ['tokenised for', 'fm_dls(..., backbone=...)']),
    ('fm_learner-pooling-max', None, lambda e, t: fm_learner(e['dls'], pooling='max'), ValueError, ["'max'", "('mean', 'cls', 'native', 'norm')"]),
    ('fm_learner-head_dropout-1.5', None, lambda e, t: fm_learner(e['dls'], head_dropout=1.5), ValueError, ['1.5', '[0, 1)']),
    ('fm_learner-lr-negative', None, lambda e, t: fm_learner(e['dls'], lr=-1), ValueError, ['lr=-1', 'positive, finite']),
    ('fit_one_cycle-lr-negative', None, lambda e, t: e['learn'].fit_one_cycle(1, -1), ValueError, ['lr_max=-1', 'positive, finite']),
    ('fit_one_cycle-lr-0', None, lambda e, t: e['learn'].fit_one_cycle(1, 0), ValueError, ['lr_max=0', 'positive, finite']),
    ('fit_one_cycle-lr-nan', None, lambda e, t: e['learn'].fit_one_cycle(1, float('nan')), ValueError, ['lr_max=nan', 'positive, finite']),
    ('fit_one_cycle-lr-inf', None, lambda e, t: e['learn'].fit_one_cycle(1, math.inf), ValueError, ['lr_max=inf', 'positive, finite']),
    ('fit_one_cycle-lr-slice', None, lambda e, t: e['learn'].fit_one_cycle(1, slice(1e-5, -1)), ValueError, ['slice(1e-05, -1', 'positive, finite']),
    ('fit_one_cycle-lr-string', None, lambda e, t: e['learn'].fit_one_cycle(1, 'fast'), TypeError, ["lr_max='fast'", 'positive, finite']),
    ('fit_one_cycle-epochs-0', None, lambda e, t: e['learn'].fit_one_cycle(0, 1e-3), ValueError, ['n_epoch=0', 'integer ≥ 1']),
    ('fit_one_cycle-epochs-float', None, lambda e, t: e['learn'].fit_one_cycle(2.5, 1e-3), TypeError, ['n_epoch=2.5', 'integer ≥ 1']),
    ('fit-lr-0', None, lambda e, t: e['learn'].fit(1, lr=0), ValueError, ['lr=0', 'positive, finite']),
    ('fit-wd-negative', None, lambda e, t: e['learn'].fit(1, wd=-0.1), ValueError, ['wd=-0.1', 'finite weight decay ≥ 0']),
    ('fine_tune-base_lr-negative', None, lambda e, t: e['learn'].fine_tune(1, base_lr=-1e-3), ValueError, ['base_lr=-0.001', 'positive, finite']),
    ('fit_flat_cos-lr-negative', None, lambda e, t: e['learn'].fit_flat_cos(1, lr=-1e-3), ValueError, ['lr=-0.001', 'positive, finite']),
    ('FitCheckpoint-every-0', None, lambda e, t: FitCheckpoint(t/'ck', every=0), ValueError, ['every=0', 'integer ≥ 1']),
    # prediction
    ('predict_texts-empty', None, lambda e, t: e['learn'].predict_texts([]), ValueError, ['texts is empty', 'at least one text']),
    ('predict_texts-None', None, lambda e, t: e['learn'].predict_texts(['fine', None]), TypeError, ['NoneType', 'rows [1]']),
    ('predict_texts-empty-text', None, lambda e, t: e['learn'].predict_texts(['fine', '']), ValueError, ['empty texts at rows [1]', 'non-empty string']),
    ('predict_texts-one-string', None, lambda e, t: e['learn'].predict_texts('one text'), TypeError, ['not one string', '[text]']),
    ('predict_texts-bs-0', None, lambda e, t: e['learn'].predict_texts(['fine'], bs=0), ValueError, ['bs=0', 'integer ≥ 1']),
    ('predict-list', None, lambda e, t: e['learn'].predict(['a list']), TypeError, ['got list', 'predict_texts']),
    ('predict_file-missing-src', None, lambda e, t: e['learn'].predict_file(t/'none.txt', t/'out.csv'), FileNotFoundError, ['none.txt', 'expected a text file']),
    ('predict_file-no-text-column', _csv, lambda e, t: e['learn'].predict_file(t/'in.csv', t/'out.csv'), KeyError, ["'text'", "columns are ['body', 'label']"]),
    ('test_dl-unknown-label', None, lambda e, t: e['dls'].test_dl(['a', 'b'], labels=['sport', 'zzz']), ValueError, ["['zzz']", 'not in the vocabulary']),
    # saving and loading
    ('save_fm-onto-file', _a_file, lambda e, t: save_fm(e['learn'], t/'file'), FileExistsError, ['file', 'Choose another path']),
    ('save_fm-onto-other-folder', _not_model_dir, lambda e, t: save_fm(e['learn'], t/'notes'), FileExistsError, ['notes', 'not an fmcombo model']),
    ('save_fm-nan-weights', None, lambda e, t: save_fm(_nan_learner(e), t/'out'), FloatingPointError, ['NaN or infinite weights', 'expected finite weights']),
    ('load-missing-path', None, lambda e, t: load_fm_learner(t/'nothing'), FileNotFoundError, ['nothing', 'written by save_fm']),
    ('load-not-a-model', _empty_dir, lambda e, t: load_fm_learner(t/'empty'), ValueError, ['empty', 'fm.json or model.safetensors is missing']),
    ('load-corrupted-safetensors', _corrupt, lambda e, t: load_fm_learner(t/'m'), ValueError, ['model.safetensors', 'is corrupted', 'save the model again']),
    ('load-other-weights', _other_weights, lambda e, t: load_fm_learner(t/'m'), ValueError, ['model.safetensors', 'does not match']),
    ('load-pickle-file', _pickled_model, lambda e, t: load_fm_learner(t/'m'), ValueError, ["['pytorch_model.bin']", 'allow_pickle=True']),
    ('load-broken-fm.json', _bad_meta, lambda e, t: load_fm_learner(t/'m'), ValueError, ['fm.json', 'expected JSON with vocab']),
    # technique callbacks (their owners validate their hyper-parameters)
    ('FGM-eps-negative', None, lambda e, t: CB['FGM'](eps=-1), ValueError, ['eps', '-1']),
    ('PGD-steps-0', None, lambda e, t: CB['PGD'](steps=0), ValueError, ['steps', '0']),
    ('PGD-eps-nan', None, lambda e, t: CB['PGD'](eps=float('nan')), ValueError, ['eps', 'nan']),
    ('FreeLB-steps-0', None, lambda e, t: CB['FreeLB'](steps=0), ValueError, ['steps', '0']),
    ('SMART-weight-negative', None, lambda e, t: CB['SMART'](weight=-1), ValueError, ['weight', '-1']),
    ('AWP-rel_eps-negative', None, lambda e, t: CB['AWP'](rel_eps=-1), ValueError, ['rel_eps', '-1']),
    ('EmbedMix-alpha-0', None, lambda e, t: CB['EmbedMix'](alpha=0), ValueError, ['alpha', '0']),
    ('TMix-layers-empty', None, lambda e, t: CB['TMix'](layers=[]), ValueError, ['layers', '[]']),
    ('NEFTune-noise_mag-negative', None, lambda e, t: CB['NEFTune'](noise_mag=-5), ValueError, ['noise_mag', '-5']),
    ('RDrop-weight-negative', None, lambda e, t: CB['RDrop'](weight=-1), ValueError, ['weight', '-1']),
    ('EDA-p_swap-2', None, lambda e, t: CB['EDA'](p_swap=2, synonyms={}), ValueError, ['p_swap', '2']),
    ('CharNoise-p-negative', None, lambda e, t: CB['CharNoise'](p=-0.1), ValueError, ['p', '-0.1']),
    ('SWA-start_epoch-negative', None, lambda e, t: CB['SWA'](start_epoch=-1), ValueError, ['start_epoch', '-1']),
    ('SnapshotEnsemble-cycles-0', None, lambda e, t: CB['SnapshotEnsemble'](0), ValueError, ['cycles', '0']),
    ('Distill-teacher-None', None, lambda e, t: CB['Distill'](None), TypeError, ['got NoneType', 'FMLearner']),
    ('train_ensemble-n-0', None, lambda e, t: CB['train_ensemble'](e['dls'], n=0), ValueError, ['got 0', 'integer >= 1']),
    ('Ensemble-no-members', None, lambda e, t: CB['Ensemble']([]), ValueError, ['members', '[]']),
    # robust training and the typo front end
    ('A2T-typos-budget-0', None, lambda e, t: CB['A2T']('typos', budget=0), ValueError, ['got 0', 'integer >= 1']),
    ('A2T-unknown-attack', None, lambda e, t: CB['A2T']('typo'), ValueError, ["'typo'", "'typos'"]),
    ('A2T-words-0', None, lambda e, t: CB['A2T'](words=0), ValueError, ['got 0', 'leading words', 'None for whole texts']),
    ('TypoCorrector-text-not-list', None, lambda e, t: CB['TypoCorrector']('one text'), TypeError, ['got str', 'iterable of strings']),
    ('TypoCorrector-None-text', None, lambda e, t: CB['TypoCorrector'](['a b', None]), TypeError, ['None', 'hold strings']),
    ('TypoCorrector-min_count-0', None, lambda e, t: CB['TypoCorrector'](['a b'], min_count=0), ValueError, ['got 0', 'integer >= 1']),
    ('TypoCorrector-no-known-word', None, lambda e, t: CB['TypoCorrector'](['once']), ValueError, ['no known word', '2+ times']),
    ('Corrected-not-a-model', None, lambda e, t: CB['Corrected']('model', CB['TypoCorrector'](['a a'])), TypeError, ['got str', '`predict_texts`']),
]

def _nan_learner(e):
    l = fm_learner(e['dls'])
    with torch.no_grad(): l.model.head[1].weight[0, 0] = float('nan')
    return l

def _listing(d:Path) -> list:
    return sorted((str(p.relative_to(d)), p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns) for p in d.rglob('*'))

# cases whose check is not there yet: marked so that the day it comes, the mark must go (strict)
MISSING = {}   # a case the library does not yet meet, {name: why}: marked a strict xfail until it does

@pytest.mark.parametrize('name,setup,action,exc,parts', [
    pytest.param(*c, id=c[0], marks=[pytest.mark.xfail(strict=True, reason=MISSING[c[0]])] if c[0] in MISSING else []) for c in CASES])
def test_bad_input(name, setup, action, exc, parts, env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if setup: setup(env, tmp_path)
    before = _listing(tmp_path)
    with pytest.raises(exc) as info: action(env, tmp_path)
    msg = str(info.value.args[0]) if info.value.args else str(info.value)
    for p in parts: assert p in msg, f"{name}: {p!r} not in the message {msg!r}"
    assert _listing(tmp_path) == before, f"{name} wrote {sorted(set(_listing(tmp_path)) - set(before))}"

def test_the_table_is_large():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)
