"""Which head, learning rate and schedule: test accuracy of fine-tuning recipes on the default backbone.

    python benchmarks/defaults.py                       # BBC News, 8 per class, seeds 0 1 2, all recipes
    python benchmarks/defaults.py --corpus tweet_sentiment --n 32 --recipes default

Every recipe sees the same samples and seeds (paired): seed s draws the sample and
initialises the head. Training runs without per-epoch validation; each model is
evaluated once on the whole test split. Writes benchmarks/results/defaults[-CORPUS-N].json.
Each finished run is appended to a cache (results/defaults-runs.jsonl) so that an interrupted
run resumes; delete it to measure afresh. Training seconds are recorded but are only
indicative: the machine is shared.
"""
import argparse, json, time
from pathlib import Path
import numpy as np, torch

from fmcombo.data import load_corpus, sample_per_class, fm_dls
from fmcombo.learner import fm_learner, DEFAULT_EPOCHS, DEFAULT_LR

RECIPES = {  # name: (pooling, method, epochs, lr)
    'mean head, fit_one_cycle(10, 3e-4)': ('mean', 'fit_one_cycle', 10, 3e-4),
    'mean head, fit_one_cycle(10, 1e-4)': ('mean', 'fit_one_cycle', 10, 1e-4),
    'mean head, fit_one_cycle(10, 1e-3)': ('mean', 'fit_one_cycle', 10, 1e-3),
    'mean head, fine_tune(5, 1e-3)': ('mean', 'fine_tune', 5, 1e-3),
    'HF head (pooler over [CLS]), fine_tune(5, 5e-5)': ('native', 'fine_tune', 5, 5e-5),
    'HF head (pooler over [CLS]), fine_tune(10, 1e-4)': ('native', 'fine_tune', 10, 1e-4),
    'HF head (pooler over [CLS]), fit_one_cycle(10, 3e-4)': ('native', 'fit_one_cycle', 10, 3e-4),
    'HF head (pooler over [CLS]), fit_one_cycle(10, 1e-4)': ('native', 'fit_one_cycle', 10, 1e-4),
}
DEFAULT = f'default: mean head, fit_one_cycle({DEFAULT_EPOCHS}, {DEFAULT_LR:g})'

def run(sample, test, pooling, method, epochs, lr, seed):
    dls = fm_dls(sample, bs=16, seed=seed)
    learn = fm_learner(dls, pooling=pooling)
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): getattr(learn, method)(epochs, lr)
    train_s = time.perf_counter() - t0
    _, probs = learn.predict_texts(test['text'], bs=64)
    acc = float((probs.argmax(1) == np.array(test['label'])).mean())
    return acc, train_s

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--corpus', default='bbc_news')
    ap.add_argument('--n', type=int, default=8, help='training examples per class')
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--recipes', nargs='+', default=None, help="recipe names, or 'default' (all when omitted)")
    ap.add_argument('--out', default=None)
    ap.add_argument('--threads', type=int, default=None, help='torch threads (1 when several processes share the seeds)')
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    recipes = {DEFAULT: ('mean', 'fit_one_cycle', DEFAULT_EPOCHS, DEFAULT_LR)} if a.recipes == ['default'] else (
        {k: RECIPES[k] for k in a.recipes} if a.recipes else RECIPES)
    ds = load_corpus(a.corpus)
    test = ds['test']
    rows, runs = [], []
    cache_f = Path(__file__).parent/'results'/'defaults-runs.jsonl'
    cache = {}
    if cache_f.exists():
        for line in cache_f.read_text().splitlines():
            r = json.loads(line); cache[(r['corpus'], r['n'], r['recipe'], r['seed'])] = r
    for name, (pooling, method, epochs, lr) in recipes.items():
        accs, secs = [], []
        for seed in a.seeds:
            key = (a.corpus, a.n, f'{pooling} {method}({epochs}, {lr:g})', seed)
            if key in cache: acc, s = cache[key]['accuracy'], cache[key]['train_seconds']
            else:
                acc, s = run(sample_per_class(ds['train'], a.n, seed=seed), test, pooling, method, epochs, lr, seed)
                cache_f.parent.mkdir(parents=True, exist_ok=True)
                with cache_f.open('a') as f: f.write(json.dumps(dict(corpus=a.corpus, n=a.n, recipe=key[2], seed=seed, accuracy=acc, train_seconds=s)) + '\n')
            accs.append(acc); secs.append(s)
            runs.append(dict(recipe=name, seed=seed, accuracy=acc, train_seconds=s))
            print(f'{name:55s} seed {seed}: {acc:.1%} ({s:.0f}s training)', flush=True)
        rows.append({'recipe': name, 'accuracy mean': round(float(np.mean(accs)), 4), 'accuracy std': round(float(np.std(accs, ddof=1)), 4) if len(accs) > 1 else 0.0,
                     'per seed': ' '.join(f'{x:.1%}' for x in accs)})
    res = dict(corpus=a.corpus, n_per_class=a.n, seeds=a.seeds, test_size=len(test), torch_threads=torch.get_num_threads(),
               table=rows, runs=runs, command='python benchmarks/defaults.py ' + ' '.join(__import__('sys').argv[1:]))
    out = Path(a.out) if a.out else Path(__file__).parent/'results'/('defaults.json' if (a.corpus, a.n, a.recipes) == ('bbc_news', 8, None) else f'defaults-{a.corpus}-{a.n}.json')
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print('\n' + '\n'.join(f"{r['recipe']:55s} {r['accuracy mean']:.1%} ± {r['accuracy std']:.1%}" for r in rows))
    print(f'wrote {out}')

if __name__ == '__main__': main()
