"""Does sharing one backbone between two tasks help, hurt or cost nothing? A joint model against two separate models.

    python benchmarks/multitask.py                       # BBC topics 8/class + tweet sentiment 32/class, seeds 0 1 2
    python benchmarks/multitask.py --seeds 0 --infer-n 128

Tasks: `topic` (BBC News, 8 training examples per class) and `sentiment` (tweets, 32 per class).
Arms, paired on seed s (the same training samples, batch shuffling and head seed):
`separate`: two `fm_learner`s, one per task; `joint`: one `mt_learner` over `mt_dls({"topic": ...,
"sentiment": ...})` (batches from the tasks in turn, in proportion to their size). Both train with
`fit_one_cycle(DEFAULT_EPOCHS, DEFAULT_LR)` and no per-epoch validation, on the default backbone with
one torch thread. Evaluation: the whole BBC test split and a fixed stratified subset of 2,000 test
tweets (the rule of benchmarks/adversarial_accuracy.py). Inference time: labelling `--infer-n` texts
(half BBC test articles, half test tweets) with both labels: the joint model's one pass against a
`TaskSet` of the two separate models (two passes). Writes benchmarks/results/multitask.json after
every run, so a partial run still leaves its results; `--retable` recomputes its table from its runs.
"""
import argparse, json, sys, time
from pathlib import Path
import numpy as np, torch

from fmcombo.data import load_corpus, sample_per_class, fm_dls
from fmcombo.learner import fm_learner, DEFAULT_EPOCHS, DEFAULT_LR
from fmcombo.multitask import mt_dls, mt_learner, TaskSet

TASKS = {'topic': ('bbc_news', 8), 'sentiment': ('tweet_sentiment', 32)}

def test_subset(ds, size:int):
    "A fixed stratified subset of the test split (the whole split when `size` is 0 or too large): adversarial_accuracy's rule"
    test = ds['test']
    if not size or size >= len(test): return test
    return test.train_test_split(test_size=size, stratify_by_column='label', seed=0)['test']

def n_params(*models) -> int: return sum(p.numel() for m in models for p in m.parameters())

def fit(learn, epochs, lr):
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, lr)
    return time.perf_counter() - t0

def accuracy(probs, ds) -> float: return float((np.asarray(probs).argmax(1) == np.array(ds['label'])).mean())

def timed(fn, texts):
    t0 = time.perf_counter(); fn(texts); return time.perf_counter() - t0

