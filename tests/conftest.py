import os, pytest
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
os.environ.setdefault('HF_HUB_OFFLINE', '1')

@pytest.fixture(scope='session')
def tiny():
    from fmcombo.testing import tiny_backbone
    return tiny_backbone()

@pytest.fixture(scope='session')
def bbc():
    from fmcombo.data import load_corpus
    return load_corpus('bbc_news')

@pytest.fixture(scope='session')
def few(bbc):
    from fmcombo.data import sample_per_class
    return sample_per_class(bbc['train'], 4, seed=0)
