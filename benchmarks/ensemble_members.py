"""Train (or reuse) the members that benchmarks/ensemble_quality.py combines.

    python benchmarks/ensemble_members.py --corpus bbc_news --n 8 --draws 0 1 2 --seeds 0 1 2 3 4

Draw d takes the training sample `sample_per_class(train, n, seed=d)` and a validation sample of
the same size from the rest of the training split (`seed=1000+d`), disjoint from it; member s
fine-tunes the default backbone on the training sample with `fit_one_cycle(DEFAULT_EPOCHS,
DEFAULT_LR)`, seed s (head initialisation and batch order). Members are saved with `save_fm`
under --cache as they finish, so an interrupted run resumes.
"""
import argparse, json, os, time
from pathlib import Path
import numpy as np, torch

from fmcombo.data import load_corpus, sample_per_class, fm_dls
from fmcombo.learner import fm_learner, load_fm_learner, DEFAULT_EPOCHS, DEFAULT_LR

CACHE = Path('/tmp/fmcombo-ensemble-cache')
TWEET_TEST = 2000
BACKBONE = os.environ.get('FMCOMBO_BENCH_BACKBONE')   # None: the default backbone (set for a quick smoke run on the tiny one)

def splits(corpus:str, n:int, draw:int):
    "Training sample, disjoint validation sample, and test set of one draw"
    ds = load_corpus(corpus)
    train = sample_per_class(ds['train'], n, seed=draw)
    taken = set(train['text'])
    rest = ds['train'].filter(lambda r: r['text'] not in taken)
    valid = sample_per_class(rest, n, seed=1000+draw)
    test = ds['test']
    if corpus == 'tweet_sentiment':   # a fixed stratified 2,000-text subset of the 7.6k test texts, to bound CPU time
        test = test.train_test_split(test_size=TWEET_TEST, stratify_by_column='label', seed=0)['test']
    return train, valid, test

def member_dir(cache, corpus, n, draw, seed): return Path(cache)/f'{corpus}-{n}-lr{DEFAULT_LR:g}-e{DEFAULT_EPOCHS}'/f'draw{draw}'/f'seed{seed}'   # the recipe is part of the key

def train_member(train, seed, epochs=DEFAULT_EPOCHS, lr=DEFAULT_LR, cbs=None):
    dls = fm_dls(train, bs=16, seed=seed, backbone=BACKBONE)
    learn = fm_learner(dls, cbs=cbs)
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, lr)
    return learn, time.perf_counter() - t0

def get_member(cache, corpus, n, draw, seed, train):
    "A trained member, loaded from the cache or trained and saved there"
    d = member_dir(cache, corpus, n, draw, seed)
    if (d/'fm.json').exists() and (d/'train_seconds.json').exists():
        return load_fm_learner(d), json.loads((d/'train_seconds.json').read_text())['train_seconds']
    learn, secs = train_member(train, seed)
    learn.save_fm(d)
    (d/'train_seconds.json').write_text(json.dumps(dict(train_seconds=secs)))
    return learn, secs

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--corpus', default='bbc_news'); ap.add_argument('--n', type=int, default=8)
    ap.add_argument('--draws', type=int, nargs='+', default=[0]); ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4])
    ap.add_argument('--cache', default=str(CACHE)); ap.add_argument('--threads', type=int, default=0)
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    for draw in a.draws:
        train, valid, test = splits(a.corpus, a.n, draw)
        for seed in a.seeds:
            learn, secs = get_member(a.cache, a.corpus, a.n, draw, seed, train)
            print(f'{a.corpus} n={a.n} draw {draw} seed {seed}: {secs:.0f}s training', flush=True)

if __name__ == '__main__': main()
