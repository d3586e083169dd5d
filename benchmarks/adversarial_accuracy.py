"""Does adversarial training help? Plain fine-tuning vs FGM vs FreeLB on the default backbone.

    python benchmarks/adversarial_accuracy.py                      # tweets, 32 per class, seeds 0 1 2
    python benchmarks/adversarial_accuracy.py --arms plain FGM --seeds 0
    python benchmarks/adversarial_accuracy.py --merge a.json b.json   # combine runs made in separate processes
    python benchmarks/adversarial_accuracy.py --reuse benchmarks/results/robustness-runs.jsonl

Every arm sees the same samples and seeds (paired): seed s draws the training sample, shuffles
the batches and initialises the head. All arms train with `fit_one_cycle(DEFAULT_EPOCHS,
DEFAULT_LR)` without per-epoch validation, and each model is evaluated once on a fixed
stratified subset of the test split (2,000 texts by default: the machine is shared, and the
whole 7.6k test split would cost more than the training). The arms named after a callback use its
defaults. Writes benchmarks/results/adversarial_accuracy.json
(rewritten after every run, so a partial run still leaves its results). `--reuse` takes the runs that
benchmarks/robustness.py made of the same arm, seed and setting (it trains plain, FGM and FreeLB
the same way and measures them on the same test subset) instead of training them again. The arms named
`METHOD arg=value` are each method's default against one alternative of its strength: how the defaults were chosen.
"""
import argparse, json, sys, time
from pathlib import Path
import numpy as np, torch

from fmcombo.data import load_corpus, sample_per_class, fm_dls
from fmcombo.learner import fm_learner, DEFAULT_EPOCHS, DEFAULT_LR
from fmcombo.adversarial import FGM, FreeLB, PGD, SMART, AWP

ARMS = {'plain': lambda: [], 'FGM': lambda: [FGM()], 'FreeLB': lambda: [FreeLB()],
        'PGD': lambda: [PGD()], 'SMART': lambda: [SMART()], 'AWP': lambda: [AWP()],
        'FGM eps=0.3': lambda: [FGM(eps=0.3)], 'FGM eps=3': lambda: [FGM(eps=3.)],   # is FGM's default eps right?
        # each method's default against one alternative of its strength, to choose the defaults by measurement
        'PGD eps=0.3': lambda: [PGD(eps=0.3, step_size=0.1)], 'FreeLB adv_lr=0.3': lambda: [FreeLB(step_size=0.3, init_mag=0.3)],
        'SMART eps=1': lambda: [SMART(eps=1.)], 'AWP adv_eps=0.001': lambda: [AWP(rel_eps=0.001)]}

def test_subset(ds, size:int):
    "A fixed stratified subset of the test split (the whole split when `size` is 0 or too large)"
    test = ds['test']
    if not size or size >= len(test): return test
    return test.train_test_split(test_size=size, stratify_by_column='label', seed=0)['test']

def run(sample, test, arm, seed, epochs, lr):
    learn = fm_learner(fm_dls(sample, bs=16, seed=seed), cbs=ARMS[arm]())
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, lr)
    train_s = time.perf_counter() - t0
    _, probs = learn.predict_texts(test['text'], bs=64)
    return float((probs.argmax(1) == np.array(test['label'])).mean()), train_s

def table(runs, arms):
    rows = []
    for arm in arms:
        r = sorted((x for x in runs if x['arm'] == arm), key=lambda x: x['seed'])
        if not r: continue
        accs = [x['accuracy'] for x in r]
        rows.append({'arm': arm, 'seeds': len(accs), 'accuracy mean': round(float(np.mean(accs)), 4),
                     'accuracy std': round(float(np.std(accs, ddof=1)), 4) if len(accs) > 1 else None,
                     'per seed': ' '.join(f"{x['seed']}:{x['accuracy']:.1%}" for x in r),
                     'train s/run': round(float(np.mean([x['train_seconds'] for x in r])), 1)})
    base = {x['seed']: x['accuracy'] for x in runs if x['arm'] == 'plain'}
    for row in rows:   # paired difference to plain over the seeds both have
        d = [x['accuracy'] - base[x['seed']] for x in runs if x['arm'] == row['arm'] and x['seed'] in base]
        row['vs plain (paired)'] = (f"{np.mean(d):+.1%} ± {np.std(d, ddof=1):.1%}" if len(d) > 1 else
                                    (f"{d[0]:+.1%}" if d else ''))
    return rows

