"""Learning from unlabelled text on tweets: plain vs self-training vs task-adaptive pretraining vs both.

    python benchmarks/unlabelled_compare.py            # tweets, 32 per class + 5,000 unlabelled, seeds 0 1 2

Labelled: `sample_per_class(train, 32, seed)`. Unlabelled: 5,000 training tweets drawn once (seed
1234) from those not in any seed's labelled sample; their labels are used only to report the
pseudo-labels' accuracy. Task-adaptive pretraining (`adapt_backbone`, 1 epoch) runs once on the
unlabelled pool and every seed fine-tunes the adapted backbone. Self-training: `self_train(learn,
pool, threshold=0.9, rounds=2, max_per_class=...)` after the plain fine-tuning. Every fine-tuning is
`fit_one_cycle(DEFAULT_EPOCHS, DEFAULT_LR)`; evaluation once, on the fixed stratified 2,000-tweet
subset of the test split (`ds['test'].train_test_split(test_size=2000, stratify_by_column='label',
seed=0)['test']`). Resumes from the output file. Writes benchmarks/results/unlabelled-tweet_sentiment-32.json.
"""
import argparse, fcntl, json, sys, tempfile, time
from pathlib import Path
import numpy as np, torch

from fmcombo.data import load_corpus, sample_per_class, fm_dls
from fmcombo.learner import fm_learner, DEFAULT_EPOCHS, DEFAULT_LR
from fmcombo.augment import self_train, adapt_backbone

METHODS = ['plain', 'self-training', 'task-adaptive pretraining', 'both']

def _setting_args(argv:list) -> list:
    "The arguments that define the setting, without those that only split the work (--methods, --only-seeds, --threads)"
    out, skip = [], False
    for x in argv:
        if x.startswith('--'): skip = x in ('--methods', '--only-seeds', '--threads')
        if not skip: out.append(x)
    return out

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--corpus', default='tweet_sentiment')
    ap.add_argument('--n', type=int, default=32)
    ap.add_argument('--unlabelled', type=int, default=5000)
    ap.add_argument('--test', type=int, default=2000)
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--methods', nargs='+', default=METHODS)
    ap.add_argument('--threshold', type=float, default=0.9)
    ap.add_argument('--max-per-class', type=int, default=200)
    ap.add_argument('--tapt-epochs', type=int, default=1)
    ap.add_argument('--max-len', type=int, default=128)
    ap.add_argument('--backbone', default=None, help='None: the default backbone (a folder, for smoke tests)')
    ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--only-seeds', type=int, nargs='+', default=None, help='run these of --seeds only (the unlabelled pool still excludes every --seeds sample): several processes can share the seeds')
    ap.add_argument('--out', default=None)
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    out = Path(a.out) if a.out else Path(__file__).parent/'results'/f'unlabelled-{a.corpus}-{a.n}.json'
    ds = load_corpus(a.corpus)
    test = ds['test'].train_test_split(test_size=a.test, stratify_by_column='label', seed=0)['test'] if a.test else ds['test']
    used = set()
    for s in a.seeds: used |= set(sample_per_class(ds['train'], a.n, seed=s)['text'])
    rest = [i for i, t in enumerate(ds['train']['text']) if t not in used]
    pool = ds['train'].select(np.sort(np.random.default_rng(1234).choice(rest, a.unlabelled, replace=False)).tolist())
    texts, labels = list(pool['text']), list(pool['label'])
    cache = Path(tempfile.gettempdir())/'fmcombo-bench'/f'tapt-{a.corpus}-{a.unlabelled}-e{a.tapt_epochs}-{Path(a.backbone or "default").name}'
    def load(): return json.loads(out.read_text())['runs'] if out.exists() and out.stat().st_size else []
    def evaluate(learn): return float((learn.predict_texts(test['text'], bs=64)[1].argmax(1) == np.array(test['label'])).mean())
    tapt = None
    if (cache/'config.json').exists(): tapt = str(cache)   # adapted by an earlier or parallel run on the same pool
    for seed in (a.only_seeds or a.seeds):
        sample = sample_per_class(ds['train'], a.n, seed=seed)
        for m in a.methods:
            if any(r['method'] == m and r['seed'] == seed for r in load()): continue
            t0, extra = time.perf_counter(), {}
            backbone = a.backbone
            if m in ('task-adaptive pretraining', 'both'):
                if tapt is None:
                    t1 = time.perf_counter()
                    tapt = adapt_backbone(texts, backbone=a.backbone, epochs=a.tapt_epochs, out=cache, max_len=a.max_len, seed=0, show_progress=False)
                    print(f'adapt_backbone: {time.perf_counter()-t1:.0f}s', flush=True)
                backbone = tapt
            learn = fm_learner(fm_dls(sample, bs=16, seed=seed, max_len=a.max_len, backbone=backbone))
            with learn.no_bar(), learn.no_logging():
                learn.fit_one_cycle(DEFAULT_EPOCHS, DEFAULT_LR)
                if m in ('self-training', 'both'):
                    rep = self_train(learn, texts, threshold=a.threshold, rounds=2, max_per_class=a.max_per_class, labels=labels)
                    extra['self_train'] = rep.to_dict('records')
            acc = evaluate(learn)
            secs = time.perf_counter() - t0
            print(f'{m:28s} seed {seed}: {acc:.1%} ({secs:.0f}s) {extra.get("self_train", "")}', flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(Path(tempfile.gettempdir())/(out.name + '.lock'), 'w') as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                runs = [r for r in load() if not (r['method'] == m and r['seed'] == seed)] + [dict(method=m, seed=seed, accuracy=acc, seconds=round(secs, 1), **extra)]
                seeds = sorted({r['seed'] for r in runs})
                base = {r['seed']: r['accuracy'] for r in runs if r['method'] == 'plain'}
                table = []
                for mm in METHODS:
                    got = [r for r in runs if r['method'] == mm]
                    if not got: continue
                    acc_ = np.array([r['accuracy'] for r in got])
                    row = {'method': mm, 'seeds': len(got), 'accuracy mean': round(float(acc_.mean()), 4),
                           'accuracy std': round(float(acc_.std(ddof=1)), 4) if len(got) > 1 else None,
                           'per seed': ' '.join(f"{r['accuracy']:.1%}" for r in sorted(got, key=lambda r: r['seed']))}
                    paired = [r['accuracy'] - base[r['seed']] for r in got if r['seed'] in base]
                    if mm != 'plain' and paired: row['Δ vs plain (paired mean)'] = round(float(np.mean(paired)), 4)
                    table.append(row)
                note = (f"{a.corpus}, {a.n} per class + {a.unlabelled} unlabelled training texts, fit_one_cycle({DEFAULT_EPOCHS}, {DEFAULT_LR:g}), "
                        f"max_len {a.max_len}; self_train(threshold={a.threshold}, rounds=2, max_per_class={a.max_per_class}); "
                        f"adapt_backbone(epochs={a.tapt_epochs}); test: stratified subset of {len(test)} of the test split (seed 0)")
                res = dict(corpus=a.corpus, n_per_class=a.n, unlabelled=a.unlabelled, seeds=seeds, test_size=len(test), note=note, table=table,
                           runs=runs, command=' '.join(['python benchmarks/unlabelled_compare.py'] + _setting_args(sys.argv[1:])))
                out.write_text(json.dumps(res, indent=2))
    print(f'wrote {out}')

if __name__ == '__main__': main()
