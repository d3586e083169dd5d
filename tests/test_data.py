"Bad input to the data layer: each a clear error that says what was wrong and what was expected."
import numpy as np, pandas as pd, pytest, datasets
from fmcombo.data import load_corpus, sample_per_class, fm_dls

def frame(n=12):
    return pd.DataFrame({'text': [f'text number {i} about {"sport" if i%2 else "money"}' for i in range(n)], 'label': ['a', 'b']*(n//2)})

def test_splits_are_deterministic_and_disjoint(bbc):
    assert len(bbc['train']) + len(bbc['test']) == 2127
    assert bbc['train'].features['label'].names == ['business', 'entertainment', 'politics', 'sports', 'tech']
    # 20 % of every class in test, rounded
    test_counts = np.bincount(bbc['test']['label'])
    assert test_counts.tolist() == [round(0.2*n) for n in [503, 369, 403, 505, 347]]

def test_unknown_corpus_lists_known():
    with pytest.raises(ValueError, match="bbc_news.*tweet_sentiment"): load_corpus('nope')

def test_sample_per_class_errors(bbc):
    with pytest.raises(ValueError, match="class 'entertainment' has only 295 examples; asked for 300"): sample_per_class(bbc['train'], 300)
    with pytest.raises(ValueError, match='positive integer'): sample_per_class(bbc['train'], -1)

def test_sample_is_stable_across_calls(bbc):
    a = sample_per_class(bbc['train'], 3, seed=7)['text']
    assert a == sample_per_class(bbc['train'], 3, seed=7)['text']

@pytest.mark.parametrize('data,match', [
    (frame().drop(columns='text'), "column 'text' not found; columns are \\['label'\\]"),
    (frame().drop(columns='label'), "column 'label' not found"),
    (frame().iloc[:0], 'empty'),
    (frame().assign(label='a'), 'single class'),
    (frame().assign(text=[None] + frame().text.tolist()[1:]), r'rows \[0\]'),
    (frame().assign(text=frame().text.tolist()[:3] + [5] + frame().text.tolist()[4:]), r'rows \[3\]'),
    (frame().assign(text=frame().text.tolist()[:2] + ['   '] + frame().text.tolist()[3:]), r'empty texts at rows \[2\]'),
    (frame().assign(label=[np.nan] + frame().label.tolist()[1:]), 'missing'),
])
def test_bad_training_data(tiny, data, match):
    with pytest.raises((ValueError, KeyError, TypeError), match=match): fm_dls(data, backbone=tiny)

def test_bad_arguments(tiny):
    with pytest.raises(ValueError, match='bs must be a positive integer'): fm_dls(frame(), backbone=tiny, bs=0)
    with pytest.raises(ValueError, match='larger than the backbone allows'): fm_dls(frame(), backbone=tiny, max_len=513)
    with pytest.raises(ValueError, match=r"\['c'\] are not in the training labels"): fm_dls(frame(), valid=frame().assign(label='c'), backbone=tiny)
    with pytest.raises(FileNotFoundError, match='does not exist'): fm_dls(frame(), backbone='./missing-model')
    with pytest.raises(TypeError, match='DataFrame'): fm_dls([1, 2, 3], backbone=tiny)
    with pytest.raises(FileNotFoundError, match='no CSV file'): fm_dls('missing.csv', backbone=tiny)

def test_csv_and_int_labels(tiny, tmp_path):
    f = tmp_path/'d.csv'
    frame().assign(label=[0, 1]*6).to_csv(f, index=False)
    dls = fm_dls(str(f), backbone=tiny, bs=4)
    assert dls.vocab == [0, 1]
    x, mask, y = dls.one_batch()
    assert set(y.tolist()) <= {0, 1}

def test_long_texts_are_truncated(tiny):
    df = frame().assign(text=['word ' * 2000] * 12)
    dls = fm_dls(df, backbone=tiny, max_len=64, bs=4)
    assert dls.one_batch()[0].shape[1] == 64

def test_dynamic_padding_and_sorting(tiny):
    df = pd.DataFrame({'text': ['short'] * 20 + ['a much longer text with many more words in it than the others ' * 3] * 20, 'label': ['a', 'b'] * 20})
    dls = fm_dls(df, backbone=tiny, bs=4, seed=0)
    widths = [x.shape[1] for x, m, y in dls.train]
    assert min(widths) < max(widths)          # short batches are not padded to the longest text
    real = sum(m.sum().item() for x, m, y in dls.train); total = sum(m.numel() for x, m, y in dls.train)
    assert real / total > 0.9

def test_text_tfms_only_on_training(tiny):
    calls = []
    def tfm(t): calls.append(t); return t + ' extra'
    dls = fm_dls(frame(), valid=frame(), backbone=tiny, bs=4, text_tfms=[tfm])
    list(dls.valid); assert calls == []
    list(dls.train); assert len(calls) == 12
