"Bad input to the data layer: each a clear error that says what was wrong and what was expected."
import numpy as np, pandas as pd, pytest, datasets
from fmcombo.data import load_corpus, sample_per_class, fm_dls, check_texts, label_indices, labelled_texts, to_frame

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
    with pytest.raises(ValueError, match=r"valid: labels \['c'\] are not in the vocabulary"): fm_dls(frame(), valid=frame().assign(label='c'), backbone=tiny)
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

def test_check_texts():
    assert check_texts(('a', 'b')) == ['a', 'b'] and check_texts(np.array(['a'])) == ['a']
    with pytest.raises(TypeError, match=r'texts must be a list of strings, not one string; wrap it: \[text\]'): check_texts('one')
    with pytest.raises(TypeError, match='unlabelled must be a list of strings; got NoneType'): check_texts(None, 'unlabelled')
    with pytest.raises(TypeError, match='got generator'): check_texts(t for t in ['a'])
    with pytest.raises(TypeError, match=r'\(float\) at rows \[1\] \(1 rows\)'): check_texts(['a', float('nan')])

def test_label_indices():
    vocab = ['neg', 'pos']
    assert label_indices(['pos', 0, np.int64(1), 1.0], vocab).tolist() == [1, 0, 1, 1]
    assert label_indices(['5', 0], [1, 5]).tolist() == [1, 0]        # names are compared as strings; ints are positions
    with pytest.raises(ValueError, match=r"labels: labels \['meh'\] are not in the vocabulary \['neg', 'pos'\]"): label_indices(['meh'], vocab)
    with pytest.raises(ValueError, match=r'indices into it \(0 to 1\); got \[2, -1\]'): label_indices([2, -1], vocab)
    with pytest.raises(ValueError, match='got \\[True\\]'): label_indices([True], vocab)
    with pytest.raises(TypeError, match='a list of labels; got str'): label_indices('pos', vocab)

def test_labelled_texts_and_to_frame(tmp_path):
    df = frame()
    df.to_csv(tmp_path/'d.csv', index=False)
    texts, y = labelled_texts(tmp_path/'d.csv', ['a', 'b'])
    assert texts == df.text.tolist() and y.tolist() == [0 if l == 'a' else 1 for l in df.label]
    with pytest.raises(KeyError, match="valid needs a 'label' column"): labelled_texts(df[['text']], ['a', 'b'], 'valid')
    with pytest.raises(TypeError, match='valid must be a datasets.Dataset'): to_frame([1], 'valid')

def test_loaders_codec(tiny):
    dls = fm_dls(frame(), backbone=tiny)
    assert dls.test_dl(['x', 'y'], labels=['b', 0]).dataset.labels == [1, 0]
    assert dls.with_train(['z'], ['b']).train_ds.labels[-1] == 1
    with pytest.raises(TypeError, match='not one string'): dls.test_dl('x')
    with pytest.raises(ValueError, match='labels has 1 values for 2 texts'): dls.test_dl(['x', 'y'], labels=['a'])
    assert dls.tokenizer_key == fm_dls(frame(), backbone=tiny).tokenizer_key != fm_dls(frame(), backbone=tiny, max_len=32).tokenizer_key