def table(runs):
    rows = []
    by = {(r['arm'], r['seed']): r for r in runs}
    for arm in ('separate', 'joint'):
        rs = sorted((r for r in runs if r['arm'] == arm), key=lambda r: r['seed'])
        if not rs: continue
        row = {'arm': arm, 'seeds': len(rs)}
        for t in TASKS:
            a = [r[f'{t}_accuracy'] for r in rs]
            row[f'{t} accuracy'] = f"{np.mean(a):.1%} ± {np.std(a, ddof=1):.1%}" if len(a) > 1 else f"{a[0]:.1%}"
            d = [r[f'{t}_accuracy'] - by['separate', r['seed']][f'{t}_accuracy'] for r in rs if ('separate', r['seed']) in by]
            row[f'{t} vs separate (paired)'] = (f"{np.mean(d):+.1%} ± {np.std(d, ddof=1):.1%}" if len(d) > 1 else f"{d[0]:+.1%}") if d and arm != 'separate' else ''
        row['parameters'] = f"{rs[0]['parameters']/1e6:.2f}M"
        row['train s'] = round(float(np.mean([r['train_seconds'] for r in rs])), 1)
        row['both labels, s per 100 texts'] = round(float(np.mean([r['infer_seconds'] for r in rs]))*100/rs[0]['infer_n'], 2)
        q = [r['infer_seconds']/by['separate', r['seed']]['infer_seconds'] for r in rs if ('separate', r['seed']) in by]
        row['inference time vs separate (paired)'] = f"{np.mean(q):.2f}× ({' '.join(f'{x:.2f}' for x in q)})" if q and arm != 'separate' else ''
        rows.append(row)
    return rows

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--test-size', type=int, default=2000, help='stratified tweet test subset; 0 = the whole split (BBC: always whole)')
    ap.add_argument('--infer-n', type=int, default=256, help='texts labelled with both labels for the inference timing')
    ap.add_argument('--out', default=str(Path(__file__).parent/'results'/'multitask.json'))
    ap.add_argument('--threads', type=int, default=1, help='torch threads (1: on a shared machine more threads make it much slower)')
    ap.add_argument('--retable', action='store_true', help='recompute the table of --out from its runs (no training)')
    a = ap.parse_args()
    if a.retable:
        res = json.loads(Path(a.out).read_text()); res['table'] = table(res['runs'])
        Path(a.out).write_text(json.dumps(res, indent=2)); return print(*res['table'], sep='\n')
    torch.set_num_threads(a.threads)
    ds = {t: load_corpus(c) for t, (c, _) in TASKS.items()}
    test = {'topic': ds['topic']['test'], 'sentiment': test_subset(ds['sentiment'], a.test_size)}
    half = a.infer_n//2
    infer = test['topic']['text'][:half] + test['sentiment']['text'][:a.infer_n - half]
    out, runs = Path(a.out), []
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in a.seeds:
        samples = {t: sample_per_class(ds[t]['train'], n, seed=seed) for t, (_, n) in TASKS.items()}
        dls = lambda t: fm_dls(samples[t], bs=16, seed=seed)
        # separate: one model per task
        sep = {t: fm_learner(dls(t)) for t in TASKS}
        train_s = sum(fit(l, DEFAULT_EPOCHS, DEFAULT_LR) for l in sep.values())
        accs = {f'{t}_accuracy': accuracy(sep[t].predict_texts(test[t]['text'])[1], test[t]) for t in TASKS}
        ts = TaskSet(sep)
        infer_s = timed(ts.predict_texts, infer)
        runs.append(dict(arm='separate', seed=seed, **accs, parameters=n_params(*(l.model for l in sep.values())),
                         train_seconds=round(train_s, 1), infer_seconds=round(infer_s, 2), infer_n=len(infer), forward_passes=len(ts.groups)))
        print(runs[-1], flush=True)
        # joint: one backbone, a head per task
        mt = mt_learner(mt_dls({t: dls(t) for t in TASKS}))
        train_s = fit(mt, DEFAULT_EPOCHS, DEFAULT_LR)
        accs = {f'{t}_accuracy': accuracy(mt.task_probs(test[t]['text'], tasks=[t])[t], test[t]) for t in TASKS}
        infer_s = timed(mt.predict_texts, infer)
        runs.append(dict(arm='joint', seed=seed, **accs, parameters=n_params(mt.model), train_seconds=round(train_s, 1),
                         infer_seconds=round(infer_s, 2), infer_n=len(infer), forward_passes=1))
        print(runs[-1], flush=True)
        res = dict(tasks={t: dict(corpus=c, n_per_class=n) for t, (c, n) in TASKS.items()}, seeds=a.seeds, epochs=DEFAULT_EPOCHS,
                   lr=DEFAULT_LR, bs=16, test_sizes={t: len(d) for t, d in test.items()},
                   test_subset="tweets: ds['test'].train_test_split(test_size=N, stratify_by_column='label', seed=0)['test']; BBC: the whole test split",
                   torch_threads=torch.get_num_threads(), table=table(runs), runs=runs,
                   command='python benchmarks/multitask.py ' + ' '.join(sys.argv[1:]))
        out.write_text(json.dumps(res, indent=2))
    for r in res['table']: print(r)
    print(f'wrote {out}')

if __name__ == '__main__': main()