def merge(a):
    "Combine the runs of several result files (e.g. one process per seed) into one table"
    parts = [json.loads(Path(f).read_text()) for f in a.merge]
    keys = ('corpus', 'n_per_class', 'epochs', 'lr', 'test_size')
    if any(tuple(p[k] for k in keys) != tuple(parts[0][k] for k in keys) for p in parts):
        raise ValueError(f'the files differ in {keys}; only runs of the same setting can be merged')
    runs = {(r['arm'], r['seed']): r for p in parts for r in p['runs']}
    runs = [runs[k] for k in sorted(runs, key=lambda k: (k[1], k[0]))]
    arms = list(dict.fromkeys(r['arm'] for p in parts for r in p['runs']))
    res = {**parts[0], 'seeds': sorted({r['seed'] for r in runs}), 'table': table(runs, arms), 'runs': runs,
           'command': 'python benchmarks/adversarial_accuracy.py ' + ' '.join(sys.argv[1:]),
           'merged': [dict(file=f, command=p['command'], runs=[(r['arm'], r['seed']) for r in p['runs']]) for f, p in zip(a.merge, parts)]}
    Path(a.out).write_text(json.dumps(res, indent=2))
    print('\n'.join(f"{r['arm']:8s} {r['accuracy mean']:.1%} ± {r['accuracy std'] or 0:.1%} ({r['seeds']} seeds)  {r['vs plain (paired)']}" for r in res['table']))
    print(f'wrote {a.out}')

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--corpus', default='tweet_sentiment')
    ap.add_argument('--n', type=int, default=32, help='training examples per class')
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--arms', nargs='+', default=['plain', 'FGM', 'FreeLB'], choices=list(ARMS))
    ap.add_argument('--test-size', type=int, default=2000, help='stratified test subset; 0 = the whole test split')
    ap.add_argument('--out', default=str(Path(__file__).parent/'results'/'adversarial_accuracy.json'))
    ap.add_argument('--threads', type=int, default=1, help='torch threads (1: on a shared machine more threads make it much slower)')
    ap.add_argument('--merge', nargs='+', default=None, help='result files of separate processes to combine into --out')
    ap.add_argument('--reuse', default=None, help="runs of benchmarks/robustness.py (its jsonl cache) to take instead of training again")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.merge: return merge(a)
    ds = load_corpus(a.corpus)
    test = test_subset(ds, a.test_size)
    runs, out = [], Path(a.out)
    reuse = {}
    if a.reuse:
        for r in map(json.loads, filter(str.strip, Path(a.reuse).read_text().splitlines())):
            if (r['corpus'], r['n_per_class'], r['epochs'], r['lr'], r['test_size']) == (a.corpus, a.n, DEFAULT_EPOCHS, DEFAULT_LR, len(test)):
                reuse[(r['recipe'], r['seed'])] = r
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in a.seeds:                       # seeds outer, arms inner: a partial run stays paired
        sample = sample_per_class(ds['train'], a.n, seed=seed)
        for arm in a.arms:
            if (arm, seed) in reuse: acc, s, src = reuse[arm, seed]['accuracy'], reuse[arm, seed]['train_seconds'], a.reuse
            else: (acc, s), src = run(sample, test, arm, seed, DEFAULT_EPOCHS, DEFAULT_LR), None
            runs.append(dict(arm=arm, seed=seed, accuracy=acc, train_seconds=round(s, 1), **({'from': src} if src else {})))
            print(f'{arm:8s} seed {seed}: {acc:.1%} ({s:.0f}s training)', flush=True)
            res = dict(corpus=a.corpus, n_per_class=a.n, seeds=a.seeds, epochs=DEFAULT_EPOCHS, lr=DEFAULT_LR,
                       test_size=len(test), test_split_size=len(ds['test']),
                       test_subset="ds['test'].train_test_split(test_size=N, stratify_by_column='label', seed=0)['test']",
                       torch_threads=torch.get_num_threads(), table=table(runs, a.arms), runs=runs,
                       command='python benchmarks/adversarial_accuracy.py ' + ' '.join(sys.argv[1:]))
            out.write_text(json.dumps(res, indent=2))
    print('\n' + '\n'.join(f"{r['arm']:8s} {r['accuracy mean']:.1%} ± {r['accuracy std'] or 0:.1%} ({r['seeds']} seeds)  {r['vs plain (paired)']}" for r in res['table']))
    print(f'wrote {out}')

if __name__ == '__main__': main()
