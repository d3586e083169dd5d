"""Test accuracy of the augmentation methods of `fmcombo.augment` on the default backbone.

    python benchmarks/augment_compare.py --corpus bbc_news --n 8                  # whole test split (425)
    python benchmarks/augment_compare.py --corpus tweet_sentiment --n 32 --test 2000

Paired: seed s draws the sample, seeds the head, the batch order and the augmentation, for every
method. Each run is `fit_one_cycle(DEFAULT_EPOCHS, DEFAULT_LR)` without per-epoch validation,
evaluated once at the end. `--test 2000` evaluates on a fixed stratified subset of the test split
(`ds['test'].train_test_split(test_size=2000, stratify_by_column='label', seed=0)['test']`).
Runs already in the output file are kept (the script resumes); seeds run in the outer loop, so a
partial file holds every method on the same seeds.
Writes benchmarks/results/augment-CORPUS-N.json.
"""
import argparse, fcntl, json, sys, tempfile, time
from pathlib import Path
import numpy as np, torch

from fmcombo.data import load_corpus, sample_per_class, fm_dls
from fmcombo.learner import fm_learner, DEFAULT_EPOCHS, DEFAULT_LR
from fmcombo.augment import EDA, AEDA, EmbedMix, TMix, NEFTune, RDrop

METHODS = {  # name: (text_tfms, callbacks), built fresh for each run
    'plain': lambda: ([], []),
    'EDA': lambda: ([EDA()], []),
    'AEDA': lambda: ([AEDA()], []),
    'EmbedMix': lambda: ([], [EmbedMix()]),
    'TMix': lambda: ([], [TMix()]),
    'NEFTune': lambda: ([], [NEFTune()]),
    'R-Drop': lambda: ([], [RDrop()]),
    # one alternative strength per method, against its default: how the defaults were chosen
    'EDA p=0.05': lambda: ([EDA(0.05, 0.05, 0.05, 0.05)], []),
    'AEDA ratio=0.1': lambda: ([AEDA(ratio=0.1)], []),
    'EmbedMix alpha=1': lambda: ([], [EmbedMix(alpha=1.)]),
    'TMix alpha=2': lambda: ([], [TMix(alpha=2.)]),
    'NEFTune alpha=15': lambda: ([], [NEFTune(noise_mag=15.)]),
    'R-Drop alpha=3': lambda: ([], [RDrop(weight=3.)]),
}

def test_split(ds, n_test):
    if not n_test: return ds['test']
    return ds['test'].train_test_split(test_size=n_test, stratify_by_column='label', seed=0)['test']

def run(sample, test, method, seed, max_len):
    tfms, cbs = METHODS[method]()
    dls = fm_dls(sample, bs=16, seed=seed, text_tfms=tfms or None, max_len=max_len)
    learn = fm_learner(dls, cbs=cbs)
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(DEFAULT_EPOCHS, DEFAULT_LR)
    secs = time.perf_counter() - t0
    _, probs = learn.predict_texts(test['text'], bs=64)
    return float((probs.argmax(1) == np.array(test['label'])).mean()), secs

def table(runs, methods, seeds):
    rows = []
    base = {r['seed']: r['accuracy'] for r in runs if r['method'] == 'plain'}
    for m in methods:
        got = {r['seed']: r for r in runs if r['method'] == m}
        ss = [s for s in seeds if s in got]
        if not ss: continue
        acc = np.array([got[s]['accuracy'] for s in ss])
        row = {'method': m, 'seeds': len(ss), 'accuracy mean': round(float(acc.mean()), 4),
               'accuracy std': round(float(acc.std(ddof=1)), 4) if len(ss) > 1 else None,
               'per seed': ' '.join(f'{a:.1%}' for a in acc)}
        paired = [got[s]['accuracy'] - base[s] for s in ss if s in base]
        if m != 'plain' and paired: row['Δ vs plain (paired mean)'] = round(float(np.mean(paired)), 4)
        row['train s/run'] = round(float(np.mean([got[s]['train_seconds'] for s in ss])), 1)
        rows.append(row)
    return rows

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--corpus', default='bbc_news')
    ap.add_argument('--n', type=int, default=8, help='training examples per class')
    ap.add_argument('--test', type=int, default=0, help='evaluate on a stratified subset of this size (0: whole test split)')
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--methods', nargs='+', default=list(METHODS)[:7], choices=list(METHODS), help='default: the methods at their defaults')
    ap.add_argument('--max-len', type=int, default=128, help='tokens per text')
    ap.add_argument('--threads', type=int, default=None, help='torch threads (several processes can share the seeds)')
    ap.add_argument('--out', default=None)
    a = ap.parse_args()
    out = Path(a.out) if a.out else Path(__file__).parent/'results'/f'augment-{a.corpus}-{a.n}.json'
    ds = load_corpus(a.corpus)
    test = test_split(ds, a.test)
    if a.threads: torch.set_num_threads(a.threads)
    def load():
        return json.loads(out.read_text())['runs'] if out.exists() and out.stat().st_size else []
    note = (f"{a.corpus}, {a.n} per class, fit_one_cycle({DEFAULT_EPOCHS}, {DEFAULT_LR:g}), bs 16, max_len {a.max_len}; test: "
            + (f"stratified subset of {len(test)} of the test split (seed 0)" if a.test else f"whole test split ({len(test)})"))
    for seed in a.seeds:
        sample = sample_per_class(ds['train'], a.n, seed=seed)
        for m in a.methods:
            if any(r['method'] == m and r['seed'] == seed for r in load()): continue
            acc, secs = run(sample, test, m, seed, a.max_len)
            print(f'{m:10s} seed {seed}: {acc:.1%} ({secs:.0f}s training)', flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(Path(tempfile.gettempdir())/(out.name + '.lock'), 'w') as lock:   # several processes may share one file: merge under a lock
                fcntl.flock(lock, fcntl.LOCK_EX)
                runs = [r for r in load() if not (r['method'] == m and r['seed'] == seed)]
                runs.append(dict(method=m, seed=seed, accuracy=acc, train_seconds=round(secs, 1), max_len=a.max_len))
                seeds = sorted({r['seed'] for r in runs})
                res = dict(corpus=a.corpus, n_per_class=a.n, seeds=seeds, test_size=len(test), epochs=DEFAULT_EPOCHS, lr=DEFAULT_LR,
                           max_len=a.max_len, note=note, table=table(runs, list(METHODS), seeds), runs=runs,
                           command=f'python benchmarks/augment_compare.py --corpus {a.corpus} --n {a.n} --max-len {a.max_len}' + (f' --test {a.test}' if a.test else ''))
                out.write_text(json.dumps(res, indent=2))
    res = json.loads(out.read_text())
    print('\n'.join(f"{r['method']:10s} {r['accuracy mean']:.1%} ± {(r['accuracy std'] or 0):.1%}  {r.get('Δ vs plain (paired mean)', '')}" for r in res['table']))
    print(f'wrote {out}')

if __name__ == '__main__': main()
